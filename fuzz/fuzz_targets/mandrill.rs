//! Mandrill (Mailchimp Transactional) webhooks: the form, `mandrill_events`, the batch,
//! `normalise`.
#![no_main]

use dndgate::providers::mandrill::normalise as mandrill;
use dndgate::providers::twilio::normalise::parse_form;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = match parse_form(data) {
        Ok(params) => params,
        Err(e) => return check_error(&e),
    };
    let json = match mandrill::events_param(&params) {
        Ok(json) => json,
        Err(e) => return check_error(&e),
    };
    match mandrill::parse(json) {
        Ok(events) => {
            let n = mandrill::normalise(&events, RECEIVED_MS);
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
            n.ignored.iter().for_each(|r| check_line(r));
            assert!(n.events.len() + n.ignored.len() <= mandrill::MAX_EVENTS);
        }
        Err(e) => check_error(&e),
    }
});
