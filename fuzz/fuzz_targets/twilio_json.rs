//! Twilio Event Streams (JSON CloudEvents): `normalise_event_streams`.
#![no_main]

use dndgate::providers::twilio::normalise as twilio;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match twilio::normalise_event_streams(data, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
        }
        Err(e) => check_error(&e),
    }
});
