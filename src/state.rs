//! DND state changes: from a classified event, an operator request or an import to the
//! store calls it takes, under the tenant's policy (SPEC section 6).
//!
//! The state rules themselves (ordering, dedup, permanence, escalation, evidence) are
//! enforced atomically by the store's apply script; this module decides *which*
//! records a change reaches: the extra channels an SMS opt-out covers, and for an
//! `all`-scope change every address linked to the contact.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::address::Address;
use crate::classify::{Action, Permanence};
use crate::config::{EmailUnsubscribeScope, Policy, Tenant};
use crate::event::{Channel, ChannelEvent, EventKind, Scope, Source};
use crate::store::{Applied, Change, Outcome, Record, State, Store, StoreAction, StoreError};

/// One change to make, before policy and linking.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The address the change names.
    pub address: &'a Address,
    /// The scopes it touches on that address (`all` reaches linked addresses too).
    pub scopes: Vec<Scope>,
    /// What to do.
    pub action: StoreAction,
    /// Short reason for the record and the audit entry.
    pub reason: &'a str,
    /// Who told us.
    pub provider: Source,
    /// The dedup key.
    pub event_id: &'a str,
    /// When the change happened (ms since the epoch).
    pub event_ms: i64,
    /// When we learned of it.
    pub received_ms: i64,
    /// The clock for "is a temporary record still live".
    pub now_ms: i64,
    /// Who made an operator change.
    pub actor: Option<&'a str>,
    /// Consent evidence, JSON text.
    pub evidence: Option<&'a str>,
}

/// What one record went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// The address.
    pub address: Address,
    /// The scope.
    pub scope: Scope,
    /// What happened.
    pub outcome: Outcome,
    /// The record stored now, if any.
    pub record: Option<Record>,
}

/// The result of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcomes {
    /// The request's event had been applied before (nothing written).
    pub duplicate: bool,
    /// Per record reached.
    pub changes: Vec<RecordChange>,
}

impl Outcomes {
    /// Records that changed (applied or escalated).
    pub fn changed(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Applied | Outcome::Escalated))
            .count()
    }

    /// Was any change refused for want of consent evidence?
    pub fn refused(&self) -> bool {
        self.changes.iter().any(|c| c.outcome == Outcome::Refused)
    }
}

/// The store action for a classification's action; `None` writes nothing.
pub fn store_action(action: Action) -> Option<StoreAction> {
    Some(match action {
        Action::None => return None,
        Action::Block(Permanence::Permanent) => StoreAction::BlockPermanent,
        Action::Block(Permanence::Temporary) => StoreAction::BlockTemporary,
        Action::Unblock => StoreAction::Unblock,
        Action::Reachable => StoreAction::Reachable,
        Action::Review => StoreAction::Review,
        Action::Help => StoreAction::Help,
        Action::BlockMarketing => StoreAction::BlockMarketing,
        Action::UnblockMarketing => StoreAction::UnblockMarketing,
        Action::BlockOwn => StoreAction::BlockOwn,
        Action::UnblockOwn => StoreAction::UnblockOwn,
    })
}

/// The scopes a classified event touches: its channel, plus, for an opt-out or opt-in
/// sent by SMS, the channels the tenant's SMS opt-out also covers (a STOP by text
/// revokes calls too; the START that lifts it lifts them too); for an email
/// unsubscribe or resubscribe, `all` unless the tenant's `email_unsubscribe_scope` is
/// `email`.
pub fn event_scopes(event: &ChannelEvent, action: Action, policy: &Policy) -> Vec<Scope> {
    // An email unsubscribe (and the resubscribe that lifts it) covers every channel of
    // the contact unless the tenant says email only.
    let email_unsubscribe = event.channel == Channel::Email
        && matches!(
            event.kind,
            EventKind::Preference {
                marketing_only: false,
                ..
            } | EventKind::GroupPreference { .. }
        );
    if email_unsubscribe && policy.email_unsubscribe_scope == EmailUnsubscribeScope::All {
        return vec![Scope::All];
    }
    let mut scopes = vec![Scope::Channel(event.channel)];
    let keyword = matches!(action, Action::Block(_) | Action::Unblock)
        && matches!(event.kind, EventKind::Inbound { .. });
    if keyword && event.channel == Channel::Sms {
        scopes.extend(policy.sms_opt_out_also.iter().map(|c| Scope::Channel(*c)));
    }
    scopes
}

/// A fresh event id for an operator change or an import row: unique across processes
/// (time, process id, counter).
pub fn new_event_id(now_ms: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{now_ms:x}-{:x}-{n:x}", std::process::id())
}

/// Apply a request for `tenant`: the channel scopes on the named address in one
/// atomic call, and an `all` scope on every address linked to the same contact (one
/// atomic call each; each has its own dedup marker, so a retry completes what a crash
/// interrupted).
pub async fn apply(
    store: &Store,
    tenant: &Tenant,
    req: &Request<'_>,
) -> Result<Outcomes, StoreError> {
    // Every road's event time goes through the one rule (SPEC section 13): never later
    // than the time of receipt, and a time out of range (further ahead than the skew,
    // or before the floor) is the time of receipt. Entry points that can refuse such a
    // time (an import row) have done so already.
    let event_ms = crate::time::clamp_event_time(req.event_ms, req.received_ms);
    // Consent evidence that does not parse is no evidence, whatever the road (a spool
    // record, a Rust caller): it never reaches the script, so it lifts nothing.
    let evidence_ok = req.evidence.is_none_or(|text| {
        serde_json::from_str::<Evidence>(text)
            .map_err(|e| e.to_string())
            .and_then(|e| e.validate(req.now_ms))
            .is_ok()
    });
    if !evidence_ok {
        tracing::warn!(
            tenant = tenant.id.as_str(),
            event_id = %crate::redact::EventId(req.event_id),
            "consent evidence that does not parse was dropped"
        );
    }
    let adjusted;
    let req = if event_ms == req.event_ms && evidence_ok {
        req
    } else {
        adjusted = Request {
            event_ms,
            evidence: req.evidence.filter(|_| evidence_ok),
            ..req.clone()
        };
        &adjusted
    };
    let mut outcomes = Outcomes::default();
    let channels: Vec<Scope> = req
        .scopes
        .iter()
        .copied()
        .filter(|s| *s != Scope::All)
        .collect();
    if !channels.is_empty() {
        let applied = store
            .apply(&change(
                tenant,
                req,
                req.address,
                &channels,
                req.event_id,
                None,
            ))
            .await?;
        collect(&mut outcomes, req.address, applied);
    }
    if req.scopes.contains(&Scope::All) {
        let contact = store.contact_of(&tenant.id, req.address).await?;
        let mut addresses = match &contact {
            Some(id) => store.contact_addresses(&tenant.id, id).await?,
            None => Vec::new(),
        };
        if !addresses.contains(req.address) {
            addresses.insert(0, req.address.clone());
        }
        for address in &addresses {
            let event_id = if address == req.address {
                req.event_id.to_string()
            } else {
                format!("{}@{}", req.event_id, address)
            };
            let applied = store
                .apply(&change(
                    tenant,
                    req,
                    address,
                    &[Scope::All],
                    &event_id,
                    contact.as_deref(),
                ))
                .await?;
            collect(&mut outcomes, address, applied);
        }
    }
    // The script refuses a time past Redis's own clock plus the skew: the gateway's
    // clock and Redis's disagree. Nothing was written; an error makes the webhook
    // spool the change (replayed once the clocks agree) and an operator see it.
    if let Some(c) = outcomes
        .changes
        .iter()
        .find(|c| c.outcome == Outcome::RefusedTime)
    {
        tracing::error!(
            tenant = tenant.id.as_str(),
            event_id = %crate::redact::EventId(req.event_id),
            event_ms = req.event_ms,
            scope = c.scope.as_str(),
            "the apply script refused the event time: this host's clock and redis's disagree"
        );
        let at = crate::time::format_rfc3339_ms(req.event_ms);
        return Err(if req.event_ms < crate::time::FLOOR_MS {
            StoreError::Protocol(format!(
                "event time {at} is before 2000-01-01: this host's clock is wrong"
            ))
        } else {
            StoreError::Unavailable(format!(
                "event time {at} is more than 5 minutes after redis's clock: check the clocks"
            ))
        });
    }
    for c in outcomes
        .changes
        .iter()
        .filter(|c| c.outcome != Outcome::Noop)
    {
        crate::telemetry::dnd_record(
            &tenant.id,
            req.provider.as_str(),
            c.scope,
            c.address.as_str(),
            c.outcome.as_str(),
            written_state(c.outcome, req.action),
            req.reason,
        );
    }
    Ok(outcomes)
}

/// The state a record is in after a write, for the change counter: `None` when the
/// outcome wrote nothing.
fn written_state(outcome: Outcome, action: StoreAction) -> Option<&'static str> {
    Some(match (outcome, action) {
        (Outcome::Escalated, _) => "permanent",
        (Outcome::Applied, StoreAction::BlockPermanent | StoreAction::BlockOwn) => "permanent",
        (Outcome::Applied, StoreAction::BlockTemporary) => "temporary",
        (Outcome::Applied, StoreAction::BlockMarketing) => "marketing",
        (
            Outcome::Applied,
            StoreAction::Unblock
            | StoreAction::Reachable
            | StoreAction::UnblockMarketing
            | StoreAction::UnblockOwn
            | StoreAction::Clear,
        ) => "cleared",
        _ => return None,
    })
}

fn change<'a>(
    tenant: &'a Tenant,
    req: &'a Request<'a>,
    address: &'a Address,
    scopes: &'a [Scope],
    event_id: &'a str,
    contact: Option<&'a str>,
) -> Change<'a> {
    Change {
        tenant: &tenant.id,
        address,
        scopes,
        action: req.action,
        reason: req.reason,
        provider: req.provider,
        event_id,
        event_ms: req.event_ms,
        received_ms: req.received_ms,
        now_ms: req.now_ms,
        temporary_ttl: tenant.policy.temporary_ttl,
        escalate_after: tenant.policy.escalate_after,
        escalate_window: tenant.policy.escalate_window,
        actor: req.actor,
        evidence: req.evidence,
        contact,
    }
}

fn collect(outcomes: &mut Outcomes, address: &Address, applied: Applied) {
    match applied {
        Applied::Duplicate => outcomes.duplicate = true,
        Applied::Done(per_scope) => {
            outcomes
                .changes
                .extend(
                    per_scope
                        .into_iter()
                        .map(|(scope, outcome, record)| RecordChange {
                            address: address.clone(),
                            scope,
                            outcome,
                            record,
                        }),
                )
        }
    }
}

/// Consent evidence an operator gives to lift a permanent record (SPEC section 6):
/// what was agreed, when, how it was captured, and a reference to the proof.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// What the contact agreed to, e.g. "marketing texts from Acme".
    pub agreed: String,
    /// When, as RFC 3339 text (`2026-11-27T10:00:00Z`): not in the future.
    pub captured_at: String,
    /// How it was captured: one of [`EVIDENCE_METHODS`] ("web form", "recorded call",
    /// ...), compared without regard to case.
    pub method: String,
    /// Where the proof is: a form submission id, a URL, a file name.
    pub reference: String,
}

/// The longest text accepted in an evidence field or an operator reason.
pub const MAX_TEXT: usize = 500;

/// How consent may have been captured (`evidence.method`, compared without regard to
/// case): a web form or checkbox, a signed paper form, a recorded call, a note of a
/// spoken agreement, an email from the contact, an opt-in keyword received elsewhere, a
/// confirmed double opt-in, a setting in an app, another system's API, an import of
/// consent records. The README and docs/openapi.json list the same.
pub const EVIDENCE_METHODS: &[&str] = &[
    "web form",
    "paper form",
    "recorded call",
    "verbal",
    "email",
    "keyword",
    "double opt-in",
    "in app",
    "api",
    "import",
];

impl Evidence {
    /// Check every field as of `now_ms`: `agreed` and `reference` not blank,
    /// `captured_at` an RFC 3339 time neither in the future (beyond the event-time
    /// skew) nor before 2000-01-01, `method` one of [`EVIDENCE_METHODS`]. The error is
    /// one line naming each field that fails (`evidence.captured_at: ...`).
    pub fn validate(&self, now_ms: i64) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("agreed", &self.agreed),
            ("captured_at", &self.captured_at),
            ("method", &self.method),
            ("reference", &self.reference),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("evidence.{name} is empty"));
            } else if value.len() > MAX_TEXT {
                problems.push(format!("evidence.{name} is longer than {MAX_TEXT} bytes"));
            }
        }
        let captured_at = self.captured_at.trim();
        if !captured_at.is_empty() && captured_at.len() <= MAX_TEXT {
            match crate::time::parse_rfc3339_ms(captured_at) {
                None => problems.push(format!(
                    "evidence.captured_at: {captured_at:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z"
                )),
                Some(ms) => {
                    if let Err(e) = crate::time::event_time(ms, now_ms) {
                        problems.push(format!("evidence.captured_at: {e}"));
                    }
                }
            }
        }
        let method = self.method.trim();
        if !method.is_empty()
            && !EVIDENCE_METHODS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
        {
            let shown: String = method.chars().take(60).collect();
            problems.push(format!(
                "evidence.method: {shown:?} is not one of: {}",
                EVIDENCE_METHODS.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Why an operator change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// A permanent record cannot be cleared without consent evidence (409); the refusal
    /// is in the audit stream.
    #[error(
        "{0} is on permanent DND: clearing it needs consent evidence (agreed, captured_at, method, reference)"
    )]
    NeedsEvidence(String),
    /// Redis did not answer (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OperatorError> for crate::error::Error {
    fn from(e: OperatorError) -> Self {
        use crate::error::{Error, Kind};
        match e {
            OperatorError::Invalid(m) => Error::bad_request(m),
            e @ OperatorError::NeedsEvidence(_) => Error::new(Kind::Conflict, e.to_string()),
            OperatorError::Store(s) => s.into(),
        }
    }
}

/// An operator's change: set or clear a record.
#[derive(Debug, Clone)]
pub struct OperatorChange<'a> {
    /// The scope: one channel or `all`.
    pub scope: Scope,
    /// The address.
    pub address: &'a Address,
    /// Who (recorded in the audit entry).
    pub actor: Option<&'a str>,
    /// The clock.
    pub now_ms: i64,
}

impl<'a> OperatorChange<'a> {
    /// The request that makes this change: `action` on the one scope, now, from the
    /// operator.
    fn request(
        &self,
        action: StoreAction,
        reason: &'a str,
        event_id: &'a str,
        evidence: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            address: self.address,
            scopes: vec![self.scope],
            action,
            reason,
            provider: Source::OPERATOR,
            event_id,
            event_ms: self.now_ms,
            received_ms: self.now_ms,
            now_ms: self.now_ms,
            actor: self.actor,
            evidence,
        }
    }
}

fn check_text(name: &str, value: Option<&str>) -> Result<(), OperatorError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(OperatorError::Invalid(format!(
            "{name} is longer than {MAX_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Set a record by hand: permanent, or temporary for the tenant's `temporary_ttl`.
/// The reason is recorded as `operator` or `operator:REASON`.
pub async fn operator_set(
    store: &Store,
    tenant: &Tenant,
    change: &OperatorChange<'_>,
    permanence: Permanence,
    reason: Option<&str>,
) -> Result<Outcomes, OperatorError> {
    check_text("actor", change.actor)?;
    let reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => "operator".to_string(),
        Some(r) if r.len() > 40 || r.contains(['|', '\n', '\r']) => {
            return Err(OperatorError::Invalid(
                "reason must be at most 40 characters, on one line, without |".into(),
            ));
        }
        Some(r) => format!("operator:{r}"),
    };
    let action = match permanence {
        Permanence::Permanent => StoreAction::BlockPermanent,
        Permanence::Temporary => StoreAction::BlockTemporary,
    };
    let event_id = new_event_id(change.now_ms);
    Ok(apply(
        store,
        tenant,
        &change.request(action, &reason, &event_id, None),
    )
    .await?)
}

/// Clear a record by hand. A temporary record needs nothing more; a permanent one
/// needs consent evidence, without which nothing changes (not on any linked address
/// either) and the refusal is audited.
pub async fn operator_clear(
    store: &Store,
    tenant: &Tenant,
    change: &OperatorChange<'_>,
    evidence: Option<&Evidence>,
) -> Result<Outcomes, OperatorError> {
    check_text("actor", change.actor)?;
    if let Some(e) = evidence {
        e.validate(change.now_ms).map_err(OperatorError::Invalid)?;
    }
    let evidence_json = evidence.map(|e| serde_json::to_string(e).expect("strings serialise"));
    let reason = if evidence.is_some() {
        "operator:consent"
    } else {
        "operator"
    };
    // Without evidence, an all-scope clear that would meet a permanent record on a
    // linked address is refused as a whole: nothing is lifted anywhere, and the
    // refusal is audited where that record is.
    if evidence.is_none() && change.scope == Scope::All {
        let linked = match store.contact_of(&tenant.id, change.address).await? {
            Some(id) => store.contact_addresses(&tenant.id, &id).await?,
            None => Vec::new(),
        };
        for address in linked.iter().filter(|a| *a != change.address) {
            let record = store.record(&tenant.id, Scope::All, address).await?;
            if record.is_some_and(|r| r.blocks_at(change.now_ms) && r.state == State::Permanent) {
                let event_id = new_event_id(change.now_ms);
                store
                    .apply(&change_for_refusal(tenant, change, address, &event_id))
                    .await?;
                return Err(OperatorError::NeedsEvidence(address.to_string()));
            }
        }
    }
    let event_id = new_event_id(change.now_ms);
    let outcomes = apply(
        store,
        tenant,
        &change.request(
            StoreAction::Clear,
            reason,
            &event_id,
            evidence_json.as_deref(),
        ),
    )
    .await?;
    if outcomes.refused() {
        return Err(OperatorError::NeedsEvidence(change.address.to_string()));
    }
    Ok(outcomes)
}

/// The refused clear of a linked address's permanent `all` record, so the refusal is
/// audited where the record is.
fn change_for_refusal<'a>(
    tenant: &'a Tenant,
    change: &'a OperatorChange<'a>,
    address: &'a Address,
    event_id: &'a str,
) -> Change<'a> {
    Change {
        tenant: &tenant.id,
        address,
        scopes: &[Scope::All],
        action: StoreAction::Clear,
        reason: "operator",
        provider: Source::OPERATOR,
        event_id,
        event_ms: change.now_ms,
        received_ms: change.now_ms,
        now_ms: change.now_ms,
        temporary_ttl: tenant.policy.temporary_ttl,
        escalate_after: tenant.policy.escalate_after,
        escalate_window: tenant.policy.escalate_window,
        actor: change.actor,
        evidence: None,
        contact: None,
    }
}
