//! Vonage: the SMS API (inbound SMS and delivery receipts, signed with `sig`) and the
//! Messages API (inbound messages and statuses of SMS, MMS, WhatsApp, Messenger and
//! Viber, signed with an HS256 JWT), both on `POST /webhooks/vonage/{tenant}` or on the
//! shared `POST /webhooks/vonage` (the tenant by the account's API key).
//!
//! The road: content type (the registry's first step) -> which API: a bearer token in
//! `Authorization` is the Messages API, anything else the SMS API ->
//! - Messages API: the tenant (the path, else the token's `api_key` claim) -> the
//!   clock, read once -> the JWT (alg HS256 only, HMAC with the tenant's signature
//!   secrets, `exp`/`nbf`, `iat` within five minutes, `payload_hash` = SHA-256 of the
//!   raw body) -> parse and normalise;
//! - SMS API: decode the parameters (form or flat JSON, bounded and total) -> the
//!   tenant (the path, else the `api-key` parameter) -> the clock -> `timestamp` within
//!   five minutes and `sig` over the sorted parameters with the tenant's method and
//!   secrets -> normalise.
//!
//! Why this order: Vonage signs with one signature secret per account (API key), so the
//! shared URL names its tenant only by that key: from the token's claims, or from the
//! decoded parameters, which the SMS signature covers anyway. Nothing read before the
//! signature verifies is used but that key, which only chooses whose secrets verify;
//! an unknown key is 404 before any HMAC. The JWT's body hash binds the raw bytes, so
//! the Messages body is parsed only after it verifies. Replays inside the window, and
//! Vonage's retries, are applied once: `message_uuid` (`messageId` for the SMS API, with
//! the status for receipts) is the event id the store deduplicates on. A Messages API
//! body that comes with no `Authorization` at all is answered 503, as Vonage asks, so
//! that it is retried signed (Vonage may send one unsigned after an internal error); it
//! is never applied.
//!
//! GET webhooks: the SMS API can be set to send its webhooks as GET with the parameters
//! in the query (`About::get_webhooks`): a GET walks the SMS API's road with the
//! query's parameters, signed the same way.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, SectionCx, Trip, WebhookMethod};
use crate::secret::Secret;
use verify::SigMethod;

/// The source Vonage's events carry.
pub const SOURCE: Source = Vonage::ABOUT.source();

/// The Vonage provider.
#[derive(Debug)]
pub struct Vonage;

/// A tenant's Vonage section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The account's signature secrets (Dashboard, API settings), several while
    /// rotating: they verify both APIs.
    pub signature_secrets: Vec<Secret>,
    /// The SMS API's signature method, as chosen in the dashboard (`md5hash` unless
    /// set, Vonage's default). The Messages API always signs with HS256.
    pub signature_method: SigMethod,
    /// The account API keys that route to this tenant on the shared URL.
    pub api_keys: Vec<String>,
}

/// `[tenants.ID.vonage]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(default)]
    signature_secrets: Vec<String>,
    #[serde(default)]
    signature_method: Option<SigMethod>,
    #[serde(default)]
    api_keys: Vec<String>,
}

impl Road for Vonage {
    const ABOUT: About = About::new(
        "vonage",
        "Vonage",
        include_str!("../../../providers/vonage.toml"),
    )
    .accepts(
        &["application/x-www-form-urlencoded", "application/json"],
        "the SMS API sends a form, JSON or a GET query; the Messages API posts JSON",
    )
    .get_webhooks();
    type Settings = ();
    type Section = Section;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let raw: RawSection = section.read()?;
        let at = section.at;
        let secrets_at = format!("{at}.signature_secrets");
        let signature_secrets = section.cx.required_secrets(
            &secrets_at,
            &raw.signature_secrets,
            "Vonage webhooks cannot be verified",
        );
        if signature_secrets.iter().any(|s| s.expose().is_empty()) {
            section.problem(format!("{secrets_at}: a secret is empty"));
        }
        for key in &raw.api_keys {
            if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                section.problem(format!(
                    "{at}.api_keys: {key:?} is not a Vonage API key (letters and digits, as the dashboard shows it)"
                ));
            }
            if let Some(other) = section.claim(format!("vonage:{key}")) {
                section.problem(format!(
                    "{at}.api_keys: {key} is also configured for tenant {other}"
                ));
            }
        }
        Some(Section {
            signature_secrets,
            signature_method: raw.signature_method.unwrap_or(SigMethod::Md5Hash),
            api_keys: raw.api_keys,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let req = trip.req;
        let authorization = req.header("authorization");
        let (tenant, normalised) = if verify::is_bearer(authorization) {
            let token = verify::bearer(authorization)?;
            let (tenant, section) = match &req.tenant {
                Some(_) => trip.path_tenant()?,
                None => by_api_key(
                    trip,
                    verify::unverified_api_key(token).as_deref(),
                    "the token's api_key claim",
                )?,
            };
            let received_ms = trip.receive();
            let secrets = &section.signature_secrets;
            verify::verify_messages(
                authorization,
                &req.body,
                secrets,
                received_ms.div_euclid(1000),
            )?;
            (
                tenant,
                normalise::normalise_messages(&req.body, received_ms)?,
            )
        } else {
            let get = req.method == WebhookMethod::Get;
            let json = !get && req.content_type.as_deref() == Some("application/json");
            if json && authorization.is_none() && normalise::unsigned_messages_callback(&req.body) {
                // Vonage: "in the rare case of an internal error, it is possible that the
                // callback service will send an unsigned callback. By returning an HTTP
                // 5xx response, a retry will be triggered" (signed-webhooks guide). It
                // changes nothing either way; a 401 could lose a real opt-out.
                return Err(Error::unavailable(
                    "unsigned Vonage Messages API callback: not applied; Vonage retries it signed",
                ));
            }
            let params = if get {
                crate::providers::twilio::normalise::parse_form(req.query().as_bytes())?
            } else if json {
                normalise::json_params(&req.body)?
            } else {
                crate::providers::twilio::normalise::parse_form(&req.body)?
            };
            let (tenant, section) = match &req.tenant {
                Some(_) => trip.path_tenant()?,
                None => by_api_key(
                    trip,
                    normalise::param(&params, "api-key"),
                    "the api-key parameter",
                )?,
            };
            let received_ms = trip.receive();
            verify::verify_sms(
                &params,
                section.signature_method,
                &section.signature_secrets,
                received_ms.div_euclid(1000),
            )?;
            (tenant, normalise::normalise_sms(&params, received_ms))
        };
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

/// The tenant of a request on the shared URL: the one whose section lists `key`.
fn by_api_key<'a>(
    trip: &mut Trip<'a, Vonage>,
    key: Option<&str>,
    from: &str,
) -> Result<(&'a str, &'a Section), Error> {
    let key = key.ok_or_else(|| {
        Error::bad_request(format!(
            "no API key in {from} to find the tenant by: post to /webhooks/vonage/{{tenant}}"
        ))
    })?;
    let config = trip.config;
    let (tenant, section) = config
        .find(|s| s.api_keys.iter().any(|k| k == key))
        .ok_or_else(|| {
            Error::not_found(format!(
                "no tenant is configured for Vonage API key {key:?}"
            ))
        })?;
    trip.out.for_tenant(tenant);
    Ok((tenant, section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::road::ConfigCx;

    fn read(tenant: &str, text: &str, cx: &mut ConfigCx<'_>) -> Option<Section> {
        let value: toml::Value = toml::from_str(text).unwrap();
        let at = format!("tenants.{tenant}.vonage");
        Vonage::section(&mut SectionCx::new(tenant, &at, value, cx))
    }

    #[test]
    fn sections_are_read_and_checked() {
        let mut problems = Vec::new();
        let mut cx = ConfigCx::new(std::path::Path::new("."), &mut problems);
        let acme = read(
            "acme",
            "signature_secrets = [\"s1\", \"s2\"]\napi_keys = [\"abcd1234\"]",
            &mut cx,
        )
        .unwrap();
        assert_eq!(acme.signature_method, SigMethod::Md5Hash);
        assert_eq!(acme.signature_secrets.len(), 2);
        let globex = read(
            "globex",
            "signature_secrets = [\"s3\"]\nsignature_method = \"sha512\"\napi_keys = [\"abcd1234\", \"not a key\"]",
            &mut cx,
        )
        .unwrap();
        assert_eq!(globex.signature_method, SigMethod::Sha512);
        assert!(
            read(
                "x",
                "signature_secrets = [\"s\"]\nsignature_method = \"sha384\"",
                &mut cx
            )
            .is_none()
        );
        assert!(read("y", "signature_secret = [\"s\"]", &mut cx).is_none());
        read("z", "api_keys = []", &mut cx);
        let text = problems.join("\n");
        assert!(
            text.contains("abcd1234 is also configured for tenant acme"),
            "{text}"
        );
        assert!(
            text.contains("\"not a key\" is not a Vonage API key"),
            "{text}"
        );
        assert!(text.contains("sha384"), "{text}");
        assert!(text.contains("signature_secret"), "{text}");
        assert!(
            text.contains("tenants.z.vonage.signature_secrets is empty"),
            "{text}"
        );
        assert_eq!(problems.len(), 5, "{text}");
    }
}
