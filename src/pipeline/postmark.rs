//! The postmark webhook road. SKELETON: to be implemented.

use super::{Answer, Gateway, Report, WebhookRequest};
use crate::error::Error;

impl Gateway {
    /// Handle a postmark webhook.
    pub(super) async fn postmark(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let _ = report;
        self.path_tenant(req, "postmark", |t| t.postmark.is_some())?;
        Err(Error::not_found("postmark is not served yet"))
    }
}
