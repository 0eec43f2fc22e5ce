//! Mandrill (Mailchimp Transactional): message and sync event webhooks for email, on
//! `POST /webhooks/mandrill/{tenant}`.
//!
//! The road: content type (the registry's first step: a form) -> tenant section from
//! the path -> decode the form -> Mandrill's URL check (an unsigned empty batch) ->
//! HMAC-SHA1 over the public URL and the sorted form parameters, with the tenant's
//! webhook keys -> parse `mandrill_events` -> normalise each event.
//!
//! Why this order: the keys are per webhook, so per tenant, and the tenant comes only
//! from the path (nothing of an unverified body chooses what verifies it). Mandrill
//! signs the decoded form parameters, not the raw bytes, so the form is decoded before
//! the signature is checked; the decoder is bounded by the body limit and total, and
//! nothing decoded is read before the signature verifies, with one exception below. The
//! JSON inside is parsed only once it verifies. An event of the batch that cannot be
//! read is refused on its own line of a 200, one without a DND signal is skipped and
//! counted: Mandrill resends a failed batch whole.
//!
//! Mandrill's URL check. Before a webhook (and so its key) exists, Mandrill checks
//! that the URL answers: a `HEAD` request, and it may `POST` an empty batch
//! (`mandrill_events=[]`), both unsigned
//! (<https://mandrill.zendesk.com/hc/en-us/articles/205583217-Introduction-to-Webhooks>:
//! "Before Mandrill begins POSTing to your webhook URL, it will be verified to ensure
//! it exists"). An unsigned request whose form is exactly that empty batch is answered
//! 200 and writes nothing: it carries nothing to apply, so accepting it unsigned lets
//! nobody change anything. Any other unsigned request, or a wrong signature, is 401.
//! A `GET` is answered 200 by [`Road::handshake`]; a `HEAD` needs the server to route
//! it to the handshake as well (today the server answers 405 to anything but `GET` and
//! `POST` on a webhook route).
//!
//! Replays: the scheme signs no time. A replayed batch is applied once per event id
//! (`_id:event:ts`, or the sync event's content), within the dedup TTL; beyond it, the
//! events' own `ts` orders them behind anything newer.

pub mod normalise;
pub mod verify;

use crate::error::Error;
use crate::event::Source;
use crate::providers::twilio::normalise::parse_form;
use crate::road::{About, Answer, ProviderConfig, Reply, Road, Secrets, SectionCx, Trip};

/// The source Mandrill's events carry.
pub const SOURCE: Source = Mandrill::ABOUT.source();

/// The Mandrill provider.
#[derive(Debug)]
pub struct Mandrill;

/// The answer to Mandrill's unsigned URL check (an empty batch).
pub const URL_CHECK_ANSWER: &str = "ok: an empty Mandrill batch, nothing to apply\n";

impl Road for Mandrill {
    const ABOUT: About = About::new(
        "mandrill",
        "Mandrill",
        include_str!("../../../providers/mandrill.toml"),
    )
    .accepts(&["application/x-www-form-urlencoded"], "");
    type Settings = ();
    type Section = Secrets;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Secrets> {
        section.signing_secrets("webhook_keys")
    }

    /// A `GET` on the route (a person or a probe checking the URL): 200, nothing read.
    fn handshake(config: &ProviderConfig<Self>, query: &str) -> Result<Answer, Error> {
        let _ = (config, query);
        Ok(Answer::text(
            200,
            "mandrill: this URL takes Mandrill webhooks (POST)\n",
        ))
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, keys) = trip.path_tenant()?;
        let req = trip.req;
        let received_ms = trip.receive();
        let params = parse_form(&req.body)?;
        let signature = req.header("x-mandrill-signature");
        if signature.is_none() && is_url_check(&params) {
            trip.out.reply = Reply::Text(URL_CHECK_ANSWER.to_string());
            return Ok(());
        }
        let url = format!("{}{}", trip.host.public_url(), req.path_and_query);
        verify::verify_mandrill(&url, &params, signature, &keys.0)?;
        let events = normalise::parse(normalise::events_param(&params)?)?;
        let normalised = normalise::normalise(&events, received_ms);
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

/// The form of Mandrill's URL check: `mandrill_events` alone, an empty JSON array.
fn is_url_check(params: &[(String, String)]) -> bool {
    matches!(params, [(name, value)] if name == normalise::EVENTS_PARAM && value.trim() == "[]")
}

#[cfg(test)]
mod tests {
    use super::normalise::form;
    use super::*;

    #[test]
    fn only_the_empty_batch_is_the_url_check() {
        assert!(is_url_check(&form(&[("mandrill_events", "[]")])));
        assert!(is_url_check(&form(&[("mandrill_events", " [] ")])));
        for not in [
            form(&[]),
            form(&[("mandrill_events", "[{}]")]),
            form(&[("mandrill_events", "[]"), ("x", "1")]),
            form(&[("other", "[]")]),
        ] {
            assert!(!is_url_check(&not), "{not:?}");
        }
    }

    #[test]
    fn a_get_is_answered_200() {
        let config = ProviderConfig::<Mandrill> {
            settings: (),
            tenants: Default::default(),
            codes: Mandrill::ABOUT.table(),
        };
        let answer = Mandrill::handshake(&config, "").unwrap();
        assert_eq!(answer.status, 200);
    }
}
