//! Classification: what an event means for the contact's DND state. Pure: events in,
//! decisions out, no I/O, so every rule is tested by a table.
//!
//! SKELETON: to be implemented (keywords per SPEC section 5, error-code tables from
//! `providers/*.toml`).

use crate::event::ChannelEvent;

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

/// A tenant's keyword lists and switches.
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

/// One provider's error-code table: code -> what it means for the contact's DND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTable {}

/// Classify one event.
pub fn classify(event: &ChannelEvent, keywords: &KeywordPolicy, codes: &ErrorTable) -> Decision {
    let _ = (event, keywords, codes);
    todo!("classification")
}
