//! The SendGrid road: `POST /webhooks/sendgrid/{tenant}` -> the tenant's verification
//! keys -> ECDSA over timestamp and raw body -> parse the batch -> normalise each event
//! -> classify with `providers/sendgrid.toml` -> apply -> 200 listing refused events.

use super::{Answer, Gateway, Report, WebhookRequest, batch_answer, now_ms};
use crate::error::{Error, Kind};
use crate::event::Provider;
use crate::sendgrid;
use crate::signature::SignatureError;
use crate::signature::sendgrid::{
    SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, verify_sendgrid,
};

impl Gateway {
    /// Handle a SendGrid Event Webhook batch.
    pub(super) async fn sendgrid(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let tenant = self.path_tenant(req, "sendgrid", |t| t.sendgrid.is_some())?;
        report.tenant = Some(tenant.id.clone());
        if req.content_type.as_deref() != Some("application/json") {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: the SendGrid Event Webhook posts application/json",
                    req.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        let keys = tenant
            .sendgrid
            .as_ref()
            .map(|s| s.public_keys.as_slice())
            .unwrap_or_default();
        let signature = req.header(&SENDGRID_SIGNATURE_HEADER.to_ascii_lowercase());
        let timestamp = req.header(&SENDGRID_TIMESTAMP_HEADER.to_ascii_lowercase());
        verify_sendgrid(&req.body, signature, timestamp, keys).map_err(|e| match e {
            // The likeliest cause by far: the webhook was set up without signing.
            SignatureError::MissingHeader(SENDGRID_SIGNATURE_HEADER) => Error::unauthorized(format!(
                "the SendGrid Event Webhook is not signed (no {SENDGRID_SIGNATURE_HEADER} header): turn on Signed Event Webhook Requests in SendGrid (Settings > Mail Settings > Event Webhook > Security features) and put its verification key in tenants.{}.sendgrid.public_keys",
                tenant.id
            ))
            .with_reason("missing"),
            other => other.into(),
        })?;
        let events = sendgrid::parse(&req.body)?;
        let received_ms = now_ms();
        let normalised = sendgrid::normalise(&events, received_ms);
        report.rejected.extend(normalised.rejected);
        self.apply_events(
            tenant,
            &normalised.events,
            self.config.codes(Provider::Sendgrid),
            received_ms,
            report,
        )
        .await?;
        Ok(batch_answer(report))
    }
}
