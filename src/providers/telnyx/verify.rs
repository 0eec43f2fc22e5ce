//! Telnyx webhook signatures (API v2): Ed25519.
//!
//! Two headers: `telnyx-timestamp` (Unix seconds) and `telnyx-signature-ed25519` (base64
//! of the 64-byte signature). The signed content is `<timestamp>|<raw body>`, verified
//! with the account's public key as the Mission Control portal shows it (base64 of the
//! raw 32 bytes). Telnyx documents the headers as the counterparts of Standard
//! Webhooks' `webhook-timestamp` and `webhook-signature`, but the content (`ts|body`,
//! no message id) and the algorithm are its own.
//!
//! The timestamp is signed, so a request more than [`TOLERANCE_SECS`] from our clock
//! either way is refused (Telnyx's own libraries use the same five minutes); inside
//! the window the gateway's dedup on the event id (`data.id`) stops a replay. The
//! verification is `ed25519-dalek`'s strict one: it refuses small-order keys and
//! non-canonical signatures, which a signer following RFC 8032 never produces.

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::signature::{SignatureError, TimedError, within_window};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";

/// The header that carries the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// How far the signed timestamp may be from our clock, either way, in seconds: five
/// minutes, the tolerance of Telnyx's libraries (`team-telnyx/telnyx-node`,
/// `src/lib/webhooks.ts`). Telnyx signs each attempt anew, so a retry is never refused
/// for age.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Longest signature header we read: base64 of 64 bytes is 88 characters; allow for
/// padding variants and spaces, refuse anything far longer without decoding it.
const MAX_SIGNATURE_HEADER_LEN: usize = 256;

/// A public key as the Telnyx portal shows it (Account Settings, Keys & Credentials,
/// Public Key): base64 of the raw 32-byte Ed25519 key. The error says what is wrong
/// in one line, never the key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "not base64: copy the Public Key from the Telnyx portal".to_string())?;
    let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "{} bytes once decoded, not the 32 of an Ed25519 public key",
            bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(&raw).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// Verify a Telnyx request.
///
/// `body` is the raw body exactly as received; `signature` and `timestamp` the two
/// header values; `keys` the tenant's public keys (several while rotating);
/// `now_secs` our clock in Unix seconds. Checked in this order: both headers present,
/// the timestamp within [`TOLERANCE_SECS`] of `now_secs`, the signature base64 of 64
/// bytes, and some key verifies it over `timestamp|body`.
pub fn verify_telnyx(
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    keys: &[VerifyingKey],
    now_secs: i64,
) -> Result<(), TimedError> {
    let timestamp = timestamp
        .ok_or(SignatureError::MissingHeader(TIMESTAMP_HEADER))?
        .trim();
    let signature = signature.ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
    within_window(TIMESTAMP_HEADER, timestamp, now_secs, TOLERANCE_SECS)?;
    let malformed = |why| SignatureError::Malformed {
        header: SIGNATURE_HEADER,
        why,
    };
    if signature.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(malformed("it is too long to be a base64 Ed25519 signature").into());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| malformed("it is not base64"))?;
    let bytes: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| malformed("it is not the 64 bytes of an Ed25519 signature"))?;
    let signature = Signature::from_bytes(&bytes);
    if keys.is_empty() {
        return Err(SignatureError::NoSecret("telnyx").into());
    }
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    // Every key is tried, without stopping at a match: which key matched is not told
    // by the time taken (public keys hide nothing, but the habit costs little).
    let matched = keys.iter().fold(false, |found, key| {
        key.verify_strict(&signed, &signature).is_ok() | found
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SIGNATURE_HEADER).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit;
    use ed25519_dalek::{Signer as _, SigningKey};

    /// RFC 8032 section 7.1, test 1 and test 2: seed and public key.
    const SEED_1: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const KEY_1: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const SEED_2: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const KEY_2: &str = "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=";
    const NOW: i64 = 1_705_349_767;
    const BODY: &[u8] = br#"{"data":{"event_type":"message.received","id":"e1"}}"#;

    fn signing(seed: &str) -> SigningKey {
        SigningKey::from_bytes(&hex::decode(seed).unwrap().try_into().unwrap())
    }

    fn sign(seed: &str, ts: &str, body: &[u8]) -> String {
        let mut msg = ts.as_bytes().to_vec();
        msg.push(b'|');
        msg.extend_from_slice(body);
        base64::engine::general_purpose::STANDARD.encode(signing(seed).sign(&msg).to_bytes())
    }

    fn keys(texts: &[&str]) -> Vec<VerifyingKey> {
        texts.iter().map(|t| parse_public_key(t).unwrap()).collect()
    }

    /// Every Telnyx entry of research/vectors.json (copied into
    /// tests/providers/telnyx/vectors.json), with the vector's `now`.
    #[test]
    fn vectors() {
        let vectors =
            testkit::vectors(include_str!("../../../tests/providers/telnyx/vectors.json"));
        assert_eq!(vectors.len(), 5);
        let (mut good, mut bad) = (0, 0);
        for v in &vectors {
            let name = v["name"].as_str().unwrap();
            let get = |n: &str| testkit::vector_header(v, n);
            let key = parse_public_key(v["secret"].as_str().unwrap()).unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let now = v["now"].as_i64().unwrap();
            let result = verify_telnyx(
                body,
                get(SIGNATURE_HEADER),
                get(TIMESTAMP_HEADER),
                &[key],
                now,
            );
            if testkit::assert_vector_validity(v, &result) {
                good += 1;
            } else {
                bad += 1;
            }
            if let (Some(expected), Some(seed)) = (
                v["expected_signature"].as_str(),
                v["signing_private_key_hex"].as_str(),
            ) {
                let ts = get(TIMESTAMP_HEADER).unwrap();
                assert_eq!(sign(seed, ts, body), expected, "{name}");
            }
        }
        assert_eq!((good, bad), (1, 4));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let ts = NOW.to_string();
        let sig = sign(SEED_1, &ts, BODY);
        let k = keys(&[KEY_1]);
        let verify =
            |body: &[u8], sig: &str, ts: &str| verify_telnyx(body, Some(sig), Some(ts), &k, NOW);
        assert_eq!(verify(BODY, &sig, &ts), Ok(()));
        // The body and the timestamp are each part of the signed content.
        let tampered = br#"{"data":{"event_type":"message.received","id":"e2"}}"#;
        assert!(verify(tampered, &sig, &ts).is_err());
        assert!(verify(BODY, &sig, &(NOW - 1).to_string()).is_err());
        // Spaces around the header values are not part of what was signed.
        assert_eq!(verify(BODY, &format!(" {sig} "), &format!(" {ts}")), Ok(()));
        // Another key's signature.
        let other = sign(SEED_2, &ts, BODY);
        assert_eq!(
            verify(BODY, &other, &ts),
            Err(SignatureError::Mismatch(SIGNATURE_HEADER).into())
        );
    }

    #[test]
    fn rotation_tries_every_key() {
        let ts = NOW.to_string();
        let both = keys(&[KEY_2, KEY_1]);
        for seed in [SEED_1, SEED_2] {
            let sig = sign(seed, &ts, BODY);
            assert_eq!(
                verify_telnyx(BODY, Some(&sig), Some(&ts), &both, NOW),
                Ok(())
            );
        }
        let sig = sign(SEED_2, &ts, BODY);
        assert!(verify_telnyx(BODY, Some(&sig), Some(&ts), &keys(&[KEY_1]), NOW).is_err());
    }

    #[test]
    fn window_edges_both_ways() {
        let ts = NOW.to_string();
        let sig = sign(SEED_1, &ts, BODY);
        let k = keys(&[KEY_1]);
        let at = |now| verify_telnyx(BODY, Some(&sig), Some(&ts), &k, now);
        assert_eq!(at(NOW + TOLERANCE_SECS), Ok(()));
        assert_eq!(at(NOW - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            at(NOW + TOLERANCE_SECS + 1),
            Err(TimedError::TooOld {
                age_secs: 301,
                tolerance_secs: TOLERANCE_SECS
            })
        );
        assert_eq!(
            at(NOW - TOLERANCE_SECS - 1),
            Err(TimedError::TooNew {
                ahead_secs: 301,
                tolerance_secs: TOLERANCE_SECS
            })
        );
    }

    #[test]
    fn header_refusals() {
        let ts = NOW.to_string();
        let sig = sign(SEED_1, &ts, BODY);
        let k = keys(&[KEY_1]);
        assert_eq!(
            verify_telnyx(BODY, Some(&sig), None, &k, NOW),
            Err(SignatureError::MissingHeader(TIMESTAMP_HEADER).into())
        );
        assert_eq!(
            verify_telnyx(BODY, None, Some(&ts), &k, NOW),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER).into())
        );
        for bad_ts in ["", "-1705349767", "1705349767.5", "abc"] {
            let err = verify_telnyx(BODY, Some(&sig), Some(bad_ts), &k, NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    TimedError::Signature(SignatureError::Malformed {
                        header: TIMESTAMP_HEADER,
                        ..
                    })
                ),
                "{bad_ts:?}: {err:?}"
            );
        }
        let long = "A".repeat(MAX_SIGNATURE_HEADER_LEN + 1);
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 63]);
        for bad_sig in ["", "not base64!", short.as_str(), long.as_str()] {
            let err = verify_telnyx(BODY, Some(bad_sig), Some(&ts), &k, NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    TimedError::Signature(SignatureError::Malformed {
                        header: SIGNATURE_HEADER,
                        ..
                    })
                ),
                "{bad_sig:?}: {err:?}"
            );
        }
        assert_eq!(
            verify_telnyx(BODY, Some(&sig), Some(&ts), &[], NOW),
            Err(SignatureError::NoSecret("telnyx").into())
        );
    }

    #[test]
    fn public_keys_as_the_portal_shows_them() {
        assert!(parse_public_key(KEY_1).is_ok());
        assert!(parse_public_key(&format!("  {KEY_1}\n")).is_ok());
        let refused = [
            ("not base64 at all!", "not base64"),
            ("AAAA", "3 bytes"),
            // y = 2: 32 bytes that are no point of the curve.
            (
                "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "not a valid Ed25519 public key",
            ),
        ];
        for (text, why) in refused {
            let err = parse_public_key(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
