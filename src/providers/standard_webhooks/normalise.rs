//! Standard Webhooks senders (Resend, and other senders that deliver through Svix):
//! parse and normalise their JSON events. Verification is
//! [`super::verify`]; this module never touches Redis.
//!
//! Every event is `{"type": ..., "created_at": ..., "data": {...}}`. What becomes an
//! event (all on the email channel):
//!
//! | `type` | event |
//! |---|---|
//! | `email.bounced` | per recipient in `data.to`, a delivery status with code `data.bounce.type` (`Permanent`, `Transient`, `Undetermined`), or `bounced` when the payload has no type; looked up in `providers/standard-webhooks.toml` |
//! | `email.complained` | per recipient in `data.to`, a complaint |
//! | `email.suppressed` | per recipient in `data.to`, a delivery status with code `suppressed`: Resend refused to send because the address is on the account's suppression list (after a hard bounce or a complaint), whatever `data.suppressed.type` says; permanent in `providers/standard-webhooks.toml` |
//! | `contact.updated` with `data.unsubscribed: true` | an unsubscribe for `data.email` |
//! | anything else | nothing |
//!
//! `contact.updated` with `unsubscribed: false` is not read as a resubscribe: Resend sends
//! `contact.updated` for any change to a contact, so `false` does not say the contact
//! asked to receive email again.
//!
//! The event id, the dedup key, is the message id from the `webhook-id` header (stable
//! across a message's retries). An event that names several recipients gives one event
//! per recipient, with ids `MESSAGE_ID:ADDRESS`, so that recipients in the same Redis
//! shard are not mistaken for a redelivery of each other.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind};

/// Most recipients read from one event; a real email names far fewer, and the bound
/// keeps a hostile (but signed) payload from fanning out without limit.
pub const MAX_RECIPIENTS: usize = 1000;

/// What one request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events, one per recipient, in the payload's order.
    pub events: Vec<ChannelEvent>,
    /// Recipients that could not be read, one line each (`recipient 2: ...`). The
    /// others are still applied: the sender would send the same payload on retry, so
    /// refusing it all would lose the good recipients with the bad.
    pub rejected: Vec<String>,
    /// Why the event leaves no event at all, when it does not (a delivery, an open, a
    /// contact change that is not an unsubscribe); for the answer and the log.
    pub ignored: Option<String>,
}

/// Normalise a verified Standard Webhooks body. `message_id` is the verified
/// `webhook-id` (or `svix-id`) header; `received_ms` the time of receipt in
/// milliseconds since the Unix epoch, the event time when `created_at` cannot be read.
///
/// 400 only for a body that cannot be read as an event at all: not a JSON object, no
/// string `type`, or an event we act on whose `data` is not an object. An event that
/// names no recipient (`data.to`, `data.email`) carries nothing to apply: it is
/// [`Normalised::ignored`], and a recipient that is not an email address is
/// [`Normalised::rejected`]; both are answered 200, since the sender would send them
/// the same way on every retry.
pub fn normalise(message_id: &str, body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("webhook body is not JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(Error::bad_request("webhook body is not a JSON object"));
    };
    let kind = match top.get("type") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(Error::bad_request("webhook body has no string \"type\"")),
    };
    let acts = matches!(
        kind,
        "email.bounced" | "email.complained" | "email.suppressed" | "contact.updated"
    );
    if !acts {
        return Ok(ignored(format!(
            "event type {}: nothing to record",
            quoted(kind)
        )));
    }
    let data = match top.get("data") {
        Some(Value::Object(data)) => data,
        _ => {
            return Err(Error::bad_request(format!(
                "{kind} event has no \"data\" object"
            )));
        }
    };
    let event_ms = ["created_at"]
        .iter()
        .find_map(|f| top.get(*f).or_else(|| data.get(*f)))
        .and_then(Value::as_str)
        .and_then(crate::time::parse_rfc3339_ms)
        .unwrap_or(received_ms);
    match kind {
        "email.bounced" => {
            let code = data
                .get("bounce")
                .and_then(|b| b.get("type"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or("bounced");
            let status = EventKind::DeliveryStatus {
                status: "bounced".to_string(),
                error_code: Some(code.to_string()),
            };
            per_recipient(message_id, data, event_ms, status)
        }
        "email.complained" => per_recipient(message_id, data, event_ms, EventKind::Complaint),
        "email.suppressed" => {
            let status = EventKind::DeliveryStatus {
                status: "suppressed".to_string(),
                error_code: Some("suppressed".to_string()),
            };
            per_recipient(message_id, data, event_ms, status)
        }
        _ => {
            if data.get("unsubscribed").and_then(Value::as_bool) != Some(true) {
                return Ok(ignored(
                    "contact.updated without unsubscribed: true: nothing to record",
                ));
            }
            let Some(raw) = data.get("email").and_then(Value::as_str) else {
                return Ok(ignored(
                    "contact.updated event has no data.email: no address to record anything for",
                ));
            };
            let address = match Address::parse(Channel::Email, raw) {
                Ok(address) => address,
                Err(e) => {
                    return Ok(Normalised {
                        rejected: vec![format!("contact.updated data.email: {e}")],
                        ..Normalised::default()
                    });
                }
            };
            let kind = EventKind::Preference {
                marketing_only: false,
                opt_out: true,
            };
            Ok(Normalised {
                events: vec![event(message_id.to_string(), event_ms, address, kind)],
                ..Normalised::default()
            })
        }
    }
}

/// One event of `kind` per recipient of `data.to` (an array of addresses, or one
/// address as a string).
fn per_recipient(
    message_id: &str,
    data: &Map<String, Value>,
    event_ms: i64,
    kind: EventKind,
) -> Result<Normalised, Error> {
    let recipients: Vec<&Value> = match data.get("to") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::String(_)) => vec![one],
        _ => Vec::new(),
    };
    if recipients.is_empty() {
        return Ok(ignored(
            "event names no recipient in data.to: no address to record anything for",
        ));
    }
    let mut out = Normalised::default();
    out.events = crate::event::recipients(
        recipients,
        MAX_RECIPIENTS,
        message_id,
        &mut out.rejected,
        |raw| {
            let text = raw.as_str().ok_or_else(|| "not a string".to_string())?;
            let address = Address::parse(Channel::Email, text).map_err(|e| e.to_string())?;
            Ok((address, ()))
        },
    )
    .into_iter()
    .map(|(id, address, ())| event(id, event_ms, address, kind.clone()))
    .collect();
    Ok(out)
}

fn ignored(why: impl Into<String>) -> Normalised {
    Normalised {
        ignored: Some(why.into()),
        ..Normalised::default()
    }
}

fn event(event_id: String, event_time_ms: i64, address: Address, kind: EventKind) -> ChannelEvent {
    ChannelEvent::email(SOURCE, event_id, event_time_ms, address, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::error::Kind;
    use crate::providers::testkit::{self, PERM, TEMP};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;
    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

    fn email_event(kind: &str, to: Value, bounce: Option<Value>) -> Value {
        let mut v = json!({
            "type": kind, "created_at": "2024-11-22T23:41:12.126Z",
            "data": {
                "created_at": "2024-11-22T23:41:11.894719+00:00",
                "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
                "from": "Acme <onboarding@resend.dev>", "to": to,
                "subject": "Sending this example"
            }
        });
        if let Some(b) = bounce {
            v["data"]["bounce"] = b;
        }
        v
    }

    fn run(body: &Value) -> Normalised {
        normalise(ID, body.to_string().as_bytes(), NOW).unwrap()
    }

    fn decide(body: &Value) -> Vec<(String, Action, String)> {
        testkit::decide_each::<super::super::StandardWebhooks>(&run(body).events)
    }

    #[test]
    fn the_resend_vector_is_a_permanent_bounce() {
        let text = include_str!("../../../tests/providers/standard_webhooks/vectors.json");
        let vectors: Value = serde_json::from_str(text).unwrap();
        let v = vectors
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["provider"] == "resend" && v["expected_valid"] == true)
            .unwrap();
        let body = v["body"].as_str().unwrap();
        let n = normalise(ID, body.as_bytes(), NOW).unwrap();
        assert_eq!(n.events.len(), 1);
        let e = &n.events[0];
        assert_eq!(e.event_id, ID);
        assert_eq!(e.address.as_str(), "delivered@resend.dev");
        assert_eq!(e.event_time_ms, 1_732_318_872_126);
        assert_eq!(e.provider, SOURCE);
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            decide(&body),
            vec![(
                "delivered@resend.dev".into(),
                PERM,
                "standard-webhooks:Permanent".into()
            )]
        );
    }

    #[test]
    fn bounce_types_table() {
        // (data.bounce, expected action, reason)
        let cases: Vec<(Option<Value>, Action, &str)> = vec![
            (
                Some(json!({"type": "Permanent", "subType": "General", "message": "m"})),
                PERM,
                "standard-webhooks:Permanent",
            ),
            (
                Some(json!({"type": "Permanent", "subType": "Suppressed"})),
                PERM,
                "standard-webhooks:Permanent",
            ),
            (
                Some(json!({"type": "Transient", "subType": "MailboxFull"})),
                TEMP,
                "standard-webhooks:Transient",
            ),
            (
                Some(json!({"type": "Undetermined"})),
                Action::None,
                "standard-webhooks:Undetermined",
            ),
            (
                Some(json!({"type": "Weird"})),
                Action::None,
                "unclassified:standard-webhooks:Weird",
            ),
            // Older payloads: only a message.
            (
                Some(json!({"message": "550 no such user"})),
                PERM,
                "standard-webhooks:bounced",
            ),
            (None, PERM, "standard-webhooks:bounced"),
        ];
        for (bounce, action, reason) in cases {
            let body = email_event("email.bounced", json!(["a@example.com"]), bounce.clone());
            assert_eq!(
                decide(&body),
                vec![("a@example.com".into(), action, reason.into())],
                "{bounce:?}"
            );
        }
    }

    #[test]
    fn one_event_per_recipient() {
        let body = email_event(
            "email.complained",
            json!(["A@Example.com", "b@example.com", "a@example.com", "nope", 7]),
            None,
        );
        let n = run(&body);
        let got: Vec<(&str, &str)> = n
            .events
            .iter()
            .map(|e| (e.event_id.as_str(), e.address.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:a@example.com",
                    "a@example.com"
                ),
                (
                    "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W:b@example.com",
                    "b@example.com"
                ),
            ]
        );
        assert!(n.events.iter().all(|e| e.kind == EventKind::Complaint));
        assert_eq!(n.rejected.len(), 2, "{:?}", n.rejected);
        assert!(n.rejected[0].starts_with("recipient 3:"));
        assert!(n.rejected[1].starts_with("recipient 4:"));
        // A single string recipient.
        let n = run(&email_event(
            "email.complained",
            json!("c@example.com"),
            None,
        ));
        assert_eq!(n.events[0].event_id, ID);
        assert_eq!(
            decide(&email_event(
                "email.complained",
                json!(["c@example.com"]),
                None
            )),
            vec![(
                "c@example.com".into(),
                PERM,
                "standard-webhooks:complaint".into()
            )]
        );
    }

    #[test]
    fn contact_updated() {
        let contact = |unsubscribed: Value| {
            json!({"type": "contact.updated", "created_at": "2025-10-10T15:11:94.110Z", "data": {
                "id": "e169aa45-1ecf-4183-9955-b1499d5701d3",
                "audience_id": "78261eea-8f8b-4381-83c6-79fa7120f1cf", "segment_ids": [],
                "created_at": "2025-10-10T15:11:94.110Z", "updated_at": "2025-10-11T15:11:94.110Z",
                "email": "Steve.Wozniak@gmail.com", "first_name": "Steve", "last_name": "Wozniak",
                "unsubscribed": unsubscribed
            }})
        };
        let n = run(&contact(json!(true)));
        assert_eq!(n.events.len(), 1);
        let e = &n.events[0];
        assert_eq!(e.address.as_str(), "steve.wozniak@gmail.com");
        assert_eq!(
            e.kind,
            EventKind::Preference {
                marketing_only: false,
                opt_out: true
            }
        );
        // An unreadable time (second 94) falls back to the time of receipt.
        assert_eq!(e.event_time_ms, NOW);
        for not_unsub in [json!(false), json!(null), json!("true")] {
            let n = run(&contact(not_unsub.clone()));
            assert!(n.events.is_empty() && n.ignored.is_some(), "{not_unsub}");
        }
    }

    /// Resend's documented `email.suppressed`: a permanent email DND per recipient,
    /// whatever the suppression's type.
    #[test]
    fn suppressed_is_permanent() {
        for kind in ["OnAccountSuppressionList", "SomethingNew"] {
            let mut body = email_event("email.suppressed", json!(["s@example.com"]), None);
            body["data"]["suppressed"] = json!({"message": "m", "type": kind});
            assert_eq!(
                decide(&body),
                vec![(
                    "s@example.com".into(),
                    PERM,
                    "standard-webhooks:suppressed".into()
                )],
                "{kind}"
            );
        }
    }

    #[test]
    fn ignored_types() {
        for kind in [
            "email.sent",
            "email.delivered",
            "email.delivery_delayed",
            "email.opened",
            "email.failed",
            "contact.created",
            "domain.updated",
        ] {
            let n = run(&email_event(kind, json!(["a@example.com"]), None));
            assert!(n.events.is_empty(), "{kind}");
            assert!(n.ignored.unwrap().contains(kind));
        }
    }

    #[test]
    fn unreadable_bodies_are_400() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"data": {}}"#, "no string \"type\""),
            (br#"{"type": "email.bounced"}"#, "no \"data\" object"),
            (
                br#"{"type": "email.bounced", "data": 12}"#,
                "no \"data\" object",
            ),
        ];
        for (body, want) in cases {
            let err = normalise(ID, body, NOW).unwrap_err();
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(err.message.contains(want), "{want}: {}", err.message);
        }
    }

    /// An event that lacks what a DND change needs is accepted and reported, never
    /// refused: the sender would send it the same way on every retry.
    #[test]
    fn unusable_events_are_reported_not_refused() {
        // (body, ignored, rejected: the fragment expected)
        let cases: &[(&[u8], Option<&str>, Option<&str>)] = &[
            (
                br#"{"type": "email.bounced", "data": {"bounce": {}}}"#,
                Some("names no recipient"),
                None,
            ),
            (
                br#"{"type": "email.complained", "data": {"to": []}}"#,
                Some("names no recipient"),
                None,
            ),
            (
                br#"{"type": "contact.updated", "data": {"unsubscribed": true}}"#,
                Some("no data.email"),
                None,
            ),
            (
                br#"{"type": "contact.updated", "data": {"unsubscribed": true, "email": "x"}}"#,
                None,
                Some("contact.updated data.email"),
            ),
        ];
        for (body, ignored, rejected) in cases {
            let n = normalise(ID, body, NOW).unwrap();
            let text = String::from_utf8_lossy(body);
            assert!(n.events.is_empty(), "{text}");
            match ignored {
                Some(want) => assert!(n.ignored.as_ref().unwrap().contains(want), "{text}"),
                None => assert_eq!(n.ignored, None, "{text}"),
            }
            match rejected {
                Some(want) => assert!(n.rejected[0].contains(want), "{text}: {n:?}"),
                None => assert!(n.rejected.is_empty(), "{text}"),
            }
        }
    }
}
