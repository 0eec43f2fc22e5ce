//! The standard_webhooks webhook road. SKELETON: to be implemented.

use super::{Answer, Gateway, Report, WebhookRequest};
use crate::error::Error;

impl Gateway {
    /// Handle a standard_webhooks webhook.
    pub(super) async fn standard_webhooks(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let _ = report;
        self.path_tenant(req, "standard-webhooks", |t| t.standard_webhooks.is_some())?;
        Err(Error::not_found("standard_webhooks is not served yet"))
    }
}
