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
//! POST (Plivo's default) and GET are served (`About::get_webhooks`): a GET's
//! parameters are its query, and its signed string is built as Plivo builds GET's
//! ([`verify::Method::Get`]: the URL with its sorted query, no form part).

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Reply, Road, SectionCx, Trip, WebhookMethod};
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
    const ABOUT: About = About::new(
        "plivo",
        "Plivo",
        include_str!("../../../providers/plivo.toml"),
    )
    .accepts(
        &["application/x-www-form-urlencoded"],
        "or a GET with the parameters in the query",
    )
    .get_webhooks();
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
        let (method, params) = match req.method {
            WebhookMethod::Get => (Method::Get, normalise::parse_form(req.query().as_bytes())?),
            WebhookMethod::Post => (Method::Post, normalise::parse_form(&req.body)?),
        };
        let signed_params: &[(String, String)] = match method {
            Method::Get => &[],
            Method::Post => &params,
        };
        let url = format!("{}{}", trip.host.public_url(), req.path_and_query);
        let headers = Headers {
            signature: req.header(SIGNATURE_HEADER),
            nonce: req.header(NONCE_HEADER),
            main_account: req.header(MAIN_ACCOUNT_HEADER),
        };
        verify::verify_plivo(&url, method, signed_params, headers, &section.auth_tokens)?;
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
