//! Address normalisation: `Address::parse` on every channel and `Address::parse_any`.
//! A parsed address re-parses to itself, and `parse_any` agrees with the channel it
//! picks.
#![no_main]

use dndgate::address::Address;
use dndgate::event::Channel;
use dndgate_fuzz::{check_address, check_line};
use libfuzzer_sys::fuzz_target;

const CHANNELS: [Channel; 6] = [
    Channel::Sms,
    Channel::Voice,
    Channel::Whatsapp,
    Channel::Messenger,
    Channel::Instagram,
    Channel::Email,
];

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for channel in CHANNELS {
        match Address::parse(channel, raw) {
            Ok(a) => check_address(channel, &a),
            Err(e) => check_line(&e.to_string()),
        }
    }
    match Address::parse_any(raw) {
        Ok(a) => {
            let again = Address::parse_any(a.as_str()).expect("a normalised address re-parses");
            assert_eq!(again, a, "parse_any is not idempotent");
        }
        Err(e) => check_line(&e.to_string()),
    }
});
