//! SparkPost provider: parse and normalise its event webhook batches. Authentication is
//! [`super::verify`], before [`parse`]; this module never touches Redis.
//!
//! SparkPost posts a JSON array; each entry is `{"msys": {CLASS: EVENT}}`, where CLASS
//! is the event's class (`message_event`, `track_event`, `unsubscribe_event`,
//! `relay_event`, `gen_event`, ...) and EVENT an object whose `type` names the event.
//! Each entry is read on its own: one that cannot be read is refused on its own line
//! while the rest of the batch is applied, since SparkPost resends a failed batch whole.
//!
//! What becomes a [`ChannelEvent`] on [`Channel::Email`], at `rcpt_to` (else
//! `raw_rcpt_to`), keyed by `event_id` (the dedup key; SparkPost keeps it across the
//! retries of a batch) and timed by `timestamp` (Unix seconds, sent as a string):
//!
//! | `type` | becomes |
//! |---|---|
//! | `bounce` | [`EventKind::DeliveryStatus`] `bounce`, code = `bounce_class` (`10`, `22`, ...), looked up in `providers/sparkpost.toml` |
//! | `out_of_band` | the same, status `out_of_band` (a bounce that came back after SparkPost handed the message over) |
//! | `spam_complaint` | [`EventKind::Complaint`] (not when its `fbtype` is `not-spam`: a report that the message is not spam) |
//! | `list_unsubscribe`, `link_unsubscribe` | [`EventKind::Preference`] opt-out, not marketing-only (the contact's unsubscribe) |
//! | `delivery`, `injection`, `delay`, `open`, `click`, `policy_rejection`, ..., others | nothing (skipped and counted) |
//! | `{"msys": {}}` | nothing: SparkPost's test batch, posted when a webhook is created or validated |
//!
//! SparkPost sends no resubscribe event: an unsubscribe is lifted by the contact's
//! opt-in through another road, or by an operator with consent evidence.
//!
//! A bounce whose `bounce_class` is missing or unreadable is still handed on (code
//! `none`), and the table leaves it unclassified: no DND. What a class means is not
//! decided here: `providers/sparkpost.toml` maps SparkPost's classification table.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind};

/// What a batch taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events that matter for DND, in the order of the batch.
    pub events: Vec<ChannelEvent>,
    /// Entries that could not be read, one line each (`event 3: ...`). The rest of the
    /// batch is still applied.
    pub rejected: Vec<String>,
    /// Entries without a DND signal, one line each (`event 0: delivery`), for the
    /// answer and the skipped metric.
    pub ignored: Vec<String>,
}

/// One entry of a batch, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An event that matters for DND.
    Event(ChannelEvent),
    /// Why the entry carries no DND signal.
    Ignored(String),
}

/// Parse an authenticated body: a JSON array of entries. A body that is not an array
/// is refused whole (400): it is not a SparkPost batch, and SparkPost could never
/// deliver it differently.
pub fn parse(body: &[u8]) -> Result<Vec<Value>, Error> {
    crate::road::json_array(
        body,
        "the body",
        "SparkPost posts a JSON array of {\"msys\": {...}} entries",
    )
}

/// Normalise a batch. `received_ms` stands in for an event without a readable
/// `timestamp`.
pub fn normalise(entries: &[Value], received_ms: i64) -> Normalised {
    let mut out = Normalised::default();
    for (i, raw) in entries.iter().enumerate() {
        match normalise_entry(raw, received_ms) {
            Ok(Entry::Event(event)) => out.events.push(event),
            Ok(Entry::Ignored(why)) => out.ignored.push(format!("event {i}: {why}")),
            Err(why) => out.rejected.push(format!("event {i}: {why}")),
        }
    }
    out
}

/// What an event type means, before its fields are read.
enum Meaning {
    /// A bounce (status `bounce` or `out_of_band`) the table classifies by its class.
    Bounce(&'static str),
    /// A spam complaint.
    Complaint,
    /// The contact's unsubscribe.
    Unsubscribe,
}

/// Normalise one entry: an event, an entry without a DND signal, or `Err` with a
/// one-line reason for an entry that cannot be read.
pub fn normalise_entry(raw: &Value, received_ms: i64) -> Result<Entry, String> {
    let msys = raw
        .as_object()
        .ok_or("it is not a JSON object")?
        .get("msys")
        .ok_or("it has no msys object")?
        .as_object()
        .ok_or("its msys is not an object")?;
    let mut classes = msys.iter();
    let (class, event) = match (classes.next(), classes.next()) {
        (None, _) => {
            return Ok(Entry::Ignored(
                "an empty msys: SparkPost's test batch, nothing to record".into(),
            ));
        }
        (Some(one), None) => one,
        (Some(_), Some(_)) => return Err("its msys holds more than one event".into()),
    };
    let event = event
        .as_object()
        .ok_or_else(|| format!("its {} is not an object", quoted(class)))?;
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("its {} has no type", quoted(class)))?;
    let meaning = match kind {
        "bounce" => Meaning::Bounce("bounce"),
        "out_of_band" => Meaning::Bounce("out_of_band"),
        "spam_complaint" if not_spam(event) => {
            return Ok(Entry::Ignored(
                "spam_complaint with fbtype not-spam: the contact says it is not spam".into(),
            ));
        }
        "spam_complaint" => Meaning::Complaint,
        "list_unsubscribe" | "link_unsubscribe" => Meaning::Unsubscribe,
        other => return Ok(Entry::Ignored(format!("{}: no DND signal", quoted(other)))),
    };

    let email = text(event, "rcpt_to")
        .or_else(|| text(event, "raw_rcpt_to"))
        .ok_or_else(|| format!("{kind} has no rcpt_to"))?;
    let address = Address::parse(Channel::Email, email).map_err(|e| format!("{kind}: {e}"))?;
    // Without its event_id an event still carries its DND: keyed by its content.
    let event_id =
        crate::event::event_id_or_derived(id_text(event.get("event_id")).as_deref(), raw)
            .ok_or_else(|| format!("{kind}: its event_id is too long"))?;
    let event_time_ms = match event.get("timestamp") {
        None | Some(Value::Null) => received_ms,
        Some(t) => {
            seconds_to_ms(t).ok_or_else(|| format!("{kind}: its timestamp is not Unix seconds"))?
        }
    };
    let kind = match meaning {
        Meaning::Bounce(status) => EventKind::DeliveryStatus {
            status: status.to_string(),
            error_code: Some(bounce_class(event.get("bounce_class"))),
        },
        Meaning::Complaint => EventKind::Complaint,
        Meaning::Unsubscribe => EventKind::Preference {
            marketing_only: false,
            opt_out: true,
        },
    };
    Ok(Entry::Event(ChannelEvent::email(
        SOURCE,
        event_id,
        event_time_ms,
        address,
        kind,
    )))
}

/// Is this complaint a "not-spam" feedback report (ARF `Feedback-Type: not-spam`)?
fn not_spam(event: &Map<String, Value>) -> bool {
    text(event, "fbtype").is_some_and(|t| t.eq_ignore_ascii_case("not-spam"))
}

/// A non-empty string field, trimmed.
fn text<'a>(event: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    event
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id SparkPost sends as a string of digits (a number accepted too).
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The table code of a `bounce_class`: its digits (SparkPost sends a string, `"10"`;
/// a number is accepted), without leading zeros; `none` when there is none, and the
/// code word of anything else (left unclassified by the table).
fn bounce_class(value: Option<&Value>) -> String {
    let text = match value {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return "none".to_string(),
    };
    match text.parse::<u16>() {
        Ok(class) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            class.to_string()
        }
        _ if text.is_empty() => "none".to_string(),
        _ => crate::classify::codes::code_word(&text),
    }
}

/// Unix seconds (a string of digits as SparkPost sends them, or a number) in
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::providers::testkit::{
        PERM, TEMP, UNSUB, assert_decisions, assert_kinds, assert_refusals, delivery_status,
        identity, merged,
    };
    use serde_json::json;

    const RECEIVED: i64 = 1_700_000_999_000;

    /// A message_event's fields as in SparkPost's documented bounce sample
    /// (developers.sparkpost.com, Event Samples), with `fields` set over them.
    fn message_event(fields: Value) -> Value {
        let base = json!({
            "type": "bounce",
            "bounce_class": "10",
            "campaign_id": "Example Campaign Name",
            "customer_id": "1",
            "error_code": "554",
            "event_id": "92356927693813856",
            "friendly_from": "sender@example.com",
            "message_id": "000443ee14578172be22",
            "raw_rcpt_to": "Recipient@Example.com",
            "rcpt_to": "recipient@example.com",
            "reason": "550 5.1.1 user unknown",
            "subaccount_id": "101",
            "timestamp": "1454442600",
            "transmission_id": "65832150921904138"
        });
        json!([{ "msys": { "message_event": merged(base, fields) } }])[0].clone()
    }

    fn unsubscribe_event(kind: &str) -> Value {
        json!({ "msys": { "unsubscribe_event": {
            "type": kind,
            "campaign_id": "Example Campaign Name",
            "customer_id": "1",
            "event_id": "92356927693813857",
            "mailfrom": "recipient@example.com",
            "message_id": "000443ee14578172be22",
            "raw_rcpt_to": "recipient@example.com",
            "rcpt_to": "recipient@example.com",
            "timestamp": "1454442600",
            "transmission_id": "65832150921904138"
        }}})
    }

    fn entry(raw: &Value) -> Entry {
        normalise_entry(raw, RECEIVED).expect("readable")
    }

    fn kind_of(raw: &Value) -> Option<EventKind> {
        match entry(raw) {
            Entry::Event(e) => Some(e.kind),
            Entry::Ignored(_) => None,
        }
    }

    fn event_of(raw: &Value) -> ChannelEvent {
        match entry(raw) {
            Entry::Event(e) => e,
            Entry::Ignored(why) => panic!("{raw}: ignored ({why})"),
        }
    }

    #[test]
    fn event_table() {
        let cases: Vec<(Value, Option<EventKind>)> = vec![
            (message_event(json!({})), delivery_status("bounce", "10")),
            (
                message_event(json!({"bounce_class": "22"})),
                delivery_status("bounce", "22"),
            ),
            (
                message_event(json!({"bounce_class": 50})),
                delivery_status("bounce", "50"),
            ),
            (
                message_event(json!({"bounce_class": "010"})),
                delivery_status("bounce", "10"),
            ),
            (
                message_event(json!({"bounce_class": null})),
                delivery_status("bounce", "none"),
            ),
            (
                message_event(json!({"bounce_class": ""})),
                delivery_status("bounce", "none"),
            ),
            (
                message_event(json!({"bounce_class": "Hard!"})),
                delivery_status("bounce", "hard"),
            ),
            (
                message_event(json!({"type": "out_of_band", "bounce_class": "10"})),
                delivery_status("out_of_band", "10"),
            ),
            (
                message_event(json!({"type": "spam_complaint", "fbtype": "abuse"})),
                Some(EventKind::Complaint),
            ),
            (
                message_event(json!({"type": "spam_complaint"})),
                Some(EventKind::Complaint),
            ),
            (
                message_event(json!({"type": "spam_complaint", "fbtype": "not-spam"})),
                None,
            ),
            (unsubscribe_event("list_unsubscribe"), UNSUB),
            (unsubscribe_event("link_unsubscribe"), UNSUB),
            (message_event(json!({"type": "delivery"})), None),
            (
                message_event(json!({"type": "delay", "bounce_class": "20"})),
                None,
            ),
            (message_event(json!({"type": "injection"})), None),
            (message_event(json!({"type": "policy_rejection"})), None),
            (
                json!({"msys": {"track_event": {"type": "click", "rcpt_to": "a@example.com"}}}),
                None,
            ),
            (
                json!({"msys": {"relay_event": {"type": "relay_permfail"}}}),
                None,
            ),
            (json!({"msys": {}}), None),
        ];
        assert_kinds(&cases, kind_of);
    }

    /// From the entry to the decision through the shipped table: the product rules.
    #[test]
    fn decisions_through_the_shipped_table() {
        let cases: Vec<(Value, Action, &str)> = vec![
            (
                message_event(json!({"bounce_class": "10"})),
                PERM,
                "sparkpost:10",
            ),
            (
                message_event(json!({"bounce_class": "30"})),
                PERM,
                "sparkpost:30",
            ),
            (
                message_event(json!({"bounce_class": "90"})),
                PERM,
                "sparkpost:90",
            ),
            (
                message_event(json!({"bounce_class": "20"})),
                TEMP,
                "sparkpost:20",
            ),
            (
                message_event(json!({"bounce_class": "22"})),
                TEMP,
                "sparkpost:22",
            ),
            (
                message_event(json!({"bounce_class": "24"})),
                TEMP,
                "sparkpost:24",
            ),
            (
                message_event(json!({"bounce_class": "1"})),
                Action::None,
                "sparkpost:1",
            ),
            (
                message_event(json!({"bounce_class": "25"})),
                Action::None,
                "sparkpost:25",
            ),
            (
                message_event(json!({"bounce_class": "50"})),
                Action::None,
                "sparkpost:50",
            ),
            (
                message_event(json!({"bounce_class": "51"})),
                Action::None,
                "sparkpost:51",
            ),
            (
                message_event(json!({"bounce_class": "52"})),
                Action::None,
                "sparkpost:52",
            ),
            (
                message_event(json!({"bounce_class": "99"})),
                Action::None,
                "unclassified:sparkpost:99",
            ),
            (
                message_event(json!({"bounce_class": null})),
                Action::None,
                "unclassified:sparkpost:none",
            ),
            (
                message_event(json!({"type": "out_of_band", "bounce_class": "10"})),
                PERM,
                "sparkpost:10",
            ),
            (
                message_event(json!({"type": "spam_complaint"})),
                PERM,
                "sparkpost:complaint",
            ),
            (
                unsubscribe_event("list_unsubscribe"),
                PERM,
                "sparkpost:stop",
            ),
            (
                unsubscribe_event("link_unsubscribe"),
                PERM,
                "sparkpost:stop",
            ),
        ];
        assert_decisions::<super::super::Sparkpost>(&cases, event_of);
    }

    #[test]
    fn every_documented_class_is_in_the_table() {
        let table = <super::super::Sparkpost as crate::road::Road>::ABOUT.table();
        for class in [
            1, 10, 20, 21, 22, 23, 24, 25, 26, 30, 40, 50, 51, 52, 53, 54, 60, 70, 80, 90, 100,
        ] {
            assert!(table.lookup(&class.to_string()).is_some(), "{class}");
        }
    }

    #[test]
    fn fields_are_read_as_sparkpost_sends_them() {
        let e = event_of(&message_event(json!({})));
        assert_eq!(
            identity(&e),
            (
                SOURCE,
                Channel::Email,
                "recipient@example.com",
                "92356927693813856",
                1_454_442_600_000
            )
        );
        // raw_rcpt_to when rcpt_to is missing; the time of receipt without a timestamp.
        let mut raw = message_event(json!({}));
        let ev = raw["msys"]["message_event"].as_object_mut().unwrap();
        ev.remove("rcpt_to");
        ev.remove("timestamp");
        let e = event_of(&raw);
        assert_eq!(e.address.as_str(), "recipient@example.com");
        assert_eq!(e.event_time_ms, RECEIVED);
        // A numeric event_id and timestamp are read too.
        let e = event_of(&message_event(
            json!({"event_id": 1234, "timestamp": 1_454_442_601}),
        ));
        assert_eq!(
            (e.event_id.as_str(), e.event_time_ms),
            ("1234", 1_454_442_601_000)
        );
    }

    #[test]
    fn without_its_event_id_an_event_is_keyed_by_its_content() {
        for id in [json!(null), json!(""), json!([])] {
            let raw = message_event(json!({ "event_id": id }));
            let e = event_of(&raw);
            assert_eq!(e.event_id, crate::event::derived_event_id(&raw), "{raw}");
            assert_eq!(event_of(&raw).event_id, e.event_id);
        }
    }

    #[test]
    fn unreadable_entries_say_why() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("bounce"), "not a json object"),
            (json!({"other": {}}), "no msys"),
            (json!({"msys": []}), "msys is not an object"),
            (
                json!({"msys": {"message_event": {"type": "bounce"}, "track_event": {"type": "open"}}}),
                "more than one event",
            ),
            (
                json!({"msys": {"message_event": "bounce"}}),
                "not an object",
            ),
            (
                json!({"msys": {"message_event": {"rcpt_to": "a@example.com"}}}),
                "no type",
            ),
            (
                json!({"msys": {"message_event": {"type": "bounce", "bounce_class": "10"}}}),
                "no rcpt_to",
            ),
            (
                message_event(json!({"rcpt_to": "not an address", "raw_rcpt_to": null})),
                "bounce:",
            ),
            (
                message_event(json!({"timestamp": "yesterday"})),
                "timestamp",
            ),
            (
                message_event(json!({"timestamp": "1454442600000"})),
                "timestamp",
            ),
            (
                message_event(json!({"event_id": "9".repeat(300)})),
                "too long",
            ),
        ];
        assert_refusals(&cases, |raw| normalise_entry(raw, RECEIVED));
    }

    #[test]
    fn a_batch_keeps_the_good_entries_and_reports_the_rest() {
        let body = serde_json::to_vec(&json!([
            message_event(json!({"event_id": "a"})),
            {"msys": {}},
            message_event(json!({"type": "delivery", "event_id": "b"})),
            {"msys": {"message_event": {"type": "bounce"}}},
            unsubscribe_event("link_unsubscribe"),
        ]))
        .unwrap();
        let entries = parse(&body).unwrap();
        let n = normalise(&entries, RECEIVED);
        let ids: Vec<&str> = n.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "92356927693813857"]);
        assert_eq!(n.rejected.len(), 1);
        assert!(n.rejected[0].starts_with("event 3: "), "{:?}", n.rejected);
        assert_eq!(n.ignored.len(), 2);
        assert!(
            n.ignored[0].starts_with("event 1: an empty msys"),
            "{:?}",
            n.ignored
        );
        assert!(n.ignored[1].starts_with("event 2: "), "{:?}", n.ignored);
    }

    /// The batch SparkPost posts when a webhook is created or validated
    /// (developers.sparkpost.com/api/webhooks, "Validate a Webhook").
    #[test]
    fn the_test_batch_is_accepted_and_skipped() {
        let entries = parse(b"[\n  {\n    \"msys\": {}\n  }\n]\n").unwrap();
        let n = normalise(&entries, RECEIVED);
        assert!(n.events.is_empty() && n.rejected.is_empty());
        assert_eq!(n.ignored.len(), 1);
    }

    #[test]
    fn bodies_that_are_not_batches_are_refused() {
        for body in [&b"payload"[..], b"{}", b"", b"[1,", b"{\"msys\":{}}"] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::BadRequest);
            assert!(err.message.contains("JSON array"), "{}", err.message);
        }
        assert_eq!(parse(b"[]").unwrap(), Vec::<Value>::new());
    }
}
