//! Meta (WhatsApp, Messenger, Instagram): `parse`, `normalise_entry`,
//! and the subscription handshake's query string.
#![no_main]

use dndgate::providers::meta::normalise as meta;
use dndgate::secret::Secret;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let tokens = [Secret::new("verify-token-1")];
        match meta::verify_handshake(query, &tokens) {
            // The challenge is echoed only for the right token.
            Ok(_) => assert!(query.contains("verify-token-1")),
            Err(e) => check_error(&e),
        }
    }
    let webhook = match meta::parse(data) {
        Ok(w) => w,
        Err(e) => return check_error(&e),
    };
    for entry in &webhook.entries {
        let _ = entry.id();
        let n = meta::normalise_entry(webhook.object, entry, RECEIVED_MS);
        n.events.iter().for_each(|e| check_event(&e.event));
        n.rejected.iter().for_each(|r| check_line(r));
    }
});
