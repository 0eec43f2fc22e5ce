//! The durable spool (SPEC section 8): when Redis is down or slower than
//! `redis_timeout`, verified and classified changes go to a local append-only file,
//! fsync'd before the provider gets its 2xx, and a replayer applies them to Redis in
//! order when it returns.
//!
//! The file (`spool.log` in the spool directory) is a sequence of records:
//!
//! ```text
//! u32 LE  payload length
//! u32 LE  the first four bytes of SHA-256(length bytes || payload)
//! bytes   payload: one SpooledChange as JSON
//! ```
//!
//! A record whose length runs past the end of the file or whose checksum does not
//! match is a torn write from a crash: it and everything after it are dropped at start
//! with a warning, never misread. `cursor` holds the offset of the first record not yet
//! applied; it is written after each applied chunk (a crash re-applies at most one
//! chunk, which the store's per-event dedup marker makes harmless). When every record
//! is applied the file is truncated to zero (the cursor is reset first).
//!
//! Writes are grouped: every request waiting for durability hands its record to one
//! writer thread, which writes whatever is queued with one `write` and one
//! `fdatasync` and then answers them all, so concurrent requests share an fsync.
//!
//! Ordering: while any record is unapplied, every new change goes to the spool too
//! ([`Spool::must_spool`]), so a newer event is never overtaken by an older spooled one.
//!
//! Fail closed (issue 12 item 5): while a tenant has unapplied changes here, lookups of
//! that tenant must not answer. In this process [`Spool::pending`] says so; for every
//! other reader the replayer sets the tenant's spool marker in Redis
//! ([`Store::mark_spooled`]) as soon as Redis takes it, before it applies anything, and
//! removes it once every change of that tenant is applied. The marker's field is this
//! spool's id (the `instance` file), so gateways with their own spools on one Redis do
//! not remove each other's marks, and a restarted gateway removes what it left behind.
//!
//! Bounds (issue 12 item 6): [`SpoolLimits`] caps the unapplied records and bytes,
//! overall and per tenant; past a cap [`Spool::append`] refuses the change (the
//! provider gets 503 and retries). Nothing acknowledged is ever dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, watch};

use crate::address::Address;
use crate::config::{Config, SpoolLimits};
use crate::event::{Scope, Source};
use crate::state;
use crate::store::{Store, StoreAction, StoreError};
pub use crate::telemetry::SpoolStats;

/// The spool's record file, in the spool directory.
pub const SPOOL_FILE: &str = "spool.log";
/// The replay cursor file, in the spool directory.
pub const CURSOR_FILE: &str = "cursor";
/// Bytes before each record's payload: length and checksum.
const HEADER: usize = 8;
/// No record is larger (a change is a few hundred bytes); a larger length is a torn
/// or corrupt header.
const MAX_RECORD: usize = 64 * 1024;
/// Records the replayer reads from the file at a time (and applies before it moves
/// the cursor file).
const CHUNK_BYTES: u64 = 256 * 1024;
/// Longest wait for a record's fsync before the request gets 503 (a stalled disk).
const DURABLE_WAIT: Duration = Duration::from_secs(20);
/// Longest wait between replay attempts while Redis is down.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The file in the spool directory that holds this spool's id (its field in the
/// tenants' spool markers).
pub const INSTANCE_FILE: &str = "instance";

/// The [`SpoolLimits`] cap a refused change would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Records,
    Bytes,
    TenantRecords,
    TenantBytes,
}

impl Cap {
    /// Its metric label (`dndgate_spool_refused_total{cap}`).
    fn label(self) -> &'static str {
        match self {
            Cap::Records => "records",
            Cap::Bytes => "bytes",
            Cap::TenantRecords => "tenant_records",
            Cap::TenantBytes => "tenant_bytes",
        }
    }

    /// What was reached, for the 503's one line.
    fn describe(self, l: &SpoolLimits, tenant: &str) -> String {
        match self {
            Cap::Records => format!("{} unapplied changes, the max_records cap", l.max_records),
            Cap::Bytes => format!("{} unapplied bytes, the max_bytes cap", l.max_bytes),
            Cap::TenantRecords => format!(
                "tenant {tenant} has {} unapplied changes, the tenant_max_records cap",
                l.tenant_max_records
            ),
            Cap::TenantBytes => format!(
                "tenant {tenant} has {} unapplied bytes, the tenant_max_bytes cap",
                l.tenant_max_bytes
            ),
        }
    }
}

/// Unapplied records and bytes (of everything, or of one tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Usage {
    records: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.records += 1;
        self.bytes += bytes;
    }
    fn sub(&mut self, bytes: u64) {
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// What the spool holds unapplied, in all and per tenant, for the caps and for
/// [`Spool::pending`].
#[derive(Debug, Default)]
struct Accounts {
    all: Usage,
    tenants: HashMap<String, Usage>,
}

impl Accounts {
    fn add(&mut self, tenant: &str, bytes: u64) {
        self.all.add(bytes);
        match self.tenants.get_mut(tenant) {
            Some(u) => u.add(bytes),
            None => {
                let mut u = Usage::default();
                u.add(bytes);
                self.tenants.insert(tenant.to_string(), u);
            }
        }
    }
    fn sub(&mut self, tenant: &str, bytes: u64) {
        self.all.sub(bytes);
        if let Some(u) = self.tenants.get_mut(tenant) {
            u.sub(bytes);
            if u.records == 0 {
                self.tenants.remove(tenant);
            }
        }
    }
}

/// One change as the spool keeps it: what [`state::apply`] needs, owned, with the
/// tenant's id. The classification was made when the provider was answered, so replay
/// applies exactly what the 2xx promised even if the configuration changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledChange {
    /// Format version (1).
    pub v: u8,
    /// The tenant id.
    pub tenant: String,
    /// The normalised address.
    pub address: String,
    /// The scopes, by name (`sms`, ..., `all`).
    pub scopes: Vec<String>,
    /// The store action, by name.
    pub action: String,
    /// The reason for the record and the audit entry.
    pub reason: String,
    /// The provider, by name.
    pub provider: String,
    /// The dedup key.
    pub event_id: String,
    /// When the change happened (ms since the epoch).
    pub event_ms: i64,
    /// When the gateway received it (ms since the epoch); replay applies it as of then.
    pub received_ms: i64,
    /// Who made an operator change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Consent evidence, JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl SpooledChange {
    /// The spool's copy of a request for `tenant`.
    pub fn new(tenant: &str, req: &state::Request<'_>) -> SpooledChange {
        SpooledChange {
            v: 1,
            tenant: tenant.to_string(),
            address: req.address.as_str().to_string(),
            scopes: req.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            action: req.action.as_str().to_string(),
            reason: req.reason.to_string(),
            provider: req.provider.as_str().to_string(),
            event_id: req.event_id.to_string(),
            event_ms: req.event_ms,
            received_ms: req.received_ms,
            actor: req.actor.map(str::to_string),
            evidence: req.evidence.map(str::to_string),
        }
    }

    /// The typed parts of the change: address, scopes, action, provider.
    fn parts(&self) -> Result<(Address, Vec<Scope>, StoreAction, Source), String> {
        let scopes = self
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let action = StoreAction::from_name(&self.action)
            .ok_or_else(|| format!("unknown action {:?}", self.action))?;
        let provider = crate::providers::source_named(&self.provider)
            .ok_or_else(|| format!("unknown provider {:?}", self.provider))?;
        if self.address.is_empty() {
            return Err("empty address".into());
        }
        Ok((
            Address::from_store(self.address.clone()),
            scopes,
            action,
            provider,
        ))
    }

    /// Apply the change through the same path as a live event. `Err(Some)` is Redis
    /// unavailable (retry later); `Err(None)` is a change that can never be applied
    /// (logged; the replayer moves on).
    async fn apply(&self, store: &Store, config: &Config) -> Result<(), Option<StoreError>> {
        let Some(tenant) = config.tenants.get(&self.tenant) else {
            tracing::error!(
                tenant = self.tenant.as_str(),
                event_id = %crate::redact::EventId(&self.event_id),
                "spooled change for a tenant no longer configured: dropped"
            );
            return Err(None);
        };
        let (address, scopes, action, provider) = self.parts().map_err(|e| {
            tracing::error!(
                event_id = %crate::redact::EventId(&self.event_id),
                error = %crate::redact::text(&e),
                "unreadable spooled change: dropped"
            );
            None
        })?;
        let request = state::Request {
            address: &address,
            scopes,
            action,
            reason: &self.reason,
            provider,
            event_id: &self.event_id,
            event_ms: self.event_ms,
            received_ms: self.received_ms,
            now_ms: self.received_ms,
            actor: self.actor.as_deref(),
            evidence: self.evidence.as_deref(),
        };
        match state::apply(store, tenant, &request).await {
            Ok(_) => Ok(()),
            Err(e @ StoreError::Unavailable(_)) => Err(Some(e)),
            Err(e) => {
                tracing::error!(
                    event_id = %crate::redact::EventId(&self.event_id),
                    error = %crate::redact::text(&e.to_string()),
                    "spooled change refused by redis: dropped"
                );
                Err(None)
            }
        }
    }
}

/// Why the spool could not take a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spool not writable: {0}")]
pub struct SpoolError(pub String);

/// One record on its way to the file.
struct Job {
    seq: u64,
    bytes: Vec<u8>,
    received_ms: i64,
    tenant: String,
}

/// The writer's file, shared with the replayer for truncation.
struct FileState {
    file: File,
    /// Bytes of complete, fsync'd records.
    end: u64,
}

struct Progress {
    /// Every sequence number up to this one is written or failed.
    resolved: u64,
    /// Recently failed ranges of sequence numbers, with why.
    failed: VecDeque<(u64, u64, String)>,
}

struct Shared {
    dir: PathBuf,
    file: Mutex<FileState>,
    /// Mirror of `FileState::end`, for readers that do not take the lock.
    end: AtomicU64,
    /// Offset of the first unapplied record.
    cursor: AtomicU64,
    /// Changes submitted and not yet applied (or failed to write).
    unapplied: AtomicU64,
    /// Received time of the oldest unapplied record; 0 when none.
    oldest_ms: AtomicI64,
    replayed: AtomicU64,
    appended: AtomicU64,
    fsyncs: AtomicU64,
    refused: AtomicU64,
    /// Unapplied records and bytes, in all and per tenant (submitted, not yet applied
    /// or failed to write).
    accounts: Mutex<Accounts>,
    limits: SpoolLimits,
    /// This spool's id: its field in the tenants' spool markers.
    instance: String,
    progress: Mutex<Progress>,
    resolved_tx: watch::Sender<u64>,
    wake_replayer: Notify,
    stopping: AtomicBool,
    /// While set, the replayer marks but does not apply (see [`Spool::hold_replay`]).
    hold: AtomicBool,
    /// Tenants whose spool marker this spool has set in Redis and not yet removed,
    /// shared by the replayer and the webhook path ([`Spool::mark_tenant`]).
    marked: Mutex<HashSet<String>>,
    /// Did the replayer's last Redis write succeed? The webhook path writes a marker
    /// itself only then, so that it never waits out a Redis timeout per request while
    /// Redis is down.
    redis_ok: AtomicBool,
    replayer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The durable spool; cheap to clone. The writer thread ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    /// Sequence numbers, taken together with sending so the channel is in order. Kept
    /// out of `Shared` (which the writer holds) so dropping the spool closes it.
    submit: Arc<Mutex<(u64, mpsc::UnboundedSender<Job>)>>,
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(len);
    h.update(payload);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// One record, framed: length, checksum, payload.
pub fn encode(change: &SpooledChange) -> Vec<u8> {
    let payload = serde_json::to_vec(change).expect("a SpooledChange always serialises");
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, &payload));
    out.extend_from_slice(&payload);
    out
}

/// Decode the record at the start of `buf`: the change and its framed length, or
/// `None` when `buf` holds no complete, intact record there.
fn decode(buf: &[u8]) -> Option<(SpooledChange, usize)> {
    let len: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_RECORD {
        return None;
    }
    let sum = buf.get(4..8)?;
    let payload = buf.get(HEADER..HEADER + n)?;
    if checksum(&len, payload) != sum {
        return None;
    }
    let change = serde_json::from_slice(payload).ok()?;
    Some((change, HEADER + n))
}

/// Walk the records from `from` to `len`: bytes of intact records, their count, the
/// received time of the first (0 when none), and what each tenant has among them.
fn scan(file: &File, from: u64, len: u64) -> std::io::Result<(u64, u64, i64, Accounts)> {
    let mut reader = std::io::BufReader::with_capacity(
        1 << 20,
        std::io::Read::take(file.try_clone()?, len - from),
    );
    {
        use std::io::Seek;
        reader
            .get_mut()
            .get_mut()
            .seek(std::io::SeekFrom::Start(from))?;
    }
    let (mut at, mut records, mut oldest) = (0u64, 0u64, 0i64);
    let mut accounts = Accounts::default();
    let mut buf = Vec::new();
    loop {
        buf.resize(HEADER, 0);
        if reader.read_exact(&mut buf).is_err() {
            break;
        }
        let n = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if n > MAX_RECORD {
            break;
        }
        buf.resize(HEADER + n, 0);
        if reader.read_exact(&mut buf[HEADER..]).is_err() {
            break;
        }
        match decode(&buf) {
            Some((change, size)) => {
                if records == 0 {
                    oldest = change.received_ms.max(1);
                }
                records += 1;
                at += size as u64;
                accounts.add(&change.tenant, size as u64);
            }
            None => break,
        }
    }
    Ok((at, records, oldest, accounts))
}

/// This spool's id, from the `instance` file in `dir`, made (and kept) on first use:
/// 16 hex digits from the directory, the time and the process.
fn instance_id(dir: &Path) -> std::io::Result<String> {
    let path = dir.join(INSTANCE_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    let mut h = Sha256::new();
    h.update(std::fs::canonicalize(dir)?.as_os_str().as_encoded_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    let id = hex::encode(&h.finalize()[..8]);
    let tmp = dir.join("instance.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{id}\n").as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn read_cursor(dir: &Path) -> u64 {
    match std::fs::read_to_string(dir.join(CURSOR_FILE)) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                "spool cursor file is unreadable ({text:?}); replaying from the start (applied changes are deduplicated)"
            );
            0
        }),
        Err(_) => 0,
    }
}

fn write_cursor(dir: &Path, offset: u64, sync: bool) -> std::io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{offset}\n").as_bytes())?;
    if sync {
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(CURSOR_FILE))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    crate::time::now_ms()
}

impl Spool {
    /// Open (creating if needed) the spool in `dir` with the default caps, check the
    /// records not yet applied, drop a torn tail with a warning, and start the writer
    /// thread. The replayer starts with [`Spool::start_replayer`].
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        Spool::open_with_limits(dir, SpoolLimits::default())
    }

    /// [`Spool::open`] with chosen caps (`[spool]` in the configuration). Records
    /// already in the file are kept whatever the caps: they were acknowledged.
    pub fn open_with_limits(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        let err =
            |what: &str, e: std::io::Error| SpoolError(format!("{what} {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| err("cannot create", e))?;
        let path = dir.join(SPOOL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| err("cannot open the spool file in", e))?;
        let len = file
            .metadata()
            .map_err(|e| err("cannot read the spool file in", e))?
            .len();
        let mut cursor = read_cursor(dir);
        if cursor > len {
            tracing::warn!(
                cursor,
                len,
                "spool cursor is past the end of the file; replaying from the start (applied changes are deduplicated)"
            );
            cursor = 0;
        }
        // Check every unapplied record, reading one at a time (a long outage leaves a
        // large file); stop at the first that is not intact.
        let (at, records, oldest, accounts) =
            scan(&file, cursor, len).map_err(|e| err("cannot read the spool file in", e))?;
        let instance = instance_id(dir).map_err(|e| err("cannot write the spool id in", e))?;
        let end = cursor + at;
        if end < len {
            tracing::warn!(
                offset = end,
                dropped_bytes = len - end,
                file = %path.display(),
                "spool ends in a torn or corrupt record (a crash during a write); dropping it: no 2xx was given for it"
            );
            file.set_len(end)
                .and_then(|_| file.sync_all())
                .map_err(|e| err("cannot truncate the torn tail of the spool file in", e))?;
        }
        if records > 0 {
            tracing::warn!(
                records,
                bytes = end - cursor,
                "spool holds changes not yet applied to redis; replaying them"
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (resolved_tx, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            file: Mutex::new(FileState { file, end }),
            end: AtomicU64::new(end),
            cursor: AtomicU64::new(cursor),
            unapplied: AtomicU64::new(records),
            oldest_ms: AtomicI64::new(oldest),
            replayed: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accounts: Mutex::new(accounts),
            limits,
            instance,
            progress: Mutex::new(Progress {
                resolved: 0,
                failed: VecDeque::new(),
            }),
            resolved_tx,
            wake_replayer: Notify::new(),
            stopping: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            marked: Mutex::new(HashSet::new()),
            redis_ok: AtomicBool::new(false),
            replayer: Mutex::new(None),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("dndgate-spool".into())
            .spawn(move || write_loop(writer, rx))
            .map_err(|e| SpoolError(format!("cannot start the spool writer: {e}")))?;
        Ok(Spool {
            shared,
            submit: Arc::new(Mutex::new((0, tx))),
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The caps it was opened with.
    pub fn limits(&self) -> SpoolLimits {
        self.shared.limits
    }

    /// Must a new change go to the spool (some earlier change is not yet applied)?
    pub fn must_spool(&self) -> bool {
        self.shared.unapplied.load(Ordering::SeqCst) > 0
    }

    /// This spool's id, its field in the tenants' spool markers.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// How many changes of `tenant` wait unapplied (accepted, not yet in Redis). While
    /// any do, a lookup of the tenant must fail closed.
    pub fn pending(&self, tenant: &str) -> u64 {
        if !self.must_spool() {
            return 0;
        }
        let accounts = self.shared.accounts.lock().expect("spool lock");
        accounts.tenants.get(tenant).map_or(0, |u| u.records)
    }

    /// The tenants at one of their caps now, sorted (for `/readyz` on the admin
    /// listener).
    pub fn tenants_at_cap(&self) -> Vec<String> {
        let limits = self.shared.limits;
        let accounts = self.shared.accounts.lock().expect("spool lock");
        let mut at: Vec<String> = accounts
            .tenants
            .iter()
            .filter(|(_, u)| {
                u.records >= limits.tenant_max_records || u.bytes >= limits.tenant_max_bytes
            })
            .map(|(t, _)| t.clone())
            .collect();
        at.sort();
        at
    }

    /// Queue a change for the file; returns its sequence number, to wait for with
    /// [`Spool::durable`]. Changes are written in the order they are queued. A change
    /// that would take the spool, or its tenant, past a cap ([`SpoolLimits`]) is
    /// refused: the caller answers 503 and the provider retries.
    pub fn append(&self, change: &SpooledChange) -> Result<u64, SpoolError> {
        let bytes = encode(change);
        let size = bytes.len() as u64;
        let mut submit = self.submit.lock().expect("spool lock");
        {
            let mut accounts = self.shared.accounts.lock().expect("spool lock");
            if let Some(cap) = self.over_cap(&accounts, &change.tenant, size) {
                drop(accounts);
                self.shared.refused.fetch_add(1, Ordering::SeqCst);
                crate::telemetry::spool_refused(cap.label());
                return Err(SpoolError(format!(
                    "the spool is full ({})",
                    cap.describe(&self.shared.limits, &change.tenant)
                )));
            }
            accounts.add(&change.tenant, size);
        }
        self.shared.unapplied.fetch_add(1, Ordering::SeqCst);
        let seq = submit.0 + 1;
        let job = Job {
            seq,
            bytes,
            received_ms: change.received_ms,
            tenant: change.tenant.clone(),
        };
        if submit.1.send(job).is_err() {
            self.shared.unapplied.fetch_sub(1, Ordering::SeqCst);
            let mut accounts = self.shared.accounts.lock().expect("spool lock");
            accounts.sub(&change.tenant, size);
            return Err(SpoolError("the spool writer has stopped".into()));
        }
        submit.0 = seq;
        Ok(seq)
    }

    /// Which cap a change of `size` bytes for `tenant` would pass, if any.
    fn over_cap(&self, accounts: &Accounts, tenant: &str, size: u64) -> Option<Cap> {
        let limits = &self.shared.limits;
        let mine = accounts.tenants.get(tenant).copied().unwrap_or_default();
        if accounts.all.records + 1 > limits.max_records {
            Some(Cap::Records)
        } else if accounts.all.bytes + size > limits.max_bytes {
            Some(Cap::Bytes)
        } else if mine.records + 1 > limits.tenant_max_records {
            Some(Cap::TenantRecords)
        } else if mine.bytes + size > limits.tenant_max_bytes {
            Some(Cap::TenantBytes)
        } else {
            None
        }
    }

    /// Wait until the changes numbered `first..=last` are fsync'd; an error if any of
    /// them (or another change queued between them) could not be written.
    pub async fn durable(&self, first: u64, last: u64) -> Result<(), SpoolError> {
        let mut rx = self.shared.resolved_tx.subscribe();
        // `wait_for` hands back a guard on the watch's value: keep it no longer than
        // this statement (the writer takes the watch's lock to publish).
        let waited = tokio::time::timeout(DURABLE_WAIT, async {
            rx.wait_for(|resolved| *resolved >= last).await.map(|_| ())
        })
        .await;
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(SpoolError("the spool writer has stopped".into())),
            Err(_) => {
                return Err(SpoolError(format!(
                    "no fsync within {DURABLE_WAIT:?} (disk stalled?)"
                )));
            }
        }
        let progress = self.shared.progress.lock().expect("spool lock");
        match progress
            .failed
            .iter()
            .find(|(lo, hi, _)| *lo <= last && *hi >= first)
        {
            Some((_, _, why)) => Err(SpoolError(why.clone())),
            None => Ok(()),
        }
    }

    /// The spool's numbers now.
    pub fn stats(&self) -> SpoolStats {
        let s = &self.shared;
        let oldest = s.oldest_ms.load(Ordering::SeqCst);
        let records = s.unapplied.load(Ordering::SeqCst);
        let all = s.accounts.lock().expect("spool lock").all;
        SpoolStats {
            records,
            bytes: s
                .end
                .load(Ordering::SeqCst)
                .saturating_sub(s.cursor.load(Ordering::SeqCst)),
            oldest_age_ms: (oldest > 0 && records > 0)
                .then(|| now_ms().saturating_sub(oldest).max(0) as u64),
            replayed: s.replayed.load(Ordering::SeqCst),
            appended: s.appended.load(Ordering::SeqCst),
            fsyncs: s.fsyncs.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            max_records: s.limits.max_records,
            max_bytes: s.limits.max_bytes,
            // Full when not even a smallest change (about 300 bytes) fits.
            full: all.records >= s.limits.max_records || all.bytes + 300 > s.limits.max_bytes,
        }
    }

    /// Start the task that applies spooled changes to `store`, in order, retrying
    /// with backoff while Redis is down. Needs a tokio runtime.
    pub fn start_replayer(&self, store: Store, config: Arc<Config>) {
        let shared = self.shared.clone();
        let task = tokio::spawn(replay_loop(shared, store, config));
        *self.shared.replayer.lock().expect("spool lock") = Some(task);
    }

    /// Hold the replay back (`true`) or let it go on (`false`). While held, the
    /// replayer still marks the tenants whose changes wait (the Redis marker that makes
    /// lookups fail closed) as soon as Redis takes it, but applies nothing: for tests
    /// of what senders see while a replay is slow, and for an operator who wants to
    /// inspect a spool before it is applied.
    #[doc(hidden)]
    pub fn hold_replay(&self, hold: bool) {
        self.shared.hold.store(hold, Ordering::SeqCst);
        self.shared.wake_replayer.notify_one();
    }

    /// Make sure the tenant's spool marker is in Redis before a change of it that was
    /// queued behind the spool is acknowledged, so that a sender reading Redis directly
    /// never sees "allowed" for it while it waits (the replayer marks only between
    /// groups). Written only while the replayer's Redis writes succeed: with Redis down
    /// a sender's read fails anyway, and a request must not wait out a Redis timeout. A
    /// failure is left to the replayer, which marks every pending tenant before it
    /// applies anything.
    pub async fn mark_tenant(&self, store: &Store, tenant: &str) {
        if !self.shared.redis_ok.load(Ordering::SeqCst)
            || self
                .shared
                .marked
                .lock()
                .expect("spool lock")
                .contains(tenant)
        {
            return;
        }
        match store
            .mark_spooled(tenant, &self.shared.instance, now_ms())
            .await
        {
            Ok(()) => {
                self.shared
                    .marked
                    .lock()
                    .expect("spool lock")
                    .insert(tenant.to_string());
                // The replayer may have drained the tenant meanwhile: it removes the
                // marker on its next pass.
                self.shared.wake_replayer.notify_one();
            }
            Err(e) => {
                self.shared.redis_ok.store(false, Ordering::SeqCst);
                tracing::debug!(error = %e, "spool marker left to the replayer");
            }
        }
    }

    /// Redis just failed a write on the live path: [`Spool::mark_tenant`] waits for the
    /// replayer to see it back.
    pub fn redis_failed(&self) {
        self.shared.redis_ok.store(false, Ordering::SeqCst);
    }

    /// Wait until no change is left unapplied and this spool's markers are removed (so
    /// lookups answer from Redis again), or `timeout` passes; true when drained.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.must_spool() || !self.shared.marked.lock().expect("spool lock").is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stop the replayer and save the cursor (fsync). Every record that got a 2xx is
    /// already on disk; what is not yet applied is replayed at the next start.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let task = self.shared.replayer.lock().expect("spool lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _guard = shared.file.lock().expect("spool lock");
            let cursor = shared.cursor.load(Ordering::SeqCst);
            if let Err(e) = write_cursor(&shared.dir, cursor, true) {
                tracing::warn!(error = %e, "could not save the spool cursor (the next start replays more, deduplicated)");
            }
        })
        .await;
        let stats = self.stats();
        tracing::info!(records = stats.records, bytes = stats.bytes, "spool closed");
    }
}

/// The writer thread: take whatever is queued, one write and one fdatasync, answer
/// them all.
fn write_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let lo = batch[0].seq;
        let hi = batch[batch.len() - 1].seq;
        let result = write_batch(&shared, &batch);
        let mut progress = shared.progress.lock().expect("spool lock");
        if let Err(why) = result {
            tracing::error!(
                error = why.as_str(),
                records = batch.len(),
                "spool write failed"
            );
            shared
                .unapplied
                .fetch_sub(batch.len() as u64, Ordering::SeqCst);
            {
                let mut accounts = shared.accounts.lock().expect("spool lock");
                for job in &batch {
                    accounts.sub(&job.tenant, job.bytes.len() as u64);
                }
            }
            progress.failed.push_back((lo, hi, why));
            while progress.failed.len() > 1024 {
                progress.failed.pop_front();
            }
        } else {
            shared
                .appended
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            shared.fsyncs.fetch_add(1, Ordering::SeqCst);
            let m = crate::telemetry::metrics();
            m.spool_appended.inc_by(batch.len() as u64);
            m.spool_fsyncs.inc();
        }
        progress.resolved = hi;
        drop(progress);
        shared.resolved_tx.send_replace(hi);
        shared.wake_replayer.notify_one();
    }
}

fn write_batch(shared: &Shared, batch: &[Job]) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(batch.iter().map(|j| j.bytes.len()).sum());
    for job in batch {
        bytes.extend_from_slice(&job.bytes);
    }
    let mut state = shared.file.lock().expect("spool lock");
    let end = state.end;
    let written = state
        .file
        .write_all_at(&bytes, end)
        .and_then(|_| state.file.sync_data());
    if let Err(e) = written {
        // Leave no partial record behind for a later batch to follow.
        let _ = state.file.set_len(end);
        return Err(format!("{}: {e}", shared.dir.join(SPOOL_FILE).display()));
    }
    state.end = end + bytes.len() as u64;
    shared.end.store(state.end, Ordering::SeqCst);
    let _ = shared.oldest_ms.compare_exchange(
        0,
        batch[0].received_ms.max(1),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    Ok(())
}

/// One record read back: the change, the offset after it, and its framed size.
type ReadRecord = (SpooledChange, u64, u64);

/// Read the intact records in `[from, end)`, at most about [`CHUNK_BYTES`]: each with
/// the offset after it and its size. A bad record inside the fsync'd range is
/// corruption: logged, and the rest of the range skipped.
fn read_chunk(shared: &Shared, from: u64, end: u64) -> Vec<ReadRecord> {
    let want = (end - from).min(CHUNK_BYTES + MAX_RECORD as u64) as usize;
    let mut buf = vec![0u8; want];
    let read = {
        let state = shared.file.lock().expect("spool lock");
        state.file.read_at(&mut buf, from)
    };
    let n = match read {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the spool file; retrying");
            return Vec::new();
        }
    };
    buf.truncate(n);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() && (at as u64) < CHUNK_BYTES {
        match decode(&buf[at..]) {
            Some((change, len)) => {
                at += len;
                out.push((change, from + at as u64, len as u64));
            }
            None => break,
        }
    }
    if out.is_empty() && n == want && from < end {
        tracing::error!(
            offset = from,
            skipped_bytes = end - from,
            "corrupt record inside the fsync'd part of the spool; skipping to its end"
        );
        shared.cursor.store(end, Ordering::SeqCst);
    }
    out
}

/// Records applied side by side at most.
const GROUP: usize = 128;

/// How many of the next records may be applied side by side: consecutive records on
/// distinct addresses, none with the `all` scope (which reaches a contact's other
/// addresses). Order matters per address only, so such a group keeps every address's
/// order; an `all` change goes alone.
fn group_len(records: &[ReadRecord]) -> usize {
    let mut seen = HashSet::new();
    for (n, (change, _, _)) in records.iter().enumerate().take(GROUP) {
        let all = change.scopes.iter().any(|s| s == "all");
        if all || !seen.insert(change.address.as_str()) {
            return n.max(1);
        }
    }
    records.len().min(GROUP)
}

/// Apply a group side by side; false when Redis was unavailable for any of it (the
/// whole group is tried again: what was applied is deduplicated by the store).
async fn apply_group(group: &[ReadRecord], store: &Store, config: &Arc<Config>) -> bool {
    if let [(change, _, _)] = group {
        return !matches!(change.apply(store, config).await, Err(Some(_)));
    }
    let mut set = tokio::task::JoinSet::new();
    for (change, _, _) in group {
        let (change, store, config) = (change.clone(), store.clone(), config.clone());
        set.spawn(async move { change.apply(&store, &config).await });
    }
    let mut ok = true;
    while let Some(result) = set.join_next().await {
        match result {
            Ok(Err(Some(e))) => {
                tracing::debug!(error = %e, "spool replay waits for redis");
                ok = false;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "spool replay task failed");
                ok = false;
            }
        }
    }
    ok
}

/// The replayer's view of the tenants' spool markers in Redis (which tenants are
/// marked: `Shared::marked`).
struct Marks {
    /// False until this spool's marks left by an earlier run (a crash) have been
    /// removed for every tenant with nothing unapplied.
    swept: bool,
    /// When every pending tenant's marker was last written again; `None` after a
    /// failure, so the next pass writes them all. Redis may lose a marker it took (a
    /// restart that lost its last writes, a failover to a replica that never got it,
    /// a FLUSHALL): `Shared::marked` says what this spool wrote, not what Redis still holds.
    refreshed: Option<tokio::time::Instant>,
}

/// How often the replayer writes every pending tenant's marker again while changes
/// wait (see [`Marks::refreshed`]): the longest a marker Redis lost stays lost.
const MARK_REFRESH: Duration = Duration::from_secs(1);

impl Marks {
    /// Remove the marker of every tenant that has nothing unapplied any more (and,
    /// once after start, of every configured tenant with nothing unapplied: what a
    /// crash may have left). A failure keeps the mark, to be removed on the next
    /// pass: a marker left too long fails closed.
    async fn unmark_applied(&mut self, shared: &Shared, store: &Store, config: &Config) {
        let pending: HashSet<String> = {
            let accounts = shared.accounts.lock().expect("spool lock");
            accounts.tenants.keys().cloned().collect()
        };
        let applied: Vec<String> = shared
            .marked
            .lock()
            .expect("spool lock")
            .iter()
            .filter(|t| !pending.contains(*t))
            .cloned()
            .collect();
        for tenant in applied {
            if store
                .unmark_spooled(&tenant, &shared.instance)
                .await
                .is_err()
            {
                shared.redis_ok.store(false, Ordering::SeqCst);
                return; // Redis is away: the next pass tries again
            }
            shared.marked.lock().expect("spool lock").remove(&tenant);
        }
        if !self.swept {
            for tenant in config.tenants.keys().filter(|t| !pending.contains(*t)) {
                if store
                    .unmark_spooled(tenant, &shared.instance)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            self.swept = true;
        }
    }

    /// Set the marker of every tenant with unapplied changes that is not marked yet,
    /// and, every [`MARK_REFRESH`] or after a failure, of every tenant with unapplied
    /// changes again (Redis may have lost one); false when Redis did not take one
    /// (nothing may be applied before it does).
    async fn mark_pending(&mut self, shared: &Shared, store: &Store) -> bool {
        let refresh = self.refreshed.is_none_or(|at| at.elapsed() >= MARK_REFRESH);
        let pending: Vec<String> = {
            let accounts = shared.accounts.lock().expect("spool lock");
            let marked = shared.marked.lock().expect("spool lock");
            accounts
                .tenants
                .keys()
                .filter(|t| refresh || !marked.contains(*t))
                .cloned()
                .collect()
        };
        for tenant in pending {
            match store
                .mark_spooled(&tenant, &shared.instance, now_ms())
                .await
            {
                Ok(()) => {
                    shared.marked.lock().expect("spool lock").insert(tenant);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "spool replay waits for redis (marker)");
                    self.refreshed = None;
                    shared.redis_ok.store(false, Ordering::SeqCst);
                    return false;
                }
            }
        }
        if refresh {
            self.refreshed = Some(tokio::time::Instant::now());
        }
        shared.redis_ok.store(true, Ordering::SeqCst);
        true
    }
}

async fn replay_loop(shared: Arc<Shared>, store: Store, config: Arc<Config>) {
    let mut backoff = Duration::from_millis(50);
    let mut marks = Marks {
        swept: false,
        refreshed: None,
    };
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        marks.unmark_applied(&shared, &store, &config).await;
        let cursor = shared.cursor.load(Ordering::SeqCst);
        let end = shared.end.load(Ordering::SeqCst);
        if cursor >= end {
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || truncate_if_drained(&s)).await;
            let _ =
                tokio::time::timeout(Duration::from_secs(1), shared.wake_replayer.notified()).await;
            continue;
        }
        let s = shared.clone();
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&s, cursor, end))
            .await
            .unwrap_or_default();
        if chunk.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        shared
            .oldest_ms
            .store(chunk[0].0.received_ms.max(1), Ordering::SeqCst);
        // The markers first: from the first write Redis takes, lookups of these
        // tenants fail closed, before any of their changes is applied.
        if !marks.mark_pending(&shared, &store).await {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        while shared.hold.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
            // Held, the markers are still kept (and written again if Redis lost them).
            marks.mark_pending(&shared, &store).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut i = 0;
        while i < chunk.len() {
            // Before each group: a tenant whose first change came in during this chunk
            // is marked before anything more is applied, and every marker is written
            // again now and then, or at once after a failure (a Redis that restarted
            // may have lost them).
            if !marks.mark_pending(&shared, &store).await {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            let group = &chunk[i..i + group_len(&chunk[i..])];
            if !apply_group(group, &store, &config).await {
                marks.refreshed = None;
                shared.redis_ok.store(false, Ordering::SeqCst);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            backoff = Duration::from_millis(50);
            let (_, next, _) = group[group.len() - 1];
            shared.cursor.store(next, Ordering::SeqCst);
            shared
                .replayed
                .fetch_add(group.len() as u64, Ordering::SeqCst);
            crate::telemetry::metrics()
                .spool_replayed
                .inc_by(group.len() as u64);
            i += group.len();
            if let Some((following, _, _)) = chunk.get(i) {
                shared
                    .oldest_ms
                    .store(following.received_ms.max(1), Ordering::SeqCst);
            }
            {
                let mut accounts = shared.accounts.lock().expect("spool lock");
                for (change, _, size) in group {
                    accounts.sub(&change.tenant, *size);
                }
            }
            shared
                .unapplied
                .fetch_sub(group.len() as u64, Ordering::SeqCst);
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let cursor = s.cursor.load(Ordering::SeqCst);
            if let Err(e) = write_cursor(&s.dir, cursor, false) {
                tracing::warn!(error = %e, "could not save the spool cursor");
            }
        })
        .await;
        let left = shared.unapplied.load(Ordering::SeqCst);
        tracing::info!(
            applied = chunk.len(),
            left,
            "spooled changes applied to redis"
        );
    }
}

/// When every record is applied and nothing is queued: reset the cursor, then empty
/// the file (a crash in between replays everything again, deduplicated).
fn truncate_if_drained(shared: &Shared) {
    let mut state = shared.file.lock().expect("spool lock");
    let cursor = shared.cursor.load(Ordering::SeqCst);
    if cursor < state.end {
        return;
    }
    if shared.unapplied.load(Ordering::SeqCst) == 0 {
        shared.oldest_ms.store(0, Ordering::SeqCst);
    }
    if state.end == 0 || shared.unapplied.load(Ordering::SeqCst) != 0 {
        return;
    }
    if let Err(e) = write_cursor(&shared.dir, 0, true) {
        tracing::warn!(error = %e, "could not reset the spool cursor; keeping the file");
        return;
    }
    match state.file.set_len(0).and_then(|_| state.file.sync_all()) {
        Ok(()) => {
            state.end = 0;
            shared.end.store(0, Ordering::SeqCst);
            shared.cursor.store(0, Ordering::SeqCst);
            tracing::info!("spool drained: every spooled change is applied");
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not empty the spool file");
            // The cursor file says 0: put it back so a restart does not replay it all.
            let _ = write_cursor(&shared.dir, cursor, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str) -> SpooledChange {
        SpooledChange {
            v: 1,
            tenant: "acme".into(),
            address: "+15550000001".into(),
            scopes: vec!["sms".into(), "voice".into()],
            action: "block_permanent".into(),
            reason: "keyword:STOP".into(),
            provider: "twilio".into(),
            event_id: id.into(),
            event_ms: 1,
            received_ms: 2,
            actor: None,
            evidence: None,
        }
    }

    #[test]
    fn a_record_round_trips_and_a_torn_or_altered_one_is_refused() {
        let bytes = encode(&change("SM1"));
        let (back, n) = decode(&bytes).unwrap();
        assert_eq!(back, change("SM1"));
        assert_eq!(n, bytes.len());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut altered = bytes.clone();
        let last = altered.len() - 2;
        altered[last] ^= 1;
        assert!(decode(&altered).is_none());
    }

    #[test]
    fn every_action_and_provider_name_reads_back() {
        for a in StoreAction::ALL {
            let mut c = change("x");
            c.action = a.as_str().into();
            assert_eq!(c.parts().unwrap().2, a);
        }
        // Every source the registry knows reads back: a provider added to the
        // registry cannot be spooled and then dropped as unreadable.
        let sources = crate::providers::Provider::ALL
            .iter()
            .map(|p| p.source())
            .chain(Source::NOT_PROVIDERS);
        for source in sources {
            let mut c = change("x");
            c.provider = source.as_str().into();
            assert_eq!(c.parts().unwrap().3, source);
        }
        let mut c = change("x");
        c.provider = "carrierpigeon".into();
        assert!(c.parts().is_err());
        let mut c = change("x");
        c.action = "explode".into();
        assert!(c.parts().is_err());
    }
}
