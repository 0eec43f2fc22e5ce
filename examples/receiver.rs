//! A local receiver for dndgate's events out, to try them without writing one.
//!
//! ```sh
//! DNDGATE_ENDPOINT_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
//!     cargo run --example receiver -- 127.0.0.1:9000
//! ```
//!
//! and in the gateway's configuration:
//!
//! ```toml
//! [[tenants.acme.endpoints]]
//! id = "local"
//! url = "http://127.0.0.1:9000/dnd"
//! secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
//! ```
//!
//! Listens on the address given (default `127.0.0.1:9000`) and checks every POST's
//! Standard Webhooks signature against the secret in `DNDGATE_ENDPOINT_SECRET`
//! (several, space-separated, while rotating). A verified event is printed as one line,
//! `TYPE CHANNEL ADDRESS ID`, and answered 204. A bad or missing signature, or a
//! `webhook-timestamp` more than 5 minutes from this host's clock, is answered 401,
//! which dndgate takes as a refusal and dead-letters at once; fix the secret or the
//! clock, then replay. One request per connection (`connection: close`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How far `webhook-timestamp` may be from this host's clock, as the official
/// libraries allow.
pub const TOLERANCE_S: i64 = 5 * 60;
/// The largest request line plus headers read.
const MAX_HEAD: usize = 16 * 1024;
/// The largest body read.
const MAX_BODY: usize = 1024 * 1024;
/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let keys = match std::env::var("DNDGATE_ENDPOINT_SECRET")
        .map_err(|_| "set DNDGATE_ENDPOINT_SECRET to the endpoint's whsec_ secret".to_string())
        .and_then(|s| keys(&s))
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("receiver: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("receiver: cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Ok(local) = listener.local_addr() {
        eprintln!("receiver: listening on http://{local}/");
    }
    serve(listener, keys, |line| println!("{line}")).await;
    ExitCode::SUCCESS
}

/// The HMAC keys of the secrets in `spec` (`whsec_...`, space-separated).
pub fn keys(spec: &str) -> Result<Vec<Vec<u8>>, String> {
    let keys: Vec<Vec<u8>> = spec
        .split_whitespace()
        .map(|s| {
            dndgate::signature::decode_whsec(s)
                .ok_or_else(|| "a secret is not whsec_ followed by base64".to_string())
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("no secret given".into());
    }
    Ok(keys)
}

/// Why a request is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `webhook-id`, `webhook-timestamp` or `webhook-signature` is missing.
    MissingHeader,
    /// `webhook-timestamp` is not a number of seconds, or is more than
    /// [`TOLERANCE_S`] from now.
    Timestamp,
    /// No `v1` entry of `webhook-signature` matches any key.
    Signature,
}

/// Check a request's Standard Webhooks signature at `now_s` (Unix seconds): some
/// `v1,` entry of `webhook-signature` is the HMAC-SHA256, under one of `keys`, of
/// `ID.TIMESTAMP.BODY`. `header` looks a header up by its lower-case name.
pub fn verify<'a>(
    keys: &[Vec<u8>],
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now_s: i64,
) -> Result<(), Refusal> {
    let (Some(id), Some(ts), Some(sigs)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err(Refusal::MissingHeader);
    };
    let sent_s: i64 = ts.trim().parse().map_err(|_| Refusal::Timestamp)?;
    if (now_s - sent_s).abs() > TOLERANCE_S {
        return Err(Refusal::Timestamp);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for key in keys {
        let want = dndgate::signature::whsec_hmac(key, id, ts, body);
        let matched = sigs
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|sig| b64.decode(sig).ok())
            .any(|sig| dndgate::secret::constant_time_eq(&sig, &want));
        if matched {
            return Ok(());
        }
    }
    Err(Refusal::Signature)
}

/// The line printed for a verified event: `TYPE CHANNEL ADDRESS ID`.
pub fn describe(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(format!(
        "{} {} {} {}",
        v["type"].as_str()?,
        v["data"]["channel"].as_str()?,
        v["data"]["address"].as_str()?,
        v["id"].as_str()?
    ))
}

/// Answer connections until the listener fails; `report` gets each verified event's
/// line.
pub async fn serve(
    listener: TcpListener,
    keys: Vec<Vec<u8>>,
    report: impl Fn(String) + Send + Sync + 'static,
) {
    let keys = Arc::new(keys);
    let report = Arc::new(report);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("receiver: accept: {e}");
                return;
            }
        };
        let (keys, report) = (keys.clone(), report.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &keys, &*report).await {
                eprintln!("receiver: {e}");
            }
        });
    }
}

/// One request: read, verify, answer.
async fn handle(
    mut stream: TcpStream,
    keys: &[Vec<u8>],
    report: &(dyn Fn(String) + Send + Sync),
) -> std::io::Result<()> {
    let status = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => 408,
        Ok(Err(status)) => status,
        Ok(Ok((headers, body))) => {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            match verify(keys, header, &body, now_s) {
                Ok(()) => match describe(&body) {
                    Some(line) => {
                        report(line);
                        204
                    }
                    None => 400,
                },
                Err(why) => {
                    eprintln!("receiver: refused ({why:?})");
                    401
                }
            }
        }
    };
    let reason = match status {
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Content Too Large",
    };
    let answer =
        format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// A POST's headers (names lower-cased) and body; or the status to answer.
async fn read_request(stream: &mut TcpStream) -> Result<(Vec<(String, String)>, Vec<u8>), u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(413);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| 400u16)?;
    let mut lines = head.split("\r\n");
    if !lines.next().is_some_and(|l| l.starts_with("POST ")) {
        return Err(405);
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or(400u16)?;
    if length > MAX_BODY {
        return Err(413);
    }
    let mut body = buf.split_off(head_end + 4);
    if body.len() > length {
        return Err(400);
    }
    let had = body.len();
    body.resize(length, 0);
    stream
        .read_exact(&mut body[had..])
        .await
        .map_err(|_| 400u16)?;
    Ok((headers, body))
}
