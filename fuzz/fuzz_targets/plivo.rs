//! Plivo messaging callbacks (inbound messages, message status callbacks): the form
//! decoder and `normalise`.
#![no_main]

use dndgate::providers::plivo::normalise as plivo;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = match plivo::parse_form(data) {
        Ok(params) => params,
        Err(e) => return check_error(&e),
    };
    match plivo::normalise(&params, RECEIVED_MS) {
        Ok(n) => {
            assert!(n.events.len() <= 1, "one callback is one message");
            n.events.iter().for_each(check_event);
            if let Some(why) = &n.ignored {
                check_line(why);
            }
        }
        Err(e) => check_error(&e),
    }
});
