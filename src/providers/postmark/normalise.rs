//! Postmark provider: parse and normalise its webhooks (one JSON event per request).
//! Postmark signs nothing; the request is authenticated by HTTP basic auth
//! ([`super::verify`]) before it reaches this module, which never
//! touches Redis.
//!
//! What becomes an event (all on the email channel):
//!
//! | `RecordType` | event |
//! |---|---|
//! | `Bounce` with `Inactive: true` | delivery status, code `Inactive` (Postmark deactivated the address: permanent, whatever the `Type`) |
//! | `Bounce` otherwise | delivery status, code = `Type` (`HardBounce`, `SoftBounce`, ...), looked up in `providers/postmark.toml` |
//! | `SpamComplaint` | complaint |
//! | `SubscriptionChange`, `SuppressSending: true`, reason `ManualSuppression` by the recipient (or no `Origin`) | unsubscribe |
//! | `SubscriptionChange`, `SuppressSending: true`, reason `ManualSuppression` by `Customer` or `Admin` | delivery status, code `ManualSuppression` |
//! | `SubscriptionChange`, `SuppressSending: true`, reason `HardBounce` | delivery status, code `HardBounce` |
//! | `SubscriptionChange`, `SuppressSending: true`, reason `SpamComplaint` | complaint |
//! | `SubscriptionChange`, `SuppressSending: false`, `Origin: Recipient` | resubscribe |
//! | `SubscriptionChange`, `SuppressSending: false`, any other origin | nothing (see below) |
//! | `Delivery`, `Open`, `Click`, inbound (no `RecordType`), others | nothing |
//! | any record above without its address (`Email`, `Recipient`) | nothing (ignored: no address to apply a change to) |
//!
//! Bounces are classified by `Type`, never by `TypeCode`: Postmark's own example of a
//! spam complaint carries `TypeCode: 512`, which the bounce-type table calls
//! `SpamNotification`.
//!
//! A reactivation (`SuppressSending: false`) made by the Postmark account holder
//! (`Origin: Customer` or `Admin`) is not the contact's consent, and SPEC section 6
//! lifts a permanent record only with the contact's opt-in or an operator's consent
//! evidence: it is reported as ignored and the operator lifts the record through the
//! API with evidence.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind};

/// What one Postmark request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The event, if the record is one that matters (at most one: Postmark posts one
    /// record per request).
    pub events: Vec<ChannelEvent>,
    /// Why the record leaves no event because it carries no DND signal (a delivery, an
    /// open, a bounce that names no address, a reactivation by the account holder);
    /// for the answer, the `events_ignored` metric and a debug line.
    pub ignored: Option<String>,
    /// Why a record that would change DND cannot be read (an address that is not one,
    /// no id to deduplicate on); for the answer and a warn line.
    pub rejected: Option<String>,
}

impl Normalised {
    fn ignored(why: impl Into<String>) -> Normalised {
        Normalised {
            ignored: Some(why.into()),
            ..Normalised::default()
        }
    }

    fn one(event: ChannelEvent) -> Normalised {
        Normalised {
            events: vec![event],
            ..Normalised::default()
        }
    }
}

/// Why a record leaves no event: it names no address (nothing to apply a change to),
/// or a field it needs cannot be read. Either way Postmark would send it the same on
/// every retry, so the request is accepted (200) and the record counted, not refused.
enum Unusable {
    NoAddress(String),
    Unreadable(String),
}

impl From<Unusable> for Normalised {
    fn from(u: Unusable) -> Normalised {
        match u {
            Unusable::NoAddress(why) => Normalised::ignored(why),
            Unusable::Unreadable(why) => Normalised {
                rejected: Some(why),
                ..Normalised::default()
            },
        }
    }
}

/// Normalise a Postmark webhook body received at `received_ms` (milliseconds since the
/// Unix epoch; the event time when the record carries none that we can read).
///
/// 400 only for a body that cannot be read as a Postmark record at all: not JSON, not a
/// JSON object, or a `RecordType` that is not a string. A record we act on that names
/// no address (`Email`, `Recipient`) carries nothing to apply: it is
/// [`Normalised::ignored`]. One whose address is not an email address, or that lacks
/// its id (`ID` of a bounce, `MessageID` of a complaint) or `SuppressSending`, is
/// [`Normalised::rejected`]. Both are answered 200: Postmark would send them the same
/// way on every retry.
///
/// Event ids, the dedup keys: the bounce `ID`; `MessageID:SpamComplaint` for a
/// complaint; for a subscription change
/// `SubscriptionChange:MESSAGE_ID:ADDRESS:CHANGED_AT:suppress|reactivate`, because a
/// manual suppression has no `MessageID` and one message can be unsubscribed from and
/// later resubscribed to.
pub fn normalise(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Postmark webhook body is not JSON: {e}")))?;
    let Value::Object(record) = value else {
        return Err(Error::bad_request(
            "Postmark webhook body is not a JSON object",
        ));
    };
    let record_type = match record.get("RecordType") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Null) | None => {
            return Ok(Normalised::ignored(
                "a record without RecordType (an inbound message): nothing to record",
            ));
        }
        Some(_) => return Err(Error::bad_request("Postmark RecordType is not a string")),
    };
    let read = match record_type {
        "Bounce" => bounce(&record, received_ms).map(Normalised::one),
        "SpamComplaint" => complaint(&record, received_ms).map(Normalised::one),
        "SubscriptionChange" => subscription_change(&record, received_ms),
        other => Ok(Normalised::ignored(format!(
            "RecordType {}: nothing to record",
            quoted(other)
        ))),
    };
    Ok(read.unwrap_or_else(Normalised::from))
}

fn bounce(record: &Map<String, Value>, received_ms: i64) -> Result<ChannelEvent, Unusable> {
    let address = email(record, "Bounce", "Email")?;
    // Without its ID a bounce still carries its DND: keyed by its content.
    let id = id_text(record, "ID")
        .unwrap_or_else(|| crate::event::derived_event_id(&Value::Object(record.clone())));
    let inactive = record.get("Inactive").and_then(Value::as_bool) == Some(true);
    let kind_text = text(record, "Type");
    let code = if inactive {
        Some("Inactive".to_string())
    } else {
        kind_text.map(str::to_string)
    };
    Ok(event(
        id,
        time(record, &["BouncedAt", "ReceivedAt"], received_ms),
        address,
        EventKind::DeliveryStatus {
            status: "bounce".to_string(),
            error_code: code,
        },
    ))
}

fn complaint(record: &Map<String, Value>, received_ms: i64) -> Result<ChannelEvent, Unusable> {
    let address = email(record, "SpamComplaint", "Email")?;
    // Without its MessageID a complaint still carries its DND: keyed by its content.
    let id = match text(record, "MessageID") {
        Some(message_id) => format!("{message_id}:SpamComplaint"),
        None => crate::event::derived_event_id(&Value::Object(record.clone())),
    };
    Ok(event(
        id,
        time(record, &["BouncedAt", "ReceivedAt"], received_ms),
        address,
        EventKind::Complaint,
    ))
}

fn subscription_change(
    record: &Map<String, Value>,
    received_ms: i64,
) -> Result<Normalised, Unusable> {
    let address = email(record, "SubscriptionChange", "Recipient")?;
    let suppress = record
        .get("SuppressSending")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            Unusable::Unreadable(
                "Postmark SubscriptionChange has no boolean SuppressSending".into(),
            )
        })?;
    let origin = text(record, "Origin");
    let reason = text(record, "SuppressionReason");
    let by_recipient = origin.is_none_or(|o| o.eq_ignore_ascii_case("Recipient"));
    let kind = if suppress {
        match reason {
            Some("HardBounce") => EventKind::DeliveryStatus {
                status: "suppressed".to_string(),
                error_code: Some("HardBounce".to_string()),
            },
            Some("SpamComplaint") => EventKind::Complaint,
            Some("ManualSuppression") | None if by_recipient => EventKind::Preference {
                marketing_only: false,
                opt_out: true,
            },
            // The account holder suppressed the address, or a reason we do not know:
            // the table decides (ManualSuppression: email only, permanent).
            other => EventKind::DeliveryStatus {
                status: "suppressed".to_string(),
                error_code: Some(other.unwrap_or("ManualSuppression").to_string()),
            },
        }
    } else if origin.is_some_and(|o| o.eq_ignore_ascii_case("Recipient")) {
        EventKind::Preference {
            marketing_only: false,
            opt_out: false,
        }
    } else {
        return Ok(Normalised::ignored(format!(
            "SubscriptionChange: {} reactivated by {}, not by the recipient: lift the DND through the operator API with consent evidence",
            address.as_str(),
            quoted(origin.unwrap_or("an unknown origin"))
        )));
    };
    let changed_at = text(record, "ChangedAt").unwrap_or("");
    let id = format!(
        "SubscriptionChange:{}:{}:{}:{}",
        text(record, "MessageID").unwrap_or("-"),
        address.as_str(),
        changed_at,
        if suppress { "suppress" } else { "reactivate" }
    );
    Ok(Normalised::one(event(
        id,
        time(record, &["ChangedAt"], received_ms),
        address,
        kind,
    )))
}

fn event(event_id: String, event_time_ms: i64, address: Address, kind: EventKind) -> ChannelEvent {
    ChannelEvent::email(SOURCE, event_id, event_time_ms, address, kind)
}

/// A non-empty string field.
fn text<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    record
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id that Postmark sends as a number (bounce `ID`) or, defensively, a string.
fn id_text(record: &Map<String, Value>, name: &str) -> Option<String> {
    match record.get(name)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The record's address in `field`: absent, the record names nobody (nothing to
/// apply); present but not an email address, unreadable.
fn email(record: &Map<String, Value>, kind: &str, field: &str) -> Result<Address, Unusable> {
    let raw = text(record, field).ok_or_else(|| {
        Unusable::NoAddress(format!(
            "Postmark {kind} has no {field}: no address to record anything for"
        ))
    })?;
    Address::parse(Channel::Email, raw)
        .map_err(|e| Unusable::Unreadable(format!("Postmark {field}: {e}")))
}

/// The first readable time among `fields`, else the time of receipt.
fn time(record: &Map<String, Value>, fields: &[&str], received_ms: i64) -> i64 {
    fields
        .iter()
        .find_map(|f| text(record, f).and_then(crate::time::parse_rfc3339_ms))
        .unwrap_or(received_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::error::Kind;
    use crate::providers::testkit::{self, PERM, TEMP};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn bounce_body(kind: &str, inactive: bool) -> Value {
        json!({
            "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807u64,
            "Type": kind, "TypeCode": 1, "Name": "Hard bounce", "Tag": "Test",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Metadata": {"a_key": "a_value"}, "ServerID": 23, "Description": "d",
            "Details": "Test bounce details", "Email": " John@Example.com ",
            "From": "sender@example.com", "BouncedAt": "2019-11-05T16:33:54.9070259Z",
            "DumpAvailable": true, "Inactive": inactive, "CanActivate": true,
            "Subject": "Test subject", "Content": "c"
        })
    }

    fn change(suppress: bool, reason: Option<&str>, origin: Option<&str>) -> Value {
        let mut v = json!({
            "RecordType": "SubscriptionChange", "MessageID": "a4909a96-73d7-4c49-b148-a54522d3f7ac",
            "ServerID": 23, "MessageStream": "outbound", "ChangedAt": "2022-06-05T17:17:32Z",
            "Recipient": "john@example.com", "SuppressSending": suppress,
            "SuppressionReason": reason, "Tag": "welcome-email", "Metadata": {"example": "value"}
        });
        if let Some(o) = origin {
            v["Origin"] = json!(o);
        }
        v
    }

    fn run(body: &Value) -> Normalised {
        normalise(body.to_string().as_bytes(), NOW).unwrap()
    }

    /// What the event means, classified with the shipped table: (action, reason).
    fn decide(body: &Value) -> Option<(Action, String)> {
        let n = run(body);
        Some(testkit::decide::<super::super::Postmark>(n.events.first()?))
    }

    #[test]
    fn bounce_types_table() {
        // (Type, Inactive, expected action, reason)
        let cases: &[(&str, bool, Action, &str)] = &[
            ("HardBounce", false, PERM, "postmark:HardBounce"),
            ("BadEmailAddress", false, PERM, "postmark:BadEmailAddress"),
            (
                "ManuallyDeactivated",
                false,
                PERM,
                "postmark:ManuallyDeactivated",
            ),
            ("SpamComplaint", false, PERM, "postmark:SpamComplaint"),
            ("Unsubscribe", false, PERM, "postmark:Unsubscribe"),
            ("SoftBounce", false, TEMP, "postmark:SoftBounce"),
            ("Transient", false, TEMP, "postmark:Transient"),
            ("DnsError", false, TEMP, "postmark:DnsError"),
            (
                "AutoResponder",
                false,
                Action::None,
                "postmark:AutoResponder",
            ),
            (
                "SpamNotification",
                false,
                Action::None,
                "postmark:SpamNotification",
            ),
            ("Blocked", false, Action::None, "postmark:Blocked"),
            ("DMARCPolicy", false, Action::None, "postmark:DMARCPolicy"),
            ("Subscribe", false, Action::None, "postmark:Subscribe"),
            (
                "SomethingNew",
                false,
                Action::None,
                "unclassified:postmark:SomethingNew",
            ),
            // Postmark deactivated the address: permanent whatever the type says.
            ("HardBounce", true, PERM, "postmark:Inactive"),
            ("SoftBounce", true, PERM, "postmark:Inactive"),
            ("Blocked", true, PERM, "postmark:Inactive"),
        ];
        for (kind, inactive, action, reason) in cases {
            assert_eq!(
                decide(&bounce_body(kind, *inactive)),
                Some((*action, reason.to_string())),
                "{kind} inactive={inactive}"
            );
        }
    }

    #[test]
    fn bounce_event_fields() {
        let n = run(&bounce_body("HardBounce", false));
        assert_eq!(n.ignored, None);
        let e = &n.events[0];
        assert_eq!(e.event_id, "4323372036854775807");
        assert_eq!(e.channel, Channel::Email);
        assert_eq!(e.address.as_str(), "john@example.com");
        assert_eq!(e.provider, SOURCE);
        assert_eq!(e.event_time_ms, 1_572_971_634_907);
        // Without BouncedAt: the time of receipt.
        let mut body = bounce_body("HardBounce", false);
        body.as_object_mut().unwrap().remove("BouncedAt");
        assert_eq!(run(&body).events[0].event_time_ms, NOW);
    }

    #[test]
    fn type_code_is_never_used() {
        // Postmark's example complaint: TypeCode 512 (SpamNotification in the table).
        let body = json!({
            "RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42,
            "Type": "SpamComplaint", "TypeCode": 512, "MessageID": "00000000-0000-0000-0000-000000000000",
            "Email": "john@example.com", "BouncedAt": "2019-11-05T16:33:54.9070259Z",
            "Inactive": true, "CanActivate": false
        });
        let n = run(&body);
        assert_eq!(n.events[0].kind, EventKind::Complaint);
        assert_eq!(
            n.events[0].event_id,
            "00000000-0000-0000-0000-000000000000:SpamComplaint"
        );
        assert_eq!(decide(&body), Some((PERM, "postmark:complaint".into())));
        // A bounce whose TypeCode says hard but whose Type says soft is soft.
        let mut soft = bounce_body("SoftBounce", false);
        soft["TypeCode"] = json!(1);
        assert_eq!(decide(&soft).unwrap().0, TEMP);
    }

    #[test]
    fn subscription_changes_table() {
        let unsub = EventKind::Preference {
            marketing_only: false,
            opt_out: true,
        };
        let resub = EventKind::Preference {
            marketing_only: false,
            opt_out: false,
        };
        let status = |code: &str| EventKind::DeliveryStatus {
            status: "suppressed".into(),
            error_code: Some(code.into()),
        };
        // (SuppressSending, SuppressionReason, Origin, expected kind or None = ignored)
        type Case = (
            bool,
            Option<&'static str>,
            Option<&'static str>,
            Option<EventKind>,
        );
        let cases: Vec<Case> = vec![
            (
                true,
                Some("ManualSuppression"),
                Some("Recipient"),
                Some(unsub.clone()),
            ),
            (true, Some("ManualSuppression"), None, Some(unsub.clone())),
            (true, None, Some("Recipient"), Some(unsub.clone())),
            (
                true,
                Some("ManualSuppression"),
                Some("Customer"),
                Some(status("ManualSuppression")),
            ),
            (
                true,
                Some("ManualSuppression"),
                Some("Admin"),
                Some(status("ManualSuppression")),
            ),
            (
                true,
                Some("HardBounce"),
                Some("Recipient"),
                Some(status("HardBounce")),
            ),
            (
                true,
                Some("SpamComplaint"),
                Some("Recipient"),
                Some(EventKind::Complaint),
            ),
            (false, None, Some("Recipient"), Some(resub.clone())),
            (false, None, Some("Customer"), None),
            (false, None, Some("Admin"), None),
            (false, None, None, None),
        ];
        for (suppress, reason, origin, want) in cases {
            let n = run(&change(suppress, reason, origin));
            let got = n.events.first().map(|e| e.kind.clone());
            assert_eq!(got, want, "{suppress} {reason:?} {origin:?}");
            assert_eq!(n.ignored.is_some(), want.is_none());
        }
        assert_eq!(
            decide(&change(true, Some("ManualSuppression"), Some("Customer"))),
            Some((PERM, "postmark:ManualSuppression".into()))
        );
    }

    #[test]
    fn subscription_change_ids_and_time() {
        let stop = run(&change(true, Some("ManualSuppression"), Some("Recipient")));
        let start = run(&change(false, None, Some("Recipient")));
        let (stop, start) = (&stop.events[0], &start.events[0]);
        assert_eq!(
            stop.event_id,
            "SubscriptionChange:a4909a96-73d7-4c49-b148-a54522d3f7ac:john@example.com:2022-06-05T17:17:32Z:suppress"
        );
        assert_ne!(stop.event_id, start.event_id);
        assert_eq!(stop.event_time_ms, 1_654_449_452_000);
        // A manual suppression has MessageID null.
        let mut manual = change(true, Some("ManualSuppression"), Some("Customer"));
        manual["MessageID"] = Value::Null;
        assert!(
            run(&manual).events[0]
                .event_id
                .starts_with("SubscriptionChange:-:john@")
        );
    }

    /// The vectors' body (a SubscriptionChange from the recipient) is an unsubscribe.
    #[test]
    fn vector_body_is_an_unsubscribe() {
        let text = include_str!("../../../tests/providers/postmark/vectors.json");
        let vectors: Value = serde_json::from_str(text).unwrap();
        for v in vectors.as_array().unwrap() {
            let n = normalise(v["body"].as_str().unwrap().as_bytes(), NOW).unwrap();
            assert_eq!(
                n.events[0].kind,
                EventKind::Preference {
                    marketing_only: false,
                    opt_out: true
                }
            );
        }
    }

    #[test]
    fn ignored_records() {
        for body in [
            json!({"RecordType": "Delivery", "Recipient": "john@example.com", "MessageID": "x"}),
            json!({"RecordType": "Open", "Recipient": "john@example.com"}),
            json!({"RecordType": "Click", "Recipient": "john@example.com"}),
            json!({"From": "john@example.com", "TextBody": "STOP"}),
        ] {
            let n = run(&body);
            assert!(n.events.is_empty() && n.ignored.is_some(), "{body}");
        }
    }

    #[test]
    fn unreadable_bodies_are_400() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{not json".to_vec(), "not JSON"),
            (b"[]".to_vec(), "not a JSON object"),
            (
                br#"{"RecordType": 3}"#.to_vec(),
                "RecordType is not a string",
            ),
        ];
        for (body, want) in cases {
            let err = normalise(&body, NOW).unwrap_err();
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(err.message.contains(want), "{}: {}", want, err.message);
        }
    }

    /// A record that lacks what a DND change needs is accepted and reported, never
    /// refused: Postmark would send it the same way on every retry. No address: ignored
    /// (nothing to apply); anything else it needs unreadable: rejected.
    #[test]
    fn unusable_records_are_reported_not_refused() {
        let without = |mut body: Value, field: &str| {
            body.as_object_mut().unwrap().remove(field);
            body
        };
        let mut bad_email = bounce_body("HardBounce", false);
        bad_email["Email"] = json!("not-an-address");
        let mut no_id = bounce_body("HardBounce", false);
        no_id["ID"] = Value::Null;
        // (record, ignored, rejected: the fragment expected)
        let cases: Vec<(Value, Option<&str>, Option<&str>)> = vec![
            (
                without(bounce_body("Unsubscribe", false), "Email"),
                Some("Postmark Bounce has no Email"),
                None,
            ),
            (
                without(bounce_body("HardBounce", true), "Email"),
                Some("Postmark Bounce has no Email"),
                None,
            ),
            (
                without(change(true, None, None), "Recipient"),
                Some("Postmark SubscriptionChange has no Recipient"),
                None,
            ),
            (
                json!({"RecordType": "SpamComplaint", "MessageID": "m"}),
                Some("Postmark SpamComplaint has no Email"),
                None,
            ),
            (bad_email, None, Some("Postmark Email")),
            (
                without(change(true, None, None), "SuppressSending"),
                None,
                Some("SuppressSending"),
            ),
        ];
        for (body, ignored, rejected) in cases {
            let n = run(&body);
            assert!(n.events.is_empty(), "{body}");
            let has = |got: &Option<String>, want: Option<&str>| match (got, want) {
                (Some(got), Some(want)) => got.contains(want),
                (None, None) => true,
                _ => false,
            };
            assert!(has(&n.ignored, ignored), "{body}: {n:?}");
            assert!(has(&n.rejected, rejected), "{body}: {n:?}");
        }
        // Without its ID (a bounce) or MessageID (a complaint) a record still carries
        // its DND, keyed by its content.
        for body in [
            no_id,
            json!({"RecordType": "SpamComplaint", "Email": "a@example.com"}),
        ] {
            let n = run(&body);
            assert_eq!(n.events.len(), 1, "{body}: {n:?}");
            assert_eq!(
                n.events[0].event_id,
                crate::event::derived_event_id(&body),
                "{body}"
            );
        }
    }
}
