//! Postmark webhooks: `normalise`.
#![no_main]

use dndgate::providers::postmark::normalise as postmark;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match postmark::normalise(data, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            if let Some(why) = &n.ignored {
                check_line(why);
            }
        }
        Err(e) => check_error(&e),
    }
});
