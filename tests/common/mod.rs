//! Test support: a real redis-server per test, on a free port in a temporary directory;
//! with `DNDGATE_TEST_REDIS=cluster` in the environment, a real Redis Cluster of three
//! masters instead, so the whole suite runs against both.

#![allow(dead_code)]

pub mod sign;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server (or, with `DNDGATE_TEST_REDIS=cluster`, a three-master Redis
/// Cluster) that lives as long as this value.
pub struct RedisServer {
    nodes: Vec<Child>,
    /// The port on 127.0.0.1 (of the first node, on a cluster).
    pub port: u16,
    /// Every node's port (one for a single server).
    pub ports: Vec<u16>,
    cluster: bool,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range, so no `bind(0)` listener and no outgoing
    // connection of a parallel test can take a port that a test killed and is about to
    // start a server on again; and never the same port twice in one test process.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000, ephemeral_start.clamp(12_000, 32_768));
    let span = high - low;
    let seed = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + (seed + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {low} and {high}");
}

/// Does this run test against a Redis Cluster (`DNDGATE_TEST_REDIS=cluster`)?
pub fn cluster_mode() -> bool {
    std::env::var("DNDGATE_TEST_REDIS").is_ok_and(|v| v == "cluster")
}

/// Start one redis-server on a free port in `dir` with `extra` arguments; `None` if it
/// exits (port taken) or does not answer PING within 5 s.
fn start_node(dir: &std::path::Path, extra: &[String]) -> Option<(Child, u16)> {
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be on the PATH (apt install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None; // port taken: try another
        }
        if node_cli(port, &["PING"]).is_some_and(|s| s == "PONG") {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Run one command with redis-cli against the node on `port` (no redirects).
fn node_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--raw"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

impl RedisServer {
    /// Start a redis-server and wait until it answers PING; with
    /// `DNDGATE_TEST_REDIS=cluster`, a three-master cluster, ready when every node
    /// reports `cluster_state:ok` with all slots assigned.
    pub fn start() -> RedisServer {
        if cluster_mode() {
            return Self::start_cluster();
        }
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            if let Some((child, port)) = start_node(dir.path(), &[]) {
                return RedisServer {
                    nodes: vec![child],
                    port,
                    ports: vec![port],
                    cluster: false,
                    _dir: dir,
                };
            }
        }
        panic!("could not start redis-server");
    }

    fn start_cluster() -> RedisServer {
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let mut server = RedisServer {
                nodes: Vec::new(),
                port: 0,
                ports: Vec::new(),
                cluster: true,
                _dir: dir,
            };
            for i in 0..3 {
                // The cluster bus gets its own free port: the default, port + 10000,
                // may be past 65535 or taken.
                let extra = [
                    "--cluster-enabled".to_string(),
                    "yes".to_string(),
                    "--cluster-config-file".to_string(),
                    format!("nodes-{i}.conf"),
                    "--cluster-port".to_string(),
                    free_port().to_string(),
                    "--cluster-node-timeout".to_string(),
                    "5000".to_string(),
                ];
                let node_dir = server._dir.path().join(i.to_string());
                std::fs::create_dir(&node_dir).unwrap();
                if let Some((child, port)) = start_node(&node_dir, &extra) {
                    server.nodes.push(child);
                    server.ports.push(port);
                }
            }
            if server.nodes.len() < 3 {
                continue; // dropping the server stops the nodes that started
            }
            server.port = server.ports[0];
            let addresses: Vec<String> = server
                .ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            let created = Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if created && server.wait_for_cluster() {
                return server;
            }
        }
        panic!("could not start a Redis Cluster (redis-server and redis-cli 7 on the PATH)");
    }

    /// Wait until every node sees the cluster as ok, knows every node and has every
    /// slot assigned.
    fn wait_for_cluster(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ready = self.ports.iter().all(|p| {
                node_cli(*p, &["CLUSTER", "INFO"]).is_some_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_assigned:16384")
                        && info.contains("cluster_known_nodes:3")
                })
            });
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Is this a cluster?
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The URL to connect to: `redis://` for one server, `redis+cluster://` with
    /// every node as a seed for a cluster.
    pub fn url(&self) -> String {
        if self.cluster {
            let hosts: Vec<String> = self
                .ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            format!("redis+cluster://{}/", hosts.join(","))
        } else {
            format!("redis://127.0.0.1:{}/", self.port)
        }
    }

    /// Run one command with redis-cli and return its raw output (trimmed). On a
    /// cluster it follows redirects (`-c`), so a command on a key reaches the key's
    /// node; a command on no key runs on the first node (see [`RedisServer::keys`]
    /// and [`RedisServer::flushall`] for the whole keyspace).
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        if self.cluster {
            cmd.arg("-c");
        }
        let out = cmd
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Run one command on every node (a setting every node must have); panics if a
    /// node refuses it.
    pub fn cli_each(&self, args: &[&str]) {
        for p in &self.ports {
            node_cli(*p, args).unwrap_or_else(|| panic!("node {p} refused {args:?}"));
        }
    }

    /// How many times `command` ran (INFO commandstats), summed over every node.
    pub fn calls(&self, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        self.ports
            .iter()
            .filter_map(|p| node_cli(*p, &["INFO", "commandstats"]))
            .flat_map(|info| {
                info.lines()
                    .filter_map(|l| l.strip_prefix(&prefix))
                    .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The keys matching `pattern` on every node, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .ports
            .iter()
            .flat_map(|p| {
                node_cli(*p, &["KEYS", pattern])
                    .unwrap_or_default()
                    .lines()
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }

    /// Delete every key on every node (as a restart without persistence would).
    pub fn flushall(&self) {
        for p in &self.ports {
            assert_eq!(node_cli(*p, &["FLUSHALL"]).as_deref(), Some("OK"));
        }
    }

    /// Every key and its value, as text, sorted, over every node: a snapshot to show
    /// that bad input changed nothing.
    pub fn snapshot(&self) -> Vec<String> {
        self.keys("*")
            .iter()
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

    /// Stop the server (every node of a cluster) now, as a crash would.
    pub fn kill(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sign a Twilio form callback the way Twilio does: HMAC-SHA1 over the URL and the
/// parameters sorted by name, base64 ([`sign::twilio`]).
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sign::twilio(token, url, &params)
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
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// A chunked body's data. A body cut short (no last, empty chunk) keeps what arrived
/// and ends with `<incomplete>`, so a test can tell a broken transfer from a whole one.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            out.push_str("<incomplete>");
            return out;
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            out.push_str("<incomplete>");
            return out;
        };
        if n == 0 {
            return out;
        }
        if after.len() < n {
            out.push_str(after);
            out.push_str("<incomplete>");
            return out;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
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

/// POST a Twilio form callback to the gateway at `addr` (in this process or a child),
/// signed with `token` over `PUBLIC_URL` + `path`.
pub async fn post_twilio(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    params: &[(&str, &str)],
) -> HttpResponse {
    let sig = twilio_signature(token, &format!("{PUBLIC_URL}{path}"), params);
    http(
        addr,
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

/// A configuration for tests: tenants acme (Twilio, two tokens) and globex. No admin
/// listener (`admin_listen = "off"`: its default port would be shared by every test that
/// runs `dndgate serve`); a test that needs one replaces that line (see
/// [`with_admin_listen`]). In-process gateways ([`TestGateway`]) always get one.
pub fn config_text(redis_url: &str) -> String {
    format!(
        r#"
admin_listen = "off"
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

/// `text` (from [`config_text`]) with the admin listener on `addr`.
pub fn with_admin_listen(text: &str, addr: std::net::SocketAddr) -> String {
    assert!(text.contains("admin_listen = \"off\""), "{text}");
    text.replace(
        "admin_listen = \"off\"",
        &format!("admin_listen = \"{addr}\""),
    )
}

/// A gateway running in this process on a free port, with its admin listener
/// (`/metrics`, the detailed `/readyz`) on another.
pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    outbound: Option<dndgate::outbound::Outbound>,
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
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let config = std::sync::Arc::new(config);
        // Events out and the audit retention, as `serve` runs them.
        let outbound = dndgate::outbound::Outbound::start(store.clone(), config.clone())
            .expect("the events-out client");
        let gateway = dndgate::pipeline::Gateway::new(config, store, fetch, None);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(dndgate::server::run_with_admin(
            gateway,
            listener,
            Some(admin),
            async {
                let _ = stopped.await;
            },
        ));
        TestGateway {
            addr,
            admin_addr,
            stop: Some(stop),
            task: Some(task),
            outbound: Some(outbound),
        }
    }

    /// POST a Twilio form callback to `path`, signed with `token` over the public URL.
    pub async fn twilio(&self, path: &str, token: &str, params: &[(&str, &str)]) -> HttpResponse {
        post_twilio(self.addr, path, token, params).await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        if let Some(o) = self.outbound.take() {
            o.shutdown().await;
        }
    }
}

/// The gateway's outbound fetcher in tests, with no network: serves documents by URL
/// (SNS signing certificates, see [`sign::Served`]), answers SNS subscription
/// confirmations, and records every URL asked for.
#[derive(Default)]
pub struct FixtureFetch {
    served: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    fetched: std::sync::Mutex<Vec<String>>,
}

impl FixtureFetch {
    /// Serve `body` at `url` from now on (replacing what was there).
    pub fn serve(&self, url: &str, body: impl Into<Vec<u8>>) {
        self.served
            .lock()
            .unwrap()
            .insert(url.to_string(), body.into());
    }

    /// Every URL the gateway asked for, in order.
    pub fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }
}

impl dndgate::fetch::Fetch for FixtureFetch {
    fn get<'a>(&'a self, url: &'a str) -> dndgate::fetch::BoxFuture<'a, Result<Vec<u8>, String>> {
        self.fetched.lock().unwrap().push(url.to_string());
        let answer = if url.contains("Action=ConfirmSubscription") {
            Ok(b"<ConfirmSubscriptionResponse/>".to_vec())
        } else {
            self.served
                .lock()
                .unwrap()
                .get(url)
                .cloned()
                .ok_or_else(|| format!("fixture: nothing at {url}"))
        };
        Box::pin(async move { answer })
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

/// Milliseconds since the Unix epoch now, from the clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An RFC 3339 time (`...T...Z`, milliseconds) `ago_ms` before now: provider event
/// times built from the clock, so that the suite passes on any day.
pub fn iso_ago(ago_ms: i64) -> String {
    dndgate::time::format_rfc3339_ms(now_ms() - ago_ms)
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

/// `dndgate serve` as a child process whose stderr (the log) is captured, for tests
/// that read what the gateway logs or how it refuses to start.
pub struct ServeProcess {
    child: Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Start `dndgate serve --config CONFIG EXTRA...` (with `DNDGATE_LOG=info`).
    pub fn start(config: &std::path::Path, extra: &[&str]) -> ServeProcess {
        use std::io::Read;
        let mut child = Command::new(env!("CARGO_BIN_EXE_dndgate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("DNDGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ServeProcess {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Wait until `/healthz` at `addr` answers 200; `Err(exit code)` if the process
    /// exits first.
    pub async fn wait_ready(&mut self, addr: std::net::SocketAddr) -> Result<(), Option<i32>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Err(status.code());
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dndgate serve did not start listening: {}", self.stderr());
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, wait for the exit (and the rest of stderr); returns the exit code.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (code, self.stderr())
    }
}

/// A Standard Webhooks (Resend, Svix) signature header value for `body`:
/// `v1,<base64 HMAC-SHA256(key, id.ts.body)>` with the key from `whsec_BASE64`
/// ([`sign::standard_webhooks`]).
pub fn standard_webhooks_signature(secret: &str, id: &str, ts: i64, body: &str) -> String {
    sign::standard_webhooks(secret, id, &ts.to_string(), body.as_bytes())
}

/// A self-signed X.509 certificate, PEM, for the RSA key `key_pem` (PKCS#8 PEM): subject
/// CN `cn`, DNS subject alternative names `sans` (none: no extension), valid from
/// `not_before_s` to `not_after_s` (Unix seconds), signed SHA256withRSA. Test signing
/// certificates (SNS) are built here from the clock, by a small DER writer independent
/// of the crate's certificate parser.
pub fn self_signed_cert_pem(
    key_pem: &str,
    cn: &str,
    sans: &[&str],
    not_before_s: i64,
    not_after_s: i64,
) -> String {
    use base64::Engine;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::Signer;
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend([0x81, n as u8]);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    let seq = |parts: &[Vec<u8>]| tlv(0x30, &parts.concat());
    let time = |s: i64| {
        // "YYYY-MM-DDTHH:MM:SS.mmmZ" -> UTCTime before 2050, GeneralizedTime after.
        let iso = dndgate::time::format_rfc3339_ms(s * 1000);
        let digits: String = iso[..19].chars().filter(char::is_ascii_digit).collect();
        let year: i64 = digits[..4].parse().unwrap();
        if (1950..2050).contains(&year) {
            tlv(0x17, format!("{}Z", &digits[2..]).as_bytes())
        } else {
            tlv(0x18, format!("{digits}Z").as_bytes())
        }
    };
    let sha256_rsa = seq(&[
        tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        ),
        tlv(0x05, &[]),
    ]);
    let name = seq(&[tlv(
        0x31,
        &seq(&[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())]),
    )]);
    let key = rsa::PrivateKey::from_pkcs8_pem(key_pem).unwrap();
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut tbs_parts = vec![
        tlv(0xa0, &tlv(0x02, &[0x02])),
        tlv(0x02, &(not_before_s as u64 | 1 << 62).to_be_bytes()),
        sha256_rsa.clone(),
        name.clone(),
        seq(&[time(not_before_s), time(not_after_s)]),
        name,
        spki,
    ];
    if !sans.is_empty() {
        let names: Vec<Vec<u8>> = sans.iter().map(|n| tlv(0x82, n.as_bytes())).collect();
        let san = seq(&[tlv(0x06, &[0x55, 0x1d, 0x11]), tlv(0x04, &seq(&names))]);
        tbs_parts.push(tlv(0xa3, &seq(&[san])));
    }
    let tbs = seq(&tbs_parts);
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let signature: Box<[u8]> = signer.sign(&tbs).into();
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    let der = seq(&[tbs, sha256_rsa, tlv(0x03, &bits)]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
