//! The Postmark road: tenant from the path -> basic auth -> parse and normalise (one
//! record per request) -> classify with Postmark's table -> apply -> answer.

use super::{Answer, Gateway, Report, WebhookRequest, batch_answer, now_ms};
use crate::error::{Error, Kind};
use crate::event::Provider;
use crate::postmark;
use crate::signature::basic_auth;

impl Gateway {
    /// Handle a Postmark webhook on `POST /webhooks/postmark/{tenant}`.
    ///
    /// Postmark signs nothing: the operator writes credentials into the webhook URL
    /// (`https://user:password@host/webhooks/postmark/TENANT`) and Postmark sends them
    /// as `Authorization: Basic`. They are checked before anything else is read, so an
    /// unauthenticated caller learns nothing about the body's handling (401, nothing
    /// written). Records we do not act on (deliveries, opens), and records that lack
    /// what a DND change needs (a bounce without `Email`), get 200, so Postmark does
    /// not retry what can never succeed; only a body that is no Postmark record at all
    /// gets 400.
    pub(super) async fn postmark(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let tenant = self.path_tenant(req, "postmark", |t| t.postmark.is_some())?;
        report.tenant = Some(tenant.id.clone());
        let credentials = tenant
            .postmark
            .as_ref()
            .map(|p| p.secrets.as_slice())
            .unwrap_or_default();
        basic_auth::verify_basic_auth(req.header("authorization"), credentials, "postmark")?;
        if req.content_type.as_deref() != Some("application/json") {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: Postmark posts application/json",
                    req.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        let received_ms = now_ms();
        let normalised = postmark::normalise(&req.body, received_ms)?;
        report.skipped.extend(normalised.ignored);
        report.rejected.extend(normalised.rejected);
        self.apply_events(
            tenant,
            &normalised.events,
            self.config.codes(Provider::Postmark),
            received_ms,
            report,
        )
        .await?;
        Ok(batch_answer(report))
    }
}
