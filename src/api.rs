//! The operator API (SPEC section 10), behind each tenant's bearer tokens: lookups,
//! batch checks, set and clear with consent evidence, history and contact linking.
//! Knows no hyper: the server hands it plain values.

use serde::Deserialize;
use serde_json::json;

use crate::address::Address;
use crate::classify::Permanence;
use crate::config::{Config, Tenant};
use crate::error::{Error, Kind};
use crate::event::{Channel, Scope};
use crate::lookup::{self, Lookup, LookupError, MAX_BATCH};
use crate::pipeline::{Answer, Gateway, now_ms};
use crate::secret::constant_time_eq;
use crate::state::{self, Evidence, OperatorChange, Outcomes};

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
/// wrong token, and so is any token for a tenant that does not exist: the same status
/// and the same body, so the API does not tell which tenants exist.
pub fn authorize(config: &Config, tenant: &str, authorization: Option<&str>) -> Result<(), Error> {
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| Error::unauthorized("missing Authorization: Bearer <token>"))?;
    let mut ok = false;
    match config.tenants.get(tenant) {
        Some(tenant) => {
            for candidate in &tenant.api_tokens {
                ok |= constant_time_eq(candidate.expose().as_bytes(), token.as_bytes());
            }
        }
        // The same work as a tenant with one token, and the same refusal.
        None => {
            let _ = constant_time_eq(b"no tenant by this name has a token", token.as_bytes());
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Error::unauthorized("invalid bearer token for this tenant"))
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
    let verdict = lookup.check_address(tenant, channel, &address).await?;
    let json = lookup::VerdictJson::new(tenant, channel, address.as_str(), &verdict);
    Ok(json_answer(&json, 256))
}

/// A 200 answer with `value` as its JSON body, written straight into a buffer of
/// `capacity` bytes (what [`Answer::json`] prints for the same value as a
/// `serde_json::Value`).
fn json_answer(value: &impl serde::Serialize, capacity: usize) -> Answer {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value).expect("an answer serialises");
    Answer {
        content_type: "application/json",
        ..Answer::text(
            200,
            String::from_utf8(body).expect("serde_json writes UTF-8"),
        )
    }
}

/// One address of a batch check, borrowed from the body unless it has escapes.
#[derive(Deserialize)]
struct RawAddress<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl AsRef<str> for RawAddress<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest<'a> {
    #[serde(borrow)]
    channel: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    addresses: Vec<RawAddress<'a>>,
}

/// The answer to a batch check, in the shape (and key order) `serde_json::Value`
/// prints.
#[derive(serde::Serialize)]
struct CheckAnswer<'a> {
    blocked: Vec<BlockedJson<'a>>,
    channel: &'static str,
    checked: usize,
    invalid: Vec<InvalidJson<'a>>,
}

#[derive(serde::Serialize)]
struct BlockedJson<'a> {
    address: &'a str,
    reason: Option<&'a str>,
    scope: Option<&'static str>,
    state: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct InvalidJson<'a> {
    address: &'a str,
    error: String,
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
    let mut answer = CheckAnswer {
        blocked: Vec::new(),
        channel: channel.as_str(),
        checked: req.addresses.len(),
        invalid: Vec::new(),
    };
    for (raw, item) in req.addresses.iter().zip(&items) {
        match item {
            Ok(v) if v.blocked => {
                let r = v.record.as_ref();
                answer.blocked.push(BlockedJson {
                    address: raw.as_ref(),
                    reason: r.map(|r| r.reason.as_str()),
                    scope: v.scope.map(|s| s.as_str()),
                    state: r.map(|r| r.state.as_str()),
                });
            }
            Ok(_) => {}
            Err(e) => answer.invalid.push(InvalidJson {
                address: raw.as_ref(),
                error: e.to_string(),
            }),
        }
    }
    // About 80 bytes a blocked address (its address, scope, state and reason).
    let capacity = 64 + answer.blocked.len() * 96 + answer.invalid.len() * 128;
    Ok(json_answer(&answer, capacity))
}

fn tenant<'a>(gw: &'a Gateway, id: &str) -> Result<&'a Tenant, Error> {
    gw.config
        .tenants
        .get(id)
        .ok_or_else(|| Error::not_found(format!("unknown tenant {id:?}")))
}

fn scope(name: &str) -> Result<Scope, Error> {
    name.parse()
        .map_err(|_| Error::bad_request(format!("unknown scope {name:?}: expected a channel (sms, voice, whatsapp, messenger, instagram, email) or all")))
}

/// The path of `PUT` and `DELETE /v1/tenants/{t}/dnd/{channel or all}/{address}`, as
/// the router found it (the address percent-decoded).
#[derive(Debug, Clone, Copy)]
pub struct DndPath<'p> {
    /// The tenant's id.
    pub tenant: &'p str,
    /// A channel or `all`.
    pub scope: &'p str,
    /// The address, not yet normalised.
    pub address: &'p str,
}

/// The tenant, scope and address a set or clear names in its path, checked.
struct Target<'a> {
    tenant: &'a Tenant,
    scope: Scope,
    address: Address,
}

impl<'a> Target<'a> {
    /// The path's target, checked first, then the body read as `shape`: a bad target
    /// is the error even when the body is bad too.
    fn with_body<T: serde::de::DeserializeOwned>(
        gw: &'a Gateway,
        path: DndPath<'_>,
        body: &[u8],
        shape: &str,
    ) -> Result<(Self, T), Error> {
        let scope = scope(path.scope)?;
        let target = Target {
            tenant: tenant(gw, path.tenant)?,
            scope,
            address: scoped_address(scope, path.address)?,
        };
        Ok((target, json_body(body, shape)?))
    }

    /// The operator's change to this record, now.
    fn change<'c>(&'c self, actor: Option<&'c str>) -> OperatorChange<'c> {
        OperatorChange {
            scope: self.scope,
            address: &self.address,
            actor,
            now_ms: now_ms(),
        }
    }

    /// The answer to a set or clear: the tenant and what changed.
    fn answer(&self, outcomes: &Outcomes) -> Answer {
        Answer::json(
            200,
            &json!({ "tenant": self.tenant.id, "changes": changes_json(outcomes) }),
        )
    }
}

/// An address in a URL path: normalised for the scope's channel, or guessed for `all`.
fn scoped_address(scope: Scope, raw: &str) -> Result<Address, Error> {
    match scope {
        Scope::Channel(c) => Address::parse(c, raw),
        Scope::All => Address::parse_any(raw),
    }
    .map_err(|e| Error::bad_request(e.to_string()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("body must be {shape}: {e}")))
}

fn changes_json(outcomes: &Outcomes) -> serde_json::Value {
    json!(
        outcomes
            .changes
            .iter()
            .map(|c| json!({
                "address": c.address.as_str(),
                "scope": c.scope.as_str(),
                "outcome": c.outcome.as_str(),
                "state": c.record.as_ref().map(|r| r.state.as_str()),
                "reason": c.record.as_ref().map(|r| r.reason.as_str()),
            }))
            .collect::<Vec<_>>()
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRequest {
    state: String,
    reason: Option<String>,
    actor: Option<String>,
}

/// `PUT /v1/tenants/{t}/dnd/{channel or all}/{address}`: set a record by hand.
pub async fn put_dnd(gw: &Gateway, path: DndPath<'_>, body: &[u8]) -> Result<Answer, Error> {
    let (target, req): (_, SetRequest) = Target::with_body(
        gw,
        path,
        body,
        r#"{"state": "permanent" | "temporary", "reason": "...", "actor": "..."}"#,
    )?;
    let permanence = match req.state.as_str() {
        "permanent" => Permanence::Permanent,
        "temporary" => Permanence::Temporary,
        other => {
            return Err(Error::bad_request(format!(
                "state {other:?} must be \"permanent\" or \"temporary\""
            )));
        }
    };
    let outcomes = state::operator_set(
        &gw.store,
        target.tenant,
        &target.change(req.actor.as_deref()),
        permanence,
        req.reason.as_deref(),
    )
    .await?;
    Ok(target.answer(&outcomes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearRequest {
    actor: Option<String>,
    evidence: Option<Evidence>,
}

/// `DELETE /v1/tenants/{t}/dnd/{channel or all}/{address}`: clear a record; a
/// permanent one needs consent evidence (409 without it).
pub async fn delete_dnd(gw: &Gateway, path: DndPath<'_>, body: &[u8]) -> Result<Answer, Error> {
    let (target, req): (_, ClearRequest) = Target::with_body(
        gw,
        path,
        body,
        r#"{"actor": "...", "evidence": {"agreed": "...", "captured_at": "...", "method": "...", "reference": "..."}}"#,
    )?;
    let change = target.change(req.actor.as_deref());
    let outcomes =
        state::operator_clear(&gw.store, target.tenant, &change, req.evidence.as_ref()).await?;
    Ok(target.answer(&outcomes))
}

/// `GET /v1/tenants/{t}/history/{address}`: the audit entries of the address, oldest
/// first (every scope; the address's shard stream as far back as it is kept), and
/// where that window starts (`window_start`: older entries were trimmed after
/// `audit_retention`, or are past the scan).
pub async fn get_history(
    gw: &Gateway,
    tenant_id: &str,
    raw_address: &str,
) -> Result<Answer, Error> {
    let tenant = tenant(gw, tenant_id)?;
    let address = Address::parse_any(raw_address).map_err(|e| Error::bad_request(e.to_string()))?;
    let (entries, window_start) = gw
        .store
        .history_window(&tenant.id, &address, HISTORY_SCAN)
        .await
        .map_err(Error::from)?;
    let entries: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|fields| {
            let mut object = serde_json::Map::new();
            for (k, v) in fields {
                let value = if k == "evidence" {
                    serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v))
                } else {
                    serde_json::Value::String(v)
                };
                object.insert(k, value);
            }
            serde_json::Value::Object(object)
        })
        .collect();
    Ok(Answer::json(
        200,
        &json!({
            "tenant": tenant.id,
            "address": address.as_str(),
            "window_start": window_start.map(crate::time::format_rfc3339_ms),
            "window_start_ms": window_start,
            "entries": entries,
        }),
    ))
}

/// How many of a shard's newest audit entries a history request scans.
pub const HISTORY_SCAN: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactRequest {
    addresses: Vec<String>,
}

/// The longest contact id accepted.
const MAX_CONTACT_ID: usize = 128;

fn contact_id(id: &str) -> Result<&str, Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CONTACT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(id)
    } else {
        Err(Error::bad_request(format!(
            "contact id {id:?} must be 1 to {MAX_CONTACT_ID} of A-Z, a-z, 0-9, _, - and ."
        )))
    }
}

/// `PUT /v1/tenants/{t}/contacts/{id}`: the contact's addresses (phone, email, page-scoped
/// ids), so an `all`-scope change to any of them reaches them all.
pub async fn put_contact(
    gw: &Gateway,
    tenant_id: &str,
    id: &str,
    body: &[u8],
) -> Result<Answer, Error> {
    let tenant = tenant(gw, tenant_id)?;
    let id = contact_id(id)?;
    let req: ContactRequest = json_body(
        body,
        r#"{"addresses": ["+14155551234", "alice@example.com"]}"#,
    )?;
    if req.addresses.len() > 100 {
        return Err(Error::bad_request("a contact has at most 100 addresses"));
    }
    let mut addresses = Vec::new();
    let mut bad = Vec::new();
    for raw in &req.addresses {
        match Address::parse_any(raw) {
            Ok(a) if !addresses.contains(&a) => addresses.push(a),
            Ok(_) => {}
            Err(e) => bad.push(e.to_string()),
        }
    }
    if !bad.is_empty() {
        return Err(Error::bad_request(format!(
            "nothing linked: {}",
            bad.join("; ")
        )));
    }
    gw.store
        .link_contact(&tenant.id, id, &addresses)
        .await
        .map_err(Error::from)?;
    contact_answer(gw, tenant, id).await
}

/// `GET /v1/tenants/{t}/contacts/{id}`: the contact's linked addresses.
pub async fn get_contact(gw: &Gateway, tenant_id: &str, id: &str) -> Result<Answer, Error> {
    let tenant = tenant(gw, tenant_id)?;
    contact_answer(gw, tenant, contact_id(id)?).await
}

async fn contact_answer(gw: &Gateway, tenant: &Tenant, id: &str) -> Result<Answer, Error> {
    let addresses = gw
        .store
        .contact_addresses(&tenant.id, id)
        .await
        .map_err(Error::from)?;
    Ok(Answer::json(
        200,
        &json!({
            "tenant": tenant.id,
            "contact": id,
            "addresses": addresses.iter().map(Address::as_str).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    address: String,
    scope: String,
    campaign: Option<String>,
    expires_in: Option<String>,
}

/// `POST /v1/tenants/{t}/links`: mint an unsubscribe link for an address and a scope,
/// with its `List-Unsubscribe` and `List-Unsubscribe-Post` header values.
pub async fn post_link(gw: &Gateway, tenant_id: &str, body: &[u8]) -> Result<Answer, Error> {
    let tenant = tenant(gw, tenant_id)?;
    let ring = gw.config.links.as_ref().ok_or_else(|| {
        Error::not_found("unsubscribe links are not configured: add [links] keys and sign_with")
    })?;
    let req: LinkRequest = json_body(
        body,
        r#"{"address": "...", "scope": "email" | "all" | ..., "campaign": "...", "expires_in": "30d"}"#,
    )?;
    let scope = scope(&req.scope)?;
    let address = scoped_address(scope, &req.address)?;
    let expires_min = link_expiry(req.expires_in.as_deref(), tenant.page.link_expiry, now_ms())?;
    let link = crate::links::mint_link(
        &gw.store,
        ring,
        &gw.config.public_url,
        &tenant.id,
        &address,
        scope,
        req.campaign.as_deref(),
        expires_min,
    )
    .await
    .map_err(|e| match e {
        crate::links::LinkError::Store(s) => Error::from(s),
        other => Error::bad_request(other.to_string()),
    })?;
    Ok(Answer::json(
        200,
        &json!({
            "url": link.url,
            "token": link.token,
            "headers": {
                "List-Unsubscribe": link.list_unsubscribe,
                "List-Unsubscribe-Post": link.list_unsubscribe_post,
            },
        }),
    ))
}

/// Unix minutes at which a link made at `now_ms` with `expires_in` lapses; without
/// `expires_in`, after `default` (the tenant's `page.link_expiry`, 90 days unless
/// configured): a link always lapses, so a forwarded or leaked one stops working.
pub fn link_expiry(
    expires_in: Option<&str>,
    default: std::time::Duration,
    now_ms: i64,
) -> Result<Option<u32>, Error> {
    let d = match expires_in {
        Some(text) => crate::config::parse_duration(text)
            .map_err(|e| Error::bad_request(format!("expires_in: {e}")))?,
        None => default,
    };
    let minutes = (now_ms / 60_000) + (d.as_secs() as i64 + 59) / 60;
    u32::try_from(minutes)
        .ok()
        .filter(|m| *m > 0 && d.as_secs() >= 60)
        .map(Some)
        .ok_or_else(|| {
            Error::bad_request("expires_in must be at least 1m and end before year 10000")
        })
}

/// Decode `body` as every operator API request body in turn (check, set, clear,
/// contact, link) and run the checks that need no store, returning each outcome. For
/// the fuzz targets in `fuzz/` only: the routes above are the real entry points.
#[doc(hidden)]
pub fn fuzz_request_bodies(body: &[u8], now_ms: i64) -> Vec<Result<(), Error>> {
    let check = || -> Result<(), Error> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}".as_slice()
        } else {
            body
        };
        let req: CheckRequest = serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("body must be check: {e}")))?;
        let channel = channel(&req.channel)?;
        for raw in &req.addresses {
            let _ = Address::parse(channel, raw.as_ref());
        }
        Ok(())
    };
    let set = || -> Result<(), Error> {
        let req: SetRequest = json_body(body, "set")?;
        let _ = (req.state, req.reason, req.actor);
        Ok(())
    };
    let clear = || -> Result<(), Error> {
        let req: ClearRequest = json_body(body, "clear")?;
        if let Some(evidence) = req.evidence {
            evidence.validate(now_ms).map_err(Error::bad_request)?;
        }
        Ok(())
    };
    let contact = || -> Result<(), Error> {
        let req: ContactRequest = json_body(body, "contact")?;
        for raw in &req.addresses {
            Address::parse_any(raw).map_err(|e| Error::bad_request(e.to_string()))?;
        }
        Ok(())
    };
    let link = || -> Result<(), Error> {
        let req: LinkRequest = json_body(body, "link")?;
        let scope = scope(&req.scope)?;
        scoped_address(scope, &req.address)?;
        link_expiry(
            req.expires_in.as_deref(),
            crate::links::DEFAULT_LINK_EXPIRY,
            now_ms,
        )?;
        let _ = req.campaign;
        Ok(())
    };
    vec![check(), set(), clear(), contact(), link()]
}

/// The endpoint routes under `/v1/tenants/{t}/endpoints` (events out): `rest` is the
/// path after `endpoints`.
pub async fn endpoints(
    gw: &Gateway,
    tenant_id: &str,
    method: &str,
    rest: &[&str],
    body: &[u8],
) -> Result<Answer, Error> {
    use crate::outbound::manage;
    let tenant = tenant(gw, tenant_id)?;
    let store = &gw.store;
    let value = match (method, rest) {
        ("GET", []) => manage::list(store, tenant).await?,
        ("POST", []) => {
            let raw: crate::endpoint::RawEndpoint = json_body(
                body,
                r#"{"id": "crm", "url": "https://crm.example.com/dnd", "events": ["dnd.enabled"]}"#,
            )?;
            let made = manage::create(store, tenant, raw).await?;
            return Ok(Answer::json(201, &made));
        }
        ("DELETE", [id]) => manage::delete(store, tenant, id).await?,
        ("POST", [id, "rotate"]) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rotate {
                secret: Option<String>,
            }
            let r: Rotate = json_body(body, r#"{} or {"secret": "whsec_..."}"#)?;
            manage::rotate(store, tenant, id, r.secret).await?
        }
        ("POST", [id, "disable"]) => manage::set_enabled(store, tenant, id, false, "api").await?,
        ("POST", [id, "enable"]) => manage::set_enabled(store, tenant, id, true, "api").await?,
        ("POST", [id, "test"]) => manage::test(store, &gw.config, tenant, id).await?,
        ("GET", [id, "dead"]) => manage::dead_letters(store, tenant, id).await?,
        ("POST", [id, "dead", "replay"]) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Replay {
                dead: Option<Vec<String>>,
            }
            let r: Replay = json_body(body, r#"{} or {"dead": ["3/1718000000415-0"]}"#)?;
            manage::replay(store, &gw.config, tenant, id, r.dead).await?
        }
        _ => {
            return Err(Error::new(
                Kind::MethodNotAllowed,
                format!("{method} is not allowed here"),
            ));
        }
    };
    Ok(Answer::json(200, &value))
}

/// The methods each endpoint route takes (for 405 and `Allow`), or `None` when there
/// is no such route.
pub fn endpoint_methods(rest: &[&str]) -> Option<&'static str> {
    match rest {
        [] => Some("GET, POST"),
        [_] => Some("DELETE"),
        [_, "rotate" | "disable" | "enable" | "test"] => Some("POST"),
        [_, "dead"] => Some("GET"),
        [_, "dead", "replay"] => Some("POST"),
        _ => None,
    }
}
