//! Telnyx messaging webhooks (`message.received`, `message.sent`, `message.finalized`):
//! `normalise`.
#![no_main]

use dndgate::providers::telnyx::normalise as telnyx;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match telnyx::normalise(data, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
            if let Some(why) = &n.ignored {
                check_line(why);
            }
        }
        Err(e) => check_error(&e),
    }
});
