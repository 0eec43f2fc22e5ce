//! Brevo (formerly Sendinblue): transactional and marketing email events, one JSON
//! record per request or a batch of them (a JSON array), on
//! `POST /webhooks/brevo/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path
//! -> the `Authorization` header (HTTP basic auth or a bearer token) -> parse and
//! normalise.
//!
//! Why this order: Brevo signs nothing. The operator gives the webhook either
//! credentials in its URL (`https://user:password@host/webhooks/brevo/TENANT`, sent as
//! `Authorization: Basic`) or a bearer token (the webhook's `auth` setting, sent as
//! `Authorization: Bearer TOKEN`). The credentials are the tenant's, so the tenant comes
//! first, and only from the path: nothing of an unauthenticated body chooses what
//! authenticates it. They are checked, in constant time against every configured value,
//! before anything of the body is read (401 with a `WWW-Authenticate` challenge, nothing
//! written). The body is then parsed once: a record we do not act on (delivered,
//! opened, clicked) and a record without what a DND change needs (no `email`) are
//! answered 200 and counted, so Brevo does not retry what can never succeed; only a
//! body that is no Brevo record at all gets 400.
//!
//! Replays: nothing is signed, so nothing carries a signed time. Brevo gives no event
//! id; the store deduplicates on `message-id:EVENT:ADDRESS` (transactional) or
//! `camp:CAMP_ID:EVENT:ADDRESS` (marketing), so Brevo's retries of a record are applied
//! once. A captured request also holds the credentials: use HTTPS.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, SectionCx, Trip};
use crate::secret::Secret;

/// The source Brevo's events carry.
pub const SOURCE: Source = Brevo::ABOUT.source();

/// The challenges of a refused request: either scheme is accepted.
const CHALLENGE: &str = "Basic realm=\"dndgate\", Bearer realm=\"dndgate\"";

/// The Brevo provider.
#[derive(Debug)]
pub struct Brevo;

/// A tenant's Brevo section: at least one credential or token.
#[derive(Debug, Clone)]
pub struct Section {
    /// `user:password` pairs written into the webhook URL (HTTP basic auth), several
    /// while rotating.
    pub credentials: Vec<Secret>,
    /// Bearer tokens set as the webhook's `auth` token, several while rotating.
    pub tokens: Vec<Secret>,
}

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    #[serde(default)]
    credentials: Vec<String>,
    #[serde(default)]
    tokens: Vec<String>,
}

impl Road for Brevo {
    // Brevo drops a webhook answered with any 5xx, and retries a 429
    // (developers.brevo.com/docs/retry-mechanism): "try again" is a 429 here.
    const ABOUT: About = About::new(
        "brevo",
        "Brevo",
        include_str!("../../../providers/brevo.toml"),
    )
    .retry_status(429);
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let raw: RawSection = section.read()?;
        let at = section.at.to_string();
        if raw.credentials.is_empty() && raw.tokens.is_empty() {
            section.problem(format!(
                "{at}: set credentials (user:password, written into the webhook URL) or tokens (the webhook's bearer token): its webhooks cannot be authenticated"
            ));
        }
        let credentials = section
            .cx
            .secrets(&format!("{at}.credentials"), &raw.credentials);
        if credentials.iter().any(|c| !c.expose().contains(':')) {
            section.problem(format!("{at}.credentials: write each as user:password"));
        }
        let tokens = section.cx.secrets(&format!("{at}.tokens"), &raw.tokens);
        if tokens
            .iter()
            .any(|t| t.expose().contains(char::is_whitespace))
        {
            section.problem(format!(
                "{at}.tokens: a bearer token has no spaces (write the token alone, without `Bearer `)"
            ));
        }
        Some(Section {
            credentials,
            tokens,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        verify::verify_brevo(
            trip.header("authorization"),
            &section.credentials,
            &section.tokens,
        )
        .map_err(|e| Error::from(e).with_challenge(CHALLENGE))?;
        let req = trip.req;
        let normalised = normalise::normalise(&req.body, trip.receive())?;
        trip.out.skipped.extend(normalised.ignored);
        trip.out.rejected.extend(normalised.rejected);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::road::ConfigCx;

    /// The section read from `text`, and the problems reported.
    fn read(text: &str) -> (Option<Section>, Vec<String>) {
        let mut problems = Vec::new();
        let value: toml::Value = toml::from_str(text).unwrap();
        let section = {
            let mut cx = ConfigCx::new(std::path::Path::new("."), &mut problems);
            let at = "tenants.acme.brevo";
            Brevo::section(&mut SectionCx::new("acme", at, value, &mut cx))
        };
        (section, problems)
    }

    #[test]
    fn a_section_needs_credentials_or_tokens() {
        let (section, problems) = read("credentials = [\"u:p\"]\ntokens = [\"t1\", \"t2\"]");
        assert!(problems.is_empty(), "{problems:?}");
        let section = section.unwrap();
        assert_eq!((section.credentials.len(), section.tokens.len()), (1, 2));
        for text in ["credentials = [\"u:p\"]", "tokens = [\"t\"]"] {
            assert!(read(text).1.is_empty(), "{text}");
        }
        // (section, a fragment of the one problem)
        for (text, want) in [
            ("", "set credentials"),
            ("credentials = []\ntokens = []", "set credentials"),
            ("credentials = [\"nocolon\"]", "write each as user:password"),
            ("tokens = [\"Bearer abc\"]", "a bearer token has no spaces"),
            ("token = [\"abc\"]", "unknown field"),
        ] {
            let (_, problems) = read(text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert!(problems[0].contains(want), "{text}: {problems:?}");
            assert!(
                problems[0].starts_with("tenants.acme.brevo"),
                "{problems:?}"
            );
        }
    }
}
