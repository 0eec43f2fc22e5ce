//! The README's run command, as a newcomer runs it: `dndgate serve` with
//! `redis_url = "managed"` starts its own redis-server, takes a signed STOP, stops
//! cleanly on SIGTERM, and the STOP survives a restart. Also: a gateway killed with
//! SIGKILL leaves its redis-server running, and the next start adopts it.
//!
//! Single server by nature, also under `DNDGATE_TEST_REDIS=cluster`: the gateway starts
//! its own standalone redis-server here (`redis_url = "managed"` is never a cluster).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Serve {
    child: Child,
    addr: std::net::SocketAddr,
}

fn start_serve(config: &str, addr: std::net::SocketAddr) -> Serve {
    let child = Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .args(["serve", "--config", config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Serve { child, addr }
}

async fn wait_ready(s: &mut Serve) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("dndgate serve exited early: {status}");
        }
        if tokio::net::TcpStream::connect(s.addr).await.is_ok()
            && http(s.addr, "GET", "/readyz", &[], b"").await.status == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dndgate serve did not become ready");
}

fn signal(s: &Serve, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &s.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(s: &mut Serve) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = s.child.kill();
    panic!("dndgate serve did not exit");
}

fn redis_answers(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PING"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        .unwrap_or(false)
}

#[tokio::test]
async fn serve_with_managed_redis_persists_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config_path = dir.path().join("dndgate.toml");
    std::fs::write(dir.path().join("twilio-token"), format!("{TWILIO_TOKEN}\n")).unwrap();
    std::fs::write(
        &config_path,
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

[tenants.acme.twilio]
auth_tokens = ["file:twilio-token"]
"#
        ),
    )
    .unwrap();
    let config = config_path.to_str().unwrap();
    let check = || {
        dndgate(&[
            "check",
            "--config",
            config,
            "--tenant",
            "acme",
            "--channel",
            "sms",
            "+15558675310",
        ])
        .0
    };

    let mut serve = start_serve(config, addr);
    wait_ready(&mut serve).await;
    assert!(redis_answers(redis_port));
    let p = inbound_sms("SM11111111111111111111111111111111", "+15558675310", "STOP");
    let path = "/webhooks/twilio/acme";
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &p);
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Twilio-Signature", sig.as_str()),
    ];
    let r = http(addr, "POST", path, &headers, form(&p).as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(check(), 1);

    // SIGTERM: exit 0, and the managed redis-server is gone too.
    signal(&serve, "-TERM");
    assert_eq!(wait_exit(&mut serve), Some(0));
    assert!(
        !redis_answers(redis_port),
        "the managed redis-server must stop with the gateway"
    );
    assert!(
        dir.path()
            .join("dndgate-data")
            .join("appendonlydir")
            .is_dir()
    );
    assert_eq!(check(), 2, "with the gateway stopped, a check fails closed");

    // Restart: the STOP is still there (append-only file).
    let mut serve = start_serve(config, addr);
    wait_ready(&mut serve).await;
    assert_eq!(check(), 1);

    // SIGKILL leaves the redis-server behind; the next start adopts it.
    signal(&serve, "-KILL");
    wait_exit(&mut serve);
    assert!(redis_answers(redis_port));
    let mut serve = start_serve(config, addr);
    wait_ready(&mut serve).await;
    assert_eq!(check(), 1);
    signal(&serve, "-TERM");
    assert_eq!(wait_exit(&mut serve), Some(0));
    assert!(!redis_answers(redis_port));
}

#[test]
fn config_check_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
public_url = "hooks.example.com"
redis_url = "memcached://x"

[tenants.acme]
api_tokens = ["env:DNDGATE_TEST_SURELY_UNSET_VAR"]
temporary_ttl = "3 fortnights"

[tenants.acme.twilio]
auth_tokens = []
account_sids = ["AC123"]
"#,
    )
    .unwrap();
    let (code, _, stderr) = dndgate(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    for needle in [
        "public_url",
        "redis_url",
        "tenants.acme.api_tokens[0]: environment variable DNDGATE_TEST_SURELY_UNSET_VAR is not set",
        "tenants.acme.temporary_ttl",
        "tenants.acme.twilio.auth_tokens is empty",
        "\"AC123\" is not an account SID",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }

    // The example reads its secrets from the environment; unset, each one is named.
    let vars = [
        "ACME_API_TOKEN",
        "ACME_TWILIO_TOKEN",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
    ];
    let mut unset = Command::new(env!("CARGO_BIN_EXE_dndgate"));
    unset.args(["config", "check", "--config", "examples/dndgate.toml"]);
    for var in vars {
        unset.env_remove(var);
    }
    let out = unset.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for var in vars {
        assert!(stderr.contains(var), "{var} not named in {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .args(["config", "check", "--config", "examples/dndgate.toml"])
        .env("ACME_API_TOKEN", "a")
        .env("ACME_TWILIO_TOKEN", "b")
        .env("META_APP_SECRET", "c")
        .env("META_VERIFY_TOKEN", "d")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
