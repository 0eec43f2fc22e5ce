//! Classification: what an event means for the contact's DND state. Pure: events in,
//! decisions out, no I/O and no clock, so every rule is tested by a table.
//!
//! - [`keywords`]: message normalisation and a tenant's keyword lists (SPEC section 5).
//! - [`codes`]: provider error-code tables, data in `providers/*.toml`.
//! - [`classify`] (this module): ties both to a [`ChannelEvent`], and settles
//!   disagreements between the provider's verdict and ours.

pub mod codes;
pub mod keywords;

pub use codes::{CodeAction, CodeRule, CodeTableError, ErrorTable};
pub use keywords::{BodyVerdict, KeywordError, KeywordList, KeywordPolicy, normalize_text};

use crate::event::{ChannelEvent, EventKind, ProviderVerdict, Source};

/// How long a DND record lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanence {
    /// Lifted only by an opt-in from the contact on that channel or an operator with
    /// consent evidence.
    Permanent,
    /// Lifted by an inbound message on that channel, an operator, or its expiry.
    Temporary,
}

/// What to do to the DND record of the event's (channel, address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to record (a delivery receipt, a sender-side error code).
    None,
    /// Put the contact on DND.
    Block(Permanence),
    /// The contact opted back in: lift any record on the channel.
    Unblock,
    /// The contact wrote to us: proof of reachability, lifts a temporary record only.
    Reachable,
    /// A possible opt-out ("please stop texting me"): recorded for review, not applied.
    Review,
    /// A help keyword: reported, no DND change.
    Help,
    /// Stop marketing messages only (WhatsApp 131050, "Stop promotions", Messenger's
    /// notification opt-out): a permanent record that blocks marketing, not service
    /// messages.
    BlockMarketing,
    /// Resume marketing messages: lifts a marketing-only record, nothing stronger.
    UnblockMarketing,
    /// A permanent block that only the matching [`Action::UnblockOwn`] (same provider,
    /// same reason) lifts: a SendGrid group unsubscribe.
    BlockOwn,
    /// Lift only a record the matching [`Action::BlockOwn`] set (a SendGrid group
    /// resubscribe lifts that group's unsubscribe, nothing else).
    UnblockOwn,
}

impl Action {
    /// How far the action leans to the opt-out side, for settling a disagreement
    /// between two verdicts on one inbound message: the higher one wins.
    ///
    /// Blocking beats everything; a possible opt-out beats anything that would lift a
    /// block (a message with STOP in it must never unblock); doing nothing beats
    /// lifting; lifting a temporary record beats lifting every record.
    fn caution(self) -> u8 {
        match self {
            Action::Block(_) | Action::BlockOwn => 5,
            Action::BlockMarketing => 4,
            Action::Review => 3,
            Action::Help | Action::None => 2,
            Action::Reachable | Action::UnblockMarketing | Action::UnblockOwn => 1,
            Action::Unblock => 0,
        }
    }
}

/// A classification: the action and a short machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Short reason stored in the record and the audit entry, e.g. `keyword:STOP`,
    /// `twilio:30004`.
    pub reason: String,
}

impl Decision {
    /// A decision with `action` and `reason`.
    pub fn new(action: Action, reason: impl Into<String>) -> Decision {
        Decision {
            action,
            reason: reason.into(),
        }
    }
}

/// Classify one event.
///
/// Inbound messages go to [`classify_inbound`], delivery statuses to
/// [`classify_status`]; the table should be the one for `event.provider`.
pub fn classify(event: &ChannelEvent, keywords: &KeywordPolicy, codes: &ErrorTable) -> Decision {
    match &event.kind {
        EventKind::Inbound {
            body,
            payload,
            provider_verdict,
        } => classify_inbound(body, payload.as_deref(), *provider_verdict, keywords),
        EventKind::DeliveryStatus { status, error_code } => {
            classify_status(event.provider, status, error_code.as_deref(), codes)
        }
        EventKind::Preference {
            marketing_only,
            opt_out,
        } => classify_preference(event.provider, *marketing_only, *opt_out),
        // `PROVIDER:group:ID` on both sides: the resubscribe lifts only a record with
        // the very reason its unsubscribe wrote.
        EventKind::GroupPreference { group, opt_out } => Decision::new(
            if *opt_out {
                Action::BlockOwn
            } else {
                Action::UnblockOwn
            },
            format!("{}:group:{group}", event.provider),
        ),
        EventKind::Complaint => Decision::new(
            Action::Block(Permanence::Permanent),
            format!("{}:complaint", event.provider),
        ),
    }
}

/// Classify a preference change: a marketing stop or resume (reason
/// `<provider>:marketing_stop` / `:marketing_resume`), or a full opt-out or opt-in
/// (`<provider>:stop` / `:resume`).
pub fn classify_preference(provider: Source, marketing_only: bool, opt_out: bool) -> Decision {
    let (action, what) = match (marketing_only, opt_out) {
        (true, true) => (Action::BlockMarketing, "marketing_stop"),
        (true, false) => (Action::UnblockMarketing, "marketing_resume"),
        (false, true) => (Action::Block(Permanence::Permanent), "stop"),
        (false, false) => (Action::Unblock, "resume"),
    };
    Decision::new(action, format!("{provider}:{what}"))
}

/// Classify an inbound message from its body, the payload of the button or quick reply
/// the contact tapped, and the provider's own verdict, if any.
///
/// The payload (the id a business gave its button) is the contact's explicit choice, so
/// it is read first: a whole-message keyword there (any list) is our verdict, with the
/// same reasons as a typed keyword. Anything else in a payload (`offer-17`) is the
/// business's own id and says nothing. The body (the button's title) is then read as
/// below, and when both give a verdict the one further to the opt-out side wins (a
/// payload START under a title "Stop messages" lifts nothing), the payload's on a tie.
///
/// Our verdict from the body, with reasons:
/// - whole-message opt-out: `Block(Permanent)`, `keyword:<KW>`;
/// - whole-message opt-in: `Unblock`, `keyword:<KW>`;
/// - whole-message help: `Help`, `keyword:<KW>`;
/// - an opt-out keyword as whole word(s) inside a longer message: `Review`,
///   `phrase:<KW>` (`Block(Permanent)` in phrase mode);
/// - anything else, empty bodies included: no verdict (the message proves the contact
///   is reachable: `Reachable`, `inbound`).
///
/// The provider's verdict: opt-out `Block(Permanent)` `provider:STOP`, opt-in `Unblock`
/// `provider:START`, help `Help` `provider:HELP`.
///
/// With only one verdict, it stands. With both, the one further to the opt-out side
/// wins (see `Action::caution`), and the provider's on a tie. So a provider START on a
/// body STOP blocks, a provider STOP on a body START blocks, and a provider START on a
/// body that merely contains STOP does not unblock.
pub fn classify_inbound(
    body: &str,
    payload: Option<&str>,
    provider_verdict: Option<ProviderVerdict>,
    keywords: &KeywordPolicy,
) -> Decision {
    let keyword_decision = |list: KeywordList, keyword: &str| {
        let action = match list {
            KeywordList::OptOut => Action::Block(Permanence::Permanent),
            KeywordList::OptIn => Action::Unblock,
            KeywordList::Help => Action::Help,
        };
        Decision::new(action, format!("keyword:{keyword}"))
    };
    let chosen = payload.and_then(|p| match keywords.body_verdict(p) {
        BodyVerdict::Keyword(list, keyword) => Some(keyword_decision(list, keyword)),
        BodyVerdict::PossibleOptOut(_) | BodyVerdict::Ordinary => None,
    });
    let written = match keywords.body_verdict(body) {
        BodyVerdict::Keyword(list, keyword) => Some(keyword_decision(list, keyword)),
        BodyVerdict::PossibleOptOut(keyword) => {
            let action = if keywords.phrase_mode {
                Action::Block(Permanence::Permanent)
            } else {
                Action::Review
            };
            Some(Decision::new(action, format!("phrase:{keyword}")))
        }
        BodyVerdict::Ordinary => None,
    };
    let ours = more_cautious(chosen, written);
    let theirs = provider_verdict.map(|verdict| match verdict {
        ProviderVerdict::OptOut => {
            Decision::new(Action::Block(Permanence::Permanent), "provider:STOP")
        }
        ProviderVerdict::OptIn => Decision::new(Action::Unblock, "provider:START"),
        ProviderVerdict::Help => Decision::new(Action::Help, "provider:HELP"),
        ProviderVerdict::MarketingOptOut => {
            Decision::new(Action::BlockMarketing, "provider:STOP_MARKETING")
        }
        ProviderVerdict::MarketingOptIn => {
            Decision::new(Action::UnblockMarketing, "provider:RESUME_MARKETING")
        }
    });
    more_cautious(theirs, ours).unwrap_or_else(|| Decision::new(Action::Reachable, "inbound"))
}

/// Of two verdicts on one message, the one further to the opt-out side; `first` on a
/// tie.
fn more_cautious(first: Option<Decision>, second: Option<Decision>) -> Option<Decision> {
    match (first, second) {
        (Some(first), Some(second)) if second.action.caution() > first.action.caution() => {
            Some(second)
        }
        (Some(first), _) => Some(first),
        (None, second) => second,
    }
}

/// Classify a delivery status by its error code.
///
/// - a code in `codes`: the table's action, reason `<provider>:<code>`;
/// - a code not in `codes`: `None`, reason `unclassified:<provider>:<code>`. We never
///   guess a DND from a code nobody has reviewed;
/// - no code (or a blank one): `None`, reason `status:<status>` (lower-cased;
///   `status:unknown` when the status is blank too).
pub fn classify_status(
    provider: Source,
    status: &str,
    error_code: Option<&str>,
    codes: &ErrorTable,
) -> Decision {
    match error_code.map(str::trim).filter(|code| !code.is_empty()) {
        Some(code) => match codes.lookup(code) {
            Some(rule) => Decision::new(rule.action.action(), format!("{provider}:{code}")),
            None => Decision::new(Action::None, format!("unclassified:{provider}:{code}")),
        },
        None => {
            let status = status.trim().to_ascii_lowercase();
            let status = if status.is_empty() {
                "unknown"
            } else {
                &status
            };
            Decision::new(Action::None, format!("status:{status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::event::Channel;

    const PERM: Action = Action::Block(Permanence::Permanent);
    const TEMP: Action = Action::Block(Permanence::Temporary);

    fn event(kind: EventKind) -> ChannelEvent {
        ChannelEvent {
            provider: Source::provider("twilio"),
            event_id: "SM123".into(),
            event_time_ms: 1_700_000_000_000,
            channel: Channel::Sms,
            address: Address::parse(Channel::Sms, "+14155551234").unwrap(),
            kind,
        }
    }

    fn inbound(body: &str, provider_verdict: Option<ProviderVerdict>) -> ChannelEvent {
        event(EventKind::Inbound {
            body: body.into(),
            payload: None,
            provider_verdict,
        })
    }

    fn tapped(
        payload: &str,
        title: &str,
        provider_verdict: Option<ProviderVerdict>,
    ) -> ChannelEvent {
        event(EventKind::Inbound {
            body: title.into(),
            payload: Some(payload.into()),
            provider_verdict,
        })
    }

    fn status(status: &str, error_code: Option<&str>) -> ChannelEvent {
        event(EventKind::DeliveryStatus {
            status: status.into(),
            error_code: error_code.map(str::to_string),
        })
    }

    fn run(event: &ChannelEvent, keywords: &KeywordPolicy) -> (Action, String) {
        let decision = classify(
            event,
            keywords,
            &ErrorTable::from_toml("twilio", include_str!("../../providers/twilio.toml")).unwrap(),
        );
        (decision.action, decision.reason)
    }

    /// Each (body, action, reason): an inbound message with that body and no provider
    /// verdict, read under `policy`, is decided so.
    fn assert_inbound(policy: &KeywordPolicy, cases: &[(&str, Action, &str)]) {
        for (body, action, reason) in cases {
            assert_eq!(
                run(&inbound(body, None), policy),
                (*action, reason.to_string()),
                "body {body:?}"
            );
        }
    }

    #[test]
    fn inbound_without_provider_verdict() {
        let policy = KeywordPolicy::default();
        let cases: &[(&str, Action, &str)] = &[
            ("STOP", PERM, "keyword:STOP"),
            ("stop", PERM, "keyword:STOP"),
            ("Stop.", PERM, "keyword:STOP"),
            ("StOpAlL", PERM, "keyword:STOPALL"),
            ("Stop all", PERM, "keyword:STOP ALL"),
            ("arrêt", PERM, "keyword:ARRET"),
            ("¡Alto!", PERM, "keyword:ALTO"),
            ("opt out", PERM, "keyword:OPT OUT"),
            ("cancelar", PERM, "keyword:CANCELAR"),
            ("start", Action::Unblock, "keyword:START"),
            ("Unstop", Action::Unblock, "keyword:UNSTOP"),
            ("help", Action::Help, "keyword:HELP"),
            ("Info?", Action::Help, "keyword:INFO"),
            ("ayuda", Action::Help, "keyword:AYUDA"),
            ("please stop texting me", Action::Review, "phrase:STOP"),
            ("Stop all these messages", Action::Review, "phrase:STOP ALL"),
            // Possible opt-outs are not applied by default precisely because of
            // messages like this one.
            ("I can't stop laughing", Action::Review, "phrase:STOP"),
            ("Stopped by the store", Action::Reachable, "inbound"),
            ("yes", Action::Reachable, "inbound"),
            ("please start sending again", Action::Reachable, "inbound"),
            ("See you Tuesday", Action::Reachable, "inbound"),
            ("", Action::Reachable, "inbound"),
            ("📷", Action::Reachable, "inbound"),
        ];
        assert_inbound(&policy, cases);
    }

    /// Issue 12 item 18: the payload of a tapped button or quick reply is read first
    /// against the keyword lists, then its title; the opt-out side wins between them.
    #[test]
    fn item_18_payload_is_classified_before_the_title() {
        let policy = KeywordPolicy::default();
        // (payload, title, provider verdict, action, reason)
        type Case = (
            &'static str,
            &'static str,
            Option<ProviderVerdict>,
            Action,
            &'static str,
        );
        let cases: &[Case] = &[
            ("STOP", "Stop messages", None, PERM, "keyword:STOP"),
            ("stop", "", None, PERM, "keyword:STOP"),
            (
                "UNSUBSCRIBE",
                "No more, thanks",
                None,
                PERM,
                "keyword:UNSUBSCRIBE",
            ),
            (
                "START",
                "Yes, send me offers",
                None,
                Action::Unblock,
                "keyword:START",
            ),
            ("HELP", "Talk to us", None, Action::Help, "keyword:HELP"),
            // A business's own id says nothing: the title is read as a message.
            ("offer-17", "STOP", None, PERM, "keyword:STOP"),
            (
                "offer-17",
                "Stop messages",
                None,
                Action::Review,
                "phrase:STOP",
            ),
            (
                "BTN_1",
                "See you Tuesday",
                None,
                Action::Reachable,
                "inbound",
            ),
            // A payload that only contains a keyword is not the contact's words.
            (
                "STOP_PROMO_17",
                "Tell me more",
                None,
                Action::Reachable,
                "inbound",
            ),
            // Payload and title disagree: the opt-out side wins, nothing is lifted.
            (
                "START",
                "Stop messages",
                None,
                Action::Review,
                "phrase:STOP",
            ),
            ("START", "STOP", None, PERM, "keyword:STOP"),
            ("STOP", "START", None, PERM, "keyword:STOP"),
            // The provider's verdict still joins in.
            (
                "STOP",
                "Stop promotions",
                Some(ProviderVerdict::MarketingOptOut),
                PERM,
                "keyword:STOP",
            ),
            (
                "offer-1",
                "Stop promotions",
                Some(ProviderVerdict::MarketingOptOut),
                Action::BlockMarketing,
                "provider:STOP_MARKETING",
            ),
        ];
        for (payload, title, verdict, action, reason) in cases {
            assert_eq!(
                run(&tapped(payload, title, *verdict), &policy),
                (*action, reason.to_string()),
                "payload {payload:?} title {title:?}"
            );
        }
    }

    #[test]
    fn phrase_mode_applies_possible_opt_outs() {
        let policy = KeywordPolicy::new(
            keywords::DEFAULT_OPT_OUT,
            keywords::DEFAULT_OPT_IN,
            keywords::DEFAULT_HELP,
            true,
        )
        .unwrap();
        let cases: &[(&str, Action, &str)] = &[
            ("please stop texting me", PERM, "phrase:STOP"),
            ("Stop all these messages", PERM, "phrase:STOP ALL"),
            ("STOP", PERM, "keyword:STOP"),
            ("Stopped by the store", Action::Reachable, "inbound"),
            ("please start again", Action::Reachable, "inbound"),
        ];
        assert_inbound(&policy, cases);
    }

    #[test]
    fn yes_opt_in_only_when_enabled() {
        assert_inbound(
            &KeywordPolicy::default(),
            &[("YES", Action::Reachable, "inbound")],
        );
        let on = KeywordPolicy::default().with_yes_opt_in(true).unwrap();
        assert_inbound(
            &on,
            &[
                ("YES", Action::Unblock, "keyword:YES"),
                ("yes.", Action::Unblock, "keyword:YES"),
                ("yes I'll be there", Action::Reachable, "inbound"),
            ],
        );
    }

    /// Every provider verdict against every kind of body. The opt-out side wins; on a
    /// tie the provider's reason is kept.
    #[test]
    fn provider_verdict_precedence() {
        use ProviderVerdict::*;
        let review = KeywordPolicy::default();
        let phrase = KeywordPolicy {
            phrase_mode: true,
            ..KeywordPolicy::default()
        };
        // (provider verdict, body, phrase mode?, expected action, expected reason)
        let cases: &[(Option<ProviderVerdict>, &str, bool, Action, &str)] = &[
            (Some(OptOut), "STOP", false, PERM, "provider:STOP"),
            (Some(OptOut), "START", false, PERM, "provider:STOP"),
            (Some(OptOut), "HELP", false, PERM, "provider:STOP"),
            (Some(OptOut), "please stop", false, PERM, "provider:STOP"),
            (Some(OptOut), "please stop", true, PERM, "provider:STOP"),
            (Some(OptOut), "hello", false, PERM, "provider:STOP"),
            (Some(OptOut), "", false, PERM, "provider:STOP"),
            (Some(OptIn), "STOP", false, PERM, "keyword:STOP"),
            (
                Some(OptIn),
                "START",
                false,
                Action::Unblock,
                "provider:START",
            ),
            (Some(OptIn), "HELP", false, Action::Help, "keyword:HELP"),
            (
                Some(OptIn),
                "please stop",
                false,
                Action::Review,
                "phrase:STOP",
            ),
            (Some(OptIn), "please stop", true, PERM, "phrase:STOP"),
            (
                Some(OptIn),
                "hello",
                false,
                Action::Unblock,
                "provider:START",
            ),
            (Some(OptIn), "", false, Action::Unblock, "provider:START"),
            (Some(Help), "STOP", false, PERM, "keyword:STOP"),
            (Some(Help), "START", false, Action::Help, "provider:HELP"),
            (Some(Help), "HELP", false, Action::Help, "provider:HELP"),
            (
                Some(Help),
                "please stop",
                false,
                Action::Review,
                "phrase:STOP",
            ),
            (Some(Help), "please stop", true, PERM, "phrase:STOP"),
            (Some(Help), "hello", false, Action::Help, "provider:HELP"),
            (None, "STOP", false, PERM, "keyword:STOP"),
            (None, "START", false, Action::Unblock, "keyword:START"),
            (None, "HELP", false, Action::Help, "keyword:HELP"),
            (None, "please stop", false, Action::Review, "phrase:STOP"),
            (None, "please stop", true, PERM, "phrase:STOP"),
            (None, "hello", false, Action::Reachable, "inbound"),
        ];
        for (verdict, body, phrase_mode, action, reason) in cases {
            let policy = if *phrase_mode { &phrase } else { &review };
            assert_eq!(
                run(&inbound(body, *verdict), policy),
                (*action, reason.to_string()),
                "provider {verdict:?}, body {body:?}, phrase mode {phrase_mode}"
            );
        }
    }

    #[test]
    fn status_with_every_table_code() {
        let policy = KeywordPolicy::default();
        let cases: &[(&str, Option<&str>, Action, &str)] = &[
            ("undelivered", Some("30003"), TEMP, "twilio:30003"),
            ("undelivered", Some("30005"), TEMP, "twilio:30005"),
            ("undelivered", Some("30006"), TEMP, "twilio:30006"),
            ("undelivered", Some("30004"), PERM, "twilio:30004"),
            ("failed", Some("21610"), PERM, "twilio:21610"),
            ("failed", Some("21614"), PERM, "twilio:21614"),
            ("undelivered", Some("63014"), PERM, "twilio:63014"),
            ("failed", Some("30001"), Action::None, "twilio:30001"),
            ("failed", Some("30002"), Action::None, "twilio:30002"),
            ("undelivered", Some("30007"), Action::None, "twilio:30007"),
            ("undelivered", Some("30008"), Action::None, "twilio:30008"),
            ("failed", Some("30009"), Action::None, "twilio:30009"),
            ("failed", Some("30010"), Action::None, "twilio:30010"),
            ("failed", Some("30034"), Action::None, "twilio:30034"),
            ("failed", Some("21408"), Action::None, "twilio:21408"),
            ("failed", Some("21211"), Action::None, "twilio:21211"),
            ("failed", Some("63016"), Action::None, "twilio:63016"),
            ("undelivered", Some(" 30004 "), PERM, "twilio:30004"),
            // Unknown codes never guess a DND.
            (
                "failed",
                Some("63024"),
                Action::None,
                "unclassified:twilio:63024",
            ),
            (
                "failed",
                Some("99999"),
                Action::None,
                "unclassified:twilio:99999",
            ),
            // No code: the status alone says nothing about DND.
            ("delivered", None, Action::None, "status:delivered"),
            ("Sent", None, Action::None, "status:sent"),
            ("failed", None, Action::None, "status:failed"),
            ("failed", Some(""), Action::None, "status:failed"),
            ("failed", Some("  "), Action::None, "status:failed"),
            ("", None, Action::None, "status:unknown"),
            ("  ", Some(""), Action::None, "status:unknown"),
        ];
        for (status_word, code, action, reason) in cases {
            assert_eq!(
                run(&status(status_word, *code), &policy),
                (*action, reason.to_string()),
                "status {status_word:?}, code {code:?}"
            );
        }
    }

    #[test]
    fn every_table_entry_classifies_as_its_rule() {
        let table =
            ErrorTable::from_toml("twilio", include_str!("../../providers/twilio.toml")).unwrap();
        for (code, rule) in table.iter() {
            let decision =
                classify_status(Source::provider("twilio"), "failed", Some(code), &table);
            assert_eq!(decision.action, rule.action.action(), "code {code}");
            assert_eq!(decision.reason, format!("twilio:{code}"));
        }
    }

    #[test]
    fn configured_overrides_change_the_decision() {
        let mut table =
            ErrorTable::from_toml("twilio", include_str!("../../providers/twilio.toml")).unwrap();
        table.merge(
            ErrorTable::from_toml(
                "twilio",
                "[codes.30003]\naction = \"none\"\nreason = \"tenant opts out of this rule\"\n",
            )
            .unwrap(),
        );
        let decision = classify(
            &status("undelivered", Some("30003")),
            &KeywordPolicy::default(),
            &table,
        );
        assert_eq!(decision, Decision::new(Action::None, "twilio:30003"));
    }

    #[test]
    fn an_empty_table_never_blocks() {
        let decision = classify(
            &status("failed", Some("30004")),
            &KeywordPolicy::default(),
            &ErrorTable::default(),
        );
        assert_eq!(
            decision,
            Decision::new(Action::None, "unclassified:twilio:30004")
        );
    }
}
