//! End to end: Mailgun webhooks in Mailgun's documented JSON shape, signed with
//! HMAC-SHA256 over timestamp and token, through a running gateway into a real
//! redis-server: bounces, complaints, unsubscribes, one-time tokens and refusals.

mod common;

use common::*;
use dndgate::event::Channel;
use dndgate::store::State;
use serde_json::{Value, json};

const SIGNING_KEY: &str = "mailgun-signing-key-now";
const OLD_SIGNING_KEY: &str = "mailgun-signing-key-rotated-out";

fn config(redis: &RedisServer) -> String {
    let base = config_text(&redis.url());
    base.replacen(
        "[tenants.globex]\n",
        &format!(
            "[tenants.acme.mailgun]\nsigning_keys = [\"{OLD_SIGNING_KEY}\", \"{SIGNING_KEY}\"]\n\n[tenants.globex]\n"
        ),
        1,
    )
}

/// A fresh 50-character token, as Mailgun's.
fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:0>50}", format!("tok{n}x{}", std::process::id()))
}

/// A webhook body with `event_data`, signed with `key` at `timestamp` with `token`.
fn body_with(key: &str, timestamp: &str, token: &str, event_data: &Value) -> String {
    json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": sign::mailgun(key, timestamp, token)},
        "event-data": event_data,
    })
    .to_string()
}

fn event(name: &str, recipient: &str, id: &str, t: f64, extra: Value) -> Value {
    let mut e = json!({
        "event": name, "id": id, "timestamp": t, "recipient": recipient,
        "log-level": "error", "recipient-domain": "example.com",
        "message": {"headers": {"message-id": "20240101.1.ABC@mg.example.org", "from": "news@mg.example.org"}},
        "user-variables": {}, "tags": [],
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

async fn post_body(gw: &TestGateway, body: &str) -> HttpResponse {
    http(
        gw.addr,
        "POST",
        "/webhooks/mailgun/acme",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

async fn post(gw: &TestGateway, event_data: &Value) -> HttpResponse {
    let body = body_with(SIGNING_KEY, &now_s().to_string(), &token(), event_data);
    post_body(gw, &body).await
}

/// The record a case expects: state and reason, or none.
type Expected = Option<(State, &'static str)>;

#[tokio::test]
async fn failures_complaints_and_unsubscribes_become_dnd_per_the_table() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = (now_s() - 100) as f64 + 0.25;
    let failed = |severity: &str, reason: &str, code: u16| {
        json!({"severity": severity, "reason": reason,
            "delivery-status": {"code": code, "message": "", "description": "", "attempt-no": 1}})
    };
    let cases: Vec<(Value, &str, Expected)> = vec![
        (
            event(
                "failed",
                "Hard@Example.com",
                "e1",
                t,
                failed("permanent", "bounce", 550),
            ),
            "hard@example.com",
            Some((State::Permanent, "mailgun:permanent.bounce")),
        ),
        (
            event(
                "failed",
                "listed@example.com",
                "e2",
                t,
                failed("permanent", "suppress-bounce", 605),
            ),
            "listed@example.com",
            Some((State::Permanent, "mailgun:permanent.suppress-bounce")),
        ),
        (
            event(
                "failed",
                "expired@example.com",
                "e3",
                t,
                failed("permanent", "old", 0),
            ),
            "expired@example.com",
            Some((State::Temporary, "mailgun:permanent.old")),
        ),
        (
            event(
                "failed",
                "grey@example.com",
                "e4",
                t,
                failed("temporary", "greylisted", 451),
            ),
            "grey@example.com",
            None,
        ),
        (
            event(
                "failed",
                "espblock@example.com",
                "e5",
                t,
                failed("permanent", "espblock", 554),
            ),
            "espblock@example.com",
            None,
        ),
        (
            event("complained", "angry@example.com", "e6", t, json!({})),
            "angry@example.com",
            Some((State::Permanent, "mailgun:complaint")),
        ),
        (
            event(
                "failed",
                "complainer@example.com",
                "e7",
                t,
                failed("permanent", "suppress-complaint", 607),
            ),
            "complainer@example.com",
            Some((State::Permanent, "mailgun:complaint")),
        ),
        (
            event("delivered", "fine@example.com", "e8", t, json!({})),
            "fine@example.com",
            None,
        ),
        (
            event("opened", "fine@example.com", "e9", t, json!({})),
            "fine@example.com",
            None,
        ),
    ];
    for (data, email, want) in cases {
        let r = post(&gw, &data).await;
        assert_eq!(r.status, 200, "{email}: {}", r.body);
        let v = verdict(&redis, "acme", Channel::Email, email).await;
        let got = v.record.as_ref().map(|r| (r.state, r.reason.as_str()));
        assert_eq!(got, want, "{email}");
        assert_eq!(v.blocked, want.is_some(), "{email}");
    }
    // The whole event time, with Mailgun's fraction, orders the record.
    let v = verdict(&redis, "acme", Channel::Email, "hard@example.com").await;
    assert_eq!(v.record.unwrap().event_ms, (t * 1000.0) as i64);
    gw.stop().await;
}

#[tokio::test]
async fn an_unsubscribe_blocks_every_channel_of_the_contact() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "PUT",
        "/v1/tenants/acme/contacts/frank",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"addresses": ["+14155550111", "frank@example.com"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = now_s() as f64;
    for (data, email) in [
        (
            event("unsubscribed", "Frank@example.com", "u1", t, json!({})),
            "frank@example.com",
        ),
        (
            event(
                "failed",
                "sup@example.com",
                "u2",
                t,
                json!({"severity": "permanent", "reason": "suppress-unsubscribe"}),
            ),
            "sup@example.com",
        ),
    ] {
        let r = post(&gw, &data).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = verdict(&redis, "acme", Channel::Email, email).await;
        assert!(v.blocked, "{email}");
        assert_eq!(v.scope.unwrap().as_str(), "all");
        assert_eq!(v.record.unwrap().reason, "mailgun:stop");
    }
    for channel in [Channel::Sms, Channel::Voice, Channel::Whatsapp] {
        assert!(
            verdict(&redis, "acme", channel, "+14155550111")
                .await
                .blocked,
            "{channel}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_reused_token_with_another_body_is_refused_and_a_redelivered_event_is_applied_once() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let data = event(
        "complained",
        "dup@example.com",
        "same-event-id",
        now_s() as f64,
        json!({}),
    );
    let body = body_with(SIGNING_KEY, &now_s().to_string(), &token(), &data);
    let r = post_body(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let audited = email_audit_len(&redis, "dup@example.com");
    assert!(audited > 0);

    // The very same request again (a retry after a lost answer, or a replay of it):
    // accepted, and changes nothing, since its event is deduplicated.
    let before = redis.snapshot();
    let r = post_body(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before);

    // A replay with other event data under the spent triple: refused the same way.
    let other = event(
        "complained",
        "victim@example.com",
        "forged",
        now_s() as f64,
        json!({}),
    );
    let forged: Value = serde_json::from_str(&body).unwrap();
    let forged = json!({"signature": forged["signature"], "event-data": other}).to_string();
    let before = redis.snapshot();
    let r = post_body(&gw, &forged).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.body
            .contains("token already used with another body or on another tenant's path (replay)"),
        "{}",
        r.body
    );
    assert_eq!(redis.snapshot(), before);
    assert!(
        !verdict(&redis, "acme", Channel::Email, "victim@example.com")
            .await
            .blocked
    );

    // Mailgun redelivers the same event under a fresh signature: applied once.
    let r = post(&gw, &data).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(email_audit_len(&redis, "dup@example.com"), audited);
    gw.stop().await;
}

#[tokio::test]
async fn rotation_accepts_the_old_key_too() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let data = event(
        "complained",
        "rot@example.com",
        "rot1",
        now_s() as f64,
        json!({}),
    );
    let body = body_with(OLD_SIGNING_KEY, &now_s().to_string(), &token(), &data);
    let r = post_body(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "rot@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unreadable_event_is_reported_not_retried() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let mut data = event(
        "complained",
        "x@example.com",
        "bad1",
        now_s() as f64,
        json!({}),
    );
    data.as_object_mut().unwrap().remove("recipient");
    let r = post(&gw, &data).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("refused 1: event-data: event-data has no recipient"),
        "{}",
        r.body
    );

    // Verified, but without event-data: nothing to act on, 400.
    let (ts, tok) = (now_s().to_string(), token());
    let body = json!({"signature": {"timestamp": ts, "token": tok, "signature": sign::mailgun(SIGNING_KEY, &ts, &tok)}});
    let r = post_body(&gw, &body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("no event-data"), "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let seed = event(
        "complained",
        "seed@example.com",
        "seed",
        now_s() as f64,
        json!({}),
    );
    assert_eq!(post(&gw, &seed).await.status, 200);

    let data = event(
        "failed",
        "victim@example.com",
        "evil",
        now_s() as f64,
        json!({"severity": "permanent", "reason": "bounce"}),
    );
    let now = now_s().to_string();
    let tok = token();
    let good = sign::mailgun(SIGNING_KEY, &now, &tok);
    let stale = (now_s() - 8 * 24 * 3600).to_string();
    let future = (now_s() + 3600).to_string();
    let triple = |ts: &str, token: &str, sig: &str| {
        json!({"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": data}).to_string()
    };
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "unsigned",
            "application/json",
            json!({"event-data": data}).to_string(),
            401,
            "not signed",
        ),
        (
            "not JSON",
            "application/json",
            "signature=abc".to_string(),
            401,
            "not JSON",
        ),
        (
            "wrong key",
            "application/json",
            triple(&now, &tok, &sign::mailgun("someone-else", &now, &tok)),
            401,
            "does not match",
        ),
        (
            "other token",
            "application/json",
            triple(&now, &token(), &good),
            401,
            "does not match",
        ),
        (
            "other timestamp",
            "application/json",
            triple(&stale, &tok, &good),
            401,
            "does not match",
        ),
        (
            "uppercase hex",
            "application/json",
            triple(&now, &tok, &good.to_uppercase()),
            401,
            "lowercase hex",
        ),
        (
            "stale but signed",
            "application/json",
            triple(&stale, &tok, &sign::mailgun(SIGNING_KEY, &stale, &tok)),
            401,
            "older than",
        ),
        (
            "from the future",
            "application/json",
            triple(&future, &tok, &sign::mailgun(SIGNING_KEY, &future, &tok)),
            401,
            "future",
        ),
        (
            "legacy form",
            "application/x-www-form-urlencoded",
            "timestamp=1&token=t&signature=s".to_string(),
            415,
            "application/json",
        ),
    ];
    for (name, content_type, body, status, fragment) in cases {
        let before = redis.snapshot();
        let r = http(
            gw.addr,
            "POST",
            "/webhooks/mailgun/acme",
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.body.contains(fragment), "{name}: {}", r.body);
        assert_eq!(r.body.trim_end().lines().count(), 1, "{name}: one line");
        assert_eq!(redis.snapshot(), before, "{name}: redis must be unchanged");
    }
    // A tenant without Mailgun configured: 404 naming the table to add.
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/mailgun/globex",
        &[("Content-Type", "application/json")],
        triple(&now, &tok, &good).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("[tenants.globex.mailgun]"), "{}", r.body);
    assert!(
        !verdict(&redis, "acme", Channel::Email, "victim@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

/// Issue 12 item 8: Mailgun's webhook signing key is account-wide, so two tenants may
/// list the same key. A token spent on one tenant's path must not be accepted again on
/// the other's: not with other event data, and not as the same request either (that
/// would apply acme's bounce to globex's contact). Tokens are claimed per signing key.
#[tokio::test]
async fn item_08_a_token_spent_on_one_tenant_is_refused_on_another_sharing_the_key() {
    let redis = RedisServer::start();
    let shared = format!(
        "{}\n[tenants.globex.mailgun]\nsigning_keys = [\"{SIGNING_KEY}\"]\n",
        config(&redis)
    );
    let gw = TestGateway::start(&shared).await;
    let data = event(
        "failed",
        "bounced@example.com",
        "item08-event",
        now_s() as f64,
        json!({"severity": "permanent", "reason": "bounce",
            "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}),
    );
    let body = body_with(SIGNING_KEY, &now_s().to_string(), &token(), &data);
    let r = post_body(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let to_globex = |body: String| {
        let addr = gw.addr;
        async move {
            http(
                addr,
                "POST",
                "/webhooks/mailgun/globex",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await
        }
    };
    let before = redis.snapshot();
    // The spent triple with a victim's unsubscribe, on the other tenant's path.
    let signed: Value = serde_json::from_str(&body).unwrap();
    let other = event(
        "unsubscribed",
        "victim@example.com",
        "item08-forged",
        now_s() as f64,
        json!({}),
    );
    let forged = json!({"signature": signed["signature"], "event-data": other}).to_string();
    let r = to_globex(forged).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("replay"), "{}", r.body);
    // The very same request on the other tenant's path.
    let r = to_globex(body.clone()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(redis.snapshot(), before, "the refusals changed nothing");
    for address in ["victim@example.com", "bounced@example.com"] {
        assert!(
            !verdict(&redis, "globex", Channel::Email, address)
                .await
                .blocked,
            "{address}"
        );
    }
    // A retry of the request on its own path is still fine (deduplicated).
    let r = post_body(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

/// Issue 12 item 8: `dndgate config check` warns when two tenants list the same
/// Mailgun signing key (the key is account-wide), naming both and never the key.
#[test]
fn item_08_config_check_warns_when_tenants_share_a_mailgun_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dndgate.toml");
    let text = format!(
        "{}\n[tenants.globex.mailgun]\nsigning_keys = [\"{SIGNING_KEY}\"]\n",
        config_text("redis://127.0.0.1:1/").replacen(
            "[tenants.globex]\n",
            &format!("[tenants.acme.mailgun]\nsigning_keys = [\"{OLD_SIGNING_KEY}\", \"{SIGNING_KEY}\"]\n\n[tenants.globex]\n"),
            1,
        )
    );
    std::fs::write(&path, &text).unwrap();
    let (code, stdout, stderr) = dndgate(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "a warning is not an error: {stdout} {stderr}");
    let all = format!("{stdout}{stderr}");
    let line = all
        .lines()
        .find(|l| l.contains("warning") && l.contains("mailgun"))
        .unwrap_or_else(|| panic!("no warning about the shared key: {all}"));
    assert!(line.contains("acme") && line.contains("globex"), "{line}");
    assert!(
        !all.contains(SIGNING_KEY),
        "the key itself is never printed"
    );

    // Distinct keys: no warning.
    std::fs::write(
        &path,
        text.replace(
            &format!("signing_keys = [\"{SIGNING_KEY}\"]\n"),
            "signing_keys = [\"globex-own-key\"]\n",
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = dndgate(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("warning"),
        "{stdout} {stderr}"
    );
}

/// Issue 12 item 13: a `failed`/`permanent` bounce in Mailgun's documented shape but
/// without `event-data.id` (as older accounts and relays post it) was refused inside a
/// 200, so Mailgun never retried and the bounce was lost. It is applied, deduplicated
/// by a key derived from the event data, so Mailgun's redelivery under a fresh
/// signature is applied once.
#[tokio::test]
async fn item_13_a_failed_event_without_an_id_is_applied_once() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let mut data = event(
        "failed",
        "no-id@example.com",
        "unused",
        (now_s() - 30) as f64 + 0.5,
        json!({"severity": "permanent", "reason": "bounce",
            "envelope": {"transport": "smtp", "sender": "bob@mg.example.org", "targets": "no-id@example.com"},
            "delivery-status": {"code": 550, "attempt-no": 1,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "", "mx-host": "mx.example.com"},
            "flags": {"is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false}}),
    );
    data.as_object_mut().unwrap().remove("id");
    let r = post(&gw, &data).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.starts_with("applied 1 event(s)") && !r.body.contains("refused"),
        "{}",
        r.body
    );
    let v = verdict(&redis, "acme", Channel::Email, "no-id@example.com").await;
    assert!(v.blocked, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "mailgun:permanent.bounce");
    let audited = email_audit_len(&redis, "no-id@example.com");

    // Mailgun redelivers the same event under a fresh token: applied once (only the
    // new token's claim is written).
    let records = || {
        let mut keys = redis.snapshot();
        keys.retain(|k| !k.contains(":once:"));
        keys
    };
    let before = records();
    let r = post(&gw, &data).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(email_audit_len(&redis, "no-id@example.com"), audited);
    assert_eq!(records(), before);

    // Another event without an id for another address is its own event.
    let mut other = data.clone();
    other["recipient"] = json!("other-no-id@example.com");
    let r = post(&gw, &other).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "other-no-id@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}
