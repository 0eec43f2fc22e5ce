//! Twilio Programmable Messaging (SMS, MMS, WhatsApp through Twilio): inbound messages
//! and status callbacks, on `POST /webhooks/twilio` (the tenant by `AccountSid`) or
//! `POST /webhooks/twilio/{tenant}`.
//!
//! The road: content type (the registry's first step) -> decode the form (not for JSON)
//! -> the tenant (by the path, else by the form's `AccountSid`) -> JSON only for a
//! tenant that takes Event Streams -> signature over the public URL and the form (or
//! the URL's `bodySHA256` for JSON) -> normalise.
//!
//! Why this order: Twilio signs the decoded form parameters, and the shared URL names
//! its tenant by `AccountSid`, so the form is decoded before the tenant is known (the
//! decoder is bounded and total; nothing decoded is used before the signature
//! verifies). A JSON body is signed through the URL alone, which a form signature can be
//! made to read as (see [`verify::verify_twilio`]): only a tenant that asked for Event
//! Streams takes one, and that is decided before any HMAC is computed.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::classify::{self, Action, ErrorTable};
use crate::error::{Error, Kind};
use crate::event::Source;
use crate::road::{About, Reply, Road, SectionCx, Trip};
use crate::secret::Secret;
use normalise::CallbackKind;
use verify::TwilioSigned;

/// The source Twilio's events carry.
pub const SOURCE: Source = Twilio::ABOUT.source();

/// The Twilio provider.
#[derive(Debug)]
pub struct Twilio;

/// A tenant's Twilio section.
#[derive(Debug, Clone)]
pub struct Section {
    /// Auth tokens tried in turn (several while rotating).
    pub auth_tokens: Vec<Secret>,
    /// Account SIDs that route to this tenant on the shared `/webhooks/twilio` URL.
    pub account_sids: Vec<String>,
    /// Whether the tenant takes Event Streams deliveries (JSON CloudEvents signed
    /// through `bodySHA256`) on `/webhooks/twilio/{tenant}` (`event_streams`, default
    /// false). Off, a JSON body is refused: only form webhooks are signed then.
    pub event_streams: bool,
}

/// `[tenants.ID.twilio]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(default)]
    auth_tokens: Vec<String>,
    #[serde(default)]
    account_sids: Vec<String>,
    #[serde(default)]
    event_streams: bool,
}

impl Road for Twilio {
    const ABOUT: About = About::new(
        "twilio",
        "Twilio",
        include_str!("../../../providers/twilio.toml"),
    )
    .accepts(
        &["application/x-www-form-urlencoded", "application/json"],
        "application/json comes from Event Streams",
    );
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let raw: RawSection = section.read()?;
        let at = section.at;
        let why = "Twilio webhooks cannot be verified";
        let tokens_at = format!("{at}.auth_tokens");
        let auth_tokens = section
            .cx
            .required_secrets(&tokens_at, &raw.auth_tokens, why);
        for sid in &raw.account_sids {
            if !(sid.len() == 34 && sid.starts_with("AC")) {
                section.problem(format!(
                    "{at}.account_sids: {sid:?} is not an account SID (AC and 32 hex digits)"
                ));
            }
            if let Some(other) = section.claim(format!("twilio:{sid}")) {
                section.problem(format!(
                    "{at}.account_sids: {sid} is also configured for tenant {other}"
                ));
            }
        }
        Some(Section {
            auth_tokens,
            account_sids: raw.account_sids,
            event_streams: raw.event_streams,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let req = trip.req;
        let form = match req.content_type.as_deref() {
            Some("application/json") => None,
            _ => Some(normalise::parse_form(&req.body)?),
        };
        let (tenant, section) = match &req.tenant {
            Some(_) => trip.path_tenant()?,
            None => by_account(trip, form.as_deref())?,
        };
        if form.is_none() && !section.event_streams {
            return Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "tenant {tenant:?} takes no Twilio Event Streams (JSON): set event_streams = true under [tenants.{tenant}.twilio] to accept them"
                ),
            ));
        }
        let url = format!("{}{}", trip.host.public_url(), req.path_and_query);
        let signed = match &form {
            Some(params) => TwilioSigned::Form(params),
            None => TwilioSigned::Json(&req.body),
        };
        let signature = req.header("x-twilio-signature");
        verify::verify_twilio(&url, signed, signature, &section.auth_tokens)?;
        let received_ms = trip.receive();
        let normalised = match &form {
            Some(params) => normalise::normalise(params, received_ms)?,
            None => normalise::normalise_event_streams(&req.body, received_ms)?,
        };
        if let Some(status) = &normalised.unaddressed {
            warn_unaddressed("Twilio", SOURCE, &trip.config.codes, tenant, status);
        }
        trip.out.reply = match normalised.kind {
            _ if !normalised.rejected.is_empty() => Reply::Summary,
            CallbackKind::Inbound => Reply::Twiml,
            CallbackKind::Status => Reply::Empty,
        };
        trip.out.rejected.extend(normalised.rejected);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

/// The tenant of a request on the shared URL: the one whose section lists the form's
/// `AccountSid`.
fn by_account<'a>(
    trip: &mut Trip<'a, Twilio>,
    form: Option<&[(String, String)]>,
) -> Result<(&'a str, &'a Section), Error> {
    let sid = form.and_then(normalise::account_sid).ok_or_else(|| {
        Error::bad_request("no AccountSid to find the tenant by: post to /webhooks/twilio/{tenant}")
    })?;
    let config = trip.config;
    let found = config.find(|s| s.account_sids.iter().any(|a| a == sid));
    let (tenant, section) = found.ok_or_else(|| {
        Error::not_found(format!("no tenant is configured for Twilio account {sid}"))
    })?;
    trip.out.for_tenant(tenant);
    Ok((tenant, section))
}

/// A status callback without `To` is answered 2xx and counted as ignored: a retry would
/// bring no `To` either. When its error code would have been a DND by `codes`, that is
/// worth a warning: the contact's record cannot be written from this callback.
/// `provider` names the sender in the log line (SignalWire posts Twilio's callbacks too).
pub(crate) fn warn_unaddressed(
    provider: &str,
    source: Source,
    codes: &ErrorTable,
    tenant: &str,
    status: &normalise::UnaddressedStatus,
) {
    let code = status.error_code.as_deref();
    let decision = classify::classify_status(source, &status.status, code, codes);
    if decision.action != Action::None {
        tracing::warn!(
            tenant,
            message_sid = %status.message_sid,
            reason = %decision.reason,
            "{provider} status callback carries a DND error code but no To: nothing to apply it to"
        );
    }
}
