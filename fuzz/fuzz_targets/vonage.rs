//! Vonage webhooks: the SMS API's parameters (a form, or a flat JSON object) through
//! `normalise_sms`, and Messages API bodies through `normalise_messages`. The first byte
//! picks which.
#![no_main]

use dndgate::providers::twilio::normalise::parse_form;
use dndgate::providers::vonage::normalise as vonage;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fn check(n: &vonage::Normalised) {
    n.events.iter().for_each(check_event);
    n.rejected.iter().for_each(|r| check_line(r));
    if let Some(why) = &n.ignored {
        check_line(why);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => match parse_form(body) {
            Ok(params) => check(&vonage::normalise_sms(&params, RECEIVED_MS)),
            Err(e) => check_error(&e),
        },
        1 => match vonage::json_params(body) {
            Ok(params) => check(&vonage::normalise_sms(&params, RECEIVED_MS)),
            Err(e) => check_error(&e),
        },
        _ => match vonage::normalise_messages(body, RECEIVED_MS) {
            Ok(n) => check(&n),
            Err(e) => check_error(&e),
        },
    }
});
