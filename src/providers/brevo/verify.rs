//! Brevo's webhook authentication. Brevo signs nothing
//! (<https://developers.brevo.com/docs/username-and-password-authentication>): a webhook
//! carries either the credentials written into its URL (`https://user:password@host/...`,
//! sent as `Authorization: Basic base64(user:password)`, RFC 7617), or the bearer token
//! set as its `auth` (`{"type": "bearer", "token": "..."}`, sent as
//! `Authorization: Bearer TOKEN`, RFC 6750).
//!
//! Basic credentials are checked by the shared basic-auth check
//! ([`crate::providers::postmark::verify::verify_basic_auth`]). A bearer token is
//! compared the same way: both sides hashed with SHA-256, then compared in constant
//! time, every configured token tried whatever matched first, so the time taken says
//! neither where the bytes differ, nor the configured token's length, nor which one
//! matched; several tokens can be live while one is rotated.

use crate::providers::postmark::verify::verify_basic_auth;
use crate::secret::{Secret, equals_any};
use crate::signature::SignatureError;

/// The header that carries the credentials or the token.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// The name the refusals give the provider.
const PROVIDER: &str = "brevo";

/// No credential or token we accept comes near this; refusing longer headers early
/// bounds the work a hostile request can cause.
const MAX_HEADER_LEN: usize = 4096;

/// Verify a Brevo request's `Authorization` header (`header`, `None` when absent)
/// against the tenant's basic-auth `credentials` (each `user:password`) and bearer
/// `tokens`.
///
/// The scheme name is matched case-insensitively (RFC 7235). Refusals, one per check:
/// no header ([`SignatureError::MissingHeader`]); an empty or overlong header, a scheme
/// that is neither `Basic` nor `Bearer`, an empty token or undecodable basic credentials
/// ([`SignatureError::Malformed`]); nothing configured for the scheme used
/// ([`SignatureError::NoSecret`]); no configured value equal to the one sent
/// ([`SignatureError::Mismatch`]).
pub fn verify_brevo(
    header: Option<&str>,
    credentials: &[Secret],
    tokens: &[Secret],
) -> Result<(), SignatureError> {
    let malformed = |why| SignatureError::Malformed {
        header: AUTHORIZATION_HEADER,
        why,
    };
    let value = header
        .ok_or(SignatureError::MissingHeader(AUTHORIZATION_HEADER))?
        .trim();
    if value.is_empty() {
        return Err(malformed("it is empty"));
    }
    if value.len() > MAX_HEADER_LEN {
        return Err(malformed("it is too long to hold credentials or a token"));
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return verify_basic_auth(Some(value), credentials, PROVIDER);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("its scheme is neither Basic nor Bearer"));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(malformed("the bearer token is empty"));
    }
    if tokens.is_empty() {
        return Err(SignatureError::NoSecret(PROVIDER));
    }
    if equals_any(
        token.as_bytes(),
        tokens.iter().map(|t| t.expose().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch("the bearer token"))
    }
}

/// The `Authorization` value Brevo sends for a bearer `token`: for tests and tools
/// that call like Brevo.
pub fn bearer_header(token: &str) -> String {
    format!("Bearer {token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::postmark::verify::basic_auth_header;
    use crate::providers::testkit::{self, secrets};

    /// Brevo's documentation's own examples: `https://username:password@...` and the
    /// bearer token `client-token`.
    const CREDENTIALS: &str = "username:password";
    const TOKEN: &str = "client-token";

    fn malformed(why: &'static str) -> SignatureError {
        SignatureError::Malformed {
            header: AUTHORIZATION_HEADER,
            why,
        }
    }

    /// Every entry of tests/providers/brevo/vectors.json (derived from Brevo's
    /// documented examples: the research has no Brevo vectors), positive and negative.
    #[test]
    fn brevo_vectors() {
        let vectors = testkit::vectors(include_str!("../../../tests/providers/brevo/vectors.json"));
        let (mut valid, mut invalid) = (0, 0);
        for v in &vectors {
            let header = testkit::vector_header(v, "Authorization");
            let configured = secrets(&[v["secret"].as_str().unwrap()]);
            let result = match v["scheme"].as_str().unwrap() {
                "brevo-basic-auth" => verify_brevo(header, &configured, &[]),
                "brevo-bearer" => verify_brevo(header, &[], &configured),
                other => panic!("unknown scheme {other}"),
            };
            if testkit::assert_vector_validity(v, &result) {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert_eq!((valid, invalid), (2, 5));
    }

    #[test]
    fn basic_and_bearer_both_verify_and_rotate() {
        let creds = secrets(&["old:secret", CREDENTIALS]);
        let tokens = secrets(&["old-token", TOKEN]);
        for header in [
            basic_auth_header(CREDENTIALS),
            basic_auth_header("old:secret"),
            bearer_header(TOKEN),
            bearer_header("old-token"),
            format!("bearer {TOKEN}"),
            format!("BEARER   {TOKEN}  "),
        ] {
            assert_eq!(
                verify_brevo(Some(&header), &creds, &tokens),
                Ok(()),
                "{header}"
            );
        }
        // Retired: refused.
        assert_eq!(
            verify_brevo(
                Some(&bearer_header("old-token")),
                &creds,
                &secrets(&[TOKEN])
            ),
            Err(SignatureError::Mismatch("the bearer token"))
        );
        assert_eq!(
            verify_brevo(
                Some(&basic_auth_header("old:secret")),
                &secrets(&[CREDENTIALS]),
                &tokens
            ),
            Err(SignatureError::Mismatch("the Authorization credentials"))
        );
    }

    /// A token is never accepted as basic credentials or the other way round.
    #[test]
    fn schemes_do_not_cross() {
        let creds = secrets(&[CREDENTIALS]);
        let tokens = secrets(&[CREDENTIALS]);
        // The credentials sent as a bearer token match the token list only.
        assert_eq!(
            verify_brevo(Some(&bearer_header(CREDENTIALS)), &creds, &[]),
            Err(SignatureError::NoSecret("brevo"))
        );
        assert_eq!(
            verify_brevo(Some(&bearer_header(CREDENTIALS)), &[], &tokens),
            Ok(())
        );
        // A token sent as Basic's base64 is compared with credentials only.
        let as_basic = basic_auth_header(TOKEN);
        assert_eq!(
            verify_brevo(Some(&as_basic), &[], &secrets(&[TOKEN])),
            Err(malformed("the credentials are not user:password"))
        );
        assert_eq!(
            verify_brevo(Some(&basic_auth_header(CREDENTIALS)), &[], &tokens),
            Err(SignatureError::NoSecret("brevo"))
        );
    }

    #[test]
    fn refusals_name_the_check() {
        let creds = secrets(&[CREDENTIALS]);
        let tokens = secrets(&[TOKEN]);
        let long = format!("Bearer {}", "a".repeat(MAX_HEADER_LEN));
        let cases: Vec<(Option<&str>, SignatureError)> = vec![
            (None, SignatureError::MissingHeader(AUTHORIZATION_HEADER)),
            (Some(""), malformed("it is empty")),
            (Some("   "), malformed("it is empty")),
            (
                Some(&long),
                malformed("it is too long to hold credentials or a token"),
            ),
            (
                Some("Token abc"),
                malformed("its scheme is neither Basic nor Bearer"),
            ),
            (
                Some(TOKEN),
                malformed("its scheme is neither Basic nor Bearer"),
            ),
            (Some("Bearer"), malformed("the bearer token is empty")),
            // Trimmed, "Bearer    " is "Bearer": the token is empty.
            (Some("Bearer    "), malformed("the bearer token is empty")),
            (
                Some("Basic !!!"),
                malformed("the credentials are not standard base64"),
            ),
            // One character more than the token: no prefix match.
            (
                Some("Bearer client-token2"),
                SignatureError::Mismatch("the bearer token"),
            ),
            (
                Some("Bearer client-toke"),
                SignatureError::Mismatch("the bearer token"),
            ),
            (
                Some("Bearer Client-Token"),
                SignatureError::Mismatch("the bearer token"),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(
                verify_brevo(header, &creds, &tokens),
                Err(want),
                "{header:?}"
            );
        }
        assert_eq!(
            verify_brevo(Some(&bearer_header(TOKEN)), &creds, &[]),
            Err(SignatureError::NoSecret("brevo"))
        );
        assert_eq!(
            verify_brevo(Some(&basic_auth_header(CREDENTIALS)), &[], &tokens),
            Err(SignatureError::NoSecret("brevo"))
        );
    }
}
