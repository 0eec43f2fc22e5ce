//! The unsubscribe token decoder (`links::token::verify`).
//!
//! Two inputs per run: the bytes as a token (almost always refused before the MAC),
//! and the bytes as the signed part of a token with a valid MAC appended, so the
//! fields read after the MAC are fuzzed too. A token that verifies re-mints to exactly
//! itself: there is one spelling of each claim set.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dndgate::links::token::{self, KeyRing, MAC_LEN, TokenError};
use dndgate::secret::Secret;
use dndgate_fuzz::{RECEIVED_MS, check_line};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const KEYS: [(u8, &str); 2] = [
    (1, "fuzz-key-one-0123456789"),
    (7, "fuzz-key-seven-0123456789"),
];

fn ring(current: u8) -> KeyRing {
    KeyRing::new(KEYS.map(|(id, k)| (id, Secret::new(k))), current).expect("a valid ring")
}

fn mac(key: &str, signed: &[u8]) -> [u8; MAC_LEN] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
    m.update(signed);
    let digest = m.finalize().into_bytes();
    digest[..MAC_LEN].try_into().expect("32 bytes")
}

fn check(token: &str) {
    match token::verify(&ring(1), token, RECEIVED_MS) {
        Ok(claims) => {
            let kid = URL_SAFE_NO_PAD.decode(token).expect("it verified")[0];
            let again = token::mint(&ring(kid), &claims).expect("verified claims mint");
            assert_eq!(
                again, token,
                "a verified token is not the one its claims mint"
            );
        }
        Err(TokenError::Expired { at_min }) => {
            assert!(i64::from(at_min) * 60_000 <= RECEIVED_MS)
        }
        Err(e) => check_line(&e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    if let Some((&first, rest)) = data.split_first() {
        let (kid, key) = KEYS[usize::from(first & 1)];
        let mut bytes = vec![kid];
        bytes.extend_from_slice(rest);
        let tag = mac(key, &bytes);
        bytes.extend_from_slice(&tag);
        check(&URL_SAFE_NO_PAD.encode(&bytes));
    }
});
