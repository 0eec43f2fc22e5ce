//! SignalWire's compatibility API (cXML, formerly LaML: SMS and MMS): inbound messages
//! and message status callbacks, on `POST /webhooks/signalwire` (the tenant by the
//! form's `AccountSid`, which is the SignalWire project id) or
//! `POST /webhooks/signalwire/{tenant}`.
//!
//! The road: content type (the registry's first step; forms only) -> decode the form ->
//! the tenant (by the path, else by the form's `AccountSid`) -> signature over the public
//! URL and the form with the project's Signing Key -> normalise.
//!
//! Why this order: SignalWire signs exactly as Twilio does (base64 HMAC-SHA1 over the
//! URL followed by the form parameters sorted by name), so the form is decoded before
//! anything is verified, and the shared URL names its tenant only by the project id in
//! that form. The decoder is bounded and total, and nothing decoded is used before the
//! signature verifies. The scheme, the decoder and the reading of the form are Twilio's
//! own ([`crate::providers::twilio`]), called here under SignalWire's header and name.
//! SignalWire also signs RELAY/SWML JSON webhooks (hex HMAC-SHA1 of the URL and the raw
//! body); no messaging webhook of the compatibility API is JSON, so JSON is refused
//! (415) before any tenant is looked at. See docs/research/signalwire.md.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::providers::twilio::{self, normalise::CallbackKind};
use crate::road::{About, Reply, Road, SectionCx, Trip};
use crate::secret::Secret;

/// The source SignalWire's events carry.
pub const SOURCE: Source = SignalWire::ABOUT.source();

/// The SignalWire provider.
#[derive(Debug)]
pub struct SignalWire;

/// A tenant's SignalWire section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The project's Signing Keys tried in turn (several while one is being reset).
    pub signing_keys: Vec<Secret>,
    /// Project ids (the `AccountSid` SignalWire posts), lower-cased, that route to this
    /// tenant on the shared `/webhooks/signalwire` URL.
    pub project_ids: Vec<String>,
}

/// `[tenants.ID.signalwire]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(default)]
    signing_keys: Vec<String>,
    #[serde(default)]
    project_ids: Vec<String>,
}

impl Road for SignalWire {
    const ABOUT: About = About::new(
        "signalwire",
        "SignalWire",
        include_str!("../../../providers/signalwire.toml"),
    )
    .accepts(
        &["application/x-www-form-urlencoded"],
        "SignalWire's cXML messaging webhooks are forms",
    );
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let raw: RawSection = section.read()?;
        let at = section.at;
        let why = "SignalWire webhooks cannot be verified (the Signing Key is under API Credentials in the SignalWire Dashboard)";
        let keys_at = format!("{at}.signing_keys");
        let signing_keys = section
            .cx
            .required_secrets(&keys_at, &raw.signing_keys, why);
        let mut project_ids = Vec::with_capacity(raw.project_ids.len());
        for id in &raw.project_ids {
            if !normalise::is_project_id(id) {
                section.problem(format!(
                    "{at}.project_ids: {id:?} is not a SignalWire project id (a UUID such as 1f5b6c1e-0d4e-4b3a-9c2d-2a8e7f6b5c4d)"
                ));
            }
            let id = id.to_ascii_lowercase();
            if let Some(other) = section.claim(format!("signalwire:{id}")) {
                section.problem(format!(
                    "{at}.project_ids: {id} is also configured for tenant {other}"
                ));
            }
            project_ids.push(id);
        }
        Some(Section {
            signing_keys,
            project_ids,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let req = trip.req;
        let form = normalise::parse_form(&req.body)?;
        let (tenant, section) = match &req.tenant {
            Some(_) => trip.path_tenant()?,
            None => by_project(trip, &form)?,
        };
        let url = format!("{}{}", trip.host.public_url(), req.path_and_query);
        // The request's header names are lower case; the constants are as documented.
        let (header, signature) =
            verify::signature_of(|name| req.header(&name.to_ascii_lowercase()));
        verify::verify_signalwire(&url, &form, header, signature, &section.signing_keys)?;
        let received_ms = trip.receive();
        let normalised = normalise::normalise(&form, received_ms)?;
        if let Some(status) = &normalised.unaddressed {
            twilio::warn_unaddressed("SignalWire", SOURCE, &trip.config.codes, tenant, status);
        }
        trip.out.reply = match normalised.kind {
            CallbackKind::Inbound => Reply::Twiml,
            CallbackKind::Status => Reply::Empty,
        };
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

/// The tenant of a request on the shared URL: the one whose section lists the form's
/// `AccountSid` (the project id), compared without regard to case.
fn by_project<'a>(
    trip: &mut Trip<'a, SignalWire>,
    form: &[(String, String)],
) -> Result<(&'a str, &'a Section), Error> {
    let id = normalise::project_id(form).ok_or_else(|| {
        Error::bad_request(
            "no AccountSid (project id) to find the tenant by: post to /webhooks/signalwire/{tenant}",
        )
    })?;
    let config = trip.config;
    let found = config.find(|s| s.project_ids.iter().any(|p| p.eq_ignore_ascii_case(id)));
    let (tenant, section) = found.ok_or_else(|| {
        Error::not_found(format!(
            "no tenant is configured for SignalWire project {id}"
        ))
    })?;
    trip.out.for_tenant(tenant);
    Ok((tenant, section))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(tenants: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "public_url = \"https://hooks.example.com\"\n[tenants.acme]\napi_tokens = [\"t\"]\n[tenants.globex]\napi_tokens = [\"u\"]\n{tenants}\n"
        );
        Config::parse(&text, Path::new("."))
    }

    #[test]
    fn a_section_reads_its_keys_and_lower_cases_its_project_ids() {
        let config = parse(
            "[tenants.acme.signalwire]\nsigning_keys = [\"PSKa\", \"PSKb\"]\nproject_ids = [\"B3877C40-DA60-4998-90AD-B792E98472AF\"]",
        )
        .expect("valid");
        let section = &config.providers.signalwire.tenants["acme"];
        assert_eq!(section.signing_keys.len(), 2);
        assert_eq!(
            section.project_ids,
            ["b3877c40-da60-4998-90ad-b792e98472af"]
        );
    }

    #[test]
    fn a_bad_section_is_refused_in_one_line_per_problem() {
        let cases = [
            (
                "[tenants.acme.signalwire]\nproject_ids = []",
                "signing_keys is empty",
            ),
            (
                "[tenants.acme.signalwire]\nsigning_keys = [\"k\"]\nproject_ids = [\"AC00000000000000000000000000000000\"]",
                "is not a SignalWire project id",
            ),
            (
                "[tenants.acme.signalwire]\nsigning_keys = [\"k\"]\napi_token = \"PT\"",
                "unknown field `api_token`",
            ),
            (
                "[tenants.acme.signalwire]\nsigning_keys = [\"k\"]\nproject_ids = [\"b3877c40-da60-4998-90ad-b792e98472af\"]\n[tenants.globex.signalwire]\nsigning_keys = [\"k2\"]\nproject_ids = [\"B3877C40-da60-4998-90ad-b792e98472af\"]",
                "is also configured for tenant acme",
            ),
        ];
        for (section, want) in cases {
            let problems = parse(section).expect_err(section);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{section}: {problems:?}"
            );
            assert!(problems.iter().all(|p| !p.contains('\n')), "{problems:?}");
        }
    }
}
