//! Brevo provider: parse and normalise its email webhooks, transactional and marketing,
//! one JSON record per request or a batch of them (a JSON array: Brevo's `batched`
//! webhooks). Brevo signs nothing; the request is authenticated ([`super::verify`])
//! before it reaches this module, which never touches Redis.
//!
//! Both kinds of webhook name what happened in `event` and the recipient in `email`.
//! Transactional records carry `message-id`; marketing (campaign) records carry
//! `camp_id` instead, and spell some events their own way (`unsubscribe` for the
//! transactional `unsubscribed`). What becomes an event, on the email channel:
//!
//! | `event` | event |
//! |---|---|
//! | `hard_bounce` | delivery status, code `hard_bounce` (table: permanent) |
//! | `soft_bounce` | delivery status, code `soft_bounce` (table: temporary) |
//! | `blocked` | delivery status, code `blocked` (table: permanent: Brevo refused to send because the address is on its blocklist) |
//! | `invalid_email` (or `invalid`) | delivery status, code `invalid_email` (table: permanent) |
//! | `deferred`, `error` | delivery status, code `deferred`, `error` (table: none) |
//! | `spam` (or `complaint`) | complaint |
//! | `unsubscribed` (transactional), `unsubscribe` (marketing) | unsubscribe |
//! | `request`, `delivered`, `opened`, `unique_opened`, `click`, `proxy_open`, list and contact events, others | nothing |
//! | any record above without `email` | nothing (ignored: no address to apply a change to) |
//!
//! Event names are matched without regard to case or underscores, so the names of
//! Brevo's webhook settings (`hardBounce`, `softBounce`) read as the names its payloads
//! carry (`hard_bounce`, `soft_bounce`).
//!
//! Brevo has no resubscribe event: adding a contact to a list (`list_addition`) is the
//! sender's act, not the contact's consent, so nothing here lifts a record.
//!
//! Event ids, the dedup keys: Brevo gives none (its `id` is the webhook's, the same in
//! every payload). A transactional record is keyed `MESSAGE_ID:EVENT:ADDRESS`, a
//! marketing one `camp:CAMP_ID:EVENT:ADDRESS`; a record with neither, or whose key
//! would be too long, by [`crate::event::derived_event_id`] of its content. `EVENT` is
//! the meaning's own word, so `spam` and `complaint` for one message are one event.
//!
//! Event time: `ts_event` (Unix seconds, UTC), else `ts_epoch` (Unix milliseconds, UTC;
//! a value that can only be seconds, as in Brevo's own example, is read as seconds),
//! else `ts`, else the time of receipt. The `date*` fields are in the account's or
//! Paris's time zone and are never read.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind, MAX_EVENT_ID_LEN};

/// What one Brevo request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events that matter for DND, in the order of the batch.
    pub events: Vec<ChannelEvent>,
    /// Records that carry no DND signal (a delivery, an open, a record without
    /// `email`), one line each; in a batch, `event N: ...`.
    pub ignored: Vec<String>,
    /// Records that would change DND but cannot be read (an address that is not one),
    /// one line each. The rest of a batch is still applied.
    pub rejected: Vec<String>,
}

/// What one record gave.
enum Outcome {
    Event(ChannelEvent),
    Ignored(String),
    Rejected(String),
}

impl Normalised {
    fn add(&mut self, index: Option<usize>, outcome: Outcome) {
        let line = |why: String| match index {
            Some(i) => format!("event {i}: {why}"),
            None => why,
        };
        match outcome {
            Outcome::Event(event) => self.events.push(event),
            Outcome::Ignored(why) => self.ignored.push(line(why)),
            Outcome::Rejected(why) => self.rejected.push(line(why)),
        }
    }
}

/// Normalise a Brevo webhook body received at `received_ms` (milliseconds since the
/// Unix epoch; the event time of a record that carries none we can read).
///
/// 400 only for a body that cannot be a Brevo webhook at all: not JSON, or neither a
/// JSON object nor an array. Every record is then read on its own; one that cannot be
/// read is reported in the 200's lines while the rest of a batch is applied, since
/// Brevo would send the batch the same way on every retry.
pub fn normalise(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(format!(
            "Brevo webhook body is not JSON ({e}): Brevo posts a JSON object, or an array of them when batched"
        ))
    })?;
    let mut out = Normalised::default();
    match &value {
        Value::Object(_) => out.add(None, record(&value, received_ms)),
        Value::Array(records) => {
            for (i, raw) in records.iter().enumerate() {
                out.add(Some(i), record(raw, received_ms));
            }
        }
        _ => {
            return Err(Error::bad_request(
                "Brevo webhook body is neither a JSON object nor an array of them",
            ));
        }
    }
    Ok(out)
}

/// What an event name means, before the record's fields are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// A failure whose code (the canonical event name) the error table classifies.
    Status(&'static str),
    /// The recipient reported the message as spam.
    Complaint,
    /// The recipient unsubscribed.
    Unsubscribe,
}

impl Meaning {
    /// The meaning of event name `name`; `None` for one that says nothing about DND.
    fn of(name: &str) -> Option<Meaning> {
        let key: String = name
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match key.as_str() {
            "hardbounce" => Meaning::Status("hard_bounce"),
            "softbounce" => Meaning::Status("soft_bounce"),
            "blocked" => Meaning::Status("blocked"),
            // `invalid` is the webhook setting's name of the `invalid_email` event.
            "invalidemail" | "invalid" => Meaning::Status("invalid_email"),
            "deferred" => Meaning::Status("deferred"),
            "error" => Meaning::Status("error"),
            "spam" | "complaint" => Meaning::Complaint,
            "unsubscribed" | "unsubscribe" => Meaning::Unsubscribe,
            _ => return None,
        })
    }

    /// The word in the event id.
    fn word(self) -> &'static str {
        match self {
            Meaning::Status(code) => code,
            Meaning::Complaint => "spam",
            Meaning::Unsubscribe => "unsubscribed",
        }
    }

    fn kind(self) -> EventKind {
        match self {
            Meaning::Status(code) => EventKind::DeliveryStatus {
                status: code.to_string(),
                error_code: Some(code.to_string()),
            },
            Meaning::Complaint => EventKind::Complaint,
            Meaning::Unsubscribe => EventKind::Preference {
                marketing_only: false,
                opt_out: true,
            },
        }
    }
}

/// Read one record.
fn record(raw: &Value, received_ms: i64) -> Outcome {
    let Some(obj) = raw.as_object() else {
        return Outcome::Rejected("it is not a JSON object".to_string());
    };
    let name = match obj.get("event") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        Some(Value::String(_) | Value::Null) | None => {
            return Outcome::Ignored(
                "a record without an event name: nothing to record".to_string(),
            );
        }
        Some(_) => return Outcome::Rejected("Brevo event is not a string".to_string()),
    };
    let Some(meaning) = Meaning::of(name) else {
        return Outcome::Ignored(format!("event {}: nothing to record", quoted(name)));
    };
    let Some(raw_address) = text(obj, "email") else {
        let why = if obj.contains_key("to") {
            format!(
                "Brevo {} has no email (an SMS event?): dndgate reads Brevo's email events only",
                quoted(name)
            )
        } else {
            format!(
                "Brevo {} has no email: no address to record anything for",
                quoted(name)
            )
        };
        return Outcome::Ignored(why);
    };
    let address = match Address::parse(Channel::Email, raw_address) {
        Ok(address) => address,
        Err(e) => return Outcome::Rejected(format!("Brevo email: {e}")),
    };
    let id = event_id(obj, meaning, &address, raw);
    Outcome::Event(ChannelEvent::email(
        SOURCE,
        id,
        event_time(obj, received_ms),
        address,
        meaning.kind(),
    ))
}

/// The record's dedup key (see the module doc).
fn event_id(obj: &Map<String, Value>, meaning: Meaning, address: &Address, raw: &Value) -> String {
    let word = meaning.word();
    let address = address.as_str();
    let id = if let Some(message_id) = text(obj, "message-id") {
        format!("{message_id}:{word}:{address}")
    } else if let Some(campaign) = id_text(obj.get("camp_id")) {
        format!("camp:{campaign}:{word}:{address}")
    } else {
        return crate::event::derived_event_id(raw);
    };
    if id.len() > MAX_EVENT_ID_LEN {
        crate::event::derived_event_id(raw)
    } else {
        id
    }
}

/// Below this a `ts_epoch` can only be seconds (it is 1973 in milliseconds).
const SECONDS_BELOW: i64 = 100_000_000_000;

/// The record's time in milliseconds (see the module doc).
fn event_time(obj: &Map<String, Value>, received_ms: i64) -> i64 {
    let seconds = |field: &str| whole(obj.get(field)).and_then(|s| s.checked_mul(1000));
    seconds("ts_event")
        .or_else(|| {
            whole(obj.get("ts_epoch")).and_then(|t| {
                if t < SECONDS_BELOW {
                    t.checked_mul(1000)
                } else {
                    Some(t)
                }
            })
        })
        .or_else(|| seconds("ts"))
        .unwrap_or(received_ms)
}

/// A positive whole number, sent as a JSON number or as digits in a string.
fn whole(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
}

/// A non-empty string field, trimmed.
fn text<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id Brevo sends as a number (`camp_id`) or, defensively, as a string.
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::error::Kind;
    use crate::providers::testkit::{self, PERM, TEMP, UNSUB};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    /// A transactional record in the shape of Brevo's documentation
    /// (developers.brevo.com/docs/transactional-webhooks) and of a live capture
    /// (django-anymail's tests).
    fn transactional(event: &str) -> Value {
        json!({
            "event": event,
            "email": " Recipient@Example.com ",
            "id": 26570,
            "date": "2020-10-09 00:00:00",
            "ts": 1604933619,
            "message-id": "<201803062010.27287306012@smtp-relay.mailin.fr>",
            "ts_event": 1604933654,
            "subject": "My first Transactional",
            "X-Mailin-custom": "some_custom_header",
            "sending_ip": "185.41.28.109",
            "ts_epoch": 1604933654123u64,
            "template_id": 22,
            "tags": ["transac_messages"],
            "reason": " RecipientError: 550 5.5.0 mailbox unavailable.",
            "contact_id": 8
        })
    }

    /// A marketing (campaign) record in the shape of Brevo's documentation
    /// (developers.brevo.com/docs/marketing-webhooks).
    fn marketing(event: &str) -> Value {
        json!({
            "id": 123456,
            "camp_id": 17,
            "email": "example@domain.com",
            "campaign name": "My First Campaign",
            "date_sent": "2020-10-09 00:00:00",
            "date_event": "2020-10-09 00:00:00",
            "event": event,
            "tag": "",
            "ts_sent": 1604933619,
            "ts_event": 1604933737,
            "ts": 1604937337
        })
    }

    fn run(body: &Value) -> Normalised {
        normalise(body.to_string().as_bytes(), NOW).unwrap()
    }

    fn decide(body: &Value) -> Option<(Action, String)> {
        let n = run(body);
        Some(testkit::decide::<super::super::Brevo>(n.events.first()?))
    }

    #[test]
    fn transactional_events_table() {
        // (event, expected action and reason; None = ignored)
        let cases: &[(&str, Option<(Action, &str)>)] = &[
            ("hard_bounce", Some((PERM, "brevo:hard_bounce"))),
            ("hardBounce", Some((PERM, "brevo:hard_bounce"))),
            ("soft_bounce", Some((TEMP, "brevo:soft_bounce"))),
            ("softBounce", Some((TEMP, "brevo:soft_bounce"))),
            ("blocked", Some((PERM, "brevo:blocked"))),
            ("invalid_email", Some((PERM, "brevo:invalid_email"))),
            ("invalid", Some((PERM, "brevo:invalid_email"))),
            ("deferred", Some((Action::None, "brevo:deferred"))),
            ("error", Some((Action::None, "brevo:error"))),
            ("spam", Some((PERM, "brevo:complaint"))),
            ("complaint", Some((PERM, "brevo:complaint"))),
            ("unsubscribed", Some((PERM, "brevo:stop"))),
            ("request", None),
            ("delivered", None),
            ("opened", None),
            ("unique_opened", None),
            ("click", None),
            ("proxy_open", None),
            ("unique_proxy_open", None),
        ];
        for (event, want) in cases {
            let got = decide(&transactional(event));
            assert_eq!(got, want.map(|(a, r)| (a, r.to_string())), "{event}");
            if want.is_none() {
                let n = run(&transactional(event));
                assert_eq!(n.ignored.len(), 1, "{event}: {n:?}");
                assert!(n.ignored[0].contains("nothing to record"), "{n:?}");
            }
        }
    }

    #[test]
    fn marketing_events_table() {
        let cases: &[(&str, Option<(Action, &str)>)] = &[
            ("hard_bounce", Some((PERM, "brevo:hard_bounce"))),
            ("soft_bounce", Some((TEMP, "brevo:soft_bounce"))),
            ("spam", Some((PERM, "brevo:complaint"))),
            ("unsubscribe", Some((PERM, "brevo:stop"))),
            ("delivered", None),
            ("opened", None),
            ("click", None),
            ("list_addition", None),
            ("contact_updated", None),
            ("contact_deleted", None),
        ];
        for (event, want) in cases {
            assert_eq!(
                decide(&marketing(event)),
                want.map(|(a, r)| (a, r.to_string())),
                "{event}"
            );
        }
        // An unsubscribe is a global opt-out, not a marketing-only one.
        assert_eq!(
            Some(run(&marketing("unsubscribe")).events[0].kind.clone()),
            UNSUB
        );
    }

    #[test]
    fn transactional_fields_id_and_time() {
        let n = run(&transactional("hard_bounce"));
        assert!(n.ignored.is_empty() && n.rejected.is_empty(), "{n:?}");
        assert_eq!(
            testkit::identity(&n.events[0]),
            (
                SOURCE,
                Channel::Email,
                "recipient@example.com",
                "<201803062010.27287306012@smtp-relay.mailin.fr>:hard_bounce:recipient@example.com",
                1_604_933_654_000
            )
        );
        // spam and complaint for one message are one event.
        assert_eq!(
            run(&transactional("spam")).events[0].event_id,
            run(&transactional("complaint")).events[0].event_id
        );
        // Without ts_event: ts_epoch in ms; in seconds as in Brevo's example; then ts.
        let t = |body: Value| run(&body).events[0].event_time_ms;
        let no_ts_event = testkit::without(transactional("hard_bounce"), "ts_event");
        assert_eq!(t(no_ts_event.clone()), 1_604_933_654_123);
        let seconds = testkit::merged(no_ts_event.clone(), json!({"ts_epoch": 1604933654}));
        assert_eq!(t(seconds), 1_604_933_654_000);
        let no_epoch = testkit::without(no_ts_event, "ts_epoch");
        assert_eq!(t(no_epoch.clone()), 1_604_933_619_000);
        assert_eq!(t(testkit::without(no_epoch.clone(), "ts")), NOW);
        // Digits in a string are read; garbage and non-positive values are not.
        let ts_text = testkit::merged(no_epoch.clone(), json!({"ts": "1604933620"}));
        assert_eq!(t(ts_text), 1_604_933_620_000);
        let no_time = testkit::without(no_epoch, "ts");
        for bad in [
            json!("soon"),
            json!(-5),
            json!(0),
            json!(1.5),
            json!(i64::MAX),
        ] {
            let body = testkit::merged(no_time.clone(), json!({"ts_event": bad}));
            assert_eq!(t(body), NOW, "{bad}");
        }
    }

    #[test]
    fn marketing_id_and_time() {
        let e = &run(&marketing("unsubscribe")).events[0];
        assert_eq!(e.event_id, "camp:17:unsubscribed:example@domain.com");
        assert_eq!(e.event_time_ms, 1_604_933_737_000);
        let as_text = testkit::merged(marketing("hard_bounce"), json!({"camp_id": "17"}));
        assert_eq!(
            run(&as_text).events[0].event_id,
            "camp:17:hard_bounce:example@domain.com"
        );
        // Neither message-id nor camp_id: keyed by the content.
        let bare = testkit::without(marketing("spam"), "camp_id");
        assert_eq!(
            run(&bare).events[0].event_id,
            crate::event::derived_event_id(&bare)
        );
        // A key past the limit: keyed by the content.
        let long = testkit::merged(
            transactional("hard_bounce"),
            json!({"message-id": "m".repeat(MAX_EVENT_ID_LEN)}),
        );
        assert_eq!(
            run(&long).events[0].event_id,
            crate::event::derived_event_id(&long)
        );
    }

    #[test]
    fn batches_are_read_record_by_record() {
        let batch = json!([
            transactional("hard_bounce"),
            transactional("delivered"),
            "not a record",
            testkit::merged(marketing("spam"), json!({"email": "not-an-address"})),
            testkit::without(marketing("unsubscribe"), "email"),
            marketing("unsubscribe"),
            {"event": 7, "email": "a@example.com"},
            {"email": "a@example.com"},
        ]);
        let n = run(&batch);
        let addresses: Vec<&str> = n.events.iter().map(|e| e.address.as_str()).collect();
        assert_eq!(addresses, ["recipient@example.com", "example@domain.com"]);
        assert_eq!(
            n.ignored,
            [
                "event 1: event \"delivered\": nothing to record",
                "event 4: Brevo \"unsubscribe\" has no email: no address to record anything for",
                "event 7: a record without an event name: nothing to record",
            ]
        );
        assert_eq!(n.rejected.len(), 3, "{n:?}");
        assert!(n.rejected[0].starts_with("event 2: it is not a JSON object"));
        assert!(n.rejected[1].starts_with("event 3: Brevo email:"));
        assert_eq!(n.rejected[2], "event 6: Brevo event is not a string");
        // An empty batch is nothing to do, not an error.
        assert_eq!(run(&json!([])), Normalised::default());
    }

    #[test]
    fn records_without_a_dnd_signal_are_ignored_not_refused() {
        let sms = json!({
            "id": 26570, "to": "918076001713", "msg_status": "hard_bounce",
            "event": "hard_bounce", "messageId": 123
        });
        let n = run(&sms);
        assert!(n.events.is_empty());
        assert!(n.ignored[0].contains("SMS"), "{n:?}");
        for body in [
            json!({}),
            json!({"event": null, "email": "a@example.com"}),
            json!({"event": "  ", "email": "a@example.com"}),
            json!({"event": "hard_bounce", "email": ""}),
            json!({"event": "hard_bounce", "email": 5}),
        ] {
            let n = run(&body);
            assert!(
                n.events.is_empty() && n.rejected.is_empty(),
                "{body}: {n:?}"
            );
            assert_eq!(n.ignored.len(), 1, "{body}: {n:?}");
        }
    }

    #[test]
    fn unreadable_bodies_are_400() {
        for (body, want) in [
            (&b"{not json"[..], "not JSON"),
            (b"", "not JSON"),
            (b"\"hard_bounce\"", "neither a JSON object nor an array"),
            (b"42", "neither a JSON object nor an array"),
        ] {
            let err = normalise(body, NOW).unwrap_err();
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(err.message.contains(want), "{want}: {}", err.message);
            assert!(!err.message.contains('\n'));
        }
    }

    /// The vectors' bodies are Brevo records that block.
    #[test]
    fn vector_bodies_are_dnd_signals() {
        for v in testkit::vectors(include_str!("../../../tests/providers/brevo/vectors.json")) {
            let n = normalise(v["body"].as_str().unwrap().as_bytes(), NOW).unwrap();
            assert_eq!(n.events.len(), 1, "{}", v["name"]);
        }
    }
}
