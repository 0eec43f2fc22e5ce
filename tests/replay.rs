//! Replay defences that live in Redis (docs/ARCHITECTURE.md, "Replay defences"): every
//! dedup marker, one-time token and failure window carries a TTL, so their memory is
//! bounded; and `dedup_ttl` cannot be set shorter than the longest window in which a
//! scheme still accepts a replay.

mod common;

use std::time::Duration;

use common::*;

fn ttl_of(redis: &RedisServer, key: &str) -> i64 {
    redis.cli(&["TTL", key]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_marker_carries_a_ttl() {
    let redis = RedisServer::start();
    let text = config_text(&redis.url()).replace(
        "redis_timeout = \"1s\"",
        "redis_timeout = \"1s\"\ndedup_ttl = \"3h\"",
    );
    let gw = TestGateway::start(&text).await;
    let path = "/webhooks/twilio/acme";
    let stop = inbound_sms("SM55555555555555555555555555555555", "+14155550101", "STOP");
    assert_eq!(gw.twilio(path, TWILIO_TOKEN, &stop).await.status, 200);
    // A temporary failure: a failure window, and its event's marker.
    let failed = status_callback(
        "SM66666666666666666666666666666666",
        "+14155550102",
        "undelivered",
        Some("30003"),
    );
    let r = gw.twilio(path, TWILIO_TOKEN, &failed).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Mailgun's one-time token cache.
    let config = dndgate::config::Config::parse(&text, std::path::Path::new(".")).unwrap();
    let store = dndgate::store::Store::open(&redis.url(), config.store_options()).unwrap();
    let claim = store
        .claim_once(
            "acme",
            "mailgun",
            "token-0123456789",
            "fingerprint",
            Duration::from_secs(3 * 3600 + 300),
        )
        .await
        .unwrap();
    assert_eq!(claim, dndgate::store::Claim::Fresh);
    gw.stop().await;

    let all = redis.keys("*");
    let keys = all.join("\n");
    let markers: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|k| k.contains(":seen:") || k.contains(":once:") || k.contains(":fails:"))
        .collect();
    // Both events are marked: their dedup digests are in the time-bucketed sets.
    let marks: i64 = markers
        .iter()
        .filter(|k| k.contains(":seen:"))
        .map(|k| redis.cli(&["SCARD", k]).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(marks, 2, "two marked events in {keys}");
    for kind in [":seen:", ":once:mailgun:", ":fails:"] {
        assert!(
            markers.iter().any(|k| k.contains(kind)),
            "no {kind} key in {keys}"
        );
    }
    for key in markers {
        let ttl = ttl_of(&redis, key);
        // A dedup set lives to the end of the window after its own (dedup_ttl each), so
        // an event is remembered at least dedup_ttl and at most twice that.
        let most = if key.contains(":seen:") {
            2 * 3 * 3600
        } else if key.contains(":once:") {
            3 * 3600 + 300
        } else {
            30 * 24 * 3600 // the escalation window
        };
        assert!(
            ttl > 0 && ttl <= most,
            "{key} has TTL {ttl}, expected 1..={most}"
        );
        if key.contains(":seen:") {
            assert!(ttl >= 3 * 3600 - 60, "{key}: dedup_ttl is 3h, TTL {ttl}");
        }
    }
}

#[test]
fn dedup_ttl_shorter_than_the_longest_replay_window_is_refused() {
    let with = |ttl: &str| {
        config_text("redis://127.0.0.1:1/").replace(
            "redis_timeout = \"1s\"",
            &format!("redis_timeout = \"1s\"\ndedup_ttl = \"{ttl}\""),
        )
    };
    let problems =
        dndgate::config::Config::parse(&with("1h"), std::path::Path::new(".")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("dedup_ttl: 1h is shorter than 2h")),
        "{problems:?}"
    );
    let config = dndgate::config::Config::parse(&with("2h"), std::path::Path::new(".")).unwrap();
    assert_eq!(config.dedup_ttl, Duration::from_secs(7200));
}
