//! A tenant's endpoints as the operator sees them: the configuration's and those made
//! through the operator API (kept in Redis), with their health and dead letters; and
//! what the operator can do to them (create, rotate a secret, disable, enable, delete,
//! send a test event, replay dead letters).

use std::path::Path;

use serde_json::{Value, json};

use crate::config::{Config, Tenant};
use crate::endpoint::schedule::Verdict;
use crate::endpoint::{Endpoint, RawEndpoint, read};
use crate::error::{Error, Kind};
use crate::store::{OutShard, Store};

/// Where an endpoint is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file: change it there.
    Config,
    /// The operator API.
    Api,
}

crate::event::names! {
    /// Its name in API answers.
    Origin {
        Config => "config",
        Api => "api",
    }
}

/// Every endpoint of `tenant`: the configuration's, then the API's by id. An API
/// endpoint stored by an older or newer gateway that no longer reads is logged and
/// left out.
pub async fn endpoints(
    store: &Store,
    tenant: &Tenant,
) -> Result<Vec<(Endpoint, Origin)>, crate::store::StoreError> {
    let mut out: Vec<(Endpoint, Origin)> = tenant
        .endpoints
        .iter()
        .map(|e| (e.clone(), Origin::Config))
        .collect();
    for (id, json) in store.api_endpoints(&tenant.id).await? {
        let mut problems = Vec::new();
        let raw = serde_json::from_str::<RawEndpoint>(&json)
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        let read = raw.map(|r| read(&tenant.id, vec![r], Path::new("."), &mut problems));
        match read {
            Some(mut eps) if problems.is_empty() && eps.len() == 1 => {
                out.push((eps.remove(0), Origin::Api))
            }
            _ => {
                tracing::error!(tenant = %tenant.id, endpoint = %id, problems = ?problems, "events out: a stored endpoint does not read; left out")
            }
        }
    }
    Ok(out)
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> Result<String, Error> {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Error::new(Kind::Unavailable, format!("no randomness: {e}")))?;
    Ok(format!(
        "{}{}",
        crate::signature::WHSEC_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// The tenant's endpoint `id` and where it is defined, or 404.
async fn find(store: &Store, tenant: &Tenant, id: &str) -> Result<(Endpoint, Origin), Error> {
    endpoints(store, tenant)
        .await?
        .into_iter()
        .find(|(e, _)| e.id == id)
        .ok_or_else(|| Error::not_found(format!("tenant {} has no endpoint {id:?}", tenant.id)))
}

/// An endpoint as the API shows it (secrets never: how many there are).
async fn describe(
    store: &Store,
    tenant: &Tenant,
    e: &Endpoint,
    origin: Origin,
) -> Result<Value, Error> {
    let health = store.out_health(&tenant.id, &e.id).await?;
    let mut lag = 0;
    let mut oldest: Option<i64> = None;
    for shard in 0..16u8 {
        let s = OutShard {
            tenant: tenant.id.clone(),
            shard,
            endpoint: e.id.clone(),
        };
        if let Some(g) = store.out_group(&s).await? {
            lag += g.pending + g.lag;
            if let Some(ms) = g.oldest.as_deref().and_then(crate::store::id_ms) {
                oldest = Some(oldest.map_or(ms, |o| o.min(ms)));
            }
        }
    }
    Ok(json!({
        "id": e.id,
        "url": e.url,
        "origin": origin.as_str(),
        "enabled": e.enabled && health.disabled_ms.is_none(),
        "configured_enabled": e.enabled,
        "disabled_ms": health.disabled_ms,
        "disabled_why": health.disabled_why,
        "failing_since_ms": health.failing_since_ms,
        "last_ok_ms": health.last_ok_ms,
        "secrets": e.secrets.len(),
        "events": e.events.as_ref().map(|s| s.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
        "channels": e.channels.as_ref().map(|s| s.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
        "lag": lag,
        "oldest_undelivered_ms": oldest,
    }))
}

/// `GET .../endpoints`.
pub async fn list(store: &Store, tenant: &Tenant) -> Result<Value, Error> {
    let mut out = Vec::new();
    for (e, origin) in endpoints(store, tenant).await? {
        out.push(describe(store, tenant, &e, origin).await?);
    }
    Ok(json!({ "tenant": tenant.id, "endpoints": out }))
}

/// `POST .../endpoints`: create an API endpoint from `raw` (a secret is made when
/// none is given); the endpoint and its secret, shown this once.
pub async fn create(store: &Store, tenant: &Tenant, mut raw: RawEndpoint) -> Result<Value, Error> {
    let made = raw.secrets.is_empty();
    if made {
        raw.secrets = vec![new_secret()?];
    }
    if raw
        .secrets
        .iter()
        .any(|s| s.starts_with("env:") || s.starts_with("file:"))
    {
        return Err(Error::bad_request(
            "secrets: give the whsec_ secret itself (env: and file: are for the configuration file)",
        ));
    }
    let mut problems = Vec::new();
    let read = read(&tenant.id, vec![raw.clone()], Path::new("."), &mut problems);
    if let Some(p) = problems.first() {
        let p = p
            .strip_prefix(&format!("tenants.{}.endpoints[0].", tenant.id))
            .unwrap_or(p);
        return Err(Error::bad_request(p.to_string()));
    }
    let endpoint = &read[0];
    if tenant.endpoints.iter().any(|e| e.id == endpoint.id) {
        return Err(Error::new(
            Kind::Conflict,
            format!("endpoint {:?} is in the configuration file", endpoint.id),
        ));
    }
    // Its groups start where the streams end now (before it is stored, so no worker
    // can make them first): it gets the changes made from its creation on, where a
    // worker that found no group would start where its gateway started, maybe days
    // ago. A taken id keeps its groups (they exist already).
    for shard in 0..16u8 {
        let s = OutShard {
            tenant: tenant.id.clone(),
            shard,
            endpoint: endpoint.id.clone(),
        };
        store.out_prepare_at_end(&s).await?;
    }
    let json = serde_json::to_string(&raw).expect("an endpoint serialises");
    if !store
        .put_api_endpoint(&tenant.id, &endpoint.id, &json, true)
        .await?
    {
        return Err(Error::new(
            Kind::Conflict,
            format!("endpoint {:?} exists", endpoint.id),
        ));
    }
    let mut shown = describe(store, tenant, endpoint, Origin::Api).await?;
    shown["secret"] = json!(raw.secrets[0]);
    Ok(shown)
}

/// `POST .../endpoints/{id}/rotate`: a new secret signs first and the newest old one
/// keeps signing beside it (so receivers that know either verify) until the next
/// rotation; older ones go. The new secret, shown this once.
pub async fn rotate(
    store: &Store,
    tenant: &Tenant,
    id: &str,
    given: Option<String>,
) -> Result<Value, Error> {
    let (_, origin) = find(store, tenant, id).await?;
    if origin == Origin::Config {
        return Err(Error::new(
            Kind::Conflict,
            format!("endpoint {id:?} is in the configuration file: rotate its secrets there"),
        ));
    }
    let stored = store.api_endpoints(&tenant.id).await?;
    let mut raw: RawEndpoint = stored
        .get(id)
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| Error::not_found(format!("tenant {} has no endpoint {id:?}", tenant.id)))?;
    let secret = match given {
        Some(s) => {
            if !s.starts_with(crate::signature::WHSEC_PREFIX)
                || crate::signature::decode_whsec(&s).is_none()
            {
                return Err(Error::bad_request("secret: write it as whsec_ and base64"));
            }
            s
        }
        None => new_secret()?,
    };
    let previous = raw.secrets.first().cloned();
    raw.secrets = std::iter::once(secret.clone()).chain(previous).collect();
    let json = serde_json::to_string(&raw).expect("an endpoint serialises");
    store.put_api_endpoint(&tenant.id, id, &json, false).await?;
    Ok(json!({ "id": id, "secret": secret, "secrets": raw.secrets.len() }))
}

/// `POST .../endpoints/{id}/disable` and `/enable`.
pub async fn set_enabled(
    store: &Store,
    tenant: &Tenant,
    id: &str,
    on: bool,
    actor: &str,
) -> Result<Value, Error> {
    let (e, origin) = find(store, tenant, id).await?;
    if on {
        store.out_enable(&tenant.id, id).await?;
    } else {
        let why = format!("disabled by the operator ({actor})");
        store
            .out_disable(&tenant.id, id, crate::time::now_ms(), &why)
            .await?;
    }
    describe(store, tenant, &e, origin).await
}

/// `DELETE .../endpoints/{id}` (API endpoints only).
pub async fn delete(store: &Store, tenant: &Tenant, id: &str) -> Result<Value, Error> {
    let (_, origin) = find(store, tenant, id).await?;
    if origin == Origin::Config {
        return Err(Error::new(
            Kind::Conflict,
            format!("endpoint {id:?} is in the configuration file: remove it there"),
        ));
    }
    store.delete_api_endpoint(&tenant.id, id).await?;
    Ok(json!({ "id": id, "deleted": true }))
}

/// An HTTP client for one operator request.
fn client(config: &Config) -> Result<reqwest::Client, Error> {
    super::worker::client(config.events_out.timeout).map_err(|e| Error::new(Kind::Unavailable, e))
}

/// `POST .../endpoints/{id}/test`: send one signed `endpoint.test` event now and say
/// what the endpoint answered.
pub async fn test(
    store: &Store,
    config: &Config,
    tenant: &Tenant,
    id: &str,
) -> Result<Value, Error> {
    let (e, _) = find(store, tenant, id).await?;
    let now = crate::time::now_ms();
    let event_id = format!(
        "evt_test_{}",
        new_secret()?
            .get(6..18)
            .unwrap_or("0")
            .replace(['+', '/'], "x")
    );
    let body = json!({
        "id": event_id,
        "type": "endpoint.test",
        "timestamp": crate::time::format_rfc3339_ms(now),
        "data": { "tenant": tenant.id, "endpoint": id },
    })
    .to_string();
    let (verdict, answer) = super::worker::post(&client(config)?, &e, &event_id, &body).await;
    Ok(json!({
        "id": event_id,
        "delivered": verdict == Verdict::Delivered,
        "answer": answer,
    }))
}

/// `GET .../endpoints/{id}/dead`: the endpoint's dead letters, per shard oldest first.
pub async fn dead_letters(store: &Store, tenant: &Tenant, id: &str) -> Result<Value, Error> {
    find(store, tenant, id).await?;
    let letters = store.out_dead_letters(&tenant.id, id).await?;
    Ok(json!({ "endpoint": id, "dead": letters }))
}

/// `POST .../endpoints/{id}/dead/replay`: try each dead letter (or those named) once
/// more, now, with a fresh signature and its own event id; a delivered one leaves the
/// list. What was delivered and what failed.
pub async fn replay(
    store: &Store,
    config: &Config,
    tenant: &Tenant,
    id: &str,
    only: Option<Vec<String>>,
) -> Result<Value, Error> {
    let (e, _) = find(store, tenant, id).await?;
    let client = client(config)?;
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    for letter in store.out_dead_letters(&tenant.id, id).await? {
        let name = format!("{:x}/{}", letter.shard, letter.id);
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let event_id = serde_json::from_str::<Value>(&letter.event)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        let Some(event_id) = event_id else {
            failed.push(json!({ "dead": name, "error": "not an event (an unreadable audit entry): nothing to send" }));
            continue;
        };
        let (verdict, answer) = super::worker::post(&client, &e, &event_id, &letter.event).await;
        if verdict == Verdict::Delivered {
            let s = OutShard {
                tenant: tenant.id.clone(),
                shard: letter.shard,
                endpoint: id.to_string(),
            };
            store.out_dead_remove(&s, &letter.id).await?;
            delivered.push(json!({ "dead": name, "id": event_id }));
        } else {
            failed.push(json!({ "dead": name, "id": event_id, "error": answer }));
        }
    }
    Ok(json!({ "endpoint": id, "delivered": delivered, "failed": failed }))
}
