//! Bandwidth Messaging API v2 (SMS and MMS): inbound messages and delivery statuses, on
//! `POST /webhooks/bandwidth/{tenant}` (the Messaging application's inbound and
//! status callback URL).
//!
//! The road: content type (the registry's first step) -> tenant section from the path
//! -> HTTP basic auth -> the clock, read once -> parse the batch and normalise each
//! callback.
//!
//! Why this order: Bandwidth signs nothing. The only proof a callback came from
//! Bandwidth is the user id and password set on the Messaging application
//! (`InboundCallbackCreds`, `OutboundCallbackCreds`), which Bandwidth sends as
//! `Authorization: Basic`. The credentials are per tenant, so the tenant comes first,
//! and only from the path (nothing of an unchecked body chooses the credentials that
//! check it). They are checked before any byte of the body is read (401, nothing
//! written, with a `WWW-Authenticate` challenge). There is no timestamp to bound a
//! replay: Bandwidth retries a callback for 24 hours and says duplicates happen, so a
//! replay or a retry is applied once by the store's dedup on the event id
//! ([`normalise`] says which). Every callback is a JSON array; an element that
//! cannot be read is refused on its own line of a 200 and the rest applied, because
//! Bandwidth would send the same array again for a day. Only a body that is no array
//! of callbacks at all gets 400.

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::providers::postmark::Postmark;
use crate::road::{About, Road, Secrets, SectionCx, Trip};

/// The source Bandwidth's events carry.
pub const SOURCE: Source = Bandwidth::ABOUT.source();

/// The challenge of a refused request.
const CHALLENGE: &str = "Basic realm=\"dndgate\"";

/// The Bandwidth provider.
#[derive(Debug)]
pub struct Bandwidth;

impl Road for Bandwidth {
    const ABOUT: About = About::new(
        "bandwidth",
        "Bandwidth",
        include_str!("../../../providers/bandwidth.toml"),
    );
    type Settings = ();
    /// The callback credentials set on the tenant's Bandwidth Messaging application
    /// (`credentials`, each `user:password`; several while rotating, and both the
    /// inbound and the outbound pair where they differ).
    type Section = Secrets;

    /// Read as Postmark's (`credentials`, each `user:password`): the same basic auth.
    fn section(section: &mut SectionCx<'_, '_>) -> Option<Secrets> {
        Postmark::section(section)
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        verify::verify_bandwidth(trip.header("authorization"), &section.0)
            .map_err(|e| Error::from(e).with_challenge(CHALLENGE))?;
        let received_ms = trip.receive();
        let normalised = normalise::normalise(&trip.req.body, received_ms)?;
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.skipped);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
