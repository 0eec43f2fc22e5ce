//! Vonage webhooks: parse and normalise. Verification is [`super::verify`]; this module
//! never touches Redis.
//!
//! **SMS API** (one set of parameters: a form body, or a flat JSON object, as the
//! dashboard's "HTTP method" chooses; all values are text):
//!
//! | parameters | event |
//! |---|---|
//! | `status` present: a delivery receipt | a delivery status of the message to `msisdn` (the recipient), status `status`; for `failed`, `rejected` and `expired` the `err-code` (unless `0`), looked up in `providers/vonage.toml` |
//! | `msisdn` and `text` or `type`, no `status`: an inbound message | an inbound message from `msisdn` with body `text`; a part of a concatenated message (`concat=true`) has an empty body, so a part that happens to read "stop" is no opt-out (it still proves the number is reachable) |
//! | anything else | nothing (2xx, counted as skipped) |
//!
//! The event id is `messageId` (a receipt's `messageId:status`, since one message has
//! several receipts); the time is `message-timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC), else
//! the time of receipt. Numbers come without `+` (`447700900000`) and get one.
//!
//! **Messages API** (JSON): `channel` `sms` and `mms` are the sms channel, `whatsapp`
//! whatsapp, `messenger` messenger (the address `PAGE_ID:USER_ID`: an inbound message's
//! `to` is the page and `from` the user; a status's `from` is the page and `to` the
//! user). `viber_service` (Viber Business Messages) has no channel of its own in
//! dndgate, and folding it into sms would let a Viber "stop" or a Viber failure block
//! text messages the contact never refused, so it is skipped and counted; `rcs` and
//! unknown channels likewise.
//!
//! | body | event |
//! |---|---|
//! | no `status`: an inbound message | from `from`; the body is `text`, or a tapped WhatsApp reply's `reply.title` (its `reply.id` as the payload), or a quick-reply button's `button.text` (`button.payload`); media only: an empty body |
//! | `status` | a delivery status of the message to `to`; for `rejected` and `undeliverable` the code of `error` (`error.title`, else the fragment of `error.type`) |
//!
//! The event id is `message_uuid` (a status's `message_uuid:status`); the time is
//! `timestamp` (RFC 3339), else the time of receipt.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind};

/// The delivery receipt statuses whose `err-code` is read.
const SMS_FAILED: [&str; 3] = ["failed", "rejected", "expired"];

/// The Messages API statuses whose `error` is read.
const MESSAGES_FAILED: [&str; 2] = ["rejected", "undeliverable"];

/// What one request taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events.
    pub events: Vec<ChannelEvent>,
    /// Parts that could not be read (an address that is not one), one line each.
    pub rejected: Vec<String>,
    /// Why the webhook carries nothing to apply, when it does not.
    pub ignored: Option<String>,
}

/// The parameters of an SMS API webhook sent as JSON: a flat object, each value as
/// text (a number or a boolean as written, `null` as empty). 400 for anything else.
pub fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Vonage webhook body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| Error::bad_request("Vonage SMS webhook body is not a JSON object"))?;
    object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(Error::bad_request(format!(
                        "Vonage SMS webhook parameter {} is not a single value",
                        quoted(name)
                    )));
                }
            };
            Ok((name.clone(), text))
        })
        .collect()
}

/// Is `body` a Messages API callback (a JSON object with `message_uuid`) rather than
/// SMS API parameters (which carry `sig` when signed)? Read before anything verifies,
/// only to choose between 503 (retry it signed) and 401.
pub fn unsigned_messages_callback(body: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(body)
        .is_ok_and(|o| o.contains_key("message_uuid") && !o.contains_key("sig"))
}

/// The first value of parameter `name`, trimmed, when not blank.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Normalise the verified parameters of an SMS API webhook received at `received_ms`.
pub fn normalise_sms(params: &[(String, String)], received_ms: i64) -> Normalised {
    let get = |name| param(params, name);
    let event_ms = get("message-timestamp")
        .and_then(sms_time)
        .unwrap_or(received_ms);
    let id = get("messageId").map(str::to_string).unwrap_or_else(|| {
        let record: Map<String, Value> = params
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "sig" | "timestamp" | "nonce"))
            .map(|(n, v)| (n.clone(), Value::String(v.clone())))
            .collect();
        crate::event::derived_event_id(&Value::Object(record))
    });
    let address = match get("msisdn").map(|m| phone(Channel::Sms, m)) {
        Some(Ok(address)) => address,
        Some(Err(why)) => return rejected(format!("msisdn: {why}")),
        None => return ignored("no msisdn: not an inbound SMS or a delivery receipt"),
    };
    let event = |event_id: String, kind| {
        ChannelEvent::new(
            SOURCE,
            event_id,
            event_ms,
            Channel::Sms,
            address.clone(),
            kind,
        )
    };
    if let Some(status) = get("status") {
        let status = status.to_ascii_lowercase();
        let error_code = get("err-code")
            .filter(|code| *code != "0" && SMS_FAILED.contains(&status.as_str()))
            .map(str::to_string);
        let id = format!("{id}:{status}");
        return found(event(id, EventKind::DeliveryStatus { status, error_code }));
    }
    if get("text").is_none() && get("type").is_none() {
        return ignored("neither text nor status: not an inbound SMS or a delivery receipt");
    }
    let concatenated = get("concat").is_some_and(|c| c.eq_ignore_ascii_case("true"));
    let binary = get("type").is_some_and(|t| t.eq_ignore_ascii_case("binary"));
    let body = if concatenated || binary {
        String::new()
    } else {
        params
            .iter()
            .find(|(n, _)| n == "text")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    found(event(
        id,
        EventKind::Inbound {
            body,
            payload: None,
            provider_verdict: None,
        },
    ))
}

/// Normalise a verified Messages API body received at `received_ms`. 400 only for a
/// body that is not a JSON object.
pub fn normalise_messages(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Vonage Messages API body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| Error::bad_request("Vonage Messages API body is not a JSON object"))?;
    let get = |name| text(object, name);
    let Some(channel_name) = get("channel") else {
        return Ok(ignored("no channel: not a message or a status"));
    };
    let Some(channel) = channel_of(channel_name) else {
        return Ok(ignored(format!(
            "channel {}: no dndgate channel for it (viber, rcs and unknown channels are skipped)",
            quoted(channel_name)
        )));
    };
    let Some(id) = crate::event::event_id_or_derived(get("message_uuid"), &value) else {
        return Ok(rejected("message_uuid is too long to be Vonage's"));
    };
    let event_ms = get("timestamp")
        .and_then(crate::time::parse_rfc3339_ms)
        .unwrap_or(received_ms);
    let status = get("status").map(str::to_ascii_lowercase);
    let (from, to) = (get("from"), get("to"));
    let raw = match (channel, status.is_some()) {
        (Channel::Messenger, false) => to.zip(from).map(|(page, user)| format!("{page}:{user}")),
        (Channel::Messenger, true) => from.zip(to).map(|(page, user)| format!("{page}:{user}")),
        (_, false) => from.map(str::to_string),
        (_, true) => to.map(str::to_string),
    };
    let field = if status.is_some() { "to" } else { "from" };
    let address = match raw.map(|raw| phone(channel, &raw)) {
        Some(Ok(address)) => address,
        Some(Err(why)) => return Ok(rejected(format!("{field}: {why}"))),
        None => {
            return Ok(rejected(format!(
                "no {field}: no address to record anything for"
            )));
        }
    };
    let kind = match status {
        Some(status) => {
            let error_code = MESSAGES_FAILED
                .contains(&status.as_str())
                .then(|| object.get("error").and_then(error_code))
                .flatten();
            let id = format!("{id}:{status}");
            return Ok(found(ChannelEvent::new(
                SOURCE,
                id,
                event_ms,
                channel,
                address,
                EventKind::DeliveryStatus { status, error_code },
            )));
        }
        None => inbound(object),
    };
    Ok(found(ChannelEvent::new(
        SOURCE, id, event_ms, channel, address, kind,
    )))
}

/// The dndgate channel of a Messages API `channel`.
fn channel_of(name: &str) -> Option<Channel> {
    match name.to_ascii_lowercase().as_str() {
        "sms" | "mms" => Some(Channel::Sms),
        "whatsapp" => Some(Channel::Whatsapp),
        "messenger" => Some(Channel::Messenger),
        _ => None,
    }
}

/// An inbound message's body and the payload of what the contact tapped.
fn inbound(object: &Map<String, Value>) -> EventKind {
    let nested = |outer: &str, inner: &str| {
        object
            .get(outer)
            .and_then(Value::as_object)
            .and_then(|o| o.get(inner))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (body, payload) = match text(object, "message_type") {
        Some("reply") => (nested("reply", "title"), nested("reply", "id")),
        Some("button") => (nested("button", "text"), nested("button", "payload")),
        _ => (
            object
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_string),
            None,
        ),
    };
    EventKind::Inbound {
        body: body.unwrap_or_default(),
        payload: payload.filter(|p| !p.trim().is_empty()),
        provider_verdict: None,
    }
}

/// The code of a Messages API `error` object: `title` (a number, or digits), else the
/// fragment of `type` (`https://developer.vonage.com/api-errors/messages#1250`).
fn error_code(error: &Value) -> Option<String> {
    let digits = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.to_string())
    };
    match error.get("title") {
        Some(Value::Number(n)) => return Some(n.to_string()),
        Some(Value::String(s)) if digits(s).is_some() => return digits(s),
        _ => {}
    }
    error
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit_once('#'))
        .and_then(|(_, fragment)| digits(fragment))
}

/// A contact's number or id on `channel`; Vonage writes numbers without `+`.
fn phone(channel: Channel, raw: &str) -> Result<Address, String> {
    let raw = raw.trim();
    let spelled = if !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit())
        && channel != Channel::Messenger
    {
        format!("+{raw}")
    } else {
        raw.to_string()
    };
    Address::parse(channel, &spelled).map_err(|e| format!("not a valid {channel} address: {e}"))
}

/// `message-timestamp` of the SMS API: `YYYY-MM-DD HH:MM:SS`, UTC.
fn sms_time(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(' ')?;
    crate::time::parse_rfc3339_ms(&format!("{date}T{}Z", time.trim()))
}

fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn found(event: ChannelEvent) -> Normalised {
    Normalised {
        events: vec![event],
        ..Normalised::default()
    }
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
    use crate::providers::testkit::{self, PERM, TEMP};
    use crate::providers::vonage::Vonage;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn form(text: &str) -> Vec<(String, String)> {
        crate::providers::twilio::normalise::parse_form(text.as_bytes()).unwrap()
    }

    fn one(n: Normalised) -> ChannelEvent {
        assert!(n.rejected.is_empty() && n.ignored.is_none(), "{n:?}");
        assert_eq!(n.events.len(), 1, "{n:?}");
        n.events.into_iter().next().unwrap()
    }

    const INBOUND: &str = "msisdn=447700900001&to=447700900000&messageId=0A0000000123ABCD1&text=STOP&type=text&keyword=STOP&api-key=abcd1234&message-timestamp=2020-01-01+12%3A00%3A00&timestamp=1577880000&nonce=n1&sig=x";

    #[test]
    fn sms_inbound() {
        let e = one(normalise_sms(&form(INBOUND), NOW));
        assert_eq!(
            testkit::identity(&e),
            (
                SOURCE,
                Channel::Sms,
                "+447700900001",
                "0A0000000123ABCD1",
                1_577_880_000_000
            )
        );
        assert_eq!(testkit::decide::<Vonage>(&e), (PERM, "keyword:STOP".into()));
        // A part of a long message reads as no keyword.
        let e = one(normalise_sms(
            &form(&format!("{INBOUND}&concat=true&concat-part=2")),
            NOW,
        ));
        assert!(matches!(e.kind, EventKind::Inbound { ref body, .. } if body.is_empty()));
        // Without a message-timestamp: the time of receipt; without messageId: derived.
        let p = form("msisdn=447700900001&text=START&type=text&timestamp=1");
        let e = one(normalise_sms(&p, NOW));
        assert_eq!(e.event_time_ms, NOW);
        assert!(!e.event_id.is_empty());
        assert_eq!(
            e.event_id,
            one(normalise_sms(
                &form("msisdn=447700900001&text=START&type=text&timestamp=2"),
                NOW
            ))
            .event_id
        );
    }

    #[test]
    fn sms_receipts() {
        let dlr = |status: &str, code: &str| {
            form(&format!(
                "msisdn=447700900000&to=AcmeInc&network-code=23410&messageId=0A00&price=0.03&status={status}&scts=2001011400&err-code={code}&api-key=abcd1234&message-timestamp=2020-01-01+14%3A00%3A00&timestamp=1"
            ))
        };
        let cases = [
            (dlr("failed", "3"), PERM, "vonage:3"),
            (dlr("failed", "4"), PERM, "vonage:4"),
            (dlr("failed", "2"), TEMP, "vonage:2"),
            (dlr("rejected", "6"), Action::None, "vonage:6"),
            (dlr("delivered", "0"), Action::None, "status:delivered"),
            (dlr("accepted", "0"), Action::None, "status:accepted"),
            (dlr("delivered", "3"), Action::None, "status:delivered"),
            (
                dlr("failed", "424242"),
                Action::None,
                "unclassified:vonage:424242",
            ),
        ];
        for (p, action, reason) in cases {
            let e = one(normalise_sms(&p, NOW));
            assert_eq!(e.address.as_str(), "+447700900000");
            assert!(e.event_id.starts_with("0A00:"), "{}", e.event_id);
            assert_eq!(
                testkit::decide::<Vonage>(&e),
                (action, reason.to_string()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn sms_skips_and_rejects() {
        assert!(
            normalise_sms(&form("foo=bar&timestamp=1"), NOW)
                .ignored
                .is_some()
        );
        assert!(
            normalise_sms(&form("msisdn=447700900000&timestamp=1"), NOW)
                .ignored
                .is_some()
        );
        let n = normalise_sms(&form("msisdn=notanumber&text=STOP"), NOW);
        assert_eq!(n.rejected.len(), 1);
        assert!(n.events.is_empty());
    }

    #[test]
    fn unsigned_messages_callbacks_are_told_apart() {
        assert!(unsigned_messages_callback(
            br#"{"message_uuid":"u","channel":"sms"}"#
        ));
        assert!(!unsigned_messages_callback(
            br#"{"message_uuid":"u","sig":"x"}"#
        ));
        assert!(!unsigned_messages_callback(
            br#"{"messageId":"u","msisdn":"1"}"#
        ));
        assert!(!unsigned_messages_callback(b"msisdn=1&message_uuid=u"));
    }

    #[test]
    fn json_params_are_flat_text() {
        let p = json_params(br#"{"msisdn":"447700900001","concat":true,"n":5,"k":null}"#).unwrap();
        assert_eq!(param(&p, "concat"), Some("true"));
        assert_eq!(param(&p, "n"), Some("5"));
        assert_eq!(param(&p, "k"), None);
        for bad in [&b"[]"[..], b"{\"a\":{}}", b"not json"] {
            assert!(json_params(bad).is_err());
        }
    }

    fn messages(v: Value) -> Normalised {
        normalise_messages(v.to_string().as_bytes(), NOW).unwrap()
    }

    fn inbound_msg(channel: &str, from: &str, to: &str, text: &str) -> Value {
        json!({"channel": channel, "message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
               "to": to, "from": from, "timestamp": "2020-01-01T14:00:00.000Z",
               "message_type": "text", "text": text})
    }

    #[test]
    fn messages_inbound_per_channel() {
        let e = one(messages(inbound_msg(
            "sms",
            "447700900001",
            "447700900000",
            "STOP",
        )));
        assert_eq!(
            testkit::identity(&e),
            (
                SOURCE,
                Channel::Sms,
                "+447700900001",
                "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                1_577_887_200_000
            )
        );
        assert_eq!(testkit::decide::<Vonage>(&e), (PERM, "keyword:STOP".into()));
        let e = one(messages(inbound_msg(
            "whatsapp",
            "447700900001",
            "447700900000",
            "STOP",
        )));
        assert_eq!(
            (e.channel, e.address.as_str()),
            (Channel::Whatsapp, "+447700900001")
        );
        let e = one(messages(inbound_msg(
            "messenger",
            "9876543210",
            "0123456789",
            "stop",
        )));
        assert_eq!(
            (e.channel, e.address.as_str()),
            (Channel::Messenger, "0123456789:9876543210")
        );
        let e = one(messages(inbound_msg(
            "mms",
            "447700900001",
            "447700900000",
            "",
        )));
        assert_eq!(e.channel, Channel::Sms);
        for skipped in ["viber_service", "rcs", "carrierpigeon"] {
            let n = messages(inbound_msg(skipped, "447700900001", "447700900000", "STOP"));
            assert!(n.events.is_empty() && n.ignored.is_some(), "{skipped}");
        }
        // A tapped WhatsApp reply: its id is the payload.
        let mut v = inbound_msg("whatsapp", "447700900001", "447700900000", "");
        v["message_type"] = "reply".into();
        v["reply"] = json!({"id": "STOP", "title": "Unsubscribe"});
        let e = one(messages(v));
        assert_eq!(
            e.kind,
            EventKind::Inbound {
                body: "Unsubscribe".into(),
                payload: Some("STOP".into()),
                provider_verdict: None
            }
        );
    }

    fn status(channel: &str, status: &str, error: Option<Value>) -> Value {
        let mut v = json!({"message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "to": "447700900000",
            "from": "447700900001", "timestamp": "2020-01-01T14:00:00.000Z", "status": status,
            "channel": channel});
        if let Some(error) = error {
            v["error"] = error;
        }
        v
    }

    #[test]
    fn messages_statuses() {
        let err = |title: Value| {
            Some(
                json!({"type": "https://developer.vonage.com/api-errors/messages#1050", "title": title, "detail": "x"}),
            )
        };
        let cases = [
            (
                status("sms", "rejected", err(json!(1050))),
                PERM,
                "vonage:1050",
            ),
            (
                status("whatsapp", "rejected", err(json!("1050"))),
                PERM,
                "vonage:1050",
            ),
            (
                status("sms", "rejected", err(json!("Number barred"))),
                PERM,
                "vonage:1050",
            ),
            (
                status(
                    "sms",
                    "rejected",
                    Some(
                        json!({"type": "https://developer.vonage.com/api-errors/messages#1000", "title": 1000}),
                    ),
                ),
                Action::None,
                "vonage:1000",
            ),
            (
                status("sms", "delivered", err(json!(1050))),
                Action::None,
                "status:delivered",
            ),
            (
                status("whatsapp", "read", None),
                Action::None,
                "status:read",
            ),
            (
                status("sms", "rejected", None),
                Action::None,
                "status:rejected",
            ),
        ];
        for (v, action, reason) in cases {
            let e = one(messages(v.clone()));
            assert_eq!(e.address.as_str(), "+447700900000");
            assert!(
                e.event_id
                    .ends_with(&format!(":{}", v["status"].as_str().unwrap()))
            );
            assert_eq!(
                testkit::decide::<Vonage>(&e),
                (action, reason.to_string()),
                "{v}"
            );
        }
        let e = one(messages(
            status("messenger", "rejected", None).tap_messenger(),
        ));
        assert_eq!(e.address.as_str(), "0123456789:9876543210");
    }

    trait TapMessenger {
        fn tap_messenger(self) -> Value;
    }

    impl TapMessenger for Value {
        fn tap_messenger(mut self) -> Value {
            self["from"] = "0123456789".into();
            self["to"] = "9876543210".into();
            self
        }
    }

    #[test]
    fn messages_refusals() {
        for bad in [&b"[]"[..], b"nope"] {
            assert!(normalise_messages(bad, NOW).is_err());
        }
        assert!(messages(json!({"message_uuid": "x"})).ignored.is_some());
        let n = messages(inbound_msg("sms", "abc", "447700900000", "STOP"));
        assert_eq!(n.rejected.len(), 1);
        let mut v = inbound_msg("sms", "447700900001", "447700900000", "STOP");
        v.as_object_mut().unwrap().remove("from");
        assert_eq!(messages(v).rejected.len(), 1);
    }
}
