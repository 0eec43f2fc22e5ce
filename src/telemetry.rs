//! Every metric dndgate exports, declared once, here (SPEC section 12, issue 8).
//!
//! `GET /metrics` serves them in the Prometheus text exposition format (OpenMetrics
//! flavour, which Prometheus scrapes natively). The set is process-wide: one gateway
//! per process, and the lookup API counts wherever it runs. Label values are bounded:
//! providers, outcomes, channels and states are fixed lists; tenants come from the
//! configuration; reasons are the classifier's (`keyword:STOP`, `twilio:30003`), with
//! link campaigns folded into `link`.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A webhook or API request, by route family, tenant, outcome and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `twilio`, `meta`, ..., `api`, `link`, `health`, `other`.
    pub provider: &'static str,
    /// The tenant, or empty when none was resolved.
    pub tenant: String,
    /// `applied`, `duplicate`, `spooled`, `ignored`, `refused`, `unavailable`, `ok`.
    pub outcome: &'static str,
    /// The HTTP status sent.
    pub status: u16,
}

/// An endpoint of events out.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The tenant.
    pub tenant: String,
    /// The endpoint id.
    pub endpoint: String,
}

/// One try of an event out, by how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The tenant.
    pub tenant: String,
    /// The endpoint id.
    pub endpoint: String,
    /// `delivered`, `retry`, `dead` (refused, or retries spent), `filtered` (no event
    /// for the endpoint).
    pub result: &'static str,
}

/// A route family, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// As in [`RequestLabels::provider`].
    pub provider: &'static str,
}

/// A signature that did not verify.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    /// The provider whose scheme failed.
    pub provider: &'static str,
    /// `missing`, `mismatch`, `stale`, `replay`, `malformed`, `certificate`, ...
    pub reason: &'static str,
}

/// A normalised event, by provider and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The provider that sent it.
    pub provider: &'static str,
    /// `inbound`, `preference`, `complaint` or `delivery_status`.
    pub kind: &'static str,
}

/// Webhook records accepted without a DND change to apply.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IgnoredLabels {
    /// The provider route that received them.
    pub provider: &'static str,
    /// Why: `no_signal` (a delivery, an open, a record without an address),
    /// `unreadable` (a part of a batch that could not be read) or `unknown_account` (an
    /// account no tenant owns).
    pub kind: &'static str,
}

/// A DND record written.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// The record's scope: a channel or `all`.
    pub channel: &'static str,
    /// `permanent`, `marketing`, `temporary` or `cleared`.
    pub state: &'static str,
    /// The classifier's reason, campaigns folded.
    pub reason: String,
}

/// A lookup verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `single` or `batch`.
    pub kind: &'static str,
    /// `allowed`, `blocked`, `invalid` or `error`.
    pub outcome: &'static str,
}

/// A change the spool refused, by the cap it would have passed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpoolCapLabels {
    /// `records`, `bytes`, `tenant_records` or `tenant_bytes`.
    pub cap: &'static str,
}

/// A lookup call, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupKindLabels {
    /// `single` or `batch`.
    pub kind: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The metrics, each declared once.
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the request's arrival to its answer.
    pub request_seconds: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    /// Signatures that did not verify.
    pub verification_failures: Family<VerificationLabels, Counter>,
    /// Events normalised from webhooks.
    pub events: Family<EventLabels, Counter>,
    /// Webhook records accepted without a DND change to apply.
    pub events_ignored: Family<IgnoredLabels, Counter>,
    /// DND records written (set or cleared).
    pub dnd_changes: Family<ChangeLabels, Counter>,
    /// Addresses looked up, by verdict.
    pub lookups: Family<LookupLabels, Counter>,
    /// Lookup calls' latency.
    pub lookup_seconds: Family<LookupKindLabels, Histogram, fn() -> Histogram>,
    /// Redis calls that failed or timed out.
    pub redis_errors: Counter,
    /// 1 when the last Redis health check answered, 0 otherwise.
    pub redis_up: Gauge,
    /// Records in the spool not yet applied.
    pub spool_records: Gauge,
    /// Bytes of the spool not yet applied.
    pub spool_bytes: Gauge,
    /// Age of the oldest unapplied spool record (0 when empty).
    pub spool_oldest_age_seconds: Gauge<f64, AtomicU64>,
    /// Changes written to the spool.
    pub spool_appended: Counter,
    /// Spool writes, one fdatasync each (fewer than appended: group commit).
    pub spool_fsyncs: Counter,
    /// Spooled changes applied to Redis by the replayer.
    pub spool_replayed: Counter,
    /// Changes the spool refused because a cap was reached (the provider got 503).
    pub spool_refused: Family<SpoolCapLabels, Counter>,
    /// 1 when the spool takes no more changes (an overall cap is reached).
    pub spool_full: Gauge,
    /// The spool's overall caps.
    pub spool_max_records: Gauge,
    /// The spool's overall caps.
    pub spool_max_bytes: Gauge,
    /// Events out, by endpoint and how each try ended.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Audit entries an endpoint has not finished (pending or not yet read).
    pub endpoint_lag: Family<EndpointLabels, Gauge>,
    /// Age of the oldest entry an endpoint has not finished (0 when none).
    pub endpoint_oldest_seconds: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    /// 1 when an endpoint is disabled for failing too long.
    pub endpoint_disabled: Family<EndpointLabels, Gauge>,
    /// Audit entries trimmed for age.
    pub audit_trimmed: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dndgate");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            verification_failures: Family::default(),
            events: Family::default(),
            events_ignored: Family::default(),
            dnd_changes: Family::default(),
            lookups: Family::default(),
            lookup_seconds: Family::new_with_constructor(latency_histogram),
            redis_errors: Counter::default(),
            redis_up: Gauge::default(),
            spool_records: Gauge::default(),
            spool_bytes: Gauge::default(),
            spool_oldest_age_seconds: Gauge::default(),
            spool_appended: Counter::default(),
            spool_fsyncs: Counter::default(),
            spool_replayed: Counter::default(),
            spool_refused: Family::default(),
            spool_full: Gauge::default(),
            spool_max_records: Gauge::default(),
            spool_max_bytes: Gauge::default(),
            deliveries: Family::default(),
            endpoint_lag: Family::default(),
            endpoint_oldest_seconds: Family::default(),
            endpoint_disabled: Family::default(),
            audit_trimmed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by provider, tenant, outcome and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer",
            m.request_seconds.clone(),
        );
        registry.register(
            "verification_failures",
            "Webhook signatures that did not verify, by provider and reason",
            m.verification_failures.clone(),
        );
        registry.register(
            "events",
            "Events normalised from webhooks, by provider and kind",
            m.events.clone(),
        );
        registry.register(
            "events_ignored",
            "Webhook records accepted without a DND change to apply, by provider and kind (no_signal, unreadable, unknown_account)",
            m.events_ignored.clone(),
        );
        registry.register(
            "dnd_changes",
            "DND records written, by channel, state and reason",
            m.dnd_changes.clone(),
        );
        registry.register(
            "lookups",
            "Addresses looked up, by call kind and verdict",
            m.lookups.clone(),
        );
        registry.register(
            "lookup_duration_seconds",
            "Lookup calls' latency, by call kind",
            m.lookup_seconds.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out",
            m.redis_errors.clone(),
        );
        registry.register(
            "redis_up",
            "1 when Redis answered the last health check",
            m.redis_up.clone(),
        );
        registry.register(
            "spool_records",
            "Spooled events not yet applied to Redis",
            m.spool_records.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of spooled events not yet applied to Redis",
            m.spool_bytes.clone(),
        );
        registry.register(
            "spool_oldest_age_seconds",
            "Age of the oldest spooled event not yet applied (0 when none)",
            m.spool_oldest_age_seconds.clone(),
        );
        registry.register(
            "deliveries",
            "Tries of events out, by tenant, endpoint and result (delivered, retry, dead, filtered)",
            m.deliveries.clone(),
        );
        registry.register(
            "endpoint_lag",
            "Audit entries an endpoint has not finished yet (pending or unread)",
            m.endpoint_lag.clone(),
        );
        registry.register(
            "endpoint_oldest_undelivered_seconds",
            "Age of the oldest audit entry an endpoint has not finished (0 when none)",
            m.endpoint_oldest_seconds.clone(),
        );
        registry.register(
            "endpoint_disabled",
            "1 when an endpoint was disabled for failing too long",
            m.endpoint_disabled.clone(),
        );
        registry.register(
            "audit_trimmed",
            "Audit entries trimmed for age (audit_retention)",
            m.audit_trimmed.clone(),
        );
        registry.register(
            "spool_appended",
            "Changes written to the spool",
            m.spool_appended.clone(),
        );
        registry.register(
            "spool_fsyncs",
            "Spool writes, one fdatasync each (group commit shares them)",
            m.spool_fsyncs.clone(),
        );
        registry.register(
            "spool_replayed",
            "Spooled changes applied to Redis by the replayer",
            m.spool_replayed.clone(),
        );
        registry.register(
            "spool_refused",
            "Changes the spool refused at a cap (the provider got 503 and retries), by cap",
            m.spool_refused.clone(),
        );
        registry.register(
            "spool_full",
            "1 when the spool takes no more changes (an overall cap is reached)",
            m.spool_full.clone(),
        );
        registry.register(
            "spool_max_records",
            "The spool's cap on unapplied records (spool.max_records)",
            m.spool_max_records.clone(),
        );
        registry.register(
            "spool_max_bytes",
            "The spool's cap on unapplied bytes (spool.max_bytes)",
            m.spool_max_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// How one webhook request went, for its log line, its metrics and the tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The tenant, once resolved.
    pub tenant: Option<String>,
    /// Events normalised from the request.
    pub events: usize,
    /// Records changed.
    pub changed: usize,
    /// Events that had been applied before.
    pub duplicates: usize,
    /// Events of a batch that could not be read, one line each.
    pub rejected: Vec<String>,
    /// Records that carry no DND signal (a delivery, an open, a record without an
    /// address), one line each: accepted, counted, logged at debug only.
    pub skipped: Vec<String>,
    /// Events of a batch for accounts no tenant owns (Meta), one line each: counted,
    /// and logged at warn, since a missing account in the configuration loses STOPs.
    pub unrouted: Vec<String>,
    /// For a refused signature: which check failed.
    pub verification: Option<&'static str>,
    /// Changes that went to the spool instead of Redis.
    pub spooled: usize,
    /// The spool sequence numbers of those changes (first, last), to wait for.
    pub spool_seqs: Option<(u64, u64)>,
}

/// The spool's numbers, for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Changes accepted into the spool and not yet applied to Redis.
    pub records: u64,
    /// Bytes of the file not yet applied.
    pub bytes: u64,
    /// Age of the oldest unapplied record (ms), from its time of receipt.
    pub oldest_age_ms: Option<u64>,
    /// Changes the replayer applied since start.
    pub replayed: u64,
    /// Records appended since start.
    pub appended: u64,
    /// Writes (each one `fdatasync`) since start: fewer than `appended` when
    /// concurrent requests shared one (group commit).
    pub fsyncs: u64,
    /// Changes refused since start because a cap was reached (their providers got
    /// 503 and retry).
    pub refused: u64,
    /// The overall cap on unapplied records.
    pub max_records: u64,
    /// The overall cap on unapplied bytes.
    pub max_bytes: u64,
    /// True when the spool takes no more changes at all (an overall cap is reached).
    pub full: bool,
}

/// The `/metrics` answer: the gauges read at scrape time (Redis health, the spool's
/// numbers), then every metric.
pub fn scrape(redis_up: bool, spool: Option<&SpoolStats>) -> String {
    let m = metrics();
    m.redis_up.set(i64::from(redis_up));
    if let Some(s) = spool {
        m.spool_records.set(s.records as i64);
        m.spool_bytes.set(s.bytes as i64);
        m.spool_oldest_age_seconds
            .set(s.oldest_age_ms.unwrap_or(0) as f64 / 1000.0);
        m.spool_full.set(i64::from(s.full));
        m.spool_max_records.set(s.max_records as i64);
        m.spool_max_bytes.set(s.max_bytes as i64);
    }
    m.encode()
}

/// A change the spool refused at `cap` (`records`, `bytes`, `tenant_records`,
/// `tenant_bytes`): counted here; the request's refusal is logged with it.
pub fn spool_refused(cap: &'static str) {
    metrics()
        .spool_refused
        .get_or_create(&SpoolCapLabels { cap })
        .inc();
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// A reason as a metric label: link campaigns (`link:CAMPAIGN`) are unbounded, so they
/// fold into `link`.
pub fn reason_label(reason: &str) -> String {
    if reason.starts_with("link:") {
        "link".to_string()
    } else {
        reason.to_string()
    }
}

/// The route family of a request, a bounded label: for a webhook, `provider` (the
/// registry's name for the route's provider, which the caller looks up: this floor
/// names no provider) or `unknown`; `api`, `link`, `console`, `metrics`, `health`,
/// `unknown` otherwise.
pub fn route_label(segments: &[&str], provider: Option<&'static str>) -> &'static str {
    match segments {
        ["webhooks", ..] => provider.unwrap_or("unknown"),
        ["v1", ..] | ["openapi.json"] => "api",
        ["u", ..] => "link",
        ["console", ..] => "console",
        ["metrics"] => "metrics",
        ["healthz"] | ["readyz"] => "health",
        _ => "unknown",
    }
}

/// What the server learns about one request while answering it: the tenant once it is
/// resolved and trusted (never a raw path segment, which would make the tenant label
/// unbounded), how it went, and why a signature failed.
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// The configured tenant the request was for.
    pub tenant: Option<String>,
    /// How it went; derived from the status when unset.
    pub outcome: Option<&'static str>,
    /// Which verification check failed, for a 401.
    pub verification: Option<&'static str>,
}

/// The span every request runs in; [`request_finished`] fills in what is learnt.
pub fn request_span(route: &'static str, method: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        route,
        method,
        tenant = tracing::field::Empty,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// How a webhook that was answered 2xx went.
pub fn webhook_outcome(
    events: usize,
    changed: usize,
    duplicates: usize,
    spooled: usize,
) -> &'static str {
    if spooled > 0 {
        "spooled"
    } else if changed > 0 {
        "applied"
    } else if events == 0 {
        "ignored"
    } else if duplicates == events {
        "duplicate"
    } else {
        "unchanged"
    }
}

/// Count and close one request: the request counter and latency, the verification
/// failure counter for a 401 on a webhook route, and the span's fields.
pub fn request_finished(
    span: &tracing::Span,
    route: &'static str,
    info: RequestInfo,
    status: u16,
    elapsed: std::time::Duration,
) {
    let outcome = info.outcome.unwrap_or(match status {
        200..=399 => "ok",
        503 => "unavailable",
        400..=499 => "refused",
        _ => "error",
    });
    let tenant = info.tenant.unwrap_or_default();
    // One record call for the three fields: a formatting subscriber re-renders the
    // span's fields on every call.
    if let Some(meta) = span.metadata() {
        let fields = meta.fields();
        if let (Some(t), Some(o), Some(s)) = (
            fields.field("tenant"),
            fields.field("outcome"),
            fields.field("status"),
        ) {
            span.record_all(&fields.value_set(&[
                (&t, Some(&tenant.as_str() as &dyn tracing::Value)),
                (&o, Some(&outcome as &dyn tracing::Value)),
                (&s, Some(&status as &dyn tracing::Value)),
            ]));
        }
    }
    let m = metrics();
    if status == 401 && !matches!(route, "api" | "link" | "metrics" | "health" | "unknown") {
        m.verification_failures
            .get_or_create(&VerificationLabels {
                provider: route,
                reason: info.verification.unwrap_or("rejected"),
            })
            .inc();
    }
    m.requests
        .get_or_create(&RequestLabels {
            provider: route,
            tenant,
            outcome,
            status,
        })
        .inc();
    m.request_seconds
        .get_or_create(&ProviderLabels { provider: route })
        .observe(elapsed.as_secs_f64());
}

/// The log lines of an answered webhook: one `debug` line for a success (the request
/// counter already counts it: at thousands a second an `info` line each would cost
/// more than the work), a `debug` line per record without a DND signal, a `warn` line
/// per refused batch part and per event for an account no tenant owns (all three
/// counted in `events_ignored`), and a `warn` line for a refusal, its one-line reason
/// with addresses masked.
pub fn webhook_answered(
    provider: &str,
    label: &'static str,
    report: &Report,
    status: u16,
    body: &str,
    peer: std::net::SocketAddr,
) {
    let tenant = report.tenant.as_deref().unwrap_or("-");
    if status < 400 {
        tracing::debug!(
            provider,
            tenant,
            status,
            events = report.events,
            changed = report.changed,
            duplicates = report.duplicates,
            spooled = report.spooled,
            "webhook accepted"
        );
        for why in &report.rejected {
            tracing::warn!(provider, why = %crate::redact::text(why), "event in a batch refused");
        }
        // No DND signal (deliveries, opens, clicks): thousands a second at volume, and
        // nothing an operator must act on; the metric counts them.
        for why in &report.skipped {
            tracing::debug!(
                provider,
                tenant,
                why = %crate::redact::text(why),
                "record without a DND signal ignored"
            );
        }
        for why in &report.unrouted {
            tracing::warn!(
                provider,
                why = %crate::redact::text(why),
                "event for an account no tenant owns skipped"
            );
        }
        events_ignored(label, "no_signal", report.skipped.len());
        events_ignored(label, "unreadable", report.rejected.len());
        events_ignored(label, "unknown_account", report.unrouted.len());
    } else {
        webhook_refused(provider, tenant, status, body, peer);
    }
}

/// Count `n` webhook records of `provider` accepted without a DND change, as `kind`.
fn events_ignored(provider: &'static str, kind: &'static str, n: usize) {
    if n > 0 {
        metrics()
            .events_ignored
            .get_or_create(&IgnoredLabels { provider, kind })
            .inc_by(n as u64);
    }
}

/// A refused webhook: one `warn` line with its one-line reason, addresses masked.
pub fn webhook_refused(
    provider: &str,
    tenant: &str,
    status: u16,
    error: &str,
    peer: std::net::SocketAddr,
) {
    tracing::warn!(
        provider,
        tenant,
        status,
        error = %crate::redact::text(error.trim_end()),
        %peer,
        "webhook refused"
    );
}

/// One normalised event, counted by provider and kind.
pub fn event_seen(event: &crate::event::ChannelEvent) {
    use crate::event::EventKind;
    let kind = match event.kind {
        EventKind::Inbound { .. } => "inbound",
        EventKind::Preference { .. } | EventKind::GroupPreference { .. } => "preference",
        EventKind::Complaint => "complaint",
        EventKind::DeliveryStatus { .. } => "delivery_status",
    };
    metrics()
        .events
        .get_or_create(&EventLabels {
            provider: event.provider.as_str(),
            kind,
        })
        .inc();
}

/// One DND record touched by an event: the log line (address masked) and, when the
/// record was written, the change counter. `outcome` is the store's word for what
/// happened; `state` the record's state after a write (`permanent`, `temporary`,
/// `marketing`, `cleared`), `None` when nothing was written.
pub fn dnd_record(
    tenant: &str,
    provider: &str,
    scope: crate::event::Scope,
    address: &str,
    outcome: &str,
    state: Option<&'static str>,
    reason: &str,
) {
    tracing::info!(
        tenant,
        provider,
        scope = scope.as_str(),
        address = %crate::redact::Masked(address),
        outcome,
        reason,
        "dnd record"
    );
    let Some(state) = state else {
        return;
    };
    metrics()
        .dnd_changes
        .get_or_create(&ChangeLabels {
            channel: scope.as_str(),
            state,
            reason: reason_label(reason),
        })
        .inc();
}

/// How a lookup call's addresses came out.
#[derive(Debug, Default, Clone, Copy)]
pub struct LookupCounts {
    /// May be sent to.
    pub allowed: u64,
    /// On DND.
    pub blocked: u64,
    /// Could not be normalised.
    pub invalid: u64,
    /// Redis did not answer (fail closed).
    pub error: u64,
}

impl LookupCounts {
    /// `n` allowed.
    pub fn allowed(n: u64) -> LookupCounts {
        LookupCounts {
            allowed: n,
            ..Default::default()
        }
    }
    /// `n` blocked.
    pub fn blocked(n: u64) -> LookupCounts {
        LookupCounts {
            blocked: n,
            ..Default::default()
        }
    }
    /// `n` invalid.
    pub fn invalid(n: u64) -> LookupCounts {
        LookupCounts {
            invalid: n,
            ..Default::default()
        }
    }
    /// `n` unanswered.
    pub fn error(n: u64) -> LookupCounts {
        LookupCounts {
            error: n,
            ..Default::default()
        }
    }
}

/// Count one lookup call (`single` or `batch`) and its latency.
pub fn lookup_done(kind: &'static str, counts: &LookupCounts, elapsed: std::time::Duration) {
    let m = metrics();
    for (outcome, n) in [
        ("allowed", counts.allowed),
        ("blocked", counts.blocked),
        ("invalid", counts.invalid),
        ("error", counts.error),
    ] {
        if n > 0 {
            m.lookups
                .get_or_create(&LookupLabels { kind, outcome })
                .inc_by(n);
        }
    }
    m.lookup_seconds
        .get_or_create(&LookupKindLabels { kind })
        .observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_help_and_type() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                provider: "twilio",
                tenant: "acme".into(),
                outcome: "applied",
                status: 200,
            })
            .inc();
        m.lookup_seconds
            .get_or_create(&LookupKindLabels { kind: "single" })
            .observe(0.0003);
        let text = m.encode();
        assert!(
            text.contains(
                "dndgate_requests_total{provider=\"twilio\",tenant=\"acme\",outcome=\"applied\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE dndgate_lookup_duration_seconds histogram"));
        assert!(
            text.contains(
                "dndgate_lookup_duration_seconds_bucket{le=\"0.0004\",kind=\"single\"} 1"
            ) || text.contains(
                "dndgate_lookup_duration_seconds_bucket{kind=\"single\",le=\"0.0004\"} 1"
            ),
            "{text}"
        );
        for name in [
            "dndgate_redis_up",
            "dndgate_spool_records",
            "dndgate_spool_bytes",
            "dndgate_spool_oldest_age_seconds",
            "dndgate_redis_errors_total",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(reason_label("link:nov-sale"), "link");
        assert_eq!(reason_label("twilio:30003"), "twilio:30003");
    }
}
