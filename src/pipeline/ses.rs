//! The Amazon SES road: SNS posts SES notifications to `POST /webhooks/ses` (the
//! tenant comes from the `TopicArn`) or `POST /webhooks/ses/{tenant}` (the `TopicArn`
//! must be one of that tenant's).
//!
//! Order matters for safety: content type, envelope, topic allow-list, and only then
//! the signature, whose certificate is the first thing fetched. A sender that does not
//! know one of our topic ARNs therefore cannot make the gateway fetch anything.
//!
//! Replays: SNS defines no timestamp window and its retries keep the original
//! `Timestamp` (for up to an hour under the largest delivery policy), so a replayed
//! notification is stopped by dedup on `MessageId:recipient`. Dedup markers live
//! `dedup_ttl`; a message older than that (or than two hours, if `dedup_ttl` is set
//! shorter than SNS may retry) is refused, so a replay can never outlive the memory
//! that would have caught it.

use std::time::Duration;

use super::{Answer, Gateway, Report, WebhookRequest, batch_answer, now_ms};
use crate::config::Tenant;
use crate::error::{Error, Kind};
use crate::event::Provider;
use crate::ses::{self, Envelope, MESSAGE_TYPE_HEADER, MessageType};
use crate::signature::sns;

/// The shortest replay window, whatever `dedup_ttl` says: SNS's longest delivery
/// policy retries for 3600 s, with margin for queueing before the first attempt.
const MIN_MESSAGE_AGE_LIMIT: Duration = Duration::from_secs(2 * 3600);

impl Gateway {
    /// Handle an SNS post carrying SES notifications.
    pub(super) async fn ses(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        // SNS sends text/plain unless the delivery policy's headerContentType says
        // otherwise; application/json is the other value AWS allows for JSON bodies.
        match req.content_type.as_deref() {
            Some("text/plain" | "application/json") => {}
            other => {
                return Err(Error::new(
                    Kind::UnsupportedMediaType,
                    format!(
                        "content type {} is not accepted: SNS posts text/plain (or application/json)",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
        }
        if req
            .header("x-amz-sns-rawdelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Error::bad_request(
                "SNS raw message delivery carries no signature: turn it off for this subscription",
            ));
        }
        let envelope = ses::parse_envelope(&req.body)?;
        if let Some(header) = req.header(MESSAGE_TYPE_HEADER)
            && header != envelope.message_type.as_str()
        {
            return Err(Error::bad_request(format!(
                "{MESSAGE_TYPE_HEADER} {header:?} disagrees with the message Type {}",
                envelope.message_type.as_str()
            )));
        }
        let tenant = self.ses_tenant(req, &envelope.topic_arn)?;
        report.tenant = Some(tenant.id.clone());

        let received_ms = now_ms();
        sns::verify(
            &envelope,
            &self.config.sns.cert_hosts,
            &self.sns_certs,
            self.fetch.as_ref(),
            received_ms,
        )
        .await?;
        self.check_age(&envelope, received_ms)?;

        match envelope.message_type {
            MessageType::SubscriptionConfirmation => self.sns_subscribe(tenant, &envelope).await,
            MessageType::UnsubscribeConfirmation => {
                tracing::warn!(
                    tenant = %tenant.id,
                    topic = %envelope.topic_arn,
                    "SNS says this endpoint was unsubscribed from the topic: SES notifications stop"
                );
                Ok(Answer::text(
                    200,
                    format!(
                        "unsubscribe confirmation for {} noted; nothing fetched\n",
                        envelope.topic_arn
                    ),
                ))
            }
            MessageType::Notification => {
                let normalised = ses::normalise(&envelope, received_ms)?;
                report.rejected.extend(normalised.rejected);
                if let Some(why) = normalised.ignored {
                    report.skipped.push(why);
                }
                self.apply_events(
                    tenant,
                    &normalised.events,
                    self.config.codes(Provider::Ses),
                    received_ms,
                    report,
                )
                .await?;
                Ok(batch_answer(report))
            }
        }
    }

    /// The tenant that owns `topic_arn`: the path's tenant, which must list it, or on
    /// the shared URL the one tenant that lists it. Nothing has been fetched yet.
    fn ses_tenant(&self, req: &WebhookRequest, topic_arn: &str) -> Result<&Tenant, Error> {
        let owns = |t: &Tenant| {
            t.ses
                .as_ref()
                .is_some_and(|s| s.topic_arns.iter().any(|a| a == topic_arn))
        };
        if req.tenant.is_some() {
            let tenant = self.path_tenant(req, "ses", |t| t.ses.is_some())?;
            if owns(tenant) {
                Ok(tenant)
            } else {
                Err(Error::new(
                    Kind::Forbidden,
                    format!(
                        "SNS topic {topic_arn} is not in tenants.{}.ses.topic_arns: refused, nothing fetched",
                        tenant.id
                    ),
                ))
            }
        } else {
            self.config.tenants.values().find(|t| owns(t)).ok_or_else(|| {
                Error::not_found(format!(
                    "no tenant is configured for SNS topic {topic_arn} (tenants.T.ses.topic_arns): refused, nothing fetched"
                ))
            })
        }
    }

    /// Refuse a verified message older than the dedup memory: see the module doc.
    fn check_age(&self, envelope: &Envelope, received_ms: i64) -> Result<(), Error> {
        let sent_ms = ses::parse_iso8601_ms(&envelope.timestamp).ok_or_else(|| {
            Error::bad_request(format!(
                "SNS Timestamp {:?} is not an ISO 8601 UTC time",
                envelope.timestamp
            ))
        })?;
        let limit = self.config.dedup_ttl.max(MIN_MESSAGE_AGE_LIMIT);
        let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        if received_ms.saturating_sub(sent_ms) > limit_ms {
            return Err(Error::unauthorized(format!(
                "SNS message of {} is older than {} s, longer than dedup remembers: refused as a replay",
                envelope.timestamp,
                limit.as_secs()
            ))
            .with_reason("stale"));
        }
        Ok(())
    }

    /// Confirm a verified subscription of an allow-listed topic by fetching its
    /// `SubscribeURL`, when the configuration allows it.
    ///
    /// With `sns.confirm_subscriptions = false` the answer is still 200: SNS does not
    /// retry a 4xx, and a 5xx would only make it resend what we will refuse again; the
    /// subscription stays "pending confirmation" in the SNS console, where an operator
    /// confirms it.
    async fn sns_subscribe(&self, tenant: &Tenant, envelope: &Envelope) -> Result<Answer, Error> {
        let topic = &envelope.topic_arn;
        if !self.config.sns.confirm_subscriptions {
            tracing::warn!(tenant = %tenant.id, %topic, "SNS subscription not confirmed: sns.confirm_subscriptions is off");
            return Ok(Answer::text(
                200,
                format!(
                    "subscription to {topic} NOT confirmed: sns.confirm_subscriptions is off; confirm it in the SNS console or with ConfirmSubscription\n"
                ),
            ));
        }
        let url = envelope.subscribe_url.as_deref().unwrap_or_default();
        sns::subscribe_url_allowed(url, &self.config.sns.cert_hosts).map_err(|why| {
            Error::bad_request(format!(
                "SNS SubscribeURL refused ({why}): subscription to {topic} not confirmed"
            ))
        })?;
        // A failed GET is worth a retry: SNS resends the confirmation on a 5xx.
        self.fetch.get(url).await.map_err(|e| {
            Error::new(
                Kind::Unavailable,
                format!("confirming the subscription to {topic} failed: {e}"),
            )
        })?;
        tracing::info!(tenant = %tenant.id, %topic, "SNS subscription confirmed");
        Ok(Answer::text(
            200,
            format!("subscription to {topic} confirmed\n"),
        ))
    }
}
