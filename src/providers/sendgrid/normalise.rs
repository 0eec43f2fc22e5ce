//! SendGrid provider: parse and normalise the Event Webhook. Verification is
//! [`super::verify::verify_sendgrid`], on the raw body, before [`parse`].
//! This module never touches Redis and never knows hyper.
//!
//! SendGrid posts a JSON array of events, batched across recipients. Each event is read
//! on its own, so one unreadable event is reported (`rejected`) while the rest of the
//! batch is applied: SendGrid resends a failed batch whole, so refusing it would lose
//! the good events with the bad one, forever.
//!
//! What becomes a [`ChannelEvent`] on [`Channel::Email`], keyed by `sg_event_id` (the
//! dedup key) and timed by `timestamp` (Unix seconds):
//!
//! | `event` | becomes |
//! |---|---|
//! | `bounce` | [`EventKind::DeliveryStatus`], code `bounce` (type `bounce`, or no type: SendGrid's test batch, and SendGrid suppresses every bounce), `blocked.<classification>` (type `blocked`), `bounce.<type>` otherwise |
//! | `dropped` | reason `Unsubscribed Address`: unsubscribe; `Spam Reporting Address`: complaint; otherwise DeliveryStatus `dropped.<reason>` |
//! | `deferred` | DeliveryStatus, code `deferred` |
//! | `spamreport` | [`EventKind::Complaint`] |
//! | `unsubscribe` | [`EventKind::Preference`] opt-out, not marketing-only (global: "opt out of all emails") |
//! | `group_unsubscribe` | [`EventKind::GroupPreference`] opt-out of the `asm_group_id` group (without a readable group: a global unsubscribe) |
//! | `group_resubscribe` | GroupPreference opt-in of its group: lifts only that group's unsubscribe (without a readable group: nothing) |
//! | `processed`, `delivered`, `open`, `click`, others | nothing (ignored) |
//!
//! What a code does is not decided here: `providers/sendgrid.toml` maps it (a blocked
//! address is a DND only when its classification says the address is invalid or the
//! mailbox unavailable). Codes are the event's words lower-cased with spaces as `-`, so
//! an operator can read them against SendGrid's documentation.

use serde_json::Value;

use super::SOURCE;
use crate::address::Address;
use crate::error::Error;
use crate::event::{Channel, ChannelEvent, EventKind};

/// What a batch taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events that matter for DND, in the order of the batch.
    pub events: Vec<ChannelEvent>,
    /// Events that could not be read, one line each (`event 3: ...`). The rest of the
    /// batch is still applied.
    pub rejected: Vec<String>,
}

/// Parse a verified body: a JSON array of event objects. A body that is not an array
/// is refused whole (400): it is not the Event Webhook, and SendGrid could never
/// deliver it differently.
pub fn parse(body: &[u8]) -> Result<Vec<Value>, Error> {
    crate::road::json_array(body, "the body", "SendGrid posts a JSON array of events")
}

/// Normalise a batch. `received_ms` stands in for an event without a `timestamp`.
pub fn normalise(events: &[Value], received_ms: i64) -> Normalised {
    let mut out = Normalised::default();
    for (i, raw) in events.iter().enumerate() {
        match normalise_event(raw, received_ms) {
            Ok(Some(event)) => out.events.push(event),
            Ok(None) => {}
            Err(why) => out.rejected.push(format!("event {i}: {why}")),
        }
    }
    out
}

/// What an event type means, before its fields are read.
enum Meaning {
    /// A failure whose code the error table classifies.
    Status(String),
    /// A complaint.
    Complaint,
    /// An unsubscribe (true) or resubscribe (false).
    Subscription(bool),
    /// An unsubscribe (true) or resubscribe (false) of one group (`asm_group_id`).
    Group(String, bool),
}

/// A group id as SendGrid sends it (a number; digits in a string accepted), at most
/// 10 digits; `None` for anything else.
fn group_id(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit()))
        .then_some(text)
}

/// Normalise one event: `Ok(None)` for an event type that says nothing about DND,
/// `Err` with a one-line reason for an event that cannot be read.
pub fn normalise_event(raw: &Value, received_ms: i64) -> Result<Option<ChannelEvent>, String> {
    let obj = raw.as_object().ok_or("it is not a JSON object")?;
    let kind = obj
        .get("event")
        .and_then(Value::as_str)
        .ok_or("it has no event name")?;
    let text = |field: &str| obj.get(field).and_then(Value::as_str).map(str::trim);
    let meaning = match kind {
        "bounce" => Meaning::Status(match text("type").filter(|t| !t.is_empty()) {
            // No type: SendGrid's own test batch. SendGrid puts every bounce on its
            // bounce suppression list, so it is a hard bounce; only `blocked` is not.
            Some("bounce") | None => "bounce".to_string(),
            Some("blocked") => match text("bounce_classification").filter(|c| !c.is_empty()) {
                Some(class) => format!("blocked.{}", classification_word(class)),
                None => "blocked".to_string(),
            },
            Some(other) => format!("bounce.{}", crate::classify::codes::code_word(other)),
        }),
        "dropped" => match text("reason").unwrap_or_default() {
            r if r.eq_ignore_ascii_case("Unsubscribed Address") => Meaning::Subscription(true),
            r if r.eq_ignore_ascii_case("Spam Reporting Address") => Meaning::Complaint,
            "" => Meaning::Status("dropped".to_string()),
            r => Meaning::Status(format!("dropped.{}", crate::classify::codes::code_word(r))),
        },
        "deferred" => Meaning::Status("deferred".to_string()),
        "spamreport" => Meaning::Complaint,
        "unsubscribe" => Meaning::Subscription(true),
        // A group unsubscribe whose group cannot be read is taken as the stronger,
        // global one; a group resubscribe without its group lifts nothing.
        "group_unsubscribe" => match group_id(obj.get("asm_group_id")) {
            Some(group) => Meaning::Group(group, true),
            None => Meaning::Subscription(true),
        },
        "group_resubscribe" => match group_id(obj.get("asm_group_id")) {
            Some(group) => Meaning::Group(group, false),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };

    let email = text("email").ok_or("it has no email")?;
    let address = Address::parse(Channel::Email, email).map_err(|e| e.to_string())?;
    // Without its sg_event_id an event still carries its DND: keyed by its content.
    let event_id = crate::event::event_id_or_derived(text("sg_event_id"), raw)
        .ok_or("its sg_event_id is too long")?;
    let event_time_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => received_ms,
        Some(t) => seconds_to_ms(t).ok_or("its timestamp is not Unix seconds")?,
    };
    let kind = match meaning {
        Meaning::Status(code) => EventKind::DeliveryStatus {
            status: kind.to_string(),
            error_code: Some(code),
        },
        Meaning::Complaint => EventKind::Complaint,
        Meaning::Subscription(opt_out) => EventKind::Preference {
            marketing_only: false,
            opt_out,
        },
        Meaning::Group(group, opt_out) => EventKind::GroupPreference { group, opt_out },
    };
    Ok(Some(ChannelEvent::email(
        SOURCE,
        event_id,
        event_time_ms,
        address,
        kind,
    )))
}

/// Unix seconds (an integer, or a float or decimal string some integrations send) in
/// milliseconds; `None` for anything else or a time outside any plausible range.
fn seconds_to_ms(value: &Value) -> Option<i64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // Year 2001 to year 2286: anything else is a unit mistake (milliseconds) or junk.
    (1e9..1e10)
        .contains(&seconds)
        .then(|| (seconds * 1000.0).round() as i64)
}

/// The code word of a `bounce_classification`. SendGrid's documented buckets get short,
/// fixed words (the table key is at most 32 characters, and the long name "Frequency or
/// Volume Too High" would not fit); any other value its generic word.
fn classification_word(class: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("invalid address", "invalid-address"),
        ("mailbox unavailable", "mailbox-unavailable"),
        ("technical failure", "technical"),
        ("technical", "technical"),
        ("content", "content"),
        ("reputation", "reputation"),
        ("frequency or volume too high", "frequency-volume"),
        ("frequency or volume", "frequency-volume"),
        ("unclassified", "unclassified"),
    ];
    let lower = class.to_ascii_lowercase();
    KNOWN.iter().find(|(name, _)| *name == lower).map_or_else(
        || crate::classify::codes::code_word(class),
        |(_, word)| (*word).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::providers::testkit::{
        PERM, TEMP, UNSUB, assert_decisions, assert_kinds, assert_refusals, delivery_status,
        identity, merged, without,
    };
    use serde_json::json;

    const RECEIVED: i64 = 1_700_000_999_000;

    fn event(fields: Value) -> Value {
        merged(
            json!({
                "email": "Alice@Example.com",
                "timestamp": 1_700_000_000,
                "sg_event_id": "ZXZlbnQtaWQ",
                "sg_message_id": "msg.filter0001",
                "smtp-id": "<msg@example.com>",
            }),
            fields,
        )
    }

    fn kind_of(fields: Value) -> Option<EventKind> {
        normalise_event(&event(fields), RECEIVED)
            .expect("readable")
            .map(|e| e.kind)
    }

    fn status(code: &str, word: &str) -> Option<EventKind> {
        delivery_status(word, code)
    }

    /// Every event type and bounce/drop variant, to the event it becomes.
    #[test]
    fn event_table() {
        let cases: Vec<(Value, Option<EventKind>)> = vec![
            (
                json!({"event": "bounce", "type": "bounce", "status": "5.1.1"}),
                status("bounce", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked"}),
                status("blocked", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Invalid Address"}),
                status("blocked.invalid-address", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Mailbox Unavailable"}),
                status("blocked.mailbox-unavailable", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Reputation"}),
                status("blocked.reputation", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Technical Failure"}),
                status("blocked.technical", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Frequency or Volume Too High"}),
                status("blocked.frequency-volume", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Content"}),
                status("blocked.content", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Unclassified"}),
                status("blocked.unclassified", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Something New!"}),
                status("blocked.something-new", "bounce"),
            ),
            (json!({"event": "bounce"}), status("bounce", "bounce")),
            (
                json!({"event": "bounce", "type": ""}),
                status("bounce", "bounce"),
            ),
            (
                json!({"event": "bounce", "type": "expired"}),
                status("bounce.expired", "bounce"),
            ),
            (
                json!({"event": "dropped", "reason": "Bounced Address"}),
                status("dropped.bounced-address", "dropped"),
            ),
            (
                json!({"event": "dropped", "reason": "Invalid"}),
                status("dropped.invalid", "dropped"),
            ),
            (
                json!({"event": "dropped", "reason": "Invalid SMTPAPI header"}),
                status("dropped.invalid-smtpapi-header", "dropped"),
            ),
            (
                json!({"event": "dropped", "reason": "Unsubscribed Address"}),
                UNSUB,
            ),
            (
                json!({"event": "dropped", "reason": "Spam Reporting Address"}),
                Some(EventKind::Complaint),
            ),
            (json!({"event": "dropped"}), status("dropped", "dropped")),
            (
                json!({"event": "deferred", "response": "450 try later", "attempt": "3"}),
                status("deferred", "deferred"),
            ),
            (json!({"event": "spamreport"}), Some(EventKind::Complaint)),
            (json!({"event": "unsubscribe"}), UNSUB),
            (
                json!({"event": "group_unsubscribe", "asm_group_id": 42}),
                Some(EventKind::GroupPreference {
                    group: "42".into(),
                    opt_out: true,
                }),
            ),
            (
                json!({"event": "group_resubscribe", "asm_group_id": "42"}),
                Some(EventKind::GroupPreference {
                    group: "42".into(),
                    opt_out: false,
                }),
            ),
            // Without a readable group: the stronger global unsubscribe, and a
            // resubscribe that lifts nothing.
            (json!({"event": "group_unsubscribe"}), UNSUB),
            (
                json!({"event": "group_unsubscribe", "asm_group_id": "4 2"}),
                UNSUB,
            ),
            (
                json!({"event": "group_resubscribe", "asm_group_id": -1}),
                None,
            ),
            (json!({"event": "group_resubscribe"}), None),
            (json!({"event": "processed"}), None),
            (json!({"event": "delivered", "response": "250 OK"}), None),
            (json!({"event": "open"}), None),
            (json!({"event": "click", "url": "https://x"}), None),
            (json!({"event": "something_new"}), None),
        ];
        assert_kinds(&cases, |fields| kind_of(fields.clone()));
    }

    /// From the event to the decision through the shipped table: the product rules.
    #[test]
    fn decisions_through_the_shipped_table() {
        let cases: Vec<(Value, Action, &str)> = vec![
            (
                json!({"event": "bounce", "type": "bounce"}),
                PERM,
                "sendgrid:bounce",
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Invalid Address"}),
                PERM,
                "sendgrid:blocked.invalid-address",
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Mailbox Unavailable"}),
                TEMP,
                "sendgrid:blocked.mailbox-unavailable",
            ),
            (
                json!({"event": "bounce", "type": "blocked", "bounce_classification": "Reputation"}),
                Action::None,
                "sendgrid:blocked.reputation",
            ),
            (
                json!({"event": "bounce", "type": "blocked"}),
                Action::None,
                "sendgrid:blocked",
            ),
            (
                json!({"event": "dropped", "reason": "Bounced Address"}),
                PERM,
                "sendgrid:dropped.bounced-address",
            ),
            (
                json!({"event": "dropped", "reason": "Invalid"}),
                PERM,
                "sendgrid:dropped.invalid",
            ),
            (
                json!({"event": "dropped", "reason": "Recipient List over Package Quota"}),
                Action::None,
                "unclassified:sendgrid:dropped.recipient-list-over-package-quot",
            ),
            (
                json!({"event": "dropped", "reason": "Unsubscribed Address"}),
                PERM,
                "sendgrid:stop",
            ),
            (
                json!({"event": "dropped", "reason": "Spam Reporting Address"}),
                PERM,
                "sendgrid:complaint",
            ),
            (
                json!({"event": "deferred"}),
                Action::None,
                "sendgrid:deferred",
            ),
            (json!({"event": "spamreport"}), PERM, "sendgrid:complaint"),
            (json!({"event": "unsubscribe"}), PERM, "sendgrid:stop"),
            (
                json!({"event": "group_unsubscribe", "asm_group_id": 42}),
                Action::BlockOwn,
                "sendgrid:group:42",
            ),
            (
                json!({"event": "group_resubscribe", "asm_group_id": 42}),
                Action::UnblockOwn,
                "sendgrid:group:42",
            ),
        ];
        assert_decisions::<super::super::Sendgrid>(&cases, |fields| {
            normalise_event(&event(fields.clone()), RECEIVED)
                .unwrap()
                .unwrap()
        });
    }

    #[test]
    fn fields_are_read_as_sendgrid_sends_them() {
        let e = normalise_event(&event(json!({"event": "spamreport"})), RECEIVED)
            .unwrap()
            .unwrap();
        assert_eq!(
            identity(&e),
            (
                SOURCE,
                Channel::Email,
                "alice@example.com",
                "ZXZlbnQtaWQ",
                1_700_000_000_000
            )
        );

        let no_time = without(event(json!({"event": "spamreport"})), "timestamp");
        let e = normalise_event(&no_time, RECEIVED).unwrap().unwrap();
        assert_eq!(e.event_time_ms, RECEIVED);
    }

    #[test]
    fn unreadable_events_say_why() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("bounce"), "not a json object"),
            (json!({"email": "a@example.com"}), "no event name"),
            (
                json!({"event": "bounce", "type": "bounce", "sg_event_id": "x"}),
                "no email",
            ),
            (
                json!({"event": "bounce", "type": "bounce", "email": "not an address", "sg_event_id": "x"}),
                "not an email",
            ),
            (
                json!({"event": "bounce", "type": "bounce", "email": "a@example.com", "sg_event_id": "x", "timestamp": "yesterday"}),
                "timestamp",
            ),
            (
                json!({"event": "bounce", "type": "bounce", "email": "a@example.com", "sg_event_id": "x", "timestamp": 1_700_000_000_000_i64}),
                "timestamp",
            ),
        ];
        assert_refusals(&cases, |raw| normalise_event(raw, RECEIVED));
        // Without its sg_event_id (missing or empty) a bounce still carries its DND,
        // keyed by its content: the same content, the same key.
        for raw in [
            json!({"event": "bounce", "type": "bounce", "email": "a@example.com"}),
            json!({"event": "bounce", "type": "bounce", "email": "a@example.com", "sg_event_id": ""}),
        ] {
            let e = normalise_event(&raw, RECEIVED).unwrap().expect("a bounce");
            assert_eq!(e.event_id, crate::event::derived_event_id(&raw), "{raw}");
        }
        // An ignored event type is not read further: a delivered event without an
        // email is no error.
        assert_eq!(
            normalise_event(&json!({"event": "delivered"}), RECEIVED),
            Ok(None)
        );
    }

    #[test]
    fn a_batch_keeps_the_good_events_and_reports_the_bad() {
        let body = format!(
            "[{},\r\n{{\"event\":\"bounce\",\"type\":\"bounce\"}},\r\n{},\r\n{}]\r\n",
            event(json!({"event": "spamreport", "sg_event_id": "a"})),
            event(json!({"event": "open", "sg_event_id": "b"})),
            event(json!({"event": "unsubscribe", "sg_event_id": "c"})),
        );
        let events = parse(body.as_bytes()).unwrap();
        let n = normalise(&events, RECEIVED);
        let ids: Vec<&str> = n.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(n.rejected.len(), 1);
        assert!(n.rejected[0].starts_with("event 1: "), "{:?}", n.rejected);
    }

    #[test]
    fn official_vector_bodies_parse() {
        let vectors: Vec<Value> = serde_json::from_str(include_str!(
            "../../../tests/providers/sendgrid/vectors.json"
        ))
        .unwrap();
        // The single-event vector: a dropped Bounced Address.
        let events = parse(vectors[0]["body"].as_str().unwrap().as_bytes()).unwrap();
        let n = normalise(&events, RECEIVED);
        assert!(n.rejected.is_empty());
        assert_eq!(n.events.len(), 1);
        assert_eq!(n.events[0].address.as_str(), "hello@world.com");
        assert_eq!(
            n.events[0].kind,
            status("dropped.bounced-address", "dropped").unwrap()
        );
        assert_eq!(n.events[0].event_time_ms, 1_600_112_492_000);
        // The multi-event vector: processed (ignored) and a block without classification.
        let events = parse(vectors[1]["body"].as_str().unwrap().as_bytes()).unwrap();
        let n = normalise(&events, RECEIVED);
        assert_eq!(n.events.len(), 1);
        assert_eq!(n.events[0].kind, status("blocked", "bounce").unwrap());
    }

    #[test]
    fn bodies_that_are_not_batches_are_refused() {
        for body in [&b"payload"[..], b"{}", b"", b"[1,"] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::BadRequest);
            assert!(
                err.message.contains("JSON array of events"),
                "{}",
                err.message
            );
        }
        assert_eq!(parse(b"[]\r\n").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn code_words() {
        for (text, word) in [
            ("Bounced Address", "bounced-address"),
            ("  Invalid  ", "invalid"),
            ("Invalid SMTPAPI header", "invalid-smtpapi-header"),
            ("???", "other"),
            ("Ünïcode words", "n-code-words"),
        ] {
            assert_eq!(crate::classify::codes::code_word(text), word, "{text}");
        }
        assert!(
            crate::classify::codes::code_word(&"x".repeat(500)).len()
                <= crate::classify::codes::MAX_CODE_WORD_LEN
        );
    }
}
