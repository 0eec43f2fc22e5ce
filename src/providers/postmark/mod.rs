//! Postmark: bounces, spam complaints and subscription changes, one JSON record per
//! request, on `POST /webhooks/postmark/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path
//! -> basic auth -> parse and normalise.
//!
//! Why this order: Postmark signs nothing; the operator writes credentials into the
//! webhook URL (`https://user:password@host/webhooks/postmark/TENANT`) and Postmark
//! sends them as `Authorization: Basic`. They are checked before anything of the
//! body is read, so an unauthenticated caller learns nothing about how a body would be
//! handled (only that Postmark posts JSON, which is public) (401, nothing written, and a `WWW-Authenticate` challenge so a person
//! testing with curl learns what to send). Records we do not act on (deliveries, opens)
//! and records without what a DND change needs (a bounce without `Email`) are answered
//! 200, so Postmark does not retry what can never succeed; only a body that is no
//! Postmark record at all gets 400.

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, Secrets, SectionCx, Trip};

/// The source Postmark's events carry.
pub const SOURCE: Source = Postmark::ABOUT.source();

/// The challenge of a refused request.
const CHALLENGE: &str = "Basic realm=\"dndgate\"";

/// The Postmark provider.
#[derive(Debug)]
pub struct Postmark;

impl Road for Postmark {
    const ABOUT: About = About::new(
        "postmark",
        "Postmark",
        include_str!("../../../providers/postmark.toml"),
    );
    type Settings = ();
    /// The basic-auth credentials written into the tenant's webhook URLs
    /// (`credentials`, each `user:password`).
    type Section = Secrets;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Secrets> {
        let credentials = section.signing_secrets("credentials")?;
        if credentials.0.iter().any(|c| !c.expose().contains(':')) {
            let at = section.at;
            section.problem(format!("{at}.credentials: write each as user:password"));
        }
        Some(credentials)
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let authorization = trip.header("authorization");
        verify::verify_basic_auth(authorization, &section.0, "postmark")
            .map_err(|e| Error::from(e).with_challenge(CHALLENGE))?;
        let req = trip.req;
        let normalised = normalise::normalise(&req.body, trip.receive())?;
        trip.out.skipped.extend(normalised.ignored);
        trip.out.rejected.extend(normalised.rejected);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
