//! The HTTP server: hyper 1 on tokio, a plain accept loop, one task per connection.
//! The only module that knows hyper: it turns requests into plain values for the
//! pipeline and the API, and their answers back into responses.
//!
//! Two listeners: the public one (webhooks, unsubscribe links, the operator API,
//! `/healthz` and a bare `/readyz`) and the admin one (`admin_listen`, loopback by
//! default: `/metrics`, the detailed `/readyz`, `/healthz`), because metrics and
//! detailed readiness name tenants, counts, Redis errors and the spool's size.

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
use crate::config::ConsoleOn;
use crate::console;
use crate::error::{Error, Kind};
use crate::lookup::Lookup;
use crate::pipeline::{Answer, Gateway, WebhookMethod, WebhookRequest};
use crate::telemetry::{self, RequestInfo};

/// In-flight requests get this long to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Shared state of the server.
struct App {
    gateway: Gateway,
    lookup: Lookup,
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Webhooks, links, the operator API, `/healthz`, a bare `/readyz`.
    Public,
    /// `/metrics`, the detailed `/readyz`, `/healthz`.
    Admin,
}

/// Serve on `listener` until `shutdown` completes, then stop accepting, let in-flight
/// requests finish (up to [`SHUTDOWN_GRACE`]) and return. No admin listener: see
/// [`run_with_admin`].
pub async fn run(gateway: Gateway, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    run_with_admin(gateway, listener, None, shutdown).await
}

/// [`run`], with the admin listener (`/metrics`, the detailed `/readyz`) on `admin`.
pub async fn run_with_admin(
    gateway: Gateway,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let lookup = Lookup::from_store(gateway.store.clone()).with_spool(gateway.spool.clone());
    let limits = gateway.config.limits.clone();
    let app = Arc::new(App { gateway, lookup });
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|l| tokio::spawn(admin_loop(app.clone(), l, admin_stopped)));
    // Bounds memory under a connection flood; a permit lives as long as its connection.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header read timeout also runs while a keep-alive connection waits for its
    // next request, so it is the idle timeout too (slowloris either way).
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(64 * 1024));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener, "accept failed") => accepted,
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let max_requests = limits.max_requests_per_connection;
        let service = service_fn(move |req| {
            let app = app.clone();
            let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            async move {
                let mut response = handle(&app, req, peer, Side::Public).await;
                if n >= max_requests {
                    // Keep-alive limit: hyper closes the connection after this answer.
                    response
                        .headers_mut()
                        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
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
    let _ = stop_admin.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after {SHUTDOWN_GRACE:?}; exiting");
    }
}

/// The next connection on `listener`. A failed accept (out of file descriptors and the
/// like) is logged with `failed` and retried after a pause rather than in a spin.
async fn accept(
    listener: &TcpListener,
    failed: &'static str,
) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "{failed}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The admin listener's accept loop: few, small requests (scrapes, probes), so no
/// connection limit of its own; it stops accepting when `stopped` turns true.
async fn admin_loop(
    app: Arc<App>,
    listener: TcpListener,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.gateway.config.limits.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener, "admin listener: accept failed") => accepted,
            _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => return,
        };
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, req, peer, Side::Admin).await) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// A response body: the whole answer at once, or pieces as they come (the console's
/// export, which is never held whole).
type Body = http_body_util::Either<Full<Bytes>, Pieces>;

/// A body sent piece by piece from a channel; an `Err` piece ends it as a failed
/// transfer (the client sees the download break, never a short file that looks whole).
struct Pieces(tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|piece| {
            piece.map(|p| {
                p.map(|bytes| hyper::body::Frame::data(Bytes::from(bytes)))
                    .map_err(std::io::Error::other)
            })
        })
    }
}

fn respond(answer: Answer) -> Response<Body> {
    let mut response = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        answer.body,
    ))));
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
    if let Some(challenge) = answer.www_authenticate {
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

fn method_not_allowed(allowed: &'static str, api: bool) -> Response<Body> {
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

/// The length a request declares (`Content-Length`), if it is a number.
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Read the whole body, at most `limit` bytes, within `timeout`
/// (`limits.body_read_timeout`): a body that stalls gets 408 and the connection closes.
async fn read_body(
    body: Incoming,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let too_large = || {
        Error::new(
            Kind::PayloadTooLarge,
            format!("body is larger than the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Error::new(
            Kind::RequestTimeout,
            format!("body not received within {timeout:?}"),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Error::bad_request(format!("could not read the body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

/// Answer one request inside its span, then count it.
async fn handle(app: &App, req: Request<Incoming>, peer: SocketAddr, side: Side) -> Response<Body> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let provider = match segments.as_slice() {
        ["webhooks", p, ..] => app.gateway.provider_name(p),
        _ => None,
    };
    let route = telemetry::route_label(&segments, provider);
    let span = telemetry::request_span(route, req.method().as_str());
    let mut info = RequestInfo::default();
    let response = match side {
        Side::Public => {
            route_request(app, req, peer, &path, &segments, &mut info)
                .instrument(span.clone())
                .await
        }
        Side::Admin => {
            admin_route(app, req, &path, &segments)
                .instrument(span.clone())
                .await
        }
    };
    telemetry::request_finished(
        &span,
        route,
        info,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The admin listener's routes: `/metrics`, the detailed `/readyz`, `/healthz`.
async fn admin_route(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    segments: &[&str],
) -> Response<Body> {
    let get = req.method() == Method::GET;
    match segments {
        ["healthz"] if get => respond(Answer::text(200, "ok\n")),
        ["readyz"] if get => respond(app.gateway.readiness().await),
        ["metrics"] if get => {
            // Redis health is read at scrape time, so the gauge is never stale.
            let up = app.gateway.store.ping().await.is_ok();
            let spool = app.gateway.spool.as_ref().map(|s| s.stats());
            respond(Answer {
                content_type: telemetry::CONTENT_TYPE,
                ..Answer::text(200, telemetry::scrape(up, spool.as_ref()))
            })
        }
        ["healthz"] | ["readyz"] | ["metrics"] => method_not_allowed("GET", false),
        ["console", rest @ ..] if app.gateway.config.console == ConsoleOn::Admin => {
            console(app, req, rest).await
        }
        _ => respond(Answer::from_error(&Error::not_found(format!(
            "no route {path} on the admin listener: it serves /metrics, /readyz, /healthz{}",
            if app.gateway.config.console == ConsoleOn::Admin {
                " and /console/"
            } else {
                ""
            }
        )))),
    }
}

async fn route_request(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    path: &str,
    segments: &[&str],
    info: &mut RequestInfo,
) -> Response<Body> {
    let method = req.method().clone();
    match segments {
        ["healthz"] if method == Method::GET => respond(Answer::text(200, "ok\n")),
        ["readyz"] if method == Method::GET => respond(app.gateway.readiness_bare().await),
        ["healthz"] | ["readyz"] => method_not_allowed("GET", false),
        // A provider that may send its webhooks by GET gets them on its road; any other
        // GET (Meta's subscription handshake) or HEAD (Mandrill's check that the URL
        // exists) is the provider's handshake. Hyper sends no body with a HEAD answer.
        ["webhooks", provider, rest @ ..]
            if rest.len() <= 1 && method == Method::GET && app.gateway.takes_get(provider) =>
        {
            webhook(app, req, provider, rest.first().copied(), peer, info).await
        }
        ["webhooks", provider] | ["webhooks", provider, _]
            if method == Method::GET || method == Method::HEAD =>
        {
            respond(
                app.gateway
                    .handshake(provider, req.uri().query().unwrap_or("")),
            )
        }
        ["webhooks", _provider] | ["webhooks", _provider, _] if method != Method::POST => {
            method_not_allowed("GET, POST", false)
        }
        ["webhooks", provider, rest @ ..] if rest.len() <= 1 => {
            webhook(app, req, provider, rest.first().copied(), peer, info).await
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
                    let declared = declared_length(req.headers());
                    // A preference form is a few hundred bytes; one-click bodies less.
                    let timeout = app.gateway.config.limits.body_read_timeout;
                    match read_body(req.into_body(), declared, 16 * 1024, timeout).await {
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
            content_type: "application/json",
            ..Answer::text(200, OPENAPI)
        }),
        ["openapi.json"] => method_not_allowed("GET", true),
        ["console", rest @ ..] if app.gateway.config.console == ConsoleOn::Public => {
            console(app, req, rest).await
        }
        ["v1", "tenants", tenant, rest @ ..] => api_route(app, req, tenant, rest, info).await,
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
    info: &mut RequestInfo,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let declared = declared_length(&parts.headers);
    let tenant = match tenant.map(percent_decode).transpose() {
        Ok(t) => t,
        Err(e) => return respond(Answer::from_error(&e)),
    };
    let config = &app.gateway.config;
    let body = match read_body(
        body,
        declared,
        config.max_body_bytes,
        config.limits.body_read_timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            telemetry::webhook_refused(provider, "-", e.kind.status(), &e.message, peer);
            return respond(Answer::from_error(&e));
        }
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    headers.extend(
        parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string()))),
    );
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
        method: if parts.method == Method::GET {
            WebhookMethod::Get
        } else {
            WebhookMethod::Post
        },
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
    info.tenant = report.tenant.clone();
    info.verification = report.verification;
    if answer.status < 400 {
        info.outcome = Some(telemetry::webhook_outcome(
            report.events,
            report.changed,
            report.duplicates,
            report.spooled,
        ));
    }
    let label = app.gateway.provider_name(provider).unwrap_or("unknown");
    telemetry::webhook_answered(provider, label, &report, answer.status, &answer.body, peer);
    respond(answer)
}

/// A request to the operator console (`crate::console`): GET and HEAD read, POST
/// sends a form of at most `console::MAX_BODY` bytes.
async fn console(app: &App, req: Request<Incoming>, rest: &[&str]) -> Response<Body> {
    let post = match *req.method() {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return method_not_allowed("GET, POST", false),
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let cookie = req
        .headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let body = if post {
        let declared = declared_length(req.headers());
        let timeout = app.gateway.config.limits.body_read_timeout;
        match read_body(req.into_body(), declared, console::MAX_BODY, timeout).await {
            Ok(b) => b,
            Err(e) => return respond(Answer::from_error(&e)),
        }
    } else {
        Vec::new()
    };
    let answer = console::handle(
        &app.gateway,
        console::ConsoleRequest {
            post,
            path: rest,
            query: &query,
            cookie: (!cookie.is_empty()).then_some(cookie.as_str()),
            body: &body,
        },
    )
    .await;
    let mut response = respond(answer.answer);
    if let Some(pieces) = answer.pieces {
        *response.body_mut() = http_body_util::Either::Right(Pieces(pieces));
    }
    let headers = response.headers_mut();
    for (name, value) in console::SECURITY_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    for cookie in &answer.set_cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            headers.append(hyper::header::SET_COOKIE, v);
        }
    }
    if let Some(name) = answer.attachment
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        headers.insert(hyper::header::CONTENT_DISPOSITION, v);
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
    info: &mut RequestInfo,
) -> Response<Body> {
    let method = req.method().clone();
    let allowed: &'static str = match rest {
        ["dnd", "check"] => "POST",
        ["dnd", _, _] => "GET, PUT, DELETE",
        ["history", _] => "GET",
        ["contacts", _] => "GET, PUT",
        ["links"] => "POST",
        ["endpoints", tail @ ..] if api::endpoint_methods(tail).is_some() => {
            api::endpoint_methods(tail).unwrap_or("GET")
        }
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
        info.tenant = Some(tenant.clone());
        let decode = |s: &str| percent_decode(s);
        match (method, rest) {
            (Method::POST, ["dnd", "check"]) => api::post_check(&app.lookup, &tenant, &body).await,
            (Method::GET, ["dnd", channel, address]) => {
                api::get_verdict(&app.lookup, &tenant, channel, &decode(address)?).await
            }
            (method @ (Method::PUT | Method::DELETE), ["dnd", scope, address]) => {
                let address = decode(address)?;
                let path = api::DndPath {
                    tenant: &tenant,
                    scope,
                    address: &address,
                };
                if method == Method::PUT {
                    api::put_dnd(gw, path, &body).await
                } else {
                    api::delete_dnd(gw, path, &body).await
                }
            }
            (Method::GET, ["history", address]) => {
                api::get_history(gw, &tenant, &decode(address)?).await
            }
            (Method::GET, ["contacts", id]) => api::get_contact(gw, &tenant, &decode(id)?).await,
            (Method::POST, ["links"]) => api::post_link(gw, &tenant, &body).await,
            (Method::PUT, ["contacts", id]) => {
                api::put_contact(gw, &tenant, &decode(id)?, &body).await
            }
            (method, ["endpoints", tail @ ..]) => {
                api::endpoints(gw, &tenant, method.as_str(), tail, &body).await
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
    let declared = declared_length(req.headers());
    let config = &app.gateway.config;
    // A request without a body (a lookup's GET) has nothing to wait for.
    if hyper::body::Body::is_end_stream(req.body()) {
        return Ok((tenant, Vec::new()));
    }
    let body = read_body(
        req.into_body(),
        declared,
        config.max_body_bytes,
        config.limits.body_read_timeout,
    )
    .await?;
    Ok((tenant, body))
}

/// Bind the configured address. A separate step so tests and the CLI can bind port 0
/// and learn the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
