//! Meta's signature (WhatsApp Cloud API, Messenger, Instagram): `X-Hub-Signature-256:
//! sha256=<hex>`, HMAC-SHA256 with the app secret over the raw body exactly as received.
//! Meta escapes non-ASCII as `\uXXXX` in what it signs, so a body that was parsed and
//! re-serialised no longer verifies: the caller must pass the bytes off the wire.

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{SignatureError, hmac_sha256, lowercase_hex_32, signature_header};

/// The header that carries Meta's signature. The legacy `X-Hub-Signature` (SHA-1) that
/// Meta may send beside it is not used.
pub const META_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// Verify Meta's `X-Hub-Signature-256` header.
///
/// `body` is the raw request body exactly as received: never a re-serialisation of the
/// parsed JSON. `signature` is the header value, if any. The value must be `sha256=`
/// followed by the 64 lowercase hex digits of HMAC-SHA256(app secret, body); Meta
/// documents and sends lowercase, so uppercase hex is refused as malformed rather than
/// accepted (we compare case-insensitively only for providers that are inconsistent).
/// Every secret in `app_secrets` is tried, so an app secret can be rotated.
pub fn verify_meta(
    body: &[u8],
    signature: Option<&str>,
    app_secrets: &[Secret],
) -> Result<(), SignatureError> {
    let given = signature_header(
        META_SIGNATURE_HEADER,
        signature,
        decode_meta_signature,
        "meta",
        app_secrets,
    )?;
    let matched = app_secrets.iter().any(|secret| {
        let expected = meta_hmac(secret.expose().as_bytes(), body);
        constant_time_eq(&expected, &given)
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(META_SIGNATURE_HEADER))
    }
}

/// The `X-Hub-Signature-256` value Meta would send for `body` under `app_secret`:
/// `sha256=` and the lowercase hex digest. For tests and tools that sign like Meta.
pub fn sign_meta(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(meta_hmac(app_secret.as_bytes(), body))
    )
}

fn meta_hmac(secret: &[u8], body: &[u8]) -> [u8; 32] {
    hmac_sha256(secret, &[body])
}

/// The 32 digest bytes of a `sha256=<64 lowercase hex>` header value. The length is
/// checked before decoding, which bounds the work a forged header can cause.
fn decode_meta_signature(header: &str) -> Result<[u8; 32], SignatureError> {
    let malformed = |why| SignatureError::Malformed {
        header: META_SIGNATURE_HEADER,
        why,
    };
    if header.is_empty() {
        return Err(malformed("it is empty"));
    }
    let digest = header
        .strip_prefix("sha256=")
        .ok_or_else(|| malformed("it does not start with sha256="))?;
    if digest.len() != 64 {
        return Err(malformed("the digest after sha256= is not 64 hex digits"));
    }
    lowercase_hex_32(digest)
        .ok_or_else(|| malformed("the digest after sha256= is not lowercase hex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets};

    /// Every Meta signature vector from the shared research file, positive and negative,
    /// including the re-serialised-UTF-8 body and the wrong secret.
    #[test]
    fn shared_vectors() {
        let vectors = testkit::vectors(include_str!("../../../tests/providers/meta/vectors.json"));
        let mut run = 0;
        for v in &vectors {
            if v["scheme"] != "x-hub-signature-256" {
                continue;
            }
            run += 1;
            let name = v["name"].as_str().expect("name");
            let body = v["body"].as_str().expect("body");
            let secret = v["secret"].as_str().expect("secret");
            let header = v["headers"][META_SIGNATURE_HEADER].as_str();
            let got = verify_meta(body.as_bytes(), header, &secrets(&[secret]));
            let mismatch = SignatureError::Mismatch(META_SIGNATURE_HEADER);
            testkit::assert_vector_verdict(v, &got, mismatch);
            if let Some(expected) = v["expected_signature"].as_str() {
                assert_eq!(sign_meta(secret, body.as_bytes()), expected, "{name}");
            }
        }
        assert!(run >= 7, "vector file lost entries: {run}");
    }

    #[test]
    fn sign_verify_tamper() {
        let body = br#"{"object":"page","entry":[{"id":"1","messaging":[]}]}"#;
        let sig = sign_meta("app-secret", body);
        let s = secrets(&["app-secret"]);
        assert_eq!(verify_meta(body, Some(&sig), &s), Ok(()));
        assert_eq!(
            verify_meta(body, Some(&format!("  {sig} ")), &s),
            Ok(()),
            "surrounding whitespace is not part of the value"
        );

        let mut tampered = body.to_vec();
        tampered[12] = b'P';
        assert_eq!(
            verify_meta(&tampered, Some(&sig), &s),
            Err(SignatureError::Mismatch(META_SIGNATURE_HEADER))
        );
        let mut longer = body.to_vec();
        longer.push(b'\n');
        assert_eq!(
            verify_meta(&longer, Some(&sig), &s),
            Err(SignatureError::Mismatch(META_SIGNATURE_HEADER)),
            "a trailing newline is a different body"
        );
    }

    #[test]
    fn rotation_accepts_any_configured_secret() {
        let body = b"test";
        let sig = sign_meta("new", body);
        assert_eq!(
            verify_meta(body, Some(&sig), &secrets(&["old", "new"])),
            Ok(())
        );
        assert_eq!(
            verify_meta(body, Some(&sig), &secrets(&["new", "old"])),
            Ok(())
        );
        assert_eq!(
            verify_meta(body, Some(&sig), &secrets(&["old", "other"])),
            Err(SignatureError::Mismatch(META_SIGNATURE_HEADER))
        );
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let body = b"test";
        let good = sign_meta("secret", body);
        let s = secrets(&["secret"]);
        assert_eq!(
            verify_meta(body, None, &s),
            Err(SignatureError::MissingHeader(META_SIGNATURE_HEADER))
        );
        let hex = good.strip_prefix("sha256=").unwrap();
        let malformed: &[(String, &str)] = &[
            (String::new(), "empty"),
            (hex.to_string(), "does not start with sha256="),
            (format!("sha1={hex}"), "does not start with sha256="),
            (format!("SHA256={hex}"), "does not start with sha256="),
            ("sha256=".to_string(), "not 64 hex digits"),
            (format!("sha256={}", &hex[..63]), "not 64 hex digits"),
            (format!("sha256={hex}00"), "not 64 hex digits"),
            (format!("sha256={}", "z".repeat(64)), "not lowercase hex"),
            (
                format!("sha256={}", hex.to_uppercase()),
                "not lowercase hex",
            ),
            (format!("sha256={}", "A".repeat(5000)), "not 64 hex digits"),
        ];
        for (header, fragment) in malformed {
            let err = verify_meta(body, Some(header), &s).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::Malformed {
                        header: META_SIGNATURE_HEADER,
                        ..
                    }
                ),
                "{header:?}: {err:?}"
            );
            assert!(err.to_string().contains(fragment), "{header:?}: {err}");
        }
        assert_eq!(
            verify_meta(body, Some(&good), &[]),
            Err(SignatureError::NoSecret("meta"))
        );

        // Every refusal is a 401 with one line that never carries the secret.
        for e in [
            SignatureError::MissingHeader(META_SIGNATURE_HEADER),
            SignatureError::NoSecret("meta"),
            SignatureError::Mismatch(META_SIGNATURE_HEADER),
            verify_meta(body, Some("sha256=x"), &s).unwrap_err(),
        ] {
            let gateway: crate::error::Error = e.into();
            assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
            assert!(!gateway.message.contains('\n') && !gateway.message.contains("secret\""));
            assert!(
                gateway.message.contains(META_SIGNATURE_HEADER) || gateway.message.contains("meta")
            );
        }
    }
}
