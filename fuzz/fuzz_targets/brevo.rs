//! Brevo email webhooks (transactional and marketing records, one or a batched array):
//! `normalise`.
#![no_main]

use dndgate::providers::brevo::normalise as brevo;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match brevo::normalise(data, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
            n.ignored.iter().for_each(|i| check_line(i));
        }
        Err(e) => check_error(&e),
    }
});
