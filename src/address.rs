//! Contact addresses and their normalisation: one spelling per contact, everywhere.
//!
//! The normalised form is part of the Redis contract (senders compute keys from it), so
//! the rules here are documented in the README and must not change silently:
//!
//! - phone channels (`sms`, `voice`, `whatsapp`): E.164, `+` then 7 to 15 digits, the
//!   first not `0`. A `whatsapp:`, `sms:` or `tel:` prefix, spaces, dots, dashes and
//!   parentheses are dropped, and a leading `00` is read as `+`. A number without a
//!   country code is refused rather than guessed.
//! - `whatsapp` also accepts a business-scoped user id (`US.1234abc`: two-letter
//!   country, a dot, then letters, digits and dots), kept as sent.
//! - `email`: trimmed and lower-cased; one `@` with something on both sides.
//! - `messenger`, `instagram`: the page-scoped id, qualified by the page or account id
//!   as `PAGE_ID:USER_ID` (digits only on both sides).

use std::fmt;

use crate::event::Channel;

/// A normalised contact address. Only [`Address::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

/// Why an address could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("address is empty")]
    Empty,
    /// A phone number that is not E.164.
    #[error("{0:?} is not a phone number in E.164 form (+ and country code, 7 to 15 digits)")]
    NotE164(String),
    /// An email address without a local part and a domain.
    #[error("{0:?} is not an email address")]
    NotEmail(String),
    /// A page-scoped id without its page.
    #[error("{0:?} is not a page-scoped id: expected PAGE_ID:USER_ID, digits only")]
    NotScopedId(String),
    /// Longer than any real address.
    #[error("address is longer than {MAX_LEN} bytes")]
    TooLong,
}

/// No address we accept is longer than this; it bounds keys and audit entries.
pub const MAX_LEN: usize = 254;

impl Address {
    /// Normalise `raw` as an address on `channel`.
    pub fn parse(channel: Channel, raw: &str) -> Result<Address, AddressError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AddressError::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        match channel {
            Channel::Sms | Channel::Voice => parse_e164(raw),
            Channel::Whatsapp => {
                let rest = strip_prefix_ci(raw, "whatsapp:").unwrap_or(raw).trim();
                if is_business_scoped_id(rest) {
                    Ok(Address(rest.to_string()))
                } else {
                    parse_e164(raw)
                }
            }
            Channel::Email => parse_email(raw),
            Channel::Messenger | Channel::Instagram => parse_scoped_id(raw),
        }
    }

    /// Normalise `raw` without knowing its channel: a phone number (`+`, `00`, or a
    /// `whatsapp:`/`sms:`/`tel:` prefix), an email address (has `@`), a business-scoped
    /// WhatsApp id, or a page-scoped id (`PAGE_ID:USER_ID`). For routes and files that
    /// name an address with no channel (history, contacts, plain address lists).
    pub fn parse_any(raw: &str) -> Result<Address, AddressError> {
        let t = raw.trim();
        if t.contains('@') {
            Address::parse(Channel::Email, t)
        } else if is_business_scoped_id(strip_prefix_ci(t, "whatsapp:").unwrap_or(t).trim()) {
            Address::parse(Channel::Whatsapp, t)
        } else if t.contains(':')
            && t.split_once(':')
                .is_some_and(|(p, _)| p.bytes().all(|b| b.is_ascii_digit()))
        {
            Address::parse(Channel::Messenger, t)
        } else {
            Address::parse(Channel::Sms, t)
        }
    }

    /// An address read back from the store, which holds only normalised ones.
    pub(crate) fn from_store(normalised: String) -> Address {
        Address(normalised)
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_e164(raw: &str) -> Result<Address, AddressError> {
    let not_e164 = || AddressError::NotE164(raw.to_string());
    let mut rest = raw;
    for prefix in ["whatsapp:", "sms:", "tel:"] {
        if let Some(r) = strip_prefix_ci(rest, prefix) {
            rest = r.trim_start();
            break;
        }
    }
    let rest = if let Some(r) = rest.strip_prefix('+') {
        r
    } else if let Some(r) = rest.strip_prefix("00") {
        r
    } else {
        return Err(not_e164());
    };
    let mut digits = String::with_capacity(16);
    digits.push('+');
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(not_e164()),
        }
    }
    let count = digits.len() - 1;
    if !(7..=15).contains(&count) || digits.as_bytes()[1] == b'0' {
        return Err(not_e164());
    }
    Ok(Address(digits))
}

fn is_business_scoped_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'.'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.')
        && b[3..].iter().any(|c| c.is_ascii_alphanumeric())
}

fn parse_email(raw: &str) -> Result<Address, AddressError> {
    let lower = raw.to_lowercase();
    let bad = || AddressError::NotEmail(raw.to_string());
    let (local, domain) = lower.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || lower.chars().any(|c| c.is_whitespace() || c.is_control())
        || domain.starts_with('.')
        || domain.ends_with('.')
        // RFC 5321/5322: outside a quoted local part (which no provider sends us) these
        // are never part of an address; a name such as `=HYPERLINK("…")@x.com` is an
        // injection attempt, not a contact.
        || local.contains(['"', '(', ')', ',', ':', ';', '<', '>', '[', ']', '\\'])
        // A domain is letters, digits, hyphens and dots (non-ASCII for IDNs).
        || !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(Address(lower))
}

fn parse_scoped_id(raw: &str) -> Result<Address, AddressError> {
    let bad = || AddressError::NotScopedId(raw.to_string());
    let (page, user) = raw.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(page) && digits(user) {
        Ok(Address(raw.to_string()))
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        use Channel::*;
        let ok: &[(Channel, &str, &str)] = &[
            (Sms, "+14155551234", "+14155551234"),
            (Sms, " +1 (415) 555-1234 ", "+14155551234"),
            (Sms, "+44 20 7946 0018", "+442079460018"),
            (Sms, "0044 20 7946 0018", "+442079460018"),
            (Sms, "tel:+14155551234", "+14155551234"),
            (Voice, "+1.415.555.1234", "+14155551234"),
            (Whatsapp, "whatsapp:+1 (415) 555-1234", "+14155551234"),
            (Whatsapp, "WhatsApp:+14155551234", "+14155551234"),
            (Whatsapp, "+14155551234", "+14155551234"),
            (Whatsapp, "whatsapp:US.ABC123XYZ", "US.ABC123XYZ"),
            (Whatsapp, "BR.1502576394655843", "BR.1502576394655843"),
            (Email, " Alice@Example.COM ", "alice@example.com"),
            (Messenger, "1234:5678", "1234:5678"),
        ];
        for (channel, raw, want) in ok {
            let got = Address::parse(*channel, raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(got.as_str(), *want, "{channel} {raw}");
        }
        let bad: &[(Channel, &str)] = &[
            (Sms, ""),
            (Sms, "4155551234"),
            (Sms, "+0155551234"),
            (Sms, "+141555"),
            (Sms, "+1234567890123456"),
            (Sms, "+1415abc1234"),
            (Sms, "whatsapp:US.ABC"),
            (Whatsapp, "whatsapp:"),
            (Email, "alice"),
            (Email, "alice@"),
            (Email, "@example.com"),
            (Email, "al ice@example.com"),
            (Email, "=HYPERLINK(\"http://evil.example\")@x.com"),
            (Email, "a,b@example.com"),
            (Email, "a<b>@example.com"),
            (Email, "alice@exa=mple.com"),
            (Email, "alice@example.com;x"),
            (Messenger, "5678"),
            (Instagram, "abc:123"),
        ];
        for (raw, want) in [
            ("whatsapp:+1 (415) 555-1234", "+14155551234"),
            ("Alice@Example.com", "alice@example.com"),
            // Legal, if odd: kept (the export escapes them for spreadsheets).
            ("=1+2@example.com", "=1+2@example.com"),
            ("o'brien+tag@bücher.example", "o'brien+tag@bücher.example"),
            ("1234:5678", "1234:5678"),
            ("US.ABC123", "US.ABC123"),
            ("00442079460018", "+442079460018"),
        ] {
            assert_eq!(Address::parse_any(raw).unwrap().as_str(), want, "{raw}");
        }
        assert!(Address::parse_any("4155551234").is_err());
        for (channel, raw) in bad {
            assert!(
                Address::parse(*channel, raw).is_err(),
                "{channel} {raw:?} should be refused"
            );
        }
    }
}
