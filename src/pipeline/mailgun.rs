//! The mailgun webhook road. SKELETON: to be implemented.

use super::{Answer, Gateway, Report, WebhookRequest};
use crate::error::Error;

impl Gateway {
    /// Handle a mailgun webhook.
    pub(super) async fn mailgun(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let _ = report;
        self.path_tenant(req, "mailgun", |t| t.mailgun.is_some())?;
        Err(Error::not_found("mailgun is not served yet"))
    }
}
