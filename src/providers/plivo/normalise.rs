//! Plivo Messaging webhooks: parse and normalise. Verification is [`super::verify`];
//! this module never touches Redis.
//!
//! Two callbacks arrive, both as form parameters
//! (<https://www.plivo.com/docs/messaging/api/message/handling-incoming>,
//! <https://www.plivo.com/docs/messaging/api/message/message-status-callbacks>):
//!
//! | callback | recognised by | event |
//! |---|---|---|
//! | inbound message (the application's `message_url`) | no `Status`; `Text`, `Body` or `MediaCount` | an inbound message from `From`, body `Text` (SMS) or `Body` (MMS, WhatsApp), with Plivo's own verdict from `MessageIntent` (`optout`, `optin`, `help`) |
//! | message status (the `url` of a send) | `Status` | `failed`, `undelivered` (and the older `rejected`): a delivery status for `To` with `ErrorCode`, looked up in `providers/plivo.toml`; `queued`, `sent`, `delivered`, `read`: nothing (skipped and counted) |
//! | anything else | | nothing (skipped and counted) |
//!
//! `Type` picks the channel: `whatsapp` is WhatsApp, `sms` and `mms` (or none) SMS.
//! Plivo writes numbers in E.164 without the `+` (`14155550100`); one is put in front
//! of a number that starts with a digit. Plivo sends no event time on an inbound
//! message, so events carry the time of receipt. The event id, the dedup key, is
//! `MessageUUID` for an inbound message and `MessageUUID:status` for a status (one
//! message has several), so Plivo's retries are applied once.

use super::SOURCE;
use crate::address::Address;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind, MAX_EVENT_ID_LEN, ProviderVerdict};

/// The statuses of a message Plivo could not send or deliver: the only ones whose
/// `ErrorCode` is read (Plivo defines it for these only; `000` elsewhere means none).
const FAILED: [&str; 3] = ["failed", "undelivered", "rejected"];

/// Which callback a request was; it decides the answer (an inbound message gets an
/// empty Plivo XML `<Response/>`: no reply to the contact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// The `message_url` callback: a contact wrote to us.
    Inbound,
    /// A status callback, or a callback we do not act on.
    Status,
}

/// What one request taught us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// Which callback it was.
    pub kind: CallbackKind,
    /// Its events (none or one).
    pub events: Vec<ChannelEvent>,
    /// Why it carries nothing to apply, when it does not; for the answer and the
    /// skipped metric.
    pub ignored: Option<String>,
}

impl Normalised {
    fn ignored(why: String) -> Normalised {
        Normalised {
            kind: CallbackKind::Status,
            events: Vec::new(),
            ignored: Some(why),
        }
    }
}

/// Decode `application/x-www-form-urlencoded` bytes (a body or a query) into their
/// pairs, in order, repeated names kept; a pair without `=` has an empty value.
///
/// Strict: a `%` not followed by two hex digits, or text that is not UTF-8 once
/// decoded, is refused rather than repaired, since a repaired value is not the value
/// Plivo signed.
pub fn decode_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    raw.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

fn decode_component(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |at: usize| raw.get(at).and_then(|&b| (b as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err("a % is not followed by two hex digits"),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "it is not UTF-8 once decoded")
}

/// A form body's pairs ([`decode_pairs`]); 400 when it is not one.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    decode_pairs(body).map_err(|why| {
        Error::bad_request(format!(
            "Plivo form body is not valid x-www-form-urlencoded: {why}"
        ))
    })
}

/// Normalise a verified Plivo callback's parameters received at `received_ms`
/// (milliseconds since the Unix epoch).
///
/// 400 only for what Plivo would send the same way on every retry and that can never
/// be applied: a message callback without `MessageUUID` (or one too long to be an id),
/// an inbound message without `From`, or a number that is not one.
pub fn normalise(params: &[(String, String)], received_ms: i64) -> Result<Normalised, Error> {
    let status = non_empty(params, "Status");
    let has_content = ["Text", "Body", "MediaCount"]
        .iter()
        .any(|name| field(params, name).is_some());
    match status {
        None if has_content => inbound(params, received_ms),
        None => Ok(Normalised::ignored(
            "a Plivo callback with neither Status nor Text: not a message callback".into(),
        )),
        Some(status) => status_callback(params, status, received_ms),
    }
}

fn inbound(params: &[(String, String)], received_ms: i64) -> Result<Normalised, Error> {
    let uuid = message_uuid(params)?;
    let Some(channel) = channel(params) else {
        return Ok(Normalised::ignored(unknown_type(params, uuid)));
    };
    let from = non_empty(params, "From")
        .ok_or_else(|| Error::bad_request("From is missing: cannot tell who sent the message"))?;
    let body = non_empty(params, "Text")
        .or_else(|| field(params, "Body"))
        .unwrap_or_default();
    let event = ChannelEvent::new(
        SOURCE,
        uuid.to_string(),
        received_ms,
        channel,
        address(channel, "From", from)?,
        EventKind::Inbound {
            body: body.to_string(),
            payload: None,
            provider_verdict: non_empty(params, "MessageIntent").and_then(intent),
        },
    );
    Ok(Normalised {
        kind: CallbackKind::Inbound,
        events: vec![event],
        ignored: None,
    })
}

fn status_callback(
    params: &[(String, String)],
    status: &str,
    received_ms: i64,
) -> Result<Normalised, Error> {
    let uuid = message_uuid(params)?;
    let status = status.to_ascii_lowercase();
    if !FAILED.contains(&status.as_str()) {
        // Both come from the request: quoted, so the line stays one line.
        return Ok(Normalised::ignored(format!(
            "message {}: status {} carries no DND signal",
            quoted(uuid),
            quoted(&status)
        )));
    }
    let Some(channel) = channel(params) else {
        return Ok(Normalised::ignored(unknown_type(params, uuid)));
    };
    // Plivo writes 000 for "no error" in its message records.
    let error_code = non_empty(params, "ErrorCode")
        .filter(|code| code.bytes().any(|b| b != b'0'))
        .map(str::to_string);
    let Some(to) = non_empty(params, "To") else {
        return Ok(Normalised::ignored(format!(
            "message {}: status {} names no recipient (To): nothing to apply it to",
            quoted(uuid),
            quoted(&status)
        )));
    };
    let event = ChannelEvent::new(
        SOURCE,
        format!("{uuid}:{status}"),
        received_ms,
        channel,
        address(channel, "To", to)?,
        EventKind::DeliveryStatus { status, error_code },
    );
    Ok(Normalised {
        kind: CallbackKind::Status,
        events: vec![event],
        ignored: None,
    })
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A field that is present and not blank.
fn non_empty<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    field(params, name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn message_uuid(params: &[(String, String)]) -> Result<&str, Error> {
    let uuid = non_empty(params, "MessageUUID").ok_or_else(|| {
        Error::bad_request("MessageUUID is missing: cannot identify the message or dedupe it")
    })?;
    if uuid.len() > MAX_EVENT_ID_LEN {
        return Err(Error::bad_request(format!(
            "MessageUUID is {} bytes long, more than the {MAX_EVENT_ID_LEN} of an id",
            uuid.len()
        )));
    }
    Ok(uuid)
}

/// The channel of `Type`: `None` for a type Plivo does not document for messages.
fn channel(params: &[(String, String)]) -> Option<Channel> {
    match non_empty(params, "Type")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("sms" | "mms") => Some(Channel::Sms),
        Some("whatsapp") => Some(Channel::Whatsapp),
        Some(_) => None,
    }
}

fn unknown_type(params: &[(String, String)], uuid: &str) -> String {
    let kind = non_empty(params, "Type").unwrap_or_default();
    format!(
        "message {}: type {} is not sms, mms or whatsapp",
        quoted(uuid),
        quoted(kind)
    )
}

/// A number as Plivo writes it (E.164 without `+`), normalised.
fn address(channel: Channel, name: &str, raw: &str) -> Result<Address, Error> {
    let with_plus;
    let raw = if raw.starts_with(|c: char| c.is_ascii_digit()) && !raw.starts_with("00") {
        with_plus = format!("+{raw}");
        with_plus.as_str()
    } else {
        raw
    };
    Address::parse(channel, raw)
        .map_err(|e| Error::bad_request(format!("{name} is not a valid {channel} address: {e}")))
}

/// Plivo's `MessageIntent`: what its own keyword lists made of the message.
fn intent(value: &str) -> Option<ProviderVerdict> {
    match value.to_ascii_lowercase().as_str() {
        "optout" => Some(ProviderVerdict::OptOut),
        "optin" => Some(ProviderVerdict::OptIn),
        "help" => Some(ProviderVerdict::Help),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::providers::plivo::Plivo;
    use crate::providers::testkit::{self, PERM, TEMP};

    const NOW: i64 = 1_765_000_000_000;

    fn form(body: &str) -> Vec<(String, String)> {
        decode_pairs(body.as_bytes()).expect("test form")
    }

    #[test]
    fn what_a_request_names_stays_on_one_line_in_a_skip_message() {
        // Found by the fuzzer: a status with newlines in it spanned lines of the answer.
        for body in [
            "MessageUUID=a%0Ab&Status=queued%0A%0Asent",
            "MessageUUID=a%0Ab&Status=failed&Type=fax%0A",
            "MessageUUID=a%0Ab&Status=failed&ErrorCode=50",
        ] {
            let n = normalise(&form(body), NOW).unwrap();
            let why = n.ignored.expect(body);
            assert!(!why.contains(['\n', '\r']), "{why:?}");
        }
    }

    fn one(body: &str) -> ChannelEvent {
        let n = normalise(&form(body), NOW).expect(body);
        assert_eq!(n.events.len(), 1, "{body}: {n:?}");
        n.events.into_iter().next().unwrap()
    }

    const INBOUND: &str = "From=14155550100&To=14155550199&Type=sms&Units=1&TotalRate=0.0&TotalAmount=0.0&MessageUUID=2bd1b9a2-6b9c-11ea-8f8c-0242ac110003";

    #[test]
    fn inbound_sms_is_read() {
        let e = one(&format!("{INBOUND}&Text=Stop&MessageIntent=optout"));
        assert_eq!(
            testkit::identity(&e),
            (
                SOURCE,
                Channel::Sms,
                "+14155550100",
                "2bd1b9a2-6b9c-11ea-8f8c-0242ac110003",
                NOW
            )
        );
        assert_eq!(
            e.kind,
            EventKind::Inbound {
                body: "Stop".into(),
                payload: None,
                provider_verdict: Some(ProviderVerdict::OptOut)
            }
        );
        let n = normalise(&form(&format!("{INBOUND}&Text=hi")), NOW).unwrap();
        assert_eq!(n.kind, CallbackKind::Inbound);
    }

    #[test]
    fn inbound_decisions_by_keyword_and_intent() {
        let cases = [
            ("Text=STOP", PERM, "keyword:STOP"),
            ("Text=stop%0A", PERM, "keyword:STOP"),
            ("Text=START", Action::Unblock, "keyword:START"),
            ("Text=HELP", Action::Help, "keyword:HELP"),
            ("Text=see+you+soon", Action::Reachable, "inbound"),
            // Plivo's verdict where ours has none; the opt-out side wins where both do.
            (
                "Text=Unsubscribe+me&MessageIntent=optout",
                PERM,
                "provider:STOP",
            ),
            ("Text=STOP&MessageIntent=optin", PERM, "keyword:STOP"),
            ("Text=START&MessageIntent=optout", PERM, "provider:STOP"),
            (
                "Text=UNSTOP&MessageIntent=optin",
                Action::Unblock,
                "provider:START",
            ),
            ("Text=what&MessageIntent=", Action::Reachable, "inbound"),
            (
                "Type=mms&Body=STOP&MediaCount=1&Media1=https%3A%2F%2Fm",
                PERM,
                "keyword:STOP",
            ),
        ];
        for (extra, action, reason) in cases {
            let e = one(&format!("{INBOUND}&{extra}"));
            assert_eq!(
                testkit::decide::<Plivo>(&e),
                (action, reason.to_string()),
                "{extra}"
            );
        }
    }

    #[test]
    fn whatsapp_inbound_is_on_whatsapp() {
        let e = one("From=14155550100&To=14155550199&Type=whatsapp&Body=STOP&MessageUUID=w1");
        assert_eq!(e.channel, Channel::Whatsapp);
        assert_eq!(e.address.as_str(), "+14155550100");
    }

    const STATUS: &str = "MessageUUID=db3ce55a-7f1d-11e1-8ea7-1231380bc196&From=14155550199&To=14155550101&Type=sms&Units=1&TotalRate=0.0050&TotalAmount=0.0050&MCC=310&MNC=260&Sequence=2";

    #[test]
    fn status_decisions_by_code_table() {
        let cases = [
            ("Status=failed&ErrorCode=200", PERM, "plivo:200"),
            ("Status=undelivered&ErrorCode=50", PERM, "plivo:50"),
            ("Status=undelivered&ErrorCode=80", TEMP, "plivo:80"),
            ("Status=undelivered&ErrorCode=70", TEMP, "plivo:70"),
            ("Status=failed&ErrorCode=30", Action::None, "plivo:30"),
            ("Status=failed&ErrorCode=900", Action::None, "plivo:900"),
            (
                "Status=failed&ErrorCode=99999",
                Action::None,
                "unclassified:plivo:99999",
            ),
            ("Status=failed", Action::None, "status:failed"),
            (
                "Status=Undelivered&ErrorCode=000",
                Action::None,
                "status:undelivered",
            ),
        ];
        for (extra, action, reason) in cases {
            let e = one(&format!("{STATUS}&{extra}"));
            assert_eq!(e.address.as_str(), "+14155550101");
            assert!(
                e.event_id
                    .starts_with("db3ce55a-7f1d-11e1-8ea7-1231380bc196:"),
                "{extra}"
            );
            assert_eq!(
                testkit::decide::<Plivo>(&e),
                (action, reason.to_string()),
                "{extra}"
            );
        }
    }

    #[test]
    fn callbacks_without_a_signal_are_skipped_not_refused() {
        for extra in [
            "Status=delivered&ErrorCode=000",
            "Status=queued",
            "Status=sent",
            "Status=read&Type=whatsapp",
        ] {
            let n = normalise(&form(&format!("{STATUS}&{extra}")), NOW).unwrap();
            assert!(n.events.is_empty(), "{extra}");
            assert!(
                n.ignored.as_deref().unwrap().contains("no DND signal"),
                "{extra}"
            );
        }
        let no_to = normalise(&form("MessageUUID=x&Status=failed&ErrorCode=200"), NOW).unwrap();
        assert!(no_to.ignored.unwrap().contains("names no recipient"));
        let voice = normalise(&form("CallUUID=c&CallStatus=completed&From=1&To=2"), NOW).unwrap();
        assert!(voice.events.is_empty() && voice.ignored.is_some());
        let rcs = normalise(
            &form("From=14155550100&Type=rcs&Text=STOP&MessageUUID=r"),
            NOW,
        )
        .unwrap();
        assert!(rcs.events.is_empty() && rcs.ignored.unwrap().contains("rcs"));
    }

    #[test]
    fn refusals_are_for_what_never_succeeds() {
        let long = "u".repeat(MAX_EVENT_ID_LEN + 1);
        let cases = [
            (
                "From=14155550100&Text=STOP".to_string(),
                "messageuuid is missing",
            ),
            ("MessageUUID=a&Text=STOP".to_string(), "from is missing"),
            (
                "MessageUUID=a&From=hello&Text=STOP".to_string(),
                "from is not a valid sms",
            ),
            (
                "MessageUUID=a&To=0&Status=failed&ErrorCode=200".to_string(),
                "to is not a valid sms",
            ),
            (
                format!("MessageUUID={long}&From=14155550100&Text=STOP"),
                "bytes long",
            ),
        ];
        for (body, fragment) in cases {
            let e = normalise(&form(&body), NOW).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::BadRequest, "{body}");
            assert!(
                e.message.to_lowercase().contains(fragment),
                "{body}: {}",
                e.message
            );
            assert!(!e.message.contains('\n'));
        }
    }

    #[test]
    fn forms_decode_strictly() {
        assert_eq!(
            decode_pairs(b"a=1+2&b=%3C%3E&c&&d=").unwrap(),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "<>".into()),
                ("c".into(), String::new()),
                ("d".into(), String::new()),
            ]
        );
        for bad in [&b"a=%"[..], b"a=%2", b"a=%zz", b"a=%ff"] {
            assert!(decode_pairs(bad).is_err(), "{bad:?}");
            let e = parse_form(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::BadRequest);
        }
    }

    #[test]
    fn numbers_are_read_with_or_without_plus() {
        for (raw, want) in [
            ("14155550100", "+14155550100"),
            ("+14155550100", "+14155550100"),
            ("0014155550100", "+14155550100"),
        ] {
            assert_eq!(
                address(Channel::Sms, "From", raw).unwrap().as_str(),
                want,
                "{raw}"
            );
        }
    }
}
