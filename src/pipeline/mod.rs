//! The webhook road: route -> tenant and secrets -> verify -> parse -> normalise ->
//! classify -> apply -> answer. Each step is one function named for it; data moves
//! forward only. This module knows neither hyper (the server hands it a plain
//! [`WebhookRequest`]) nor the Redis layout (the store does).

use std::sync::Arc;

use crate::classify::{self, Decision};
use crate::config::{Config, Tenant};
use crate::error::{Error, Kind};
use crate::event::ChannelEvent;
use crate::meta;

mod links;
mod mailgun;
mod postmark;
mod sendgrid;
mod ses;
mod standard_webhooks;
use crate::signature::{self, TwilioSigned};
use crate::state;
use crate::store::{Store, StoreError};
use crate::twilio::{self, CallbackKind};

/// A webhook request as the server received it: no hyper types. Its `Debug` shows
/// header names only and the body's length, never credentials or addresses.
#[derive(Clone)]
pub struct WebhookRequest {
    /// The provider segment of the path.
    pub provider: String,
    /// The tenant segment of the path, when the provider posts per tenant.
    pub tenant: Option<String>,
    /// Path and query exactly as received; with the configured public URL in front it
    /// is the URL the provider signed.
    pub path_and_query: String,
    /// The media type of the body, lower-cased, without parameters.
    pub content_type: Option<String>,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("provider", &self.provider)
            .field("tenant", &self.tenant)
            .field("content_type", &self.content_type)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl WebhookRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Seconds for a `Retry-After` header (503 only).
    pub retry_after: Option<u32>,
    /// A `Location` header (303 after a preference form).
    pub location: Option<String>,
}

impl Answer {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            retry_after: None,
            location: None,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.to_string(),
            retry_after: None,
            location: None,
        }
    }

    /// The answer for an error on a webhook route: its status and one line of text.
    pub fn from_error(e: &Error) -> Answer {
        let mut answer = Answer::text(e.kind.status(), format!("{}\n", e.message));
        if e.kind == Kind::Unavailable {
            answer.retry_after = Some(5);
        }
        answer
    }
}

/// The providers this gateway serves, for error messages.
pub const PROVIDERS: &str = "twilio, meta, sendgrid, mailgun, postmark, ses and standard-webhooks";

/// The 200 answer for a batch: how many events were applied, and one line per part
/// refused, skipped or for no tenant.
pub fn batch_answer(report: &Report) -> Answer {
    let mut text = format!("applied {} event(s)", report.events);
    if !report.rejected.is_empty() {
        text.push_str(&format!(
            "; refused {}: {}",
            report.rejected.len(),
            report.rejected.join("; ")
        ));
    }
    if !report.skipped.is_empty() {
        text.push_str(&format!(
            "; skipped {}: {}",
            report.skipped.len(),
            report.skipped.join("; ")
        ));
    }
    if !report.unrouted.is_empty() {
        text.push_str(&format!(
            "; for no tenant {}: {}",
            report.unrouted.len(),
            report.unrouted.join("; ")
        ));
    }
    text.push('\n');
    Answer::text(200, text)
}

/// An empty TwiML document: Twilio sends no reply to the contact.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// Everything a request needs, shared by all requests.
pub struct Gateway {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The DND store.
    pub store: Store,
    /// Outbound GETs (SNS certificates and subscription confirmations).
    pub fetch: Arc<dyn crate::fetch::Fetch>,
    /// SNS signing certificates fetched so far, by URL.
    pub sns_certs: crate::signature::sns::CertCache,
    /// The durable spool for when Redis is down or slow (SPEC section 8); without one,
    /// such a request gets 503.
    pub spool: Option<crate::spool::Spool>,
}

/// The clock ([`crate::time::now_ms`]), where the road reads it.
pub use crate::time::now_ms;

/// How an account is named in a log line and an answer.
fn account_label(account: &meta::AccountId) -> String {
    match account {
        meta::AccountId::WhatsappPhoneNumberId(id) => format!("whatsapp phone number id {id}"),
        meta::AccountId::WhatsappBusinessAccount(id) => format!("whatsapp business account {id}"),
        meta::AccountId::Page(id) => format!("page {id}"),
        meta::AccountId::Instagram(id) => format!("instagram account {id}"),
    }
}

/// How one request went, for the log line and the tests.
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

impl Gateway {
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
        (answer, report)
    }

    async fn webhook_steps(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        match req.provider.as_str() {
            "twilio" => self.twilio(req, report).await,
            "meta" => self.meta(req, report).await,
            "sendgrid" => self.sendgrid(req, report).await,
            "mailgun" => self.mailgun(req, report).await,
            "postmark" => self.postmark(req, report).await,
            "ses" => self.ses(req, report).await,
            "standard-webhooks" | "resend" => self.standard_webhooks(req, report).await,
            other => Err(Error::not_found(format!(
                "unknown provider {other:?}: this gateway serves {PROVIDERS}"
            ))),
        }
    }

    /// The tenant named in the path, for providers that post per tenant; the error
    /// names the provider's configuration table when the tenant has none.
    pub(crate) fn path_tenant(
        &self,
        req: &WebhookRequest,
        provider: &str,
        configured: impl Fn(&Tenant) -> bool,
    ) -> Result<&Tenant, Error> {
        let id = req.tenant.as_deref().ok_or_else(|| {
            Error::not_found(format!(
                "post {provider} webhooks to /webhooks/{provider}/{{tenant}}"
            ))
        })?;
        let tenant = self
            .config
            .tenants
            .get(id)
            .ok_or_else(|| Error::not_found(format!("unknown tenant {id:?}")))?;
        if configured(tenant) {
            Ok(tenant)
        } else {
            Err(Error::not_found(format!(
                "tenant {id:?} has no [tenants.{id}.{}] configuration",
                provider.replace('-', "_")
            )))
        }
    }

    /// Classify and apply a tenant's events, in order; `codes` is the provider's
    /// error table. Stops at the first store failure (the provider retries the whole
    /// request; what was applied is deduplicated then).
    pub(crate) async fn apply_events(
        &self,
        tenant: &Tenant,
        events: &[ChannelEvent],
        codes: &classify::ErrorTable,
        received_ms: i64,
        report: &mut Report,
    ) -> Result<(), Error> {
        report.tenant.get_or_insert_with(|| tenant.id.clone());
        for event in events {
            report.events += 1;
            crate::telemetry::event_seen(event);
            let decision = classify::classify(event, &tenant.keywords, codes);
            self.apply(tenant, event, &decision, received_ms, report)
                .await?;
        }
        Ok(())
    }

    /// Answer a provider's GET handshake (Meta's hub.challenge). `query` is the raw
    /// query string.
    pub fn handshake(&self, provider: &str, query: &str) -> Answer {
        let result = match provider {
            "meta" => match &self.config.meta {
                Some(app) => meta::verify_handshake(query, &app.verify_tokens)
                    .map(|challenge| Answer::text(200, challenge)),
                None => Err(Error::not_found(
                    "no [meta] app is configured on this gateway",
                )),
            },
            "twilio" => Err(Error::new(
                Kind::MethodNotAllowed,
                "Twilio posts its webhooks: use POST",
            )),
            other => Err(Error::not_found(format!(
                "unknown provider {other:?}: this gateway serves {PROVIDERS}"
            ))),
        };
        result.unwrap_or_else(|e| Answer::from_error(&e))
    }

    /// Meta: one callback URL for every tenant. Verify the whole body with the app
    /// secret, then route each event to the tenant that owns the event's own account
    /// ([`meta::MetaEvent::account`]: the phone number id of its change, or the page or
    /// Instagram account of its entry), never by another id of the same entry: one
    /// business account can hold numbers of several tenants, and a number nobody
    /// configured is nobody's. Events for accounts no tenant owns are skipped and
    /// counted, never failing the rest.
    async fn meta(&self, req: &WebhookRequest, report: &mut Report) -> Result<Answer, Error> {
        let app = self
            .config
            .meta
            .as_ref()
            .ok_or_else(|| Error::not_found("no [meta] app is configured on this gateway"))?;
        if req.content_type.as_deref() != Some("application/json") {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: Meta posts application/json",
                    req.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        signature::verify_meta(
            &req.body,
            req.header("x-hub-signature-256"),
            &app.app_secrets,
        )?;
        let webhook = meta::parse(&req.body)?;
        let only = match &req.tenant {
            Some(id) => Some(
                self.config
                    .tenants
                    .get(id)
                    .ok_or_else(|| Error::not_found(format!("unknown tenant {id:?}")))?,
            ),
            None => None,
        };
        let received_ms = now_ms();
        for entry in &webhook.entries {
            let normalised = meta::normalise_entry(webhook.object, entry, received_ms);
            report.rejected.extend(normalised.rejected);
            for meta_event in &normalised.events {
                let tenant = self
                    .config
                    .tenant_for_meta(&meta_event.account)
                    .filter(|t| only.is_none_or(|o| o.id == t.id));
                let Some(tenant) = tenant else {
                    report.unrouted.push(format!(
                        "entry {}: {} belongs to no tenant",
                        entry.index,
                        account_label(&meta_event.account)
                    ));
                    continue;
                };
                let events = std::slice::from_ref(&meta_event.event);
                self.apply_events(
                    tenant,
                    events,
                    self.config.codes(crate::event::Provider::Meta),
                    received_ms,
                    report,
                )
                .await?;
            }
        }
        Ok(batch_answer(report))
    }

    async fn twilio(&self, req: &WebhookRequest, report: &mut Report) -> Result<Answer, Error> {
        // Form callbacks: Twilio signs the decoded parameters, and the shared URL names
        // its tenant by AccountSid, so the form is decoded before the tenant is known.
        // JSON (Event Streams) bodies are signed through the bodySHA256 query parameter.
        let form = match req.content_type.as_deref() {
            Some("application/x-www-form-urlencoded") => Some(twilio::parse_form(&req.body)?),
            Some("application/json") => None,
            other => {
                return Err(Error::new(
                    Kind::UnsupportedMediaType,
                    format!(
                        "content type {} is not accepted: Twilio posts application/x-www-form-urlencoded (or application/json from Event Streams)",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
        };
        let (tenant, twilio) = self.twilio_tenant(req, form.as_deref())?;
        report.tenant = Some(tenant.id.clone());
        // A JSON body is signed through the URL alone, which a form signature can be
        // made to read as (see `signature::verify_twilio`): only a tenant that asked
        // for Event Streams takes one.
        if form.is_none() && !twilio.event_streams {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "tenant {:?} takes no Twilio Event Streams (JSON): set event_streams = true under [tenants.{}.twilio] to accept them",
                    tenant.id, tenant.id
                ),
            ));
        }
        let tokens = twilio.auth_tokens.as_slice();
        let url = format!("{}{}", self.config.public_url, req.path_and_query);
        let signed = match &form {
            Some(params) => TwilioSigned::Form(params),
            None => TwilioSigned::Json(&req.body),
        };
        signature::verify_twilio(&url, signed, req.header("x-twilio-signature"), tokens)?;
        let received_ms = now_ms();
        let normalised = match &form {
            Some(params) => twilio::normalise(params, received_ms)?,
            None => twilio::normalise_event_streams(&req.body, received_ms)?,
        };
        if let Some(status) = &normalised.unaddressed {
            self.twilio_unaddressed(tenant, status);
        }
        self.apply_events(
            tenant,
            &normalised.events,
            self.config.codes(crate::event::Provider::Twilio),
            received_ms,
            report,
        )
        .await?;
        if !normalised.rejected.is_empty() {
            report.rejected = normalised.rejected.clone();
            return Ok(Answer::text(
                200,
                format!(
                    "applied {} event(s); refused {}: {}\n",
                    normalised.events.len(),
                    normalised.rejected.len(),
                    normalised.rejected.join("; ")
                ),
            ));
        }
        Ok(match normalised.kind {
            CallbackKind::Inbound => Answer {
                status: 200,
                content_type: "text/xml",
                body: EMPTY_TWIML.to_string(),
                retry_after: None,
                location: None,
            },
            CallbackKind::Status => Answer::text(200, ""),
        })
    }

    /// A status callback without `To` is answered 2xx and counted as ignored: a retry
    /// would bring no `To` either. When its error code would have been a DND, that is
    /// worth a warning: the contact's record cannot be written from this callback.
    fn twilio_unaddressed(&self, tenant: &Tenant, status: &twilio::UnaddressedStatus) {
        let decision = classify::classify_status(
            crate::event::Provider::Twilio,
            &status.status,
            status.error_code.as_deref(),
            self.config.codes(crate::event::Provider::Twilio),
        );
        if state::store_action(decision.action).is_some() {
            tracing::warn!(
                tenant = %tenant.id,
                message_sid = %status.message_sid,
                reason = %decision.reason,
                "Twilio status callback carries a DND error code but no To: nothing to apply it to"
            );
        }
    }

    /// The tenant a Twilio request belongs to, with its Twilio section.
    fn twilio_tenant(
        &self,
        req: &WebhookRequest,
        form: Option<&[(String, String)]>,
    ) -> Result<(&Tenant, &crate::config::TwilioTenant), Error> {
        let tenant = match &req.tenant {
            Some(id) => self
                .config
                .tenants
                .get(id)
                .ok_or_else(|| Error::not_found(format!("unknown tenant {id:?}")))?,
            None => {
                let sid = form.and_then(twilio::account_sid).ok_or_else(|| {
                    Error::bad_request(
                        "no AccountSid to find the tenant by: post to /webhooks/twilio/{tenant}",
                    )
                })?;
                self.config.tenant_for_twilio_account(sid).ok_or_else(|| {
                    Error::not_found(format!("no tenant is configured for Twilio account {sid}"))
                })?
            }
        };
        match &tenant.twilio {
            Some(twilio) => Ok((tenant, twilio)),
            None => Err(Error::not_found(format!(
                "tenant {:?} has no [tenants.{}.twilio] configuration",
                tenant.id, tenant.id
            ))),
        }
    }

    /// Apply one classified event to the store.
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
        if let Some(spool) = &self.spool
            && spool.must_spool()
        {
            // Earlier changes wait in the spool: this one queues behind them, and its
            // tenant's marker is in Redis before the answer.
            self.to_spool(spool, tenant, &request, report)?;
            spool.mark_tenant(&self.store, &tenant.id).await;
            return Ok(());
        }
        match state::apply(&self.store, tenant, &request).await {
            Ok(outcomes) => {
                report.duplicates += usize::from(outcomes.duplicate);
                report.changed += outcomes.changed();
                Ok(())
            }
            Err(StoreError::Unavailable(why)) if self.spool.is_some() => {
                tracing::warn!(
                    error = %crate::redact::text(&why),
                    event_id = %crate::redact::EventId(request.event_id),
                    "redis unavailable: spooling"
                );
                let spool = self.spool.as_ref().expect("checked");
                spool.redis_failed();
                self.to_spool(spool, tenant, &request, report)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Queue a change for the spool; the request waits for its fsync before answering
    /// (see [`Gateway::webhook`]).
    fn to_spool(
        &self,
        spool: &crate::spool::Spool,
        tenant: &Tenant,
        request: &state::Request<'_>,
        report: &mut Report,
    ) -> Result<(), Error> {
        let seq = spool
            .append(&crate::spool::SpooledChange::new(&tenant.id, request))
            .map_err(|e| Error::unavailable(format!("redis unavailable and {e}; retry later")))?;
        report.spooled += 1;
        report.spool_seqs = Some(match report.spool_seqs {
            Some((first, _)) => (first, seq),
            None => (seq, seq),
        });
        Ok(())
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
                let l = s.limits;
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
