//! The ingest benchmark's load generator: a closed loop of signed Twilio callbacks over
//! `--connections` keep-alive HTTP/1.1 connections for `--seconds`, printing one JSON
//! line with requests per second and latency percentiles.
//!
//! ```text
//! cargo run --release --example bench-load -- --target http://127.0.0.1:8080/webhooks/twilio/acme \
//!     --public-url https://hooks.example.com --token TWILIO_AUTH_TOKEN --connections 64 --seconds 10
//! ```
//!
//! The mix is what a busy messaging account posts after a campaign: 70% delivery
//! receipts (`MessageStatus` sent/delivered), 20% ordinary inbound texts, 4% keywords
//! (STOP, START, HELP), 6% failed messages with error codes (30003, 30005, 30006,
//! 30007, 30004, 21610). Every request has its own MessageSid and one of 200,000 numbers,
//! and is signed as Twilio signs (HMAC-SHA1 over the public URL and the sorted
//! parameters), so a receiver does the whole job on every request.
//!
//! `--mix stop` sends a STOP storm instead: every request a signed inbound keyword, 90%
//! STOP and 10% START, each from a number no other request of the run uses (derived from
//! the request counter: `+1` and ten digits, the area code 200-999 from the run and the
//! higher digits of the counter), so every request is new and every STOP writes a DND
//! change (the worst case for the apply step and for events out, `bench/events_out.sh`).
//!
//! `--mix retry` sends a retry storm: the same 1,000 signed inbound STOPs (fixed
//! MessageSids and numbers, the same in every run) cycled, so once the warm-up has
//! delivered each of them, nearly every request is a duplicate the apply script turns
//! away at its first line (a STOP leaves a dedup marker; a START on a number without a
//! record would not, which is why this set is STOP only).
//!
//! The JSON line's `sent` counts every request sent, warm-up included, so a caller can
//! divide a process's CPU time over the whole load run by it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    target: String,
    public_url: String,
    token: String,
    connections: usize,
    seconds: u64,
    warmup: u64,
    run: u64,
    /// What to send (`--mix`).
    mix: Mix,
    /// Send exactly this many requests, then stop (`--requests N`, for
    /// `bench/footprint.sh`); 0: run for `--seconds`.
    requests: u64,
}

/// The request mix (`--mix campaign|stop|retry`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// A campaign's callbacks: receipts, texts, keywords, failures.
    Campaign,
    /// A STOP storm: 90% STOP, 10% START, every request from a new number.
    Stop,
    /// A retry storm: 1,000 fixed STOP requests cycled.
    Retry,
    /// Every request a STOP from a new number (`--mix opt-outs`, for
    /// `bench/footprint.sh`: every request one applied opt-out).
    OptOuts,
}

/// How many distinct requests a retry storm cycles through.
const RETRY_SET: u64 = 1_000;

fn args() -> Args {
    let mut a = Args {
        target: String::new(),
        public_url: "https://hooks.example.com".into(),
        token: String::new(),
        connections: 64,
        seconds: 10,
        warmup: 2,
        run: std::process::id() as u64,
        mix: Mix::Campaign,
        requests: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => a.target = value,
            "--public-url" => a.public_url = value,
            "--token" => a.token = value,
            "--connections" => a.connections = value.parse().expect("--connections N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--warmup" => a.warmup = value.parse().expect("--warmup N"),
            "--run" => a.run = value.parse().expect("--run N"),
            "--requests" => a.requests = value.parse().expect("--requests N"),
            "--mix" => {
                a.mix = match value.as_str() {
                    "campaign" => Mix::Campaign,
                    "stop" => Mix::Stop,
                    "retry" => Mix::Retry,
                    "opt-outs" => Mix::OptOuts,
                    other => panic!("--mix campaign|stop|retry|opt-outs, not {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.target.is_empty(), "--target URL is required");
    a
}

/// The form parameters of request `n` (deterministic, so every receiver gets the
/// same sequence).
fn params(n: u64, run: u64, mix: Mix) -> Vec<(&'static str, String)> {
    let ours = "+14155550000".to_string();
    let account = (
        "AccountSid",
        "AC00000000000000000000000000000000".to_string(),
    );
    let keyword = |body: &str, number: String, sid: String| {
        vec![
            account.clone(),
            ("Body", body.into()),
            ("From", number),
            ("MessageSid", sid),
            ("NumMedia", "0".into()),
            ("To", ours.clone()),
        ]
    };
    match mix {
        Mix::Campaign => {}
        Mix::Stop | Mix::OptOuts => {
            // A number of its own: ten million per area code, the area code moving
            // on with the run and the counter (200-999, all valid NANP area codes'
            // first digits), so no two requests of a run share one.
            let area = 200 + (run % 800 + n / 10_000_000) % 800;
            let number = format!("+1{area}{:07}", n % 10_000_000);
            let body = if mix == Mix::Stop && n % 10 == 9 {
                "START"
            } else {
                "STOP"
            };
            return keyword(body, number, format!("SM{run:08x}{n:024x}"));
        }
        Mix::Retry => {
            // Fixed: the same set in every run, so every delivery after the first of
            // each is a duplicate (also across runs on one database).
            let i = n % RETRY_SET;
            let number = format!("+1666{i:07}");
            return keyword("STOP", number, format!("SMffffffff{i:024x}"));
        }
    }
    let sid = format!("SM{run:08x}{n:024x}");
    let number = format!("+1555{:07}", (n.wrapping_mul(2_654_435_761)) % 200_000);
    match n % 100 {
        0..70 => vec![
            account,
            ("From", ours),
            ("MessageSid", sid),
            (
                "MessageStatus",
                if n.is_multiple_of(2) {
                    "delivered"
                } else {
                    "sent"
                }
                .into(),
            ),
            ("To", number),
        ],
        70..90 => vec![
            account,
            ("Body", "Thanks, see you at 3pm".into()),
            ("From", number),
            ("MessageSid", sid),
            ("NumMedia", "0".into()),
            ("To", ours),
        ],
        90..94 => vec![
            account,
            (
                "Body",
                ["STOP", "START", "HELP", "stop"][(n % 4) as usize].into(),
            ),
            ("From", number),
            ("MessageSid", sid),
            ("NumMedia", "0".into()),
            ("To", ours),
        ],
        _ => vec![
            account,
            (
                "ErrorCode",
                ["30003", "30005", "30006", "30007", "30004", "21610"][(n % 6) as usize].into(),
            ),
            ("From", ours),
            ("MessageSid", sid),
            ("MessageStatus", "undelivered".into()),
            ("To", number),
        ],
    }
}

fn signed(args: &Args, path: &str, n: u64) -> (String, String) {
    let mut p = params(n, args.run, args.mix);
    p.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(args.token.as_bytes()).unwrap();
    mac.update(args.public_url.as_bytes());
    mac.update(path.as_bytes());
    for (k, v) in &p {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    (serde_urlencoded::to_string(&p).unwrap(), signature)
}

type SendRequest = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(host: &str) -> SendRequest {
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(host).await {
            stream.set_nodelay(true).unwrap();
            if let Ok((send, conn)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
            {
                tokio::spawn(conn);
                return send;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Arc::new(args());
    let rest = args
        .target
        .strip_prefix("http://")
        .expect("an http:// target");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = host.to_string();
    let path = if path.is_empty() { "/" } else { path }.to_string();
    let counter = Arc::new(AtomicU64::new(0));
    // With a fixed number of requests, every one is measured.
    let measuring = Arc::new(AtomicBool::new(args.requests > 0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (args, host, path) = (args.clone(), host.clone(), path.clone());
        let (counter, measuring, stop) = (counter.clone(), measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut reconnects = 0u64;
            // Servers that close connections (gunicorn's sync workers, a worker
            // restart) get a new connection, counted, and the request is not lost.
            let mut send = None;
            while !stop.load(Ordering::Relaxed) {
                if send.as_ref().is_none_or(|s: &SendRequest| s.is_closed()) {
                    send = Some(connect(&host).await);
                    reconnects += 1;
                }
                let sender = send.as_mut().unwrap();
                if sender.ready().await.is_err() {
                    send = None;
                    continue;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if args.requests > 0 && n >= args.requests {
                    break;
                }
                let (body, signature) = signed(&args, &path, n);
                let req = Request::post(&path)
                    .header("host", &host)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", signature)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let started = Instant::now();
                let ok = match sender.send_request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        ok & res.into_body().collect().await.is_ok()
                    }
                    Err(_) => {
                        send = None;
                        false
                    }
                };
                let took = started.elapsed();
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(took.as_micros().min(u32::MAX as u128) as u32);
                    errors += u64::from(!ok);
                }
            }
            (latencies, errors, reconnects - 1)
        }));
    }
    let elapsed;
    if args.requests > 0 {
        let started = Instant::now();
        let mut results = Vec::new();
        for t in tasks.drain(..) {
            results.push(t.await.unwrap());
        }
        elapsed = started.elapsed().as_secs_f64();
        tasks = results
            .into_iter()
            .map(|r| tokio::spawn(async move { r }))
            .collect();
    } else {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        elapsed = started.elapsed().as_secs_f64();
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let (mut errors, mut reconnects) = (0, 0);
    for t in tasks {
        let (l, e, r) = t.await.unwrap();
        all.extend(l);
        errors += e;
        reconnects += r;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": all.len(),
            "sent": counter.load(Ordering::Relaxed),
            "errors": errors,
            "reconnects": reconnects,
            "rps": (all.len() as f64 / elapsed).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
}
