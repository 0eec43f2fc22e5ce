//! The Standard Webhooks road (Resend and other Svix-style senders), on
//! `POST /webhooks/standard-webhooks/{tenant}` and its alias `/webhooks/resend/{tenant}`:
//! tenant from the path -> verify the signature and the timestamp window -> parse and
//! normalise (one event per recipient) -> classify -> apply -> answer.

use super::{Answer, Gateway, Report, WebhookRequest, batch_answer, now_ms};
use crate::error::{Error, Kind};
use crate::event::Provider;
use crate::signature::standard_webhooks::{SignedHeaders, verify_standard_webhooks};
use crate::standard_webhooks;

impl Gateway {
    /// Handle a Standard Webhooks request.
    ///
    /// The signature covers the message id, the timestamp and the raw body; a timestamp
    /// more than five minutes from our clock either way is refused (401), and a replay
    /// inside the window is applied once, because the message id is the event id the
    /// store deduplicates on. A body that verifies but cannot be read is 400; an event
    /// type we do not act on is 200.
    pub(super) async fn standard_webhooks(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let tenant =
            self.path_tenant(req, "standard-webhooks", |t| t.standard_webhooks.is_some())?;
        report.tenant = Some(tenant.id.clone());
        let secrets = tenant
            .standard_webhooks
            .as_ref()
            .map(|s| s.secrets.as_slice())
            .unwrap_or_default();
        let headers = SignedHeaders::from_request(|name| req.header(name));
        let received_ms = now_ms();
        let message_id =
            verify_standard_webhooks(&headers, &req.body, secrets, received_ms.div_euclid(1000))?;
        if req.content_type.as_deref() != Some("application/json") {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: Standard Webhooks senders post application/json",
                    req.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        let normalised = standard_webhooks::normalise(message_id, &req.body, received_ms)?;
        report.rejected.extend(normalised.rejected);
        report.skipped.extend(normalised.ignored);
        self.apply_events(
            tenant,
            &normalised.events,
            self.config.codes(Provider::StandardWebhooks),
            received_ms,
            report,
        )
        .await?;
        Ok(batch_answer(report))
    }
}
