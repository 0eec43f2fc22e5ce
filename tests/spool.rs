//! The durable spool (SPEC section 8): Redis down -> webhooks still get 200 and land in
//! the spool; Redis back -> the replayer applies them in order, each once; a crashed
//! gateway's spool is replayed at the next start; a torn tail is dropped; with no
//! spool and no Redis, 503 and nothing recorded.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dndgate::event::Channel;
use dndgate::spool::{SPOOL_FILE, Spool, SpooledChange};

/// A redis-server with append-only persistence that can be killed and started again
/// on the same port and data directory.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).as_deref() == Some("PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a signal (`STOP`, `CONT`) to the server: a stopped Redis keeps its
    /// connections open and answers nothing, like one stuck on a slow disk.
    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Audit entries of tenant acme, as (event_id, scope, action) in stream order per
    /// shard.
    fn audit(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for key in dndgate::store::audit_keys("acme") {
            let text = self.cli(&["XRANGE", &key, "-", "+"]).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let value = |from: usize, name: &str| {
                lines[from..]
                    .windows(2)
                    .find(|w| w[0] == name)
                    .map(|w| w[1].to_string())
                    .unwrap_or_default()
            };
            for (i, line) in lines.iter().enumerate() {
                if *line == "tenant" {
                    out.push((value(i, "event_id"), value(i, "scope"), value(i, "action")));
                }
            }
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway in this process with a spool.
struct Gw {
    addr: std::net::SocketAddr,
    /// The admin listener: `/metrics`, the detailed `/readyz`.
    admin: std::net::SocketAddr,
    spool: Option<Spool>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_gateway(redis_url: &str, spool: Option<Spool>, replay: bool) -> Gw {
    let config = dndgate::config::Config::parse(&config_text(redis_url), Path::new("."))
        .unwrap_or_else(|p| panic!("{p:?}"));
    let config = Arc::new(config);
    let store = dndgate::store::Store::open(&config.redis.url(), config.store_options()).unwrap();
    if replay && let Some(s) = &spool {
        s.start_replayer(store.clone(), config.clone());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let gateway = dndgate::pipeline::Gateway {
        config,
        store,
        fetch: Arc::new(dndgate::fetch::NoFetch),
        spool: spool.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(dndgate::server::run_with_admin(
        gateway,
        listener,
        Some(admin_listener),
        async {
            let _ = stopped.await;
        },
    ));
    Gw {
        addr,
        admin,
        spool,
        stop,
        task,
    }
}

/// POST a signed Twilio inbound SMS to the gateway at `addr`.
async fn post_sms(addr: std::net::SocketAddr, sid: &str, from: &str, body: &str) -> HttpResponse {
    post_twilio(
        addr,
        "/webhooks/twilio/acme",
        TWILIO_TOKEN,
        &inbound_sms(sid, from, body),
    )
    .await
}

impl Gw {
    async fn sms(&self, sid: &str, from: &str, body: &str) -> HttpResponse {
        post_sms(self.addr, sid, from, body).await
    }

    /// Stop serving; with `crash`, the spool is dropped without its shutdown (as a
    /// SIGKILL would leave it).
    async fn stop(self, crash: bool) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        if let Some(s) = self.spool
            && !crash
        {
            s.shutdown().await;
        }
    }
}

fn sid(n: usize) -> String {
    format!("SM{n:032}")
}

fn phone(n: usize) -> String {
    format!("+1555100{n:04}")
}

/// The sms record state (`permanent`, `cleared`, ...) of a phone, or "" when none.
async fn sms_state(redis: &Redis, number: &str) -> String {
    let v = dndgate::lookup::Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Sms, number)
        .await
        .unwrap();
    match v.record {
        Some(r) => r.state.as_str().to_string(),
        None => String::new(),
    }
}

/// How many audit entries each event id has, on the sms scope.
fn sms_audit_counts(redis: &Redis) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (id, scope, _) in redis.audit() {
        if scope == "sms" {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn redis_down_webhooks_are_spooled_then_replayed_in_order_once() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;

    // Live: straight to Redis, nothing spooled.
    let r = gw.sms(&sid(0), &phone(0), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(spool.stats().appended, 0);

    redis.kill();
    for n in 1..=20 {
        let r = gw.sms(&sid(n), &phone(n), "STOP").await;
        assert_eq!(r.status, 200, "event {n}: {}", r.body);
        assert!(r.body.contains("<Response/>"), "{}", r.body);
    }
    // One address: STOP then START, both spooled; the START must end up on top.
    let r = gw.sms(&sid(21), &phone(21), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = gw.sms(&sid(22), &phone(21), "START").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let stats = spool.stats();
    assert_eq!(stats.records, 22, "{stats:?}");
    assert_eq!(stats.appended, 22, "{stats:?}");
    assert!(stats.bytes > 0);
    let on_disk = std::fs::metadata(dir.path().join(SPOOL_FILE))
        .unwrap()
        .len();
    assert_eq!(on_disk, stats.bytes);
    let ready = http(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("spool: records=22 "), "{}", ready.body);

    redis.restart();
    // Redis came back empty of these: nothing was written while it was down. (A
    // lookup would fail closed now: acme has changes in the spool.)
    assert_eq!(sms_state_raw(&redis, &phone(1)), None);
    assert!(
        spool.drained(Duration::from_secs(20)).await,
        "{:?}",
        spool.stats()
    );
    for n in 0..=20 {
        assert_eq!(sms_state(&redis, &phone(n)).await, "permanent", "phone {n}");
    }
    assert_eq!(
        sms_state(&redis, &phone(21)).await,
        "cleared",
        "START after STOP"
    );
    let counts = sms_audit_counts(&redis);
    for n in 0..=22 {
        assert_eq!(counts.get(&sid(n)), Some(&1), "event {n}: {counts:?}");
    }
    assert_eq!(counts.len(), 23, "{counts:?}");
    // The START's audit entry comes after the STOP's in their shard.
    let audit = redis.audit();
    let stop_at = audit.iter().position(|(id, _, _)| *id == sid(21)).unwrap();
    let start_at = audit.iter().position(|(id, _, _)| *id == sid(22)).unwrap();
    assert!(stop_at < start_at, "{audit:?}");

    // Drained: the file is emptied, and new events go to Redis directly again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(dir.path().join(SPOOL_FILE))
        .unwrap()
        .len()
        > 0
    {
        assert!(Instant::now() < deadline, "spool file not emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = gw.sms(&sid(23), &phone(23), "STOP").await;
    assert_eq!(r.status, 200);
    assert_eq!(spool.stats().appended, 22);
    assert_eq!(sms_state(&redis, &phone(23)).await, "permanent");

    // A provider retrying a replayed event is a duplicate: no second entry.
    let r = gw.sms(&sid(5), &phone(5), "STOP").await;
    assert_eq!(r.status, 200);
    assert_eq!(sms_audit_counts(&redis).get(&sid(5)), Some(&1));
    let ready = http(gw.admin, "GET", "/readyz", &[], b"").await;
    assert!(
        ready
            .body
            .contains("spool: records=0 bytes=0 oldest_age_ms=0"),
        "{}",
        ready.body
    );
    gw.stop(false).await;
}

#[tokio::test]
async fn a_crashed_gateways_spool_is_replayed_at_the_next_start() {
    let mut redis = Redis::start();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    let gw = start_gateway(&redis.url(), Some(Spool::open(dir.path()).unwrap()), false).await;
    for n in 0..10 {
        let r = gw.sms(&sid(n), &phone(n), "STOP").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    gw.stop(true).await;

    redis.restart();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.stats().records, 10);
    assert!(spool.stats().oldest_age_ms.is_some());
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    assert!(
        spool.drained(Duration::from_secs(20)).await,
        "{:?}",
        spool.stats()
    );
    let counts = sms_audit_counts(&redis);
    for n in 0..10 {
        assert_eq!(sms_state(&redis, &phone(n)).await, "permanent", "phone {n}");
        assert_eq!(counts.get(&sid(n)), Some(&1), "{counts:?}");
    }
    gw.stop(false).await;

    // A third start finds nothing left to replay.
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.stats().records, 0);
    assert_eq!(spool.stats().bytes, 0);
}

#[tokio::test]
async fn the_cursor_survives_a_restart_and_replay_after_it_applies_nothing_twice() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    // Three changes straight into the spool.
    let config =
        dndgate::config::Config::parse(&config_text(&redis.url()), Path::new(".")).unwrap();
    let mut changes = Vec::new();
    for n in 0..3 {
        let address = dndgate::address::Address::parse(Channel::Sms, &phone(n)).unwrap();
        let req = dndgate::state::Request {
            address: &address,
            scopes: vec![dndgate::event::Scope::Channel(Channel::Sms)],
            action: dndgate::store::StoreAction::BlockPermanent,
            reason: "keyword:STOP",
            provider: dndgate::providers::Provider::Twilio.source(),
            event_id: &sid(n),
            event_ms: 1_700_000_000_000 + n as i64,
            received_ms: 1_700_000_000_000 + n as i64,
            now_ms: 1_700_000_000_000 + n as i64,
            actor: None,
            evidence: None,
        };
        changes.push(SpooledChange::new("acme", &req));
    }
    let mut last = 0;
    for c in &changes {
        last = spool.append(c).unwrap();
    }
    spool.durable(1, last).await.unwrap();
    let store = dndgate::store::Store::open(&redis.url(), config.store_options()).unwrap();
    spool.start_replayer(store, Arc::new(config));
    assert!(spool.drained(Duration::from_secs(10)).await);
    spool.shutdown().await;
    // Reopened: nothing to replay (the file was emptied, or the cursor is at its end).
    let again = Spool::open(dir.path()).unwrap();
    assert_eq!(again.stats().records, 0);
    let counts = sms_audit_counts(&redis);
    assert_eq!(counts.values().sum::<usize>(), 3, "{counts:?}");
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_rest_replayed() {
    let mut redis = Redis::start();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    let gw = start_gateway(&redis.url(), Some(Spool::open(dir.path()).unwrap()), false).await;
    for n in 0..3 {
        let r = gw.sms(&sid(n), &phone(n), "STOP").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    gw.stop(true).await;
    let file = dir.path().join(SPOOL_FILE);
    let intact = std::fs::metadata(&file).unwrap().len();
    // A crash in the middle of the next write: the start of a fourth record.
    let address = dndgate::address::Address::parse(Channel::Sms, &phone(3)).unwrap();
    let torn = dndgate::spool::encode(&SpooledChange::new(
        "acme",
        &dndgate::state::Request {
            address: &address,
            scopes: vec![dndgate::event::Scope::Channel(Channel::Sms)],
            action: dndgate::store::StoreAction::BlockPermanent,
            reason: "keyword:STOP",
            provider: dndgate::providers::Provider::Twilio.source(),
            event_id: &sid(3),
            event_ms: 1,
            received_ms: 1,
            now_ms: 1,
            actor: None,
            evidence: None,
        },
    ));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(&torn[..torn.len() - 5]).unwrap();
    }
    redis.restart();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.stats().records, 3);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), intact);
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    assert!(spool.drained(Duration::from_secs(20)).await);
    for n in 0..3 {
        assert_eq!(sms_state(&redis, &phone(n)).await, "permanent");
    }
    assert_eq!(
        sms_state(&redis, &phone(3)).await,
        "",
        "the torn record was applied"
    );
    gw.stop(false).await;

    // A complete last record with a flipped byte is dropped too.
    let mut bytes = std::fs::read(&file).unwrap();
    let before = bytes.len();
    bytes.extend_from_slice(&torn);
    let flip = bytes.len() - 3;
    bytes[flip] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.stats().records, 0);
    assert_eq!(std::fs::metadata(&file).unwrap().len() as usize, before);
}

#[tokio::test]
async fn no_spool_and_no_redis_is_503_and_nothing_is_recorded() {
    let mut redis = Redis::start();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    // The spool's directory is a file: the spool cannot be opened.
    let not_a_dir = dir.path().join("spool");
    std::fs::write(&not_a_dir, b"a file").unwrap();
    let err = Spool::open(&not_a_dir)
        .err()
        .expect("a file is not a spool directory");
    assert!(err.to_string().contains("spool"), "{err}");

    let gw = start_gateway(&redis.url(), None, false).await;
    let r = gw.sms(&sid(1), &phone(1), "STOP").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("redis"), "{}", r.body);
    let ready = http(gw.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    gw.stop(false).await;

    redis.restart();
    assert_eq!(sms_state(&redis, &phone(1)).await, "");
    assert!(redis.audit().is_empty());
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"a file");
}

#[tokio::test]
async fn the_serve_command_starts_without_a_usable_spool_and_answers_503_when_redis_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("spool-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let port = free_port();
    let redis_port = free_port(); // nothing listens there
    let config = config_text(&format!("redis://127.0.0.1:{redis_port}/")).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nspool_dir = \"spool-file\""),
    );
    let path = dir.path().join("dndgate.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post_sms(addr, &sid(9), &phone(9), "STOP").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // SIGTERM: exit 0, and the log named the unusable spool.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(out.0.success(), "{:?} {}", out.0, out.1);
    assert!(out.1.contains("no spool"), "{}", out.1);
}

/// Start `dndgate serve` with `config` under a file-size limit of `limit_kib` KiB
/// (SIGXFSZ ignored, so a write past it fails with EFBIG: a full disk, in effect).
fn serve_with_file_size_limit(config: &Path, limit_kib: u32) -> Child {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" serve --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_dndgate"))
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_full_spool_with_redis_down_is_503_and_only_acknowledged_events_are_applied() {
    let mut redis = Redis::start();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = with_admin_listen(&config_text(&redis.url()), admin).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nspool_dir = \"spool\""),
    );
    let path = dir.path().join("dndgate.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = serve_with_file_size_limit(&path, 2);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for n in 0..30 {
        let r = post_sms(addr, &sid(n), &phone(n), "STOP").await;
        match r.status {
            200 => acked.push(n),
            503 => {
                assert!(r.header("retry-after").is_some());
                assert!(r.body.contains("spool"), "{}", r.body);
                refused.push(n);
            }
            other => panic!("event {n}: {other} {}", r.body),
        }
    }
    assert!(!acked.is_empty(), "nothing fitted in the spool");
    assert!(!refused.is_empty(), "the spool never filled: {acked:?}");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http(admin, "GET", "/readyz", &[], b"").await;
        if ready.body.contains("redis: ok") && ready.body.contains("spool: records=0 ") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", ready.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = sms_audit_counts(&redis);
    for n in &acked {
        assert_eq!(
            sms_state(&redis, &phone(*n)).await,
            "permanent",
            "acked {n}"
        );
        assert_eq!(counts.get(&sid(*n)), Some(&1), "acked {n}");
    }
    for n in &refused {
        assert_eq!(sms_state(&redis, &phone(*n)).await, "", "refused {n}");
        assert_eq!(counts.get(&sid(*n)), None, "refused {n}");
    }
    // Redis is back and the spool drained: events go to Redis again.
    let r = post_sms(addr, &sid(99), &phone(99), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn redis_slower_than_the_timeout_sends_events_to_the_spool() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    let r = gw.sms(&sid(0), &phone(0), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    redis.signal("STOP");
    let started = Instant::now();
    let r = gw.sms(&sid(1), &phone(1), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The test configuration's redis_timeout is 1s: the answer came after it, not
    // after Redis.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(spool.stats().appended, 1);
    redis.signal("CONT");
    assert!(
        spool.drained(Duration::from_secs(20)).await,
        "{:?}",
        spool.stats()
    );
    assert_eq!(sms_state(&redis, &phone(1)).await, "permanent");
    assert_eq!(sms_audit_counts(&redis).get(&sid(1)), Some(&1));
    gw.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_fsyncs_and_all_get_their_answer() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    redis.kill();
    // The first spooled event, alone: afterwards every event goes straight to the spool.
    assert_eq!(gw.sms(&sid(0), &phone(0), "STOP").await.status, 200);
    let addr = gw.addr;
    // 16 clients, 40 events each, one after another: waiters are woken while the
    // writer publishes the next batch.
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..16 {
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for k in 0..40 {
                let n = 1 + client * 40 + k;
                statuses.push((n, post_sms(addr, &sid(n), &phone(n), "STOP").await.status));
            }
            statuses
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut statuses = Vec::new();
        while let Some(done) = tasks.join_next().await {
            statuses.extend(done.unwrap());
        }
        statuses
    })
    .await
    .expect("every request answered (no waiter left behind)");
    assert_eq!(all.len(), 640);
    assert!(all.iter().all(|(_, s)| *s == 200), "{all:?}");
    let stats = spool.stats();
    assert_eq!(stats.appended, 641, "{stats:?}");
    assert!(
        stats.fsyncs < stats.appended,
        "no fsync was shared: {stats:?}"
    );

    redis.restart();
    assert!(
        spool.drained(Duration::from_secs(30)).await,
        "{:?}",
        spool.stats()
    );
    let counts = sms_audit_counts(&redis);
    assert_eq!(counts.len(), 641);
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
    gw.stop(false).await;
}

#[tokio::test]
async fn a_one_click_unsubscribe_queues_behind_the_spool() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    // No replayer yet: what is spooled stays there until the test starts one.
    let gw = start_gateway(&redis.url(), Some(spool.clone()), false).await;
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/links",
        &[("Authorization", &auth)],
        br#"{"address":"ann@example.com","scope":"email"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Something waits in the spool (a webhook that came while Redis was away).
    let address = dndgate::address::Address::parse(Channel::Sms, &phone(1)).unwrap();
    let seq = spool
        .append(&SpooledChange::new(
            "acme",
            &dndgate::state::Request {
                address: &address,
                scopes: vec![dndgate::event::Scope::Channel(Channel::Sms)],
                action: dndgate::store::StoreAction::BlockPermanent,
                reason: "keyword:STOP",
                provider: dndgate::providers::Provider::Twilio.source(),
                event_id: &sid(1),
                event_ms: 1_700_000_000_000,
                received_ms: 1_700_000_000_000,
                now_ms: 1_700_000_000_000,
                actor: None,
                evidence: None,
            },
        ))
        .unwrap();
    spool.durable(seq, seq).await.unwrap();

    let r = http(
        gw.addr,
        "POST",
        &format!("/u/{token}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        spool.stats().appended,
        2,
        "the click queued behind the spool"
    );
    let lookup = dndgate::lookup::Lookup::connect(&redis.url()).unwrap();
    let email = || lookup.check("acme", Channel::Email, "ann@example.com");
    assert!(
        !email().await.unwrap().blocked,
        "applied ahead of the spool"
    );

    let config =
        dndgate::config::Config::parse(&config_text(&redis.url()), Path::new(".")).unwrap();
    let store = dndgate::store::Store::open(&redis.url(), config.store_options()).unwrap();
    spool.start_replayer(store, Arc::new(config));
    assert!(spool.drained(Duration::from_secs(20)).await);
    assert!(email().await.unwrap().blocked);
    assert_eq!(sms_state(&redis, &phone(1)).await, "permanent");
    gw.stop(false).await;
}

/// The shard marker a sender reading Redis directly must check: `dnd:{TENANT:S}:spooled`,
/// `S` the first hex digit of the SHA-1 of the normalised address (README, "The Redis
/// contract"), computed here independently of the crate.
fn spooled_marker(tenant: &str, address: &str) -> String {
    use sha1::Digest;
    let h = hex::encode(sha1::Sha1::digest(address.as_bytes()));
    format!("dnd:{{{tenant}:{}}}:spooled", &h[..1])
}

async fn api_lookup(
    addr: std::net::SocketAddr,
    tenant: &str,
    token: &str,
    number: &str,
) -> HttpResponse {
    http(
        addr,
        "GET",
        &format!(
            "/v1/tenants/{tenant}/dnd/sms/{}",
            number.replace('+', "%2B")
        ),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
    .await
}

#[tokio::test]
async fn item_05_lookups_fail_closed_while_a_tenants_changes_wait_in_the_spool() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool")).unwrap();
    // The replay is held back: Redis returns, and the STOP still waits in the spool.
    spool.hold_replay(true);
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, config_text(&redis.url())).unwrap();
    let cli_check = |number: &str| {
        dndgate(&[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--tenant",
            "acme",
            "--channel",
            "sms",
            number,
        ])
    };
    let number = phone(5);
    let marker = spooled_marker("acme", &number);

    redis.kill();
    let r = gw.sms(&sid(5), &number, "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(spool.stats().records, 1);
    redis.restart();

    // Redis answers the gateway again (another tenant's lookup works) ...
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api_lookup(gw.addr, "globex", GLOBEX_API_TOKEN, &number).await;
        if r.status == 200 {
            assert!(r.body.contains("\"blocked\":false"), "{}", r.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis never came back: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... but acme's acknowledged STOP is not applied yet: every lookup for acme fails
    // closed rather than answer "allowed".
    let r = api_lookup(gw.addr, "acme", API_TOKEN, &number).await;
    assert_eq!(r.status, 503, "single lookup while spooled: {}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("spool"), "{}", r.body);
    let auth = format!("Bearer {API_TOKEN}");
    let body = format!(
        r#"{{"channel":"sms","addresses":["{}","{}"]}}"#,
        number,
        phone(6)
    );
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/dnd/check",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 503, "batch check while spooled: {}", r.body);

    // Direct readers: the marker is written as soon as Redis takes it, before the
    // replay applies anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.cli(&["EXISTS", &marker]).as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "no marker {marker}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sms_state_raw(&redis, &number), None, "nothing applied yet");
    // The Rust API (its own connection, no spool in sight) and the CLI read it.
    let lookup = dndgate::lookup::Lookup::connect(&redis.url()).unwrap();
    let err = lookup
        .check("acme", Channel::Sms, &number)
        .await
        .expect_err("the Rust API must fail closed while acme has spooled changes");
    assert!(err.to_string().contains("spool"), "{err}");
    assert!(
        lookup
            .check_many("acme", Channel::Sms, &[number.as_str()])
            .await
            .is_err()
    );
    assert!(lookup.check("globex", Channel::Sms, &number).await.is_ok());
    let (code, stdout, stderr) = cli_check(&number);
    assert_eq!(code, 2, "{stdout} {stderr}");
    assert!(stderr.contains("spool"), "{stderr}");

    // The replay goes on: applied, the marker removed, lookups answer again.
    spool.hold_replay(false);
    assert!(
        spool.drained(Duration::from_secs(20)).await,
        "{:?}",
        spool.stats()
    );
    // Drained means the markers are gone too: lookups answer from Redis at once.
    assert_eq!(redis.cli(&["EXISTS", &marker]).as_deref(), Some("0"));
    assert!(redis.cli(&["KEYS", "dnd:*:spooled"]).unwrap().is_empty());
    let r = api_lookup(gw.addr, "acme", API_TOKEN, &number).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"blocked\":true"), "{}", r.body);
    assert!(
        lookup
            .check("acme", Channel::Sms, &number)
            .await
            .unwrap()
            .blocked
    );
    let (code, stdout, stderr) = cli_check(&number);
    assert_eq!(code, 1, "{stdout} {stderr}");
    gw.stop(false).await;
}

/// A Redis that loses the spool marker while the tenant's changes still wait (a
/// restart that lost its last writes, a failover to a replica that never got them, a
/// FLUSHALL) gets it back from the replayer within a few seconds: direct readers never
/// stay on "allowed" for the rest of the replay.
#[tokio::test]
async fn item_05_a_spool_marker_that_redis_lost_is_set_again_while_changes_wait() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool")).unwrap();
    // A slow replay, held: the STOP waits in the spool while Redis answers.
    spool.hold_replay(true);
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, config_text(&redis.url())).unwrap();
    let number = phone(7);
    let marker = spooled_marker("acme", &number);
    async fn wait_marker(redis: &Redis, marker: &str, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["EXISTS", marker]).as_deref() != Some("1") {
            assert!(Instant::now() < deadline, "no marker {marker} {why}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    redis.kill();
    let r = gw.sms(&sid(7), &number, "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    redis.restart();
    wait_marker(&redis, &marker, "after redis came back").await;

    // Redis loses everything it had, the marker with it, and restarts.
    assert_eq!(redis.cli(&["FLUSHALL"]).as_deref(), Some("OK"));
    redis.kill();
    redis.restart();
    wait_marker(&redis, &marker, "after redis lost it").await;
    let (code, stdout, stderr) = dndgate(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        "acme",
        "--channel",
        "sms",
        &number,
    ]);
    assert_eq!(code, 2, "the CLI must fail closed: {stdout} {stderr}");

    spool.hold_replay(false);
    assert!(spool.drained(Duration::from_secs(20)).await);
    assert_eq!(sms_state(&redis, &number).await, "permanent");
    gw.stop(false).await;
}

/// The raw sms record of a phone, read with redis-cli (no lookup API).
fn sms_state_raw(redis: &Redis, number: &str) -> Option<String> {
    sms_state_raw_for(redis, "acme", number)
}

/// The raw sms record value of a tenant's phone, read as a direct reader would.
fn sms_state_raw_for(redis: &Redis, tenant: &str, number: &str) -> Option<String> {
    use sha1::Digest;
    let h = hex::encode(sha1::Sha1::digest(number.as_bytes()));
    let key = format!("dnd:{{{tenant}:{}}}:{}", &h[..1], &h[1..4]);
    redis
        .cli(&["HGET", &key, &format!("sms:{number}")])
        .filter(|v| !v.is_empty())
}

#[tokio::test]
async fn item_06_the_spool_is_capped_and_refuses_past_its_caps_without_dropping_anything() {
    use dndgate::config::SpoolLimits;
    // The caps come from `[spool]`; a tenant's default to half of the overall ones.
    let text = format!(
        "{}\n[spool]\nmax_records = 8\nmax_bytes = 1048576\ntenant_max_records = 5\n",
        config_text("redis://127.0.0.1:1/")
    );
    let config = dndgate::config::Config::parse(&text, Path::new(".")).unwrap();
    let limits = SpoolLimits {
        max_bytes: 1_048_576,
        max_records: 8,
        tenant_max_bytes: 524_288,
        tenant_max_records: 5,
    };
    assert_eq!(config.spool_limits, limits);
    let bad = format!(
        "{}\n[spool]\nmax_records = 4\ntenant_max_records = 5\n",
        config_text("redis://127.0.0.1:1/")
    );
    let problems = dndgate::config::Config::parse(&bad, Path::new(".")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("spool.tenant_max_records")),
        "{problems:?}"
    );

    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open_with_limits(dir.path(), limits).unwrap();
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;
    redis.kill();
    let globex = |n: usize| {
        let params: Vec<(String, String)> = inbound_sms(&sid(n), &phone(n), "STOP")
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "AccountSid" {
                    "AC11111111111111111111111111111111"
                } else {
                    v
                };
                (k.to_string(), v.to_string())
            })
            .collect();
        params
    };
    let post_globex = |n: usize| {
        let params = globex(n);
        async move {
            let p: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            post_twilio(
                gw.addr,
                "/webhooks/twilio/globex",
                "globex-twilio-token",
                &p,
            )
            .await
        }
    };

    // acme: five changes fit its cap, the sixth is refused with 503 + Retry-After.
    let mut acked = Vec::new();
    for n in 0..5 {
        let r = gw.sms(&sid(n), &phone(n), "STOP").await;
        assert_eq!(r.status, 200, "acme {n}: {}", r.body);
        acked.push(n);
    }
    let r = gw.sms(&sid(5), &phone(5), "STOP").await;
    assert_eq!(r.status, 503, "acme past its cap: {}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("spool is full"), "{}", r.body);
    // globex has its own cap: three more fit, then the spool as a whole is full (8).
    for n in 10..13 {
        let r = post_globex(n).await;
        assert_eq!(r.status, 200, "globex {n}: {}", r.body);
        acked.push(n);
    }
    let r = post_globex(13).await;
    assert_eq!(r.status, 503, "past the overall cap: {}", r.body);
    assert!(r.header("retry-after").is_some());
    let stats = spool.stats();
    assert_eq!(
        (stats.records, stats.refused, stats.full),
        (8, 2, true),
        "{stats:?}"
    );
    // Readiness says so, and the metric counts the refusals by cap.
    let ready = http(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("spool: full"), "{}", ready.body);
    assert!(ready.body.contains("max_records=8"), "{}", ready.body);
    let metrics = dndgate::telemetry::scrape(false, Some(&stats));
    assert!(
        metrics.contains("dndgate_spool_refused_total{cap=\"tenant_records\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dndgate_spool_refused_total{cap=\"records\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("\ndndgate_spool_full 1\n"), "{metrics}");

    // Redis back: every acknowledged change is applied, the refused ones are not; the
    // providers' retries of the refused ones then succeed.
    redis.restart();
    assert!(
        spool.drained(Duration::from_secs(20)).await,
        "{:?}",
        spool.stats()
    );
    for n in &acked {
        let owner = if *n < 10 { "acme" } else { "globex" };
        let v = dndgate::lookup::Lookup::connect(&redis.url())
            .unwrap()
            .check(owner, Channel::Sms, &phone(*n))
            .await
            .unwrap();
        assert!(v.blocked, "acknowledged {owner} {n} lost");
    }
    assert_eq!(sms_state_raw(&redis, &phone(5)), None);
    assert_eq!(gw.sms(&sid(5), &phone(5), "STOP").await.status, 200);
    assert_eq!(post_globex(13).await.status, 200);
    assert_eq!(sms_state(&redis, &phone(5)).await, "permanent");
    assert!(!spool.stats().full);
    gw.stop(false).await;

    // Bytes: a tenant's byte cap, through the spool itself.
    let dir = tempfile::tempdir().unwrap();
    let address = dndgate::address::Address::parse(Channel::Sms, &phone(1)).unwrap();
    let change = |n: usize| {
        SpooledChange::new(
            "acme",
            &dndgate::state::Request {
                address: &address,
                scopes: vec![dndgate::event::Scope::Channel(Channel::Sms)],
                action: dndgate::store::StoreAction::BlockPermanent,
                reason: "keyword:STOP",
                provider: dndgate::providers::Provider::Twilio.source(),
                event_id: &sid(n),
                event_ms: 1,
                received_ms: 1,
                now_ms: 1,
                actor: None,
                evidence: None,
            },
        )
    };
    let size = dndgate::spool::encode(&change(1)).len() as u64;
    let spool = Spool::open_with_limits(
        dir.path(),
        SpoolLimits {
            max_bytes: 100 * size,
            max_records: 100,
            tenant_max_bytes: 2 * size,
            tenant_max_records: 100,
        },
    )
    .unwrap();
    let last = spool.append(&change(1)).unwrap();
    let last = spool.append(&change(2)).unwrap().max(last);
    let err = spool
        .append(&change(3))
        .expect_err("past the tenant's byte cap");
    assert!(err.to_string().contains("tenant_max_bytes"), "{err}");
    spool.durable(1, last).await.unwrap();
    assert_eq!(spool.stats().records, 2);
    // Reopened: what was accepted is still there (nothing accepted is dropped).
    drop(spool);
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.stats().records, 2);
}

/// Issue 12 item 5, the replay's window: while the spool replays, a change of a tenant
/// that had nothing spooled queues behind it; its tenant's marker must be in Redis
/// before the 2xx, not only at the replayer's next group, or a sender reading Redis
/// directly sees "allowed" for an acknowledged STOP meanwhile.
#[tokio::test]
async fn item_05_a_change_queued_behind_the_spool_is_marked_before_its_answer() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool")).unwrap();
    spool.hold_replay(true);
    let gw = start_gateway(&redis.url(), Some(spool.clone()), true).await;

    // acme's STOP waits in the spool; Redis is back, the replay held.
    redis.kill();
    let r = gw.sms(&sid(1), &phone(1), "STOP").await;
    assert_eq!(r.status, 200, "{}", r.body);
    redis.restart();
    let acme_marker = spooled_marker("acme", &phone(1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis.cli(&["EXISTS", &acme_marker]).as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "no marker {acme_marker}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // globex had nothing spooled: its STOP queues behind acme's, and its marker is
    // there when the 200 arrives.
    let (number, message_sid) = (phone(2), sid(2));
    let params: Vec<(&str, &str)> = inbound_sms(&message_sid, &number, "STOP")
        .into_iter()
        .map(|(k, v)| {
            if k == "AccountSid" {
                (k, "AC11111111111111111111111111111111")
            } else {
                (k, v)
            }
        })
        .collect();
    let globex_marker = spooled_marker("globex", &number);
    for _ in 0..20 {
        let fields: Vec<(&str, &str)> = params.clone();
        let r = post_twilio(
            gw.addr,
            "/webhooks/twilio/globex",
            "globex-twilio-token",
            &fields,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            redis.cli(&["EXISTS", &globex_marker]).as_deref(),
            Some("1"),
            "acknowledged and queued, but a direct reader sees no marker"
        );
    }
    assert_eq!(sms_state_raw_for(&redis, "globex", &number), None);

    // Released: both applied, both markers gone.
    spool.hold_replay(false);
    assert!(spool.drained(Duration::from_secs(20)).await);
    assert_eq!(redis.cli(&["EXISTS", &globex_marker]).as_deref(), Some("0"));
    assert_eq!(redis.cli(&["EXISTS", &acme_marker]).as_deref(), Some("0"));
    assert!(sms_state_raw_for(&redis, "globex", &number).is_some_and(|v| v.starts_with("P|")));
    gw.stop(false).await;
}
