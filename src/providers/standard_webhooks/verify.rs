//! Standard Webhooks v1 (<https://www.standardwebhooks.com>), the scheme Svix delivers
//! for Resend and many other senders.
//!
//! Three headers, either unbranded (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) or with Svix's prefix (`svix-id`, ...). The signed content is
//! `<id>.<timestamp>.<raw body>`; the signature is base64(HMAC-SHA256(key, content)),
//! where the key is the base64 decoding of the secret after its `whsec_` prefix. The
//! signature header is a space-separated list of `<version>,<signature>` entries
//! (several while a secret rotates): any `v1` entry that matches under any configured
//! secret accepts the request, entries of other versions (`v1a` is Ed25519) are
//! ignored.
//!
//! The timestamp is signed, so a request older or newer than [`TOLERANCE_SECS`] is
//! refused, which bounds replays to that window; inside it the gateway's dedup on the
//! message id (the event id) stops them.

use base64::Engine as _;

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{SignatureError, whsec_hmac, within_window};
pub use crate::signature::{WHSEC_PREFIX, decode_whsec, sign_whsec};

/// How far a request's signed timestamp may be from our clock, either way, in seconds:
/// five minutes, as the Standard Webhooks specification and Svix's libraries use.
/// Senders retry with a fresh timestamp, so a late retry is never refused for age.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Header names without a prefix: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`.
pub const UNBRANDED: HeaderNames = HeaderNames {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

/// Header names as Svix (and so Resend) sends them: `svix-id`, `svix-timestamp`,
/// `svix-signature`.
pub const SVIX: HeaderNames = HeaderNames {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// A family of the three header names, lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderNames {
    /// The message id header.
    pub id: &'static str,
    /// The timestamp header (Unix seconds).
    pub timestamp: &'static str,
    /// The signature list header.
    pub signature: &'static str,
}

/// The three header values of one request, with the names they came under (for error
/// messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    /// Which family the values were taken from.
    pub names: HeaderNames,
    /// The message id: stable across a message's retries, so it is the dedup key.
    pub id: Option<&'a str>,
    /// The timestamp, as received.
    pub timestamp: Option<&'a str>,
    /// The signature list, as received.
    pub signature: Option<&'a str>,
}

impl<'a> SignedHeaders<'a> {
    /// Take the three headers from a request through `get` (a lookup by lower-case
    /// name). The unbranded family is used when its signature header is present, else
    /// Svix's; the three values always come from one family, so a request cannot mix an
    /// id from one with a signature from the other.
    pub fn from_request(get: impl Fn(&str) -> Option<&'a str>) -> SignedHeaders<'a> {
        let names = if get(UNBRANDED.signature).is_some() {
            UNBRANDED
        } else {
            SVIX
        };
        SignedHeaders {
            names,
            id: get(names.id),
            timestamp: get(names.timestamp),
            signature: get(names.signature),
        }
    }
}

/// Why a Standard Webhooks request was refused: a signature problem, or a timestamp
/// outside the window ([`TOLERANCE_SECS`]). Every variant ends in 401.
pub use crate::signature::TimedError as VerifyError;

/// Longest signature header we read: a handful of entries of 48 characters each during
/// a rotation; more is not a real sender and refusing early bounds the work.
const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// Longest message id we accept: Svix ids are about 30 characters, and the id becomes
/// part of a Redis key.
const MAX_ID_LEN: usize = 256;

/// Verify a Standard Webhooks request.
///
/// `body` is the raw body exactly as received; `secrets` the tenant's `whsec_` secrets
/// (a secret without the prefix is read the same way, as the libraries do; one whose key
/// is not base64 can match nothing); `now_secs` our clock in Unix seconds. Checked in
/// this order: the three headers are present and well-formed, the timestamp is within
/// [`TOLERANCE_SECS`] of `now_secs`, and some `v1` entry matches under some secret.
/// Returns the message id, the event id for dedup.
pub fn verify_standard_webhooks<'a>(
    headers: &SignedHeaders<'a>,
    body: &[u8],
    secrets: &[Secret],
    now_secs: i64,
) -> Result<&'a str, VerifyError> {
    let names = headers.names;
    let malformed = |header, why| SignatureError::Malformed { header, why };
    let id = headers
        .id
        .ok_or(SignatureError::MissingHeader(names.id))?
        .trim();
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(malformed(
            names.id,
            "it is not a message id of 1 to 256 printable characters",
        )
        .into());
    }
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader(names.timestamp))?
        .trim();
    let signature = headers
        .signature
        .ok_or(SignatureError::MissingHeader(names.signature))?;
    within_window(names.timestamp, timestamp, now_secs, TOLERANCE_SECS)?;
    if signature.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(malformed(names.signature, "it is too long to be a list of signatures").into());
    }
    let given = v1_signatures(signature);
    if given.is_empty() {
        return Err(malformed(names.signature, "it has no v1,<base64 HMAC-SHA256> entry").into());
    }
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret("standard_webhooks").into());
    }
    // Every secret against every entry, without stopping at a match: the time taken
    // says nothing about which one matched.
    let matched = secrets.iter().fold(false, |found, secret| {
        let Some(key) = decode_whsec(secret.expose()) else {
            return found;
        };
        let expected = whsec_hmac(&key, id, timestamp, body);
        given
            .iter()
            .fold(found, |found, sig| constant_time_eq(&expected, sig) | found)
    });
    if matched {
        Ok(id)
    } else {
        Err(SignatureError::Mismatch(names.signature).into())
    }
}

/// The decoded signatures of the `v1` entries of a signature header. Entries of other
/// versions, and `v1` entries that are not base64 of 32 bytes, are skipped: they can
/// match nothing, and a sender may add versions we do not know.
fn v1_signatures(header: &str) -> Vec<Vec<u8>> {
    header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| base64::engine::general_purpose::STANDARD.decode(sig).ok())
        .filter(|sig| sig.len() == 32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::providers::testkit::{self, secrets};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const NOW: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            names: UNBRANDED,
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    fn verify(sig: &str, now: i64) -> Result<&'static str, VerifyError> {
        // Leak for 'static: tests only, tiny.
        let sig: &'static str = Box::leak(sig.to_string().into_boxed_str());
        verify_standard_webhooks(&headers(ID, TS, sig), BODY, &secrets(&[SECRET]), now)
    }

    /// Every svix and resend entry of research/vectors.json (copied into
    /// tests/providers/standard_webhooks/vectors.json), with the vector's `now`.
    #[test]
    fn vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/standard_webhooks/vectors.json"
        ));
        assert_eq!(vectors.len(), 10);
        let (mut good, mut bad) = (0, 0);
        for v in &vectors {
            let name = v["name"].as_str().unwrap();
            let headers = SignedHeaders::from_request(|n| testkit::vector_header(v, n));
            let secret = v["secret"].as_str().unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let now = v["now"].as_i64().unwrap();
            let result = verify_standard_webhooks(&headers, body, &secrets(&[secret]), now);
            if testkit::assert_vector_validity(v, &result) {
                good += 1;
                assert_eq!(result.unwrap(), headers.id.unwrap(), "{name}");
            } else {
                bad += 1;
            }
            if let Some(expected) = v["expected_signature"].as_str() {
                let ts = headers.timestamp.unwrap();
                let id = headers.id.unwrap();
                assert_eq!(
                    sign_whsec(secret, id, ts, body).as_deref(),
                    Some(expected),
                    "{name}"
                );
            }
        }
        assert_eq!((good, bad), (4, 6));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let sig = sign_whsec(SECRET, ID, TS, BODY).unwrap();
        assert_eq!(sig, SIG);
        assert_eq!(verify(&sig, NOW), Ok(ID));
        let s = secrets(&[SECRET]);
        // Body, id and timestamp are each part of the signed content.
        let tampered = br#"{"test": 2432232315}"#;
        assert!(verify_standard_webhooks(&headers(ID, TS, &sig), tampered, &s, NOW).is_err());
        assert!(verify_standard_webhooks(&headers("msg_other", TS, &sig), BODY, &s, NOW).is_err());
        assert!(verify_standard_webhooks(&headers(ID, "1614265331", &sig), BODY, &s, NOW).is_err());
    }

    #[test]
    fn rotation_tries_every_secret() {
        let new = "whsec_bmV3LXNlY3JldC1rZXktZm9yLXJvdGF0aW9u";
        let sig_new = sign_whsec(new, ID, TS, BODY).unwrap();
        let both = secrets(&[SECRET, new]);
        for sig in [SIG, sig_new.as_str()] {
            assert_eq!(
                verify_standard_webhooks(&headers(ID, TS, sig), BODY, &both, NOW),
                Ok(ID)
            );
        }
        assert_eq!(
            verify_standard_webhooks(&headers(ID, TS, &sig_new), BODY, &secrets(&[SECRET]), NOW),
            Err(VerifyError::Signature(SignatureError::Mismatch(
                "webhook-signature"
            )))
        );
        // A secret that is not base64 matches nothing but does not spoil the others.
        let with_bad = secrets(&["whsec_!!!not-base64", SECRET]);
        assert_eq!(
            verify_standard_webhooks(&headers(ID, TS, SIG), BODY, &with_bad, NOW),
            Ok(ID)
        );
    }

    #[test]
    fn several_signatures_any_v1_matches() {
        let other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let cases: &[(String, bool)] = &[
            (format!("{other} {SIG}"), true),
            (format!("{SIG} {other}"), true),
            (format!("v1a,abcd {SIG}"), true),
            (format!("v2,xyz   {SIG}"), true),
            (format!("v1,notbase64!! {SIG}"), true),
            (other.to_string(), false),
            (format!("v2,{}", &SIG[3..]), false),
            (format!("V1,{}", &SIG[3..]), false),
        ];
        for (header, want) in cases {
            assert_eq!(verify(header, NOW).is_ok(), *want, "{header}");
        }
    }

    #[test]
    fn window_edges_both_ways() {
        assert_eq!(verify(SIG, NOW + TOLERANCE_SECS), Ok(ID));
        assert_eq!(verify(SIG, NOW - TOLERANCE_SECS), Ok(ID));
        assert_eq!(
            verify(SIG, NOW + TOLERANCE_SECS + 1),
            Err(VerifyError::TooOld {
                age_secs: 301,
                tolerance_secs: TOLERANCE_SECS
            })
        );
        assert_eq!(
            verify(SIG, NOW - TOLERANCE_SECS - 1),
            Err(VerifyError::TooNew {
                ahead_secs: 301,
                tolerance_secs: TOLERANCE_SECS
            })
        );
        let message = Error::from(VerifyError::TooOld {
            age_secs: 301,
            tolerance_secs: TOLERANCE_SECS,
        })
        .message;
        assert!(message.contains("stale"), "{message}");
    }

    #[test]
    fn header_refusals() {
        let s = secrets(&[SECRET]);
        let missing =
            |id: Option<&'static str>, ts: Option<&'static str>, sig: Option<&'static str>| {
                let h = SignedHeaders {
                    names: SVIX,
                    id,
                    timestamp: ts,
                    signature: sig,
                };
                verify_standard_webhooks(&h, BODY, &s, NOW).unwrap_err()
            };
        assert_eq!(
            missing(None, Some(TS), Some(SIG)),
            SignatureError::MissingHeader("svix-id").into()
        );
        assert_eq!(
            missing(Some(ID), None, Some(SIG)),
            SignatureError::MissingHeader("svix-timestamp").into()
        );
        assert_eq!(
            missing(Some(ID), Some(TS), None),
            SignatureError::MissingHeader("svix-signature").into()
        );
        // (timestamp, signature, the header refused as malformed)
        let malformed = [
            ("", SIG, "webhook-timestamp"),
            ("-1614265330", SIG, "webhook-timestamp"),
            ("1614265330.5", SIG, "webhook-timestamp"),
            ("16142653300000000", SIG, "webhook-timestamp"),
            ("abc", SIG, "webhook-timestamp"),
            (TS, "", "webhook-signature"),
            (
                TS,
                "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                "webhook-signature",
            ),
            (TS, "v1,", "webhook-signature"),
        ];
        for (ts, sig, want) in malformed {
            let err = verify_standard_webhooks(&headers(ID, ts, sig), BODY, &s, NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::Signature(SignatureError::Malformed { header, .. }) if header == want
                ),
                "{ts:?} {sig:?}: {err:?}"
            );
        }
        assert_eq!(
            verify_standard_webhooks(&headers(ID, TS, SIG), BODY, &[], NOW),
            Err(SignatureError::NoSecret("standard_webhooks").into())
        );
        let err = verify_standard_webhooks(&headers("", TS, SIG), BODY, &s, NOW).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Signature(SignatureError::Malformed {
                header: "webhook-id",
                ..
            })
        ));
    }

    #[test]
    fn one_family_of_headers() {
        let hs = [
            ("svix-id", "a"),
            ("svix-timestamp", "1"),
            ("svix-signature", "v1,x"),
            ("webhook-id", "b"),
        ];
        let get = |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let h = SignedHeaders::from_request(get);
        assert_eq!((h.names, h.id), (SVIX, Some("a")));
        let hs = [
            ("webhook-id", "b"),
            ("webhook-signature", "v1,x"),
            ("svix-timestamp", "1"),
        ];
        let get = |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let h = SignedHeaders::from_request(get);
        assert_eq!((h.names, h.id, h.timestamp), (UNBRANDED, Some("b"), None));
    }

    #[test]
    fn secret_decoding() {
        assert_eq!(decode_whsec("whsec_aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_whsec("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_whsec("whsec_"), None);
        assert_eq!(decode_whsec("whsec_***"), None);
    }
}
