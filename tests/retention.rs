//! The audit streams' retention (`dndgate::outbound::retention_pass`) against a real
//! redis-server: an entry older than `audit_retention` goes only once every enabled
//! endpoint has finished it; an endpoint that is disabled (in the configuration, or in
//! Redis for failing too long) holds nothing; with no endpoint, age alone decides.
//!
//! The pass takes "now" as an argument: the tests move it days ahead of the clock
//! instead of waiting, so every entry written a moment ago is "older than the
//! retention" without any fixed date.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dndgate::config::Config;
use dndgate::outbound::retention_pass;
use dndgate::store::{OutShard, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DAY_MS: i64 = 86_400_000;
const SHARDS: &str = "0123456789abcdef";

fn audit_key(tenant: &str, shard: char) -> String {
    format!("dnd:{{{tenant}:{shard}}}:audit")
}

/// Every audit entry id of `tenant`, over the 16 shards.
fn audit_ids(redis: &RedisServer, tenant: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for shard in SHARDS.chars() {
        let out = redis
            .cli(&["XRANGE", &audit_key(tenant, shard), "-", "+"])
            .unwrap_or_default();
        // `--raw` prints each id on its own line before its fields; no field value
        // of these entries is digits, a dash and digits.
        for line in out.lines() {
            let mut parts = line.splitn(2, '-');
            let (a, b) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
            {
                ids.insert(format!("{shard}/{line}"));
            }
        }
    }
    ids
}

/// The number of entries left in `tenant`'s 16 audit streams.
fn audit_len(redis: &RedisServer, tenant: &str) -> u64 {
    SHARDS
        .chars()
        .map(|s| {
            redis
                .cli(&["XLEN", &audit_key(tenant, s)])
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// `config_text` plus fast retries and `endpoints` (TOML for
/// `[[tenants.acme.endpoints]]` tables).
fn config_with(redis_url: &str, endpoints: &str) -> String {
    // Retries far longer than the test: an event is never dead-lettered while the
    // receiver is away, so only delivery can finish it.
    let delays = vec!["\"200ms\""; 300].join(", ");
    format!(
        "{}\n[events_out]\nretry_delays = [{delays}]\ntimeout = \"2s\"\n{endpoints}",
        config_text(redis_url)
    )
}

fn endpoint(id: &str, port: u16, extra: &str) -> String {
    format!(
        "\n[[tenants.acme.endpoints]]\nid = \"{id}\"\nurl = \"http://127.0.0.1:{port}/dnd\"\nsecrets = [\"{SECRET}\"]\n{extra}\n"
    )
}

/// The configuration and a store of its own, for calling the pass as `serve` does.
fn open(text: &str) -> (Config, Store) {
    let config = Config::parse(text, std::path::Path::new(".")).expect("test config");
    let store = Store::open(&config.redis.url(), config.store_options()).unwrap();
    (config, store)
}

/// STOP from `count` distinct numbers (each makes an `sms` and a `voice` entry).
async fn stops(gw: &TestGateway, first: usize, count: usize) {
    for n in first..first + count {
        let sid = format!("SM{n:032}");
        let from = format!("+1415556{n:04}");
        let r = gw
            .twilio(
                "/webhooks/twilio/acme",
                TWILIO_TOKEN,
                &inbound_sms(&sid, &from, "STOP"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// A receiver in this process: answers every request 200 and keeps each
/// `webhook-id` it was sent.
struct Receiver {
    ids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver's port is free");
        let ids = Arc::new(Mutex::new(Vec::new()));
        let kept = ids.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    if let Some(id) = read_request(&mut conn).await {
                        let _ = conn
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            )
                            .await;
                        kept.lock().unwrap().push(id);
                    }
                });
            }
        });
        Receiver { ids, task }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one HTTP request (head and `content-length` body); its `webhook-id`.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    header("webhook-id")
}

/// Wait until endpoint `endpoint` has finished everything on all 16 shards of acme
/// (its group exists, nothing pending, nothing unread), or panic after `within`.
async fn until_finished(store: &Store, endpoint: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut done = true;
        for shard in 0..16u8 {
            let s = OutShard {
                tenant: "acme".into(),
                shard,
                endpoint: endpoint.into(),
            };
            match store.out_group(&s).await.unwrap() {
                Some(g) if g.pending == 0 && g.oldest.is_none() => {}
                _ => done = false,
            }
        }
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} did not finish within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (a) Entries far older than the retention stay while an enabled endpoint has not had
/// them, and go once it has.
#[tokio::test]
async fn old_entries_go_only_after_every_enabled_endpoint_had_them() {
    let redis = RedisServer::start();
    let port = free_port();
    let text = config_with(&redis.url(), &endpoint("crm", port, ""));
    let (config, store) = open(&text);
    let gw = TestGateway::start(&text).await;

    // Nobody listens at the endpoint: every event is retried, none finished.
    stops(&gw, 0, 12).await;
    let written = audit_ids(&redis, "acme");
    assert_eq!(written.len(), 24, "a STOP makes an sms and a voice entry");

    // A pass 40 days ahead: every entry is 10 days past the 30-day retention, and
    // none of them may go.
    let later = now_ms() + 40 * DAY_MS;
    let trimmed = retention_pass(&store, &config, later).await.unwrap();
    assert_eq!(trimmed, 0);
    assert_eq!(
        audit_ids(&redis, "acme"),
        written,
        "an undelivered entry was trimmed"
    );

    // The receiver comes up and gets all of them.
    let rx = Receiver::start(port).await;
    until_finished(&store, "crm", Duration::from_secs(20)).await;
    let got: BTreeSet<String> = rx.ids().into_iter().collect();
    assert_eq!(got.len(), written.len(), "{got:?}");

    // A pass at the real time trims nothing: the entries are minutes old.
    assert_eq!(retention_pass(&store, &config, now_ms()).await.unwrap(), 0);
    assert_eq!(audit_ids(&redis, "acme"), written);

    // 40 days ahead, everything is delivered and old: all of it goes, including the
    // last entry of each shard (nothing holds it any more).
    let later = now_ms() + 40 * DAY_MS;
    let trimmed = retention_pass(&store, &config, later).await.unwrap();
    assert_eq!(trimmed, written.len() as u64);
    assert_eq!(
        audit_len(&redis, "acme"),
        0,
        "{:?}",
        audit_ids(&redis, "acme")
    );
    gw.stop().await;
}

/// (b) An endpoint switched off in the configuration holds nothing: its entries go
/// with their age although it never had them.
#[tokio::test]
async fn an_endpoint_disabled_in_the_configuration_does_not_hold_retention() {
    let redis = RedisServer::start();
    // Nobody listens there, and it is off: no worker, no consumer group.
    let off = endpoint("off", free_port(), "enabled = false");
    let text = config_with(&redis.url(), &off);
    let (config, store) = open(&text);
    let gw = TestGateway::start(&text).await;

    stops(&gw, 0, 10).await;
    let written = audit_ids(&redis, "acme");
    assert_eq!(written.len(), 20);
    assert_eq!(retention_pass(&store, &config, now_ms()).await.unwrap(), 0);

    let later = now_ms() + 40 * DAY_MS;
    let trimmed = retention_pass(&store, &config, later).await.unwrap();
    assert_eq!(trimmed, written.len() as u64);
    assert_eq!(audit_len(&redis, "acme"), 0);
    gw.stop().await;
}

/// (b) An endpoint disabled in Redis for failing too long holds nothing either; while
/// it was enabled it held everything.
#[tokio::test]
async fn an_endpoint_disabled_for_failing_does_not_hold_retention() {
    let redis = RedisServer::start();
    let text = config_with(&redis.url(), &endpoint("crm", free_port(), ""));
    let (config, store) = open(&text);
    let gw = TestGateway::start(&text).await;

    stops(&gw, 0, 10).await;
    let written = audit_ids(&redis, "acme");
    assert_eq!(written.len(), 20);
    let later = now_ms() + 40 * DAY_MS;
    assert_eq!(retention_pass(&store, &config, later).await.unwrap(), 0);
    assert_eq!(audit_ids(&redis, "acme"), written);

    // What the worker does after `disable_after` of failures.
    store
        .out_disable("acme", "crm", now_ms(), "failing for the test")
        .await
        .unwrap();
    let trimmed = retention_pass(&store, &config, later).await.unwrap();
    assert_eq!(trimmed, written.len() as u64);
    assert_eq!(audit_len(&redis, "acme"), 0);
    gw.stop().await;
}

/// (c) With no endpoint, an entry older than the retention goes and a newer one stays.
#[tokio::test]
async fn without_endpoints_old_entries_go_and_newer_ones_stay() {
    let redis = RedisServer::start();
    // One entry per stream node, so Redis's approximate trimming (whole nodes) is
    // exact and the test can say which entry goes.
    redis.cli_each(&["CONFIG", "SET", "stream-node-max-entries", "1"]);
    let text = config_text(&redis.url());
    let (config, store) = open(&text);
    let gw = TestGateway::start(&text).await;

    stops(&gw, 0, 8).await;
    let old = audit_ids(&redis, "acme");
    assert_eq!(old.len(), 16);
    let ms = |id: &String| -> i64 { id[2..].split('-').next().unwrap().parse().unwrap() };
    // The boundary: just after the newest old entry; wait until Redis's clock is past
    // it, so every newer entry is at or after it.
    let boundary = old.iter().map(ms).max().unwrap() + 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = redis.cli(&["TIME"]).unwrap();
        let mut parts = t.lines();
        let s: i64 = parts.next().unwrap().parse().unwrap();
        let us: i64 = parts.next().unwrap().parse().unwrap();
        if s * 1000 + us / 1000 > boundary {
            break;
        }
        assert!(Instant::now() < deadline, "redis's clock stands still");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stops(&gw, 100, 8).await;
    let all = audit_ids(&redis, "acme");
    let new: BTreeSet<String> = all.difference(&old).cloned().collect();
    assert_eq!(new.len(), 16);
    assert!(new.iter().all(|id| ms(id) >= boundary));

    // Now: nothing is older than 30 days.
    assert_eq!(retention_pass(&store, &config, now_ms()).await.unwrap(), 0);
    assert_eq!(audit_ids(&redis, "acme"), all);

    // "Now" is the boundary plus the retention: the first batch is older, the second
    // is not.
    let now = boundary + config.audit_retention.as_millis() as i64;
    let trimmed = retention_pass(&store, &config, now).await.unwrap();
    assert_eq!(audit_ids(&redis, "acme"), new, "exactly the old entries go");
    assert_eq!(trimmed, old.len() as u64);
    gw.stop().await;
}

/// Two endpoints whose oldest unfinished entries are in the same millisecond (an SMS
/// STOP's `sms` and `voice` entries are): the trim stops at the lower of the two ids,
/// whatever the order of the endpoints in the configuration.
#[tokio::test]
async fn the_lowest_of_two_floors_in_one_millisecond_holds() {
    let redis = RedisServer::start();
    redis.cli_each(&["CONFIG", "SET", "stream-node-max-entries", "1"]);
    let eps = format!(
        "{}{}",
        endpoint("a", free_port(), ""),
        endpoint("b", free_port(), "")
    );
    let text = config_with(&redis.url(), &eps);
    let (config, store) = open(&text);
    // No gateway: the endpoints' positions are set by hand. Three entries in one
    // millisecond, 40 days old.
    let key = audit_key("acme", '0');
    let ms = now_ms() - 40 * DAY_MS;
    for seq in 0..3 {
        let id = format!("{ms}-{seq}");
        redis.cli(&["XADD", &key, &id, "scope", "sms"]).unwrap();
    }
    // a has had nothing (its floor is ms-0); b has finished ms-0 and ms-1 (ms-2).
    let before = format!("{}-0", ms - 1);
    let b_at = format!("{ms}-1");
    redis
        .cli(&["XGROUP", "CREATE", &key, "out:a", &before])
        .unwrap();
    redis
        .cli(&["XGROUP", "CREATE", &key, "out:b", &b_at])
        .unwrap();

    retention_pass(&store, &config, now_ms()).await.unwrap();
    let left = redis.cli(&["XLEN", &key]).unwrap();
    assert_eq!(left, "3", "an entry endpoint a has not had was trimmed");
}
