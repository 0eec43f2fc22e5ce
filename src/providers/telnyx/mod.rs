//! Telnyx Messaging (SMS and MMS): inbound messages and delivery statuses, on
//! `POST /webhooks/telnyx/{tenant}` (the Messaging Profile's webhook URL).
//!
//! The road: content type (the registry's first step) -> tenant section from the path ->
//! the clock, read once ->
//! Ed25519 signature over `telnyx-timestamp|raw body` with the tenant's public keys,
//! the timestamp within five minutes either way -> parse and normalise.
//!
//! Why this order is safe: the public keys are per tenant, so the tenant comes first,
//! and only from the path (nothing of an unverified body chooses which keys verify it).
//! The content type is checked before any of this, from the header alone. The signature
//! covers the timestamp and the raw bytes, so nothing of the body is parsed before it
//! verifies, and a request outside the window is refused (401) before any signature is
//! computed. A replay inside the window, and Telnyx's own retries (each signed anew,
//! with the same `data.id`), are applied once: `data.id` is the event id the store
//! deduplicates on, in the same script call that applies the event. (`Host::claim_once`
//! is not used: it is for Mailgun's one-time tokens, whose signature does not cover the
//! body; here the signature does, and a claim keyed on the body would refuse Telnyx's
//! retries, whose `meta.attempt` differs.) A body that verifies but is no Telnyx
//! webhook is 400; an event type we do not act on is 200 and counted as skipped.

pub mod normalise;
pub mod verify;

use ed25519_dalek::VerifyingKey;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, SectionCx, Trip};
use verify::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_telnyx};

/// The source Telnyx's events carry.
pub const SOURCE: Source = Telnyx::ABOUT.source();

/// The Telnyx provider.
#[derive(Debug)]
pub struct Telnyx;

/// A tenant's Telnyx section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The account's webhook public keys (Ed25519, base64 of 32 bytes as the portal
    /// shows them), several while rotating; checked at load.
    pub public_keys: Vec<VerifyingKey>,
}

impl Road for Telnyx {
    const ABOUT: About = About::new(
        "telnyx",
        "Telnyx",
        include_str!("../../../providers/telnyx.toml"),
    );
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let public_keys = section.public_keys("public_keys", verify::parse_public_key)?;
        Some(Section { public_keys })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let req = trip.req;
        let received_ms = trip.receive();
        verify_telnyx(
            &req.body,
            req.header(SIGNATURE_HEADER),
            req.header(TIMESTAMP_HEADER),
            &section.public_keys,
            received_ms.div_euclid(1000),
        )?;
        let normalised = normalise::normalise(&req.body, received_ms)?;
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
