//! SendGrid Signed Event Webhook: ECDSA on P-256 with SHA-256 over the bytes of the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw body, no
//! separator. The signature is the base64 of an ASN.1 DER `ECDSA-Sig-Value` in
//! `X-Twilio-Email-Event-Webhook-Signature`; the key is the verification key SendGrid
//! shows when Signed Event Webhook is turned on (parsed at configuration load, see
//! [`crate::config::parse_p256_key`]).
//!
//! SendGrid bodies end in `\r\n` and put `\r\n` between events: those bytes are signed,
//! so the body must reach this check exactly as it came off the wire.
//!
//! SendGrid's SDKs enforce no age on the signed timestamp and SendGrid retries for up
//! to a day, so none is enforced here either: a replay is stopped by the dedup marker
//! of each event's `sg_event_id`, and an old replayed event loses to any newer record
//! by event time.

use p256::ecdsa::signature::MultipartVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::signature::{SignatureError, base64_header};

/// The header that carries SendGrid's signature (base64 DER).
pub const SENDGRID_SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";

/// The header that carries the signed timestamp (Unix seconds, decimal).
pub const SENDGRID_TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// A DER P-256 signature is at most 72 bytes, 96 characters of base64; anything much
/// longer is not one, and refusing it early bounds the work a forged header can cause.
const MAX_SIGNATURE_LEN: usize = 128;

/// A timestamp longer than this is not Unix seconds: refused before any hashing.
const MAX_TIMESTAMP_LEN: usize = 32;

/// Verify a SendGrid Event Webhook request.
///
/// `body` is the raw request body exactly as received (never trimmed or re-serialised);
/// `signature` and `timestamp` are the header values, if present. Every key in `keys`
/// is tried, so a key can be rotated (SendGrid issues a new one whenever the signing
/// setting is turned off and on again).
///
/// The timestamp is checked only for presence and size: SendGrid signs whatever it
/// sent, and a wrong one simply fails to verify.
pub fn verify_sendgrid(
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    keys: &[VerifyingKey],
) -> Result<(), SignatureError> {
    let header = signature.ok_or(SignatureError::MissingHeader(SENDGRID_SIGNATURE_HEADER))?;
    let timestamp = timestamp.ok_or(SignatureError::MissingHeader(SENDGRID_TIMESTAMP_HEADER))?;
    let given = decode_signature(header.trim())?;
    if timestamp.is_empty() || timestamp.len() > MAX_TIMESTAMP_LEN {
        return Err(SignatureError::Malformed {
            header: SENDGRID_TIMESTAMP_HEADER,
            why: "it is not a Unix time in seconds",
        });
    }
    if keys.is_empty() {
        return Err(SignatureError::NoSecret("sendgrid"));
    }
    // The two parts are hashed in turn rather than copied into one buffer: a batch can
    // be close to the body limit.
    let message: [&[u8]; 2] = [timestamp.as_bytes(), body];
    // ECDSA verification is on public data only, so trying keys in turn leaks nothing
    // a constant-time comparison would protect.
    if keys
        .iter()
        .any(|key| key.multipart_verify(&message, &given).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SENDGRID_SIGNATURE_HEADER))
    }
}

/// The DER signature of a header value: standard base64 of an ASN.1 `ECDSA-Sig-Value`.
/// High-S signatures are accepted, as SendGrid's own SDKs accept them.
fn decode_signature(header: &str) -> Result<Signature, SignatureError> {
    let der = base64_header(
        SENDGRID_SIGNATURE_HEADER,
        header,
        MAX_SIGNATURE_LEN,
        "it is too long to be a P-256 signature",
    )?;
    Signature::from_der(&der).map_err(|_| SignatureError::Malformed {
        header: SENDGRID_SIGNATURE_HEADER,
        why: "it is not a DER-encoded ECDSA P-256 signature",
    })
}

/// Read a SendGrid verification key: base64 of a DER SubjectPublicKeyInfo, as SendGrid
/// shows it (`MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...`), PEM armour allowed.
pub fn parse_p256_key(text: &str) -> Result<p256::ecdsa::VerifyingKey, String> {
    use base64::Engine;
    use p256::pkcs8::DecodePublicKey;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "not base64: paste the key as SendGrid shows it".to_string())?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der)
        .map_err(|_| "not a P-256 public key (SubjectPublicKeyInfo)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit;
    use base64::Engine as _;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    fn key(spki_base64: &str) -> VerifyingKey {
        parse_p256_key(spki_base64).expect("vector key parses")
    }

    /// A fixed test key: the scalar 0x01..01 is a valid P-256 secret.
    fn signing_key(byte: u8) -> SigningKey {
        SigningKey::from_slice(&[byte; 32]).expect("a valid scalar")
    }

    fn sign(sk: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        let sig: Signature = sk.sign(&message);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    /// Every SendGrid vector of the shared research file: the two official positives
    /// (single event, multi-event with CRLF between events), the four official
    /// negatives (other key, body `payload`, other signature, timestamp `timestamp`) and
    /// the derived ones (CRLF stripped, timestamp + 1).
    #[test]
    fn shared_vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/sendgrid/vectors.json"
        ));
        assert_eq!(vectors.len(), 8, "vector file lost entries");
        let mut positives = 0;
        for v in &vectors {
            assert_eq!(v["scheme"], "sendgrid-ecdsa-p256-sha256");
            let body = v["body"].as_str().expect("body");
            let keys = [key(v["secret"].as_str().expect("secret"))];
            let headers = &v["headers"];
            let signature = headers[SENDGRID_SIGNATURE_HEADER].as_str();
            let timestamp = headers[SENDGRID_TIMESTAMP_HEADER].as_str();
            let got = verify_sendgrid(body.as_bytes(), signature, timestamp, &keys);
            let mismatch = SignatureError::Mismatch(SENDGRID_SIGNATURE_HEADER);
            if testkit::assert_vector_verdict(v, &got, mismatch) {
                positives += 1;
            }
        }
        assert_eq!(positives, 2);
    }

    #[test]
    fn sign_verify_tamper() {
        let sk = signing_key(1);
        let keys = [*sk.verifying_key()];
        let body =
            b"[{\"email\":\"a@example.com\",\"event\":\"bounce\"},\r\n{\"event\":\"open\"}]\r\n";
        let sig = sign(&sk, "1700000000", body);
        assert_eq!(
            verify_sendgrid(body, Some(&sig), Some("1700000000"), &keys),
            Ok(())
        );
        let mismatch = Err(SignatureError::Mismatch(SENDGRID_SIGNATURE_HEADER));
        let stripped = &body[..body.len() - 2];
        assert_eq!(
            verify_sendgrid(stripped, Some(&sig), Some("1700000000"), &keys),
            mismatch,
            "the trailing CRLF is signed"
        );
        let lf_only = String::from_utf8_lossy(body).replace("\r\n", "\n");
        assert_eq!(
            verify_sendgrid(lf_only.as_bytes(), Some(&sig), Some("1700000000"), &keys),
            mismatch,
            "the CRLF between events is signed"
        );
        let mut flipped = body.to_vec();
        flipped[10] ^= 1;
        assert_eq!(
            verify_sendgrid(&flipped, Some(&sig), Some("1700000000"), &keys),
            mismatch
        );
        assert_eq!(
            verify_sendgrid(body, Some(&sig), Some("1700000001"), &keys),
            mismatch,
            "the timestamp is signed"
        );
        // Moving bytes between timestamp and body keeps the concatenation: that is the
        // scheme (no separator), and it cannot change the events, which must be JSON.
        assert_eq!(
            verify_sendgrid(
                b"0[{}]",
                Some(&sign(&sk, "170000000", b"0[{}]")),
                Some("170000000"),
                &keys
            ),
            Ok(())
        );
    }

    #[test]
    fn rotation_accepts_any_configured_key() {
        let old = signing_key(2);
        let new = signing_key(3);
        let body = b"[]\r\n";
        let sig = sign(&new, "1", body);
        let both = [*old.verifying_key(), *new.verifying_key()];
        assert_eq!(verify_sendgrid(body, Some(&sig), Some("1"), &both), Ok(()));
        let reversed = [*new.verifying_key(), *old.verifying_key()];
        assert_eq!(
            verify_sendgrid(body, Some(&sig), Some("1"), &reversed),
            Ok(())
        );
        assert_eq!(
            verify_sendgrid(body, Some(&sig), Some("1"), &[*old.verifying_key()]),
            Err(SignatureError::Mismatch(SENDGRID_SIGNATURE_HEADER))
        );
    }

    /// P-256 signatures are malleable: (r, n - s) is as valid as (r, s). SendGrid's
    /// SDKs (Java, Go, Node) do not normalise S, so both halves must verify.
    #[test]
    fn high_s_signatures_verify() {
        let sk = signing_key(4);
        let keys = [*sk.verifying_key()];
        let body = b"[]\r\n";
        let mut message = b"5".to_vec();
        message.extend_from_slice(body);
        let sig: Signature = sk.sign(&message);
        let low = sig.normalize_s();
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r, -*s).expect("n - s is a valid scalar");
        assert_ne!(high, low);
        for variant in [low, high] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(variant.to_der().as_bytes());
            assert_eq!(verify_sendgrid(body, Some(&b64), Some("5"), &keys), Ok(()));
        }
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let sk = signing_key(5);
        let keys = [*sk.verifying_key()];
        let body = b"[]";
        let sig = sign(&sk, "9", body);
        assert_eq!(
            verify_sendgrid(body, None, Some("9"), &keys),
            Err(SignatureError::MissingHeader(SENDGRID_SIGNATURE_HEADER))
        );
        assert_eq!(
            verify_sendgrid(body, Some(&sig), None, &keys),
            Err(SignatureError::MissingHeader(SENDGRID_TIMESTAMP_HEADER))
        );
        let long = "A".repeat(500);
        for (garbage, fragment) in [
            ("", "empty"),
            ("!!!", "base64"),
            ("AAAA", "DER"),
            (long.as_str(), "too long"),
        ] {
            let err = verify_sendgrid(body, Some(garbage), Some("9"), &keys).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::Malformed {
                        header: SENDGRID_SIGNATURE_HEADER,
                        ..
                    }
                ),
                "{garbage:?}: {err:?}"
            );
            assert!(err.to_string().contains(fragment), "{garbage:?}: {err}");
        }
        let err = verify_sendgrid(body, Some(&sig), Some(""), &keys).unwrap_err();
        assert!(matches!(
            err,
            SignatureError::Malformed {
                header: SENDGRID_TIMESTAMP_HEADER,
                ..
            }
        ));
        assert_eq!(
            verify_sendgrid(body, Some(&sig), Some("9"), &[]),
            Err(SignatureError::NoSecret("sendgrid"))
        );
        for e in [
            SignatureError::MissingHeader(SENDGRID_SIGNATURE_HEADER),
            SignatureError::Mismatch(SENDGRID_SIGNATURE_HEADER),
            SignatureError::NoSecret("sendgrid"),
        ] {
            let gateway: crate::error::Error = e.into();
            assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
            assert!(!gateway.message.contains('\n'));
        }
    }
}
