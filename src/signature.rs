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

/// HMAC-SHA256 under `key` of `parts`, one after the other (Mailgun, Meta and Standard
/// Webhooks sign this way, over different parts).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The 32 bytes of a SHA-256 digest written as 64 lowercase hex digits, as Mailgun and
/// Meta send it; `None` for anything else (uppercase included). The length is checked
/// before decoding, which bounds the work a forged value can cause.
pub fn lowercase_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// The bytes of a standard-base64 signature in `header` (SendGrid, Twilio): refused as
/// malformed when empty, longer than `max_len` (`too_long` says what it cannot then
/// be; refusing early bounds the work a forged header can cause) or not base64.
pub fn base64_header(
    header: &'static str,
    value: &str,
    max_len: usize,
    too_long: &'static str,
) -> Result<Vec<u8>, SignatureError> {
    use base64::Engine as _;
    let malformed = |why| SignatureError::Malformed { header, why };
    if value.is_empty() {
        return Err(malformed("it is empty"));
    }
    if value.len() > max_len {
        return Err(malformed(too_long));
    }
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| malformed("it is not standard base64"))
}
