//! Test support: a real redis-server per test, on a free port in a temporary directory.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server that lives as long as this value.
pub struct RedisServer {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start a redis-server and wait until it answers PING.
    pub fn start() -> RedisServer {
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be on the PATH (apt install redis-server)");
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // port taken: try another
                }
                if server.ping() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.child.kill();
        }
        panic!("could not start redis-server");
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn ping(&self) -> bool {
        self.cli(&["PING"]).map(|s| s == "PONG").unwrap_or(false)
    }

    /// Run one command with redis-cli and return its raw output (trimmed).
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Every key and its value, as text, sorted: a snapshot to show that bad input
    /// changed nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let keys = self.cli(&["KEYS", "*"]).unwrap_or_default();
        let mut keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.iter()
            .map(|k| {
                let t = self.cli(&["TYPE", k]).unwrap();
                let v = match t.as_str() {
                    "hash" => self.cli(&["HGETALL", k]),
                    "stream" => self.cli(&["XRANGE", k, "-", "+"]),
                    _ => self.cli(&["GET", k]),
                };
                format!("{k} {t} {}", v.unwrap_or_default())
            })
            .collect()
    }

    /// Stop the server now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sign a Twilio form callback the way Twilio does: HMAC-SHA1 over the URL and the
/// parameters sorted by name, base64. Written here independently of the crate's
/// verifier, so a test cannot pass by sharing its bug.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Form-encode parameters.
pub fn form(params: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

/// An HTTP response as the tests see it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send one raw HTTP/1.1 request (with `Connection: close`) and read the response.
/// Hand-rolled so tests can send exactly the bytes they mean, malformed ones included.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading a large body and close; ignore that.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

pub const TWILIO_TOKEN: &str = "test_auth_token_0123456789abcdef";
pub const OLD_TWILIO_TOKEN: &str = "retired_token_being_rotated_out";
pub const API_TOKEN: &str = "acme-api-token";
pub const GLOBEX_API_TOKEN: &str = "globex-api-token";
pub const PUBLIC_URL: &str = "https://hooks.example.com";
pub const LINK_KEY: &str = "link-signing-key-2-0123456789";
pub const LINK_KEY_OLD: &str = "link-signing-key-1-0123456789";
pub const ACME_SID: &str = "AC00000000000000000000000000000000";

/// A configuration for tests: tenants acme (Twilio, two tokens) and globex.
pub fn config_text(redis_url: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
redis_url = "{redis_url}"
redis_timeout = "1s"

[links]
sign_with = 2
[links.keys]
1 = "{LINK_KEY_OLD}"
2 = "{LINK_KEY}"

[tenants.acme]
api_tokens = ["{API_TOKEN}"]

[tenants.acme.twilio]
auth_tokens = ["{OLD_TWILIO_TOKEN}", "{TWILIO_TOKEN}"]
account_sids = ["{ACME_SID}"]

[tenants.globex]
api_tokens = ["{GLOBEX_API_TOKEN}"]

[tenants.globex.twilio]
auth_tokens = ["globex-twilio-token"]
account_sids = ["AC11111111111111111111111111111111"]
"#
    )
}

/// A gateway running in this process on a free port.
pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub async fn start(config_text: &str) -> TestGateway {
        Self::start_with_fetch(config_text, std::sync::Arc::new(dndgate::fetch::NoFetch)).await
    }

    /// Start with a chosen outbound fetcher (fixtures for SNS certificates).
    pub async fn start_with_fetch(
        config_text: &str,
        fetch: std::sync::Arc<dyn dndgate::fetch::Fetch>,
    ) -> TestGateway {
        let config = dndgate::config::Config::parse(config_text, std::path::Path::new("."))
            .unwrap_or_else(|p| panic!("test config: {p:?}"));
        let store =
            dndgate::store::Store::open(&config.redis.url(), config.store_options()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = dndgate::pipeline::Gateway {
            config: std::sync::Arc::new(config),
            store,
            fetch,
            sns_certs: dndgate::signature::sns::CertCache::new(),
            spool: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(dndgate::server::run(gateway, listener, async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// POST a Twilio form callback to `path`, signed with `token` over the public URL.
    pub async fn twilio(&self, path: &str, token: &str, params: &[(&str, &str)]) -> HttpResponse {
        let sig = twilio_signature(token, &format!("{PUBLIC_URL}{path}"), params);
        http(
            self.addr,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", &sig),
            ],
            form(params).as_bytes(),
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// An inbound SMS in Twilio's documented shape.
pub fn inbound_sms<'a>(sid: &'a str, from: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", ACME_SID),
        ("ApiVersion", "2010-04-01"),
        ("Body", body),
        ("From", from),
        ("MessageSid", sid),
        ("MessagingServiceSid", "MG22222222222222222222222222222222"),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("To", "+15017122661"),
    ]
}

/// A status callback in Twilio's documented shape.
pub fn status_callback<'a>(
    sid: &'a str,
    to: &'a str,
    status: &'a str,
    error_code: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("AccountSid", ACME_SID),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15017122661"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", to),
    ];
    if let Some(code) = error_code {
        p.push(("ErrorCode", code));
    }
    p
}

/// Run the `dndgate` binary with `args`; returns (exit code, stdout, stderr).
pub fn dndgate(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Seconds since the Unix epoch a minute ago: a provider timestamp that is recent but
/// safely in the past.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60
}

/// The verdict for an address through the Rust lookup API.
pub async fn verdict(
    redis: &RedisServer,
    tenant: &str,
    channel: dndgate::event::Channel,
    address: &str,
) -> dndgate::store::Verdict {
    dndgate::lookup::Lookup::connect(&redis.url())
        .unwrap()
        .check(tenant, channel, address)
        .await
        .unwrap()
}

/// How many audit entries the shard holding acme's `email` has.
pub fn email_audit_len(redis: &RedisServer, email: &str) -> usize {
    let a = dndgate::address::Address::parse(dndgate::event::Channel::Email, email).unwrap();
    let key = dndgate::store::keys("acme", &a).audit;
    redis.cli(&["XLEN", &key]).unwrap().parse().unwrap()
}
