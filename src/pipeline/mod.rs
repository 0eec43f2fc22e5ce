//! The shared road every webhook walks: route -> the provider's road (tenant and
//! secrets, verify, parse, normalise: `crate::providers`) -> classify -> apply or spool
//! -> answer. Each step is one function named for it; data moves forward only. This
//! module knows neither hyper (the server hands it a plain [`WebhookRequest`]), nor any
//! provider by name (the registry dispatches), nor the Redis layout (the store does).
//! The unsubscribe links' road (`links`) shares the apply-or-spool step.

use std::sync::Arc;
use std::time::Duration;

use crate::classify::{self, Decision};
use crate::config::{Config, Tenant};
use crate::error::Error;
use crate::event::ChannelEvent;
use crate::providers::{Provider, UnknownProvider};
use crate::road::{Delivery, Host, HostFuture, Once, Reply, Routed};
use crate::spool::{Spool, SpoolError, SpooledChange};
use crate::state;
use crate::store::{Claim, Store, StoreError};

mod links;

pub use crate::road::{Answer, EMPTY_TWIML, WebhookMethod, WebhookRequest};
/// How one request went ([`crate::telemetry::Report`]).
pub use crate::telemetry::Report;
/// The clock ([`crate::time::now_ms`]), where the road reads it.
pub use crate::time::now_ms;

/// The 200 answer for a batch: how many events were applied, and one line per part
/// refused, skipped or for no tenant.
pub fn batch_answer(report: &Report) -> Answer {
    let mut text = format!("applied {} event(s)", report.events);
    for (what, lines) in [
        ("refused", &report.rejected),
        ("skipped", &report.skipped),
        ("for no tenant", &report.unrouted),
    ] {
        if !lines.is_empty() {
            text.push_str(&format!("; {what} {}: {}", lines.len(), lines.join("; ")));
        }
    }
    text.push('\n');
    Answer::text(200, text)
}

/// The answer to a request whose road went through, as the road asked.
fn answer(reply: Reply, report: &Report) -> Answer {
    match reply {
        Reply::Summary => batch_answer(report),
        Reply::Twiml => Answer {
            content_type: "text/xml",
            ..Answer::text(200, EMPTY_TWIML)
        },
        Reply::Empty => Answer::text(200, ""),
        Reply::Text(text) => Answer::text(200, text),
    }
}

/// The provider whose route is `segment`, or 404 naming the ones served.
fn route(segment: &str) -> Result<Provider, Error> {
    Provider::from_route(segment)
        .ok_or_else(|| Error::not_found(UnknownProvider(segment.to_string()).to_string()))
}

/// Everything a request needs, shared by all requests.
pub struct Gateway {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The DND store.
    pub store: Store,
    /// Outbound GETs (SNS certificates and subscription confirmations).
    pub fetch: Arc<dyn crate::fetch::Fetch>,
    /// The durable spool for when Redis is down or slow (SPEC section 8); without one,
    /// such a request gets 503.
    pub spool: Option<Spool>,
}

/// Where a change went: Redis, or the spool (its sequence number, to wait for).
#[derive(Debug)]
pub(crate) enum Placed {
    /// Applied to Redis.
    Redis(state::Outcomes),
    /// Appended to the spool, not yet fsync'd.
    Spool(u64),
}

/// Why a change went nowhere.
#[derive(Debug)]
pub(crate) enum NotPlaced {
    /// Redis failed and there is no spool (or Redis refused the change).
    Store(StoreError),
    /// Redis is down and the spool cannot take the change (a cap, a write error).
    Spool(SpoolError),
}

impl From<NotPlaced> for Error {
    fn from(e: NotPlaced) -> Error {
        match e {
            NotPlaced::Store(e) => e.into(),
            NotPlaced::Spool(e) => {
                Error::unavailable(format!("redis unavailable and {e}; retry later"))
            }
        }
    }
}

impl Host for Gateway {
    fn public_url(&self) -> &str {
        &self.config.public_url
    }

    fn dedup_ttl(&self) -> Duration {
        self.config.dedup_ttl
    }

    fn has_tenant(&self, id: &str) -> bool {
        self.config.tenants.contains_key(id)
    }

    fn fetch(&self) -> &dyn crate::fetch::Fetch {
        self.fetch.as_ref()
    }

    fn claim_once<'a>(&'a self, once: Once<'a>) -> HostFuture<'a, bool> {
        Box::pin(async move {
            let Once {
                key,
                provider,
                token,
                request,
                ttl,
            } = once;
            let claim = self
                .store
                .claim_once(key, provider, token, request, ttl)
                .await?;
            Ok(claim != Claim::Other)
        })
    }
}

impl Gateway {
    /// A gateway over `store` with `config`, fetching through `fetch`, spooling to
    /// `spool` when Redis is down.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        fetch: Arc<dyn crate::fetch::Fetch>,
        spool: Option<Spool>,
    ) -> Gateway {
        Gateway {
            config,
            store,
            fetch,
            spool,
        }
    }

    /// Handle one webhook request from route to answer.
    pub async fn webhook(&self, req: WebhookRequest) -> (Answer, Report) {
        let mut report = Report::default();
        let answer = match self.webhook_steps(&req, &mut report).await {
            Ok(answer) => match self.spool_durable(&report).await {
                Ok(()) => answer,
                Err(e) => Answer::from_error(&e),
            },
            Err(e) => {
                report.verification = e.reason;
                Answer::from_error(&e)
            }
        };
        (retry_as_the_provider_asks(&req.provider, answer), report)
    }

    /// Route, walk the provider's road, then classify and apply what it delivered.
    async fn webhook_steps(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let provider = route(&req.provider)?;
        let (delivery, walked) = self.config.providers.handle(provider, req, self).await;
        report.tenant = delivery.tenant.clone();
        walked?;
        let Delivery {
            received_ms,
            events,
            rejected,
            skipped,
            unrouted,
            reply,
            ..
        } = delivery;
        report.rejected = rejected;
        report.skipped = skipped;
        report.unrouted = unrouted;
        let codes = self.config.providers.codes(provider);
        for Routed { tenant, event } in &events {
            let tenant = self
                .config
                .tenants
                .get(tenant)
                .ok_or_else(|| Error::not_found(format!("unknown tenant {tenant:?}")))?;
            report.tenant.get_or_insert_with(|| tenant.id.clone());
            report.events += 1;
            crate::telemetry::event_seen(event);
            let decision = classify::classify(event, &tenant.keywords, codes);
            self.apply(tenant, event, &decision, received_ms, report)
                .await?;
        }
        Ok(answer(reply, report))
    }

    /// The registry's name of the provider a route segment names (an alias resolves to
    /// its provider), for metric labels; `None` for no provider.
    pub fn provider_name(&self, segment: &str) -> Option<&'static str> {
        route(segment).ok().map(Provider::as_str)
    }

    /// Whether `provider` (a route segment) may send its webhooks by GET
    /// ([`About::get_webhooks`](crate::road::About::get_webhooks)).
    pub fn takes_get(&self, provider: &str) -> bool {
        route(provider).is_ok_and(|p| p.about().get_webhooks)
    }

    /// Answer a GET or HEAD on a provider's route (Meta's hub.challenge, Mandrill's
    /// check); `query` is the raw query string.
    pub fn handshake(&self, provider: &str, query: &str) -> Answer {
        route(provider)
            .and_then(|p| self.config.providers.handshake(p, query))
            .unwrap_or_else(|e| Answer::from_error(&e))
    }

    /// Apply one classified event of a webhook (stops the request at the first store
    /// failure: the provider retries the whole request, and what was applied is
    /// deduplicated then).
    pub(crate) async fn apply(
        &self,
        tenant: &Tenant,
        event: &ChannelEvent,
        decision: &Decision,
        received_ms: i64,
        report: &mut Report,
    ) -> Result<(), Error> {
        let Some(action) = state::store_action(decision.action) else {
            return Ok(());
        };
        let request = state::Request {
            address: &event.address,
            scopes: state::event_scopes(event, decision.action, &tenant.policy),
            action,
            reason: &decision.reason,
            provider: event.provider,
            event_id: &event.event_id,
            // As the provider says: state::apply clamps it to the time of receipt on
            // every road (the spool keeps `received_ms`, so a replay clamps alike).
            event_ms: event.event_time_ms,
            received_ms,
            now_ms: received_ms,
            actor: None,
            evidence: None,
        };
        match self.place(tenant, &request, true).await? {
            Placed::Redis(outcomes) => {
                report.duplicates += usize::from(outcomes.duplicate);
                report.changed += outcomes.changed();
            }
            Placed::Spool(seq) => {
                report.spooled += 1;
                report.spool_seqs = Some(match report.spool_seqs {
                    Some((first, _)) => (first, seq),
                    None => (seq, seq),
                });
            }
        }
        Ok(())
    }

    /// The one apply-or-spool decision, for webhooks and links alike. With `spool`
    /// allowed and a spool configured, the change goes to the spool (not yet fsync'd:
    /// the caller waits for that before its 2xx) when earlier changes wait there (it
    /// queues behind them, and its tenant's marker is in Redis before this returns) or
    /// when Redis is unavailable; otherwise it is applied to Redis.
    pub(crate) async fn place(
        &self,
        tenant: &Tenant,
        request: &state::Request<'_>,
        spool: bool,
    ) -> Result<Placed, NotPlaced> {
        let spool = self.spool.as_ref().filter(|_| spool);
        let append = |spool: &Spool| {
            spool
                .append(&SpooledChange::new(&tenant.id, request))
                .map(Placed::Spool)
                .map_err(NotPlaced::Spool)
        };
        if let Some(spool) = spool
            && spool.must_spool()
        {
            let placed = append(spool)?;
            spool.mark_tenant(&self.store, &tenant.id).await;
            return Ok(placed);
        }
        match state::apply(&self.store, tenant, request).await {
            Ok(outcomes) => Ok(Placed::Redis(outcomes)),
            Err(StoreError::Unavailable(why)) if spool.is_some() => {
                let spool = spool.expect("checked");
                tracing::warn!(
                    error = %crate::redact::text(&why),
                    event_id = %crate::redact::EventId(request.event_id),
                    "redis unavailable: spooling"
                );
                spool.redis_failed();
                append(spool)
            }
            Err(e) => Err(NotPlaced::Store(e)),
        }
    }

    /// Wait until what this request put in the spool is fsync'd.
    async fn spool_durable(&self, report: &Report) -> Result<(), Error> {
        match (&self.spool, report.spool_seqs) {
            (Some(spool), Some((first, last))) => spool.durable(first, last).await.map_err(|e| {
                tracing::error!(error = %e, "redis unavailable and the spool cannot be written");
                Error::unavailable(format!("redis unavailable and {e}; retry later"))
            }),
            _ => Ok(()),
        }
    }

    /// The public listener's readiness answer: the status of [`Gateway::readiness`]
    /// and one word, nothing else (no tenant, count, Redis error or spool size: those
    /// are on the admin listener).
    pub async fn readiness_bare(&self) -> Answer {
        let mut answer = self.readiness().await;
        answer.body = if answer.status == 200 {
            "ready\n".to_string()
        } else {
            "not ready\n".to_string()
        };
        answer
    }

    /// The readiness answer: 200 when Redis answers, or when it does not but the spool
    /// takes changes; 503 when neither, or when the spool is at its overall cap
    /// (webhooks get 503 then). The spool's numbers, caps and the tenants at their caps
    /// either way.
    pub async fn readiness(&self) -> Answer {
        let redis = self.store.ping().await;
        let stats = self.spool.as_ref().map(|s| s.stats());
        let full = stats.is_some_and(|s| s.full);
        let mut body = String::new();
        let ready = (redis.is_ok() || self.spool.is_some()) && !full;
        body.push_str(if ready { "ready\n" } else { "not ready\n" });
        match &redis {
            Ok(()) => body.push_str("redis: ok\n"),
            Err(e) => body.push_str(&format!("redis: {e}\n")),
        }
        match (&self.spool, stats) {
            (Some(spool), Some(s)) => {
                body.push_str(&format!(
                    "spool: records={} bytes={} oldest_age_ms={}\n",
                    s.records,
                    s.bytes,
                    s.oldest_age_ms.unwrap_or(0)
                ));
                let l = spool.limits();
                body.push_str(&format!(
                    "spool limits: max_records={} max_bytes={} tenant_max_records={} tenant_max_bytes={} refused={}\n",
                    l.max_records, l.max_bytes, l.tenant_max_records, l.tenant_max_bytes, s.refused
                ));
                if full {
                    body.push_str("spool: full: webhooks get 503 until the replay makes room\n");
                }
                for tenant in spool.tenants_at_cap() {
                    body.push_str(&format!(
                        "spool: tenant {tenant} at its cap: its webhooks get 503\n"
                    ));
                }
            }
            _ => body.push_str("spool: none (webhooks get 503 while redis is down)\n"),
        }
        let mut answer = Answer::text(if ready { 200 } else { 503 }, body);
        if !ready {
            answer.retry_after = Some(5);
        }
        answer
    }
}

/// A 503 ("try again") in the status `provider` retries
/// ([`About::retry_status`](crate::road::About::retry_status)); the Retry-After stays.
fn retry_as_the_provider_asks(provider: &str, mut answer: Answer) -> Answer {
    if answer.status == 503
        && let Ok(p) = route(provider)
    {
        answer.status = p.about().retry_status;
    }
    answer
}
