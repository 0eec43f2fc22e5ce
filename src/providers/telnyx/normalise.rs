//! Telnyx Messaging (API v2) webhooks: parse and normalise. Verification is
//! [`super::verify`]; this module never touches Redis.
//!
//! Every webhook is `{"data": {"event_type", "id", "occurred_at", "payload": {...},
//! "record_type": "event"}, "meta": {"attempt", "delivered_to"}}`. What becomes an
//! event (all on the sms channel: Telnyx's MMS is SMS's channel):
//!
//! | `data.event_type` | event |
//! |---|---|
//! | `message.received` | an inbound message from `payload.from.phone_number`, body `payload.text` (empty for an MMS of media alone), with Telnyx's own keyword verdict when the payload carries `autoresponse_type` |
//! | `message.sent`, `message.finalized` | per recipient of `payload.to` (and `payload.cc`, group MMS), a delivery status `to[].status`; a failed one (`sending_failed`, `delivery_failed`) carries the first `payload.errors[].code`, looked up in `providers/telnyx.toml` |
//! | anything else | nothing (2xx, counted as skipped) |
//!
//! The event id, the dedup key, is `data.id`: Telnyx keeps it across the attempts of
//! one webhook (only `meta.attempt` changes), so a retry is applied once. A status that
//! names several recipients gives one event each, `DATA_ID:ADDRESS`. The event time is
//! `data.occurred_at`, else the time of receipt.
//!
//! `autoresponse_type` is sent when the messaging profile has Advanced Opt-In/Out; the
//! values Telnyx writes there are not documented beyond the keyword classes of its
//! auto-response settings (`op`: `start`, `stop`, `info`). Those, and the obvious
//! spellings of the same classes, are read as a verdict; any other value gives none, and
//! the text is classified by the tenant's keywords as for any message. When both give a
//! verdict the opt-out side wins (the shared classifier's rule).

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind, ProviderVerdict};

/// Most recipients read from one status; a group MMS names a handful, and the bound
/// keeps a hostile (but signed) payload from fanning out without limit.
pub const MAX_RECIPIENTS: usize = 100;

/// The statuses of a message Telnyx could not send or deliver: the only ones whose
/// error code is read. A code beside any other status (delivered, unconfirmed, still
/// on its way) says nothing about the recipient.
const FAILED: [&str; 2] = ["sending_failed", "delivery_failed"];

/// What one request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events, in the payload's order.
    pub events: Vec<ChannelEvent>,
    /// Parts that could not be read (a recipient or a sender that is not a phone
    /// number), one line each. The rest is still applied; Telnyx would send the same
    /// payload on every retry, so refusing it all would lose the good parts too.
    pub rejected: Vec<String>,
    /// Why the webhook carries nothing to apply, when it does not (an event type we do
    /// not act on, an outbound echo); for the answer and the skipped metric.
    pub ignored: Option<String>,
}

/// Normalise a verified Telnyx body received at `received_ms` (milliseconds since the
/// Unix epoch).
///
/// 400 only for a body that cannot be a Telnyx webhook at all: not a JSON object, no
/// `data` object, no string `data.event_type`, or an event we act on without a
/// `data.id` (nothing to deduplicate it by) or a `data.payload` object.
pub fn normalise(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Telnyx webhook body is not JSON: {e}")))?;
    let data = value
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("Telnyx webhook body has no \"data\" object"))?;
    let event_type = data
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("Telnyx webhook has no string data.event_type"))?;
    let inbound = match event_type {
        "message.received" => true,
        "message.sent" | "message.finalized" => false,
        other => {
            return Ok(ignored(format!(
                "event type {}: nothing to record",
                quoted(other)
            )));
        }
    };
    let id = text(data, "id")
        .ok_or_else(|| Error::bad_request(format!("{event_type} has no data.id to dedupe by")))?;
    let payload = data
        .get("payload")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request(format!("{event_type} has no data.payload object")))?;
    if let Some(kind) = text(payload, "type")
        && !(kind.eq_ignore_ascii_case("SMS") || kind.eq_ignore_ascii_case("MMS"))
    {
        return Ok(ignored(format!(
            "{event_type} of message type {}: only SMS and MMS are read",
            quoted(kind)
        )));
    }
    let event_ms = text(data, "occurred_at")
        .and_then(crate::time::parse_rfc3339_ms)
        .unwrap_or(received_ms);
    let at = Message { id, event_ms };
    Ok(if inbound {
        at.received(event_type, payload)
    } else {
        at.status(event_type, payload)
    })
}

/// The event a payload belongs to: its id and time.
struct Message<'a> {
    id: &'a str,
    event_ms: i64,
}

impl Message<'_> {
    /// `message.received`: one inbound event from the sender.
    fn received(&self, event_type: &str, payload: &Map<String, Value>) -> Normalised {
        if text(payload, "direction").is_some_and(|d| !d.eq_ignore_ascii_case("inbound")) {
            return ignored(format!(
                "{event_type} that is not inbound: nothing to record"
            ));
        }
        let from = payload.get("from").and_then(|f| f.get("phone_number"));
        let address = match phone(from) {
            Ok(address) => address,
            Err(why) => return rejected(format!("{event_type} payload.from.phone_number: {why}")),
        };
        let kind = EventKind::Inbound {
            body: text_or_empty(payload, "text"),
            payload: None,
            provider_verdict: text(payload, "autoresponse_type").and_then(verdict),
        };
        Normalised {
            events: vec![self.event(self.id.to_string(), address, kind)],
            ..Normalised::default()
        }
    }

    /// `message.sent` / `message.finalized`: one delivery status per recipient.
    fn status(&self, event_type: &str, payload: &Map<String, Value>) -> Normalised {
        if text(payload, "direction").is_some_and(|d| !d.eq_ignore_ascii_case("outbound")) {
            return ignored(format!(
                "{event_type} that is not outbound: nothing to record"
            ));
        }
        let recipients: Vec<&Value> = ["to", "cc"]
            .iter()
            .filter_map(|field| payload.get(*field).and_then(Value::as_array))
            .flatten()
            .collect();
        if recipients.is_empty() {
            return ignored(format!(
                "{event_type} names no recipient in payload.to: no address to record anything for"
            ));
        }
        let code = first_error_code(payload);
        let mut out = Normalised::default();
        out.events = crate::event::recipients(
            recipients,
            MAX_RECIPIENTS,
            self.id,
            &mut out.rejected,
            |recipient| {
                let status = recipient
                    .get("status")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                Ok((phone(recipient.get("phone_number"))?, status))
            },
        )
        .into_iter()
        .map(|(id, address, status)| {
            let error_code = FAILED
                .contains(&status.as_str())
                .then(|| code.clone())
                .flatten();
            self.event(
                id,
                address,
                EventKind::DeliveryStatus { status, error_code },
            )
        })
        .collect();
        out
    }

    fn event(&self, event_id: String, address: Address, kind: EventKind) -> ChannelEvent {
        ChannelEvent {
            provider: SOURCE,
            event_id,
            event_time_ms: self.event_ms,
            channel: Channel::Sms,
            address,
            kind,
        }
    }
}

/// Telnyx's keyword class of an inbound message (`autoresponse_type`), when it is one
/// we can read.
fn verdict(value: &str) -> Option<ProviderVerdict> {
    let class: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match class.as_str() {
        "stop" | "optout" => Some(ProviderVerdict::OptOut),
        "start" | "unstop" | "optin" => Some(ProviderVerdict::OptIn),
        "help" | "info" => Some(ProviderVerdict::Help),
        _ => None,
    }
}

/// The first `errors[].code` of a payload, as text (Telnyx writes codes as strings;
/// a number is read the same way).
fn first_error_code(payload: &Map<String, Value>) -> Option<String> {
    payload
        .get("errors")?
        .as_array()?
        .iter()
        .find_map(|error| match error.get("code")? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// A contact's phone number (`phone_number` of a `from` or `to` entry).
fn phone(value: Option<&Value>) -> Result<Address, String> {
    let raw = value
        .and_then(Value::as_str)
        .ok_or_else(|| "no phone_number".to_string())?;
    Address::parse(Channel::Sms, raw).map_err(|e| format!("not a valid sms address: {e}"))
}

/// A field that is a string and not blank.
fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A string field as written, or empty (an MMS of media alone has `text: null`).
fn text_or_empty(map: &Map<String, Value>, name: &str) -> String {
    map.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn ignored(why: impl Into<String>) -> Normalised {
    Normalised {
        ignored: Some(why.into()),
        ..Normalised::default()
    }
}

fn rejected(why: impl Into<String>) -> Normalised {
    Normalised {
        rejected: vec![crate::error::one_line(why.into())],
        ..Normalised::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::error::Kind;
    use crate::providers::testkit::{self, PERM, TEMP};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn webhook(event_type: &str, payload: Value) -> Value {
        json!({
            "data": {
                "event_type": event_type,
                "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
                "occurred_at": "2024-01-15T20:16:07.588+00:00",
                "payload": payload,
                "record_type": "event"
            },
            "meta": {"attempt": 1, "delivered_to": "https://hooks.example.com/webhooks/telnyx/acme"}
        })
    }

    fn received(text: Value, extra: Value) -> Value {
        let payload = json!({
            "direction": "inbound", "type": "SMS", "id": "84cca175-9755-4859-b67f-4730d7f58aa3",
            "from": {"phone_number": "+13125550100", "carrier": "T-Mobile USA", "line_type": "long_code"},
            "to": [{"phone_number": "+17735550100", "status": "webhook_delivered"}],
            "text": text, "media": [], "errors": []
        });
        webhook("message.received", testkit::merged(payload, extra))
    }

    fn finalized(to: Value, errors: Value) -> Value {
        webhook(
            "message.finalized",
            json!({
                "direction": "outbound", "type": "SMS", "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
                "from": {"phone_number": "+17735550100"}, "to": to, "cc": [], "errors": errors
            }),
        )
    }

    fn run(body: &Value) -> Normalised {
        normalise(body.to_string().as_bytes(), NOW).unwrap()
    }

    /// Each event's address, and the shared classifier's action and reason under the
    /// default keywords and the embedded table.
    fn decide(body: &Value) -> Vec<(String, Action, String)> {
        testkit::decide_each::<super::super::Telnyx>(&run(body).events)
    }

    /// Each (a, b, action, reason): `body(a, b)` makes one event, for `address`, decided
    /// so.
    fn assert_one_decision_each(
        address: &str,
        cases: Vec<(Value, Value, Action, &str)>,
        body: impl Fn(Value, Value) -> Value,
    ) {
        for (a, b, action, reason) in cases {
            assert_eq!(
                decide(&body(a.clone(), b.clone())),
                vec![(address.to_string(), action, reason.to_string())],
                "{a} {b}"
            );
        }
    }

    #[test]
    fn the_vector_body_is_an_ordinary_inbound_message() {
        let text = include_str!("../../../tests/providers/telnyx/vectors.json");
        let vectors: Value = serde_json::from_str(text).unwrap();
        let body = vectors[0]["body"].as_str().unwrap();
        let n = normalise(body.as_bytes(), NOW).unwrap();
        assert_eq!(n.events.len(), 1, "{n:?}");
        let e = &n.events[0];
        assert_eq!(e.event_id, "b301ed3f-1490-491f-995f-6e64e69674d4");
        assert_eq!(e.address.as_str(), "+13125550100");
        assert_eq!(e.channel, Channel::Sms);
        assert_eq!(e.provider, SOURCE);
        assert_eq!(e.event_time_ms, 1_705_349_767_588);
        assert_eq!(
            e.kind,
            EventKind::Inbound {
                body: "Hello from Telnyx!".into(),
                payload: None,
                provider_verdict: None
            }
        );
    }

    #[test]
    fn inbound_keywords_and_telnyx_verdicts() {
        let none = json!({});
        let cases: Vec<(Value, Value, Action, &str)> = vec![
            (json!("STOP"), none.clone(), PERM, "keyword:STOP"),
            (json!("stop all"), none.clone(), PERM, "keyword:STOP ALL"),
            (
                json!("Start"),
                none.clone(),
                Action::Unblock,
                "keyword:START",
            ),
            (json!("HELP"), none.clone(), Action::Help, "keyword:HELP"),
            (
                json!("see you at 5"),
                none.clone(),
                Action::Reachable,
                "inbound",
            ),
            // Telnyx's own verdict, where Advanced Opt-In/Out adds one.
            (
                json!("Halt"),
                json!({"autoresponse_type": "stop"}),
                PERM,
                "provider:STOP",
            ),
            (
                json!("JOIN"),
                json!({"autoresponse_type": "START"}),
                Action::Unblock,
                "provider:START",
            ),
            (
                json!("?"),
                json!({"autoresponse_type": "info"}),
                Action::Help,
                "provider:HELP",
            ),
            (
                json!("x"),
                json!({"autoresponse_type": "opt-out"}),
                PERM,
                "provider:STOP",
            ),
            // The opt-out side wins when the verdicts disagree.
            (
                json!("STOP"),
                json!({"autoresponse_type": "start"}),
                PERM,
                "keyword:STOP",
            ),
            // A value we cannot read gives no verdict: the text decides.
            (
                json!("STOP"),
                json!({"autoresponse_type": "custom"}),
                PERM,
                "keyword:STOP",
            ),
            (
                json!("hello"),
                json!({"autoresponse_type": "custom"}),
                Action::Reachable,
                "inbound",
            ),
        ];
        assert_one_decision_each("+13125550100", cases, received);
    }

    #[test]
    fn mms_with_media_and_no_text() {
        let media = json!({"type": "MMS", "media": [{"url": "https://media.example/cat.jpg", "content_type": "image/jpeg", "size": 2048}]});
        let n = run(&received(Value::Null, media.clone()));
        assert_eq!(
            n.events[0].kind,
            EventKind::Inbound {
                body: String::new(),
                payload: None,
                provider_verdict: None
            }
        );
        assert_eq!(
            decide(&received(json!("stop"), media)),
            vec![("+13125550100".to_string(), PERM, "keyword:STOP".to_string())]
        );
    }

    #[test]
    fn statuses_and_error_codes() {
        let to = |status: &str| json!([{"phone_number": "+13125550199", "status": status}]);
        let err = |code: Value| json!([{"code": code, "title": "t", "detail": "d"}]);
        let cases: Vec<(Value, Value, Action, &str)> = vec![
            (to("delivered"), json!([]), Action::None, "status:delivered"),
            (
                to("delivery_failed"),
                err(json!("40300")),
                PERM,
                "telnyx:40300",
            ),
            (
                to("delivery_failed"),
                err(json!("40001")),
                PERM,
                "telnyx:40001",
            ),
            (
                to("delivery_failed"),
                err(json!(40008)),
                TEMP,
                "telnyx:40008",
            ),
            (
                to("sending_failed"),
                err(json!("40006")),
                TEMP,
                "telnyx:40006",
            ),
            (
                to("delivery_failed"),
                err(json!("40002")),
                Action::None,
                "telnyx:40002",
            ),
            (
                to("delivery_failed"),
                err(json!("40003")),
                Action::None,
                "telnyx:40003",
            ),
            (
                to("delivery_failed"),
                err(json!("49999")),
                Action::None,
                "unclassified:telnyx:49999",
            ),
            (
                to("delivery_failed"),
                json!([]),
                Action::None,
                "status:delivery_failed",
            ),
            // A code beside a status that is not a failure says nothing.
            (
                to("delivery_unconfirmed"),
                err(json!("40300")),
                Action::None,
                "status:delivery_unconfirmed",
            ),
            (
                to("delivered"),
                err(json!("40001")),
                Action::None,
                "status:delivered",
            ),
        ];
        assert_one_decision_each("+13125550199", cases, finalized);
    }

    #[test]
    fn several_recipients_one_event_each() {
        let body = finalized(
            json!([
                {"phone_number": "+13125550101", "status": "delivery_failed"},
                {"phone_number": "+13125550102", "status": "delivered"},
                {"phone_number": "+13125550101", "status": "delivery_failed"},
                {"phone_number": "not a number", "status": "delivery_failed"},
                {"status": "delivery_failed"}
            ]),
            json!([{"code": "40300"}]),
        );
        let n = run(&body);
        let ids: Vec<&str> = n.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "b301ed3f-1490-491f-995f-6e64e69674d4:+13125550101",
                "b301ed3f-1490-491f-995f-6e64e69674d4:+13125550102"
            ]
        );
        assert_eq!(n.rejected.len(), 2, "{:?}", n.rejected);
        assert!(
            n.rejected[0].starts_with("recipient 3:"),
            "{:?}",
            n.rejected
        );
        assert!(
            n.rejected[1].contains("no phone_number"),
            "{:?}",
            n.rejected
        );
    }

    #[test]
    fn ignored_and_refused() {
        // Event types we do not act on: accepted, nothing to apply.
        for event_type in [
            "message.delivered_to_handset",
            "call.initiated",
            "number_order.complete",
        ] {
            let n = run(&webhook(event_type, json!({})));
            assert!(n.events.is_empty() && n.rejected.is_empty());
            assert!(n.ignored.unwrap().contains(event_type));
        }
        // An outbound echo of our own message on the inbound event, or a channel that is
        // not SMS: nothing.
        let mut echo = received(json!("STOP"), json!({}));
        echo["data"]["payload"]["direction"] = json!("outbound");
        assert!(run(&echo).events.is_empty());
        let rcs = received(json!("STOP"), json!({"type": "RCS"}));
        assert!(run(&rcs).ignored.unwrap().contains("RCS"));
        // A sender we cannot read: refused on its own line of a 200.
        let mut alpha = received(json!("STOP"), json!({}));
        alpha["data"]["payload"]["from"]["phone_number"] = json!("ACME");
        let n = run(&alpha);
        assert!(n.events.is_empty());
        assert_eq!(n.rejected.len(), 1, "{n:?}");
        // No occurred_at: the time of receipt.
        let mut untimed = received(json!("hi"), json!({}));
        untimed["data"]
            .as_object_mut()
            .unwrap()
            .remove("occurred_at");
        assert_eq!(run(&untimed).events[0].event_time_ms, NOW);

        // What can never be a Telnyx webhook: 400, one line.
        let mut no_id = received(json!("STOP"), json!({}));
        no_id["data"].as_object_mut().unwrap().remove("id");
        let mut no_payload = received(json!("STOP"), json!({}));
        no_payload["data"]["payload"] = json!("x");
        for bad in [
            b"not json".to_vec(),
            b"[]".to_vec(),
            br#"{"data": 1}"#.to_vec(),
            br#"{"data": {"id": "x"}}"#.to_vec(),
            no_id.to_string().into_bytes(),
            no_payload.to_string().into_bytes(),
        ] {
            let e = normalise(&bad, NOW).unwrap_err();
            assert_eq!(
                e.kind,
                Kind::BadRequest,
                "{}",
                String::from_utf8_lossy(&bad)
            );
            assert!(!e.message.contains('\n'), "{}", e.message);
        }
    }
}
