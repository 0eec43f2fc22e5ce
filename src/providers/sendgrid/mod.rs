//! SendGrid's Event Webhook: batches of email events, signed, on
//! `POST /webhooks/sendgrid/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path ->
//! ECDSA (P-256) over the
//! timestamp header and the raw body, with the tenant's verification keys -> parse the
//! batch -> normalise each event.
//!
//! Why this order: the signature covers the raw bytes, so it is checked before the body
//! is parsed (nothing unverified is read); the tenant comes first because its keys are
//! what verifies. An event of the batch that cannot be read is refused on its own line
//! of a 200: SendGrid would resend the whole batch, the bad event with it, for a day.

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, SectionCx, Trip};
use crate::signature::SignatureError;
use verify::{SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, verify_sendgrid};

/// The source SendGrid's events carry.
pub const SOURCE: Source = Sendgrid::ABOUT.source();

/// The SendGrid provider.
#[derive(Debug)]
pub struct Sendgrid;

/// A tenant's SendGrid section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The Signed Event Webhook verification keys (P-256, from SendGrid's settings),
    /// several while rotating; checked at load.
    pub public_keys: Vec<p256::ecdsa::VerifyingKey>,
}

impl Road for Sendgrid {
    const ABOUT: About = About::new(
        "sendgrid",
        "SendGrid",
        include_str!("../../../providers/sendgrid.toml"),
    );
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let public_keys = section.public_keys("public_keys", verify::parse_p256_key)?;
        Some(Section { public_keys })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let req = trip.req;
        let signature = req.header(&SENDGRID_SIGNATURE_HEADER.to_ascii_lowercase());
        let timestamp = req.header(&SENDGRID_TIMESTAMP_HEADER.to_ascii_lowercase());
        verify_sendgrid(&req.body, signature, timestamp, &section.public_keys).map_err(|e| match e {
            // The likeliest cause by far: the webhook was set up without signing.
            SignatureError::MissingHeader(SENDGRID_SIGNATURE_HEADER) => Error::unauthorized(format!(
                "the SendGrid Event Webhook is not signed (no {SENDGRID_SIGNATURE_HEADER} header): turn on Signed Event Webhook Requests in SendGrid (Settings > Mail Settings > Event Webhook > Security features) and put its verification key in tenants.{tenant}.sendgrid.public_keys"
            ))
            .with_reason("missing"),
            other => other.into(),
        })?;
        let events = normalise::parse(&req.body)?;
        let normalised = normalise::normalise(&events, trip.receive());
        trip.out.rejected.extend(normalised.rejected);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
