//! The Redis store: the key layout, the atomic apply script and the send-time lookup.
//! The only module that knows the layout (README section "The Redis contract" documents
//! it for senders in other languages).
//!
//! # Layout
//!
//! Let `h = sha1_hex(ADDRESS)` (lower-case hex of SHA-1 over the normalised address),
//! `S = h[0]` (the shard, 16 per tenant) and `BBB = h[1..4]` (the bucket, 4096 per
//! shard). Then:
//!
//! - `dnd:{TENANT:S}:BBB` is a hash of records: field `SCOPE:ADDRESS` (`sms:+1415...`,
//!   `all:+1415...`), value `STATE|EVENT_MS|EXPIRES_MS|REASON|SOURCE`, at most 64
//!   bytes so the hash stays listpack-encoded.
//! - `dnd:{TENANT:S}:audit` is the audit stream of the shard.
//! - `dnd:{TENANT:S}:seen:W:NN` holds dedup marks: 64-bit digests of `PROVIDER:EVENT_ID`
//!   as integer set members, by time window (see `Seen`).
//! - `dnd:{TENANT:S}:fails:SCOPE:ADDRESS` is a sorted set of recent temporary failures
//!   (score: event time), for escalation; it expires with the window.
//! - `dnd:{TENANT:S}:spooled` is the spool marker: a hash, one field per gateway spool
//!   that holds changes of the tenant not yet applied (see [`Store::mark_spooled`]).
//!   While it exists, every lookup of the tenant fails closed; it is written on all 16
//!   shards, so a reader checks the one of its address's shard in the same round trip
//!   as the record.
//!
//! Many small hashes (about 15 records each at a million records) stay in Redis's
//! compact listpack encoding, which is what keeps a record under 100 bytes; the hash
//! tag `{TENANT:S}` keeps everything one event writes in one cluster slot, and no key
//! is tenant-wide. Temporary records carry their expiry in the value and stop
//! blocking by themselves: a reader compares `EXPIRES_MS` with its clock.

use std::time::Duration;

use redis::{Script, Value};
use sha1::{Digest, Sha1};

use crate::address::Address;
use crate::event::{Channel, Scope, Source};

mod batch;
mod conn;
pub use conn::{
    Batch, CLUSTER_SCHEMES, ConnectOptions, Connection, LazyCluster, Target, cluster_url,
    parse_target,
};

/// The Lua script that applies one event.
const APPLY_LUA: &str = include_str!("apply.lua");

/// The Lua script that audits one expiry the sweeper found.
const EXPIRE_LUA: &str = include_str!("expire.lua");

/// The most addresses one lookup pipeline carries; a larger batch goes as a few
/// pipelines at once (see [`Store::lookup_many`]).
pub const LOOKUP_CHUNK: usize = 2_500;

/// The Redis keys of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The record hash.
    pub bucket: String,
    /// The audit stream of the shard.
    pub audit: String,
    /// The hash tag, `TENANT:S`, shared by every key the address's events write.
    pub tag: String,
}

/// The first 16 bits of the SHA-1 of `address`: its shard (the top 4) and its bucket
/// in the shard (the next 12), all a lookup needs to name its keys.
fn address_bits(address: &Address) -> u16 {
    let d = Sha1::digest(address.as_str().as_bytes());
    u16::from_be_bytes([d[0], d[1]])
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Write `dnd:{TENANT:S}:` for the shard of `bits` (see [`address_bits`]) to `key`.
fn push_shard_prefix(key: &mut String, tenant: &str, bits: u16) {
    let hex = |n: u16| HEX[usize::from(n & 0xf)] as char;
    key.push_str("dnd:{");
    key.push_str(tenant);
    key.push(':');
    key.push(hex(bits >> 12));
    key.push_str("}:");
}

/// Write the record hash `dnd:{TENANT:S}:BBB` of `bits` (see [`address_bits`]) to
/// `key`.
fn push_bucket_key(key: &mut String, tenant: &str, bits: u16) {
    let hex = |n: u16| HEX[usize::from(n & 0xf)] as char;
    push_shard_prefix(key, tenant, bits);
    key.push(hex(bits >> 8));
    key.push(hex(bits >> 4));
    key.push(hex(bits));
}

/// The record hash of `address` of `tenant` alone: what a lookup needs, built with one
/// allocation.
#[cfg(test)]
fn bucket_key(tenant: &str, address: &Address) -> String {
    let mut key = String::with_capacity(tenant.len() + 12);
    push_bucket_key(&mut key, tenant, address_bits(address));
    key
}

/// The spool markers of a tenant, one per shard (16), in shard order:
/// `dnd:{TENANT:S}:spooled`. While one exists, lookups of the tenant fail closed (a
/// gateway's spool holds changes for it that Redis does not have yet).
pub fn spooled_keys(tenant: &str) -> Vec<String> {
    (0..16)
        .map(|s| format!("dnd:{{{tenant}:{s:x}}}:spooled"))
        .collect()
}

/// The keys for `address` of `tenant`.
pub fn keys(tenant: &str, address: &Address) -> Keys {
    let digest = Sha1::digest(address.as_str().as_bytes());
    let h = hex::encode(&digest[..2]);
    let tag = format!("{tenant}:{}", &h[..1]);
    Keys {
        bucket: format!("dnd:{{{tag}}}:{}", &h[1..4]),
        audit: format!("dnd:{{{tag}}}:audit"),
        tag,
    }
}

impl Keys {
    /// The shard's expiry index: its temporary records by when they run out.
    pub fn expiring(&self) -> String {
        format!("dnd:{{{}}}:expiring", self.tag)
    }

    /// The shard (0 to 15): the last hex digit of the tag.
    pub fn shard(&self) -> usize {
        self.tag
            .rsplit(':')
            .next()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    }
}

/// The audit streams of a tenant, one per shard (16), in shard order. Automations
/// read them all (see `docs/AUDIT.md`).
pub fn audit_keys(tenant: &str) -> Vec<String> {
    (0..16)
        .map(|s| format!("dnd:{{{tenant}:{s:x}}}:audit"))
        .collect()
}

/// The key of a contact's set of linked addresses: `dnd:{TENANT:S}:contact:ID`, with
/// `S` the first hex digit of the SHA-1 of the contact id.
pub fn contact_key(tenant: &str, contact: &str) -> String {
    let digest = Sha1::digest(contact.as_bytes());
    let h = hex::encode(&digest[..1]);
    format!("dnd:{{{tenant}:{}}}:contact:{contact}", &h[..1])
}

/// The key of an unsubscribe link's record. Links are found from their token alone,
/// before the tenant is known, so the key is not under a tenant's hash tag.
fn link_key(link_id: &[u8; 8]) -> String {
    let id = hex::encode(link_id);
    format!("dndlink:{{{}}}:{id}", &id[..1])
}

/// A stream entry as Redis gives it: its id and its fields in order.
pub type StreamEntry = (String, Vec<(String, String)>);

/// The key of a console session: `dndsession:DIGEST`, the SHA-256 of the session id
/// in hex (the cookie's value is never stored, so a reader of Redis cannot sign in
/// with what it reads). One key each, so any slot on a cluster.
fn session_key(digest: &str) -> String {
    format!("dndsession:{digest}")
}

/// The hash field, in the address's bucket, that names the contact the address is
/// linked to.
fn link_field(address: &Address) -> String {
    format!("link:{}", address.as_str())
}

/// The hash field of a record.
pub fn field(scope: Scope, address: &Address) -> String {
    // On every lookup's path, twice: no formatting machinery.
    let (scope, address) = (scope.as_str(), address.as_str());
    let mut field = String::with_capacity(scope.len() + 1 + address.len());
    field.push_str(scope);
    field.push(':');
    field.push_str(address);
    field
}

/// The state of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Blocks until the contact opts in or an operator clears it with evidence.
    Permanent,
    /// Blocks until its expiry, an inbound message on the channel, or an operator.
    Temporary,
    /// Blocks marketing messages until the contact resumes them or opts in, or an
    /// operator clears it with evidence; service messages are allowed.
    Marketing,
    /// Lifted; kept so a late, older event cannot undo the newer change.
    Cleared,
}

crate::event::names! {
    /// The name used in the API and the CLI.
    State {
        Permanent => "permanent",
        Temporary => "temporary",
        Marketing => "marketing",
        Cleared => "cleared",
    }
}

/// A DND record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The state.
    pub state: State,
    /// When the change that made this record happened (ms since the epoch).
    pub event_ms: i64,
    /// For temporary records, when they stop blocking (ms since the epoch).
    pub expires_ms: Option<i64>,
    /// Why, e.g. `keyword:STOP`, `twilio:30004`.
    pub reason: String,
    /// Who: the provider's name, or `operator`. The event id that made the record is
    /// in its audit entry: keeping it out of the record keeps the record small.
    pub source: String,
}

impl Record {
    /// Parse a stored value; `None` for a value this version does not understand.
    pub fn parse(value: &str) -> Option<Record> {
        RecordView::parse(value).map(RecordView::to_record)
    }

    /// Read a stored value whatever it holds: what [`Record::parse`] cannot read is a
    /// permanent record of unknown origin (time 0, reason and source `?`), as the
    /// apply script reads it, so an unreadable value never counts as "no record".
    pub fn read(value: &str) -> Record {
        RecordView::read(value).to_record()
    }

    /// Does this record block sending at `now_ms`? A marketing-only record counts as
    /// blocking: a sender that does not say its message is a service message is
    /// treated as sending marketing (see [`Record::blocks_service_at`]).
    pub fn blocks_at(&self, now_ms: i64) -> bool {
        blocks_at(self.state, self.expires_ms, now_ms)
    }
}

impl Record {
    /// Does this record block a service (non-marketing) message at `now_ms`? Only a
    /// marketing-only record answers differently from [`Record::blocks_at`].
    pub fn blocks_service_at(&self, now_ms: i64) -> bool {
        self.state != State::Marketing && self.blocks_at(now_ms)
    }
}

/// Does a record in `state` (expiring at `expires_ms`) block sending at `now_ms`: the
/// rule of [`Record::blocks_at`].
fn blocks_at(state: State, expires_ms: Option<i64>, now_ms: i64) -> bool {
    match state {
        State::Permanent | State::Marketing => true,
        State::Temporary => expires_ms.is_some_and(|e| e > now_ms),
        State::Cleared => false,
    }
}

/// A stored record read in place, borrowing the stored value: a lookup decides on
/// views and allocates only for the record it returns.
#[derive(Debug, Clone, Copy)]
struct RecordView<'a> {
    state: State,
    event_ms: i64,
    expires_ms: Option<i64>,
    reason: &'a str,
    source: &'a str,
}

impl<'a> RecordView<'a> {
    /// [`Record::parse`], borrowing.
    fn parse(value: &'a str) -> Option<RecordView<'a>> {
        let mut parts = value.splitn(5, '|');
        let state = match parts.next()? {
            "P" => State::Permanent,
            "T" => State::Temporary,
            "M" => State::Marketing,
            "C" => State::Cleared,
            _ => return None,
        };
        let event_ms = parts.next()?.parse().ok()?;
        let expires = parts.next()?;
        let expires_ms = if expires.is_empty() {
            None
        } else {
            Some(expires.parse().ok()?)
        };
        Some(RecordView {
            state,
            event_ms,
            expires_ms,
            reason: parts.next()?,
            source: parts.next()?,
        })
    }

    /// [`Record::read`], borrowing.
    fn read(value: &'a str) -> RecordView<'a> {
        RecordView::parse(value).unwrap_or(RecordView {
            state: State::Permanent,
            event_ms: 0,
            expires_ms: None,
            reason: "?",
            source: "?",
        })
    }

    fn to_record(self) -> Record {
        Record {
            state: self.state,
            event_ms: self.event_ms,
            expires_ms: self.expires_ms,
            reason: self.reason.to_string(),
            source: self.source.to_string(),
        }
    }
}

/// [`Record::blocks_at`] of a view.
fn view_blocks_at(r: &RecordView, now_ms: i64) -> bool {
    blocks_at(r.state, r.expires_ms, now_ms)
}

/// [`Record::blocks_service_at`] of a view.
fn view_blocks_service_at(r: &RecordView, now_ms: i64) -> bool {
    r.state != State::Marketing && view_blocks_at(r, now_ms)
}

/// What the apply script should do; mirrors the classification's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// Set a permanent record.
    BlockPermanent,
    /// Set a temporary record (unless a permanent one is in place).
    BlockTemporary,
    /// Lift any record (opt-in).
    Unblock,
    /// Lift a temporary record only (proof of reachability).
    Reachable,
    /// Record a possible opt-out for review; no change.
    Review,
    /// Record a help request; no change.
    Help,
    /// Set a permanent record for marketing messages only (unless a permanent record
    /// is in place).
    BlockMarketing,
    /// Lift a marketing-only record (the contact resumed marketing); nothing stronger.
    UnblockMarketing,
    /// An operator lifts the record: a temporary one always, a permanent one only with
    /// consent evidence (otherwise the change is refused and audited).
    Clear,
    /// Set a permanent record that only the matching [`StoreAction::UnblockOwn`] lifts
    /// (an unsubscribe link's, a SendGrid group unsubscribe). Over a live permanent
    /// record of another origin it keeps that origin and refreshes the time, so the own
    /// unblock can never lift what a keyword, a provider or an operator set.
    BlockOwn,
    /// Lift a record only if the change's own kind set it: the same source, and the
    /// change's reason or one under it (`REASON:...`), e.g. `link` lifts `link:winter`,
    /// `sendgrid:group:42` lifts that group's unsubscribe. Any other blocking record is
    /// kept and the lift is audited as refused.
    UnblockOwn,
}

crate::event::names! {
    /// The action's name, as the apply script and the spool write it.
    StoreAction {
        BlockPermanent => "block_permanent",
        BlockTemporary => "block_temporary",
        Unblock => "unblock",
        Reachable => "reachable",
        Review => "review",
        Help => "help",
        Clear => "clear",
        BlockMarketing => "block_marketing",
        UnblockMarketing => "unblock_marketing",
        BlockOwn => "block_own",
        UnblockOwn => "unblock_own",
    }
}

/// One change to the records of one address, from one event.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The contact's address.
    pub address: &'a Address,
    /// The scopes (channels, or `all`) the change touches.
    pub scopes: &'a [Scope],
    /// What to do.
    pub action: StoreAction,
    /// Short reason, stored in the record and the audit entry.
    pub reason: &'a str,
    /// Who told us.
    pub provider: Source,
    /// The provider's event id (the dedup key).
    pub event_id: &'a str,
    /// When the event happened (ms since the epoch).
    pub event_ms: i64,
    /// When we received it (ms since the epoch).
    pub received_ms: i64,
    /// The clock used to decide whether a temporary record is still live.
    pub now_ms: i64,
    /// How long a temporary record blocks.
    pub temporary_ttl: Duration,
    /// Temporary failures within [`Change::escalate_window`] that make a record
    /// permanent (this one included).
    pub escalate_after: u32,
    /// The window in which temporary failures are counted.
    pub escalate_window: Duration,
    /// Who made an operator change (recorded in the audit entry).
    pub actor: Option<&'a str>,
    /// Consent evidence, as JSON text (recorded in the audit entry).
    pub evidence: Option<&'a str>,
    /// The contact whose linked addresses an `all`-scope change reaches.
    pub contact: Option<&'a str>,
}

impl Change<'_> {
    /// The apply script's arguments for this change, in its order (see `apply.lua`).
    /// Times go as decimal strings: Lua numbers are doubles and print in exponent form.
    fn script_args(&self, seen: &Seen) -> ScriptArgs {
        use std::fmt::Write as _;
        let mut a = ScriptArgs {
            text: String::with_capacity(160 + 2 * self.address.as_str().len()),
            ends: Vec::with_capacity(20 + self.scopes.len()),
        };
        let num = |a: &mut ScriptArgs, n: i128| {
            let _ = write!(a.text, "{n}");
            a.end();
        };
        num(&mut a, i128::from(seen.member));
        num(&mut a, i128::from(seen.ttl_s));
        a.push(self.action.as_str());
        num(&mut a, i128::from(self.event_ms));
        num(&mut a, i128::from(self.received_ms));
        num(&mut a, i128::from(self.now_ms));
        num(&mut a, self.temporary_ttl.as_millis() as i128);
        num(&mut a, i128::from(self.escalate_after.max(1)));
        num(&mut a, self.escalate_window.as_millis().max(1) as i128);
        num(&mut a, i128::from(crate::time::MAX_SKEW_MS));
        num(&mut a, i128::from(crate::time::FLOOR_MS));
        // `|` separates the record's fields; a reason never carries one.
        if self.reason.contains('|') {
            a.push(&self.reason.replace('|', "/"));
        } else {
            a.push(self.reason);
        }
        a.push(self.provider.as_str());
        a.push(self.event_id);
        a.push(self.address.as_str());
        a.push(self.tenant);
        for optional in [self.actor, self.evidence, self.contact] {
            if let Some(v) = optional {
                a.text.push('=');
                a.push(v);
            } else {
                a.end();
            }
        }
        num(&mut a, self.scopes.len() as i128);
        for scope in self.scopes {
            a.push(scope.as_str());
            // The field, `SCOPE:ADDRESS`, written in place.
            a.ends.pop();
            a.text.push(':');
            a.push(self.address.as_str());
        }
        a
    }
}

/// One change's script arguments: their text one after another in one buffer, and
/// where each ends (one allocation for the text, one for the ends).
pub(super) struct ScriptArgs {
    text: String,
    ends: Vec<usize>,
}

impl ScriptArgs {
    /// The argument written since the last one ends here.
    fn end(&mut self) {
        self.ends.push(self.text.len());
    }

    /// Append `s` as the next argument (after whatever of it is already written).
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.end();
    }

    /// The arguments, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let s = &self.text[start..end];
            start = end;
            s
        })
    }
}

/// Where an event's dedup mark goes: a 64-bit digest of `PROVIDER:EVENT_ID` as an
/// integer member (so a set of up to 512 stays an intset, 8 bytes a member), in one of
/// 256 sets per shard and window, `dnd:{TENANT:S}:seen:W:NN`. A window is `dedup_ttl`
/// long (W counts windows since the epoch) and a set expires at the end of the window
/// after its own, so a mark lives between one and two `dedup_ttl`s; the script looks
/// in this window's set and the one before.
struct Seen {
    member: i64,
    set: u8,
    window: u64,
    /// Seconds from the change's clock to the end of the next window: relative, so the
    /// set's life follows the change's clock and not Redis's (they agree in service).
    ttl_s: u64,
}

impl Seen {
    fn of(change: &Change<'_>, dedup_ttl: Duration) -> Seen {
        let mut h = Sha1::new();
        h.update(change.provider.as_str().as_bytes());
        h.update(b":");
        h.update(change.event_id.as_bytes());
        let d = h.finalize();
        let member = i64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        let width = dedup_ttl.as_secs().max(1);
        let now_s = u64::try_from(change.now_ms.max(0) / 1000).unwrap_or(0);
        let window = now_s / width;
        Seen {
            member,
            set: d[8],
            window,
            ttl_s: (window + 2) * width - now_s,
        }
    }

    /// The set of this window (`back` 0) or the one before (`back` 1).
    fn key(&self, tag: &str, back: u64) -> String {
        format!(
            "dnd:{{{tag}}}:seen:{}:{:02x}",
            self.window.saturating_sub(back),
            self.set
        )
    }
}

/// What happened to one scope's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The record changed.
    Applied,
    /// Enough temporary failures inside the window: the record became permanent.
    Escalated,
    /// The event is older than the record it would replace: not applied, audited.
    Superseded,
    /// A temporary block did not replace a permanent record.
    KeptPermanent,
    /// A lift that needs more than the change carries: an operator's clear of a
    /// permanent record without consent evidence, or an own unblock
    /// ([`StoreAction::UnblockOwn`]) of a record something else set. Audited.
    Refused,
    /// The event time is later than Redis's clock plus `time::MAX_SKEW_MS`, or before
    /// `time::FLOOR_MS`: nothing written, audited (the second line behind
    /// `time::event_time`).
    RefusedTime,
    /// A possible opt-out recorded for review.
    Review,
    /// A help request recorded.
    Help,
    /// A temporary record ran out (at its `EXPIRES_MS`, the entry's event time); it
    /// blocks nothing any more.
    Expired,
    /// Nothing to do (e.g. an ordinary message with no temporary record).
    Noop,
}

crate::event::names! {
    /// The name written in audit entries.
    Outcome {
        Applied => "applied",
        Escalated => "escalated",
        Refused => "refused",
        RefusedTime => "refused_time",
        Superseded => "superseded",
        KeptPermanent => "kept_permanent",
        Review => "review",
        Help => "help",
        Expired => "expired",
        Noop => "noop",
    }
}

/// The result of applying a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The same provider event was applied before; nothing was written.
    Duplicate,
    /// Per scope, the outcome and the record now stored (if any).
    Done(Vec<(Scope, Outcome, Option<Record>)>),
}

/// What [`Store::claim_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The token was new.
    Fresh,
    /// The token was seen with the same request before.
    Same,
    /// The token was seen with another request.
    Other,
}

/// The answer to "may I send to this address on this channel?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True when sending is not allowed (a marketing message, or any message when the
    /// sender does not say).
    pub blocked: bool,
    /// True when only marketing messages are blocked: a service (utility,
    /// authentication) message may still be sent.
    pub marketing_only: bool,
    /// The record that blocks (the channel's own, else the `all` one), or the record
    /// found when nothing blocks.
    pub record: Option<Record>,
    /// Which scope the record is under.
    pub scope: Option<Scope>,
}

/// Why the store could not answer. Lookups must fail closed on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer in time, or the connection failed.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something this version cannot read (a broken invariant).
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The tenant has changes in a gateway's spool that Redis does not have yet (the
    /// spool marker is set): a lookup cannot know, and fails closed.
    #[error(
        "tenant {0} has changes in a gateway's spool not yet applied to redis; lookups fail closed until the replay ends"
    )]
    Spooled(String),
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => crate::error::Error::unavailable(format!(
                "redis unavailable ({m}); nothing was recorded, retry later"
            )),
            StoreError::Protocol(m) => crate::error::Error::new(
                crate::error::Kind::Internal,
                format!("unexpected reply from redis: {m}"),
            ),
            e @ StoreError::Spooled(_) => {
                crate::error::Error::unavailable(format!("{e}; retry later"))
            }
        }
    }
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Longest wait for one Redis call.
    pub timeout: Duration,
    /// How long dedup markers live.
    pub dedup_ttl: Duration,
}

/// A handle on the DND store; cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    conn: Connection,
    script: Script,
    /// The changes waiting for their script call (group commit).
    batcher: std::sync::Arc<batch::Batcher>,
    /// Counts the changes this store (and its clones) applied, per shard, so the
    /// delivery of events out in this process wakes the shard's workers at once
    /// instead of at their next poll.
    applied: std::sync::Arc<[tokio::sync::watch::Sender<u64>; 16]>,
    options: StoreOptions,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Store {
    /// A store on the Redis at `url`: one server, or a Redis Cluster named by a
    /// `redis+cluster://` URL (see [`Connection`]). Connects lazily, so the gateway
    /// starts (and spools, and answers `/readyz` honestly) while Redis is down.
    pub fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let conn = Connection::open(
            url,
            ConnectOptions {
                connect_timeout: options.timeout,
                response_timeout: Some(options.timeout),
            },
        )
        .map_err(unavailable)?;
        Ok(Store {
            conn,
            script: Script::new(APPLY_LUA),
            batcher: Default::default(),
            applied: std::sync::Arc::new(std::array::from_fn(|_| {
                tokio::sync::watch::Sender::new(0)
            })),
            options,
        })
    }

    async fn with_timeout<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.options.timeout, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => unavailable(e),
            Err(_) => {
                StoreError::Unavailable(format!("no answer within {:?}", self.options.timeout))
            }
        };
        crate::telemetry::metrics().redis_errors.inc();
        Err(result)
    }

    /// A connection for modules that run their own commands on keys the store names
    /// (the audit consumer).
    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }

    /// Is Redis answering?
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }

    /// Apply one change atomically: dedup marker, records, audit entries in one script
    /// call, shared with the changes that arrive at the same time (group commit, see
    /// `batch.rs`). Returns once this change is written.
    pub async fn apply(&self, change: &Change<'_>) -> Result<Applied, StoreError> {
        let keys = keys(change.tenant, change.address);
        let seen = Seen::of(change, self.options.dedup_ttl);
        let mut job_keys = Vec::with_capacity(5 + change.scopes.len());
        job_keys.push(keys.bucket.clone());
        job_keys.push(keys.audit.clone());
        job_keys.push(seen.key(&keys.tag, 0));
        job_keys.push(seen.key(&keys.tag, 1));
        for scope in change.scopes {
            job_keys.push(format!(
                "dnd:{{{}}}:fails:{}",
                keys.tag,
                field(*scope, change.address)
            ));
        }
        job_keys.push(keys.expiring());
        let (done, reply) = tokio::sync::oneshot::channel();
        let job = batch::Job {
            keys: job_keys,
            args: change.script_args(&seen),
            done,
        };
        // On a cluster every key of a call must be in one slot: group by hash tag.
        let group = if self.conn.is_cluster() {
            keys.tag.as_str()
        } else {
            ""
        };
        if let Some(first) = self.batcher.push(group, job) {
            let (store, group) = (self.clone(), group.to_string());
            tokio::spawn(async move { store.send_batches(&group, first).await });
        }
        // The batch's own call is bounded by the timeout; this job may first wait for
        // the call before it.
        let reply = match tokio::time::timeout(2 * self.options.timeout, reply).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err(StoreError::Unavailable("apply call dropped".into())),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no answer within {:?}",
                    2 * self.options.timeout
                )));
            }
        };
        self.applied[keys.shard()].send_modify(|n| *n = n.wrapping_add(1));
        parse_applied(reply, change.scopes)
    }

    /// Send `batch` of `group` as one script call, then whatever queued meanwhile,
    /// until nothing waits.
    async fn send_batches(&self, group: &str, mut batch: Vec<batch::Job>) {
        loop {
            let mut invocation = self.script.prepare_invoke();
            for job in &batch {
                invocation.arg(job.keys.len());
                for arg in job.args.iter() {
                    invocation.arg(arg);
                }
                for key in &job.keys {
                    invocation.key(key);
                }
            }
            let mut conn = self.conn.clone();
            let reply = self.with_timeout(invocation.invoke_async(&mut conn)).await;
            batch::deliver(batch, reply);
            match self.batcher.next(group) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// Changes as this store applies them to shard `shard` (0 to 15, any tenant):
    /// `changed()` completes after the next one.
    pub fn applied(&self, shard: u8) -> tokio::sync::watch::Receiver<u64> {
        self.applied[usize::from(shard & 0xf)].subscribe()
    }

    /// May `address` be sent to on `channel` at `now_ms`? One HMGET on one key: the
    /// channel's record and the `all` record.
    pub async fn lookup(
        &self,
        tenant: &str,
        channel: Channel,
        address: &Address,
        now_ms: i64,
    ) -> Result<Verdict, StoreError> {
        let mut verdicts = self
            .lookup_many(tenant, channel, std::slice::from_ref(address), now_ms)
            .await?;
        verdicts
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty reply".into()))
    }

    /// The verdicts for many addresses on one channel, in one round trip (a pipeline
    /// of one HMGET per address, with one EXISTS of the spool marker per shard the
    /// addresses fall in, ahead of them), in the order given. A spool marker on any of
    /// those shards fails the whole call with [`StoreError::Spooled`]: the tenant has
    /// acknowledged changes that Redis does not have yet.
    ///
    /// On one server a batch larger than [`LOOKUP_CHUNK`] goes as a few pipelines at
    /// once on the same connection, each with its own shards' markers ahead of its
    /// records, so that Redis answers one while the replies of another are read.
    pub async fn lookup_many(
        &self,
        tenant: &str,
        channel: Channel,
        addresses: &[Address],
        now_ms: i64,
    ) -> Result<Vec<Verdict>, StoreError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let bits: Vec<u16> = addresses.iter().map(address_bits).collect();
        let mut conn = self.conn.clone();
        if conn.is_cluster() {
            // One pipeline per slot: a tenant's buckets sit in 16 slots (one per shard),
            // each shard's marker with them, ahead of them.
            let mut batch = Batch::with_capacity(addresses.len().min(16) + addresses.len());
            let markers = lookup_commands(tenant, channel, addresses, &bits, |key, cmd| {
                batch.add(key, cmd);
            });
            let replies: Vec<Value> = self.with_timeout(conn.run_batch(&batch)).await?;
            return verdicts_of(tenant, channel, markers, addresses.len(), &replies, now_ms);
        }
        let pipeline = |addresses: &[Address], bits: &[u16]| {
            let mut pipe =
                redis::Pipeline::with_capacity(addresses.len().min(16) + addresses.len());
            let markers = lookup_commands(tenant, channel, addresses, bits, |_, cmd| {
                pipe.add_command(cmd);
            });
            (pipe, markers)
        };
        if addresses.len() <= LOOKUP_CHUNK {
            let (pipe, markers) = pipeline(addresses, &bits);
            let replies: Vec<Value> = self.with_timeout(pipe.query_async(&mut conn)).await?;
            return verdicts_of(tenant, channel, markers, addresses.len(), &replies, now_ms);
        }
        // Even chunks of at most LOOKUP_CHUNK, each sent (in order, on the one
        // connection) as soon as it is built and read into verdicts by its own task.
        let size = addresses
            .len()
            .div_ceil(addresses.len().div_ceil(LOOKUP_CHUNK));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (addresses, bits)) in addresses.chunks(size).zip(bits.chunks(size)).enumerate() {
            let (pipe, markers) = pipeline(addresses, bits);
            let (mut conn, tenant, n) = (conn.clone(), tenant.to_string(), addresses.len());
            tasks.spawn(async move {
                let replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(|e| {
                    crate::telemetry::metrics().redis_errors.inc();
                    unavailable(e)
                })?;
                verdicts_of(&tenant, channel, markers, n, &replies, now_ms).map(|v| (i, v))
            });
        }
        let chunks = tasks.len();
        let joined = tokio::time::timeout(self.options.timeout, async {
            let mut parts: Vec<Option<Vec<Verdict>>> = vec![None; chunks];
            while let Some(done) = tasks.join_next().await {
                let (i, verdicts) =
                    done.map_err(|e| StoreError::Protocol(format!("lookup task failed: {e}")))??;
                parts[i] = Some(verdicts);
            }
            Ok::<_, StoreError>(parts)
        })
        .await;
        let parts = match joined {
            Ok(parts) => parts?,
            Err(_) => {
                crate::telemetry::metrics().redis_errors.inc();
                return Err(StoreError::Unavailable(format!(
                    "no answer within {:?}",
                    self.options.timeout
                )));
            }
        };
        let mut verdicts = Vec::with_capacity(addresses.len());
        for part in parts {
            verdicts
                .extend(part.ok_or_else(|| StoreError::Protocol("missing lookup part".into()))?);
        }
        Ok(verdicts)
    }

    /// Set this gateway's spool marker for `tenant` on all 16 shards: field
    /// `instance` (the spool's id) of `dnd:{TENANT:S}:spooled`, value the time it was
    /// set. From then on every lookup of the tenant fails closed, through dndgate and
    /// for senders that read Redis directly, until [`Store::unmark_spooled`]. No TTL: a
    /// gateway that dies with an unapplied spool leaves its tenants failing closed
    /// until its spool is replayed.
    pub async fn mark_spooled(
        &self,
        tenant: &str,
        instance: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.on_spooled_keys(tenant, |key| {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(key).arg(instance).arg(now_ms);
            cmd
        })
        .await
    }

    /// Remove this gateway's spool marker for `tenant` from all 16 shards (the key
    /// goes when no other gateway's field is left in it).
    pub async fn unmark_spooled(&self, tenant: &str, instance: &str) -> Result<(), StoreError> {
        self.on_spooled_keys(tenant, |key| {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(key).arg(instance);
            cmd
        })
        .await
    }

    /// One command (made by `build` for a key) on each of the tenant's 16 spool-marker
    /// keys, sent as one batch.
    async fn on_spooled_keys(
        &self,
        tenant: &str,
        build: impl Fn(&str) -> redis::Cmd,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::with_capacity(16);
        for key in spooled_keys(tenant) {
            batch.add(&key, build(&key));
        }
        let mut conn = self.conn.clone();
        self.with_timeout(conn.run_batch::<i64>(&batch))
            .await
            .map(|_| ())
    }

    /// Remember a one-time token (Mailgun's signed `token`) for `ttl`, with the
    /// fingerprint of the request it came with. [`Claim::Fresh`] the first time;
    /// [`Claim::Same`] when the same token comes back with the same fingerprint (a
    /// retry of the very request, e.g. after a 503: safe, since its events are
    /// deduplicated); [`Claim::Other`] when it comes back with anything else (a replay
    /// with a forged body, or on another tenant's path).
    ///
    /// Tokens are claimed per signing key, named by `signer` (a fingerprint of the key,
    /// never the key): a provider whose key is account-wide signs several tenants'
    /// requests with it, and a token spent on one tenant's path is spent for all. The
    /// key, `dndkey:{SIGNER:S}:once:PROVIDER:TOKEN`, is outside every tenant's hash tag
    /// for that reason, and sharded by the token's SHA-1.
    pub async fn claim_once(
        &self,
        signer: &str,
        provider: &str,
        token: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let digest = Sha1::digest(token.as_bytes());
        let shard = hex::encode(&digest[..1]);
        let key = format!(
            "dndkey:{{{signer}:{}}}:once:{provider}:{token}",
            &shard[..1]
        );
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .with_timeout(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(fingerprint)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl.as_secs().max(1))
                    .query_async(&mut conn),
            )
            .await?;
        if set.is_some() {
            return Ok(Claim::Fresh);
        }
        let seen: Option<String> = self
            .with_timeout(redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await?;
        Ok(if seen.as_deref() == Some(fingerprint) {
            Claim::Same
        } else {
            Claim::Other
        })
    }

    /// Remember which (tenant, address) an unsubscribe link id names:
    /// `dndlink:{H}:ID` (H the first hex digit of the id), kept as long as links may
    /// be clicked. Idempotent: minting twice for a contact writes the same value.
    pub async fn put_link(
        &self,
        link_id: &[u8; 8],
        tenant: &str,
        address: &Address,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(
            redis::cmd("SET")
                .arg(link_key(link_id))
                .arg(format!("{tenant}|{}", address.as_str()))
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// The (tenant, address) a link id names, if it was minted here.
    pub async fn get_link(
        &self,
        link_id: &[u8; 8],
    ) -> Result<Option<(String, Address)>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = self
            .with_timeout(
                redis::cmd("GET")
                    .arg(link_key(link_id))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(value.and_then(|v| {
            let (tenant, address) = v.split_once('|')?;
            Some((tenant.to_string(), Address::from_store(address.to_string())))
        }))
    }

    /// The stored record of one scope of `address`, whatever its state.
    pub async fn record(
        &self,
        tenant: &str,
        scope: Scope,
        address: &Address,
    ) -> Result<Option<Record>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = self
            .with_timeout(
                redis::cmd("HGET")
                    .arg(keys(tenant, address).bucket)
                    .arg(field(scope, address))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(value.as_deref().map(Record::read))
    }

    /// The contact `address` is linked to, if any.
    pub async fn contact_of(
        &self,
        tenant: &str,
        address: &Address,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(
            redis::cmd("HGET")
                .arg(keys(tenant, address).bucket)
                .arg(link_field(address))
                .query_async(&mut conn),
        )
        .await
    }

    /// The addresses linked to `contact`, sorted.
    pub async fn contact_addresses(
        &self,
        tenant: &str,
        contact: &str,
    ) -> Result<Vec<Address>, StoreError> {
        let mut conn = self.conn.clone();
        let mut members: Vec<String> = self
            .with_timeout(
                redis::cmd("SMEMBERS")
                    .arg(contact_key(tenant, contact))
                    .query_async(&mut conn),
            )
            .await?;
        members.sort();
        Ok(members.into_iter().map(Address::from_store).collect())
    }

    /// Make `addresses` exactly the addresses of `contact`: each is linked to it (and
    /// unlinked from any other contact), and addresses it had before but not now are
    /// unlinked. Several keys in several slots: not atomic, but idempotent, so a failed
    /// call is repaired by repeating it.
    pub async fn link_contact(
        &self,
        tenant: &str,
        contact: &str,
        addresses: &[Address],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let before = self.contact_addresses(tenant, contact).await?;
        for address in addresses {
            if let Some(other) = self.contact_of(tenant, address).await?
                && other != contact
            {
                self.with_timeout(
                    redis::cmd("SREM")
                        .arg(contact_key(tenant, &other))
                        .arg(address.as_str())
                        .query_async::<i64>(&mut conn),
                )
                .await?;
            }
            self.with_timeout(
                redis::cmd("HSET")
                    .arg(keys(tenant, address).bucket)
                    .arg(link_field(address))
                    .arg(contact)
                    .query_async::<i64>(&mut conn),
            )
            .await?;
        }
        for gone in before.iter().filter(|a| !addresses.contains(a)) {
            self.with_timeout(
                redis::cmd("HDEL")
                    .arg(keys(tenant, gone).bucket)
                    .arg(link_field(gone))
                    .query_async::<i64>(&mut conn),
            )
            .await?;
        }
        let key = contact_key(tenant, contact);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key);
        if !addresses.is_empty() {
            pipe.sadd(
                &key,
                addresses.iter().map(Address::as_str).collect::<Vec<_>>(),
            );
        }
        self.with_timeout(pipe.query_async::<()>(&mut conn)).await
    }

    /// One page of a tenant's records for export: from `cursor` (start with 0) to the
    /// returned cursor (0 when done). Records are `(scope, address, record)`; cleared
    /// records are included (they carry the opt-in time). SCAN may return a bucket on
    /// two pages: [`Store::records_page`] skips those.
    pub async fn export_page(
        &self,
        tenant: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<(Scope, Address, Record)>), StoreError> {
        self.records_page(tenant, cursor, &mut std::collections::HashSet::new())
            .await
    }

    /// [`Store::export_page`], reading only the buckets not in `seen` and adding them
    /// to it, so a walk from cursor 0 back to 0 yields each record once. `seen` holds
    /// bucket keys, at most 16 x 4,096 of them, however many records there are.
    pub async fn records_page(
        &self,
        tenant: &str,
        cursor: u64,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<(u64, Vec<(Scope, Address, Record)>), StoreError> {
        let mut conn = self.conn.clone();
        // Buckets are dnd:{TENANT:S}:BBB with S and BBB hex digits; nothing else matches.
        let pattern = format!("dnd:{{{tenant}:?}}:???");
        // On a cluster the cursor walks every primary in turn.
        let (next, bucket_keys): (u64, Vec<String>) = self
            .with_timeout(conn.scan_page(cursor, &pattern, 1000))
            .await?;
        let fresh: Vec<String> = bucket_keys
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect();
        let mut batch = Batch::with_capacity(fresh.len());
        for key in &fresh {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(key);
            batch.add(key, cmd);
        }
        let buckets: Vec<Vec<(String, String)>> = self.with_timeout(conn.run_batch(&batch)).await?;
        let mut records = Vec::new();
        for (field, value) in buckets.into_iter().flatten() {
            let Some((scope, address)) = field.split_once(':') else {
                continue;
            };
            let (Ok(scope), Some(record)) = (scope.parse::<Scope>(), Record::parse(&value)) else {
                continue; // link fields, and values a newer version wrote
            };
            records.push((scope, Address::from_store(address.to_string()), record));
        }
        Ok((next, records))
    }

    /// Every record of the tenant (cleared ones too), each once, to `visit`.
    pub async fn each_record(
        &self,
        tenant: &str,
        mut visit: impl FnMut(Scope, &Record),
    ) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, records) = self.records_page(tenant, cursor, &mut seen).await?;
            for (scope, _, record) in &records {
                visit(*scope, record);
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The audit entries of the shard that holds `address`, oldest first, filtered to
    /// that address (at most `count` scanned from the newest).
    pub async fn history(
        &self,
        tenant: &str,
        address: &Address,
        count: usize,
    ) -> Result<Vec<Vec<(String, String)>>, StoreError> {
        Ok(self.history_window(tenant, address, count).await?.0)
    }

    /// [`Store::history`], and where its window starts: the time (ms, Redis's clock)
    /// of the oldest entry it looked at, which is the oldest the shard still keeps
    /// (`audit_retention` trims older ones) unless `count` stopped the scan first.
    /// `None` when the shard keeps nothing.
    pub async fn history_window(
        &self,
        tenant: &str,
        address: &Address,
        count: usize,
    ) -> Result<(Vec<Vec<(String, String)>>, Option<i64>), StoreError> {
        let keys = keys(tenant, address);
        let mut conn = self.conn.clone();
        let entries: Vec<(String, Vec<(String, String)>)> = self
            .with_timeout(
                redis::cmd("XREVRANGE")
                    .arg(&keys.audit)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn),
            )
            .await?;
        let window_start = entries.last().and_then(|(id, _)| outbox::id_ms(id));
        let mut mine: Vec<Vec<(String, String)>> = entries
            .into_iter()
            .filter(|(_, fields)| {
                fields
                    .iter()
                    .any(|(k, v)| k == "address" && v == address.as_str())
            })
            .map(|(id, mut fields)| {
                fields.insert(0, ("id".to_string(), id));
                fields
            })
            .collect();
        mine.reverse();
        Ok((mine, window_start))
    }

    /// The tenant's newest audit entries across its 16 shards, newest first (by the
    /// entry id's time, Redis's clock at writing): at most `count`, each as its id and
    /// fields. For the console's overview.
    pub async fn recent_audit(
        &self,
        tenant: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let keys = audit_keys(tenant);
        let mut batch = Batch::with_capacity(keys.len());
        for key in &keys {
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(key).arg("+").arg("-").arg("COUNT").arg(count);
            batch.add(key, cmd);
        }
        let mut conn = self.conn.clone();
        let shards: Vec<Vec<StreamEntry>> = self.with_timeout(conn.run_batch(&batch)).await?;
        let order = |id: &str| {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            (
                ms.parse::<u64>().unwrap_or(0),
                seq.parse::<u64>().unwrap_or(0),
            )
        };
        let mut all: Vec<_> = shards.into_iter().flatten().collect();
        all.sort_by_key(|(id, _)| std::cmp::Reverse(order(id)));
        all.truncate(count);
        Ok(all)
    }

    /// Keep a console session: `value` under the digest of its id, for `ttl`.
    pub async fn put_session(
        &self,
        digest: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(
            redis::cmd("SET")
                .arg(session_key(digest))
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// The console session kept under `digest`, if it has not expired or ended.
    pub async fn session(&self, digest: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(
            redis::cmd("GET")
                .arg(session_key(digest))
                .query_async(&mut conn),
        )
        .await
    }

    /// End the console session kept under `digest` (sign-out).
    pub async fn drop_session(&self, digest: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.with_timeout(
            redis::cmd("DEL")
                .arg(session_key(digest))
                .query_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ())
    }
}

/// The verdict of owned stored values (the unit tests' form of [`decide`]).
#[cfg(test)]
fn verdict(channel: Channel, own: Option<String>, all: Option<String>, now_ms: i64) -> Verdict {
    decide(channel, own.as_deref(), all.as_deref(), now_ms)
}

/// The verdict of the channel's stored value and the `all` one, read in place.
fn decide(channel: Channel, own: Option<&str>, all: Option<&str>, now_ms: i64) -> Verdict {
    let own = own.map(RecordView::read);
    let all = all.map(RecordView::read);
    let candidates = [(Scope::Channel(channel), own), (Scope::All, all)];
    let blocks = |r: &Option<RecordView>, f: fn(&RecordView, i64) -> bool| {
        r.as_ref().is_some_and(|r| f(r, now_ms))
    };
    // The strongest record decides: one that blocks service messages too, else a
    // marketing-only one, else whatever is stored.
    let deciding = candidates
        .iter()
        .find(|(_, r)| blocks(r, view_blocks_service_at))
        .or_else(|| candidates.iter().find(|(_, r)| blocks(r, view_blocks_at)))
        .or_else(|| candidates.iter().find(|(_, r)| r.is_some()));
    let Some((scope, record)) = deciding else {
        return Verdict {
            blocked: false,
            marketing_only: false,
            record: None,
            scope: None,
        };
    };
    let blocked = blocks(record, view_blocks_at);
    Verdict {
        blocked,
        marketing_only: blocked && !blocks(record, view_blocks_service_at),
        record: record.map(RecordView::to_record),
        scope: Some(*scope),
    }
}

/// The text of one field in an HMGET reply: `None` for a missing field.
fn reply_text(v: &Value) -> Result<Option<&str>, StoreError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => std::str::from_utf8(b)
            .map(Some)
            .map_err(|e| StoreError::Protocol(format!("HMGET reply: {e}"))),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::VerbatimString { text, .. } => Ok(Some(text)),
        other => Err(StoreError::Protocol(format!(
            "HMGET reply: unexpected {other:?}"
        ))),
    }
}

/// The verdict of one lookup's HMGET reply (the channel's record, the `all` record).
fn verdict_of_reply(channel: Channel, reply: &Value, now_ms: i64) -> Result<Verdict, StoreError> {
    let Value::Array(items) = reply else {
        return Err(StoreError::Protocol(format!(
            "HMGET reply: not an array: {reply:?}"
        )));
    };
    let [own, all] = items.as_slice() else {
        return Err(StoreError::Protocol(format!(
            "HMGET reply: {} values for 2 fields",
            items.len()
        )));
    };
    Ok(decide(channel, reply_text(own)?, reply_text(all)?, now_ms))
}

/// The verdicts of a lookup pipeline's replies: `markers` EXISTS replies (a spool
/// marker on any fails the whole lookup), then one HMGET reply per address.
fn verdicts_of(
    tenant: &str,
    channel: Channel,
    markers: usize,
    addresses: usize,
    replies: &[Value],
    now_ms: i64,
) -> Result<Vec<Verdict>, StoreError> {
    if replies.len() != markers + addresses {
        return Err(StoreError::Protocol(format!(
            "{} replies for {} lookups",
            replies.len(),
            addresses
        )));
    }
    let (marks, records) = replies.split_at(markers);
    if marks.iter().any(|m| !matches!(m, Value::Int(0))) {
        return Err(StoreError::Spooled(tenant.to_string()));
    }
    records
        .iter()
        .map(|reply| verdict_of_reply(channel, reply, now_ms))
        .collect()
}

/// The commands of a lookup of `addresses` (with their [`address_bits`]), each with
/// the key that routes it: first one `EXISTS` of the spool marker per shard the
/// addresses fall in, then one `HMGET BUCKET CHANNEL:ADDRESS all:ADDRESS` per address.
/// `add` gets each command; returns how many markers come first.
fn lookup_commands(
    tenant: &str,
    channel: Channel,
    addresses: &[Address],
    bits: &[u16],
    mut add: impl FnMut(&str, redis::Cmd),
) -> usize {
    let shards = bits.iter().fold(0u16, |s, b| s | 1 << (b >> 12));
    let mut key = String::with_capacity(tenant.len() + 16);
    for shard in 0..16u16 {
        if shards & (1 << shard) != 0 {
            key.clear();
            push_shard_prefix(&mut key, tenant, shard << 12);
            key.push_str("spooled");
            let mut cmd = redis::Cmd::with_capacity(2, 6 + key.len());
            cmd.arg("EXISTS").arg(key.as_str());
            add(&key, cmd);
        }
    }
    let scope = Scope::Channel(channel).as_str();
    let mut own = String::with_capacity(64);
    let mut all = String::with_capacity(64);
    for (address, bits) in addresses.iter().zip(bits) {
        key.clear();
        push_bucket_key(&mut key, tenant, *bits);
        own.clear();
        own.push_str(scope);
        own.push(':');
        own.push_str(address.as_str());
        all.clear();
        all.push_str("all:");
        all.push_str(address.as_str());
        let mut cmd = redis::Cmd::with_capacity(4, 5 + key.len() + own.len() + all.len());
        cmd.arg("HMGET")
            .arg(key.as_str())
            .arg(own.as_str())
            .arg(all.as_str());
        add(&key, cmd);
    }
    shards.count_ones() as usize
}

fn parse_applied(reply: Value, scopes: &[Scope]) -> Result<Applied, StoreError> {
    let bad = |what: &str| StoreError::Protocol(format!("apply script: {what}"));
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    if let [Value::BulkString(b)] = items.as_slice()
        && b.as_slice() == b"duplicate"
    {
        return Ok(Applied::Duplicate);
    }
    // The script's call failed for this change alone (a Redis error on one of its
    // keys): as a failed call was before group commit, Redis is not usable for it.
    if let [Value::BulkString(b), message] = items.as_slice()
        && b.as_slice() == b"error"
    {
        crate::telemetry::metrics().redis_errors.inc();
        let message = match message {
            Value::BulkString(m) => String::from_utf8_lossy(m).into_owned(),
            other => format!("{other:?}"),
        };
        return Err(StoreError::Unavailable(message));
    }
    if items.len() != scopes.len() {
        return Err(bad("one result per scope expected"));
    }
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    items
        .iter()
        .zip(scopes)
        .map(|(item, scope)| {
            let Value::Array(parts) = item else {
                return Err(bad("result is not an array"));
            };
            let [_, outcome, after] = parts.as_slice() else {
                return Err(bad("result has not three parts"));
            };
            let outcome = text(outcome)
                .as_deref()
                .and_then(Outcome::from_name)
                .ok_or_else(|| bad("unknown outcome"))?;
            let after = text(after).as_deref().and_then(Record::parse);
            Ok((*scope, outcome, after))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let a = Address::parse(Channel::Sms, "+14155551234").unwrap();
        let k = keys("acme", &a);
        // sha1("+14155551234") starts with these four hex digits; senders in other
        // languages compute the same.
        let h = hex::encode(Sha1::digest(b"+14155551234"));
        assert_eq!(k.bucket, format!("dnd:{{acme:{}}}:{}", &h[..1], &h[1..4]));
        assert_eq!(k.audit, format!("dnd:{{acme:{}}}:audit", &h[..1]));
        assert_eq!(k.shard(), usize::from_str_radix(&h[..1], 16).unwrap());
        assert_eq!(field(Scope::All, &a), "all:+14155551234");
        assert_eq!(bucket_key("acme", &a), k.bucket);
    }

    #[test]
    fn record_round_trip_and_blocking() {
        let table = [
            (
                "P|100||keyword:STOP|twilio:SM1",
                State::Permanent,
                None,
                true,
            ),
            (
                "T|100|200|twilio:30003|twilio:SM2",
                State::Temporary,
                Some(200),
                true,
            ),
            (
                "T|100|150|twilio:30003|twilio:SM2",
                State::Temporary,
                Some(150),
                false,
            ),
            (
                "C|100||keyword:START|twilio:SM3",
                State::Cleared,
                None,
                false,
            ),
        ];
        for (value, state, expires, blocks_at_150) in table {
            let r = Record::parse(value).unwrap();
            assert_eq!(r.state, state, "{value}");
            assert_eq!(r.expires_ms, expires, "{value}");
            assert_eq!(r.blocks_at(150), blocks_at_150, "{value}");
        }
        assert_eq!(Record::parse("X|1||r|s"), None);
        assert_eq!(Record::parse("P|x||r|s"), None);
        let r = Record::parse("P|1||reason|source|with|bars").unwrap();
        assert_eq!(r.source, "source|with|bars");
    }

    #[test]
    fn verdict_prefers_the_blocking_record() {
        let v = verdict(
            Channel::Sms,
            Some("C|5||keyword:START|twilio:SM1".into()),
            Some("P|1||unsubscribe|link".into()),
            10,
        );
        assert!(v.blocked);
        assert_eq!(v.scope, Some(Scope::All));
        let v = verdict(Channel::Sms, None, None, 10);
        assert!(!v.blocked);
        assert_eq!(v.record, None);
        // Marketing-only: blocked (a sender that does not say is sending marketing),
        // and flagged so a service message may go; a full record elsewhere wins.
        let m = "M|1||meta:131050|meta";
        let v = verdict(Channel::Whatsapp, Some(m.into()), None, 10);
        assert!(v.blocked && v.marketing_only);
        let v = verdict(
            Channel::Whatsapp,
            Some(m.into()),
            Some("P|1||unsubscribe|link".into()),
            10,
        );
        assert!(v.blocked && !v.marketing_only);
        assert_eq!(v.scope, Some(Scope::All));
    }
}

mod durability;
pub use durability::Durability;

mod outbox;
pub use outbox::{DeadLetter, Dying, GroupState, Health, OutShard, Retry, id_ms};

impl Store {
    /// Audit the temporary records of `tenant`'s shard `shard` that ran out by
    /// `now_ms` (at most `limit` of them, oldest first), each as an `expired` entry,
    /// once, and drop them. How many were audited.
    pub async fn sweep_expiries(
        &self,
        tenant: &str,
        shard: u8,
        now_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let tag = format!("{tenant}:{:x}", shard & 0xf);
        let index = format!("dnd:{{{tag}}}:expiring");
        let audit = format!("dnd:{{{tag}}}:audit");
        let mut conn = self.conn.clone();
        let members: Vec<String> = self
            .with_timeout(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now_ms)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit.max(1))
                    .query_async(&mut conn),
            )
            .await?;
        let script = Script::new(EXPIRE_LUA);
        let mut audited = 0;
        for member in members {
            let address = member
                .split_once('\n')
                .and_then(|(field, _)| field.split_once(':'))
                .map(|(_, address)| Address::from_store(address.to_string()));
            let bucket = match &address {
                Some(a) => keys(tenant, a).bucket,
                // Not a member this version wrote: the script drops it.
                None => format!("dnd:{{{tag}}}:000"),
            };
            let mut inv = script.key(bucket);
            inv.key(&audit).key(&index).arg(&member).arg(tenant);
            let done: i64 = self.with_timeout(inv.invoke_async(&mut conn)).await?;
            if done == 1 {
                audited += 1;
                self.applied[usize::from(shard & 0xf)].send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        Ok(audited)
    }
}
