//! Shared mechanics of signature checks: the one error type every provider's verifier
//! returns, and its mapping to a 401 that names the failed check. Each scheme lives in
//! its provider's folder (`src/providers/<name>/verify.rs`), checking the raw request
//! exactly as the provider signs it, in constant time, with every configured secret
//! tried (rotation).

use crate::error::Error;

/// Why a request's signature was refused. Every variant ends in 401; the variants exist
/// so the log says which check failed. No message ever contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("missing {0} header: the request is not signed")]
    MissingHeader(&'static str),
    /// The signature header is present but cannot be a signature of this scheme.
    #[error("malformed {header} header: {why}")]
    Malformed {
        /// The header that was malformed.
        header: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The tenant has no secret for this provider, so nothing can be verified.
    #[error("no {0} secret is configured for this tenant: add one to verify its requests")]
    NoSecret(&'static str),
    /// The signature is well-formed but matches under no configured secret.
    #[error("{0} does not match the request under any configured secret")]
    Mismatch(&'static str),
    /// A JSON request's URL lacks the parameter that binds the body to the signature.
    #[error("the URL has no bodySHA256 query parameter, which a signed JSON request must carry")]
    BodyHashMissing,
    /// The URL's `bodySHA256` is not Twilio's: not exactly once, not the last query
    /// parameter, or not 64 lowercase hex digits.
    #[error("the URL's bodySHA256 {0}: Twilio puts it once, last, as 64 lowercase hex digits")]
    BodyHashMalformed(&'static str),
    /// The body is not the one whose hash the provider signed.
    #[error("bodySHA256 in the URL is not the SHA-256 of the body: the body was altered")]
    BodyHashMismatch,
}

impl SignatureError {
    /// Which check failed, as the verification-failure metric names it.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing",
            SignatureError::Malformed { .. }
            | SignatureError::BodyHashMissing
            | SignatureError::BodyHashMalformed(_) => "malformed",
            SignatureError::NoSecret(_) => "no_secret",
            SignatureError::Mismatch(_) => "mismatch",
            SignatureError::BodyHashMismatch => "body_altered",
        }
    }
}

impl From<SignatureError> for Error {
    fn from(e: SignatureError) -> Error {
        let reason = e.reason();
        Error::unauthorized(e.to_string()).with_reason(reason)
    }
}
