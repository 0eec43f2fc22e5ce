//! The sendgrid webhook road. SKELETON: to be implemented.

use super::{Answer, Gateway, Report, WebhookRequest};
use crate::error::Error;

impl Gateway {
    /// Handle a sendgrid webhook.
    pub(super) async fn sendgrid(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let _ = report;
        self.path_tenant(req, "sendgrid", |t| t.sendgrid.is_some())?;
        Err(Error::not_found("sendgrid is not served yet"))
    }
}
