//! Twilio provider: parse and normalise inbound messages and status callbacks (SMS, MMS,
//! WhatsApp through Twilio). Verification is [`super::verify::verify_twilio`]; this
//! module never touches Redis.
//!
//! Two shapes arrive:
//! - form-encoded webhooks ([`parse_form`], then [`normalise`]): the messaging webhook
//!   for inbound messages and the `StatusCallback` for messages we sent;
//! - Event Streams webhook sinks ([`normalise_event_streams`]): a JSON array of
//!   CloudEvents, signed through the `bodySHA256` query parameter.
//!
//! Twilio sends no event time on form webhooks, so events carry the time of receipt.

use serde_json::Value;

use super::SOURCE;
use crate::address::Address;
use crate::error::Error;
use crate::event::{Channel, ChannelEvent, EventKind, ProviderVerdict, Source};

/// Decode an `application/x-www-form-urlencoded` body into its pairs, in order, repeated
/// names kept (signature verification needs every pair exactly as sent).
///
/// Stricter than browsers: a `%` not followed by two hex digits, or a value that is not
/// UTF-8 once decoded, is refused rather than repaired, because a repaired value would
/// not be the value Twilio signed.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = Vec::new();
    for (index, pair) in body.split(|&b| b == b'&').enumerate() {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        let decode = |raw| {
            decode_form_component(raw).map_err(|why| {
                Error::bad_request(format!(
                    "form body is not valid x-www-form-urlencoded: parameter {}: {why}",
                    index + 1
                ))
            })
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn decode_form_component(raw: &[u8]) -> Result<String, &'static str> {
    // Most names and many values need no decoding: copy them as they are.
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return std::str::from_utf8(raw)
            .map(str::to_string)
            .map_err(|_| "it is not UTF-8 once decoded");
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |at: usize| raw.get(at).and_then(|&b| (b as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err("a % is not followed by two hex digits"),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "it is not UTF-8 once decoded")
}

/// The `AccountSid` of a form webhook: the tenant key when Twilio posts to the shared
/// route `POST /webhooks/twilio`.
pub fn account_sid(params: &[(String, String)]) -> Option<&str> {
    non_empty(params, "AccountSid")
}

/// Which Twilio callback a request was, which decides the answer: an inbound message
/// gets an empty TwiML `<Response/>`, everything else a plain 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// The messaging webhook: a contact wrote to us.
    Inbound,
    /// A status callback, an Event Streams batch, or a callback we ignore.
    Status,
}

/// A normalised Twilio request: the callback kind and its channel events (none for a
/// callback we ignore, which still gets 2xx so Twilio does not retry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// Which callback this was.
    pub kind: CallbackKind,
    /// What it taught us.
    pub events: Vec<ChannelEvent>,
    /// Events of a batch that could not be read, one line each (`event 3: ...`). The
    /// rest of the batch is still applied: refusing the whole batch would lose the good
    /// events, since a provider does not retry a 4xx.
    pub rejected: Vec<String>,
    /// A status callback that names no recipient (`To`): nothing can be applied, and
    /// Twilio would send it the same way again, so it is answered 2xx like any ignored
    /// callback. Kept so the pipeline can warn when its error code would have been a
    /// DND.
    pub unaddressed: Option<UnaddressedStatus>,
}

/// A status callback without `To` (Twilio's own example for `sent` has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnaddressedStatus {
    /// `MessageSid`, to find the message in Twilio's logs.
    pub message_sid: String,
    /// `MessageStatus`.
    pub status: String,
    /// `ErrorCode`, when present and not blank.
    pub error_code: Option<String>,
}

impl Normalised {
    fn ignored() -> Normalised {
        Normalised {
            kind: CallbackKind::Status,
            events: Vec::new(),
            rejected: Vec::new(),
            unaddressed: None,
        }
    }
}

/// Normalise a form webhook's parameters (from [`parse_form`]) received at
/// `received_ms` (milliseconds since the Unix epoch).
///
/// - An inbound message (it has `Body` or `NumMedia`, and `SmsStatus=received` or a
///   `MessageStatus` that is absent or `received`) becomes one [`EventKind::Inbound`] for `From`, carrying Twilio's
///   `OptOutType` verdict when Advanced Opt-Out added one.
/// - A status callback (`MessageStatus`) becomes one [`EventKind::DeliveryStatus`] for
///   `To`; its event id is `MessageSid:status`, because one message has several callbacks.
///   Without `To` it names no contact: ignored, kept in [`Normalised::unaddressed`].
/// - Anything else (a voice call callback, a status about an inbound message) is ignored.
///
/// A message without `MessageSid`, an inbound message without `From`, or an address
/// that does not normalise is a 400: Twilio will never send it differently.
pub fn normalise(params: &[(String, String)], received_ms: i64) -> Result<Normalised, Error> {
    normalise_as(SOURCE, params, received_ms)
}

/// [`normalise`] for a provider that posts Twilio's form webhooks under its own name
/// (SignalWire's compatibility API): its events carry `source`.
pub(crate) fn normalise_as(
    source: Source,
    params: &[(String, String)],
    received_ms: i64,
) -> Result<Normalised, Error> {
    let has_content = field(params, "Body").is_some() || field(params, "NumMedia").is_some();
    let status = non_empty(params, "MessageStatus");
    let sms_received =
        non_empty(params, "SmsStatus").is_some_and(|s| s.eq_ignore_ascii_case("received"));

    // `MessageStatus=received` is an inbound message too, whatever `SmsStatus` says:
    // reading it as a status would drop a STOP.
    if has_content && (sms_received || status.is_none_or(is_inbound_status)) {
        let message_sid = message_sid(params)?;
        let from = required(params, "From", "who sent the message")?;
        let channel = phone_channel(from, false);
        let event = ChannelEvent {
            provider: source,
            event_id: message_sid.to_string(),
            event_time_ms: received_ms,
            channel,
            address: address(channel, "From", from)?,
            kind: EventKind::Inbound {
                body: field(params, "Body").unwrap_or_default().to_string(),
                payload: None,
                provider_verdict: non_empty(params, "OptOutType").and_then(opt_out_verdict),
            },
        };
        return Ok(Normalised {
            kind: CallbackKind::Inbound,
            events: vec![event],
            rejected: Vec::new(),
            unaddressed: None,
        });
    }

    let Some(status) = status else {
        return Ok(Normalised::ignored());
    };
    // Statuses of an inbound message name our own number in `To`; the contact's side
    // of it arrives through the messaging webhook.
    if is_inbound_status(status) {
        return Ok(Normalised::ignored());
    }
    let message_sid = message_sid(params)?;
    let error_code = non_empty(params, "ErrorCode").map(str::to_string);
    let Some(to) = non_empty(params, "To") else {
        return Ok(Normalised {
            unaddressed: Some(UnaddressedStatus {
                message_sid: message_sid.to_string(),
                status: status.to_string(),
                error_code,
            }),
            ..Normalised::ignored()
        });
    };
    let whatsapp_prefix =
        non_empty(params, "ChannelPrefix").is_some_and(|p| p.eq_ignore_ascii_case("whatsapp"));
    let channel = phone_channel(to, whatsapp_prefix);
    let event = ChannelEvent {
        provider: source,
        event_id: format!("{message_sid}:{status}"),
        event_time_ms: received_ms,
        channel,
        address: address(channel, "To", to)?,
        kind: EventKind::DeliveryStatus {
            status: status.to_string(),
            error_code,
        },
    };
    Ok(Normalised {
        kind: CallbackKind::Status,
        events: vec![event],
        rejected: Vec::new(),
        unaddressed: None,
    })
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A field that is present and not blank: Twilio sends some fields empty rather than
/// leaving them out.
fn non_empty<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    field(params, name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn required<'a>(
    params: &'a [(String, String)],
    name: &str,
    purpose: &str,
) -> Result<&'a str, Error> {
    non_empty(params, name)
        .ok_or_else(|| Error::bad_request(format!("{name} is missing: cannot tell {purpose}")))
}

/// `MessageSid`, or the legacy names that carry the same value on older webhooks.
fn message_sid(params: &[(String, String)]) -> Result<&str, Error> {
    ["MessageSid", "SmsMessageSid", "SmsSid"]
        .into_iter()
        .find_map(|name| non_empty(params, name))
        .ok_or_else(|| {
            Error::bad_request("MessageSid is missing: cannot identify the message or dedupe it")
        })
}

fn phone_channel(raw: &str, whatsapp_hint: bool) -> Channel {
    let prefixed = raw
        .get(..WHATSAPP_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(WHATSAPP_PREFIX));
    if prefixed || whatsapp_hint {
        Channel::Whatsapp
    } else {
        Channel::Sms
    }
}

const WHATSAPP_PREFIX: &str = "whatsapp:";

fn address(channel: Channel, name: &str, raw: &str) -> Result<Address, Error> {
    Address::parse(channel, raw)
        .map_err(|e| Error::bad_request(format!("{name} is not a valid {channel} address: {e}")))
}

fn opt_out_verdict(value: &str) -> Option<ProviderVerdict> {
    match value.to_ascii_uppercase().as_str() {
        "STOP" => Some(ProviderVerdict::OptOut),
        "START" => Some(ProviderVerdict::OptIn),
        "HELP" => Some(ProviderVerdict::Help),
        _ => None,
    }
}

fn is_inbound_status(status: &str) -> bool {
    status.eq_ignore_ascii_case("received") || status.eq_ignore_ascii_case("receiving")
}

/// The Event Streams type of an inbound message.
const ES_INBOUND: &str = "com.twilio.messaging.inbound-message.received";
/// The prefix of Event Streams outbound message status types (`...delivered`,
/// `...undelivered`, `...failed`, ...).
const ES_STATUS_PREFIX: &str = "com.twilio.messaging.message.";

/// Normalise an Event Streams webhook sink delivery: a JSON array of CloudEvents (a
/// single event object is accepted too), received at `received_ms`.
///
/// Uses the fields Twilio documents for `com.twilio.messaging.inbound-message.received`
/// (`data.messageSid`, `from`, `body`, `timestamp`) and the outbound message status
/// events `com.twilio.messaging.message.*` (`data.messageSid`, `to`, `messageStatus`,
/// `errorCode`, `timestamp`). Event ids match the form webhooks' (`messageSid` for
/// inbound, `messageSid:status` with the status lower-cased), so a tenant that receives
/// both is deduplicated. Other event types are skipped. Event Streams carries no opt-out
/// verdict, so keywords decide. The kind is always [`CallbackKind::Status`]: a sink
/// takes no TwiML.
pub fn normalise_event_streams(body: &[u8], received_ms: i64) -> Result<Normalised, Error> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Event Streams body is not JSON: {e}")))?;
    let cloud_events = match parsed {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(Error::bad_request(
                "Event Streams body is neither an array of events nor an event",
            ));
        }
    };
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (index, cloud_event) in cloud_events.iter().enumerate() {
        match event_streams_event(cloud_event, received_ms) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            // The event type is echoed in the reason: keep it one line.
            Err(why) => rejected.push(crate::error::one_line(format!("event {index}: {why}"))),
        }
    }
    Ok(Normalised {
        kind: CallbackKind::Status,
        events,
        rejected,
        unaddressed: None,
    })
}

fn event_streams_event(
    cloud_event: &Value,
    received_ms: i64,
) -> Result<Option<ChannelEvent>, String> {
    let event_type = cloud_event
        .get("type")
        .and_then(Value::as_str)
        .ok_or("it has no type")?;
    let inbound = event_type == ES_INBOUND;
    let status_suffix = event_type.strip_prefix(ES_STATUS_PREFIX);
    if !inbound && status_suffix.is_none() {
        return Ok(None);
    }
    let data = cloud_event
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| format!("{event_type} has no data object"))?;
    let text = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let missing = |name: &str| format!("{event_type} has no data.{name}");
    let message_sid = text("messageSid").ok_or_else(|| missing("messageSid"))?;
    let event_time_ms = text("timestamp")
        .and_then(crate::time::parse_rfc3339_ms)
        .unwrap_or(received_ms);

    let (event_id, contact_field, kind) = if inbound {
        let kind = EventKind::Inbound {
            body: data
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            payload: None,
            provider_verdict: None,
        };
        (message_sid.to_string(), "from", kind)
    } else {
        let status = text("messageStatus")
            .or(status_suffix)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if is_inbound_status(&status) {
            return Ok(None);
        }
        let error_code = match data.get("errorCode") {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        };
        let id = format!("{message_sid}:{status}");
        (id, "to", EventKind::DeliveryStatus { status, error_code })
    };
    let raw = text(contact_field).ok_or_else(|| missing(contact_field))?;
    let channel = phone_channel(raw, false);
    let address = Address::parse(channel, raw)
        .map_err(|e| format!("data.{contact_field} is not a valid {channel} address: {e}"))?;
    Ok(Some(ChannelEvent::new(
        SOURCE,
        event_id,
        event_time_ms,
        channel,
        address,
        kind,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const NOW: i64 = 1_700_000_000_000;

    fn event(id: &str, channel: Channel, address: &str, kind: EventKind) -> ChannelEvent {
        ChannelEvent {
            provider: SOURCE,
            event_id: id.to_string(),
            event_time_ms: NOW,
            channel,
            address: Address::parse(channel, address).expect("test address"),
            kind,
        }
    }

    fn inbound(body: &str, verdict: Option<ProviderVerdict>) -> EventKind {
        EventKind::Inbound {
            body: body.to_string(),
            payload: None,
            provider_verdict: verdict,
        }
    }

    fn status(status: &str, code: Option<&str>) -> EventKind {
        EventKind::DeliveryStatus {
            status: status.to_string(),
            error_code: code.map(str::to_string),
        }
    }

    /// One row per documented Twilio shape: the form body, and either the expected
    /// normalisation or a piece of the expected 400 message.
    #[test]
    fn normalise_table() {
        use Channel::*;
        use ProviderVerdict::*;
        type Want = Result<(CallbackKind, Vec<ChannelEvent>), &'static str>;
        let rows: Vec<(&str, &str, Want)> = vec![
            (
                "inbound SMS STOP with Advanced Opt-Out",
                "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01&Body=STOP\
                 &From=%2B15558675310&MessageSid=SM11111111111111111111111111111111\
                 &MessagingServiceSid=MG22222222222222222222222222222222&NumMedia=0\
                 &NumSegments=1&OptOutType=STOP&SmsMessageSid=SM11111111111111111111111111111111\
                 &SmsSid=SM11111111111111111111111111111111&SmsStatus=received&To=%2B15017122661",
                Ok((
                    CallbackKind::Inbound,
                    vec![event(
                        "SM11111111111111111111111111111111",
                        Sms,
                        "+15558675310",
                        inbound("STOP", Some(OptOut)),
                    )],
                )),
            ),
            (
                "inbound START and HELP verdicts, any case",
                "MessageSid=SM2&From=%2B15558675310&To=%2B15017122661&Body=start&OptOutType=start",
                Ok((
                    CallbackKind::Inbound,
                    vec![event(
                        "SM2",
                        Sms,
                        "+15558675310",
                        inbound("start", Some(OptIn)),
                    )],
                )),
            ),
            (
                "inbound HELP",
                "MessageSid=SM3&From=%2B15558675310&Body=Help&OptOutType=HELP&SmsStatus=received",
                Ok((
                    CallbackKind::Inbound,
                    vec![event(
                        "SM3",
                        Sms,
                        "+15558675310",
                        inbound("Help", Some(Help)),
                    )],
                )),
            ),
            (
                "unknown OptOutType is no verdict",
                "MessageSid=SM4&From=%2B15558675310&Body=hi&OptOutType=MAYBE",
                Ok((
                    CallbackKind::Inbound,
                    vec![event("SM4", Sms, "+15558675310", inbound("hi", None))],
                )),
            ),
            (
                "inbound WhatsApp",
                "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01\
                 &Body=Hello%20from%20WhatsApp&From=whatsapp%3A%2B14155238886\
                 &MessageSid=SM33333333333333333333333333333333&NumMedia=0&ProfileName=Alice\
                 &SmsStatus=received&To=whatsapp%3A%2B15017122661&WaId=14155238886",
                Ok((
                    CallbackKind::Inbound,
                    vec![event(
                        "SM33333333333333333333333333333333",
                        Whatsapp,
                        "+14155238886",
                        inbound("Hello from WhatsApp", None),
                    )],
                )),
            ),
            (
                "MMS without Body, legacy sid only",
                "SmsMessageSid=MM5&From=%2B15558675310&To=%2B15017122661&NumMedia=1\
                 &MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm&MediaContentType0=image%2Fjpeg",
                Ok((
                    CallbackKind::Inbound,
                    vec![event("MM5", Sms, "+15558675310", inbound("", None))],
                )),
            ),
            (
                "status undelivered 30003",
                "MessageSid=SM6&MessageStatus=undelivered&ErrorCode=30003&To=%2B15558675310\
                 &From=%2B15017122661&AccountSid=AC00000000000000000000000000000000\
                 &SmsSid=SM6&SmsStatus=undelivered&ApiVersion=2010-04-01",
                Ok((
                    CallbackKind::Status,
                    vec![event(
                        "SM6:undelivered",
                        Sms,
                        "+15558675310",
                        status("undelivered", Some("30003")),
                    )],
                )),
            ),
            (
                "status delivered without ErrorCode",
                "MessageSid=SM7&MessageStatus=delivered&To=%2B15558675310&From=%2B15017122661\
                 &SmsStatus=delivered&RawDlrDoneDate=2401011200",
                Ok((
                    CallbackKind::Status,
                    vec![event(
                        "SM7:delivered",
                        Sms,
                        "+15558675310",
                        status("delivered", None),
                    )],
                )),
            ),
            (
                "status with empty ErrorCode",
                "MessageSid=SM8&MessageStatus=sent&ErrorCode=&To=%2B15558675310",
                Ok((
                    CallbackKind::Status,
                    vec![event("SM8:sent", Sms, "+15558675310", status("sent", None))],
                )),
            ),
            (
                "WhatsApp status by To prefix",
                "MessageSid=SM9&MessageStatus=read&To=whatsapp%3A%2B15558675310\
                 &From=whatsapp%3A%2B15017122661&ChannelPrefix=whatsapp",
                Ok((
                    CallbackKind::Status,
                    vec![event(
                        "SM9:read",
                        Whatsapp,
                        "+15558675310",
                        status("read", None),
                    )],
                )),
            ),
            (
                "WhatsApp status by ChannelPrefix only",
                "MessageSid=SM10&MessageStatus=failed&ErrorCode=63016&To=%2B15558675310\
                 &ChannelPrefix=WhatsApp",
                Ok((
                    CallbackKind::Status,
                    vec![event(
                        "SM10:failed",
                        Whatsapp,
                        "+15558675310",
                        status("failed", Some("63016")),
                    )],
                )),
            ),
            (
                "inbound with MessageStatus=received and no SmsStatus",
                "MessageSid=SM16&MessageStatus=received&From=%2B15558675310&Body=Stop",
                Ok((
                    CallbackKind::Inbound,
                    vec![event("SM16", Sms, "+15558675310", inbound("Stop", None))],
                )),
            ),
            (
                "status of an inbound message is ignored",
                "MessageSid=SM11&MessageStatus=received&To=%2B15017122661&From=%2B15558675310",
                Ok((CallbackKind::Status, vec![])),
            ),
            (
                "voice call callback is ignored",
                "CallSid=CA1234567890ABCDE&AccountSid=AC0&Caller=%2B14158675309\
                 &From=%2B14158675309&To=%2B18005551212&CallStatus=ringing&Direction=inbound",
                Ok((CallbackKind::Status, vec![])),
            ),
            (
                "empty body is ignored",
                "",
                Ok((CallbackKind::Status, vec![])),
            ),
            (
                "inbound without MessageSid",
                "From=%2B15558675310&Body=STOP",
                Err("MessageSid is missing"),
            ),
            (
                "status without MessageSid",
                "MessageStatus=failed&To=%2B15558675310",
                Err("MessageSid is missing"),
            ),
            (
                "inbound without From",
                "MessageSid=SM12&Body=STOP",
                Err("From is missing"),
            ),
            (
                "From without country code",
                "MessageSid=SM14&From=4155551234&Body=STOP",
                Err("From is not a valid sms address"),
            ),
            (
                "To that is not a number",
                "MessageSid=SM15&MessageStatus=failed&To=whatsapp%3Anobody",
                Err("To is not a valid whatsapp address"),
            ),
        ];
        for (name, body, want) in rows {
            let params = parse_form(body.as_bytes()).expect(name);
            let got = normalise(&params, NOW);
            match want {
                Ok((kind, events)) => {
                    let rejected = Vec::new();
                    assert_eq!(
                        got,
                        Ok(Normalised {
                            kind,
                            events,
                            rejected,
                            unaddressed: None,
                        }),
                        "{name}"
                    );
                }
                Err(fragment) => {
                    let err = got.expect_err(name);
                    assert_eq!(err.kind, Kind::BadRequest, "{name}");
                    assert!(err.message.contains(fragment), "{name}: {}", err.message);
                    assert!(!err.message.contains('\n'), "{name}: one line");
                }
            }
        }
    }

    /// Issue 12 item 15: a status callback without `To` (Twilio's docs example for
    /// `sent`) is ignored, not a 400; its status and error code are kept for the
    /// pipeline's warning.
    #[test]
    fn item_15_status_without_to_is_ignored_not_refused() {
        for (body, status, code) in [
            (
                "AccountSid=AC0&From=%2B15017122661&MessageSid=SM13&MessageStatus=sent\
                 &SmsSid=SM13&SmsStatus=sent",
                "sent",
                None,
            ),
            (
                "MessageSid=SM13&MessageStatus=failed&ErrorCode=30004&To=",
                "failed",
                Some("30004"),
            ),
        ] {
            let got = normalise(&parse_form(body.as_bytes()).unwrap(), NOW).unwrap();
            assert_eq!(
                got,
                Normalised {
                    unaddressed: Some(UnaddressedStatus {
                        message_sid: "SM13".into(),
                        status: status.into(),
                        error_code: code.map(str::to_string),
                    }),
                    ..Normalised::ignored()
                },
                "{body}"
            );
        }
    }

    #[test]
    fn parse_form_keeps_order_and_repeats() {
        let got = parse_form(b"b=2&a=1&&a=x+y%2Bz&flag&e=").unwrap();
        let want: Vec<(String, String)> = [
            ("b", "2"),
            ("a", "1"),
            ("a", "x y+z"),
            ("flag", ""),
            ("e", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            parse_form("Body=Arr%C3%AAt".as_bytes()).unwrap(),
            vec![("Body".to_string(), "Arrêt".to_string())]
        );
    }

    #[test]
    fn parse_form_refuses_what_it_cannot_decode_exactly() {
        for bad in [
            &b"Body=100%"[..],
            b"Body=%zz",
            b"Body=%4",
            b"Body=%FF%FE",
            b"A=1&\xff=2",
        ] {
            let err = parse_form(bad).unwrap_err();
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(
                err.message.starts_with("form body is not valid"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn account_sid_names_the_tenant() {
        let params = parse_form(b"AccountSid=AC123&MessageSid=SM1").unwrap();
        assert_eq!(account_sid(&params), Some("AC123"));
        assert_eq!(account_sid(&parse_form(b"AccountSid=").unwrap()), None);
        assert_eq!(account_sid(&[]), None);
    }

    /// Event Streams bodies in the documented shapes (twilio.com/docs/events/event-types/
    /// messaging/inbound-message and .../outbound-message).
    #[test]
    fn event_streams_documented_shapes() {
        let body = br#"[
          {"specversion":"1.0","type":"com.twilio.messaging.inbound-message.received",
           "source":"AB00000000000000000000000001","id":"NO00000000000000000000000001",
           "dataschema":"https://events-schemas.twilio.com/Messaging.InboundMessageV1/6",
           "data":{"messageSid":"SM0000000000000000000000000000001",
             "timestamp":"2025-01-01T00:00:00.000Z",
             "accountSid":"AC0000000000000000000000000000001",
             "eventName":"com.twilio.messaging.inbound-message.received",
             "from":"+11234567890","to":"+12345678901","numMedia":0,"body":"Ahoy!"}},
          {"specversion":"1.0","type":"com.twilio.messaging.message.undelivered",
           "source":"AB00000000000000000000000001","id":"NO00000000000000000000000002",
           "dataschema":"https://events-schemas.twilio.com/Messaging.MessageStatus/8",
           "data":{"messageSid":"SM0000000000000000000000000000002",
             "timestamp":"2024-05-29T10:57:57.563495225Z","accountSid":"AC0",
             "eventName":"com.twilio.messaging.message.undelivered","apiVersion":"2010-04-01",
             "from":"+11234567890","to":"+12345678901","messageStatus":"UNDELIVERED",
             "errorCode":30003}},
          {"specversion":"1.0","type":"com.twilio.messaging.message.failed",
           "data":{"messageSid":"SM3","to":"whatsapp:+12345678901","messageStatus":"FAILED",
             "errorCode":"30008"}},
          {"specversion":"1.0","type":"com.twilio.messaging.message.delivered",
           "data":{"messageSid":"SM4","to":"+12345678901"}},
          {"specversion":"1.0","type":"com.twilio.conversations.message.added",
           "data":{"MessageSid":"IM1"}}
        ]"#;
        let got = normalise_event_streams(body, NOW).unwrap();
        assert_eq!(got.kind, CallbackKind::Status);
        let mut want = vec![
            event(
                "SM0000000000000000000000000000001",
                Channel::Sms,
                "+11234567890",
                inbound("Ahoy!", None),
            ),
            event(
                "SM0000000000000000000000000000002:undelivered",
                Channel::Sms,
                "+12345678901",
                status("undelivered", Some("30003")),
            ),
            event(
                "SM3:failed",
                Channel::Whatsapp,
                "+12345678901",
                status("failed", Some("30008")),
            ),
            event(
                "SM4:delivered",
                Channel::Sms,
                "+12345678901",
                status("delivered", None),
            ),
        ];
        want[0].event_time_ms = 1_735_689_600_000;
        want[1].event_time_ms = 1_716_980_277_563;
        assert_eq!(got.events, want);
    }

    #[test]
    fn event_streams_refusals() {
        for (body, fragment) in [(&b"not json"[..], "not JSON"), (b"42", "neither an array")] {
            let err = normalise_event_streams(body, NOW).unwrap_err();
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(err.message.contains(fragment), "{}", err.message);
        }
        // A bad event in a batch is reported; the good ones around it are kept.
        for (bad, fragment) in [
            (r#"{"data":{}}"#, "event 1: it has no type"),
            (
                r#"{"type":"com.twilio.messaging.message.failed","data":{"to":"+12345678901"}}"#,
                "event 1: com.twilio.messaging.message.failed has no data.messageSid",
            ),
            (
                r#"{"type":"com.twilio.messaging.inbound-message.received","data":{"messageSid":"SM1","from":"12"}}"#,
                "data.from is not a valid sms address",
            ),
        ] {
            let good = r#"{"type":"com.twilio.messaging.message.sent","data":{"messageSid":"SM9","to":"+12345678901"}}"#;
            let body = format!("[{good},{bad},{good}]");
            let got = normalise_event_streams(body.as_bytes(), NOW).unwrap();
            assert_eq!(got.events.len(), 2, "{bad}");
            assert_eq!(got.rejected.len(), 1, "{bad}");
            assert!(got.rejected[0].contains(fragment), "{}", got.rejected[0]);
        }
        let single = br#"{"type":"com.twilio.messaging.message.sent","data":{"messageSid":"SM1","to":"+12345678901"}}"#;
        assert_eq!(
            normalise_event_streams(single, NOW).unwrap().events.len(),
            1
        );
    }

    /// Found by the twilio_json fuzz target: an event type with a line break was
    /// echoed raw into the refusal, which spans lines in the answer and the log.
    #[test]
    fn a_refusal_that_echoes_the_event_type_is_one_line() {
        let body = br#"[{"specversion": "1.0", "type": "com.twilio.messaging.message.failed\r\nX: y", "data": {}}]"#;
        let n = normalise_event_streams(body, 0).unwrap();
        assert_eq!(n.rejected.len(), 1, "{n:?}");
        assert!(!n.rejected[0].contains(['\n', '\r']), "{:?}", n.rejected[0]);
        assert!(
            n.rejected[0].contains("failed\\r\\nX: y"),
            "{:?}",
            n.rejected[0]
        );
    }
}
