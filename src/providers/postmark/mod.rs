//! Postmark: bounces, spam complaints and subscription changes, one JSON record per
//! request, on `POST /webhooks/postmark/{tenant}`.
//!
//! The road: tenant section from the path -> basic auth -> content type -> parse and
//! normalise.
//!
//! Why this order: Postmark signs nothing; the operator writes credentials into the
//! webhook URL (`https://user:password@host/webhooks/postmark/TENANT`) and Postmark
//! sends them as `Authorization: Basic`. They are checked before anything of the
//! request is read, so an unauthenticated caller learns nothing about how a body would
//! be handled (401, nothing written, and a `WWW-Authenticate` challenge so a person
//! testing with curl learns what to send). Records we do not act on (deliveries, opens)
//! and records without what a DND change needs (a bounce without `Email`) are answered
//! 200, so Postmark does not retry what can never succeed; only a body that is no
//! Postmark record at all gets 400.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, ConfigCx, Road, Trip};
use crate::secret::Secret;

/// The source Postmark's events carry.
pub const SOURCE: Source = Postmark::ABOUT.source();

/// The challenge of a refused request.
const CHALLENGE: &str = "Basic realm=\"dndgate\"";

/// The Postmark provider.
#[derive(Debug)]
pub struct Postmark;

/// A tenant's Postmark section: the basic-auth credentials written into its webhook
/// URLs, `user:password`, several while rotating.
#[derive(Debug, Clone)]
pub struct Section {
    /// The credentials, tried in turn.
    pub credentials: Vec<Secret>,
}

/// `[tenants.ID.postmark]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(default)]
    credentials: Vec<String>,
}

impl Road for Postmark {
    const ABOUT: About = About::new("postmark", include_str!("../../../providers/postmark.toml"));
    type Settings = ();
    type Raw = RawSection;
    type Section = Section;

    fn section(tenant: &str, raw: RawSection, cx: &mut ConfigCx<'_>) -> Option<Section> {
        let at = format!("tenants.{tenant}.postmark.credentials");
        let why = "its webhooks cannot be verified";
        let credentials = cx.required_secrets(&at, &raw.credentials, why);
        if credentials.iter().any(|c| !c.expose().contains(':')) {
            cx.problem(format!("{at}: write each as user:password"));
        }
        Some(Section { credentials })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let authorization = trip.header("authorization");
        verify::verify_basic_auth(authorization, &section.credentials, "postmark")
            .map_err(|e| Error::from(e).with_challenge(CHALLENGE))?;
        let req = trip.req;
        req.require_content_type(&["application/json"], "Postmark posts application/json")?;
        let normalised = normalise::normalise(&req.body, trip.receive())?;
        trip.out.skipped.extend(normalised.ignored);
        trip.out.rejected.extend(normalised.rejected);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
