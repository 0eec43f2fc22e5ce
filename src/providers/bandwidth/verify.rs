//! Bandwidth's callback authentication: HTTP basic auth (RFC 7617) with the user id and
//! password set on the Messaging application (`InboundCallbackCreds` and
//! `OutboundCallbackCreds`, https://dev.bandwidth.com/docs/account/applications).
//! Bandwidth signs nothing: no HMAC, no timestamp, no signature header.
//!
//! The mechanics are Postmark's, which authenticates the same way
//! ([`crate::providers::postmark::verify`]): both sides hashed with SHA-256 and compared
//! in constant time, every configured credential tried whatever matched first (so one
//! can be rotated), one [`SignatureError`] per failed check.

use crate::providers::postmark::verify as basic;
use crate::secret::Secret;
use crate::signature::SignatureError;

pub use basic::{AUTHORIZATION_HEADER, basic_auth_header};

/// Check `Authorization: Basic <base64(user:password)>` (`header`, if any) against the
/// tenant's `credentials`, each `user:password`.
///
/// Refusals: no header ([`SignatureError::MissingHeader`]), another scheme, bad base64
/// or no colon ([`SignatureError::Malformed`]), no credential configured
/// ([`SignatureError::NoSecret`]), no credential equal to the one sent
/// ([`SignatureError::Mismatch`]).
pub fn verify_bandwidth(
    header: Option<&str>,
    credentials: &[Secret],
) -> Result<(), SignatureError> {
    basic::verify_basic_auth(header, credentials, "bandwidth")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets};

    /// The callback credentials of Bandwidth's own application example
    /// (https://dev.bandwidth.com/docs/account/applications).
    const DOCS: &str = "15jPWZmXdm:xxv3jPsPR2";

    /// tests/providers/bandwidth/vectors.json: derived from the documented example
    /// credentials (Bandwidth publishes no vectors: there is no signature).
    #[test]
    fn bandwidth_vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/bandwidth/vectors.json"
        ));
        assert_eq!(vectors.len(), 5);
        let (mut valid, mut invalid) = (0, 0);
        for v in &vectors {
            assert_eq!(v["provider"], "bandwidth");
            let creds = secrets(&[v["secret"].as_str().unwrap()]);
            let header = testkit::vector_header(v, "Authorization");
            let result = verify_bandwidth(header, &creds);
            if testkit::assert_vector_validity(v, &result) {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert_eq!((valid, invalid), (1, 4));
    }

    #[test]
    fn sign_verify_and_rotate() {
        let header = basic_auth_header(DOCS);
        assert_eq!(header, "Basic MTVqUFdabVhkbTp4eHYzalBzUFIy");
        assert_eq!(verify_bandwidth(Some(&header), &secrets(&[DOCS])), Ok(()));
        // Rotation: the old pair and the new one both pass while both are listed.
        let rotating = secrets(&["old-user:old-pass", DOCS]);
        assert_eq!(verify_bandwidth(Some(&header), &rotating), Ok(()));
        let old = basic_auth_header("old-user:old-pass");
        assert_eq!(verify_bandwidth(Some(&old), &rotating), Ok(()));
        // Once the old pair is removed it fails.
        assert_eq!(
            verify_bandwidth(Some(&old), &secrets(&[DOCS])),
            Err(SignatureError::Mismatch("the Authorization credentials"))
        );
    }

    #[test]
    fn tampered_credentials_fail() {
        let ok = secrets(&[DOCS]);
        for wrong in [
            "15jPWZmXdm:xxv3jPsPR3",  // last character of the password
            "15jPWZmXdn:xxv3jPsPR2",  // last character of the user
            "15jPWZmXdm:xxv3jPsPR2x", // one more character
            "15jPWZmXdm:xxv3jPsPR",   // one less
            "15jpwzmxdm:xxv3jpspr2",  // case matters
            "xxv3jPsPR2:15jPWZmXdm",  // swapped
        ] {
            assert_eq!(
                verify_bandwidth(Some(&basic_auth_header(wrong)), &ok),
                Err(SignatureError::Mismatch("the Authorization credentials")),
                "{wrong}"
            );
        }
    }

    #[test]
    fn each_refusal_names_its_check() {
        let ok = secrets(&[DOCS]);
        let malformed = |why| SignatureError::Malformed {
            header: AUTHORIZATION_HEADER,
            why,
        };
        let cases: Vec<(Option<&str>, SignatureError)> = vec![
            (None, SignatureError::MissingHeader(AUTHORIZATION_HEADER)),
            (
                Some("Bearer MTVqUFdabVhkbTp4eHYzalBzUFIy"),
                malformed("its scheme is not Basic"),
            ),
            (
                Some("Basic %%%"),
                malformed("the credentials are not standard base64"),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(verify_bandwidth(header, &ok), Err(want), "{header:?}");
        }
        assert_eq!(
            verify_bandwidth(Some(&basic_auth_header(DOCS)), &[]),
            Err(SignatureError::NoSecret("bandwidth"))
        );
    }
}
