//! Keyword normalisation and a tenant's keyword lists (SPEC section 5).
//!
//! The direction of every choice here: over-match opt-outs, under-match opt-ins. A
//! missed STOP is a compliance failure; a missed START only delays a resubscription the
//! contact can repeat. So the normaliser is generous (width, accents, case, surrounding
//! punctuation and emoji all fold away), opt-ins only ever match the whole message, and
//! an opt-out word inside a longer message is at least reported for review.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The default whole-message opt-out keywords (SPEC section 5), already normalised.
///
/// The union of what US carriers (CTIA), the FCC revocation order, Twilio, Plivo,
/// Telnyx and the Canadian, Spanish and Portuguese short-code rules name; see
/// `research/compliance.md` section 1.1.
pub const DEFAULT_OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "UNSUB",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "OPT-OUT",
    "ARRET",
    "ALTO",
    "DETENER",
    "SALIR",
    "PARAR",
    "CANCELAR",
];

/// The default whole-message opt-in keywords, already normalised.
///
/// YES is deliberately absent: it is also the ordinary answer to "confirm your
/// appointment?". A tenant adds it with [`KeywordPolicy::with_yes_opt_in`].
pub const DEFAULT_OPT_IN: &[&str] = &["START", "UNSTOP"];

/// The default whole-message help keywords, already normalised.
pub const DEFAULT_HELP: &[&str] = &["HELP", "INFO", "AIDE", "AYUDA"];

/// The opt-in keyword a tenant may switch on with [`KeywordPolicy::with_yes_opt_in`].
pub const YES: &str = "YES";

/// Normalise a message (or a keyword) for whole-message matching.
///
/// Steps, in order, and why:
/// 1. Unicode NFKC, so full-width `ＳＴＯＰ`, ligatures and no-break spaces become their
///    plain forms.
/// 2. Upper-case, before accent folding, because upper-casing can itself produce
///    combining marks (`ǰ` becomes `J` plus a caron).
/// 3. Decompose, drop combining marks and invisible format characters (zero-width
///    spaces, joiners, bidi controls, soft hyphens), recompose: `ARRÊT` becomes `ARRET`,
///    and a pasted `ST\u{200B}OP` is still STOP.
/// 4. Trim everything at both ends that is not a letter or a digit: whitespace,
///    punctuation and emoji alike (`Stop.`, `¡Alto!`, `«STOP»`, `🛑 stop 🙏`).
/// 5. Collapse internal runs of whitespace to one space, so `STOP  ALL` is `STOP ALL`.
///
/// Internal punctuation is kept (`OPT-OUT` stays as written) and letters are never
/// joined (`S T O P` is not STOP): both would guess at what the contact meant.
pub fn normalize_text(s: &str) -> String {
    if s.is_ascii() {
        return normalize_ascii(s);
    }
    normalize_unicode(s)
}

/// [`normalize_text`] for ASCII text, most messages: NFKC and NFD change no ASCII
/// character and ASCII has no combining marks or invisible format characters, so
/// only the case, the trim and the whitespace runs are left to do.
fn normalize_ascii(s: &str) -> String {
    let trimmed = s.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(trimmed.len());
    for word in trimmed.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_uppercase()));
    }
    out
}

fn normalize_unicode(s: &str) -> String {
    let upper: String = s.nfkc().flat_map(char::to_uppercase).collect();
    let folded: String = upper
        .nfd()
        .filter(|&c| !is_combining_mark(c) && !is_invisible(c))
        .nfc()
        .collect();
    let trimmed = folded.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Invisible format characters that change nothing a reader sees, so they must change
/// nothing we match. Kept as a short explicit list because the crate has no Unicode
/// general-category table.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Which of a tenant's three keyword lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeywordList {
    /// Opt-out keywords: put the contact on permanent DND.
    OptOut,
    /// Opt-in keywords: lift the contact's DND on the channel.
    OptIn,
    /// Help keywords: reported, no DND change.
    Help,
}

crate::event::names! {
    /// The name used in configuration and error messages.
    KeywordList {
        OptOut => "opt-out",
        OptIn => "opt-in",
        Help => "help",
    }
}

/// Why a set of keyword lists was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    /// One keyword in two lists: a message of just that word would be both, say, an
    /// opt-out and an opt-in.
    #[error(
        "keyword {keyword:?} is in both the {first} and the {second} lists, which makes \
         classification ambiguous: remove it from one of them"
    )]
    Ambiguous {
        /// The keyword, normalised.
        keyword: String,
        /// The first list that has it.
        first: KeywordList,
        /// The other list that has it.
        second: KeywordList,
    },
    /// An entry with nothing left after normalisation (empty, or only punctuation or
    /// emoji): it could never match, or would match every empty message.
    #[error("{list} keyword {entry:?} is empty once normalised: use letters or digits")]
    Empty {
        /// The list it was in.
        list: KeywordList,
        /// The entry as configured.
        entry: String,
    },
    /// An entry of a policy built field by field that is not in normalised form, so it
    /// would never match a normalised message.
    #[error("{list} keyword {entry:?} is not normalised (expected {normalised:?})")]
    NotNormalised {
        /// The list it was in.
        list: KeywordList,
        /// The entry as stored.
        entry: String,
        /// What it normalises to.
        normalised: String,
    },
}

/// A tenant's keyword lists and switches.
///
/// Build one with [`KeywordPolicy::new`] (or take [`Default`]), which normalises every
/// entry and refuses a keyword that is in two lists. The fields stay public so the
/// lists can be shown; a policy assembled by hand can be checked with
/// [`KeywordPolicy::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordPolicy {
    /// Whole-message opt-out keywords, normalised.
    pub opt_out: Vec<String>,
    /// Whole-message opt-in keywords, normalised.
    pub opt_in: Vec<String>,
    /// Whole-message help keywords, normalised.
    pub help: Vec<String>,
    /// Apply possible opt-outs (an opt-out word inside a longer message) instead of only
    /// recording them for review.
    pub phrase_mode: bool,
}

/// What a message body says on its own, before any provider verdict is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyVerdict<'a> {
    /// The whole message is a keyword of this list.
    Keyword(KeywordList, &'a str),
    /// Not a whole-message keyword, but it contains this opt-out keyword as whole
    /// word(s): a possible opt-out ("please stop texting me").
    PossibleOptOut(&'a str),
    /// An ordinary message (or an empty one).
    Ordinary,
}

impl Default for KeywordPolicy {
    /// The SPEC section 5 lists, phrase mode off, YES not an opt-in.
    fn default() -> Self {
        KeywordPolicy::new(DEFAULT_OPT_OUT, DEFAULT_OPT_IN, DEFAULT_HELP, false)
            .expect("the default keyword lists are disjoint and normalised")
    }
}

impl KeywordPolicy {
    /// A policy from configured lists: every entry is normalised with
    /// [`normalize_text`] (so `arrêt` and `ARRET` are one entry, kept once), and a
    /// keyword that ends up in two lists is refused.
    pub fn new<S: AsRef<str>>(
        opt_out: &[S],
        opt_in: &[S],
        help: &[S],
        phrase_mode: bool,
    ) -> Result<KeywordPolicy, KeywordError> {
        let policy = KeywordPolicy {
            opt_out: normalize_list(KeywordList::OptOut, opt_out)?,
            opt_in: normalize_list(KeywordList::OptIn, opt_in)?,
            help: normalize_list(KeywordList::Help, help)?,
            phrase_mode,
        };
        policy.check_disjoint()?;
        Ok(policy)
    }

    /// Switch YES as an opt-in keyword on (`true`) or leave the lists as they are
    /// (`false`). Off by default because YES is also an ordinary answer; a tenant whose
    /// opt-in flow asks "reply YES" turns it on. Refused if YES is already an opt-out or
    /// help keyword.
    pub fn with_yes_opt_in(mut self, on: bool) -> Result<KeywordPolicy, KeywordError> {
        if on && !self.yes_is_opt_in() {
            self.opt_in.push(YES.to_string());
            self.check_disjoint()?;
        }
        Ok(self)
    }

    /// Whether a message that is just YES counts as an opt-in.
    pub fn yes_is_opt_in(&self) -> bool {
        self.opt_in.iter().any(|k| k == YES)
    }

    /// Check a policy assembled field by field: every entry normalised and non-empty, no
    /// keyword in two lists. [`KeywordPolicy::new`] already guarantees this.
    pub fn validate(&self) -> Result<(), KeywordError> {
        for (list, entries) in self.lists() {
            for entry in entries {
                let normalised = normalize_text(entry);
                if normalised.is_empty() {
                    return Err(KeywordError::Empty {
                        list,
                        entry: entry.clone(),
                    });
                }
                if normalised != *entry {
                    return Err(KeywordError::NotNormalised {
                        list,
                        entry: entry.clone(),
                        normalised,
                    });
                }
            }
        }
        self.check_disjoint()
    }

    /// What `body` says on its own: a whole-message keyword, a possible opt-out, or an
    /// ordinary message.
    ///
    /// Lists are tried opt-out first, so even a policy assembled by hand with a
    /// duplicate errs on the side of the opt-out. Only opt-out words are looked for
    /// inside a longer message: an opt-in is never inferred from one.
    pub fn body_verdict(&self, body: &str) -> BodyVerdict<'_> {
        let text = normalize_text(body);
        if text.is_empty() {
            return BodyVerdict::Ordinary;
        }
        for (list, entries) in self.lists() {
            if let Some(keyword) = entries.iter().find(|k| **k == text) {
                return BodyVerdict::Keyword(list, keyword);
            }
        }
        match self.first_opt_out_word(&text) {
            Some(keyword) => BodyVerdict::PossibleOptOut(keyword),
            None => BodyVerdict::Ordinary,
        }
    }

    /// The opt-out keyword found earliest in `text` as whole word(s); of several at the
    /// same place the longest, so "STOP ALL THESE" reports `STOP ALL`, not `STOP`.
    fn first_opt_out_word(&self, text: &str) -> Option<&str> {
        self.opt_out
            .iter()
            .filter_map(|k| find_word(text, k).map(|at| (at, k)))
            .min_by(|(a_at, a), (b_at, b)| a_at.cmp(b_at).then(b.len().cmp(&a.len())))
            .map(|(_, k)| k.as_str())
    }

    /// The three lists in the order they are matched: opt-out first.
    fn lists(&self) -> [(KeywordList, &[String]); 3] {
        [
            (KeywordList::OptOut, &self.opt_out),
            (KeywordList::OptIn, &self.opt_in),
            (KeywordList::Help, &self.help),
        ]
    }

    fn check_disjoint(&self) -> Result<(), KeywordError> {
        let lists = self.lists();
        for (i, (first, entries)) in lists.iter().enumerate() {
            for (second, others) in &lists[i + 1..] {
                if let Some(keyword) = entries.iter().find(|k| others.contains(k)) {
                    return Err(KeywordError::Ambiguous {
                        keyword: keyword.clone(),
                        first: *first,
                        second: *second,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Normalise one configured list, dropping repeats but keeping the configured order.
fn normalize_list<S: AsRef<str>>(
    list: KeywordList,
    entries: &[S],
) -> Result<Vec<String>, KeywordError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let normalised = normalize_text(entry.as_ref());
        if normalised.is_empty() {
            return Err(KeywordError::Empty {
                list,
                entry: entry.as_ref().to_string(),
            });
        }
        if seen.insert(normalised.clone()) {
            out.push(normalised);
        }
    }
    Ok(out)
}

/// The byte offset of the first occurrence of `word` in `text` that stands as whole
/// word(s): no letter or digit touches it on either side. So STOP is found in
/// "PLEASE STOP." but not in "STOPPED" or "NONSTOPS".
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let end = at + word.len();
        let clear_before = text[..at].chars().next_back().is_none_or(is_word_edge);
        let clear_after = text[end..].chars().next().is_none_or(is_word_edge);
        if clear_before && clear_after {
            return Some(at);
        }
        // Step one character on, not past the match: occurrences may overlap.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

fn is_word_edge(c: char) -> bool {
    !c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_path_agrees_with_the_unicode_one() {
        // Every ASCII byte in many short mixes, from a fixed pseudo-random sequence.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (x % 12) as usize;
            let mut s = String::new();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(char::from((x % 128) as u8));
            }
            x = x.wrapping_add(0x2545_F491_4F6C_DD1D);
            assert_eq!(normalize_ascii(&s), normalize_unicode(&s), "{s:?}");
        }
    }

    #[test]
    fn normalize_text_table() {
        let cases: &[(&str, &str)] = &[
            ("STOP", "STOP"),
            ("stop", "STOP"),
            ("sToP", "STOP"),
            ("Stop.", "STOP"),
            ("STOP!!", "STOP"),
            ("  stop  ", "STOP"),
            ("\tstop\r\n", "STOP"),
            ("\u{00A0}stop\u{3000}", "STOP"),
            ("🛑 stop 🙏", "STOP"),
            ("STOP 👍🏽", "STOP"),
            ("❤️STOP❤️", "STOP"),
            ("«STOP»", "STOP"),
            ("\"stop\"", "STOP"),
            ("(stop)", "STOP"),
            ("ＳＴＯＰ", "STOP"),
            ("ＳＴＯＰ！", "STOP"),
            ("ARRÊT", "ARRET"),
            ("arrêt", "ARRET"),
            // Decomposed input: E followed by a combining circumflex.
            ("ARRE\u{0302}T", "ARRET"),
            ("¡Alto!", "ALTO"),
            ("¿Ayuda?", "AYUDA"),
            ("no más", "NO MAS"),
            ("S T O P", "S T O P"),
            ("STOP  ALL", "STOP ALL"),
            ("stop \n all", "STOP ALL"),
            ("opt-out", "OPT-OUT"),
            ("Opt out!", "OPT OUT"),
            ("ST\u{200B}OP", "STOP"),
            ("\u{FEFF}STOP", "STOP"),
            ("I can't stop laughing", "I CAN'T STOP LAUGHING"),
            ("straße", "STRASSE"),
            ("", ""),
            ("   ", ""),
            ("!!!", ""),
            ("🙏", ""),
            ("30", "30"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_text(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn defaults_are_the_spec_lists() {
        let policy = KeywordPolicy::default();
        assert_eq!(policy.opt_out, DEFAULT_OPT_OUT);
        assert_eq!(policy.opt_in, DEFAULT_OPT_IN);
        assert_eq!(policy.help, DEFAULT_HELP);
        assert!(!policy.phrase_mode);
        assert!(!policy.yes_is_opt_in());
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn every_default_keyword_matches_as_the_whole_message() {
        let policy = KeywordPolicy::default();
        let lists = [
            (KeywordList::OptOut, DEFAULT_OPT_OUT),
            (KeywordList::OptIn, DEFAULT_OPT_IN),
            (KeywordList::Help, DEFAULT_HELP),
        ];
        for (list, keywords) in lists {
            for keyword in keywords {
                let spellings = [
                    keyword.to_string(),
                    keyword.to_lowercase(),
                    format!("  {}! ", keyword.to_lowercase()),
                ];
                for body in spellings {
                    assert_eq!(
                        policy.body_verdict(&body),
                        BodyVerdict::Keyword(list, keyword),
                        "body {body:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn body_verdict_table() {
        use BodyVerdict::*;
        use KeywordList::*;
        let policy = KeywordPolicy::default();
        let cases: &[(&str, BodyVerdict<'_>)] = &[
            ("Stop", Keyword(OptOut, "STOP")),
            ("ARRÊT", Keyword(OptOut, "ARRET")),
            ("¡Alto!", Keyword(OptOut, "ALTO")),
            ("stop  all", Keyword(OptOut, "STOP ALL")),
            ("Opt-Out.", Keyword(OptOut, "OPT-OUT")),
            ("ＳＴＯＰ", Keyword(OptOut, "STOP")),
            ("unstop", Keyword(OptIn, "UNSTOP")),
            ("Start!", Keyword(OptIn, "START")),
            ("aide", Keyword(Help, "AIDE")),
            ("please stop texting me", PossibleOptOut("STOP")),
            ("Stop all these messages", PossibleOptOut("STOP ALL")),
            ("STOP STOP", PossibleOptOut("STOP")),
            ("stop please", PossibleOptOut("STOP")),
            ("Please, unsubscribe me.", PossibleOptOut("UNSUBSCRIBE")),
            ("quiero salir de la lista", PossibleOptOut("SALIR")),
            // A person who writes this means no opt-out; a reader of the words alone
            // cannot tell, which is exactly why possible opt-outs are only reviewed by
            // default (phrase mode off) rather than applied.
            ("I can't stop laughing", PossibleOptOut("STOP")),
            // Whole words only: STOPPED, WEEKEND and CANCELLED are not keywords.
            ("Stopped by the store", Ordinary),
            ("see you at the weekend", Ordinary),
            ("my order was cancelled", Ordinary),
            ("S T O P", Ordinary),
            // Opt-ins and help are never inferred from inside a longer message.
            ("please start again", Ordinary),
            ("I need help", Ordinary),
            ("yes", Ordinary),
            ("Hello, is this the dentist?", Ordinary),
            ("", Ordinary),
            ("👍", Ordinary),
        ];
        for (body, expected) in cases {
            assert_eq!(policy.body_verdict(body), *expected, "body {body:?}");
        }
    }

    #[test]
    fn yes_is_off_by_default_and_on_when_enabled() {
        let off = KeywordPolicy::default();
        assert_eq!(off.body_verdict("Yes"), BodyVerdict::Ordinary);

        let on = KeywordPolicy::default().with_yes_opt_in(true).unwrap();
        assert!(on.yes_is_opt_in());
        assert_eq!(
            on.body_verdict("Yes!"),
            BodyVerdict::Keyword(KeywordList::OptIn, "YES")
        );
        // Still whole-message only.
        assert_eq!(on.body_verdict("yes please"), BodyVerdict::Ordinary);
        // Switching it on twice keeps one entry; "off" leaves the lists alone.
        let twice = on.clone().with_yes_opt_in(true).unwrap();
        assert_eq!(twice, on);
        assert_eq!(off.clone().with_yes_opt_in(false).unwrap(), off);
    }

    #[test]
    fn yes_cannot_be_both_opt_out_and_opt_in() {
        let policy = KeywordPolicy::new(&["STOP", "yes"], &["START"], &["HELP"], false).unwrap();
        assert_eq!(
            policy.with_yes_opt_in(true),
            Err(KeywordError::Ambiguous {
                keyword: "YES".into(),
                first: KeywordList::OptOut,
                second: KeywordList::OptIn,
            })
        );
    }

    #[test]
    fn new_normalises_and_dedups_entries() {
        let policy =
            KeywordPolicy::new(&[" arrêt ", "ARRET", "stop!"], &["Start"], &[], true).unwrap();
        assert_eq!(policy.opt_out, ["ARRET", "STOP"]);
        assert_eq!(policy.opt_in, ["START"]);
        assert!(policy.help.is_empty());
        assert!(policy.phrase_mode);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn new_refuses_bad_lists() {
        use KeywordList::*;
        type List = &'static [&'static str];
        // (opt-out list, opt-in list, help list, expected error)
        let cases: &[(List, List, List, KeywordError)] = &[
            (
                &["STOP", "START"],
                &["start"],
                &[],
                KeywordError::Ambiguous {
                    keyword: "START".into(),
                    first: OptOut,
                    second: OptIn,
                },
            ),
            (
                &["ARRÊT"],
                &[],
                &["arret"],
                KeywordError::Ambiguous {
                    keyword: "ARRET".into(),
                    first: OptOut,
                    second: Help,
                },
            ),
            (
                &[],
                &["INFO"],
                &["Info."],
                KeywordError::Ambiguous {
                    keyword: "INFO".into(),
                    first: OptIn,
                    second: Help,
                },
            ),
            (
                &["STOP", "!!"],
                &[],
                &[],
                KeywordError::Empty {
                    list: OptOut,
                    entry: "!!".into(),
                },
            ),
            (
                &[],
                &[""],
                &[],
                KeywordError::Empty {
                    list: OptIn,
                    entry: "".into(),
                },
            ),
        ];
        for (opt_out, opt_in, help, expected) in cases {
            assert_eq!(
                KeywordPolicy::new(opt_out, opt_in, help, false),
                Err(expected.clone()),
                "lists {opt_out:?} {opt_in:?} {help:?}"
            );
        }
    }

    #[test]
    fn ambiguity_error_says_what_to_do() {
        let err = KeywordPolicy::new(&["STOP"], &["stop"], &[], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "keyword \"STOP\" is in both the opt-out and the opt-in lists, which makes \
             classification ambiguous: remove it from one of them"
        );
    }

    #[test]
    fn validate_catches_hand_built_policies() {
        let mut policy = KeywordPolicy::default();
        policy.help.push("stop".into());
        assert!(matches!(
            policy.validate(),
            Err(KeywordError::NotNormalised { .. })
        ));
        policy.help.pop();
        policy.help.push("STOP".into());
        assert!(matches!(
            policy.validate(),
            Err(KeywordError::Ambiguous { .. })
        ));
        // Even so, matching tries opt-out first: the safe side.
        assert_eq!(
            policy.body_verdict("stop"),
            BodyVerdict::Keyword(KeywordList::OptOut, "STOP")
        );
    }

    #[test]
    fn find_word_table() {
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("STOP", "STOP", Some(0)),
            ("PLEASE STOP", "STOP", Some(7)),
            ("STOPPED", "STOP", None),
            ("NONSTOP", "STOP", None),
            ("STOPSTOP STOP", "STOP", Some(9)),
            ("NON-STOP FLIGHT", "STOP", Some(4)),
            ("STOP, ALL", "STOP ALL", None),
            ("OK STOP ALL NOW", "STOP ALL", Some(3)),
            ("ÉSTOP STOP", "STOP", Some(7)),
            ("PLEASE OPT-OUT", "OPT-OUT", Some(7)),
        ];
        for (text, word, expected) in cases {
            assert_eq!(find_word(text, word), *expected, "{word:?} in {text:?}");
        }
    }
}
