//! The gateway's error: what went wrong in one line, and the kind that decides the answer.
//!
//! Like pingora's errors, the kind says whether a retry can help: a provider gets 503
//! only when retrying later can succeed ([`Kind::Unavailable`]); anything it sent that
//! can never succeed gets a 4xx, so it stops retrying.

use std::fmt;

/// What kind of failure, which fixes the HTTP status and the CLI exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or names something invalid (400).
    BadRequest,
    /// Missing or invalid signature or token (401).
    Unauthorized,
    /// The token is valid but not for this tenant (403).
    Forbidden,
    /// Unknown route, provider or tenant (404).
    NotFound,
    /// Wrong HTTP method (405).
    MethodNotAllowed,
    /// The change would break a state rule, e.g. clearing a permanent record without
    /// evidence (409).
    Conflict,
    /// Body over the size limit (413).
    PayloadTooLarge,
    /// The client did not send its request in time (408).
    RequestTimeout,
    /// Wrong content type (415).
    UnsupportedMediaType,
    /// Redis (or the spool) cannot take or give the data now; retrying can help (503).
    Unavailable,
    /// A bug or a broken invariant (500).
    Internal,
}

impl Kind {
    /// The HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::Conflict => 409,
            Kind::PayloadTooLarge => 413,
            Kind::RequestTimeout => 408,
            Kind::UnsupportedMediaType => 415,
            Kind::Unavailable => 503,
            Kind::Internal => 500,
        }
    }
}

/// An error with its kind and a one-line message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: Kind,
    /// One line saying what was wrong; never contains a secret.
    pub message: String,
    /// For a refused signature: which check failed (`missing`, `malformed`,
    /// `mismatch`, `stale`, `replay`, ...), the label of the verification-failure
    /// metric.
    pub reason: Option<&'static str>,
    /// For a 401: the `WWW-Authenticate` challenge to answer with (HTTP basic auth).
    pub challenge: Option<&'static str>,
}

/// `text` with its line breaks escaped as `\n` and `\r`: for a message that carries
/// text from the input, so an answer or a log line stays one line.
pub fn one_line(text: String) -> String {
    if text.contains(['\n', '\r']) {
        text.replace('\r', "\\r").replace('\n', "\\n")
    } else {
        text
    }
}

/// A value from the input for a message: quoted and escaped (so it stays on one line),
/// and cut to its first 64 characters so a hostile payload cannot flood a log.
pub fn quoted(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    format!("{cut:?}")
}

impl Error {
    /// An error of `kind` with `message`. A line break in the message (one that came
    /// with the input, such as a JSON key echoed by a decoder) is escaped as `\n` or
    /// `\r`, so the answer and the log line stay one line.
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: one_line(message.into()),
            reason: None,
            challenge: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(Kind::BadRequest, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::new(Kind::Unauthorized, message)
    }

    /// The same error, saying which verification check failed.
    pub fn with_reason(mut self, reason: &'static str) -> Error {
        self.reason = Some(reason);
        self
    }

    /// The same error, answered with this `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: &'static str) -> Error {
        self.challenge = Some(challenge);
        self
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(Kind::Unavailable, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the api_json fuzz target: serde_json echoes an unknown JSON key, line
    /// breaks included, into its message.
    #[test]
    fn a_message_with_line_breaks_stays_one_line() {
        let err = Error::bad_request("unknown field `ch\nan\rnel`, expected `channel`");
        assert_eq!(
            err.message,
            "unknown field `ch\\nan\\rnel`, expected `channel`"
        );
        assert_eq!(err.kind.status(), 400);
    }
}
