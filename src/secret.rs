//! Secrets (auth tokens, API tokens) that never reach a log line.

use std::fmt;
use std::path::Path;

/// A secret value. Its `Debug` and `Display` print `***`, so a secret can sit in a
/// struct that is logged without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a resolved secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for signing and comparing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether `given` equals any of `candidates`, in time that says neither which one
/// matched nor how much of it: each side is hashed (SHA-256, so the lengths no longer
/// tell) and every candidate is compared. For credentials and tokens sent as they are
/// (HTTP basic auth, bearer tokens, a custom header's value).
pub fn equals_any<'a>(given: &[u8], candidates: impl IntoIterator<Item = &'a [u8]>) -> bool {
    use sha2::{Digest, Sha256};
    let given = Sha256::digest(given);
    // Fold rather than `any`, so every candidate is compared.
    candidates.into_iter().fold(false, |found, candidate| {
        constant_time_eq(&Sha256::digest(candidate), &given) | found
    })
}

/// Resolve a secret written inline, as `env:VAR` or as `file:PATH` (relative to `base`,
/// the configuration's directory; surrounding whitespace trimmed).
pub fn resolve(spec: &str, base: &Path) -> Result<Secret, String> {
    if let Some(var) = spec.strip_prefix("env:") {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
            Ok(_) => Err(format!("environment variable {var} is empty")),
            Err(_) => Err(format!("environment variable {var} is not set")),
        }
    } else if let Some(path) = spec.strip_prefix("file:") {
        let path = base.join(path);
        match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
            Ok(_) => Err(format!("secret file {} is empty", path.display())),
            Err(e) => Err(format!("cannot read secret file {}: {e}", path.display())),
        }
    } else if spec.trim().is_empty() {
        Err("secret is empty".to_string())
    } else {
        Ok(Secret::new(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_any_finds_a_match_among_several_and_nothing_else() {
        let configured: [&[u8]; 2] = [b"old:pass", b"new:pass"];
        assert!(equals_any(b"new:pass", configured));
        assert!(equals_any(b"old:pass", configured));
        assert!(!equals_any(b"new:pas", configured));
        assert!(!equals_any(b"new:passs", configured));
        assert!(!equals_any(b"", configured));
        assert!(!equals_any(b"new:pass", std::iter::empty::<&[u8]>()));
    }
}
