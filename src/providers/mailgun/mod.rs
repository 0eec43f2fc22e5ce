//! Mailgun's webhooks, on `POST /webhooks/mailgun/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path ->
//! the tenant's signing keys ->
//! HMAC over the body's timestamp and token -> refuse a timestamp older than the token
//! memory -> claim the one-time token -> normalise `event-data`.
//!
//! Mailgun's signature does not cover the event data, so a captured request could carry
//! any event under its valid triple. The token claim makes each triple usable once, for
//! one tenant and body, under its signing key (shared keys share their tokens); the age
//! check makes sure a triple cannot come back after its claim has expired.

use std::time::Duration;

use sha2::Digest;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Once, ProviderConfig, Road, Secrets, SectionCx, Trip};
use verify::{signing_key_fingerprint, verify_mailgun_key};

pub mod normalise;
pub mod verify;

/// The source Mailgun's events carry.
pub const SOURCE: Source = Mailgun::ABOUT.source();

/// How far ahead of our clock a signed timestamp may be (clock skew). The token is
/// remembered this much longer than `dedup_ttl`, so a request accepted with a
/// timestamp from the future still cannot be replayed once its claim expires.
const FUTURE_SKEW: Duration = Duration::from_secs(300);

/// The Mailgun provider.
#[derive(Debug)]
pub struct Mailgun;

impl Road for Mailgun {
    const ABOUT: About = About::new(
        "mailgun",
        "Mailgun",
        include_str!("../../../providers/mailgun.toml"),
    )
    .accepts(
        &["application/json"],
        "legacy form-encoded webhooks are not served",
    );
    type Settings = ();
    /// The webhook signing keys (`signing_keys`).
    type Section = Secrets;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Secrets> {
        section.signing_secrets("signing_keys")
    }

    /// Tenants that share a signing key: Mailgun's key is account-wide.
    fn warnings(config: &ProviderConfig<Self>) -> Vec<String> {
        let mut by_key: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for (tenant, section) in &config.tenants {
            for key in &section.0 {
                let owners = by_key.entry(signing_key_fingerprint(key)).or_default();
                if !owners.contains(&tenant.as_str()) {
                    owners.push(tenant);
                }
            }
        }
        by_key
            .values()
            .filter(|owners| owners.len() > 1)
            .map(|owners| {
                format!(
                    "tenants {} share a mailgun signing key: Mailgun's key is account-wide, so each of their URLs accepts the others' signed requests (each token is still used once); give each tenant its own Mailgun account where you can",
                    owners.join(", ")
                )
            })
            .collect()
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let req = trip.req;
        // The signature is inside the body: a body without a readable triple is
        // unsigned (401), not unparseable (400, which is for bodies that verify).
        let webhook = normalise::parse(&req.body)
            .map_err(|e| Error::unauthorized(e).with_reason("malformed"))?;
        let signed = webhook
            .signed
            .as_ref()
            .map_err(|e| Error::unauthorized(e.clone()).with_reason("missing"))?;
        let key = verify_mailgun_key(
            &signed.timestamp,
            &signed.token,
            &signed.signature,
            &section.0,
        )?;

        let received_ms = trip.receive();
        let ttl = trip.host.dedup_ttl();
        let signed_at = normalise::timestamp_seconds(signed).ok_or_else(|| {
            Error::unauthorized("signature.timestamp is not Unix seconds").with_reason("malformed")
        })?;
        let age = received_ms.div_euclid(1000) - signed_at;
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
        fingerprint.update(tenant.as_bytes());
        fingerprint.update(b"\n");
        fingerprint.update(&req.body);
        let fingerprint = hex::encode(fingerprint.finalize());
        let once = Once {
            key: &signing_key_fingerprint(key),
            provider: Self::ABOUT.name,
            token: &signed.token,
            request: &fingerprint,
            ttl: ttl + FUTURE_SKEW,
        };
        if !trip.host.claim_once(once).await? {
            return Err(Error::unauthorized(
                "signature token already used with another body or on another tenant's path (replay): Mailgun signs every request with a new token",
            )
            .with_reason("replay"));
        }

        let event_data = normalise::require_event_data(&webhook)?;
        match normalise::normalise(event_data, received_ms) {
            Ok(event) => trip.out.push(tenant, event),
            // The event verified but cannot be read: reported in a 200, because Mailgun
            // would resend the same unreadable event for hours.
            Err(why) => trip.out.rejected.push(format!("event-data: {why}")),
        }
        Ok(())
    }
}
