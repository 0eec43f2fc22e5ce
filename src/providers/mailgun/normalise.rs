//! Mailgun provider: parse and normalise event webhooks. This module never touches
//! Redis and never knows hyper.
//!
//! Mailgun posts one event per request as JSON:
//! `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`. The
//! signature triple sits inside the body, so [`parse`] reads the body before anything
//! is verified; it only takes the JSON apart, and nothing in `event-data` is trusted
//! until [`super::verify::verify_mailgun`] has passed and the gateway has
//! claimed the token.
//!
//! What becomes a [`ChannelEvent`] on [`Channel::Email`], keyed by `event-data.id` (the
//! dedup key; when an event has none, a key derived from its content, see
//! [`crate::event::derived_event_id`]) and timed by `event-data.timestamp` (float Unix seconds):
//!
//! | `event` | becomes |
//! |---|---|
//! | `failed` | reason `suppress-unsubscribe`: unsubscribe; `suppress-complaint`: complaint; otherwise [`EventKind::DeliveryStatus`] with code `<severity>.<reason>` (`permanent.bounce`, `temporary.greylisted`, ...) |
//! | `complained` | [`EventKind::Complaint`] |
//! | `unsubscribed` | [`EventKind::Preference`] opt-out, not marketing-only |
//! | `accepted`, `delivered`, `opened`, `clicked`, `stored`, `rejected`, others | nothing (ignored) |
//!
//! What a code does is `providers/mailgun.toml`'s decision, not this module's.

use serde_json::Value;

use super::SOURCE;
use crate::address::Address;
use crate::error::Error;
use crate::event::{Channel, ChannelEvent, EventKind};

/// The body's `signature` object: what Mailgun signed and the signature. The strings
/// are kept exactly as sent, because the timestamp is signed as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Unix seconds, decimal text.
    pub timestamp: String,
    /// A random one-time token (50 characters from Mailgun).
    pub token: String,
    /// Lowercase hex HMAC-SHA256 of timestamp then token.
    pub signature: String,
}

/// A Mailgun webhook body, taken apart but not yet trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// The signature triple; `Err` says why it cannot be read (the request is then
    /// unsigned, 401).
    pub signed: Result<Signed, String>,
    /// `event-data`, if present.
    pub event_data: Option<Value>,
}

/// Take a body apart. The error is for a body that is not a JSON object at all: it
/// carries no signature, so the gateway refuses it as unsigned (401) rather than as
/// unparseable, which is for bodies that verify.
pub fn parse(body: &[u8]) -> Result<Webhook, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not JSON ({e}), so it carries no Mailgun signature"))?;
    let Value::Object(mut obj) = value else {
        return Err("the body is not a JSON object, so it carries no Mailgun signature".into());
    };
    let signed = match obj.get("signature") {
        None => Err("the body has no signature object: the request is not signed".to_string()),
        Some(Value::Object(sig)) => {
            let field = |name: &str| match sig.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                // Some integrations send the timestamp as a number; its decimal text
                // is what Mailgun signed.
                Some(Value::Number(n)) if name == "timestamp" => Ok(n.to_string()),
                _ => Err(format!("signature.{name} is missing or not a string")),
            };
            (|| {
                Ok(Signed {
                    timestamp: field("timestamp")?,
                    token: field("token")?,
                    signature: field("signature")?,
                })
            })()
        }
        Some(_) => Err("signature is not an object".to_string()),
    };
    Ok(Webhook {
        signed,
        event_data: obj.remove("event-data"),
    })
}

/// The signed timestamp in Unix seconds, for the age check; `None` when it is not a
/// plain decimal number.
pub fn timestamp_seconds(signed: &Signed) -> Option<i64> {
    let t = signed.timestamp.as_str();
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Normalise a verified `event-data`: `Ok(None)` for an event that says nothing about
/// DND, `Err` with a one-line reason for one that cannot be read. `received_ms` stands
/// in for an event without a timestamp.
pub fn normalise(event_data: &Value, received_ms: i64) -> Result<Option<ChannelEvent>, String> {
    let obj = event_data
        .as_object()
        .ok_or("event-data is not a JSON object")?;
    let text = |field: &str| obj.get(field).and_then(Value::as_str).map(str::trim);
    let name = text("event").ok_or("event-data has no event name")?;
    let kind = match name {
        "failed" => {
            let reason = text("reason").unwrap_or_default();
            match reason {
                "suppress-unsubscribe" => EventKind::Preference {
                    marketing_only: false,
                    opt_out: true,
                },
                "suppress-complaint" => EventKind::Complaint,
                _ => {
                    let severity = text("severity")
                        .filter(|s| !s.is_empty())
                        .ok_or("a failed event has no severity")?;
                    let mut code = crate::classify::codes::code_word(severity);
                    if !reason.is_empty() {
                        code.push('.');
                        code.push_str(&crate::classify::codes::code_word(reason));
                    }
                    EventKind::DeliveryStatus {
                        status: "failed".to_string(),
                        error_code: Some(code),
                    }
                }
            }
        }
        "complained" => EventKind::Complaint,
        "unsubscribed" => EventKind::Preference {
            marketing_only: false,
            opt_out: true,
        },
        _ => return Ok(None),
    };
    let recipient = text("recipient").ok_or("event-data has no recipient")?;
    let address = Address::parse(Channel::Email, recipient).map_err(|e| e.to_string())?;
    // An event without an id (older accounts, relays) still carries its DND: refusing
    // it inside a 200 would lose it for good, since Mailgun does not retry a 2xx.
    let event_id = crate::event::event_id_or_derived(text("id"), event_data)
        .ok_or("event-data.id is too long")?;
    let event_time_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => received_ms,
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| (1e9..1e10).contains(s))
            .map(|s| (s * 1000.0).round() as i64)
            .ok_or("event-data.timestamp is not Unix seconds")?,
        Some(_) => return Err("event-data.timestamp is not a number".into()),
    };
    Ok(Some(ChannelEvent::email(
        SOURCE,
        event_id,
        event_time_ms,
        address,
        kind,
    )))
}

/// A verified body without `event-data` cannot be acted on: 400.
pub fn require_event_data(webhook: &Webhook) -> Result<&Value, Error> {
    webhook.event_data.as_ref().ok_or_else(|| {
        Error::bad_request(
            "the body has no event-data: Mailgun posts {\"signature\": ..., \"event-data\": ...}",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::event::derived_event_id;
    use crate::providers::testkit::{
        PERM, TEMP, UNSUB, assert_decisions, assert_kinds, assert_refusals, delivery_status,
        identity, merged, without,
    };
    use serde_json::json;

    const RECEIVED: i64 = 1_700_000_999_000;

    fn data(fields: Value) -> Value {
        merged(
            json!({
                "id": "G9Bn5sl1TC6nu79C8C0bwg",
                "timestamp": 1_700_000_000.25,
                "recipient": "Bob@Example.org",
                "message": {"headers": {"message-id": "x@example.org"}},
            }),
            fields,
        )
    }

    fn status(code: &str) -> Option<EventKind> {
        delivery_status("failed", code)
    }

    #[test]
    fn event_table() {
        let cases: Vec<(Value, Option<EventKind>)> = vec![
            (
                json!({"event": "failed", "severity": "permanent", "reason": "bounce", "delivery-status": {"code": 550}}),
                status("permanent.bounce"),
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-bounce"}),
                status("permanent.suppress-bounce"),
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-unsubscribe"}),
                UNSUB,
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-complaint"}),
                Some(EventKind::Complaint),
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "espblock"}),
                status("permanent.espblock"),
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "old"}),
                status("permanent.old"),
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "generic"}),
                status("permanent.generic"),
            ),
            (
                json!({"event": "failed", "severity": "permanent"}),
                status("permanent"),
            ),
            (
                json!({"event": "failed", "severity": "temporary", "reason": "greylisted"}),
                status("temporary.greylisted"),
            ),
            (
                json!({"event": "failed", "severity": "temporary", "reason": "generic"}),
                status("temporary.generic"),
            ),
            (
                json!({"event": "failed", "severity": "Temporary", "reason": "Some Thing"}),
                status("temporary.some-thing"),
            ),
            (json!({"event": "complained"}), Some(EventKind::Complaint)),
            (json!({"event": "unsubscribed"}), UNSUB),
            (json!({"event": "delivered"}), None),
            (json!({"event": "accepted"}), None),
            (json!({"event": "opened"}), None),
            (json!({"event": "clicked"}), None),
            (json!({"event": "rejected"}), None),
            (json!({"event": "stored"}), None),
        ];
        assert_kinds(&cases, |fields| {
            normalise(&data(fields.clone()), RECEIVED)
                .unwrap_or_else(|e| panic!("{fields}: {e}"))
                .map(|e| e.kind)
        });
    }

    #[test]
    fn decisions_through_the_shipped_table() {
        let cases: Vec<(Value, Action, &str)> = vec![
            (
                json!({"event": "failed", "severity": "permanent", "reason": "bounce"}),
                PERM,
                "mailgun:permanent.bounce",
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-bounce"}),
                PERM,
                "mailgun:permanent.suppress-bounce",
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "old"}),
                TEMP,
                "mailgun:permanent.old",
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "espblock"}),
                Action::None,
                "mailgun:permanent.espblock",
            ),
            (
                json!({"event": "failed", "severity": "temporary", "reason": "greylisted"}),
                Action::None,
                "mailgun:temporary.greylisted",
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-complaint"}),
                PERM,
                "mailgun:complaint",
            ),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "suppress-unsubscribe"}),
                PERM,
                "mailgun:stop",
            ),
            (json!({"event": "complained"}), PERM, "mailgun:complaint"),
            (json!({"event": "unsubscribed"}), PERM, "mailgun:stop"),
            (
                json!({"event": "failed", "severity": "permanent", "reason": "new-reason"}),
                Action::None,
                "unclassified:mailgun:permanent.new-reason",
            ),
        ];
        assert_decisions::<super::super::Mailgun>(&cases, |fields| {
            normalise(&data(fields.clone()), RECEIVED).unwrap().unwrap()
        });
    }

    #[test]
    fn fields_are_read_as_mailgun_sends_them() {
        let e = normalise(&data(json!({"event": "complained"})), RECEIVED)
            .unwrap()
            .unwrap();
        assert_eq!(
            identity(&e),
            (
                SOURCE,
                Channel::Email,
                "bob@example.org",
                "G9Bn5sl1TC6nu79C8C0bwg",
                1_700_000_000_250
            )
        );
        let no_time = without(data(json!({"event": "complained"})), "timestamp");
        assert_eq!(
            normalise(&no_time, RECEIVED)
                .unwrap()
                .unwrap()
                .event_time_ms,
            RECEIVED
        );
    }

    /// Issue 12 item 13: an event without `id` is normalised with a key derived from
    /// its data: the same data in another key order or spacing gives the same key,
    /// other data another key.
    #[test]
    fn item_13_an_event_without_an_id_gets_a_key_from_its_data() {
        let mut no_id = data(json!({"event": "failed", "severity": "permanent",
            "reason": "bounce", "delivery-status": {"code": 550, "message": "5.1.1"}}));
        no_id.as_object_mut().unwrap().remove("id");
        let e = normalise(&no_id, RECEIVED).unwrap().unwrap();
        assert!(e.event_id.starts_with("sha256:"), "{}", e.event_id);
        assert_eq!(e.event_id.len(), "sha256:".len() + 32);
        assert_eq!(e.kind, status("permanent.bounce").unwrap());
        let reordered: Value = serde_json::from_str(
            r#"{ "delivery-status": {"message": "5.1.1", "code": 550}, "reason": "bounce",
                 "severity": "permanent", "event": "failed", "recipient": "Bob@Example.org",
                 "message": {"headers": {"message-id": "x@example.org"}},
                 "timestamp": 1700000000.25 }"#,
        )
        .unwrap();
        assert_eq!(derived_event_id(&reordered), e.event_id);
        let mut other = no_id.clone();
        other["recipient"] = json!("carol@example.org");
        assert_ne!(derived_event_id(&other), e.event_id);
        let mut blank = no_id.clone();
        blank["id"] = json!("  ");
        assert_eq!(
            normalise(&blank, RECEIVED).unwrap().unwrap().event_id,
            derived_event_id(&blank),
            "a blank id is no id"
        );
    }

    #[test]
    fn unreadable_events_say_why() {
        let mut no_recipient = data(json!({"event": "complained"}));
        no_recipient.as_object_mut().unwrap().remove("recipient");
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "not a json object"),
            (json!({"recipient": "a@b.co"}), "no event name"),
            (no_recipient, "no recipient"),
            (
                data(json!({"event": "complained", "recipient": "nope"})),
                "not an email",
            ),
            (
                data(json!({"event": "failed", "reason": "bounce"})),
                "no severity",
            ),
            (
                data(json!({"event": "complained", "timestamp": "1700000000"})),
                "not a number",
            ),
            (
                data(json!({"event": "complained", "timestamp": 1_700_000_000_000_i64})),
                "not unix seconds",
            ),
        ];
        assert_refusals(&cases, |raw| normalise(raw, RECEIVED));
    }

    #[test]
    fn parse_takes_the_signature_triple_as_sent() {
        let vectors: Vec<Value> = serde_json::from_str(include_str!(
            "../../../tests/providers/mailgun/vectors.json"
        ))
        .unwrap();
        for v in &vectors {
            let body = v["body"].as_str().unwrap();
            let w = parse(body.as_bytes()).unwrap();
            let signed = w.signed.expect("vector bodies are signed");
            let raw: Value = serde_json::from_str(body).unwrap();
            assert_eq!(signed.timestamp, raw["signature"]["timestamp"]);
            assert_eq!(signed.token, raw["signature"]["token"]);
            assert!(w.event_data.is_some());
        }
        // The mailgun-php vector: a permanent bounce of invalid@example.com.
        let w = parse(vectors[0]["body"].as_str().unwrap().as_bytes()).unwrap();
        let e = normalise(w.event_data.as_ref().unwrap(), RECEIVED)
            .unwrap()
            .unwrap();
        assert_eq!(e.address.as_str(), "invalid@example.com");
        assert_eq!(e.kind, status("permanent.bounce").unwrap());
        assert_eq!(e.event_time_ms, 1_534_110_422_390);
    }

    #[test]
    fn unsigned_bodies_say_why() {
        assert!(parse(b"not json").unwrap_err().contains("not JSON"));
        assert!(parse(b"[]").unwrap_err().contains("not a JSON object"));
        let w = parse(br#"{"event-data":{}}"#).unwrap();
        assert!(w.signed.unwrap_err().contains("not signed"));
        let w = parse(br#"{"signature":{"timestamp":"1","token":"t"}}"#).unwrap();
        assert!(w.signed.unwrap_err().contains("signature.signature"));
        let w = parse(br#"{"signature":"abc"}"#).unwrap();
        assert!(w.signed.is_err());
        let w = parse(br#"{"signature":{"timestamp":12,"token":"t","signature":"s"}}"#).unwrap();
        assert_eq!(w.signed.as_ref().unwrap().timestamp, "12");
        assert!(require_event_data(&w).is_err());
    }

    #[test]
    fn timestamps_for_the_age_check() {
        let s = |t: &str| Signed {
            timestamp: t.into(),
            token: "t".into(),
            signature: String::new(),
        };
        assert_eq!(timestamp_seconds(&s("1529006854")), Some(1_529_006_854));
        for bad in ["", "-1", "1.5", " 1", "99999999999999999999", "abc"] {
            assert_eq!(timestamp_seconds(&s(bad)), None, "{bad:?}");
        }
    }
}
