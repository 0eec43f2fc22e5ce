//! Amazon SES bounces and complaints, through SNS: `POST /webhooks/ses` (the tenant
//! comes from the `TopicArn`) or `POST /webhooks/ses/{tenant}` (the `TopicArn` must be
//! one of that tenant's).
//!
//! The road: content type (the registry's first step) -> no raw delivery -> envelope ->
//! topic allow-list (the tenant) -> signature (the certificate fetched, checked,
//! cached) -> message age -> by message type: confirm a subscription, note an
//! unsubscription, or normalise a notification.
//!
//! Why this order: the signature's certificate is the first thing fetched, and only
//! for a topic a tenant lists. A sender that does not
//! know one of our topic ARNs therefore cannot make the gateway fetch anything.
//!
//! Replays: SNS defines no timestamp window and its retries keep the original
//! `Timestamp` (for up to an hour under the largest delivery policy), so a replayed
//! notification is stopped by dedup on `MessageId:recipient`. Dedup markers live
//! `dedup_ttl`; a message older than that (or than two hours, if `dedup_ttl` is set
//! shorter than SNS may retry) is refused, so a replay can never outlive the memory
//! that would have caught it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Kind};
use crate::event::Source;
use crate::road::{About, ConfigCx, ProviderConfig, Reply, Road, SectionCx, Trip};
use normalise::{Envelope, MESSAGE_TYPE_HEADER, MessageType};

pub mod normalise;
pub mod verify;

/// The source SES's events carry.
pub const SOURCE: Source = Ses::ABOUT.source();

/// The shortest replay window, whatever `dedup_ttl` says: SNS's longest delivery
/// policy retries for 3600 s, with margin for queueing before the first attempt.
const MIN_MESSAGE_AGE_LIMIT: Duration = Duration::from_secs(2 * 3600);

/// The Amazon SES provider.
#[derive(Debug)]
pub struct Ses;

/// A tenant's SES section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// SNS topic ARNs whose notifications belong to this tenant (the allow-list: a
    /// message from any other topic is refused).
    pub topic_arns: Vec<String>,
}

/// Gateway-wide settings for Amazon SNS (`[sns]`), and the signing certificates
/// fetched so far.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    /// Host names signing certificates may be fetched from: exact names, or a
    /// pattern with one `*` for an AWS region name (default `sns.*.amazonaws.com` and
    /// China's `sns.*.amazonaws.com.cn`; GovCloud's `sns.us-gov-west-1...` is a region
    /// of the first).
    pub cert_hosts: Vec<String>,
    /// Confirm subscriptions of allow-listed topics by fetching their SubscribeURL.
    pub confirm_subscriptions: bool,
    /// Signing certificates fetched so far, by URL (filled as the gateway runs).
    pub certs: Arc<verify::CertCache>,
}

impl Default for SnsSettings {
    fn default() -> SnsSettings {
        SnsSettings {
            cert_hosts: vec![
                "sns.*.amazonaws.com".to_string(),
                "sns.*.amazonaws.com.cn".to_string(),
            ],
            confirm_subscriptions: true,
            certs: Arc::default(),
        }
    }
}

/// `[sns]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSns {
    cert_hosts: Option<Vec<String>>,
    confirm_subscriptions: Option<bool>,
}

impl Road for Ses {
    const ABOUT: About = About::new(
        "ses",
        "Amazon SES",
        include_str!("../../../providers/ses.toml"),
    )
    .settings("sns")
    // SNS sends text/plain unless the subscription's delivery policy sets
    // headerContentType; application/json is the other value AWS allows.
    .accepts(&["text/plain", "application/json"], "");
    type Settings = SnsSettings;
    type Section = Section;

    fn settings(raw: Option<toml::Value>, cx: &mut ConfigCx<'_>) -> SnsSettings {
        let defaults = SnsSettings::default();
        let Some(raw) = raw.and_then(|r| cx.table::<RawSns>("sns", r)) else {
            return defaults;
        };
        let cert_hosts = raw.cert_hosts.unwrap_or(defaults.cert_hosts);
        for host in &cert_hosts {
            if host.matches('*').count() > 1 || host.contains('/') || host.is_empty() {
                cx.problem(format!(
                    "sns.cert_hosts: {host:?} must be a host name with at most one *"
                ));
            }
        }
        SnsSettings {
            cert_hosts,
            confirm_subscriptions: raw
                .confirm_subscriptions
                .unwrap_or(defaults.confirm_subscriptions),
            certs: defaults.certs,
        }
    }

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let topic_arns = section.list("topic_arns")?;
        let at = format!("{}.topic_arns", section.at);
        if topic_arns.is_empty() {
            section.problem(format!("{at} is empty: every SNS message would be refused"));
        }
        for arn in &topic_arns {
            if !(arn.starts_with("arn:aws") && arn.split(':').count() == 6) {
                section.problem(format!(
                    "{at}: {arn:?} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
                ));
            }
            if let Some(other) = section.claim(format!("ses:{arn}")) {
                section.problem(format!("{at}: {arn} is also configured for tenant {other}"));
            }
        }
        Some(Section { topic_arns })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let req = trip.req;
        if req
            .header("x-amz-sns-rawdelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Error::bad_request(
                "SNS raw message delivery carries no signature: turn it off for this subscription",
            ));
        }
        let envelope = normalise::parse_envelope(&req.body)?;
        if let Some(header) = req.header(MESSAGE_TYPE_HEADER)
            && header != envelope.message_type.as_str()
        {
            return Err(Error::bad_request(format!(
                "{MESSAGE_TYPE_HEADER} {header:?} disagrees with the message Type {}",
                envelope.message_type.as_str()
            )));
        }
        let tenant = topic_owner(trip, &envelope.topic_arn)?;
        trip.out.for_tenant(tenant);

        let received_ms = trip.receive();
        let sns = &trip.config.settings;
        let fetch = trip.host.fetch();
        verify::verify(&envelope, &sns.cert_hosts, &sns.certs, fetch, received_ms).await?;
        check_age(&envelope, trip.host.dedup_ttl(), received_ms)?;

        match envelope.message_type {
            MessageType::SubscriptionConfirmation => {
                let said = subscribe(trip, tenant, &envelope).await?;
                trip.out.reply = Reply::Text(said);
            }
            MessageType::UnsubscribeConfirmation => {
                tracing::warn!(
                    tenant,
                    topic = %envelope.topic_arn,
                    "SNS says this endpoint was unsubscribed from the topic: SES notifications stop"
                );
                trip.out.reply = Reply::Text(format!(
                    "unsubscribe confirmation for {} noted; nothing fetched\n",
                    envelope.topic_arn
                ));
            }
            MessageType::Notification => {
                let normalised = normalise::normalise(&envelope, received_ms)?;
                trip.out.rejected.extend(normalised.rejected);
                trip.out.skipped.extend(normalised.ignored);
                trip.out.push(tenant, normalised.events);
            }
        }
        Ok(())
    }
}

/// The tenant that owns `topic_arn`: the path's tenant, which must list it, or on the
/// shared URL the one tenant that lists it. Nothing has been fetched yet.
fn topic_owner<'a>(trip: &mut Trip<'a, Ses>, topic_arn: &str) -> Result<&'a str, Error> {
    let owns = |s: &Section| s.topic_arns.iter().any(|a| a == topic_arn);
    if trip.req.tenant.is_some() {
        let (tenant, section) = trip.path_tenant()?;
        if owns(section) {
            Ok(tenant)
        } else {
            Err(Error::new(
                Kind::Forbidden,
                format!(
                    "SNS topic {topic_arn} is not in tenants.{tenant}.ses.topic_arns: refused, nothing fetched"
                ),
            ))
        }
    } else {
        let config: &'a ProviderConfig<Ses> = trip.config;
        config.find(owns).map(|(tenant, _)| tenant).ok_or_else(|| {
            Error::not_found(format!(
                "no tenant is configured for SNS topic {topic_arn} (tenants.T.ses.topic_arns): refused, nothing fetched"
            ))
        })
    }
}

/// Refuse a verified message older than the dedup memory: see the module doc.
fn check_age(envelope: &Envelope, dedup_ttl: Duration, received_ms: i64) -> Result<(), Error> {
    let sent_ms = normalise::parse_iso8601_ms(&envelope.timestamp).ok_or_else(|| {
        Error::bad_request(format!(
            "SNS Timestamp {:?} is not an ISO 8601 UTC time",
            envelope.timestamp
        ))
    })?;
    let limit = dedup_ttl.max(MIN_MESSAGE_AGE_LIMIT);
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
/// `SubscribeURL`, when the configuration allows it; what to answer.
///
/// With `sns.confirm_subscriptions = false` the answer is still 200: SNS does not retry
/// a 4xx, and a 5xx would only make it resend what we will refuse again; the
/// subscription stays "pending confirmation" in the SNS console, where an operator
/// confirms it.
async fn subscribe(
    trip: &Trip<'_, Ses>,
    tenant: &str,
    envelope: &Envelope,
) -> Result<String, Error> {
    let topic = &envelope.topic_arn;
    let sns = &trip.config.settings;
    if !sns.confirm_subscriptions {
        tracing::warn!(tenant, %topic, "SNS subscription not confirmed: sns.confirm_subscriptions is off");
        return Ok(format!(
            "subscription to {topic} NOT confirmed: sns.confirm_subscriptions is off; confirm it in the SNS console or with ConfirmSubscription\n"
        ));
    }
    let url = envelope.subscribe_url.as_deref().unwrap_or_default();
    verify::subscribe_url_allowed(url, &sns.cert_hosts).map_err(|why| {
        Error::bad_request(format!(
            "SNS SubscribeURL refused ({why}): subscription to {topic} not confirmed"
        ))
    })?;
    // A failed GET is worth a retry: SNS resends the confirmation on a 5xx.
    trip.host.fetch().get(url).await.map_err(|e| {
        Error::new(
            Kind::Unavailable,
            format!("confirming the subscription to {topic} failed: {e}"),
        )
    })?;
    tracing::info!(tenant, %topic, "SNS subscription confirmed");
    Ok(format!("subscription to {topic} confirmed\n"))
}
