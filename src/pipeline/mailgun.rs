//! The Mailgun road: `POST /webhooks/mailgun/{tenant}` -> the tenant's signing keys ->
//! HMAC over the body's timestamp and token -> refuse a timestamp older than the token
//! memory -> claim the one-time token -> normalise `event-data` -> classify with
//! `providers/mailgun.toml` -> apply -> 200.
//!
//! Mailgun's signature does not cover the event data, so a captured request could carry
//! any event under its valid triple. The token claim makes each triple usable once, for
//! one tenant and body, under its signing key (shared keys share their tokens); the age
//! check makes sure a triple cannot come back after its claim has expired.

use std::time::Duration;

use sha2::Digest;

use super::{Answer, Gateway, Report, WebhookRequest, batch_answer, now_ms};
use crate::error::{Error, Kind};
use crate::event::Provider;
use crate::mailgun;
use crate::signature::mailgun::{signing_key_fingerprint, verify_mailgun_key};
use crate::store::Claim;

/// How far ahead of our clock a signed timestamp may be (clock skew). The token is
/// remembered this much longer than `dedup_ttl`, so a request accepted with a
/// timestamp from the future still cannot be replayed once its claim expires.
const FUTURE_SKEW: Duration = Duration::from_secs(300);

impl Gateway {
    /// Handle a Mailgun webhook.
    pub(super) async fn mailgun(
        &self,
        req: &WebhookRequest,
        report: &mut Report,
    ) -> Result<Answer, Error> {
        let tenant = self.path_tenant(req, "mailgun", |t| t.mailgun.is_some())?;
        report.tenant = Some(tenant.id.clone());
        if req.content_type.as_deref() != Some("application/json") {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: Mailgun webhooks post application/json (legacy form-encoded webhooks are not served)",
                    req.content_type.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        // The signature is inside the body: a body without a readable triple is
        // unsigned (401), not unparseable (400, which is for bodies that verify).
        let webhook = mailgun::parse(&req.body)
            .map_err(|e| Error::unauthorized(e).with_reason("malformed"))?;
        let signed = webhook
            .signed
            .as_ref()
            .map_err(|e| Error::unauthorized(e.clone()).with_reason("missing"))?;
        let keys = tenant
            .mailgun
            .as_ref()
            .map(|m| m.secrets.as_slice())
            .unwrap_or_default();
        let key = verify_mailgun_key(&signed.timestamp, &signed.token, &signed.signature, keys)?;

        let received_ms = now_ms();
        let ttl = self.config.dedup_ttl;
        let signed_at = mailgun::timestamp_seconds(signed).ok_or_else(|| {
            Error::unauthorized("signature.timestamp is not Unix seconds").with_reason("malformed")
        })?;
        let now_s = received_ms.div_euclid(1000);
        let age = now_s - signed_at;
        if age > ttl.as_secs() as i64 {
            return Err(Error::unauthorized(format!(
                "signature timestamp is {age} s old, older than the {} s this gateway remembers used tokens (dedup_ttl): refused as a possible replay",
                ttl.as_secs()
            ))
            .with_reason("stale"));
        }
        if -age > FUTURE_SKEW.as_secs() as i64 {
            return Err(Error::unauthorized(format!(
                "signature timestamp is {} s in the future: check the clock of this host",
                -age
            ))
            .with_reason("stale"));
        }
        // Claimed only now, after the signature verified: otherwise anyone could burn
        // Mailgun's tokens ahead of it. The signature covers the token, not the body, so
        // the token is remembered with the hash of the tenant and the body: the very
        // same request may come again (a retry after a 503 must not lose its event; its
        // events are deduplicated), a different body or another tenant's path under a
        // spent token may not. The claim is per signing key: Mailgun's key is
        // account-wide, so tenants that share it share its tokens.
        let mut fingerprint = sha2::Sha256::new();
        fingerprint.update(tenant.id.as_bytes());
        fingerprint.update(b"\n");
        fingerprint.update(&req.body);
        let fingerprint = hex::encode(fingerprint.finalize());
        let claim = self
            .store
            .claim_once(
                &signing_key_fingerprint(key),
                Provider::Mailgun,
                &signed.token,
                &fingerprint,
                ttl + FUTURE_SKEW,
            )
            .await
            .map_err(Error::from)?;
        if claim == Claim::Other {
            return Err(Error::unauthorized(
                "signature token already used with another body or on another tenant's path (replay): Mailgun signs every request with a new token",
            )
            .with_reason("replay"));
        }

        let event_data = mailgun::require_event_data(&webhook)?;
        match mailgun::normalise(event_data, received_ms) {
            Ok(Some(event)) => {
                self.apply_events(
                    tenant,
                    &[event],
                    self.config.codes(Provider::Mailgun),
                    received_ms,
                    report,
                )
                .await?
            }
            Ok(None) => {}
            // The event verified but cannot be read: reported in a 200, because Mailgun
            // would resend the same unreadable event for hours.
            Err(why) => report.rejected.push(format!("event-data: {why}")),
        }
        Ok(batch_answer(report))
    }
}
