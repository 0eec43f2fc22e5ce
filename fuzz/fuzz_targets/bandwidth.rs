//! Bandwidth Messaging API v2 callbacks (JSON arrays of `message-received`,
//! `message-delivered`, `message-failed`, ...): `normalise`.
#![no_main]

use dndgate::providers::bandwidth::normalise as bandwidth;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match bandwidth::normalise(data, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
            n.skipped.iter().for_each(|s| check_line(s));
        }
        Err(e) => check_error(&e),
    }
});
