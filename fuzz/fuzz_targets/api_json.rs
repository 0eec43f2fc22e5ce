//! The operator API's JSON request bodies (check, set, clear, contact, link), decoded
//! and checked as the routes do before they touch the store.
#![no_main]

use dndgate_fuzz::{RECEIVED_MS, check_error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for outcome in dndgate::api::fuzz_request_bodies(data, RECEIVED_MS) {
        if let Err(e) = outcome {
            check_error(&e);
        }
    }
});
