//! SparkPost's webhook authentication. SparkPost signs nothing
//! (<https://developers.sparkpost.com/api/webhooks/>); a webhook carries what the
//! operator set on it:
//!
//! - Basic Auth (`auth_type: basic`, `auth_credentials: {username, password}`, the
//!   password optional): `Authorization: Basic base64(user:password)`, checked by the
//!   shared basic-auth verifier ([`crate::providers::postmark::verify`]);
//! - a custom header (`custom_headers`, up to five, each a name and a value, sent with
//!   every batch): the configured header must carry one of the configured values.
//!
//! When both are configured both must match. Every comparison hashes both sides with
//! SHA-256 and compares the digests in constant time, trying every configured value
//! whatever matched first, so neither the time taken nor the order of the values tells
//! which one matched (several while rotating). Pure: no clock, no I/O.

use crate::providers::postmark::verify::verify_basic_auth;
use crate::secret::{Secret, equals_any};
use crate::signature::SignatureError;

/// What [`SignatureError`] names for the custom header, whose name is configured.
pub const CUSTOM_HEADER: &str = "custom auth";

/// SparkPost limits its custom headers to 3000 bytes in all; a longer value is refused
/// before it is hashed.
const MAX_HEADER_VALUE_LEN: usize = 4096;

/// Headers that cannot serve as the custom auth header: basic auth has its own
/// setting, and the others are the transport's.
const RESERVED_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "content-length",
    "host",
    "x-messagesystems-batch-id",
];

/// A tenant's means of authenticating its SparkPost webhooks.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Basic-auth credentials, each `user:password`; empty: basic auth is not used.
    pub credentials: Vec<Secret>,
    /// The custom header, if one is used.
    pub header: Option<HeaderAuth>,
}

/// A custom header and the values it may carry.
#[derive(Debug, Clone)]
pub struct HeaderAuth {
    /// The header's name, lower-cased (as the request's headers are).
    pub name: String,
    /// The accepted values, several while rotating.
    pub values: Vec<Secret>,
}

/// Is `credential` a `user:password` SparkPost can send: a non-empty user, a colon,
/// and a password that may be empty (SparkPost's password is optional)?
pub fn is_user_password(credential: &str) -> bool {
    credential
        .split_once(':')
        .is_some_and(|(user, _)| !user.is_empty())
}

/// Why `name` cannot be the custom auth header, if it cannot: not an HTTP token
/// (RFC 9110 `tchar`s), or a header that means something else.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let name = name.trim();
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "{name:?} cannot carry the secret (for basic auth, set credentials)"
        ));
    }
    Ok(())
}

/// Verify a request against `auth`: `authorization` is its `Authorization` header and
/// `custom` the value of the configured custom header, each if present.
///
/// Refusals, in the order checked: basic auth (as
/// [`verify_basic_auth`]: missing, malformed, mismatch), then the custom header
/// ([`SignatureError::MissingHeader`] or [`SignatureError::Malformed`] naming
/// [`CUSTOM_HEADER`], [`SignatureError::Mismatch`]); nothing configured at all is
/// [`SignatureError::NoSecret`].
pub fn verify(
    auth: &Auth,
    authorization: Option<&str>,
    custom: Option<&str>,
) -> Result<(), SignatureError> {
    if auth.credentials.is_empty() && auth.header.is_none() {
        return Err(SignatureError::NoSecret("sparkpost"));
    }
    if !auth.credentials.is_empty() {
        verify_basic_auth(authorization, &auth.credentials, "sparkpost")?;
    }
    if let Some(header) = &auth.header {
        verify_header_value(custom, &header.values)?;
    }
    Ok(())
}

/// Check the custom header's value against `values`, in constant time.
pub fn verify_header_value(given: Option<&str>, values: &[Secret]) -> Result<(), SignatureError> {
    let given = given.ok_or(SignatureError::MissingHeader(CUSTOM_HEADER))?;
    let malformed = |why| SignatureError::Malformed {
        header: CUSTOM_HEADER,
        why,
    };
    if given.trim().is_empty() {
        return Err(malformed("it is empty"));
    }
    if given.len() > MAX_HEADER_VALUE_LEN {
        return Err(malformed("it is longer than SparkPost sends"));
    }
    if values.is_empty() {
        return Err(SignatureError::NoSecret("sparkpost"));
    }
    let configured = values.iter().map(|v| v.expose().trim().as_bytes());
    if equals_any(given.trim().as_bytes(), configured) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch("the custom auth header's value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::postmark::verify::{AUTHORIZATION_HEADER, basic_auth_header};
    use crate::providers::testkit::{secrets, vector_header, vectors};

    /// SparkPost's own example credentials (developers.sparkpost.com/api/webhooks,
    /// "Webhooks Object" sample) and custom header (`x-api-key: abcd`).
    const USER: &str = "basicauthuser:mypassword";

    fn basic(creds: &[&str]) -> Auth {
        Auth {
            credentials: secrets(creds),
            header: None,
        }
    }

    fn header(values: &[&str]) -> Auth {
        Auth {
            credentials: Vec::new(),
            header: Some(HeaderAuth {
                name: "x-api-key".into(),
                values: secrets(values),
            }),
        }
    }

    /// tests/providers/sparkpost/vectors.json: derived from SparkPost's documented
    /// examples (SparkPost publishes no signature vectors: it signs nothing).
    #[test]
    fn sparkpost_vectors() {
        let all = vectors(include_str!(
            "../../../tests/providers/sparkpost/vectors.json"
        ));
        assert_eq!(all.len(), 7);
        let (mut good, mut bad) = (0, 0);
        for v in &all {
            let auth = Auth {
                credentials: v["credentials"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| Secret::new(c.as_str().unwrap()))
                    .collect(),
                header: v["auth_header"].as_str().map(|h| HeaderAuth {
                    name: h.to_ascii_lowercase(),
                    values: v["auth_header_values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| Secret::new(c.as_str().unwrap()))
                        .collect(),
                }),
            };
            let custom = auth.header.as_ref().and_then(|h| vector_header(v, &h.name));
            let result = verify(&auth, vector_header(v, AUTHORIZATION_HEADER), custom);
            if crate::providers::testkit::assert_vector_validity(v, &result) {
                good += 1;
            } else {
                bad += 1;
            }
        }
        assert_eq!((good, bad), (3, 4));
    }

    #[test]
    fn basic_auth_with_rotation_and_an_empty_password() {
        let header = basic_auth_header(USER);
        assert_eq!(header, "Basic YmFzaWNhdXRodXNlcjpteXBhc3N3b3Jk");
        let rotating = basic(&["old:secret", USER]);
        assert_eq!(verify(&rotating, Some(&header), None), Ok(()));
        assert_eq!(
            verify(&rotating, Some(&basic_auth_header("old:secret")), None),
            Ok(())
        );
        assert_eq!(
            verify(&basic(&["old:secret"]), Some(&header), None),
            Err(SignatureError::Mismatch("the Authorization credentials"))
        );
        // SparkPost's password is optional: "user:" is what it then sends.
        let no_password = basic(&["hookuser:"]);
        assert_eq!(
            verify(&no_password, Some(&basic_auth_header("hookuser:")), None),
            Ok(())
        );
        assert_eq!(
            verify(&no_password, None, None),
            Err(SignatureError::MissingHeader(AUTHORIZATION_HEADER))
        );
    }

    #[test]
    fn custom_header_with_rotation() {
        let auth = header(&["abcd", "next-value"]);
        assert_eq!(verify(&auth, None, Some("abcd")), Ok(()));
        assert_eq!(verify(&auth, None, Some("next-value")), Ok(()));
        // A basic-auth header is not asked for when only the custom header is set.
        assert_eq!(
            verify(&auth, Some("Basic Zm9vOmJhcg=="), Some("abcd")),
            Ok(())
        );
        let cases: Vec<(Option<&str>, SignatureError)> = vec![
            (None, SignatureError::MissingHeader(CUSTOM_HEADER)),
            (
                Some("  "),
                SignatureError::Malformed {
                    header: CUSTOM_HEADER,
                    why: "it is empty",
                },
            ),
            (
                Some("abcde"),
                SignatureError::Mismatch("the custom auth header's value"),
            ),
            (
                Some("abc"),
                SignatureError::Mismatch("the custom auth header's value"),
            ),
        ];
        for (given, want) in cases {
            assert_eq!(verify(&auth, None, given), Err(want), "{given:?}");
        }
        let long = "a".repeat(MAX_HEADER_VALUE_LEN + 1);
        assert!(matches!(
            verify(&auth, None, Some(&long)),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn both_configured_means_both_must_match() {
        let auth = Auth {
            credentials: secrets(&[USER]),
            header: header(&["abcd"]).header,
        };
        let good = basic_auth_header(USER);
        assert_eq!(verify(&auth, Some(&good), Some("abcd")), Ok(()));
        assert_eq!(
            verify(&auth, Some(&good), None),
            Err(SignatureError::MissingHeader(CUSTOM_HEADER))
        );
        assert_eq!(
            verify(&auth, None, Some("abcd")),
            Err(SignatureError::MissingHeader(AUTHORIZATION_HEADER))
        );
        assert_eq!(
            verify(&auth, Some(&good), Some("wxyz")),
            Err(SignatureError::Mismatch("the custom auth header's value"))
        );
    }

    #[test]
    fn nothing_configured_verifies_nothing() {
        assert_eq!(
            verify(
                &Auth::default(),
                Some(&basic_auth_header(USER)),
                Some("abcd")
            ),
            Err(SignatureError::NoSecret("sparkpost"))
        );
        assert_eq!(
            verify_header_value(Some("abcd"), &[]),
            Err(SignatureError::NoSecret("sparkpost"))
        );
    }

    #[test]
    fn a_bearer_token_is_not_basic_auth() {
        assert!(matches!(
            verify(&basic(&[USER]), Some("Bearer eyJhbGciOi"), None),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn configuration_checks() {
        for ok in ["u:p", "user:", "u:p:with:colons"] {
            assert!(is_user_password(ok), "{ok}");
        }
        for bad in ["", "nocolon", ":password"] {
            assert!(!is_user_password(bad), "{bad}");
        }
        for ok in [
            "x-api-key",
            "X-Dndgate-Token",
            "x-messagesystems-webhook-token",
        ] {
            assert_eq!(check_header_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "x api key",
            "x-key:",
            "Authorization",
            "content-type",
            "Host",
        ] {
            assert!(check_header_name(bad).is_err(), "{bad}");
        }
    }
}
