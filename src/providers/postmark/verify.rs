//! HTTP basic authentication (RFC 7617), for providers that sign nothing and instead
//! send credentials the operator wrote into the webhook URL (Postmark:
//! `https://user:password@host/path` arrives as `Authorization: Basic base64(user:password)`).
//!
//! Both sides are hashed with SHA-256 before the constant-time comparison, so the time
//! taken depends neither on where the bytes differ nor on the configured credential's
//! length; every credential is tried, whatever matched first, so one can be rotated.

use base64::Engine as _;

use crate::secret::{Secret, equals_any};
use crate::signature::SignatureError;

/// The header that carries the credentials.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// No credentials we accept come near this; refusing longer headers early bounds the
/// work a hostile request can cause (base64 of about 3 KB of `user:password`).
const MAX_HEADER_LEN: usize = 4096;

/// Verify `Authorization: Basic <base64(user:password)>` against `credentials`, each
/// configured as `user:password`.
///
/// `header` is the header value, if any. The scheme name is matched case-insensitively
/// (RFC 7235 says so); the base64 must be standard with padding, as every client sends
/// it. Refusals: no header ([`SignatureError::MissingHeader`]), another scheme or bad
/// base64 ([`SignatureError::Malformed`]), no configured credential
/// ([`SignatureError::NoSecret`], naming `provider`), or no credential equal to the
/// decoded one ([`SignatureError::Mismatch`]).
pub fn verify_basic_auth(
    header: Option<&str>,
    credentials: &[Secret],
    provider: &'static str,
) -> Result<(), SignatureError> {
    let given = decode_basic_auth(header)?;
    if credentials.is_empty() {
        return Err(SignatureError::NoSecret(provider));
    }
    if equals_any(&given, credentials.iter().map(|c| c.expose().as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch("the Authorization credentials"))
    }
}

/// The `Authorization` value a client sends for `credentials` (`user:password`): for
/// tests and tools that call like the provider.
pub fn basic_auth_header(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// The decoded `user:password` bytes of a Basic `Authorization` header.
fn decode_basic_auth(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let malformed = |why| SignatureError::Malformed {
        header: AUTHORIZATION_HEADER,
        why,
    };
    let header = header
        .ok_or(SignatureError::MissingHeader(AUTHORIZATION_HEADER))?
        .trim();
    if header.is_empty() {
        return Err(malformed("it is empty"));
    }
    if header.len() > MAX_HEADER_LEN {
        return Err(malformed("it is too long to hold basic credentials"));
    }
    let (scheme, token) = header
        .split_once(' ')
        .ok_or_else(|| malformed("it is not `Basic` followed by base64 credentials"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed("its scheme is not Basic"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| malformed("the credentials are not standard base64"))?;
    if !decoded.contains(&b':') {
        return Err(malformed("the credentials are not user:password"));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::secrets;

    const GOOD: &str = "pm_hook_user:pm_hook_pass_123";

    /// The postmark entries of research/vectors.json, copied into
    /// tests/providers/postmark/vectors.json.
    #[test]
    fn postmark_vectors() {
        let text = include_str!("../../../tests/providers/postmark/vectors.json");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = vectors.as_array().unwrap();
        assert_eq!(vectors.len(), 3);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let header = v["headers"]["Authorization"].as_str();
            let secret = v["secret"].as_str().unwrap();
            let result = verify_basic_auth(header, &secrets(&[secret]), "postmark");
            assert_eq!(
                result.is_ok(),
                v["expected_valid"].as_bool().unwrap(),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn header_round_trip_and_rotation() {
        let header = basic_auth_header(GOOD);
        assert_eq!(header, "Basic cG1faG9va191c2VyOnBtX2hvb2tfcGFzc18xMjM=");
        let rotating = secrets(&["old:secret", GOOD]);
        assert_eq!(
            verify_basic_auth(Some(&header), &rotating, "postmark"),
            Ok(())
        );
        let old = basic_auth_header("old:secret");
        assert_eq!(verify_basic_auth(Some(&old), &rotating, "postmark"), Ok(()));
        assert_eq!(
            verify_basic_auth(Some(&header), &secrets(&["old:secret"]), "postmark"),
            Err(SignatureError::Mismatch("the Authorization credentials"))
        );
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let token = basic_auth_header(GOOD).replace("Basic ", "");
        for scheme in ["basic", "BASIC", "Basic"] {
            let header = format!("{scheme} {token}");
            assert_eq!(
                verify_basic_auth(Some(&header), &secrets(&[GOOD]), "postmark"),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn refusals_name_the_check() {
        let ok = secrets(&[GOOD]);
        let long = format!("Basic {}", "A".repeat(MAX_HEADER_LEN));
        // (header, expected error)
        let cases: Vec<(Option<&str>, SignatureError)> = vec![
            (None, SignatureError::MissingHeader(AUTHORIZATION_HEADER)),
            (Some(""), malformed("it is empty")),
            (
                Some("Basic"),
                malformed("it is not `Basic` followed by base64 credentials"),
            ),
            (Some("Bearer abc"), malformed("its scheme is not Basic")),
            (
                Some("Basic !!!"),
                malformed("the credentials are not standard base64"),
            ),
            // base64("nocolon")
            (
                Some("Basic bm9jb2xvbg=="),
                malformed("the credentials are not user:password"),
            ),
            (
                Some(&long),
                malformed("it is too long to hold basic credentials"),
            ),
            // Same user, password with one more character: no prefix match.
            (
                Some("Basic cG1faG9va191c2VyOnBtX2hvb2tfcGFzc18xMjM0"),
                SignatureError::Mismatch("the Authorization credentials"),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(
                verify_basic_auth(header, &ok, "postmark"),
                Err(want),
                "{header:?}"
            );
        }
        assert_eq!(
            verify_basic_auth(Some(&basic_auth_header(GOOD)), &[], "postmark"),
            Err(SignatureError::NoSecret("postmark"))
        );
    }

    fn malformed(why: &'static str) -> SignatureError {
        SignatureError::Malformed {
            header: AUTHORIZATION_HEADER,
            why,
        }
    }
}
