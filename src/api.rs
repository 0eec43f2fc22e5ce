//! The operator API: the send-time lookup over HTTP, behind each tenant's bearer
//! tokens. Knows no hyper: the server hands it plain values.

use serde::Deserialize;
use serde_json::json;

use crate::address::Address;
use crate::config::Config;
use crate::error::{Error, Kind};
use crate::event::Channel;
use crate::lookup::{self, Lookup, LookupError, MAX_BATCH};
use crate::pipeline::Answer;
use crate::secret::constant_time_eq;

/// The answer for an error on an API route: its status and `{"error": "..."}`.
pub fn error_answer(e: &Error) -> Answer {
    let mut answer = Answer::json(e.kind.status(), &json!({ "error": e.message }));
    if e.kind == Kind::Unavailable {
        answer.retry_after = Some(1);
    }
    answer
}

impl From<LookupError> for Error {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Store(s) => s.into(),
            other => Error::bad_request(other.to_string()),
        }
    }
}

/// Check the `Authorization: Bearer TOKEN` header against the tenant's tokens, every
/// one compared in constant time. A token of another tenant is refused like any other
/// wrong token.
pub fn authorize(config: &Config, tenant: &str, authorization: Option<&str>) -> Result<(), Error> {
    let tenant = config
        .tenants
        .get(tenant)
        .ok_or_else(|| Error::not_found(format!("unknown tenant {tenant:?}")))?;
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| Error::unauthorized("missing Authorization: Bearer <token>"))?;
    let mut ok = false;
    for candidate in &tenant.api_tokens {
        ok |= constant_time_eq(candidate.expose().as_bytes(), token.as_bytes());
    }
    if ok {
        Ok(())
    } else {
        Err(Error::unauthorized(format!(
            "invalid bearer token for tenant {}",
            tenant.id
        )))
    }
}

fn channel(name: &str) -> Result<Channel, Error> {
    name.parse()
        .map_err(|e: crate::event::UnknownChannel| Error::bad_request(e.to_string()))
}

/// `GET /v1/tenants/{t}/dnd/{channel}/{address}`.
pub async fn get_verdict(
    lookup: &Lookup,
    tenant: &str,
    channel_name: &str,
    raw_address: &str,
) -> Result<Answer, Error> {
    let channel = channel(channel_name)?;
    let address =
        Address::parse(channel, raw_address).map_err(|e| Error::bad_request(e.to_string()))?;
    let verdict = lookup.check(tenant, channel, address.as_str()).await?;
    Ok(Answer::json(
        200,
        &lookup::verdict_json(tenant, channel, address.as_str(), &verdict),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    channel: String,
    addresses: Vec<String>,
}

/// `POST /v1/tenants/{t}/dnd/check`: `{"channel": "sms", "addresses": [...]}` ->
/// which are blocked, and which could not be read (never send to those either).
pub async fn post_check(lookup: &Lookup, tenant: &str, body: &[u8]) -> Result<Answer, Error> {
    let req: CheckRequest = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(format!(
            "body must be {{\"channel\": \"sms\", \"addresses\": [\"+1...\"]}}: {e}"
        ))
    })?;
    let channel = channel(&req.channel)?;
    if req.addresses.len() > MAX_BATCH {
        return Err(Error::bad_request(format!(
            "{} addresses in one check; at most {MAX_BATCH}",
            req.addresses.len()
        )));
    }
    let items = lookup.check_many(tenant, channel, &req.addresses).await?;
    let mut blocked = Vec::new();
    let mut invalid = Vec::new();
    for (raw, item) in req.addresses.iter().zip(items) {
        match item {
            Ok(v) if v.blocked => {
                let r = v.record.as_ref();
                blocked.push(json!({
                    "address": raw,
                    "scope": v.scope.map(|s| s.as_str()),
                    "state": r.map(|r| r.state.as_str()),
                    "reason": r.map(|r| r.reason.as_str()),
                }));
            }
            Ok(_) => {}
            Err(e) => invalid.push(json!({ "address": raw, "error": e.to_string() })),
        }
    }
    Ok(Answer::json(
        200,
        &json!({
            "channel": channel.as_str(),
            "checked": req.addresses.len(),
            "blocked": blocked,
            "invalid": invalid,
        }),
    ))
}
