//! SendGrid Event Webhook batches: `parse`, `normalise`.
#![no_main]

use dndgate::providers::sendgrid::normalise as sendgrid;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let events = match sendgrid::parse(data) {
        Ok(e) => e,
        Err(e) => return check_error(&e),
    };
    let n = sendgrid::normalise(&events, RECEIVED_MS);
    n.events.iter().for_each(check_event);
    n.rejected.iter().for_each(|r| check_line(r));
    // Every event is either kept, rejected or ignored: never more than were sent.
    assert!(n.events.len() + n.rejected.len() <= events.len());
});
