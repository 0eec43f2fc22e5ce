//! Mailgun webhooks: `parse`, `timestamp_seconds`, `require_event_data`, `normalise`.
#![no_main]

use dndgate::providers::mailgun::normalise as mailgun;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let webhook = match mailgun::parse(data) {
        Ok(w) => w,
        Err(why) => return check_line(&why),
    };
    match &webhook.signed {
        Ok(signed) => {
            let _ = mailgun::timestamp_seconds(signed);
        }
        Err(why) => check_line(why),
    }
    match mailgun::require_event_data(&webhook) {
        Ok(event_data) => match mailgun::normalise(event_data, RECEIVED_MS) {
            Ok(Some(event)) => check_event(&event),
            Ok(None) => {}
            Err(why) => check_line(&why),
        },
        Err(e) => check_error(&e),
    }
});
