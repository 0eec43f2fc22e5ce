//! Bandwidth Messaging API v2 callbacks: parse and normalise. Authentication is
//! [`super::verify`]; this module never touches Redis.
//!
//! Every request is a JSON array of callbacks, each
//! `{"type", "time", "description", "to", "errorCode"?, "message": {"id", "owner",
//! "applicationId", "time", "direction", "to": [...], "from", "text", "media"?, ...}}`
//! (https://dev.bandwidth.com/docs/messaging/webhooks). What becomes an event (all on
//! the sms channel: Bandwidth's MMS and group messages are SMS's channel):
//!
//! | `type` | event |
//! |---|---|
//! | `message-received` | an inbound message from `message.from`, body `message.text` (empty for an MMS of media alone) |
//! | `message-failed` | a delivery status `failed` for the recipient `to`, with `errorCode` looked up in `providers/bandwidth.toml` |
//! | `message-delivered` | a delivery status `delivered` for the recipient `to` (no DND signal) |
//! | anything else (`message-sending`, `message-read`, ...) | nothing (2xx, counted as skipped) |
//!
//! Bandwidth sends no keyword verdict of its own in a callback: an inbound message is
//! classified by the tenant's keywords alone.
//!
//! The recipient of a status is the callback's top-level `to`: a group message gets one
//! callback per recipient, each with its own `to` and the same `message.id`. Without a
//! top-level `to`, `message.to` is used when it names exactly one number.
//!
//! The event id, the dedup key: `message.id` for an inbound message (Bandwidth gives
//! each recipient copy of an inbound group message its own id); `message.id:type:to`
//! for a status (one outbound message has a status per recipient). Bandwidth's retries
//! carry the same ids, so a retry or a replay is applied once. A callback without a
//! `message.id` is keyed by its content ([`crate::event::derived_event_id`]). The event
//! time is the callback's `time`, else `message.time`, else the time of receipt.
//!
//! One callback that cannot be read (not an object, no `type`, a number that is not one)
//! is refused on its own line of the 200 answer; the others are applied. Bandwidth
//! would send the same array again for 24 hours, so refusing all of it would lose the
//! good callbacks too.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, one_line, quoted};
use crate::event::{Channel, ChannelEvent, EventKind};

/// What one request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events, in the array's order.
    pub events: Vec<ChannelEvent>,
    /// Callbacks that could not be read, one line each (`callback N: why`).
    pub rejected: Vec<String>,
    /// Callbacks that carry no DND signal, one line each (`callback N: why`).
    pub skipped: Vec<String>,
}

/// What one callback gives.
enum One {
    Event(ChannelEvent),
    Skipped(String),
    Rejected(String),
}

/// Normalise a Bandwidth callback body received at `received_ms` (milliseconds since
/// the Unix epoch).
///
/// 400 only for a body that cannot be Bandwidth callbacks at all: not JSON, or not a
/// JSON array. An empty array is accepted with nothing to do.
pub fn normalise(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let callbacks = crate::road::json_array(
        body,
        "the body",
        "Bandwidth posts a JSON array of callbacks",
    )?;
    let mut out = Normalised::default();
    for (index, callback) in callbacks.iter().enumerate() {
        match one(callback, received_ms) {
            One::Event(event) => out.events.push(event),
            One::Skipped(why) => out
                .skipped
                .push(one_line(format!("callback {index}: {why}"))),
            One::Rejected(why) => out
                .rejected
                .push(one_line(format!("callback {index}: {why}"))),
        }
    }
    Ok(out)
}

/// One callback of the array.
fn one(callback: &Value, received_ms: i64) -> One {
    let Some(record) = callback.as_object() else {
        return One::Rejected("not a JSON object".into());
    };
    let Some(kind) = record.get("type").and_then(Value::as_str) else {
        return One::Rejected("no string type".into());
    };
    let inbound = match kind {
        "message-received" => true,
        "message-delivered" | "message-failed" => false,
        other => return One::Skipped(format!("type {}: nothing to record", quoted(other))),
    };
    let empty = Map::new();
    let message = match record.get("message") {
        Some(Value::Object(message)) => message,
        None | Some(Value::Null) => &empty,
        Some(_) => return One::Rejected(format!("{kind}: message is not an object")),
    };
    if let Some(channel) = text(message, "channel")
        && !(channel.eq_ignore_ascii_case("SMS") || channel.eq_ignore_ascii_case("MMS"))
    {
        return One::Skipped(format!(
            "{kind} on channel {}: only SMS and MMS are read",
            quoted(channel)
        ));
    }
    let direction = text(message, "direction").map(str::to_ascii_lowercase);
    let at = At {
        kind,
        callback,
        event_ms: text(record, "time")
            .or_else(|| text(message, "time"))
            .and_then(crate::time::parse_rfc3339_ms)
            .unwrap_or(received_ms),
    };
    match (inbound, direction.as_deref()) {
        (true, Some(d)) if d != "in" => {
            One::Skipped(format!("{kind} that is not inbound: nothing to record"))
        }
        (false, Some(d)) if d != "out" => {
            One::Skipped(format!("{kind} that is not outbound: nothing to record"))
        }
        (true, _) => at.received(message),
        (false, _) => at.status(record, message),
    }
}

/// The callback being read: its type, the whole of it (for a derived dedup key) and its
/// event time.
struct At<'a> {
    kind: &'a str,
    callback: &'a Value,
    event_ms: i64,
}

impl At<'_> {
    /// `message-received`: one inbound event from `message.from`.
    fn received(&self, message: &Map<String, Value>) -> One {
        let kind = self.kind;
        let address = match phone(message.get("from").and_then(Value::as_str)) {
            Ok(address) => address,
            Err(why) => return One::Rejected(format!("{kind} message.from: {why}")),
        };
        let body = message
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.event(
            text(message, "id").map(str::to_string),
            address,
            EventKind::Inbound {
                body,
                payload: None,
                provider_verdict: None,
            },
        )
    }

    /// `message-failed` / `message-delivered`: one delivery status for the recipient.
    fn status(&self, record: &Map<String, Value>, message: &Map<String, Value>) -> One {
        let kind = self.kind;
        let recipient = match record.get("to") {
            Some(Value::String(to)) => Some(to.as_str()),
            _ => match message.get("to") {
                Some(Value::Array(to)) if to.len() == 1 => to[0].as_str(),
                Some(Value::String(to)) => Some(to.as_str()),
                _ => None,
            },
        };
        let Some(recipient) = recipient else {
            return One::Skipped(format!(
                "{kind} names no recipient in to: no address to record anything for"
            ));
        };
        let address = match phone(Some(recipient)) {
            Ok(address) => address,
            Err(why) => return One::Rejected(format!("{kind} to: {why}")),
        };
        let (status, error_code) = if kind == "message-failed" {
            ("failed", error_code(record))
        } else {
            ("delivered", None)
        };
        let id = text(message, "id").map(|id| format!("{id}:{kind}:{}", address.as_str()));
        self.event(
            id,
            address,
            EventKind::DeliveryStatus {
                status: status.to_string(),
                error_code,
            },
        )
    }

    /// The event, keyed by `id`, else by the callback's content; refused when `id` is
    /// too long to be a dedup key.
    fn event(&self, id: Option<String>, address: Address, kind: EventKind) -> One {
        match crate::event::event_id_or_derived(id.as_deref(), self.callback) {
            Some(id) => One::Event(ChannelEvent::new(
                SOURCE,
                id,
                self.event_ms,
                Channel::Sms,
                address,
                kind,
            )),
            None => One::Rejected(format!("{}: message.id is too long", self.kind)),
        }
    }
}

/// `errorCode` as text: Bandwidth documents an integer; a string is read the same way.
fn error_code(record: &Map<String, Value>) -> Option<String> {
    match record.get("errorCode")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A contact's phone number, as sent (`None`: the field is missing or not a string).
fn phone(raw: Option<&str>) -> Result<Address, String> {
    match raw {
        Some(raw) => {
            Address::parse(Channel::Sms, raw).map_err(|e| format!("not a valid sms address: {e}"))
        }
        None => Err("no phone number".into()),
    }
}

/// A field that is a string and not blank.
fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::error::Kind;
    use crate::providers::testkit::{self, PERM, TEMP};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    /// Bandwidth's documented inbound SMS example (webhooks page), `text` and `extra`
    /// laid over its message.
    fn received(text: Value, extra: Value) -> Value {
        let message = json!({
            "id": "14762070468292kw2fuqty55yp2b2", "time": "2016-09-14T18:20:16Z",
            "to": ["+12345678902"], "from": "+12345678901", "text": text,
            "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
            "media": ["https://messaging.bandwidth.com/api/v2/users/{accountId}/media/14762070468292kw2fuqty55yp2b2/0/bw.png"],
            "owner": "+12345678902", "direction": "in", "segmentCount": 1
        });
        json!({
            "type": "message-received", "time": "2016-09-14T18:20:16Z",
            "description": "Incoming message received", "to": "+12345678902",
            "message": testkit::merged(message, extra)
        })
    }

    /// Bandwidth's documented message-failed example, for recipient `to` and `code`.
    fn failed(to: &str, code: Value) -> Value {
        json!({
            "type": "message-failed", "time": "2016-09-14T18:20:16Z",
            "description": "forbidden to country", "to": to, "errorCode": code,
            "message": {
                "id": "14762070468292kw2fuqty55yp2b2", "time": "2016-09-14T18:20:16Z",
                "to": ["+12345678902", to], "from": "+12345678901", "text": "",
                "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
                "owner": "+12345678901", "direction": "out", "segmentCount": 1
            }
        })
    }

    fn run(callbacks: &[Value]) -> Normalised {
        normalise(Value::Array(callbacks.to_vec()).to_string().as_bytes(), NOW).unwrap()
    }

    fn decide(callback: &Value) -> Vec<(String, Action, String)> {
        testkit::decide_each::<super::super::Bandwidth>(&run(std::slice::from_ref(callback)).events)
    }

    #[test]
    fn the_documented_inbound_message() {
        let n = run(&[received(json!("Hey, check this out!"), json!({}))]);
        assert_eq!((n.rejected.len(), n.skipped.len()), (0, 0), "{n:?}");
        let e = &n.events[0];
        assert_eq!(
            testkit::identity(e),
            (
                SOURCE,
                Channel::Sms,
                "+12345678901",
                "14762070468292kw2fuqty55yp2b2",
                1_473_877_216_000
            )
        );
        assert_eq!(
            e.kind,
            EventKind::Inbound {
                body: "Hey, check this out!".into(),
                payload: None,
                provider_verdict: None
            }
        );
    }

    #[test]
    fn inbound_keywords() {
        let cases: &[(&str, Action, &str)] = &[
            ("STOP", PERM, "keyword:STOP"),
            ("stop all", PERM, "keyword:STOP ALL"),
            ("Unsubscribe.", PERM, "keyword:UNSUBSCRIBE"),
            ("Start", Action::Unblock, "keyword:START"),
            ("HELP", Action::Help, "keyword:HELP"),
            ("see you at 5", Action::Reachable, "inbound"),
            ("", Action::Reachable, "inbound"),
        ];
        for (text, action, reason) in cases {
            assert_eq!(
                decide(&received(json!(text), json!({}))),
                vec![("+12345678901".to_string(), *action, reason.to_string())],
                "{text}"
            );
        }
        // An MMS of a picture alone (no text field): an empty body, proof of reachability.
        let mut picture = received(json!(""), json!({}));
        picture["message"].as_object_mut().unwrap().remove("text");
        assert_eq!(decide(&picture)[0].1, Action::Reachable);
    }

    #[test]
    fn failures_and_their_codes() {
        let cases: Vec<(Value, Action, &str)> = vec![
            (json!(4775), PERM, "bandwidth:4775"),
            (json!(4720), PERM, "bandwidth:4720"),
            (json!(4482), PERM, "bandwidth:4482"),
            (json!("4702"), TEMP, "bandwidth:4702"),
            (json!(4701), TEMP, "bandwidth:4701"),
            (json!(4721), TEMP, "bandwidth:4721"),
            (json!(4770), Action::None, "bandwidth:4770"),
            (json!(4470), Action::None, "bandwidth:4470"),
            (json!(4432), Action::None, "bandwidth:4432"),
            (json!(5600), Action::None, "bandwidth:5600"),
            (json!(9902), Action::None, "bandwidth:9902"),
            (json!(4999), Action::None, "unclassified:bandwidth:4999"),
            (Value::Null, Action::None, "status:failed"),
        ];
        for (code, action, reason) in cases {
            assert_eq!(
                decide(&failed("+52345678903", code.clone())),
                vec![("+52345678903".to_string(), action, reason.to_string())],
                "{code}"
            );
        }
    }

    #[test]
    fn status_recipient_and_ids() {
        let n = run(&[failed("+52345678903", json!(4775))]);
        let e = &n.events[0];
        // The top-level `to`, not the other member of the group in message.to.
        assert_eq!(e.address.as_str(), "+52345678903");
        assert_eq!(
            e.event_id,
            "14762070468292kw2fuqty55yp2b2:message-failed:+52345678903"
        );
        // A delivered status: no code, no DND; its own id.
        let mut delivered = failed("+12345678902", json!(4775));
        delivered["type"] = json!("message-delivered");
        let n = run(&[delivered.clone()]);
        assert_eq!(
            n.events[0].kind,
            EventKind::DeliveryStatus {
                status: "delivered".into(),
                error_code: None
            }
        );
        assert_eq!(decide(&delivered)[0].1, Action::None);
        // No top-level `to`: message.to when it names one number, else nothing.
        let mut single = failed("+12345678902", json!(4720));
        single.as_object_mut().unwrap().remove("to");
        single["message"]["to"] = json!(["+12345678909"]);
        assert_eq!(
            run(&[single.clone()]).events[0].address.as_str(),
            "+12345678909"
        );
        single["message"]["to"] = json!(["+12345678909", "+12345678908"]);
        let n = run(&[single]);
        assert!(n.events.is_empty());
        assert!(n.skipped[0].contains("names no recipient"), "{n:?}");
    }

    #[test]
    fn a_batch_is_read_callback_by_callback() {
        let mut alpha = received(json!("STOP"), json!({}));
        alpha["message"]["from"] = json!("ACME");
        let sending = json!({"type": "message-sending", "time": "2020-06-25T18:42:36.979Z", "to": "+15554443333", "message": {"id": "x", "direction": "out"}});
        let n = run(&[
            received(json!("STOP"), json!({})),
            json!(7),
            json!({"message": {}}),
            sending,
            alpha,
            failed("+52345678903", json!(4702)),
        ]);
        assert_eq!(n.events.len(), 2, "{n:?}");
        assert_eq!(
            n.rejected,
            vec![
                "callback 1: not a JSON object".to_string(),
                "callback 2: no string type".to_string(),
                n.rejected[2].clone(),
            ]
        );
        assert!(
            n.rejected[2]
                .starts_with("callback 4: message-received message.from: not a valid sms address"),
            "{n:?}"
        );
        assert_eq!(
            n.skipped,
            vec!["callback 3: type \"message-sending\": nothing to record".to_string()]
        );
    }

    #[test]
    fn times_ids_and_directions() {
        // No callback time: message.time; neither: the time of receipt.
        let mut c = received(json!("hi"), json!({"time": "2016-09-14T18:20:17Z"}));
        c.as_object_mut().unwrap().remove("time");
        assert_eq!(run(&[c.clone()]).events[0].event_time_ms, 1_473_877_217_000);
        c["message"].as_object_mut().unwrap().remove("time");
        assert_eq!(run(&[c]).events[0].event_time_ms, NOW);
        // No message.id: keyed by content, the same on a retry.
        let mut no_id = received(json!("STOP"), json!({}));
        no_id["message"].as_object_mut().unwrap().remove("id");
        let id = run(&[no_id.clone()]).events[0].event_id.clone();
        assert_eq!(id, crate::event::derived_event_id(&no_id));
        assert!(id.starts_with("sha256:"));
        // An id too long to be a dedup key: refused on its line.
        let long = received(json!("STOP"), json!({"id": "x".repeat(300)}));
        assert!(run(&[long]).rejected[0].contains("too long"));
        // An outbound echo on the inbound type, an inbound message on a status type, or
        // another channel: nothing.
        let echo = received(json!("STOP"), json!({"direction": "out"}));
        let mut backwards = failed("+52345678903", json!(4775));
        backwards["message"]["direction"] = json!("in");
        let rbm = received(json!("STOP"), json!({"channel": "RBM"}));
        for c in [echo, backwards, rbm] {
            let n = run(std::slice::from_ref(&c));
            assert!(n.events.is_empty() && n.skipped.len() == 1, "{c}: {n:?}");
        }
        assert_eq!(
            run(&[received(json!("STOP"), json!({"channel": "sms"}))])
                .events
                .len(),
            1
        );
    }

    #[test]
    fn what_is_no_batch_is_400_on_one_line() {
        assert!(run(&[]).events.is_empty());
        for bad in [
            &b"not json"[..],
            b"{}",
            b"{\"type\": \"message-received\"}",
            b"\"[]\"",
            b"[1,\n",
        ] {
            let e = normalise(bad, NOW).unwrap_err();
            assert_eq!(e.kind, Kind::BadRequest, "{}", String::from_utf8_lossy(bad));
            assert!(!e.message.contains('\n'), "{}", e.message);
        }
    }

    /// The vectors' body (Bandwidth's documented inbound SMS) is one ordinary message.
    #[test]
    fn the_vector_body_is_an_inbound_message() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/bandwidth/vectors.json"
        ));
        for v in &vectors {
            let n = normalise(v["body"].as_str().unwrap().as_bytes(), NOW).unwrap();
            assert_eq!(n.events.len(), 1, "{n:?}");
            assert_eq!(n.events[0].address.as_str(), "+12345678901");
        }
    }
}
