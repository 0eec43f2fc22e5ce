//! Standard Webhooks senders (Resend and other Svix-style senders): bounces,
//! complaints and unsubscribes, one event per recipient, on
//! `POST /webhooks/standard-webhooks/{tenant}` and its alias `/webhooks/resend/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path ->
//! signature and timestamp window -> parse and normalise.
//!
//! Why this order: the signature covers the message id, the timestamp and the raw body,
//! so nothing of the body is read before it verifies; a timestamp more than five minutes
//! from our clock either way is refused (401), and a replay inside the window is
//! applied once, because the message id is the event id the store deduplicates on. A
//! body that verifies but cannot be read is 400; an event type we do not act on is 200.

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, Secrets, SectionCx, Trip};
use crate::secret::Secret;
use verify::{SignedHeaders, verify_standard_webhooks};

/// The source these senders' events carry.
pub const SOURCE: Source = StandardWebhooks::ABOUT.source();

/// The Standard Webhooks provider.
#[derive(Debug)]
pub struct StandardWebhooks;

impl Road for StandardWebhooks {
    const ABOUT: About = About::new(
        "standard-webhooks",
        "Standard Webhooks",
        include_str!("../../../providers/standard-webhooks.toml"),
    )
    .aliases(&["resend"])
    .section("standard_webhooks");
    type Settings = ();
    /// The signing secrets (`secrets`, each `whsec_...`).
    type Section = Secrets;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Secrets> {
        let secrets = section.signing_secrets("secrets")?;
        let unreadable = |c: &Secret| {
            !c.expose().starts_with(verify::WHSEC_PREFIX)
                || verify::decode_whsec(c.expose()).is_none()
        };
        if secrets.0.iter().any(unreadable) {
            let at = section.at;
            section.problem(format!(
                "{at}.secrets: each is whsec_ and base64 (copy it whole from the sender's dashboard)"
            ));
        }
        Some(secrets)
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let req = trip.req;
        let headers = SignedHeaders::from_request(|name| req.header(name));
        let received_ms = trip.receive();
        let now_s = received_ms.div_euclid(1000);
        let message_id = verify_standard_webhooks(&headers, &req.body, &section.0, now_s)?;
        let normalised = normalise::normalise(message_id, &req.body, received_ms)?;
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
