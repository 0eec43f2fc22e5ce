//! The send-time lookup as a Rust API: "may I send to this address on this channel?",
//! for one address or a batch. The HTTP API and the CLI use it too.
//!
//! It fails closed: when Redis cannot answer, or when the tenant has acknowledged
//! changes that are still in a gateway's spool (the spool marker in Redis, or, inside
//! the gateway, the spool itself), the result is an error, and a sender must not send.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dndgate::lookup::LookupError> {
//! use dndgate::event::Channel;
//! use dndgate::lookup::Lookup;
//!
//! let dnd = Lookup::connect("redis://127.0.0.1:6379/")?;
//! if dnd.check("acme", Channel::Sms, "+1 (415) 555-1234").await?.blocked {
//!     return Ok(()); // on DND: do not send
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::address::{Address, AddressError};
use crate::config::DEFAULT_DEDUP_TTL;
use crate::event::Channel;
use crate::event::valid_tenant_id;
use crate::store::{Store, StoreError, StoreOptions, Verdict};
use crate::telemetry;
use crate::time::now_ms;

/// Most addresses one batch check takes (SPEC section 10).
pub const MAX_BATCH: usize = 10_000;

/// Why a lookup gave no verdict. Never send on an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The address cannot be normalised for the channel.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The tenant id is not a valid id.
    #[error("{0:?} is not a tenant id")]
    Tenant(String),
    /// Redis did not answer: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// More addresses than one batch takes.
    #[error("{0} addresses in one batch; at most {MAX_BATCH}")]
    TooMany(usize),
}

/// A connection to the DND store for senders; cheap to clone.
#[derive(Clone)]
pub struct Lookup {
    store: Store,
    /// The gateway's own spool, when the lookup runs inside the gateway: a tenant with
    /// changes waiting there fails closed even before the replayer could mark it in
    /// Redis.
    spool: Option<crate::spool::Spool>,
}

/// One address's verdict in a batch: the verdict, or why the address was refused.
pub type BatchItem = Result<Verdict, AddressError>;

impl Lookup {
    /// Connect to the Redis at `url` (lazily: the first check connects), with a 2 s
    /// timeout per call. `url` is one server's (`redis://HOST:PORT/`) or a Redis
    /// Cluster's (`redis+cluster://HOST:PORT,HOST:PORT/`, any nodes as seeds); on a
    /// cluster each check reads the primary of the address's slot, and a batch goes as
    /// one pipeline per slot.
    pub fn connect(url: &str) -> Result<Lookup, LookupError> {
        Self::connect_with_timeout(url, Duration::from_secs(2))
    }

    /// Connect with a chosen timeout per call.
    pub fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Lookup, LookupError> {
        let store = Store::open(
            url,
            StoreOptions {
                timeout,
                dedup_ttl: DEFAULT_DEDUP_TTL,
            },
        )?;
        Ok(Lookup { store, spool: None })
    }

    /// A lookup over an existing store handle.
    pub fn from_store(store: Store) -> Lookup {
        Lookup { store, spool: None }
    }

    /// Also fail closed for a tenant while `spool` holds changes of it not yet
    /// applied (the gateway's own lookups: HTTP API, unsubscribe page).
    pub fn with_spool(mut self, spool: Option<crate::spool::Spool>) -> Lookup {
        self.spool = spool;
        self
    }

    /// Fail closed while the gateway's own spool holds changes of `tenant`.
    fn check_spool(&self, tenant: &str) -> Result<(), LookupError> {
        match &self.spool {
            Some(spool) if spool.pending(tenant) > 0 => {
                Err(StoreError::Spooled(tenant.to_string()).into())
            }
            _ => Ok(()),
        }
    }

    /// May `raw_address` be sent to on `channel` now?
    pub async fn check(
        &self,
        tenant: &str,
        channel: Channel,
        raw_address: &str,
    ) -> Result<Verdict, LookupError> {
        let started = std::time::Instant::now();
        let result = async {
            check_tenant(tenant)?;
            let address = Address::parse(channel, raw_address)?;
            self.lookup_one(tenant, channel, &address).await
        }
        .await;
        Self::single_done(&result, started);
        result
    }

    /// [`Lookup::check`] for an address already normalised (the HTTP API parses it to
    /// answer with it).
    pub async fn check_address(
        &self,
        tenant: &str,
        channel: Channel,
        address: &Address,
    ) -> Result<Verdict, LookupError> {
        let started = std::time::Instant::now();
        let result = async {
            check_tenant(tenant)?;
            self.lookup_one(tenant, channel, address).await
        }
        .await;
        Self::single_done(&result, started);
        result
    }

    async fn lookup_one(
        &self,
        tenant: &str,
        channel: Channel,
        address: &Address,
    ) -> Result<Verdict, LookupError> {
        self.check_spool(tenant)?;
        Ok(self
            .store
            .lookup(tenant, channel, address, now_ms())
            .await?)
    }

    /// Count a single check.
    fn single_done(result: &Result<Verdict, LookupError>, started: std::time::Instant) {
        let counts = match result {
            Ok(v) if v.blocked => telemetry::LookupCounts::blocked(1),
            Ok(_) => telemetry::LookupCounts::allowed(1),
            Err(LookupError::Address(_)) => telemetry::LookupCounts::invalid(1),
            Err(_) => telemetry::LookupCounts::error(1),
        };
        telemetry::lookup_done("single", &counts, started.elapsed());
    }

    /// The verdicts for many addresses on one channel, in one round trip, in the order
    /// given. An address that cannot be normalised gets its own error; Redis failing
    /// fails the whole batch.
    pub async fn check_many<S: AsRef<str>>(
        &self,
        tenant: &str,
        channel: Channel,
        raw_addresses: &[S],
    ) -> Result<Vec<BatchItem>, LookupError> {
        let started = std::time::Instant::now();
        let result = self.batch(tenant, channel, raw_addresses).await;
        let counts = match &result {
            Ok(items) => {
                let mut c = telemetry::LookupCounts::default();
                for item in items {
                    match item {
                        Ok(v) if v.blocked => c.blocked += 1,
                        Ok(_) => c.allowed += 1,
                        Err(_) => c.invalid += 1,
                    }
                }
                c
            }
            Err(_) => telemetry::LookupCounts::error(raw_addresses.len() as u64),
        };
        telemetry::lookup_done("batch", &counts, started.elapsed());
        result
    }

    async fn batch<S: AsRef<str>>(
        &self,
        tenant: &str,
        channel: Channel,
        raw_addresses: &[S],
    ) -> Result<Vec<BatchItem>, LookupError> {
        check_tenant(tenant)?;
        if raw_addresses.len() > MAX_BATCH {
            return Err(LookupError::TooMany(raw_addresses.len()));
        }
        // The valid addresses in order, and where each refused one was.
        let mut valid: Vec<Address> = Vec::with_capacity(raw_addresses.len());
        let mut refused: Vec<(usize, AddressError)> = Vec::new();
        for (i, raw) in raw_addresses.iter().enumerate() {
            match Address::parse(channel, raw.as_ref()) {
                Ok(a) => valid.push(a),
                Err(e) => refused.push((i, e)),
            }
        }
        self.check_spool(tenant)?;
        let verdicts = self
            .store
            .lookup_many(tenant, channel, &valid, now_ms())
            .await?;
        if verdicts.len() != valid.len() {
            return Err(StoreError::Protocol(format!(
                "{} verdicts for {} addresses",
                verdicts.len(),
                valid.len()
            ))
            .into());
        }
        if refused.is_empty() {
            return Ok(verdicts.into_iter().map(Ok).collect());
        }
        let mut verdicts = verdicts.into_iter();
        let mut refused = refused.into_iter().peekable();
        Ok((0..raw_addresses.len())
            .map(|i| match refused.next_if(|(at, _)| *at == i) {
                Some((_, e)) => Err(e),
                None => Ok(verdicts
                    .next()
                    .expect("one verdict per valid address (counted above)")),
            })
            .collect())
    }
}

fn check_tenant(tenant: &str) -> Result<(), LookupError> {
    if valid_tenant_id(tenant) {
        Ok(())
    } else {
        Err(LookupError::Tenant(tenant.to_string()))
    }
}

/// A verdict as JSON, the shape the HTTP API and the CLI print.
pub fn verdict_json(
    tenant: &str,
    channel: Channel,
    address: &str,
    v: &Verdict,
) -> serde_json::Value {
    serde_json::to_value(VerdictJson::new(tenant, channel, address, v))
        .expect("a verdict serialises")
}

/// A verdict in the shape of [`verdict_json`], serialised straight to text (the HTTP
/// API's answer) without building a JSON value first. Fields in the order
/// `serde_json::Value` prints them (sorted).
#[derive(serde::Serialize)]
pub struct VerdictJson<'a> {
    address: &'a str,
    blocked: bool,
    channel: &'static str,
    marketing_only: bool,
    record: Option<RecordJson<'a>>,
    tenant: &'a str,
}

#[derive(serde::Serialize)]
struct RecordJson<'a> {
    event_ms: i64,
    expires_ms: Option<i64>,
    reason: &'a str,
    scope: Option<&'static str>,
    source: &'a str,
    state: &'static str,
}

impl<'a> VerdictJson<'a> {
    /// The JSON of `v`, the verdict for `address` of `tenant` on `channel`.
    pub fn new(tenant: &'a str, channel: Channel, address: &'a str, v: &'a Verdict) -> Self {
        VerdictJson {
            address,
            blocked: v.blocked,
            channel: channel.as_str(),
            marketing_only: v.marketing_only,
            record: v.record.as_ref().map(|r| RecordJson {
                event_ms: r.event_ms,
                expires_ms: r.expires_ms,
                reason: &r.reason,
                scope: v.scope.map(|s| s.as_str()),
                source: &r.source,
                state: r.state.as_str(),
            }),
            tenant,
        }
    }
}
