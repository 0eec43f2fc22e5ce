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
use crate::config::{Policy, Tenant};
use crate::event::{Channel, ChannelEvent, EventKind, Provider, Scope};
use crate::store::{Applied, Change, Outcome, Record, Store, StoreAction, StoreError};

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
    pub provider: Provider,
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
    })
}

/// The scopes a classified event touches: its channel, plus, for an opt-out or opt-in
/// sent by SMS, the channels the tenant's SMS opt-out also covers (a STOP by text
/// revokes calls too; the START that lifts it lifts them too).
pub fn event_scopes(event: &ChannelEvent, action: Action, policy: &Policy) -> Vec<Scope> {
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
    Ok(outcomes)
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
