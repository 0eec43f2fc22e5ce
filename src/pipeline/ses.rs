//! The ses webhook road. SKELETON: to be implemented.

use super::{Answer, Gateway, Report, WebhookRequest};
use crate::error::Error;

impl Gateway {
    /// Handle a ses webhook.
    pub(super) async fn ses(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let _ = (req, report);
        Err(Error::not_found("ses is not served yet"))
    }
}
