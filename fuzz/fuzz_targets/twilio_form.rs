//! Twilio form webhooks: `parse_form`, `account_sid`, `normalise`.
#![no_main]

use dndgate::providers::twilio::normalise as twilio;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = match twilio::parse_form(data) {
        Ok(p) => p,
        Err(e) => return check_error(&e),
    };
    // Encoding the pairs again and parsing gives the same pairs, in order.
    let encoded = serde_urlencoded::to_string(&params).expect("pairs of strings encode");
    let again = twilio::parse_form(encoded.as_bytes()).expect("our own encoding parses");
    let kept: Vec<_> = params
        .iter()
        .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
        .cloned()
        .collect();
    let again: Vec<_> = again
        .into_iter()
        .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
        .collect();
    assert_eq!(kept, again);
    let _ = twilio::account_sid(&params);
    match twilio::normalise(&params, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
        }
        Err(e) => check_error(&e),
    }
});
