//! What the operator console reads from a request before it touches the store: form
//! bodies, the `Cookie` header, query strings, consent evidence; and its pages
//! rendered with that text. No panic; every refusal one line.
#![no_main]

use dndgate_fuzz::{RECEIVED_MS, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for refusal in dndgate::console::fuzz_inputs(data, RECEIVED_MS) {
        check_line(&refusal);
    }
});
