//! The audit stream as a contract for automations: typed entries, and a consumer that
//! reads every shard stream of a tenant through a Redis consumer group.
//!
//! The apply script appends one entry per change, refused change, superseded change,
//! possible opt-out and help request to the audit stream of the address's shard
//! (`docs/AUDIT.md` documents the format for consumers in any language). This module
//! is the Rust side of that contract:
//!
//! - [`AuditEntry`] parses one stream entry and answers the questions an automation
//!   asks ([`AuditEntry::dnd_enabled`], [`AuditEntry::dnd_disabled`],
//!   [`AuditEntry::changed`]).
//! - [`AuditConsumer`] reads the tenant's 16 shard streams with a consumer group:
//!   at-least-once delivery, its own pending entries first after a restart, explicit
//!   acknowledgement, and entries it cannot parse handed back with their ids.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dndgate::audit::AuditError> {
//! use std::time::Duration;
//! use dndgate::audit::{AuditConsumer, ConsumerOptions};
//!
//! let mut audit = AuditConsumer::connect(
//!     "redis://127.0.0.1:6379/", "acme", "crm-tags", "worker-1", ConsumerOptions::default(),
//! ).await?;
//! loop {
//!     let batch = audit.next_batch(100, Duration::from_secs(5)).await?;
//!     let mut done = Vec::new();
//!     for (stream, item) in batch {
//!         match item {
//!             Ok(entry) if entry.dnd_enabled() => { /* tag the contact */ done.push((stream, entry.id)) }
//!             Ok(entry) => done.push((stream, entry.id)),
//!             Err(bad) => { eprintln!("{bad}"); done.push((stream, bad.id)) }
//!         }
//!     }
//!     audit.ack(&done).await?;
//! }
//! # }
//! ```
//!
//! Architecture invariant: only the store knows the key layout, so the stream names
//! come from [`store::audit_keys`](crate::store::audit_keys) and nowhere else.

use std::time::{Duration, Instant};

use redis::Value;

use crate::event::Scope;
use crate::event::valid_tenant_id;
use crate::store::{Batch, ConnectOptions, Connection, Outcome, Record, StoreError, audit_keys};

/// How often cluster mode polls the shards while it waits for new entries: a blocking
/// read cannot span keys in different slots, so it polls instead.
pub const CLUSTER_POLL: Duration = Duration::from_millis(100);

/// One audit entry, typed. Field meanings are in `docs/AUDIT.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The stream entry id (`MS-SEQ`), unique within its shard stream; acknowledge
    /// with it.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The record's scope: one channel, or `all`.
    pub scope: Scope,
    /// The normalised address.
    pub address: String,
    /// What the event asked for: `block_permanent`, `block_temporary`, `unblock`,
    /// `reachable`, `clear`, `review` or `help`. Kept as text so an entry written by
    /// a newer gateway with a new action still parses.
    pub action: String,
    /// What happened to the record.
    pub outcome: Outcome,
    /// The record before the event; `None` when there was none.
    pub before: Option<Record>,
    /// The record after the event; equal to `before` when nothing changed
    /// (superseded, refused, kept_permanent, review, help).
    pub after: Option<Record>,
    /// Why, e.g. `keyword:STOP`, `twilio:30003`, `escalated:twilio:30003`.
    pub reason: String,
    /// Who told us: a provider's name, `operator` or `import`. Text, for the same
    /// reason as `action`: providers will be added.
    pub provider: String,
    /// The provider's event id (or the operator change's generated id).
    pub event_id: String,
    /// When the event happened (ms since the epoch); this orders changes.
    pub event_ms: i64,
    /// When the gateway received it (ms since the epoch).
    pub received_ms: i64,
    /// Who made an operator change.
    pub actor: Option<String>,
    /// Consent evidence given with an operator change.
    pub evidence: Option<serde_json::Value>,
    /// The contact an `all`-scope change reached this address through.
    pub contact: Option<String>,
}

/// Why an audit entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A required field is absent.
    #[error("audit entry has no {0:?} field")]
    Missing(&'static str),
    /// A field is present but its value is not what the contract says.
    #[error("audit entry field {field:?} is not valid: {value:?}")]
    Bad {
        /// The field's name.
        field: &'static str,
        /// The value found (lossily decoded when it was not UTF-8).
        value: String,
    },
    /// The entry was trimmed from the stream (for age) while it was still pending:
    /// only its id is left. Acknowledge it; it cannot be read any more.
    #[error("audit entry was trimmed from the stream before it was acknowledged")]
    Trimmed,
}

/// An entry the consumer delivered but could not parse. Automations log it and
/// acknowledge it (with [`BadEntry::id`]) so it does not come back for ever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {id}: {error}")]
pub struct BadEntry {
    /// The stream entry id, to acknowledge.
    pub id: String,
    /// What is wrong with it.
    pub error: EntryError,
    /// Its fields as found (lossily decoded), for the log.
    pub fields: Vec<(String, String)>,
}

/// One delivered entry: the stream it came from, and the entry or why it is unreadable.
pub type Delivery = (String, Result<AuditEntry, BadEntry>);

impl AuditEntry {
    /// Parse the fields of the stream entry `id`. Unknown fields are ignored, so a
    /// newer gateway may add fields without breaking older consumers. Also reads the
    /// entries of [`Store::history`](crate::store::Store::history), whose first pair
    /// is the id: pass `&fields[0].1` and `&fields[1..]`.
    pub fn parse(id: &str, fields: &[(String, String)]) -> Result<AuditEntry, EntryError> {
        let get = |name: &'static str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let need = |name: &'static str| get(name).ok_or(EntryError::Missing(name));
        let bad = |field: &'static str, value: &str| EntryError::Bad {
            field,
            value: value.to_string(),
        };
        let number = |name: &'static str| -> Result<i64, EntryError> {
            let v = need(name)?;
            v.parse().map_err(|_| bad(name, v))
        };
        // Empty means "no record"; anything else must be a record this version reads.
        let record = |name: &'static str| -> Result<Option<Record>, EntryError> {
            match need(name)? {
                "" => Ok(None),
                v => Record::parse(v).map(Some).ok_or_else(|| bad(name, v)),
            }
        };
        let parse_scope = |v: &str| v.parse().map_err(|_| bad("scope", v));
        let parse_outcome = |v: &str| Outcome::from_name(v).ok_or_else(|| bad("outcome", v));
        // Fields are checked in the order the contract lists them, so an error names
        // the first thing wrong.
        Ok(AuditEntry {
            id: id.to_string(),
            tenant: need("tenant")?.to_string(),
            scope: parse_scope(need("scope")?)?,
            address: need("address")?.to_string(),
            action: need("action")?.to_string(),
            outcome: parse_outcome(need("outcome")?)?,
            before: record("before")?,
            after: record("after")?,
            reason: need("reason")?.to_string(),
            provider: need("provider")?.to_string(),
            event_id: need("event_id")?.to_string(),
            event_ms: number("event_ms")?,
            received_ms: number("received_ms")?,
            actor: get("actor").map(str::to_string),
            evidence: get("evidence")
                .map(|v| serde_json::from_str(v).map_err(|_| bad("evidence", v)))
                .transpose()?,
            contact: get("contact").map(str::to_string),
        })
    }

    /// Did the record block sending before the event, judged at the event's time?
    pub fn blocked_before(&self) -> bool {
        self.before
            .as_ref()
            .is_some_and(|r| r.blocks_at(self.event_ms))
    }

    /// Does the record block sending after the event, judged at the event's time?
    pub fn blocked_after(&self) -> bool {
        self.after
            .as_ref()
            .is_some_and(|r| r.blocks_at(self.event_ms))
    }

    /// Did this change put the contact on DND on [`AuditEntry::scope`]: the record
    /// blocks after the event and did not before? Judged at the event's time, so a
    /// replayed entry gives the same answer. A temporary block ends at
    /// `after.expires_ms` without another entry: schedule the reverse action then.
    pub fn dnd_enabled(&self) -> bool {
        !self.blocked_before() && self.blocked_after()
    }

    /// Did this change take the contact off DND on [`AuditEntry::scope`]: the record
    /// blocked before the event and does not after?
    pub fn dnd_disabled(&self) -> bool {
        self.blocked_before() && !self.blocked_after()
    }

    /// Was the record rewritten (outcome `applied` or `escalated`)? True also for a
    /// change that leaves the blocking state as it was, e.g. a temporary block
    /// escalated to permanent.
    pub fn changed(&self) -> bool {
        matches!(self.outcome, Outcome::Applied | Outcome::Escalated)
    }
}

/// Where a new consumer group starts reading. An existing group keeps its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Every entry still in the streams (`XGROUP CREATE ... 0`): for an automation
    /// that must see the history the streams still hold.
    Beginning,
    /// Only entries appended after the group is created (`XGROUP CREATE ... $`).
    #[default]
    New,
}

/// How a consumer connects and reads.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Where a group that does not exist yet starts.
    pub start: StartFrom,
    /// Read each shard with its own command (pipelined), as Redis Cluster requires
    /// because the shards live in different slots, and wait by polling every
    /// [`CLUSTER_POLL`]. Off: one `XREADGROUP` over all 16 streams that blocks until
    /// any has an entry. A cluster URL (`redis+cluster://`) turns it on.
    pub cluster: bool,
    /// Longest wait for Redis on top of a read's own blocking time.
    pub timeout: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> ConsumerOptions {
        ConsumerOptions {
            start: StartFrom::New,
            cluster: false,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Why a consumer call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Redis did not answer, or answered something unexpected. Entries delivered by a
    /// failed read are not lost: the next batch starts with this consumer's pending
    /// entries.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant id is not valid (it would not name the tenant's streams).
    #[error("{0:?} is not a tenant id")]
    Tenant(String),
    /// An acknowledgement named a stream that is not one of the tenant's audit streams.
    #[error("{0:?} is not an audit stream of this tenant")]
    UnknownStream(String),
}

/// A consumer of a tenant's audit streams in one consumer group.
///
/// Delivery is at least once: an entry stays in the group's pending list until it is
/// acknowledged, and a consumer that restarts under the same name first re-reads its
/// own pending entries (id `0`), then new ones (`>`). Entries of one address are all
/// in one shard stream, so they arrive in the order they were applied; entries of
/// different addresses have no order between them (compare `event_ms`).
///
/// The consumer holds its own connection: a blocking read occupies a connection for
/// its whole wait, which would stall every other command sharing it.
pub struct AuditConsumer {
    conn: Connection,
    streams: Vec<String>,
    group: String,
    consumer: String,
    options: ConsumerOptions,
    /// Per shard, where the re-read of this consumer's pending entries stands: the
    /// last id returned (`0` to start), or `None` once the shard's pending list has
    /// been read through. Walking with a cursor means an entry the automation leaves
    /// unacknowledged does not stop the recovery from reaching the rest.
    pending_cursor: Vec<Option<String>>,
    /// Set while a read is in flight: still set at the next call means the caller
    /// dropped that call's future (a timeout, a `select!`), and whatever Redis had
    /// delivered to it is in our pending list unseen.
    reading: bool,
}

impl AuditConsumer {
    /// Connect to the Redis at `url` and join (creating it where needed, on every
    /// shard) the consumer group `group` of `tenant`'s audit streams as `consumer`.
    ///
    /// A consumer name is an identity: reuse the same name after a restart to get
    /// back the entries read but not acknowledged before it.
    pub async fn connect(
        url: &str,
        tenant: &str,
        group: &str,
        consumer: &str,
        options: ConsumerOptions,
    ) -> Result<AuditConsumer, AuditError> {
        if !valid_tenant_id(tenant) {
            return Err(AuditError::Tenant(tenant.to_string()));
        }
        // No response timeout on the connection: a blocking read may wait longer than
        // any fixed one. Each call gets its own deadline instead (`AuditConsumer::run`).
        let conn = Connection::open(
            url,
            ConnectOptions {
                connect_timeout: options.timeout,
                response_timeout: None,
            },
        )
        .map_err(unavailable)?;
        let mut options = options;
        // A cluster URL forces per-shard reads: one command cannot name two slots.
        options.cluster |= conn.is_cluster();
        let streams = audit_keys(tenant);
        let mut consumer = AuditConsumer {
            conn,
            pending_cursor: vec![Some("0".into()); streams.len()],
            streams,
            group: group.to_string(),
            consumer: consumer.to_string(),
            options,
            reading: false,
        };
        consumer.create_groups(consumer.options.start).await?;
        Ok(consumer)
    }

    /// The tenant's audit streams this consumer reads, in shard order.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The next entries for this consumer: first its own pending entries (delivered
    /// before but never acknowledged, e.g. before a crash), then new ones, waiting up
    /// to `block` for one to arrive (`Duration::ZERO`: do not wait). At most `count`
    /// entries per shard, so up to 16 × `count` in one batch. An empty batch means
    /// nothing arrived in time.
    ///
    /// Every delivered entry stays pending until [`AuditConsumer::ack`], unreadable
    /// ones included: they come back as `Err(BadEntry)` with their id.
    ///
    /// Dropping the returned future (a timeout, a `select!`) loses nothing: the next
    /// call re-reads the pending list first. Redis keeps a dropped blocking read
    /// waiting, though, and the connection answers nothing else until it ends, so
    /// keep `block` short when calls may be dropped.
    pub async fn next_batch(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, AuditError> {
        let count = count.max(1);
        if self.reading {
            self.pending_cursor.fill(Some("0".into()));
        }
        self.reading = true;
        let result = match self.read(count, block).await {
            // The group was lost with its stream (Redis restarted without persistence,
            // or the keys were deleted): every entry now in the stream is newer than
            // the loss, so recreate it from the beginning and read again.
            Err(AuditError::Store(e)) if e.to_string().contains("NOGROUP") => {
                self.create_groups(StartFrom::Beginning).await?;
                self.read(count, block).await
            }
            other => other,
        };
        if result.is_err() {
            // A read that failed in flight may have delivered entries we never saw:
            // they are in our pending list, so walk it again next time.
            self.pending_cursor.fill(Some("0".into()));
        }
        self.reading = false;
        result
    }

    /// Acknowledge handled entries, given as `(stream, id)` as delivered. Returns how
    /// many were still pending (an entry acknowledged twice counts once).
    pub async fn ack(&mut self, handled: &[(String, String)]) -> Result<u64, AuditError> {
        if handled.is_empty() {
            return Ok(0);
        }
        if let Some((stream, _)) = handled.iter().find(|(s, _)| !self.streams.contains(s)) {
            return Err(AuditError::UnknownStream(stream.clone()));
        }
        // One XACK per shard, all in one batch (one pipeline, or one per slot on a
        // cluster).
        let mut batch = Batch::new();
        for stream in &self.streams {
            let ids: Vec<&str> = handled
                .iter()
                .filter(|(s, _)| s == stream)
                .map(|(_, id)| id.as_str())
                .collect();
            if !ids.is_empty() {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(stream).arg(&self.group).arg(ids);
                batch.add(stream, cmd);
            }
        }
        let counts: Vec<u64> = self.run(&batch, Duration::ZERO).await?;
        Ok(counts.into_iter().sum())
    }

    /// How many entries of the group, across every shard and every consumer, are
    /// delivered but not yet acknowledged: a backlog to alert on.
    pub async fn pending(&mut self) -> Result<u64, AuditError> {
        let mut batch = Batch::new();
        for stream in &self.streams {
            let mut cmd = redis::cmd("XPENDING");
            cmd.arg(stream).arg(&self.group);
            batch.add(stream, cmd);
        }
        // XPENDING's summary form: [count, smallest id, greatest id, per consumer].
        let summaries: Vec<(u64, Value, Value, Value)> = self.run(&batch, Duration::ZERO).await?;
        Ok(summaries.iter().map(|s| s.0).sum())
    }

    /// Take over entries that other consumers of the group read but left
    /// unacknowledged for at least `min_idle` (a consumer that crashed and will not
    /// come back under its name): up to `count` per shard, returned like a batch and
    /// pending on this consumer from now on. Entries trimmed meanwhile are dropped
    /// from the pending list by Redis and not returned.
    pub async fn claim_stale(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, AuditError> {
        let mut batch = Batch::new();
        for stream in &self.streams {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(min_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(count.max(1));
            batch.add(stream, cmd);
        }
        let replies: Vec<Value> = self.run(&batch, Duration::ZERO).await?;
        let mut out = Vec::new();
        for (stream, reply) in self.streams.iter().zip(replies) {
            // [next cursor, entries, deleted ids]
            let Value::Array(parts) = reply else {
                return Err(protocol("XAUTOCLAIM reply is not an array"));
            };
            let entries = parts
                .into_iter()
                .nth(1)
                .ok_or_else(|| protocol("XAUTOCLAIM reply has no entries"))?;
            for (id, fields) in stream_entries(entries)? {
                out.push((stream.clone(), entry(id, fields)));
            }
        }
        Ok(out)
    }

    /// Create the group on every shard, each from `start`; a group that exists
    /// (`BUSYGROUP`) keeps its position. MKSTREAM creates the shards no event has
    /// written to yet, so the group is in place before their first entry.
    async fn create_groups(&mut self, start: StartFrom) -> Result<(), AuditError> {
        let id = match start {
            StartFrom::Beginning => "0",
            StartFrom::New => "$",
        };
        for stream in self.streams.clone() {
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(&stream)
                .arg(&self.group)
                .arg(id)
                .arg("MKSTREAM");
            let mut conn = self.conn.clone();
            match tokio::time::timeout(self.options.timeout, cmd.query_async::<()>(&mut conn)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.code() == Some("BUSYGROUP") => {}
                Ok(Err(e)) => return Err(unavailable(e).into()),
                Err(_) => return Err(self.late().into()),
            }
        }
        Ok(())
    }

    /// One read: this consumer's pending entries while any shard has some left,
    /// otherwise new entries.
    async fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Delivery>, AuditError> {
        let recovering: Vec<(usize, String)> = self
            .pending_cursor
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.clone().map(|c| (i, c)))
            .collect();
        if !recovering.is_empty() {
            let found = self.read_once(&recovering, count, None).await?;
            for (shard, _) in &recovering {
                let last = found
                    .iter()
                    .rev()
                    .find(|(s, _)| s == shard)
                    .map(|(_, (_, item))| delivered_id(item).to_string());
                // Nothing after the cursor: this shard's pending list is read through.
                self.pending_cursor[*shard] = last;
            }
            if !found.is_empty() {
                return Ok(found.into_iter().map(|(_, d)| d).collect());
            }
        }
        let all_new: Vec<(usize, String)> =
            (0..self.streams.len()).map(|i| (i, ">".into())).collect();
        if !self.options.cluster {
            let found = self.read_once(&all_new, count, Some(block)).await?;
            return Ok(found.into_iter().map(|(_, d)| d).collect());
        }
        // Cluster: no command may name two shards, and a blocking read of one shard
        // would miss the others, so poll them all until something arrives.
        let deadline = Instant::now() + block;
        loop {
            let found = self.read_once(&all_new, count, None).await?;
            let now = Instant::now();
            if !found.is_empty() || now >= deadline {
                return Ok(found.into_iter().map(|(_, d)| d).collect());
            }
            tokio::time::sleep(CLUSTER_POLL.min(deadline - now)).await;
        }
    }

    /// Read `(shard, id)` pairs once: one XREADGROUP over them all (blocking up to
    /// `block` when given and not zero), or in cluster mode one XREADGROUP per shard in
    /// a pipeline (never blocking). Returns the deliveries tagged with their shard.
    async fn read_once(
        &mut self,
        from: &[(usize, String)],
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<(usize, Delivery)>, AuditError> {
        let block = block.filter(|b| !b.is_zero());
        let xreadgroup = |shards: &[(usize, String)]| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(count);
            if let Some(block) = block {
                // BLOCK 0 would mean "for ever"; a sub-millisecond wait rounds up.
                cmd.arg("BLOCK").arg((block.as_millis() as u64).max(1));
            }
            cmd.arg("STREAMS");
            cmd.arg(
                shards
                    .iter()
                    .map(|(s, _)| &self.streams[*s])
                    .collect::<Vec<_>>(),
            );
            cmd.arg(shards.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>());
            cmd
        };
        let mut batch = Batch::new();
        if self.options.cluster {
            for shard in from {
                batch.add(
                    &self.streams[shard.0],
                    xreadgroup(std::slice::from_ref(shard)),
                );
            }
        } else if let Some(first) = from.first() {
            batch.add(&self.streams[first.0], xreadgroup(from));
        }
        let replies: Vec<Value> = self.run(&batch, block.unwrap_or(Duration::ZERO)).await?;
        let mut out = Vec::new();
        for reply in replies {
            for (stream, entries) in read_reply(reply)? {
                let shard = self
                    .streams
                    .iter()
                    .position(|s| *s == stream)
                    .ok_or_else(|| protocol("XREADGROUP answered for a stream not asked"))?;
                for (id, fields) in entries {
                    out.push((shard, (stream.clone(), entry(id, fields))));
                }
            }
        }
        Ok(out)
    }

    /// Run a batch with a deadline of `wait` (a blocking read's own wait) plus the
    /// configured timeout.
    async fn run<T: redis::FromRedisValue>(
        &mut self,
        batch: &Batch,
        wait: Duration,
    ) -> Result<Vec<T>, AuditError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(wait + self.options.timeout, conn.run_batch(batch)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e).into()),
            Err(_) => Err(self.late().into()),
        }
    }

    fn late(&self) -> StoreError {
        StoreError::Unavailable(format!("no answer within {:?}", self.options.timeout))
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn protocol(what: &str) -> AuditError {
    StoreError::Protocol(what.to_string()).into()
}

/// The id of a delivery, readable or not.
fn delivered_id(item: &Result<AuditEntry, BadEntry>) -> &str {
    match item {
        Ok(e) => &e.id,
        Err(b) => &b.id,
    }
}

/// A stream entry's fields (`None`: trimmed, only the id is left), parsed.
pub(crate) fn entry(
    id: String,
    fields: Option<Vec<(String, String)>>,
) -> Result<AuditEntry, BadEntry> {
    let Some(fields) = fields else {
        return Err(BadEntry {
            id,
            error: EntryError::Trimmed,
            fields: Vec::new(),
        });
    };
    AuditEntry::parse(&id, &fields).map_err(|error| BadEntry { id, error, fields })
}

/// Text of a reply element. The gateway writes only UTF-8; anything else (an entry
/// added by hand) is decoded lossily rather than failing the whole batch.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Stream entries read by one XREADGROUP for one stream.
pub(crate) type StreamEntries = Vec<(String, Option<Vec<(String, String)>>)>;

/// An XREADGROUP reply: per stream, its entries. Nil (nothing arrived) is empty;
/// both RESP2 (array of pairs) and RESP3 (map) shapes are read.
pub(crate) fn read_reply(reply: Value) -> Result<Vec<(String, StreamEntries)>, AuditError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs,
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    Ok((
                        kv.next().unwrap_or(Value::Nil),
                        kv.next().unwrap_or(Value::Nil),
                    ))
                }
                _ => Err(protocol("XREADGROUP stream is not a [key, entries] pair")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(protocol("XREADGROUP reply is not an array")),
    };
    pairs
        .into_iter()
        .map(|(key, entries)| {
            let key = text(&key).ok_or_else(|| protocol("XREADGROUP stream name"))?;
            Ok((key, stream_entries(entries)?))
        })
        .collect()
}

/// A list of stream entries: `[id, [field, value, ...]]`, or `[id, nil]` for an entry
/// still pending but trimmed from the stream.
fn stream_entries(entries: Value) -> Result<StreamEntries, AuditError> {
    let items = match entries {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(protocol("stream entries are not an array")),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(parts) = item else {
                return Err(protocol("stream entry is not an array"));
            };
            let mut parts = parts.into_iter();
            let id = parts
                .next()
                .as_ref()
                .and_then(text)
                .ok_or_else(|| protocol("stream entry has no id"))?;
            let fields = match parts.next() {
                None | Some(Value::Nil) => None,
                Some(Value::Array(flat)) => Some(
                    flat.chunks(2)
                        .map(|kv| match kv {
                            [k, v] => Some((text(k)?, text(v)?)),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| protocol("stream entry fields"))?,
                ),
                Some(Value::Map(kv)) => Some(
                    kv.iter()
                        .map(|(k, v)| Some((text(k)?, text(v)?)))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| protocol("stream entry fields"))?,
                ),
                Some(_) => return Err(protocol("stream entry fields are not an array")),
            };
            Ok((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome the apply script writes parses (`refused_time` once did not: a
    /// consumer got a clock-skew entry as unreadable).
    #[test]
    fn every_outcome_the_store_names_parses() {
        for outcome in Outcome::ALL {
            let fields: Vec<(String, String)> = [
                ("tenant", "acme"),
                ("scope", "sms"),
                ("address", "+14155551234"),
                ("action", "block_permanent"),
                ("outcome", outcome.as_str()),
                ("before", ""),
                ("after", ""),
                ("reason", "keyword:STOP"),
                ("provider", "twilio"),
                ("event_id", "SM1"),
                ("event_ms", "1718000000000"),
                ("received_ms", "1718000000001"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let entry =
                AuditEntry::parse("1-0", &fields).unwrap_or_else(|e| panic!("{outcome}: {e}"));
            assert_eq!(entry.outcome, outcome);
        }
    }
}
