//! Provider error-code tables: which delivery errors say something about the contact.
//!
//! The tables are policy, so they live as data in `providers/<provider>.toml`, embedded
//! at build time and overridable from configuration ([`ErrorTable::merge`]). A code that
//! is in no table never creates a DND: an unknown sender-side error read as a contact
//! error would put a whole contact list on DND.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Action, Permanence};

/// Longest code we accept as a table key; numeric codes are a handful of characters,
/// SES's `bounceType:bounceSubType` up to 34 (`Permanent:OnAccountSuppressionList`).
const MAX_CODE_LEN: usize = 64;

/// What an error code does to the contact's DND on the event's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeAction {
    /// Permanent DND: the contact said no, or the address can never receive on this
    /// channel.
    Permanent,
    /// Temporary DND: the address cannot receive now; it may later.
    Temporary,
    /// Permanent DND for marketing messages only (WhatsApp 131050: the contact stopped
    /// marketing from this business; service messages still go).
    Marketing,
    /// No DND change: the error is about our sender, account or content, or is
    /// transient.
    None,
}

impl CodeAction {
    /// The classification action for this rule.
    pub fn action(self) -> Action {
        match self {
            CodeAction::Permanent => Action::Block(Permanence::Permanent),
            CodeAction::Temporary => Action::Block(Permanence::Temporary),
            CodeAction::Marketing => Action::BlockMarketing,
            CodeAction::None => Action::None,
        }
    }
}

/// One entry of an error table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRule {
    /// What the code does to the contact's DND.
    pub action: CodeAction,
    /// One line saying what the code means, for operators reading the table.
    pub reason: String,
    /// Where the meaning comes from (a URL), so a reviewer can check the rule.
    /// Optional for operator overrides; every shipped entry has one.
    #[serde(default)]
    pub source: Option<String>,
}

/// Why an error table was refused. Each variant names the provider, and the entry when
/// one is at fault, so the operator knows which line to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeTableError {
    /// The text is not TOML.
    #[error("{provider} error-code table, line {line}: not valid TOML: {message}")]
    Syntax {
        /// The table's provider.
        provider: String,
        /// The 1-based line of the error (0 when the parser gave no position).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A top-level key other than `provider` and `codes` (likely a typo).
    #[error("{provider} error-code table: unknown top-level key {key:?} (expected `codes`)")]
    UnknownKey {
        /// The table's provider.
        provider: String,
        /// The key.
        key: String,
    },
    /// The file says it is for another provider.
    #[error("{provider} error-code table says provider = {found:?}: wrong file?")]
    WrongProvider {
        /// The provider the table was loaded for.
        provider: String,
        /// The provider the file names.
        found: String,
    },
    /// One code's entry is malformed.
    #[error("{provider} error-code table, code {code:?}: {message}")]
    Entry {
        /// The table's provider.
        provider: String,
        /// The code whose entry is wrong.
        code: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One provider's error-code table: code -> what it means for the contact's DND.
///
/// [`Default`] is the empty table, in which every code is unclassified and so changes
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTable {
    provider: String,
    codes: BTreeMap<String, CodeRule>,
}

/// Longest word [`code_word`] makes.
pub const MAX_CODE_WORD_LEN: usize = 32;

/// A provider's free text (a bounce classification, a drop reason) as a table code
/// word: ASCII letters and digits, lower-cased, other runs as one `-`, capped, so an
/// unexpected value cannot grow the audit reason; `other` when nothing is left.
pub fn code_word(text: &str) -> String {
    let mut word = String::with_capacity(text.len().min(MAX_CODE_WORD_LEN));
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if !word.is_empty() && !word.ends_with('-') {
            word.push('-');
        }
        if word.len() >= MAX_CODE_WORD_LEN {
            break;
        }
    }
    let word = word.trim_end_matches('-');
    if word.is_empty() {
        "other".to_string()
    } else {
        word.to_string()
    }
}

impl ErrorTable {
    /// Parse a table from TOML text, for `provider_name`.
    ///
    /// The shape, one table per code:
    ///
    /// ```toml
    /// provider = "twilio"   # optional; checked against provider_name when present
    ///
    /// [codes.30003]
    /// action = "temporary"  # "permanent" | "temporary" | "marketing" | "none"
    /// reason = "handset unreachable for now"
    /// source = "https://..." # optional
    /// ```
    pub fn from_toml(provider_name: &str, text: &str) -> Result<ErrorTable, CodeTableError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| CodeTableError::Syntax {
            provider: provider_name.to_string(),
            line: e.span().map_or(0, |span| line_of(text, span.start)),
            message: e.message().to_string(),
        })?;
        ErrorTable::from_table(provider_name, &doc)
    }

    /// Build a table from already parsed TOML (for a table embedded in the gateway's
    /// own configuration file), with the shape [`ErrorTable::from_toml`] describes.
    pub fn from_table(
        provider_name: &str,
        doc: &toml::Table,
    ) -> Result<ErrorTable, CodeTableError> {
        let mut table = ErrorTable {
            provider: provider_name.to_string(),
            codes: BTreeMap::new(),
        };
        for (key, value) in doc {
            match key.as_str() {
                "provider" => {
                    let found = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string);
                    if found != provider_name {
                        return Err(CodeTableError::WrongProvider {
                            provider: provider_name.to_string(),
                            found,
                        });
                    }
                }
                "codes" => {
                    let codes = value.as_table().ok_or_else(|| CodeTableError::Entry {
                        provider: provider_name.to_string(),
                        code: String::new(),
                        message: "`codes` must be a table of [codes.<code>] entries".into(),
                    })?;
                    for (code, entry) in codes {
                        let rule =
                            parse_entry(code, entry).map_err(|message| CodeTableError::Entry {
                                provider: provider_name.to_string(),
                                code: code.clone(),
                                message,
                            })?;
                        table.codes.insert(code.clone(), rule);
                    }
                }
                _ => {
                    return Err(CodeTableError::UnknownKey {
                        provider: provider_name.to_string(),
                        key: key.clone(),
                    });
                }
            }
        }
        Ok(table)
    }

    /// Apply `overrides` on top of this table: each of its codes replaces or adds the
    /// entry of the same code; the others stay. The provider name stays this table's;
    /// the caller pairs tables of the same provider.
    pub fn merge(&mut self, overrides: ErrorTable) {
        self.codes.extend(overrides.codes);
    }

    /// The rule for `code` (surrounding whitespace ignored), if the table has one.
    pub fn lookup(&self, code: &str) -> Option<&CodeRule> {
        self.codes.get(code.trim())
    }

    /// The provider this table is for (empty for the default table).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Every entry, in code order: for listing the effective table.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CodeRule)> {
        self.codes.iter().map(|(code, rule)| (code.as_str(), rule))
    }

    /// How many codes the table has.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the table has no codes.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// Check and read one `[codes.<code>]` entry; the error is the message for
/// [`CodeTableError::Entry`].
fn parse_entry(code: &str, entry: &toml::Value) -> Result<CodeRule, String> {
    let code_ok = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !code_ok {
        return Err(format!(
            "a code is 1 to {MAX_CODE_LEN} ASCII letters, digits, '.', '-', '_' or ':'"
        ));
    }
    if !entry.is_table() {
        return Err("expected a table with `action` and `reason`".into());
    }
    // serde's own message names the bad field and lists the accepted values.
    let rule: CodeRule = entry
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())?;
    let reason = rule.reason.trim();
    if reason.is_empty() || reason.contains(['\n', '\r']) {
        return Err("`reason` must be one non-empty line".into());
    }
    if rule.source.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err("`source` is empty: give a URL or leave it out".into());
    }
    Ok(CodeRule {
        reason: reason.to_string(),
        ..rule
    })
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table shipped in `providers/` (the registry embeds the same files: its own
    /// test checks every one loads).
    fn shipped(name: &str) -> ErrorTable {
        let text = match name {
            "twilio" => include_str!("../../providers/twilio.toml"),
            "ses" => include_str!("../../providers/ses.toml"),
            "sendgrid" => include_str!("../../providers/sendgrid.toml"),
            "mailgun" => include_str!("../../providers/mailgun.toml"),
            "postmark" => include_str!("../../providers/postmark.toml"),
            "standard-webhooks" => include_str!("../../providers/standard-webhooks.toml"),
            other => panic!("no shipped table {other}"),
        };
        ErrorTable::from_toml(name, text).unwrap()
    }

    #[test]
    fn embedded_twilio_table_parses() {
        let table = ErrorTable::from_toml("twilio", include_str!("../../providers/twilio.toml"))
            .expect("twilio.toml parses");
        assert_eq!(table.provider(), "twilio");
        assert_eq!(table, shipped("twilio"));
        for (code, rule) in table.iter() {
            let source = rule.source.as_deref().unwrap_or_default();
            assert!(
                source.starts_with("https://"),
                "code {code} has no source URL"
            );
            assert!(!rule.reason.is_empty(), "code {code} has no reason");
        }
    }

    /// Every shipped table holds exactly the product's rules, one row per code in code
    /// order, and every entry names its source.
    #[test]
    fn shipped_tables_are_the_product_rules() {
        use CodeAction::*;
        /// (provider, every (code, action) in code order)
        type Case = (&'static str, &'static [(&'static str, CodeAction)]);
        let cases: &[Case] = &[
            // The product's rules (SPEC section 5 plus the brief).
            (
                "twilio",
                &[
                    ("21211", None),
                    ("21408", None),
                    ("21610", Permanent),
                    ("21614", Permanent),
                    ("30001", None),
                    ("30002", None),
                    ("30003", Temporary),
                    ("30004", Permanent),
                    ("30005", Temporary),
                    ("30006", Temporary),
                    ("30007", None),
                    ("30008", None),
                    ("30009", None),
                    ("30010", None),
                    ("30034", None),
                    ("63014", Permanent),
                    ("63016", None),
                ],
            ),
            // The SES bounce rules: hard bounces permanent, soft bounces about the
            // mailbox temporary, soft bounces about our content and undetermined ones
            // none.
            (
                "ses",
                &[
                    ("Permanent:General", Permanent),
                    ("Permanent:NoEmail", Permanent),
                    ("Permanent:OnAccountSuppressionList", Permanent),
                    ("Permanent:Suppressed", Permanent),
                    ("Transient:AttachmentRejected", None),
                    ("Transient:ContentRejected", None),
                    ("Transient:General", Temporary),
                    ("Transient:MailboxFull", Temporary),
                    ("Transient:MessageTooLarge", None),
                    ("Undetermined:Undetermined", None),
                ],
            ),
            // The SendGrid table: the email rules of SPEC section 5 and compliance.md
            // 2.5.
            (
                "sendgrid",
                &[
                    ("blocked", None),
                    ("blocked.content", None),
                    ("blocked.frequency-volume", None),
                    ("blocked.invalid-address", Permanent),
                    ("blocked.mailbox-unavailable", Temporary),
                    ("blocked.reputation", None),
                    ("blocked.technical", None),
                    ("blocked.unclassified", None),
                    ("bounce", Permanent),
                    ("deferred", None),
                    ("dropped.bounced-address", Permanent),
                    ("dropped.invalid", Permanent),
                    ("dropped.invalid-smtpapi-header", None),
                    ("dropped.spam-content", None),
                ],
            ),
            // Postmark and Standard Webhooks: hard -> permanent, soft -> temporary,
            // sender-side -> none.
            (
                "postmark",
                &[
                    ("AddressChange", None),
                    ("AutoResponder", None),
                    ("BadEmailAddress", Permanent),
                    ("Blocked", None),
                    ("ChallengeVerification", None),
                    ("DMARCPolicy", None),
                    ("DnsError", Temporary),
                    ("HardBounce", Permanent),
                    ("Inactive", Permanent),
                    ("InboundError", None),
                    ("ManualSuppression", Permanent),
                    ("ManuallyDeactivated", Permanent),
                    ("OpenRelayTest", None),
                    ("SMTPApiError", None),
                    ("SoftBounce", Temporary),
                    ("SpamComplaint", Permanent),
                    ("SpamNotification", None),
                    ("Subscribe", None),
                    ("TemplateRenderingFailed", None),
                    ("Transient", Temporary),
                    ("Unconfirmed", None),
                    ("Unknown", None),
                    ("Unsubscribe", Permanent),
                    ("VirusNotification", None),
                ],
            ),
            (
                "standard-webhooks",
                &[
                    ("Permanent", Permanent),
                    ("Transient", Temporary),
                    ("Undetermined", None),
                    ("bounced", Permanent),
                    ("suppressed", Permanent),
                ],
            ),
            // Mailgun: hard bounces permanent, the give-up after retries temporary,
            // single retried attempts and sender-side failures none.
            (
                "mailgun",
                &[
                    ("permanent.bounce", Permanent),
                    ("permanent.espblock", None),
                    ("permanent.generic", None),
                    ("permanent.old", Temporary),
                    ("permanent.suppress-bounce", Permanent),
                    ("temporary.espblock", None),
                    ("temporary.generic", None),
                    ("temporary.greylisted", None),
                ],
            ),
        ];
        for (provider, expected) in cases {
            let table = shipped(provider);
            assert_eq!(table.provider(), *provider);
            let actual: Vec<(&str, CodeAction)> = table
                .iter()
                .map(|(code, rule)| (code, rule.action))
                .collect();
            assert_eq!(&actual, expected, "{provider}");
            for (code, rule) in table.iter() {
                let source = rule.source.as_deref().unwrap_or_default();
                assert!(source.starts_with("https://"), "{provider} {code}");
            }
        }
    }

    #[test]
    fn lookup_ignores_surrounding_whitespace() {
        let table = shipped("twilio");
        assert_eq!(
            table.lookup(" 30004 ").unwrap().action,
            CodeAction::Permanent
        );
        assert!(table.lookup("99999").is_none());
        assert!(table.lookup("").is_none());
        assert!(ErrorTable::default().lookup("30004").is_none());
    }

    #[test]
    fn merge_overrides_and_adds() {
        let mut table = shipped("twilio");
        let overrides = ErrorTable::from_toml(
            "twilio",
            r#"
            [codes.30005]
            action = "permanent"
            reason = "we treat disconnected numbers as gone"

            [codes.63024]
            action = "temporary"
            reason = "not on WhatsApp (yet)"
            "#,
        )
        .unwrap();
        let before = table.len();
        table.merge(overrides);
        assert_eq!(table.len(), before + 1);
        let rule = table.lookup("30005").unwrap();
        assert_eq!(rule.action, CodeAction::Permanent);
        assert_eq!(rule.source, Option::None);
        assert_eq!(table.lookup("63024").unwrap().action, CodeAction::Temporary);
        assert_eq!(table.lookup("30004").unwrap().action, CodeAction::Permanent);
        assert_eq!(table.provider(), "twilio");
    }

    #[test]
    fn accepts_inline_tables_and_a_matching_provider() {
        let table = ErrorTable::from_toml(
            "twilio",
            "provider = \"twilio\"\n[codes]\n30003 = { action = \"none\", reason = \"ours\" }\n",
        )
        .unwrap();
        assert_eq!(table.lookup("30003").unwrap().action, CodeAction::None);
        assert!(ErrorTable::from_toml("twilio", "").unwrap().is_empty());
    }

    /// The variant of an error and the thing it names, for table comparisons.
    fn named(err: &CodeTableError) -> (&'static str, String) {
        match err {
            CodeTableError::Syntax { line, .. } => ("syntax", line.to_string()),
            CodeTableError::UnknownKey { key, .. } => ("unknown key", key.clone()),
            CodeTableError::WrongProvider { found, .. } => ("wrong provider", found.clone()),
            CodeTableError::Entry { code, .. } => ("entry", code.clone()),
        }
    }

    #[test]
    fn refuses_bad_tables_naming_the_entry() {
        // (table text, expected error variant, what it names: code, key, provider, line)
        let cases: &[(&str, &str, &str)] = &[
            (
                "[codes.30003]\naction = \"temp\"\nreason = \"x\"\n",
                "entry",
                "30003",
            ),
            ("[codes.30003]\naction = \"none\"\n", "entry", "30003"),
            ("[codes.30003]\nreason = \"x\"\n", "entry", "30003"),
            (
                "[codes.30003]\naction = \"none\"\nreason = \"x\"\nreson = \"typo\"\n",
                "entry",
                "30003",
            ),
            (
                "[codes.30003]\naction = \"none\"\nreason = \"   \"\n",
                "entry",
                "30003",
            ),
            (
                "[codes.30003]\naction = \"none\"\nreason = \"two\\nlines\"\n",
                "entry",
                "30003",
            ),
            (
                "[codes.30003]\naction = \"none\"\nreason = \"x\"\nsource = \"\"\n",
                "entry",
                "30003",
            ),
            (
                "[codes.\"30 03\"]\naction = \"none\"\nreason = \"x\"\n",
                "entry",
                "30 03",
            ),
            ("[codes]\n30003 = \"none\"\n", "entry", "30003"),
            ("codes = 3\n", "entry", ""),
            (
                "[code.30003]\naction = \"none\"\nreason = \"x\"\n",
                "unknown key",
                "code",
            ),
            ("provider = \"telnyx\"\n", "wrong provider", "telnyx"),
            ("\n\n[codes.30003\naction = \"none\"\n", "syntax", "3"),
        ];
        for (text, variant, name) in cases {
            let err = ErrorTable::from_toml("twilio", text).expect_err(text);
            assert_eq!(
                named(&err),
                (*variant, name.to_string()),
                "table {text:?}: {err}"
            );
            assert!(
                err.to_string().starts_with("twilio error-code table"),
                "{err}"
            );
        }
    }

    #[test]
    fn entry_error_message_names_the_code_and_the_choices() {
        let err = ErrorTable::from_toml(
            "twilio",
            "[codes.30003]\naction = \"temp\"\nreason = \"x\"\n",
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("code \"30003\""), "{message}");
        assert!(message.contains("`permanent`"), "{message}");
    }
}
