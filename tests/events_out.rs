//! Events out, end to end: signed Twilio webhooks into running gateways, a real
//! redis-server, and a receiver that verifies every delivery with the official
//! Standard Webhooks library (Python, `tests/receiver/`, installed into
//! `target/receiver-venv` on first use).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The venv with the official library, made once per machine.
fn python() -> String {
    static MADE: Mutex<bool> = Mutex::new(false);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/receiver-venv");
    let py = venv.join("bin/python");
    let mut made = MADE.lock().unwrap();
    if !*made {
        let ok = std::process::Command::new(&py)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let venv_ok = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 runs");
            assert!(venv_ok.success(), "python3 -m venv failed");
            let pip = std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(root.join("tests/receiver/requirements.txt"))
                .status()
                .expect("pip runs");
            assert!(
                pip.success(),
                "installing the Standard Webhooks library failed"
            );
        }
        *made = true;
    }
    py.display().to_string()
}

/// A running receiver and what it printed.
struct Receiver {
    port: u16,
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Receiver {
    async fn start(port: u16, extra: &[&str]) -> Receiver {
        Self::start_with_secret(SECRET, port, extra).await
    }

    async fn start_with_secret(secret: &str, port: u16, extra: &[&str]) -> Receiver {
        let mut child = tokio::process::Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/receiver/receiver.py"
            ))
            .arg(secret)
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the receiver starts");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), out.next_line())
            .await
            .expect("the receiver says its port")
            .unwrap()
            .expect("a line");
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Receiver {
            port,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait until `done` holds over every request seen, or panic after `within`.
    async fn until(&mut self, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                _ => panic!("not done within {within:?}; seen: {:#?}", self.seen),
            }
        }
        self.seen.clone()
    }

    /// The 2xx-answered deliveries seen.
    fn delivered(&self) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|l| {
                l["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .cloned()
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The test configuration with one endpoint for acme at `port`, and fast retries.
fn config_with_endpoint(redis_url: &str, port: u16, retry_delays: &str) -> String {
    format!(
        r#"{}
[events_out]
retry_delays = {retry_delays}
timeout = "2s"

[[tenants.acme.endpoints]]
id = "crm"
url = "http://127.0.0.1:{port}/dnd"
secrets = ["{SECRET}"]
"#,
        config_text(redis_url)
    )
}

fn sid(n: usize) -> String {
    format!("SM{n:032}")
}

async fn text(gw: &TestGateway, n: usize, from: &str, body: &str) {
    let sid = sid(n);
    let r = gw
        .twilio(
            "/webhooks/twilio/acme",
            TWILIO_TOKEN,
            &inbound_sms(&sid, from, body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn stop_then_start_reach_the_receiver_signed_within_a_second() {
    let redis = RedisServer::start();
    let mut rx = Receiver::start(0, &[]).await;
    let gw = TestGateway::start(&config_with_endpoint(&redis.url(), rx.port, "[\"1s\"]")).await;

    let sent = Instant::now();
    text(&gw, 1, "+14155550101", "STOP").await;
    let seen = rx.until(Duration::from_secs(5), |s| !s.is_empty()).await;
    let took = sent.elapsed();
    let first = &seen[0];
    assert_eq!(first["verified"], true, "{first}");
    assert_eq!(first["type"], "dnd.enabled", "{first}");
    assert_eq!(first["address"], "+14155550101");
    assert_eq!(
        first["id"], first["body_id"],
        "webhook-id is the event's id"
    );
    assert!(took < Duration::from_secs(1), "dnd.enabled took {took:?}");

    text(&gw, 2, "+14155550101", "START").await;
    // STOP also covers voice by default: enabled for sms and voice, then disabled
    // for both.
    let seen = rx
        .until(Duration::from_secs(5), |s| {
            s.iter().filter(|l| l["type"] == "dnd.disabled").count() == 2
        })
        .await;
    assert!(seen.iter().all(|l| l["verified"] == true), "{seen:#?}");
    let kinds: Vec<(String, String)> = seen
        .iter()
        .map(|l| {
            (
                l["channel"].as_str().unwrap().into(),
                l["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    for channel in ["sms", "voice"] {
        let mine: Vec<&str> = kinds
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(
            mine,
            ["dnd.enabled", "dnd.disabled"],
            "{channel}: {seen:#?}"
        );
    }
    gw.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_gets_the_event_again_with_the_same_id() {
    let redis = RedisServer::start();
    let mut rx = Receiver::start(0, &["--fail-first", "3"]).await;
    let delays = "[\"100ms\", \"100ms\", \"100ms\", \"100ms\", \"100ms\"]";
    let gw = TestGateway::start(&config_with_endpoint(&redis.url(), rx.port, delays)).await;

    text(&gw, 1, "+14155550102", "STOP").await;
    // Two events (sms and voice), each answered 500 three times and then 200.
    let seen = rx
        .until(Duration::from_secs(10), |s| {
            s.iter().filter(|l| l["status"] == 200).count() == 2
        })
        .await;
    let mut by_id: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in &seen {
        assert_eq!(l["verified"], true, "{l}");
        by_id
            .entry(l["id"].as_str().unwrap().into())
            .or_default()
            .push(l["status"].as_u64().unwrap());
    }
    assert_eq!(by_id.len(), 2, "{by_id:?}");
    for (id, statuses) in &by_id {
        assert_eq!(statuses, &[500, 500, 500, 200], "{id}");
    }
    // Nothing more comes once it was taken.
    tokio::time::sleep(Duration::from_millis(800)).await;
    if let Ok(l) = rx.lines.try_recv() {
        panic!("a delivered event came again: {l}");
    }
    gw.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_afterwards_in_order_per_address() {
    let redis = RedisServer::start();
    let port = free_port();
    let delays = format!("[{}]", vec!["\"200ms\""; 60].join(", "));
    let gw = TestGateway::start(&config_with_endpoint(&redis.url(), port, &delays)).await;

    // Nobody listens yet: three changes on each of four addresses.
    let addresses = [
        "+14155550111",
        "+14155550112",
        "+14155550113",
        "+14155550114",
    ];
    let mut n = 0;
    for body in ["STOP", "START", "STOP"] {
        for a in addresses {
            n += 1;
            text(&gw, n, a, body).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut rx = Receiver::start(port, &[]).await;
    // Per address and channel (sms, voice): enabled, disabled, enabled.
    let want = addresses.len() * 2 * 3;
    let seen = rx
        .until(Duration::from_secs(15), |s| {
            s.iter().filter(|l| l["status"] == 200).count() >= want
        })
        .await;
    let delivered = rx.delivered();
    assert_eq!(delivered.len(), want, "{seen:#?}");
    let ids: HashSet<&str> = delivered
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), want, "each event once");
    for a in addresses {
        for channel in ["sms", "voice"] {
            let kinds: Vec<&str> = delivered
                .iter()
                .filter(|l| l["address"] == a && l["channel"] == channel)
                .map(|l| l["type"].as_str().unwrap())
                .collect();
            assert_eq!(
                kinds,
                ["dnd.enabled", "dnd.disabled", "dnd.enabled"],
                "{a} {channel}"
            );
        }
    }
    gw.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn two_gateways_on_one_redis_deliver_each_event_once() {
    let redis = RedisServer::start();
    let mut rx = Receiver::start(0, &[]).await;
    let config = config_with_endpoint(&redis.url(), rx.port, "[\"200ms\"]");
    let one = TestGateway::start(&config).await;
    let two = TestGateway::start(&config).await;

    let count = 40;
    for n in 0..count {
        let gw = if n % 2 == 0 { &one } else { &two };
        text(gw, n, &format!("+1415555{n:04}"), "STOP").await;
    }
    let want = count * 2;
    rx.until(Duration::from_secs(15), |s| s.len() >= want).await;
    // Anything sent twice would arrive within a few polls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(l) = rx.lines.try_recv() {
        rx.seen.push(l);
    }
    let ids: Vec<&str> = rx.seen.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), want, "deliveries");
    assert_eq!(unique.len(), want, "each event once");
    one.stop().await;
    two.stop().await;
    rx.stop().await;
}

/// A call to the operator API of tenant acme.
async fn api(gw: &TestGateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        method,
        &format!("/v1/tenants/acme/{path}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    let v = serde_json::from_str(&r.body).unwrap_or_else(|_| Value::String(r.body.clone()));
    (r.status, v)
}

#[tokio::test]
async fn the_operator_api_creates_tests_rotates_disables_replays_and_deletes_an_endpoint() {
    let redis = RedisServer::start();
    // The configured endpoint refuses everything, so the API's endpoint is what the
    // test watches; a refusal dead-letters at once.
    let refusing = Receiver::start(0, &["--status", "400"]).await;
    let gw = TestGateway::start(&config_with_endpoint(
        &redis.url(),
        refusing.port,
        "[\"100ms\"]",
    ))
    .await;

    // A change made before the endpoint exists is not the new endpoint's.
    text(&gw, 100, "+14155550130", "STOP").await;

    // Create: with the secret given; a bad URL or a taken id is refused in one line.
    let port = free_port();
    let (status, bad) = api(
        &gw,
        "POST",
        "endpoints",
        r#"{"id": "hooks", "url": "http://crm.example.com/x"}"#,
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().starts_with("url:"), "{bad}");
    let (status, taken) = api(
        &gw,
        "POST",
        "endpoints",
        r#"{"id": "crm", "url": "https://a.example.com"}"#,
    )
    .await;
    assert_eq!(status, 409, "{taken}");
    let body = format!(
        r#"{{"id": "hooks", "url": "http://127.0.0.1:{port}/in", "secrets": ["{SECRET}"]}}"#
    );
    let (status, made) = api(&gw, "POST", "endpoints", &body).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["secret"], SECRET);
    assert_eq!(made["origin"], "api");
    let (status, again) = api(&gw, "POST", "endpoints", &body).await;
    assert_eq!(status, 409, "{again}");
    let (_, listed) = api(&gw, "GET", "endpoints", "").await;
    let ids: Vec<&str> = listed["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["crm", "hooks"], "{listed}");
    assert!(
        listed.to_string().find(SECRET).is_none(),
        "a listing never shows a secret"
    );

    // A test event, verified by the official library.
    let mut rx = Receiver::start(port, &[]).await;
    let (status, tested) = api(&gw, "POST", "endpoints/hooks/test", "").await;
    assert_eq!(
        (status, &tested["delivered"]),
        (200, &Value::Bool(true)),
        "{tested}"
    );
    let seen = rx.until(Duration::from_secs(5), |s| !s.is_empty()).await;
    assert_eq!(seen[0]["type"], "endpoint.test");
    assert_eq!(seen[0]["verified"], true);
    // Long enough for every gateway to pick the endpoint up and deliver what it has.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    while let Ok(l) = rx.lines.try_recv() {
        rx.seen.push(l);
    }
    assert!(
        rx.seen.iter().all(|l| l["address"] != "+14155550130"),
        "a change from before the endpoint existed was sent to it: {:#?}",
        rx.seen
    );

    // Rotate: the new secret signs beside the old one, so a receiver that knows only
    // the new one verifies the next event.
    let (status, rotated) = api(&gw, "POST", "endpoints/hooks/rotate", "").await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != SECRET);
    assert_eq!(rotated["secrets"], 2);
    // Gateways pick a changed endpoint up within 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    rx.stop().await;
    let mut rx = Receiver::start_with_secret(&new_secret, port, &["--status", "400"]).await;

    // The endpoint refuses (400): the STOP's events are dead letters at once.
    text(&gw, 1, "+14155550131", "STOP").await;
    rx.until(Duration::from_secs(5), |s| s.len() >= 2).await;
    assert!(
        rx.seen.iter().all(|l| l["verified"] == true),
        "{:#?}",
        rx.seen
    );
    let dead = loop {
        let (_, d) = api(&gw, "GET", "endpoints/hooks/dead", "").await;
        if d["dead"].as_array().unwrap().len() == 2 {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        dead["dead"][0]["error"].as_str().unwrap().contains("400"),
        "{dead}"
    );
    rx.stop().await;

    // Replay once the receiver takes them: both delivered, the list empties.
    let mut rx = Receiver::start_with_secret(&new_secret, port, &[]).await;
    let (status, replayed) = api(&gw, "POST", "endpoints/hooks/dead/replay", "").await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(
        replayed["delivered"].as_array().unwrap().len(),
        2,
        "{replayed}"
    );
    let (_, dead) = api(&gw, "GET", "endpoints/hooks/dead", "").await;
    assert_eq!(dead["dead"].as_array().unwrap().len(), 0, "{dead}");
    let seen = rx.until(Duration::from_secs(5), |s| s.len() >= 2).await;
    assert!(
        seen.iter()
            .all(|l| l["verified"] == true && l["type"] == "dnd.enabled"),
        "{seen:#?}"
    );

    // Disabled: nothing is sent; enabled again: what waited arrives.
    let (status, off) = api(&gw, "POST", "endpoints/hooks/disable", "").await;
    assert_eq!(
        (status, &off["enabled"]),
        (200, &Value::Bool(false)),
        "{off}"
    );
    // Workers read an endpoint's health at most a second old.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    text(&gw, 2, "+14155550131", "START").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rx.lines.try_recv().is_err(),
        "a disabled endpoint got an event"
    );
    let (_, on) = api(&gw, "POST", "endpoints/hooks/enable", "").await;
    assert_eq!(on["enabled"], true, "{on}");
    let seen = rx
        .until(Duration::from_secs(5), |s| {
            s.iter().filter(|l| l["type"] == "dnd.disabled").count() == 2
        })
        .await;
    assert!(seen.iter().all(|l| l["verified"] == true));

    // Deleted: gone from the list; a configuration endpoint cannot be deleted here.
    let (status, _) = api(&gw, "DELETE", "endpoints/hooks", "").await;
    assert_eq!(status, 200);
    let (status, _) = api(&gw, "DELETE", "endpoints/crm", "").await;
    assert_eq!(status, 409);
    let (_, listed) = api(&gw, "GET", "endpoints", "").await;
    assert_eq!(listed["endpoints"].as_array().unwrap().len(), 1, "{listed}");
    gw.stop().await;
    rx.stop().await;
    refusing.stop().await;
}

#[tokio::test]
async fn an_endpoint_that_refuses_everything_is_disabled_in_time_and_says_why() {
    let redis = RedisServer::start();
    let rx = Receiver::start(0, &["--status", "401"]).await;
    let config = config_with_endpoint(&redis.url(), rx.port, "[\"100ms\"]").replace(
        "timeout = \"2s\"",
        "timeout = \"2s\"\ndisable_after = \"500ms\"",
    );
    let gw = TestGateway::start(&config).await;
    text(&gw, 1, "+14155550141", "STOP").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    text(&gw, 2, "+14155550142", "STOP").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let crm = loop {
        let (_, listed) = api(&gw, "GET", "endpoints", "").await;
        let crm = listed["endpoints"][0].clone();
        if crm["enabled"] == false || Instant::now() > deadline {
            break crm;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(crm["enabled"], false, "{crm}");
    assert!(
        crm["disabled_why"]
            .as_str()
            .unwrap()
            .contains("no delivery succeeded"),
        "{crm}"
    );
    // Enabled again by the operator: the failing streak starts over.
    let (_, on) = api(&gw, "POST", "endpoints/crm/enable", "").await;
    assert_eq!(on["enabled"], true, "{on}");
    assert_eq!(on["failing_since_ms"], Value::Null, "{on}");
    gw.stop().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_temporary_block_that_runs_out_sends_dnd_expired() {
    let redis = RedisServer::start();
    let mut rx = Receiver::start(0, &[]).await;
    let gw = TestGateway::start(&config_with_endpoint(&redis.url(), rx.port, "[\"1s\"]")).await;
    // A bounce reported late: its 72 h block ran out an hour ago. The change is
    // audited (dnd.enabled, judged at its event time), then the gateway's sweep audits
    // the expiry (dnd.expired).
    let store = dndgate::store::Store::open(
        &redis.url(),
        dndgate::store::StoreOptions {
            timeout: Duration::from_secs(2),
            dedup_ttl: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let address =
        dndgate::address::Address::parse(dndgate::event::Channel::Sms, "+14155550151").unwrap();
    let at = now_ms() - 73 * 3_600_000;
    store
        .apply(&dndgate::store::Change {
            tenant: "acme",
            address: &address,
            scopes: &[dndgate::event::Scope::Channel(dndgate::event::Channel::Sms)],
            action: dndgate::store::StoreAction::BlockTemporary,
            reason: "twilio:30003",
            provider: dndgate::providers::Provider::Twilio.source(),
            event_id: "SMlate",
            event_ms: at,
            received_ms: now_ms(),
            now_ms: now_ms(),
            temporary_ttl: Duration::from_secs(72 * 3600),
            escalate_after: 3,
            escalate_window: Duration::from_secs(30 * 86400),
            actor: None,
            evidence: None,
            contact: None,
        })
        .await
        .unwrap();
    let seen = rx
        .until(Duration::from_secs(10), |s| {
            s.iter().any(|l| l["type"] == "dnd.expired")
        })
        .await;
    let kinds: Vec<&str> = seen.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dnd.enabled", "dnd.expired"], "{seen:#?}");
    assert!(
        seen.iter()
            .all(|l| l["verified"] == true && l["address"] == "+14155550151")
    );
    gw.stop().await;
    rx.stop().await;
}
