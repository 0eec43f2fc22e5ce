//! The console's words: records, reasons, outcomes and times as an operator reads them
//! ("replied STOP by text on 3 May 2026", "error 30004 at Twilio: ..."). Pure: the
//! caller passes the clock and a way to read a provider's error-code table.

use crate::event::{Channel, Scope};
use crate::providers::Provider;
use crate::store::{Record, State};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `3 May 2026`, in UTC.
pub fn date(ms: i64) -> String {
    let (y, m, d) = crate::time::civil_from_days(ms.div_euclid(86_400_000));
    format!("{d} {} {y}", MONTHS[(m - 1).clamp(0, 11) as usize])
}

/// `3 May 2026, 14:05 UTC`.
pub fn date_time(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    format!(
        "{}, {:02}:{:02} UTC",
        date(ms),
        in_day / 3_600_000,
        in_day / 60_000 % 60
    )
}

/// A channel as the console's rows name it.
pub fn channel(channel: Channel) -> &'static str {
    crate::links::page::channel_label(channel)
}

/// A scope as the console names it.
pub fn scope(scope: Scope) -> &'static str {
    match scope {
        Scope::Channel(c) => channel(c),
        Scope::All => "All channels",
    }
}

/// Who a record's source is: a provider's name as people know it, or what else set it.
pub fn source(source: &str) -> String {
    match source {
        "operator" => "an operator".to_string(),
        "import" => "an import".to_string(),
        "link" => "an unsubscribe link".to_string(),
        other => match other.parse::<Provider>() {
            Ok(p) => p.about().title.to_string(),
            Err(_) => other.to_string(),
        },
    }
}

/// How a message on a provider's channel is called, for "replied STOP by text".
fn by(source: &str) -> &'static str {
    match source {
        "meta" => "by message",
        "sendgrid" | "mailgun" | "postmark" | "ses" | "standard-webhooks" | "brevo"
        | "sparkpost" | "mandrill" => "by email",
        _ => "by text",
    }
}

/// The words for a record's reason, set by `source`: what happened, and where.
/// `code_meaning` reads a provider's error-code table (the line it gives the code).
pub fn reason(
    reason: &str,
    record_source: &str,
    code_meaning: &dyn Fn(&str, &str) -> Option<String>,
) -> String {
    let at = source(record_source);
    if let Some(rest) = reason.strip_prefix("escalated:") {
        return format!(
            "made permanent after repeated temporary failures ({})",
            self::reason(rest, record_source, code_meaning)
        );
    }
    if let Some(word) = reason.strip_prefix("keyword:") {
        return format!("replied {word} {} ({at})", by(record_source));
    }
    if let Some(word) = reason.strip_prefix("phrase:") {
        return format!("wrote a message containing \u{201c}{word}\u{201d} ({at})");
    }
    if let Some(verdict) = reason.strip_prefix("provider:") {
        return match verdict {
            "STOP" => format!("opted out, as {at} reported"),
            "START" => format!("opted back in, as {at} reported"),
            "STOP_MARKETING" => format!("stopped marketing messages, as {at} reported"),
            "RESUME_MARKETING" => format!("resumed marketing messages, as {at} reported"),
            other => format!("{} ({at})", other.to_lowercase()),
        };
    }
    match reason {
        "operator" => return "set by an operator".to_string(),
        "operator:consent" => return "lifted by an operator with consent evidence".to_string(),
        "inbound" => return format!("the contact wrote to us ({at})"),
        "link" => return "unsubscribed with a link".to_string(),
        "import" => return "imported from a suppression list".to_string(),
        _ => {}
    }
    if let Some(why) = reason.strip_prefix("operator:") {
        return format!("set by an operator: {why}");
    }
    if let Some(campaign) = reason.strip_prefix("link:") {
        return format!("unsubscribed with a link (campaign {campaign})");
    }
    if let Some(what) = reason.strip_prefix("import:") {
        return format!("imported from a suppression list ({what})");
    }
    let Some((provider, what)) = reason.split_once(':') else {
        return reason.replace('_', " ");
    };
    let at = source(provider);
    if let Some(group) = what.strip_prefix("group:") {
        return format!("unsubscribed from group {group} at {at}");
    }
    if what.bytes().all(|b| b.is_ascii_digit()) || code_meaning(provider, what).is_some() {
        let meaning = code_meaning(provider, what)
            .map(|m| format!(": {}", first_clause(&m)))
            .unwrap_or_default();
        if what.bytes().all(|b| b.is_ascii_digit()) {
            return format!("error {what} at {at}{meaning}");
        }
        return format!("{} at {at}{meaning}", what.replace(['_', '-'], " "));
    }
    let words = match what {
        "bounce" | "hard_bounce" | "hardbounce" | "permanent" => "hard bounce",
        "soft_bounce" | "softbounce" | "transient" => "soft bounce",
        "complaint" | "spamreport" | "spam_report" | "spam" | "spam_complaint" => "spam complaint",
        "unsubscribe" | "unsubscribed" | "unsub" => "unsubscribed",
        "stop" => "opted out",
        "resume" => "opted back in",
        "marketing_stop" => "stopped marketing messages",
        "marketing_resume" => "resumed marketing messages",
        other => return format!("{} at {at}", other.replace(['_', '-'], " ")),
    };
    format!("{words} at {at}")
}

/// A code table's line up to its first `;` (the rest explains the rule, for people
/// editing the table).
fn first_clause(text: &str) -> &str {
    text.split(';')
        .next()
        .unwrap_or(text)
        .trim()
        .trim_end_matches('.')
}

/// What a record means now: `(label, detail)`, e.g. `("Permanent", "")`,
/// `("Temporary", "until 10 Dec 2026, 14:00 UTC")`, `("Allowed", "lifted ...")`.
pub fn state(record: Option<&Record>, now_ms: i64) -> (&'static str, String) {
    match record {
        None => ("Allowed", String::new()),
        Some(r) => match r.state {
            State::Permanent => ("Permanent", String::new()),
            State::Marketing => ("Marketing only", "service messages allowed".to_string()),
            State::Temporary => match r.expires_ms {
                Some(e) if e > now_ms => ("Temporary", format!("until {}", date_time(e))),
                Some(e) => (
                    "Allowed",
                    format!("a temporary block ended {}", date_time(e)),
                ),
                None => ("Allowed", String::new()),
            },
            State::Cleared => ("Allowed", String::new()),
        },
    }
}

/// An audit outcome in words, given what the event asked for.
pub fn outcome(outcome: &str, action: &str) -> &'static str {
    match (outcome, action) {
        ("applied", "block_permanent") => "DND set (permanent)",
        ("applied", "block_temporary") => "DND set (temporary)",
        ("applied", "block_marketing") => "DND set (marketing only)",
        ("applied", "block_own") => "DND set",
        ("applied", _) => "DND lifted",
        ("escalated", _) => "made permanent after repeated failures",
        ("superseded", _) => "ignored: older than the record",
        ("kept_permanent", _) => "kept: already permanent",
        ("refused", _) => "refused: needs consent evidence",
        ("refused_time", _) => "refused: the event's time was wrong",
        ("review", _) => "flagged for review",
        ("help", _) => "asked for help",
        ("expired", _) => "temporary block ended",
        _ => "recorded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(provider: &str, code: &str) -> Option<String> {
        (provider == "twilio" && code == "30004").then(|| {
            "The destination is blocked from receiving this message (e.g. a carrier \
             blocklist); permanent by product rule."
                .to_string()
        })
    }

    #[test]
    fn reasons_read_as_sentences() {
        let cases = [
            ("keyword:STOP", "twilio", "replied STOP by text (Twilio)"),
            ("keyword:STOP", "meta", "replied STOP by message (Meta)"),
            (
                "twilio:30004",
                "twilio",
                "error 30004 at Twilio: The destination is blocked from receiving this message (e.g. a carrier blocklist)",
            ),
            ("twilio:30003", "twilio", "error 30003 at Twilio"),
            ("sendgrid:bounce", "sendgrid", "hard bounce at SendGrid"),
            ("brevo:complaint", "brevo", "spam complaint at Brevo"),
            (
                "sendgrid:group:42",
                "sendgrid",
                "unsubscribed from group 42 at SendGrid",
            ),
            (
                "escalated:twilio:30003",
                "twilio",
                "made permanent after repeated temporary failures (error 30003 at Twilio)",
            ),
            ("operator", "operator", "set by an operator"),
            (
                "operator:asked on the phone",
                "operator",
                "set by an operator: asked on the phone",
            ),
            (
                "operator:consent",
                "operator",
                "lifted by an operator with consent evidence",
            ),
            (
                "link:spring",
                "link",
                "unsubscribed with a link (campaign spring)",
            ),
            ("provider:STOP", "twilio", "opted out, as Twilio reported"),
            (
                "ses:Transient:MailboxFull",
                "ses",
                "Transient:MailboxFull at Amazon SES",
            ),
        ];
        for (reason, source, words) in cases {
            assert_eq!(super::reason(reason, source, &table), words, "{reason}");
        }
    }

    #[test]
    fn times_and_states_read_in_utc() {
        // 2026-05-03T14:05:00Z
        let ms = crate::time::days_from_civil(2026, 5, 3) * 86_400_000 + (14 * 60 + 5) * 60_000;
        assert_eq!(date(ms), "3 May 2026");
        assert_eq!(date_time(ms), "3 May 2026, 14:05 UTC");
        let temporary = Record {
            state: State::Temporary,
            event_ms: ms,
            expires_ms: Some(ms + 3_600_000),
            reason: "twilio:30003".into(),
            source: "twilio".into(),
        };
        assert_eq!(
            state(Some(&temporary), ms),
            ("Temporary", "until 3 May 2026, 15:05 UTC".to_string())
        );
        assert_eq!(state(Some(&temporary), ms + 3_600_000).0, "Allowed");
        assert_eq!(state(None, ms).0, "Allowed");
    }
}
