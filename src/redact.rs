//! Contact addresses in log lines: masked by default (`+1******1234`,
//! `al***@example.com`), in full only when the configuration says
//! `log_addresses = "full"` (for debugging). Every tracing call that logs an address,
//! or a free-text reason that may quote one, goes through this module.
//!
//! The mode is process-wide, like the log subscriber itself: `dndgate serve` sets it
//! once from the configuration at start.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// How addresses appear in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogAddresses {
    /// Masked: enough to tell addresses apart when reading a log, not to contact anyone.
    #[default]
    Masked,
    /// In full, for debugging.
    Full,
}

impl std::str::FromStr for LogAddresses {
    type Err = String;

    fn from_str(s: &str) -> Result<LogAddresses, String> {
        match s {
            "masked" => Ok(LogAddresses::Masked),
            "full" => Ok(LogAddresses::Full),
            other => Err(format!("{other:?} is not \"masked\" or \"full\"")),
        }
    }
}

static FULL: AtomicBool = AtomicBool::new(false);

/// Set how addresses appear in log lines from now on (process-wide).
pub fn set_log_addresses(mode: LogAddresses) {
    FULL.store(mode == LogAddresses::Full, Ordering::Relaxed);
}

fn full() -> bool {
    FULL.load(Ordering::Relaxed)
}

/// `Display` and `Debug` for a log-line wrapper of a `&str`: the text through `$mask`
/// unless addresses are logged in full (`Debug` the same, quoted).
macro_rules! masked_display {
    ($name:ident, $mask:ident) => {
        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if full() {
                    f.write_str(self.0)
                } else {
                    f.write_str(&$mask(self.0))
                }
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"{self}\"")
            }
        }
    };
}

/// An address for a log line: `Display` masks it unless addresses are logged in full.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

masked_display!(Masked, mask_address);

/// Mask one address, whatever the mode: an email keeps the first two characters of its
/// local part and its domain (`al***@example.com`); a phone number its `+`, first
/// digit and last four (`+1******1234`); a page-scoped id its page and the last four of
/// the user; anything else its last two characters.
pub fn mask_address(address: &str) -> String {
    if let Some((local, domain)) = address.rsplit_once('@') {
        let keep: String = local
            .chars()
            .take(if local.chars().count() > 3 { 2 } else { 1 })
            .collect();
        return format!("{keep}***@{domain}");
    }
    let (prefix, rest) = match address.find(':') {
        Some(i) => address.split_at(i + 1),
        None => ("", address),
    };
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let (head, tail) = if rest.starts_with('+') && n >= 8 {
        (2, 4)
    } else if n >= 8 {
        (0, 4)
    } else {
        (0, 2.min(n / 2))
    };
    let mut out = String::with_capacity(address.len());
    out.push_str(prefix);
    out.extend(&chars[..head]);
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

/// Does this piece of text look like a contact address (or a try at one)?
fn looks_like_address(s: &str) -> bool {
    let s = s.trim_matches(|c: char| matches!(c, '.' | ':' | '!' | '?'));
    if let Some((local, domain)) = s.split_once('@') {
        return !local.is_empty() && !domain.is_empty();
    }
    let bare = ["whatsapp:", "tel:", "sms:"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    let digits = bare.chars().filter(char::is_ascii_digit).count();
    let phoneish = bare
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'));
    phoneish && (7..=15).contains(&digits)
}

/// Mask every address a free-text line may carry (a refusal quoting the address it could
/// not read, a batch entry's reason), unless addresses are logged in full. Quoted
/// strings that look like a phone number or an email address are masked whole; outside
/// quotes, words with an `@`, and `+` numbers, are.
pub fn text(line: &str) -> Cow<'_, str> {
    if full() {
        return Cow::Borrowed(line);
    }
    mask_text(line)
}

/// [`text`], whatever the mode.
pub fn mask_text(line: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(line.len());
    let mut changed = false;
    let mut rest = line;
    while !rest.is_empty() {
        // A quoted string, as `{:?}` writes one.
        if let Some(after) = rest.strip_prefix('"') {
            let end = quoted_end(after);
            let inner = &after[..end];
            out.push('"');
            if looks_like_address(inner) {
                out.push_str(&mask_address(inner));
                changed = true;
            } else {
                out.push_str(inner);
            }
            rest = &after[end..];
            if let Some(r) = rest.strip_prefix('"') {
                out.push('"');
                rest = r;
            }
            continue;
        }
        let end = rest
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | ',' | ';' | '<' | '>' | '[' | ']')
            })
            .unwrap_or(rest.len());
        let (word, tail) = if end == 0 {
            let c = rest.chars().next().map_or(1, char::len_utf8);
            rest.split_at(c)
        } else {
            rest.split_at(end)
        };
        let core = word.trim_end_matches(['.', ':', ')']);
        let candidate = word.contains('@') || core.trim_start_matches('(').starts_with('+');
        if end > 0 && candidate && looks_like_address(core.trim_start_matches('(')) {
            let lead = &word[..word.len() - word.trim_start_matches('(').len()];
            let body = core.trim_start_matches('(');
            out.push_str(lead);
            out.push_str(&mask_address(body));
            out.push_str(&word[lead.len() + body.len()..]);
            changed = true;
        } else {
            out.push_str(word);
        }
        rest = tail;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(line)
    }
}

/// An event id for a log line: `Display` masks the addresses it embeds (a Resend or SES
/// recipient's `webhook-id:ADDRESS`, a linked contact's `EVENT_ID@ADDRESS`, a number
/// in a preference change's id) unless addresses are logged in full. Every log line
/// that names an event id goes through it.
#[derive(Clone, Copy)]
pub struct EventId<'a>(pub &'a str);

masked_display!(EventId, mask_event_id);

/// Mask the addresses inside an event id, whatever the mode: each `:`-separated part
/// that is an email address, a `+` number or a bare number of 7 to 15 digits, and each
/// address after an `@` that joins an id to a linked address.
pub fn mask_event_id(id: &str) -> String {
    id.split(':')
        .map(|part| {
            let digits = part.len();
            if (7..=15).contains(&digits) && part.bytes().all(|b| b.is_ascii_digit()) {
                mask_address(part)
            } else {
                mask_token(part).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// Mask the addresses in one token with no separators in it: `local@domain` pairs
/// (several may be joined by `@`, as `EVENT@ADDRESS` joins an id and an address) and
/// `+` numbers. Already masked text (`***`) is left alone.
fn mask_token(token: &str) -> Cow<'_, str> {
    // The one-byte searches first: most tokens have neither, and `"***"` needs a
    // substring searcher set up per call.
    if !(token.contains('@') || token.contains('+')) || token.contains("***") {
        return Cow::Borrowed(token);
    }
    let pieces: Vec<&str> = token.split('@').collect();
    let mut out: Vec<String> = Vec::with_capacity(pieces.len());
    let mut changed = false;
    let mut i = 0;
    let domain = |p: &str| {
        p.contains('.')
            && !p.starts_with('+')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    while i < pieces.len() {
        let piece = pieces[i];
        if i + 1 < pieces.len() && !piece.is_empty() && domain(pieces[i + 1]) {
            // The local part may carry the id it was joined to (`id+tag@..` stays one
            // address: only a `+` number stands alone).
            out.push(mask_address(&format!("{piece}@{}", pieces[i + 1])));
            changed = true;
            i += 2;
        } else if piece.starts_with('+') && looks_like_address(piece) {
            out.push(mask_address(piece));
            changed = true;
            i += 1;
        } else {
            out.push(piece.to_string());
            i += 1;
        }
    }
    if changed {
        Cow::Owned(out.join("@"))
    } else {
        Cow::Borrowed(token)
    }
}

/// Mask every email address and `+` number anywhere in a finished log line, inside
/// quoted strings and JSON values too, unless addresses are logged in full: the last
/// line of defence, applied by `dndgate serve`'s log writer to every line (a Redis
/// error quoting a key, a message no call site masked). Text already masked stays as
/// it is.
pub fn log_line(line: &str) -> Cow<'_, str> {
    if full() {
        return Cow::Borrowed(line);
    }
    mask_log_line(line)
}

/// [`log_line`], whatever the mode.
pub fn mask_log_line(line: &str) -> Cow<'_, str> {
    if !line.contains('@') && !line.contains('+') {
        return Cow::Borrowed(line);
    }
    let separator = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\''
                    | '\\'
                    | ','
                    | ';'
                    | '<'
                    | '>'
                    | '['
                    | ']'
                    | '('
                    | ')'
                    | '{'
                    | '}'
                    | '='
                    | ':'
            )
    };
    // Only a token (a run of non-separators) holding an `@` or a `+` can change, so
    // the line is searched for those bytes and each one's token taken around it; the
    // answer is built only from the first token that changes (most lines change
    // nothing: what they name is masked already), `line[..copied]` in it by then.
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(i) = line[from..].find(['@', '+']) {
        let at = from + i;
        let start = line[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| separator(c))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let end = line[at..].find(separator).map_or(line.len(), |j| at + j);
        let token = &line[start..end];
        // Trailing sentence punctuation is not part of an address.
        let core = token.trim_end_matches(['.', '!', '?']);
        if let Cow::Owned(m) = mask_token(core) {
            let o = out.get_or_insert_with(|| String::with_capacity(line.len() + 8));
            o.push_str(&line[copied..start]);
            o.push_str(&m);
            copied = start + core.len();
        }
        from = end;
    }
    match out {
        Some(mut o) => {
            o.push_str(&line[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(line),
    }
}

/// Where a `{:?}`-quoted string's content ends (the index of its closing quote, or the
/// end of the text).
fn quoted_end(s: &str) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i,
            _ => {}
        }
    }
    s.len()
}

/// A URL with the password of its user info replaced by `***`
/// (`redis://:***@host:6379/`), for output and log lines.
pub fn url(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return Cow::Borrowed(url);
    };
    let user_info = &url[start..at];
    let masked = match user_info.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    Cow::Owned(format!("{}{masked}{}", &url[..start], &url[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_to_tell_apart_not_to_contact() {
        let table = [
            ("+14155551234", "+1******1234"),
            ("+447700900123", "+4*******0123"),
            ("alice@example.com", "al***@example.com"),
            ("bob@example.com", "b***@example.com"),
            ("a@example.com", "a***@example.com"),
            ("1234567890:9876543210", "1234567890:******3210"),
            ("US.13491208655302741918", "*******************1918"),
            ("whatsapp:+14155551234", "whatsapp:+1******1234"),
            ("12345", "***45"),
            ("", ""),
        ];
        for (address, masked) in table {
            assert_eq!(mask_address(address), masked, "{address}");
        }
    }

    #[test]
    fn free_text_loses_the_addresses_it_quotes() {
        let table = [
            (
                "event 0: \"4155551234\" is not a phone number in E.164 form (+ and country code, 7 to 15 digits)",
                "event 0: \"******1234\" is not a phone number in E.164 form (+ and country code, 7 to 15 digits)",
            ),
            (
                "recipient 1: \"alice@@example.com\" is not an email address",
                "recipient 1: \"al***@example.com\" is not an email address",
            ),
            (
                "bounce for alice@example.com; and +14155551234.",
                "bounce for al***@example.com; and +1******1234.",
            ),
            (
                "signature timestamp is 1700000000 s old, older than the 604800 s",
                "signature timestamp is 1700000000 s old, older than the 604800 s",
            ),
            (
                "unknown tenant \"acme\" (SM11111111111111111111111111111111)",
                "unknown tenant \"acme\" (SM11111111111111111111111111111111)",
            ),
            (
                "twilio:30004 for (+14155551234)",
                "twilio:30004 for (+1******1234)",
            ),
            ("héllo \"wörld\"", "héllo \"wörld\""),
        ];
        for (line, masked) in table {
            assert_eq!(mask_text(line), masked, "{line}");
        }
    }

    #[test]
    fn event_ids_lose_the_addresses_they_embed() {
        let table = [
            (
                "msg_2ZvHLbVQ8mZ4o0h1oAtqKgTtVdQ:carol.bounced@example.com",
                "msg_2ZvHLbVQ8mZ4o0h1oAtqKgTtVdQ:ca***@example.com",
            ),
            (
                "0100018c-ses:alice@example.com@bob@example.org",
                "0100018c-ses:al***@example.com@b***@example.org",
            ),
            ("SM123@+14155551234", "SM123@+1******1234"),
            (
                "pref:14155551234:1733650000:STOP",
                "pref:*******1234:******0000:STOP",
            ),
            (
                "SM11111111111111111111111111111111",
                "SM11111111111111111111111111111111",
            ),
            (
                "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQz",
                "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQz",
            ),
        ];
        for (id, masked) in table {
            assert_eq!(mask_event_id(id), masked, "{id}");
        }
    }

    #[test]
    fn a_log_line_loses_every_address_wherever_it_sits() {
        let table = [
            (
                r#"WARN redis unavailable: spooling error="refused" event_id="msg_1:carol@example.com""#,
                r#"WARN redis unavailable: spooling error="refused" event_id="msg_1:ca***@example.com""#,
            ),
            (
                r#"{"fields":{"error":"script failed on dnd:{acme:3}:seen:ses:m1:dave.x@example.org@+14155551234"}}"#,
                r#"{"fields":{"error":"script failed on dnd:{acme:3}:seen:ses:m1:da***@example.org@+1******1234"}}"#,
            ),
            ("to=bob@example.com.", "to=b***@example.com."),
            (
                "address=+1******1234 al***@example.com",
                "address=+1******1234 al***@example.com",
            ),
            (
                "peer=127.0.0.1:5555 status=200 events=3",
                "peer=127.0.0.1:5555 status=200 events=3",
            ),
        ];
        for (line, masked) in table {
            assert_eq!(mask_log_line(line), masked, "{line}");
        }
    }

    /// The token-by-token walk `mask_log_line` did before it searched for `@` and
    /// `+` (issue 16): both must answer alike on any line.
    fn mask_log_line_token_by_token(line: &str) -> String {
        let separator = |c: char| c.is_whitespace() || "\"'\\,;<>[](){}=:".contains(c);
        let mut out = String::new();
        let mut rest = line;
        while !rest.is_empty() {
            let start = rest.find(|c: char| !separator(c)).unwrap_or(rest.len());
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find(separator).unwrap_or(rest.len());
            let (token, tail) = rest.split_at(end);
            let core = token.trim_end_matches(['.', '!', '?']);
            match mask_token(core) {
                Cow::Owned(m) => {
                    out.push_str(&m);
                    out.push_str(&token[core.len()..]);
                }
                Cow::Borrowed(_) => out.push_str(token),
            }
            rest = tail;
        }
        out
    }

    #[test]
    fn the_searching_mask_answers_as_the_token_walk() {
        let lines = [
            "",
            "+",
            "@",
            "+14155551234",
            "a@b.c",
            " +14155551234 ",
            "x+14155551234",
            "to=+14155551234, cc=bob@example.com; and +447700900123.",
            "tenant=\"acme\" address=+1******0029 outcome=\"applied\" reason=\"keyword:STOP\"",
            "from\u{a0}+14155551234\u{2003}bob@example.com!",
            "é+14155551234 ü@x.y +1 ++ @@ a@@b.c +14155551234+14155551235",
            "(carol@example.com)[+14155551234]{dave@example.org}<+33612345678>",
            "id=m1:dave.x@example.org@+14155551234 next",
            "trailing +14155551234?! and al***@example.com and eve@example.com...",
        ];
        for line in lines {
            assert_eq!(
                mask_log_line(line),
                mask_log_line_token_by_token(line),
                "{line:?}"
            );
        }
    }

    #[test]
    fn url_passwords_are_hidden() {
        let table = [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://app:s3cret@host/", "rediss://app:***@host/"),
            ("redis://s3cret@host", "redis://***@host"),
            ("redis://host/?password=x@y", "redis://host/?password=x@y"),
            ("managed", "managed"),
        ];
        for (raw, shown) in table {
            assert_eq!(url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn the_mode_parses() {
        assert_eq!("masked".parse(), Ok(LogAddresses::Masked));
        assert_eq!("full".parse(), Ok(LogAddresses::Full));
        assert!("plain".parse::<LogAddresses>().is_err());
    }
}
