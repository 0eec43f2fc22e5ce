//! SPEC section 8: at start, `dndgate serve` checks Redis persistence and eviction. A
//! Redis without appendonly or with an evicting maxmemory-policy gets one loud warning
//! line per setting (naming the fix); `--strict` refuses to start. Where CONFIG is
//! disabled (managed Redis services), the check reads INFO instead. Managed mode sets
//! both itself and passes `--strict`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn write_config(dir: &tempfile::TempDir, addr: std::net::SocketAddr, redis_url: &str) -> PathBuf {
    let path = dir.path().join("dndgate.toml");
    let text =
        config_text(redis_url).replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
    std::fs::write(&path, text).unwrap();
    path
}

fn addr() -> std::net::SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

const APPENDONLY_WARNING: &str = "redis persistence is off (appendonly no";
const EVICTION_WARNING: &str = "redis maxmemory-policy is allkeys-lru";

#[tokio::test]
async fn unsafe_redis_gets_a_warning_and_strict_refuses() {
    let redis = RedisServer::start();
    // As `redis-server --appendonly no --save "" --maxmemory-policy allkeys-lru`.
    redis.cli_each(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    assert_eq!(
        redis.cli(&["CONFIG", "GET", "appendonly"]).unwrap(),
        "appendonly\nno"
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = addr();
    let config = write_config(&dir, addr, &redis.url());

    // Without --strict: it serves, and the log names each setting and its fix.
    let mut serve = ServeProcess::start(&config, &[]);
    serve
        .wait_ready(addr)
        .await
        .expect("serves without --strict");
    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains(APPENDONLY_WARNING) && l.contains("set appendonly yes")),
        "{log}"
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains(EVICTION_WARNING) && l.contains("set maxmemory-policy noeviction")),
        "{log}"
    );

    // With --strict: exit 2, a one-line reason per setting, nothing listening.
    let (code, _, stderr) = dndgate(&["serve", "--config", config.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains(APPENDONLY_WARNING), "{stderr}");
    assert!(stderr.contains(EVICTION_WARNING), "{stderr}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    // Only the eviction policy wrong: strict still refuses, naming only that.
    redis.cli_each(&["CONFIG", "SET", "appendonly", "yes"]);
    let (code, _, stderr) = dndgate(&["serve", "--config", config.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(EVICTION_WARNING), "{stderr}");
    assert!(!stderr.contains("appendonly"), "{stderr}");
}

#[tokio::test]
async fn safe_redis_starts_strict_without_warnings() {
    let redis = RedisServer::start();
    redis.cli_each(&["CONFIG", "SET", "appendonly", "yes"]);
    redis.cli_each(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let dir = tempfile::tempdir().unwrap();
    let addr = addr();
    let config = write_config(&dir, addr, &redis.url());
    let mut serve = ServeProcess::start(&config, &["--strict"]);
    serve
        .wait_ready(addr)
        .await
        .expect("a safe redis passes --strict");
    assert_eq!(http(addr, "GET", "/readyz", &[], b"").await.status, 200);
    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("redis persistence and eviction checked"),
        "{log}"
    );
    assert!(!log.contains(" WARN "), "{log}");
}

/// A redis-server started with chosen settings.
struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server with CONFIG disabled, as managed Redis services do.
fn start_without_config(args: &[&str]) -> OwnRedis {
    let mut all = vec!["--rename-command", "CONFIG", ""];
    all.extend_from_slice(args);
    start_redis_on(free_port(), &all)
}

fn start_redis_on(port: u16, args: &[&str]) -> OwnRedis {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let pong = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
            .unwrap_or(false);
        if pong {
            return OwnRedis {
                child,
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server {args:?} did not start");
}

#[tokio::test]
async fn without_config_the_check_reads_info() {
    let unsafe_redis =
        start_without_config(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let url = format!("redis://127.0.0.1:{}/", unsafe_redis.port);
    // CONFIG really is gone.
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &unsafe_redis.port.to_string(),
            "CONFIG",
            "GET",
            "appendonly",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown command"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, addr(), &url);
    let (code, _, stderr) = dndgate(&["serve", "--config", config.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(APPENDONLY_WARNING), "{stderr}");
    assert!(stderr.contains(EVICTION_WARNING), "{stderr}");

    let safe_redis =
        start_without_config(&["--appendonly", "yes", "--maxmemory-policy", "noeviction"]);
    let url = format!("redis://127.0.0.1:{}/", safe_redis.port);
    let dir = tempfile::tempdir().unwrap();
    let addr = addr();
    let config = write_config(&dir, addr, &url);
    let mut serve = ServeProcess::start(&config, &["--strict"]);
    serve
        .wait_ready(addr)
        .await
        .expect("INFO shows a safe redis");
    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(" WARN "), "{log}");
}

#[tokio::test]
async fn managed_redis_passes_strict() {
    let dir = tempfile::tempdir().unwrap();
    let addr = addr();
    let redis_port = free_port();
    let config = dir.path().join("dndgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "{addr}"
admin_listen = "off"
public_url = "{PUBLIC_URL}"
redis_url = "managed"

[managed_redis]
port = {redis_port}

[tenants.acme]
api_tokens = ["{API_TOKEN}"]
"#
        ),
    )
    .unwrap();
    let mut serve = ServeProcess::start(&config, &["--strict"]);
    serve
        .wait_ready(addr)
        .await
        .unwrap_or_else(|code| panic!("managed mode refused --strict ({code:?})"));
    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("redis persistence and eviction checked"),
        "{log}"
    );
}

#[tokio::test]
async fn a_redis_down_at_start_is_checked_once_it_answers() {
    let redis_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let addr = addr();
    let config = write_config(&dir, addr, &format!("redis://127.0.0.1:{redis_port}/"));
    // --strict cannot check a Redis that is down: it refuses.
    let (code, _, stderr) = dndgate(&["serve", "--config", config.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("could not check redis persistence"),
        "{stderr}"
    );

    // Without it: serves, and warns once Redis comes up.
    let mut serve = ServeProcess::start(&config, &[]);
    serve
        .wait_ready(addr)
        .await
        .expect("serves while redis is down");
    let _redis = start_redis_on(
        redis_port,
        &["--appendonly", "yes", "--maxmemory-policy", "volatile-lru"],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !serve.stderr().contains("maxmemory-policy is volatile-lru") && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, log) = serve.terminate();
    assert!(log.contains("checking again once redis answers"), "{log}");
    assert!(
        log.contains("redis maxmemory-policy is volatile-lru"),
        "{log}"
    );
    assert!(!log.contains("appendonly no"), "{log}");
}

/// A SIGTERM that arrives as soon as the port is open (before the gateway's accept loop
/// has first waited) is a clean stop, exit 0, not the default action of the signal.
/// Seen as a flaky `without_config_the_check_reads_info` under load: the handler was
/// installed only when the shutdown future was first polled.
#[tokio::test]
async fn sigterm_as_soon_as_the_port_opens_is_a_clean_stop() {
    let redis = RedisServer::start();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let addr = addr();
        let config = write_config(&dir, addr, &redis.url());
        let serve = ServeProcess::start(&config, &[]);
        // Connect as early as possible (wait_ready polls every 50 ms).
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "serve did not start listening");
            std::thread::sleep(Duration::from_micros(200));
        }
        let (code, log) = serve.terminate();
        assert_eq!(code, Some(0), "{log}");
        assert!(log.contains("shutdown signal received"), "{log}");
    }
}
