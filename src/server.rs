//! The HTTP server: hyper 1 on tokio, a plain accept loop, one task per connection.
//! The only module that knows hyper: it turns requests into plain values for the
//! pipeline and the API, and their answers back into responses.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api;
use crate::error::{Error, Kind};
use crate::lookup::Lookup;
use crate::pipeline::{Answer, Gateway, WebhookRequest};

/// A client has this long to send a request's headers (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A client has this long to send a request's body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// In-flight requests get this long to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Open connections at most; further clients wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 4096;

/// Shared state of the server.
struct App {
    gateway: Gateway,
    lookup: Lookup,
}

/// Serve on `listener` until `shutdown` completes, then stop accepting, let in-flight
/// requests finish (up to [`SHUTDOWN_GRACE`]) and return.
pub async fn run(gateway: Gateway, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let lookup = Lookup::from_store(gateway.store.clone());
    let app = Arc::new(App { gateway, lookup });
    // Bounds memory under a connection flood; a permit lives as long as its connection.
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, req, peer).await) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after {SHUTDOWN_GRACE:?}; exiting");
    }
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if let Some(secs) = answer.retry_after {
        response.headers_mut().insert(RETRY_AFTER, secs.into());
    }
    if let Some(location) = answer
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, location);
    }
    response
}

fn method_not_allowed(allowed: &'static str, api: bool) -> Response<Full<Bytes>> {
    let e = Error::new(
        Kind::MethodNotAllowed,
        format!("method not allowed here; use {allowed}"),
    );
    let mut r = respond(if api {
        api::error_answer(&e)
    } else {
        Answer::from_error(&e)
    });
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    r
}

/// Decode `%XX` escapes in one path segment.
fn percent_decode(segment: &str) -> Result<String, Error> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::bad_request(format!("bad percent-escape in {segment:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::bad_request(format!("{segment:?} is not UTF-8")))
}

/// Read the whole body, at most `limit` bytes, within [`BODY_READ_TIMEOUT`].
async fn read_body(body: Incoming, declared: Option<u64>, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || {
        Error::new(
            Kind::PayloadTooLarge,
            format!("body is larger than the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Error::bad_request(format!(
            "body not received within {BODY_READ_TIMEOUT:?}"
        ))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Error::bad_request(format!("could not read the body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match segments.as_slice() {
        ["healthz"] if method == Method::GET => respond(Answer::text(200, "ok\n")),
        ["readyz"] if method == Method::GET => respond(app.gateway.readiness().await),
        ["healthz"] | ["readyz"] => method_not_allowed("GET", false),
        ["webhooks", provider] | ["webhooks", provider, _] if method == Method::GET => respond(
            app.gateway
                .handshake(provider, req.uri().query().unwrap_or("")),
        ),
        ["webhooks", _provider] | ["webhooks", _provider, _] if method != Method::POST => {
            method_not_allowed("GET, POST", false)
        }
        ["webhooks", provider, rest @ ..] if rest.len() <= 1 => {
            webhook(app, req, provider, rest.first().copied(), peer).await
        }
        ["u", token] => {
            let token = token.to_string();
            match method {
                Method::GET => respond(app.gateway.unsubscribe_get(&token).await),
                Method::POST => {
                    let content_type = req
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let declared = req
                        .headers()
                        .get(CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    // A preference form is a few hundred bytes; one-click bodies less.
                    match read_body(req.into_body(), declared, 16 * 1024).await {
                        Ok(body) => respond(
                            app.gateway
                                .unsubscribe_post(&token, content_type.as_deref(), &body)
                                .await,
                        ),
                        Err(e) => respond(Answer::from_error(&e)),
                    }
                }
                _ => method_not_allowed("GET, POST", false),
            }
        }
        ["openapi.json"] if method == Method::GET => respond(Answer {
            status: 200,
            content_type: "application/json",
            body: OPENAPI.to_string(),
            retry_after: None,
            location: None,
        }),
        ["openapi.json"] => method_not_allowed("GET", true),
        ["v1", "tenants", tenant, rest @ ..] => api_route(app, req, tenant, rest).await,
        ["v1", ..] => respond(api::error_answer(&Error::not_found(format!(
            "no API route {path}"
        )))),
        _ => respond(Answer::from_error(&Error::not_found(format!(
            "no route {path}"
        )))),
    }
}

async fn webhook(
    app: &App,
    req: Request<Incoming>,
    provider: &str,
    tenant: Option<&str>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let tenant = match tenant.map(percent_decode).transpose() {
        Ok(t) => t,
        Err(e) => return respond(Answer::from_error(&e)),
    };
    let body = match read_body(body, declared, app.gateway.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(provider, status = e.kind.status(), error = %e, %peer, "webhook refused");
            return respond(Answer::from_error(&e));
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let request = WebhookRequest {
        provider: provider.to_string(),
        tenant,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string()),
        content_type,
        headers,
        body,
    };
    let (answer, report) = app.gateway.webhook(request).await;
    if answer.status < 400 {
        tracing::info!(
            provider,
            tenant = report.tenant.as_deref().unwrap_or("-"),
            status = answer.status,
            events = report.events,
            changed = report.changed,
            duplicates = report.duplicates,
            rejected = report.rejected.len(),
            skipped = report.skipped.len(),
            "webhook accepted"
        );
        for why in &report.rejected {
            tracing::warn!(provider, why = why.as_str(), "event in a batch refused");
        }
        for why in &report.skipped {
            tracing::warn!(
                provider,
                why = why.as_str(),
                "entry for an unknown account skipped"
            );
        }
    } else {
        tracing::warn!(
            provider,
            tenant = report.tenant.as_deref().unwrap_or("-"),
            status = answer.status,
            error = answer.body.trim_end(),
            %peer,
            "webhook refused"
        );
    }
    let basic_auth = provider == "postmark" && answer.status == 401;
    let mut response = respond(answer);
    if basic_auth {
        // RFC 7235: a 401 names the scheme it wants; Postmark sends the URL's
        // credentials unasked, but a person testing with curl learns what to send.
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dndgate\""),
        );
    }
    response
}

/// The OpenAPI description of the operator API, kept in the repository.
pub const OPENAPI: &str = include_str!("../docs/openapi.json");

/// Route an operator API call under `/v1/tenants/{tenant}/`.
async fn api_route(
    app: &App,
    req: Request<Incoming>,
    tenant: &str,
    rest: &[&str],
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let allowed: &'static str = match rest {
        ["dnd", "check"] => "POST",
        ["dnd", _, _] => "GET, PUT, DELETE",
        ["history", _] => "GET",
        ["contacts", _] => "GET, PUT",
        ["links"] => "POST",
        _ => {
            return respond(api::error_answer(&Error::not_found(format!(
                "no API route {}",
                req.uri().path()
            ))));
        }
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        return method_not_allowed(allowed, true);
    }
    let gw = &app.gateway;
    let result = async {
        let (tenant, body) = api_request(app, req, tenant).await?;
        let decode = |s: &str| percent_decode(s);
        match (method, rest) {
            (Method::POST, ["dnd", "check"]) => api::post_check(&app.lookup, &tenant, &body).await,
            (Method::GET, ["dnd", channel, address]) => {
                api::get_verdict(&app.lookup, &tenant, channel, &decode(address)?).await
            }
            (Method::PUT, ["dnd", scope, address]) => {
                api::put_dnd(gw, &tenant, scope, &decode(address)?, &body).await
            }
            (Method::DELETE, ["dnd", scope, address]) => {
                api::delete_dnd(gw, &tenant, scope, &decode(address)?, &body).await
            }
            (Method::GET, ["history", address]) => {
                api::get_history(gw, &tenant, &decode(address)?).await
            }
            (Method::GET, ["contacts", id]) => api::get_contact(gw, &tenant, &decode(id)?).await,
            (Method::POST, ["links"]) => api::post_link(gw, &tenant, &body).await,
            (Method::PUT, ["contacts", id]) => {
                api::put_contact(gw, &tenant, &decode(id)?, &body).await
            }
            (method, _) => Err(Error::new(
                Kind::MethodNotAllowed,
                format!("{method} is not allowed here; use {allowed}"),
            )),
        }
    };
    respond(result.await.unwrap_or_else(|e| api::error_answer(&e)))
}

/// What every API call does first: decode the tenant, check its bearer token, read
/// the body.
async fn api_request(
    app: &App,
    req: Request<Incoming>,
    tenant: &str,
) -> Result<(String, Vec<u8>), Error> {
    let tenant = percent_decode(tenant)?;
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    api::authorize(&app.gateway.config, &tenant, authorization)?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = read_body(req.into_body(), declared, app.gateway.config.max_body_bytes).await?;
    Ok((tenant, body))
}

/// Bind the configured address. A separate step so tests and the CLI can bind port 0
/// and learn the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
