//! The lookup benchmarks: what a sender pays to check DND before a message.
//!
//! ```text
//! bench-lookup single --redis URL --concurrency 64 --seconds 5
//! bench-lookup batch  --redis URL --size 10000 --runs 50
//! bench-lookup http   --target http://127.0.0.1:8080 --token API_TOKEN --concurrency 64 --seconds 5
//! bench-lookup http-batch --target http://127.0.0.1:8080 --token API_TOKEN --size 10000 --runs 20
//! ```
//!
//! Addresses are `+1555NNNNNNN` for N below 200,000 (bench/run.sh seeds a third of them
//! as DND). Each mode prints one JSON line.

use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NUMBERS: u64 = 200_000;

fn number(n: u64) -> String {
    format!("+1555{:07}", n.wrapping_mul(2_654_435_761) % NUMBERS)
}

struct Args {
    mode: String,
    redis: String,
    target: String,
    token: String,
    concurrency: usize,
    seconds: u64,
    size: usize,
    runs: usize,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        mode: it
            .next()
            .expect("a mode: single, batch, http or http-batch"),
        redis: String::new(),
        target: String::new(),
        token: String::new(),
        concurrency: 64,
        seconds: 5,
        size: 10_000,
        runs: 50,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => a.redis = value,
            "--target" => a.target = value,
            "--token" => a.token = value,
            "--concurrency" => a.concurrency = value.parse().unwrap(),
            "--seconds" => a.seconds = value.parse().unwrap(),
            "--size" => a.size = value.parse().unwrap(),
            "--runs" => a.runs = value.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

/// Run `op` from `concurrency` tasks for `seconds` (after a second of warm-up) and
/// print the rate and latency percentiles. `op` gets its task's number (0 to
/// `concurrency - 1`) and the operation's number.
async fn closed_loop<F, Fut>(concurrency: usize, seconds: u64, op: F)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let (op, counter, measuring, stop) =
            (op.clone(), counter.clone(), measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let ok = op(task, n).await;
                if measuring.load(Ordering::Relaxed) {
                    // Only answered operations count towards the rate.
                    if ok {
                        lat.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "ops": all.len(), "errors": errors,
            "ops_per_s": (all.len() as f64 / elapsed).round(),
            "p50_ms": percentile(&all, 0.5), "p99_ms": percentile(&all, 0.99),
        })
    );
}

/// Time `op` `runs` times (after two warm-up runs) and print median and worst.
async fn timed_runs<F, Fut>(runs: usize, op: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    op().await;
    op().await;
    let mut took = Vec::new();
    let mut blocked = 0;
    for _ in 0..runs {
        let started = Instant::now();
        blocked = op().await;
        took.push(started.elapsed().as_micros() as u32);
    }
    took.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "runs": runs, "blocked_in_batch": blocked,
            "median_ms": percentile(&took, 0.5), "p90_ms": percentile(&took, 0.9),
            "max_ms": percentile(&took, 1.0),
        })
    );
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A task's HTTP connection and its host, made on first use.
type Slot = tokio::sync::Mutex<Option<(Sender, String)>>;

async fn connect(target: &str) -> (Sender, String) {
    let host = target
        .strip_prefix("http://")
        .expect("an http:// target")
        .trim_end_matches('/')
        .to_string();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    (send, host)
}

async fn send(
    sender: &mut Sender,
    host: &str,
    token: &str,
    method: &str,
    path: &str,
    body: String,
) -> (bool, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    match sender.send_request(req).await {
        Ok(res) => {
            let ok = res.status().is_success();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            if !ok {
                eprintln!(
                    "{method} {path}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            (ok, body)
        }
        Err(e) => (false, Bytes::from(format!("{method} {path}: {e}"))),
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    match a.mode.as_str() {
        "single" => {
            let lookup = Lookup::connect(&a.redis).unwrap();
            closed_loop(a.concurrency, a.seconds, move |_, n| {
                let lookup = lookup.clone();
                async move { lookup.check("acme", Channel::Sms, &number(n)).await.is_ok() }
            })
            .await;
        }
        "batch" => {
            let lookup = Lookup::connect(&a.redis).unwrap();
            let addresses: Vec<String> = (0..a.size as u64).map(number).collect();
            timed_runs(a.runs, || async {
                let verdicts = lookup
                    .check_many("acme", Channel::Sms, &addresses)
                    .await
                    .unwrap();
                verdicts
                    .iter()
                    .filter(|v| v.as_ref().is_ok_and(|v| v.blocked))
                    .count()
            })
            .await;
        }
        "http" => {
            // One connection per task (its own: no task waits for another's), reconnected
            // when the server closes it (after `limits.max_requests_per_connection`); a
            // failed request counts as an error.
            let slots: Arc<Vec<Slot>> = Arc::new(
                (0..a.concurrency)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
            );
            let (token, target) = (Arc::new(a.token.clone()), Arc::new(a.target.clone()));
            closed_loop(a.concurrency, a.seconds, move |task, n| {
                let (slots, token, target) = (slots.clone(), token.clone(), target.clone());
                async move {
                    let mut slot = slots[task].lock().await;
                    if slot.as_ref().is_none_or(|(s, _)| s.is_closed()) {
                        *slot = Some(connect(&target).await);
                    }
                    let (sender, host) = slot.as_mut().unwrap();
                    if sender.ready().await.is_err() {
                        *slot = None;
                        return false;
                    }
                    let path =
                        format!("/v1/tenants/acme/dnd/sms/{}", number(n).replace('+', "%2B"));
                    let (ok, _) = send(sender, host, &token, "GET", &path, String::new()).await;
                    if !ok {
                        *slot = None;
                    }
                    ok
                }
            })
            .await;
        }
        "http-batch" => {
            let addresses: Vec<String> = (0..a.size as u64).map(number).collect();
            let body = serde_json::json!({"channel": "sms", "addresses": addresses}).to_string();
            let conn = tokio::sync::Mutex::new(connect(&a.target).await);
            timed_runs(a.runs, || async {
                let mut conn = conn.lock().await;
                // A connection that fails before its request is sent (a 4-tuple reused
                // from the thousands an earlier run left in TIME-WAIT) is replaced
                // (up to four times); the gateway never sees these connections.
                for attempt in 0..5 {
                    let (sender, host) = &mut *conn;
                    let (ok, bytes) = send(
                        sender,
                        host,
                        &a.token,
                        "POST",
                        "/v1/tenants/acme/dnd/check",
                        body.clone(),
                    )
                    .await;
                    if ok {
                        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        return v["blocked"].as_array().map(|b| b.len()).unwrap_or(0);
                    }
                    assert!(attempt < 4, "{}", String::from_utf8_lossy(&bytes));
                    eprintln!("reconnecting: {}", String::from_utf8_lossy(&bytes));
                    *conn = connect(&a.target).await;
                }
                unreachable!()
            })
            .await;
        }
        other => panic!("unknown mode {other}: single, batch, http or http-batch"),
    }
}
