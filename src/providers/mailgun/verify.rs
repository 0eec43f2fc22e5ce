//! Mailgun webhook signatures: the lowercase hex of HMAC-SHA256 with the HTTP webhook
//! signing key over the decimal `timestamp` followed by the `token`, both carried in the
//! body's `signature` object beside the signature itself.
//!
//! The event data is NOT covered: anyone holding one signed request can attach any
//! event to its triple. What stops that is the one-time token (the gateway claims each
//! token once, after it verifies) and the refusal of timestamps older than the time
//! tokens are remembered; both live in the pipeline because they need the store and
//! the clock. This module is the pure part: the HMAC and its constant-time comparison,
//! and the fingerprint of the key that matched ([`signing_key_fingerprint`]): Mailgun's
//! key is account-wide, so tokens are claimed per key, not per tenant.

use sha2::Sha256;

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{SignatureError, hmac_sha256, lowercase_hex_32};

/// How the signature field is named in errors: it is a body field, not a header.
pub const MAILGUN_SIGNATURE_FIELD: &str = "signature.signature";

/// Mailgun's tokens are 50 characters; a much longer one is not Mailgun's, and refusing
/// it bounds the HMAC work and the size of the token's replay marker.
pub const MAX_TOKEN_LEN: usize = 256;

/// Verify Mailgun's signature triple.
///
/// `timestamp` and `token` are the strings from the body's `signature` object exactly
/// as sent (the decimal timestamp is signed as text, so it is never re-formatted);
/// `signature` must be 64 lowercase hex digits, as Mailgun sends. Every key in `keys`
/// is tried, so a signing key can be rotated.
pub fn verify_mailgun(
    timestamp: &str,
    token: &str,
    signature: &str,
    keys: &[Secret],
) -> Result<(), SignatureError> {
    verify_mailgun_key(timestamp, token, signature, keys).map(|_| ())
}

/// [`verify_mailgun`], returning the key that matched: the one whose tokens this
/// request's token joins.
pub fn verify_mailgun_key<'k>(
    timestamp: &str,
    token: &str,
    signature: &str,
    keys: &'k [Secret],
) -> Result<&'k Secret, SignatureError> {
    let malformed = |why| SignatureError::Malformed {
        header: MAILGUN_SIGNATURE_FIELD,
        why,
    };
    let given = lowercase_hex_32(signature)
        .ok_or_else(|| malformed("it is not 64 lowercase hex digits"))?;
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(malformed("the token is empty or too long to be Mailgun's"));
    }
    if keys.is_empty() {
        return Err(SignatureError::NoSecret("mailgun"));
    }
    keys.iter()
        .find(|key| {
            let expected = mailgun_hmac(key.expose().as_bytes(), timestamp, token);
            constant_time_eq(&expected, &given)
        })
        .ok_or(SignatureError::Mismatch(MAILGUN_SIGNATURE_FIELD))
}

/// A fingerprint of a signing key that names it without revealing it: the first 16
/// bytes of SHA-256 over a label and the key, in hex. The same key gives the same
/// fingerprint in every tenant, which is the point: Mailgun signs every domain of an
/// account with one key, so a token spent under it is spent for all of them.
pub fn signing_key_fingerprint(key: &Secret) -> String {
    use sha2::Digest;
    let mut hash = Sha256::new();
    hash.update(b"dndgate mailgun signing key\0");
    hash.update(key.expose().as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The signature Mailgun would send for `timestamp` and `token` under `signing_key`:
/// lowercase hex. For tests and tools that sign like Mailgun.
pub fn sign_mailgun(signing_key: &str, timestamp: &str, token: &str) -> String {
    hex::encode(mailgun_hmac(signing_key.as_bytes(), timestamp, token))
}

fn mailgun_hmac(key: &[u8], timestamp: &str, token: &str) -> [u8; 32] {
    hmac_sha256(key, &[timestamp.as_bytes(), token.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets as keys};

    /// Every Mailgun vector of the shared research file: mailgun-php's good and bad
    /// token, mailgun-go's inputs, a derived complaint, and the derived proof that the
    /// event data is not signed (a changed recipient still verifies).
    #[test]
    fn shared_vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/mailgun/vectors.json"
        ));
        assert_eq!(vectors.len(), 5, "vector file lost entries");
        for v in &vectors {
            assert_eq!(v["scheme"], "mailgun-hmac-sha256-timestamp-token");
            let name = v["name"].as_str().expect("name");
            let secret = v["secret"].as_str().expect("secret");
            let body: serde_json::Value =
                serde_json::from_str(v["body"].as_str().expect("body")).expect("JSON body");
            let sig = &body["signature"];
            let (ts, token, given) = (
                sig["timestamp"].as_str().expect("timestamp"),
                sig["token"].as_str().expect("token"),
                sig["signature"].as_str().expect("signature"),
            );
            let got = verify_mailgun(ts, token, given, &keys(&[secret]));
            let mismatch = SignatureError::Mismatch(MAILGUN_SIGNATURE_FIELD);
            testkit::assert_vector_verdict(v, &got, mismatch);
            if let Some(expected) = v["expected_signature"].as_str() {
                assert_eq!(sign_mailgun(secret, ts, token), expected, "{name}");
            }
        }
    }

    #[test]
    fn sign_verify_tamper() {
        let k = keys(&["signing-key"]);
        let sig = sign_mailgun("signing-key", "1700000000", "tok-abc");
        assert_eq!(verify_mailgun("1700000000", "tok-abc", &sig, &k), Ok(()));
        let mismatch = Err(SignatureError::Mismatch(MAILGUN_SIGNATURE_FIELD));
        assert_eq!(verify_mailgun("1700000001", "tok-abc", &sig, &k), mismatch);
        assert_eq!(verify_mailgun("1700000000", "tok-abd", &sig, &k), mismatch);
        assert_eq!(
            verify_mailgun(" 1700000000", "tok-abc", &sig, &k),
            mismatch,
            "the timestamp is signed as text"
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify_mailgun("1700000000", "tok-abc", &flipped, &k),
            mismatch
        );
    }

    #[test]
    fn rotation_accepts_any_configured_key() {
        let sig = sign_mailgun("new", "1", "t");
        assert_eq!(
            verify_mailgun("1", "t", &sig, &keys(&["old", "new"])),
            Ok(())
        );
        assert_eq!(
            verify_mailgun("1", "t", &sig, &keys(&["new", "old"])),
            Ok(())
        );
        assert_eq!(
            verify_mailgun("1", "t", &sig, &keys(&["old", "other"])),
            Err(SignatureError::Mismatch(MAILGUN_SIGNATURE_FIELD))
        );
    }

    #[test]
    fn the_matched_key_is_named_by_a_fingerprint_that_hides_it() {
        let k = keys(&["old", "new"]);
        let sig = sign_mailgun("new", "1", "t");
        let matched = verify_mailgun_key("1", "t", &sig, &k).unwrap();
        assert_eq!(matched.expose(), "new");
        let fp = signing_key_fingerprint(matched);
        assert_eq!(fp.len(), 32);
        assert!(!fp.contains("new"));
        assert_eq!(fp, signing_key_fingerprint(&Secret::new("new")));
        assert_ne!(fp, signing_key_fingerprint(&k[0]));
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let good = sign_mailgun("k", "1", "t");
        let k = keys(&["k"]);
        let too_long_token = "t".repeat(MAX_TOKEN_LEN + 1);
        for (ts, token, sig) in [
            ("1", "t", ""),
            ("1", "t", &good[..63]),
            ("1", "t", &format!("{good}0")),
            ("1", "t", &good.to_uppercase()),
            ("1", "t", &"z".repeat(64)),
            ("1", "", good.as_str()),
            ("1", too_long_token.as_str(), good.as_str()),
        ] {
            let err = verify_mailgun(ts, token, sig, &k).unwrap_err();
            assert!(
                matches!(err, SignatureError::Malformed { .. }),
                "{sig:?}: {err:?}"
            );
        }
        assert_eq!(
            verify_mailgun("1", "t", &good, &[]),
            Err(SignatureError::NoSecret("mailgun"))
        );
        let gateway: crate::error::Error = SignatureError::Mismatch(MAILGUN_SIGNATURE_FIELD).into();
        assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
    }
}
