//! Plivo Messaging (SMS, MMS, WhatsApp through Plivo): inbound messages and message
//! status callbacks, on `POST /webhooks/plivo/{tenant}` (the Plivo application's
//! Message URL, and the `url` of each send).
//!
//! The road: content type (the registry's first step: a form) -> the tenant from the
//! path -> decode the form -> signature V3 over the public URL, the sorted form
//! parameters and the nonce, with the tenant's Auth Tokens -> the clock, read once ->
//! normalise.
//!
//! Why this order: the Auth Tokens are per tenant, and Plivo's message callbacks carry
//! no account id (no `AuthID`: see docs/research/plivo.md), so the tenant comes from
//! the path alone and nothing of an unverified body chooses what verifies it. Plivo
//! signs the decoded form parameters, so the form is decoded before the signature is
//! checked (the decoder is bounded by the body limit, strict and total); nothing
//! decoded is read before the signature verifies. The scheme signs no time: a replay,
//! and Plivo's own retries, are applied once by the store's dedup on the event id
//! (`MessageUUID`, `MessageUUID:status`), as for Twilio. A verified callback we do not
//! act on (a delivered status, a voice callback) is 200 and counted as skipped.
//!
//! Only POST is served. Plivo can call a Message URL with GET (parameters in the
//! query); the verifier builds GET's signed string too ([`verify::Method::Get`]), but
//! the server sends a GET on a webhook route to [`Road::handshake`], which sees
//! neither the headers nor the tenant. Configure the method as POST (Plivo's default).

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Reply, Road, SectionCx, Trip};
use crate::secret::Secret;
use normalise::CallbackKind;
use verify::{Headers, MAIN_ACCOUNT_HEADER, Method, NONCE_HEADER, SIGNATURE_HEADER};

/// The source Plivo's events carry.
pub const SOURCE: Source = Plivo::ABOUT.source();

/// The Plivo provider.
#[derive(Debug)]
pub struct Plivo;

/// A tenant's Plivo section.
#[derive(Debug, Clone)]
pub struct Section {
    /// Auth Tokens tried in turn (several while rotating; the main account's token
    /// verifies `X-Plivo-Signature-Ma-V3`).
    pub auth_tokens: Vec<Secret>,
}

impl Road for Plivo {
    const ABOUT: About = About::new("plivo", include_str!("../../../providers/plivo.toml"))
        .accepts(
            &["application/x-www-form-urlencoded"],
            "set the Message URL's method to POST",
        );
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let tokens = section.signing_secrets("auth_tokens")?;
        Some(Section {
            auth_tokens: tokens.0,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, section) = trip.path_tenant()?;
        let req = trip.req;
        let params = normalise::parse_form(&req.body)?;
        let url = format!("{}{}", trip.host.public_url(), req.path_and_query);
        let headers = Headers {
            signature: req.header(SIGNATURE_HEADER),
            nonce: req.header(NONCE_HEADER),
            main_account: req.header(MAIN_ACCOUNT_HEADER),
        };
        verify::verify_plivo(&url, Method::Post, &params, headers, &section.auth_tokens)?;
        let received_ms = trip.receive();
        let normalised = normalise::normalise(&params, received_ms)?;
        if normalised.kind == CallbackKind::Inbound {
            // An empty `<Response/>`: valid Plivo XML that sends no reply.
            trip.out.reply = Reply::Twiml;
        }
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}
