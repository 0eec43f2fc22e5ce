//! The form decoder the pipeline uses for the unsubscribe page's POST
//! (`serde_urlencoded::from_bytes` into pairs): decoding never panics, and what it
//! decodes encodes and decodes back to the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let encoded = serde_urlencoded::to_string(&pairs).expect("pairs of strings encode");
    let again: Vec<(String, String)> =
        serde_urlencoded::from_str(&encoded).expect("our own encoding decodes");
    assert_eq!(pairs, again);
});
