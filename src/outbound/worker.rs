//! The delivery workers and the retention pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::event::OutEvent;
use super::signed_headers;
use crate::audit::{AuditEntry, entry as parse_delivery, read_reply};
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::endpoint::schedule::{self, Verdict};
use crate::store::{Dying, OutShard, Retry, Store, id_ms};
use crate::telemetry::{DeliveryLabels, EndpointLabels, metrics};

/// How long a lease lasts without renewal. A worker renews it on every step, so a
/// dead instance's shards move to another within this time.
const LEASE_MS: u64 = 15_000;

/// Entries read at once for delivery (each stays pending until finished).
const BATCH: usize = 32;

/// The longest wait between two looks at a shard when nothing wakes the worker
/// (another instance applied a change; a lease to take over).
const MAX_IDLE: Duration = Duration::from_millis(500);

/// How often the retention pass runs.
/// Also how old the endpoint lag metrics may be: they are computed by the same pass.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// The running delivery of events out: workers for every enabled endpoint's shards
/// and the retention pass.
pub struct Outbound {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// What a worker shares.
struct Ctx {
    store: Store,
    client: reqwest::Client,
    /// This instance's name in leases.
    holder: String,
    /// Retries, timeout, disabling.
    schedule: schedule::Schedule,
    /// When this instance started (ms): a new endpoint's groups start there.
    started_ms: i64,
}

/// What a step found.
enum Next {
    /// More may be waiting: look again at once.
    Busy,
    /// Nothing to do (or another instance holds the lease).
    Idle,
    /// The head waits for its retry time.
    Until(i64),
}

/// A number from a per-process random seed and a counter: jitter and instance names
/// need spread, not secrecy.
fn random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(Default::default);
    let mut h = SEED.build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Outbound {
    /// Start delivering for every enabled endpoint of `config`, and the retention pass.
    /// Fails only when the HTTP client cannot be set up.
    pub fn start(store: Store, config: Arc<Config>) -> Result<Outbound, String> {
        let client = client(config.events_out.timeout)?;
        let holder = format!(
            "{}-{}-{:x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "dndgate".into()),
            std::process::id(),
            (random() * u32::MAX as f64) as u32
        );
        let ctx = Arc::new(Ctx {
            store,
            client,
            holder,
            schedule: config.events_out.clone(),
            // With the skew between this host's clock and Redis's allowed for: a new
            // endpoint may get a few minutes of earlier changes, never miss one.
            started_ms: crate::time::now_ms() - crate::time::MAX_SKEW_MS,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(supervise(ctx.clone(), config.clone(), stopped.clone()));
        tasks.spawn(sweep(ctx.clone(), config.clone(), stopped.clone()));
        tasks.spawn(retain(ctx.clone(), config, stopped));
        Ok(Outbound { stop, tasks })
    }

    /// Stop the workers (each finishes the try in flight) and let their leases go.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The HTTP client of events out: no redirects (the URL is what the operator set),
/// `timeout` for a whole try.
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("dndgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client for events out: {e}"))
}

/// The endpoints being delivered to, by (tenant, endpoint id): what the workers read
/// on every step, so a rotated secret or a changed URL applies at once and a removed
/// endpoint's workers stop.
type Live = std::sync::RwLock<std::collections::BTreeMap<(String, String), Arc<Endpoint>>>;

/// How often the set of endpoints is read again (the API's are in Redis).
const REFRESH: Duration = Duration::from_secs(2);

/// Keep one worker per shard for every enabled endpoint, the configuration's and the
/// API's, until stopped; then wait for the workers.
async fn supervise(ctx: Arc<Ctx>, config: Arc<Config>, mut stop: watch::Receiver<bool>) {
    let live: Arc<Live> = Arc::default();
    let mut running = std::collections::BTreeMap::new();
    while !*stop.borrow() {
        let mut now = std::collections::BTreeMap::new();
        for tenant in config.tenants.values() {
            match super::manage::endpoints(&ctx.store, tenant).await {
                Ok(eps) => {
                    for (e, _) in eps.into_iter().filter(|(e, _)| e.enabled) {
                        now.insert((tenant.id.clone(), e.id.clone()), Arc::new(e));
                    }
                }
                Err(e) => {
                    // Keep the tenant's endpoints as they were until Redis answers.
                    let was = live.read().expect("not poisoned");
                    for (k, v) in was.iter().filter(|((t, _), _)| t == &tenant.id) {
                        now.insert(k.clone(), v.clone());
                    }
                    tracing::warn!(tenant = %tenant.id, error = %e, "events out: cannot read the endpoints");
                }
            }
        }
        let wanted: Vec<(String, String)> = now.keys().cloned().collect();
        *live.write().expect("not poisoned") = now;
        // One set of workers per endpoint: a set still finishing (its endpoint was
        // removed and made again within a refresh) is waited for, not doubled.
        running.retain(|_, set: &mut Vec<tokio::task::JoinHandle<()>>| {
            !set.iter().all(|h| h.is_finished())
        });
        for (tenant, endpoint) in wanted {
            if running.contains_key(&(tenant.clone(), endpoint.clone())) {
                continue;
            }
            let set = (0..16u8)
                .map(|shard| {
                    let s = OutShard {
                        tenant: tenant.clone(),
                        shard,
                        endpoint: endpoint.clone(),
                    };
                    tokio::spawn(work(ctx.clone(), s, live.clone(), stop.clone()))
                })
                .collect();
            running.insert((tenant, endpoint), set);
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.changed() => {}
        }
    }
    for (_, set) in running {
        for worker in set {
            let _ = worker.await;
        }
    }
}

/// One (endpoint, shard) worker, until stopped or its endpoint is gone.
async fn work(ctx: Arc<Ctx>, s: OutShard, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    let mut applied = ctx.store.applied(s.shard);
    let mut state = ShardState::default();
    let mut idle = Duration::from_millis(20);
    let key = (s.tenant.clone(), s.endpoint.clone());
    while !*stop.borrow() {
        let Some(endpoint) = live.read().expect("not poisoned").get(&key).cloned() else {
            break;
        };
        let next = step(&ctx, &s, &endpoint, &mut state).await;
        if next.is_ok() && state.redis_failing {
            state.redis_failing = false;
            tracing::info!(tenant = %s.tenant, endpoint = %s.endpoint, shard = s.shard, "events out: redis answers again");
        }
        let wait = match next {
            Ok(Next::Busy) => {
                idle = Duration::from_millis(20);
                continue;
            }
            Ok(Next::Idle) => {
                idle = (idle * 2).min(MAX_IDLE);
                idle
            }
            Ok(Next::Until(ms)) => {
                let left = (ms - crate::time::now_ms()).max(0) as u64;
                Duration::from_millis(left).min(MAX_IDLE)
            }
            Err(e) => {
                // Once per outage, not every poll.
                if !state.redis_failing {
                    state.redis_failing = true;
                    tracing::warn!(tenant = %s.tenant, endpoint = %s.endpoint, shard = s.shard, error = %e, "events out: redis; delivery waits");
                }
                state.pending_maybe = true;
                MAX_IDLE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = applied.changed() => { idle = Duration::from_millis(20); }
            _ = stop.changed() => {}
        }
    }
    let _ = ctx.store.out_release(&s, &ctx.holder).await;
}

fn count(s: &OutShard, result: &'static str) {
    metrics()
        .deliveries
        .get_or_create(&DeliveryLabels {
            tenant: s.tenant.clone(),
            endpoint: s.endpoint.clone(),
            result,
        })
        .inc();
}

/// What a worker remembers between steps, to spare Redis round trips.
struct ShardState {
    /// The group exists (created once per worker).
    prepared: bool,
    /// The pending list may hold entries (at start, and after any step that did not
    /// finish all it read): read it before new ones.
    pending_maybe: bool,
    /// When the lease was last taken or renewed.
    lease_at: Option<std::time::Instant>,
    /// The endpoint's health as last read, and when.
    health: Option<(std::time::Instant, crate::store::Health)>,
    /// The last step failed on Redis (logged once until it answers again).
    redis_failing: bool,
}

impl Default for ShardState {
    fn default() -> ShardState {
        ShardState {
            prepared: false,
            pending_maybe: true,
            lease_at: None,
            health: None,
            redis_failing: false,
        }
    }
}

/// How long health is trusted before it is read again.
const HEALTH_FRESH: Duration = Duration::from_secs(1);

/// The lease's length: long enough that a try started while at least a timeout and a
/// margin of it remain ends before it lapses.
fn lease_ms(ctx: &Ctx) -> u64 {
    let floor = 2 * ctx.schedule.timeout.as_millis() as u64 + 5_000;
    LEASE_MS.max(floor)
}

/// Take or keep the lease, renewing it only when less than a try's timeout and a
/// margin of it remain.
async fn hold_lease(
    ctx: &Ctx,
    s: &OutShard,
    state: &mut ShardState,
) -> Result<bool, crate::store::StoreError> {
    let lease = lease_ms(ctx);
    let spare = ctx.schedule.timeout.as_millis() as u64 + 2_000;
    if let Some(at) = state.lease_at
        && (at.elapsed().as_millis() as u64) + spare < lease
    {
        return Ok(true);
    }
    let held = ctx.store.out_lease(s, &ctx.holder, lease).await?;
    state.lease_at = held.then(std::time::Instant::now);
    Ok(held)
}

/// The endpoint's health, read again when older than [`HEALTH_FRESH`].
async fn health(
    ctx: &Ctx,
    s: &OutShard,
    state: &mut ShardState,
) -> Result<crate::store::Health, crate::store::StoreError> {
    if let Some((at, h)) = &state.health
        && at.elapsed() < HEALTH_FRESH
    {
        return Ok(h.clone());
    }
    let h = ctx.store.out_health(&s.tenant, &s.endpoint).await?;
    state.health = Some((std::time::Instant::now(), h.clone()));
    Ok(h)
}

/// Look at the shard once: deliver what is due, in order, until the head must wait.
async fn step(
    ctx: &Ctx,
    s: &OutShard,
    endpoint: &Endpoint,
    state: &mut ShardState,
) -> Result<Next, crate::store::StoreError> {
    let store = &ctx.store;
    if !hold_lease(ctx, s, state).await? {
        state.pending_maybe = true;
        return Ok(Next::Idle);
    }
    if !state.prepared {
        store.out_prepare(s, ctx.started_ms).await?;
        state.prepared = true;
    }
    // A disabled endpoint reads nothing: what it has not read is not held pending,
    // and retention may trim it (disabled endpoints hold no retention).
    let mut known = health(ctx, s, state).await?;
    if known.disabled_ms.is_some() {
        return Ok(Next::Idle);
    }
    // What was read before and not finished comes first (a crash, a lost lease);
    // then new entries.
    let mut entries = Vec::new();
    if state.pending_maybe {
        entries = read(store, s, true).await?;
        state.pending_maybe = !entries.is_empty();
    }
    if entries.is_empty() {
        entries = read(store, s, false).await?;
    }
    if entries.is_empty() {
        return Ok(Next::Idle);
    }
    // Until this batch is all finished, what it leaves (a head waiting for its retry,
    // a lost lease, an error) is in the pending list: read that first next time.
    state.pending_maybe = true;
    let mut retry = store.out_retry(s).await?;
    for (id, entry) in entries {
        let now = crate::time::now_ms();
        let event = match entry {
            Ok(entry) => match OutEvent::of(&entry, s.shard) {
                Some(e) if endpoint.wants(e.kind, entry.scope.as_str()) => e,
                _ => {
                    if !store.out_done(s, &ctx.holder, &id).await? {
                        return Ok(Next::Idle);
                    }
                    count(s, "filtered");
                    continue;
                }
            },
            Err(why) => {
                // Nothing can be sent for an entry that cannot be read; it is kept as
                // a dead letter with its fields, not dropped.
                tracing::error!(tenant = %s.tenant, endpoint = %s.endpoint, id = %id, error = %why, "events out: unreadable audit entry dead-lettered");
                if !store
                    .out_dead(
                        s,
                        &ctx.holder,
                        &id,
                        Dying {
                            event: &why,
                            tries: 0,
                            error: "unreadable audit entry",
                            now_ms: now,
                        },
                    )
                    .await?
                {
                    return Ok(Next::Idle);
                }
                count(s, "dead");
                continue;
            }
        };
        let tries_before = match &retry {
            Some(r) if r.id == id => {
                if now < r.next_ms {
                    return Ok(Next::Until(r.next_ms));
                }
                r.tries
            }
            _ => 0,
        };
        // Keep the lease through the try: the next holder would send it again.
        if !hold_lease(ctx, s, state).await? {
            return Ok(Next::Idle);
        }
        let (verdict, error) = post(&ctx.client, endpoint, &event.id, &event.body).await;
        let tries = tries_before + 1;
        let now = crate::time::now_ms();
        match verdict {
            Verdict::Delivered => {
                if !store.out_done(s, &ctx.holder, &id).await? {
                    return Ok(Next::Idle);
                }
                // The streak ends with the first success; the time of the last one is
                // kept fresh to a second, not written per event.
                let stale = known.last_ok_ms.is_none_or(|t| now - t >= 1_000);
                if known.failing_since_ms.is_some() || stale {
                    store
                        .out_health_note(&s.tenant, &s.endpoint, true, now)
                        .await?;
                    known.failing_since_ms = None;
                    known.last_ok_ms = Some(now);
                    state.health = Some((std::time::Instant::now(), known.clone()));
                }
                count(s, "delivered");
                retry = None;
            }
            Verdict::Refused | Verdict::Retry => {
                // A refusal is a failure of the endpoint too: one that refuses
                // everything (a wrong secret, a moved URL) is disabled in time.
                store
                    .out_health_note(&s.tenant, &s.endpoint, false, now)
                    .await?;
                state.health = None;
                disable_if_failing_too_long(ctx, s, now).await?;
                let next = match verdict {
                    Verdict::Retry => {
                        count(s, "retry");
                        ctx.schedule.next_try_ms(tries, now, random())
                    }
                    _ => None,
                };
                if let Some(next_ms) = next {
                    tracing::info!(tenant = %s.tenant, endpoint = %s.endpoint, event = %event.id, tries, error = %error, retry_in_ms = next_ms - now, "events out: will retry");
                    let r = Retry {
                        id: id.clone(),
                        tries,
                        next_ms,
                        error,
                    };
                    store.out_set_retry(s, &r).await?;
                    return Ok(Next::Until(next_ms));
                }
                let why = if verdict == Verdict::Refused {
                    "the endpoint refused the event"
                } else {
                    "retries spent"
                };
                tracing::error!(tenant = %s.tenant, endpoint = %s.endpoint, event = %event.id, tries, error = %error, "events out: {why}; dead-lettered");
                let dying = Dying {
                    event: &event.body,
                    tries,
                    error: &error,
                    now_ms: now,
                };
                if !store.out_dead(s, &ctx.holder, &id, dying).await? {
                    return Ok(Next::Idle);
                }
                count(s, "dead");
                retry = None;
            }
        }
    }
    state.pending_maybe = false;
    Ok(Next::Busy)
}

/// Disable the endpoint when it has failed without a success for
/// the schedule's `disable_after`.
async fn disable_if_failing_too_long(
    ctx: &Ctx,
    s: &OutShard,
    now: i64,
) -> Result<(), crate::store::StoreError> {
    let store = &ctx.store;
    let health = store.out_health(&s.tenant, &s.endpoint).await?;
    let limit = ctx.schedule.disable_after.as_millis() as i64;
    if let Some(since) = health.failing_since_ms
        && health.disabled_ms.is_none()
        && now - since >= limit
    {
        let why = format!(
            "no delivery succeeded for {} days",
            (now - since) / 86_400_000
        );
        store.out_disable(&s.tenant, &s.endpoint, now, &why).await?;
        tracing::error!(tenant = %s.tenant, endpoint = %s.endpoint, reason = %why, "events out: endpoint disabled; enable it through the operator API once it is fixed");
    }
    Ok(())
}

/// Entries read for delivery, each as its id and the entry (or, for one that cannot be
/// read, its fields as JSON text, kept in the dead letter).
async fn read(
    store: &Store,
    s: &OutShard,
    pending: bool,
) -> Result<Vec<(String, Result<AuditEntry, String>)>, crate::store::StoreError> {
    let reply = store.out_read(s, pending, BATCH).await?;
    let streams =
        read_reply(reply).map_err(|e| crate::store::StoreError::Protocol(e.to_string()))?;
    Ok(streams
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|(id, fields)| {
            let parsed = parse_delivery(id.clone(), fields).map_err(|bad| {
                serde_json::json!({
                    "error": bad.error.to_string(),
                    "fields": bad.fields.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                })
                .to_string()
            });
            (id, parsed)
        })
        .collect())
}

/// One try: POST `body`, signed as event `id`, to `endpoint`; the verdict and what
/// happened (`HTTP 503`, a timeout, a refused connection).
pub(super) async fn post(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    id: &str,
    body: &str,
) -> (Verdict, String) {
    let now_s = crate::time::now_ms().div_euclid(1000);
    let mut request = client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in signed_headers(&endpoint.secrets, id, now_s, body) {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            (schedule::verdict(Some(status)), format!("HTTP {status}"))
        }
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer in time".to_string()
            } else {
                // Without the URL: it may carry credentials.
                format!("cannot reach the endpoint: {}", e.without_url())
            };
            (schedule::verdict(None), why)
        }
    }
}

/// A stream id as (ms, seq), to compare.
fn id_at(id: &str) -> Option<(i64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// How often temporary records that ran out are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Expiries audited per script round before the next shard gets its turn.
const SWEEP_BATCH: usize = 100;

/// The expiry sweep, every [`SWEEP_EVERY`] until stopped: every temporary record that
/// ran out is audited (`expired`, hence `dnd.expired`) once, in its shard's order,
/// by whichever instance finds it first.
async fn sweep(ctx: Arc<Ctx>, config: Arc<Config>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        // One warning a round when Redis is away, not one per shard.
        'round: for tenant in config.tenants.keys() {
            for shard in 0..16u8 {
                loop {
                    let now = crate::time::now_ms();
                    match ctx
                        .store
                        .sweep_expiries(tenant, shard, now, SWEEP_BATCH)
                        .await
                    {
                        Ok(n) if n as usize >= SWEEP_BATCH => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(tenant = %tenant, shard, error = %e, "expiry sweep: redis; trying again in a second");
                            break 'round;
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The retention pass, every [`RETENTION_EVERY`] until stopped.
async fn retain(ctx: Arc<Ctx>, config: Arc<Config>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Err(e) = retention_pass(&ctx.store, &config, crate::time::now_ms()).await {
            tracing::warn!(error = %e, "audit retention: redis");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Trim every tenant's audit shards below what is older than `audit_retention` and
/// no enabled endpoint still needs; update each endpoint's lag, oldest-undelivered
/// and disabled metrics. An endpoint disabled (in the configuration, or for failing
/// too long) holds nothing: its undelivered entries go with their age. Returns how
/// many audit entries and dead letters were trimmed (dead letters go with the
/// audit entries of their age).
pub async fn retention_pass(
    store: &Store,
    config: &Config,
    now_ms: i64,
) -> Result<u64, crate::store::StoreError> {
    let cutoff_ms = now_ms - config.audit_retention.as_millis() as i64;
    let mut trimmed = 0;
    for tenant in config.tenants.values() {
        // (id, labels, holds retention): every endpoint on in its definition is
        // watched; only those not disabled hold the streams.
        let mut watched = Vec::new();
        for (e, _) in super::manage::endpoints(store, tenant).await? {
            if !e.enabled {
                continue;
            }
            let disabled = store
                .out_health(&tenant.id, &e.id)
                .await?
                .disabled_ms
                .is_some();
            let labels = EndpointLabels {
                tenant: tenant.id.clone(),
                endpoint: e.id.clone(),
            };
            metrics()
                .endpoint_disabled
                .get_or_create(&labels)
                .set(disabled as i64);
            watched.push((e.id, labels, !disabled));
        }
        let mut lag = vec![0u64; watched.len()];
        let mut oldest = vec![None::<i64>; watched.len()];
        for shard in 0..16u8 {
            // The lowest id anyone holds, compared as (ms, seq): two floors can be in
            // one millisecond.
            let mut floor = (cutoff_ms, 0u64);
            let mut floor_id = format!("{cutoff_ms}-0");
            for (i, (endpoint, _, holds)) in watched.iter().enumerate() {
                let s = OutShard {
                    tenant: tenant.id.clone(),
                    shard,
                    endpoint: endpoint.clone(),
                };
                // Dead letters are kept as long as the audit entries they came from.
                let n = store.out_trim_dead(&s, &format!("{cutoff_ms}-0")).await?;
                trimmed += n;
                // An endpoint whose worker has not yet created its group holds the
                // whole shard until it has.
                let Some(g) = store.out_group(&s).await? else {
                    if *holds {
                        floor.0 = i64::MIN;
                    }
                    continue;
                };
                lag[i] += g.pending + g.lag;
                if let Some(ms) = g.oldest.as_deref().and_then(id_ms) {
                    oldest[i] = Some(oldest[i].map_or(ms, |o: i64| o.min(ms)));
                }
                if *holds
                    && let Some(at) = id_at(&g.floor)
                    && at <= floor
                {
                    floor = at;
                    floor_id = g.floor.clone();
                }
            }
            if floor.0 > 0 {
                let n = store.trim_audit(&tenant.id, shard, &floor_id).await?;
                trimmed += n;
                metrics().audit_trimmed.inc_by(n);
            }
        }
        for (i, (_, labels, _)) in watched.iter().enumerate() {
            metrics()
                .endpoint_lag
                .get_or_create(labels)
                .set(lag[i] as i64);
            let age = oldest[i].map_or(0.0, |ms| ((now_ms - ms).max(0)) as f64 / 1000.0);
            metrics()
                .endpoint_oldest_seconds
                .get_or_create(labels)
                .set(age);
        }
    }
    Ok(trimmed)
}
