//! Shared mechanics of signature checks: the one error type every provider's verifier
//! returns, and its mapping to a 401 that names the failed check; and, for schemes that
//! sign a timestamp (Standard Webhooks, Telnyx), the replay window around it
//! ([`within_window`], [`TimedError`]). Each scheme lives in its provider's folder
//! (`src/providers/<name>/verify.rs`), checking the raw request exactly as the provider
//! signs it, in constant time, with every configured secret tried (rotation).

use crate::error::Error;
use base64::Engine as _;

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

/// The signature a request carries in `header` (`value`, `None` when absent), decoded
/// by `decode` from its trimmed text; refused, in this order, when it is missing, when
/// `decode` finds it malformed, or when `provider` has no secret in `secrets` to check
/// it against.
pub fn signature_header<T, S>(
    header: &'static str,
    value: Option<&str>,
    decode: impl FnOnce(&str) -> Result<T, SignatureError>,
    provider: &'static str,
    secrets: &[S],
) -> Result<T, SignatureError> {
    let value = value.ok_or(SignatureError::MissingHeader(header))?;
    let given = decode(value.trim())?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret(provider));
    }
    Ok(given)
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

/// HMAC-SHA1 under `key` of a URL followed by each parameter's name and value, in the
/// order given (Twilio and Mandrill sign this way; each sorts the parameters its own way).
pub fn hmac_sha1_url_params(key: &[u8], url: &str, params: &[(&str, &str)]) -> [u8; 20] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// The base64 of an HMAC-SHA1 is 28 characters; anything much longer is not one, and
/// refusing it early bounds the work a forged header can cause.
const MAX_HMAC_SHA1_BASE64_LEN: usize = 64;

/// A header holding a base64 HMAC-SHA1 (Twilio, SignalWire, Mandrill), decoded: 20
/// bytes, or why not.
pub fn hmac_sha1_base64_header(
    header: &'static str,
    value: &str,
) -> Result<Vec<u8>, SignatureError> {
    let bytes = base64_header(
        header,
        value,
        MAX_HMAC_SHA1_BASE64_LEN,
        "it is too long to be a base64 HMAC-SHA1",
    )?;
    if bytes.len() != 20 {
        return Err(SignatureError::Malformed {
            header,
            why: "it does not decode to a 20-byte HMAC-SHA1",
        });
    }
    Ok(bytes)
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

/// Why a request of a scheme that signs a timestamp was refused: a signature problem,
/// or a timestamp outside the window. Every variant ends in 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimedError {
    /// The headers or the signature.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The timestamp is further in the past than the tolerance: stale, or replayed.
    #[error(
        "the signed timestamp is {age_secs} s old, more than the {tolerance_secs} s allowed: a stale or replayed request"
    )]
    TooOld {
        /// How old it is, in seconds.
        age_secs: i64,
        /// The window either way, in seconds.
        tolerance_secs: i64,
    },
    /// The timestamp is further in the future than the tolerance (a sender clock far
    /// ahead, or a request forged for later replay).
    #[error(
        "the signed timestamp is {ahead_secs} s in the future, more than the {tolerance_secs} s allowed"
    )]
    TooNew {
        /// How far ahead it is, in seconds.
        ahead_secs: i64,
        /// The window either way, in seconds.
        tolerance_secs: i64,
    },
}

impl From<TimedError> for Error {
    fn from(e: TimedError) -> Error {
        let reason = match &e {
            TimedError::Signature(s) => s.reason(),
            TimedError::TooOld { .. } | TimedError::TooNew { .. } => "stale",
        };
        Error::unauthorized(e.to_string()).with_reason(reason)
    }
}

/// Unix seconds as a sender writes them in a header: ASCII digits only (a sign, spaces
/// inside or a fraction are not what senders send, and the exact string is part of
/// what was signed), at most 12 of them.
pub fn unix_seconds(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Read the signed timestamp `raw` of header `header` and check that it is within
/// `tolerance_secs` of `now_secs`, either way; its value in Unix seconds. Call it before
/// any signature is computed: a request outside the window is refused whatever it
/// carries, and the check costs nothing.
pub fn within_window(
    header: &'static str,
    raw: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, TimedError> {
    let seconds = unix_seconds(raw).ok_or(SignatureError::Malformed {
        header,
        why: "it is not Unix seconds",
    })?;
    let skew = now_secs.saturating_sub(seconds);
    if skew > tolerance_secs {
        return Err(TimedError::TooOld {
            age_secs: skew,
            tolerance_secs,
        });
    }
    if skew < -tolerance_secs {
        return Err(TimedError::TooNew {
            ahead_secs: -skew,
            tolerance_secs,
        });
    }
    Ok(seconds)
}

/// The prefix of a Standard Webhooks signing secret (`whsec_` and base64 of the key).
/// The scheme is shared: Standard Webhooks senders sign what dndgate receives, and
/// dndgate signs the events it sends to automations the same way.
pub const WHSEC_PREFIX: &str = "whsec_";

/// The HMAC key of a Standard Webhooks secret: the base64 decoding of what follows
/// `whsec_` (or of the whole secret when it has no prefix). `None` when that is not
/// base64 or is empty, so a configuration check can refuse such a secret.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(WHSEC_PREFIX).unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .filter(|key| !key.is_empty())
}

/// Standard Webhooks v1: HMAC-SHA256 of `<id>.<timestamp>.<body>` under `key`.
pub fn whsec_hmac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    )
}

/// The `webhook-signature` entry a sender sends: `v1,<base64>`. `secret` is a `whsec_`
/// secret (or its base64 key alone); `None` when the key is not base64.
pub fn sign_whsec(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = decode_whsec(secret)?;
    let sig = whsec_hmac(&key, id, timestamp, body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges_both_ways() {
        let h = "x-timestamp";
        assert_eq!(within_window(h, "1000", 1300, 300), Ok(1000));
        assert_eq!(within_window(h, "1000", 700, 300), Ok(1000));
        assert_eq!(
            within_window(h, "1000", 1301, 300),
            Err(TimedError::TooOld {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            within_window(h, "1000", 699, 300),
            Err(TimedError::TooNew {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        let e = Error::from(within_window(h, "1000", 5000, 300).unwrap_err());
        assert!(e.message.contains("stale"), "{}", e.message);
    }

    #[test]
    fn only_digits_are_seconds() {
        assert_eq!(unix_seconds("1614265330"), Some(1_614_265_330));
        for bad in ["", "-1", "+1", " 1", "1.5", "1e3", "1234567890123", "abc"] {
            assert_eq!(unix_seconds(bad), None, "{bad:?}");
            assert!(
                matches!(
                    within_window("x-timestamp", bad, 0, 300),
                    Err(TimedError::Signature(SignatureError::Malformed {
                        header: "x-timestamp",
                        ..
                    }))
                ),
                "{bad:?}"
            );
        }
    }
}
