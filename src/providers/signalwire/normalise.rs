//! SignalWire provider: read its cXML messaging webhooks. SignalWire posts Twilio's
//! parameter names (`MessageSid`, `AccountSid`, `From`, `To`, `Body`, `NumMedia`;
//! `MessageStatus` and `ErrorCode` on status callbacks), so the form is decoded and read
//! by Twilio's code ([`crate::providers::twilio::normalise`]), with SignalWire's source
//! on the events. This module never touches Redis.
//!
//! - An inbound message becomes one inbound event for `From` (keywords decide: SignalWire
//!   documents no opt-out verdict such as Twilio's `OptOutType`; one is read if sent).
//! - A status callback (`MessageStatus`) becomes one delivery status for `To`, event id
//!   `MessageSid:status`; its `ErrorCode` is looked up in `providers/signalwire.toml`.
//!   SignalWire's status callback also carries `Body` and `NumMedia`: it is still read
//!   as a status, because its `MessageStatus` is not `received`.
//! - Anything else (a voice callback, a status of an inbound message) is skipped with
//!   2xx; a message without `MessageSid`, or an address that does not parse, is a 400.
//!
//! SignalWire's ids are UUIDs: `AccountSid` is the project id, not `AC` and 32 hex
//! digits as on Twilio.

use crate::error::Error;
use crate::providers::twilio::normalise as twilio;

pub use crate::providers::twilio::normalise::{Normalised, parse_form};

use super::SOURCE;

/// Normalise a decoded form (from [`parse_form`]) received at `received_ms`
/// (milliseconds since the Unix epoch). See the module documentation.
pub fn normalise(params: &[(String, String)], received_ms: i64) -> Result<Normalised, Error> {
    twilio::normalise_as(SOURCE, params, received_ms)
}

/// The `AccountSid` of a form webhook (the SignalWire project id): the tenant key on the
/// shared route `POST /webhooks/signalwire`.
pub fn project_id(params: &[(String, String)]) -> Option<&str> {
    twilio::account_sid(params)
}

/// A SignalWire project id: a UUID written as 8-4-4-4-12 hex digits (either case).
pub fn is_project_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::event::{Channel, EventKind, ProviderVerdict};
    use crate::providers::signalwire::SignalWire;
    use crate::providers::testkit::{self, PERM, TEMP};
    use crate::providers::twilio::normalise::CallbackKind;

    const NOW: i64 = 1_700_000_000_000;
    const PROJECT: &str = "b3877c40-da60-4998-90ad-b792e98472af";
    const SID: &str = "b3877c40-da60-4998-90ad-b792e98472ms";

    fn form(body: &str) -> Vec<(String, String)> {
        parse_form(body.as_bytes()).expect("test body is form-encoded")
    }

    /// SignalWire's documented inbound request parameters (Messaging XML, "Request
    /// parameters").
    fn inbound(body: &str) -> Vec<(String, String)> {
        form(&format!(
            "MessageSid={SID}&AccountSid={PROJECT}&From=%2B15551234567&To=%2B15559876543&Body={body}&NumMedia=0"
        ))
    }

    /// SignalWire's documented status callback (SmsStatusCallbackPayload).
    fn status(status: &str, code: Option<&str>) -> Vec<(String, String)> {
        let code = code.map(|c| format!("&ErrorCode={c}")).unwrap_or_default();
        form(&format!(
            "MessageStatus={status}{code}&MessageSid={SID}&AccountSid={PROJECT}&From=%2B15551234567&To=%2B15559876543&Body=Hey%2C+your+order+has+shipped%21&NumMedia=0&NumSegments=1"
        ))
    }

    #[test]
    fn an_inbound_stop_is_an_inbound_event_with_signalwire_as_its_source() {
        let n = normalise(&inbound("STOP"), NOW).expect("normalises");
        assert_eq!(n.kind, CallbackKind::Inbound);
        assert_eq!(n.events.len(), 1);
        let e = &n.events[0];
        assert_eq!(
            testkit::identity(e),
            (SOURCE, Channel::Sms, "+15551234567", SID, NOW)
        );
        assert_eq!(e.provider.as_str(), "signalwire");
        assert!(
            matches!(&e.kind, EventKind::Inbound { body, provider_verdict: None, .. } if body == "STOP")
        );
        assert_eq!(
            testkit::decide::<SignalWire>(e),
            (PERM, "keyword:STOP".to_string())
        );
        let start = normalise(&inbound("start"), NOW).expect("normalises");
        assert_eq!(
            testkit::decide::<SignalWire>(&start.events[0]).0,
            Action::Unblock
        );
    }

    #[test]
    fn an_opt_out_verdict_is_read_when_present() {
        let mut params = inbound("please+no+more");
        params.push(("OptOutType".into(), "STOP".into()));
        let n = normalise(&params, NOW).expect("normalises");
        assert!(matches!(
            &n.events[0].kind,
            EventKind::Inbound {
                provider_verdict: Some(ProviderVerdict::OptOut),
                ..
            }
        ));
    }

    #[test]
    fn a_status_callback_is_a_delivery_status_for_to_classified_by_signalwire_codes() {
        let cases = [
            ("undelivered", Some("30003"), TEMP, "signalwire:30003"),
            ("undelivered", Some("30004"), PERM, "signalwire:30004"),
            ("failed", Some("21610"), PERM, "signalwire:21610"),
            ("failed", Some("30007"), Action::None, ""),
            ("delivered", None, Action::None, ""),
        ];
        for (st, code, action, reason) in cases {
            let n = normalise(&status(st, code), NOW).expect("normalises");
            assert_eq!(n.kind, CallbackKind::Status, "{st}");
            assert_eq!(n.events.len(), 1, "{st}");
            let e = &n.events[0];
            assert_eq!(
                testkit::identity(e),
                (
                    SOURCE,
                    Channel::Sms,
                    "+15559876543",
                    format!("{SID}:{st}").as_str(),
                    NOW
                )
            );
            let (got, why) = testkit::decide::<SignalWire>(e);
            assert_eq!(got, action, "{st} {code:?}: {why}");
            if !reason.is_empty() {
                assert_eq!(why, reason);
            }
        }
    }

    #[test]
    fn records_without_a_signal_are_skipped_not_refused() {
        // A status of an inbound message, and a voice callback: 2xx, nothing to apply.
        for body in [
            format!(
                "MessageStatus=received&MessageSid={SID}&AccountSid={PROJECT}&From=%2B15551234567&To=%2B15559876543"
            ),
            format!(
                "CallSid={SID}&AccountSid={PROJECT}&CallStatus=completed&From=%2B15551234567&To=%2B15559876543"
            ),
        ] {
            let n = normalise(&form(&body), NOW).expect("skipped, not refused");
            assert!(n.events.is_empty(), "{body}");
        }
        // A status callback without To: ignored, kept for a warning.
        let n = normalise(
            &form(&format!(
                "MessageStatus=undelivered&ErrorCode=30003&MessageSid={SID}"
            )),
            NOW,
        )
        .expect("ignored");
        assert!(n.events.is_empty());
        assert_eq!(
            n.unaddressed.map(|u| u.error_code),
            Some(Some("30003".to_string()))
        );
    }

    #[test]
    fn what_can_never_succeed_is_a_400() {
        for body in [
            "From=%2B15551234567&Body=STOP".to_string(),
            format!("MessageSid={SID}&Body=STOP"),
            format!("MessageSid={SID}&From=not-a-number&Body=STOP"),
        ] {
            let err = normalise(&form(&body), NOW).expect_err(&body);
            assert_eq!(err.kind, crate::error::Kind::BadRequest, "{body}");
            assert!(!err.message.contains('\n'));
        }
    }

    #[test]
    fn project_ids() {
        assert_eq!(project_id(&inbound("hi")), Some(PROJECT));
        assert!(is_project_id(PROJECT));
        assert!(is_project_id(&PROJECT.to_uppercase()));
        for bad in [
            "",
            "AC00000000000000000000000000000000",
            "b3877c40da60499890adb792e98472af",
            "b3877c40-da60-4998-90ad-b792e98472a",
            "b3877c40-da60-4998-90ad-b792e98472ag",
            "b3877c40-da60-4998-90ad-b792e98472af-0",
        ] {
            assert!(!is_project_id(bad), "{bad}");
        }
    }
}
