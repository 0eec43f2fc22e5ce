//! The events-out benchmark's receiver (`bench/events_out.sh`): a hyper server that
//! takes dndgate's signed POSTs as fast as it can, with keep-alive, and counts them.
//!
//! ```text
//! cargo run --release --example bench-receiver -- 127.0.0.1:9000 whsec_...
//! ```
//!
//! Every POST is verified as a real receiver would (Standard Webhooks: `v1,` HMAC-SHA256
//! of `ID.TIMESTAMP.BODY` under the secret, timestamp within 5 minutes) and answered 204,
//! or 401 when it does not verify. `GET /stats` answers one JSON line: `delivered`
//! (verified POSTs), `refused` (not verified), and `first_ms`/`last_ms`, milliseconds
//! from the receiver's start to the first and the last verified POST (0 before any).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

struct Counts {
    started: Instant,
    key: Vec<u8>,
    delivered: AtomicU64,
    refused: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
}

/// Whether the request's Standard Webhooks headers sign `body` under `key`, now.
fn verified(key: &[u8], headers: &hyper::HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(sent_s) = ts.parse::<i64>() else {
        return false;
    };
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now_s - sent_s).abs() > 300 {
        return false;
    }
    let expected = base64::engine::general_purpose::STANDARD
        .encode(dndgate::signature::whsec_hmac(key, id, ts, body));
    sigs.split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| {
            use subtle::ConstantTimeEq;
            s.len() == expected.len() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
        })
}

async fn answer(
    counts: Arc<Counts>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.method() == Method::GET {
        let body = serde_json::json!({
            "delivered": counts.delivered.load(Ordering::Relaxed),
            "refused": counts.refused.load(Ordering::Relaxed),
            "first_ms": counts.first_ms.load(Ordering::Relaxed),
            "last_ms": counts.last_ms.load(Ordering::Relaxed),
        })
        .to_string();
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let status = if verified(&counts.key, &parts.headers, &body) {
        let at = counts.started.elapsed().as_millis() as u64;
        let _ =
            counts
                .first_ms
                .compare_exchange(0, at.max(1), Ordering::Relaxed, Ordering::Relaxed);
        counts.last_ms.fetch_max(at, Ordering::Relaxed);
        counts.delivered.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    } else {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        StatusCode::UNAUTHORIZED
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let secret = args.next().expect("the endpoint's whsec_ secret");
    let key = dndgate::signature::decode_whsec(&secret).expect("a whsec_ secret");
    let counts = Arc::new(Counts {
        started: Instant::now(),
        key,
        delivered: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        first_ms: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!("bench-receiver listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(counts.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
