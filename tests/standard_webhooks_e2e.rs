//! End to end: Standard Webhooks (Resend's shapes, Svix signatures) through a running
//! gateway into a real redis-server: signatures, the timestamp window, replays, and the
//! DND each event leaves.

mod common;

use common::*;
use dndgate::event::{Channel, Scope};
use dndgate::store::State;
use serde_json::{Value, json};

/// base64("dndgate-standard-webhooks-test-key")
const SECRET: &str = "whsec_ZG5kZ2F0ZS1zdGFuZGFyZC13ZWJob29rcy10ZXN0LWtleQ==";
/// base64("a-secret-being-rotated-out")
const OLD_SECRET: &str = "whsec_YS1zZWNyZXQtYmVpbmctcm90YXRlZC1vdXQ=";

fn config(redis: &RedisServer) -> String {
    config_text(&redis.url()).replacen(
        "[tenants.acme.twilio]",
        &format!(
            "[tenants.acme.standard_webhooks]\nsecrets = [\"{OLD_SECRET}\", \"{SECRET}\"]\n\n[tenants.acme.twilio]"
        ),
        1,
    )
}

fn now_s() -> i64 {
    dndgate::pipeline::now_ms() / 1000
}

/// POST with svix-* headers (as Resend sends) to `route`.
async fn post_signed(
    gw: &TestGateway,
    route: &str,
    id: &str,
    ts: i64,
    signature: &str,
    body: &str,
) -> HttpResponse {
    http(
        gw.addr,
        "POST",
        route,
        &[
            ("Content-Type", "application/json"),
            ("svix-id", id),
            ("svix-timestamp", &ts.to_string()),
            ("svix-signature", signature),
        ],
        body.as_bytes(),
    )
    .await
}

async fn post(gw: &TestGateway, id: &str, body: &Value) -> HttpResponse {
    let body = body.to_string();
    let ts = now_s();
    post_signed(
        gw,
        "/webhooks/resend/acme",
        id,
        ts,
        &standard_webhooks_signature(SECRET, id, ts, &body),
        &body,
    )
    .await
}

/// An email event in Resend's shape. No `created_at`, so the event time is the time of
/// receipt: a temporary record from a 2024 bounce would have expired already.
fn email_event(kind: &str, to: Value, bounce_type: Option<&str>) -> Value {
    let mut v = json!({"type": kind, "data": {
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "Acme <onboarding@resend.dev>", "to": to, "subject": "Sending this example"
    }});
    if let Some(t) = bounce_type {
        v["data"]["bounce"] = json!({"message": "m", "subType": "General", "type": t});
    }
    v
}

#[tokio::test]
async fn bounces_complaints_and_unsubscribes() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;

    // A permanent bounce to two recipients: one permanent email record each.
    let body = email_event(
        "email.bounced",
        json!(["a@example.com", "B@example.com"]),
        Some("Permanent"),
    );
    let r = post(&gw, "msg_hard", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied 2"), "{}", r.body);
    for address in ["a@example.com", "b@example.com"] {
        let v = verdict(&redis, "acme", Channel::Email, address).await;
        let rec = v.record.clone().unwrap();
        assert_eq!(
            (rec.state, rec.reason.as_str(), rec.source.as_str()),
            (
                State::Permanent,
                "standard-webhooks:Permanent",
                "standard-webhooks"
            ),
            "{address}"
        );
        assert_eq!(v.scope, Some(Scope::Channel(Channel::Email)));
    }

    // A transient bounce: temporary.
    let body = email_event(
        "email.bounced",
        json!(["soft@example.com"]),
        Some("Transient"),
    );
    let r = post(&gw, "msg_soft", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = verdict(&redis, "acme", Channel::Email, "soft@example.com")
        .await
        .record
        .unwrap();
    assert_eq!(rec.state, State::Temporary);

    // A complaint: permanent email.
    let body = email_event("email.complained", json!(["c@example.com"]), None);
    let r = post(&gw, "msg_complaint", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = verdict(&redis, "acme", Channel::Email, "c@example.com")
        .await
        .record
        .unwrap();
    assert_eq!(
        (rec.state, rec.reason.as_str()),
        (State::Permanent, "standard-webhooks:complaint")
    );

    // An unsubscribed contact: every channel (the `all` record).
    let (created, updated) = (iso_ago(30 * 86_400_000), iso_ago(60_000));
    let body = json!({"type": "contact.updated", "created_at": updated, "data": {
        "id": "e169aa45-1ecf-4183-9955-b1499d5701d3", "audience_id": "78261eea-8f8b-4381-83c6-79fa7120f1cf",
        "created_at": created, "updated_at": updated,
        "email": "u@example.com", "first_name": "U", "last_name": null, "unsubscribed": true}});
    let r = post(&gw, "msg_unsub", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "u@example.com").await;
    assert!(v.blocked);
    assert_eq!(v.scope, Some(Scope::All));

    // Event types we do not act on: 200, nothing written.
    let before = redis.snapshot();
    let r = post(
        &gw,
        "msg_delivered",
        &email_event("email.delivered", json!(["d@example.com"]), None),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

#[tokio::test]
async fn unbranded_headers_and_the_alias_route() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body =
        email_event("email.bounced", json!(["w@example.com"]), Some("Permanent")).to_string();
    let ts = now_s();
    // Signed with the secret being rotated out, and a second entry that matches nothing.
    let sig = format!(
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {}",
        standard_webhooks_signature(OLD_SECRET, "msg_w", ts, &body)
    );
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/standard-webhooks/acme",
        &[
            ("Content-Type", "application/json"),
            ("webhook-id", "msg_w"),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", &sig),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "w@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn replayed_message_id_is_applied_once() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body = email_event("email.bounced", json!(["r@example.com"]), Some("Permanent"));
    let r = post(&gw, "msg_replay", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let audit = email_audit_len(&redis, "r@example.com");
    assert!(audit > 0);
    // The same message again, freshly signed as a sender's retry (or a replay inside the
    // window) would be: accepted, applied once.
    for _ in 0..2 {
        let r = post(&gw, "msg_replay", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(email_audit_len(&redis, "r@example.com"), audit);
    gw.stop().await;
}

#[tokio::test]
async fn refusals_are_401_or_400_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let route = "/webhooks/resend/acme";
    let body =
        email_event("email.bounced", json!(["x@example.com"]), Some("Permanent")).to_string();
    let now = now_s();
    let before = redis.snapshot();

    let cases: Vec<(&str, i64, String, String, &str)> = vec![
        // (name, timestamp, signature, body, what the answer says)
        (
            "stale",
            now - 310,
            standard_webhooks_signature(SECRET, "msg_x", now - 310, &body),
            body.clone(),
            "stale",
        ),
        (
            "future",
            now + 310,
            standard_webhooks_signature(SECRET, "msg_x", now + 310, &body),
            body.clone(),
            "future",
        ),
        (
            "wrong secret",
            now,
            standard_webhooks_signature("whsec_b3RoZXI=", "msg_x", now, &body),
            body.clone(),
            "does not match",
        ),
        (
            "tampered body",
            now,
            standard_webhooks_signature(SECRET, "msg_x", now, &body),
            body.replace("Permanent", "Transient"),
            "does not match",
        ),
        (
            "other id",
            now,
            standard_webhooks_signature(SECRET, "msg_other", now, &body),
            body.clone(),
            "does not match",
        ),
        (
            "v2 only",
            now,
            standard_webhooks_signature(SECRET, "msg_x", now, &body).replacen("v1,", "v2,", 1),
            body.clone(),
            "no v1",
        ),
    ];
    for (name, ts, sig, body, says) in cases {
        let r = post_signed(&gw, route, "msg_x", ts, &sig, &body).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert!(r.body.contains(says), "{name}: {}", r.body);
        assert_eq!(redis.snapshot(), before, "{name}");
    }
    // No signature headers at all.
    let r = http(
        gw.addr,
        "POST",
        route,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Malformed JSON with a good signature: 400.
    let bad = "{\"type\": \"email.bounced\",";
    let r = post_signed(
        &gw,
        route,
        "msg_bad",
        now,
        &standard_webhooks_signature(SECRET, "msg_bad", now, bad),
        bad,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A tenant without Standard Webhooks: 404.
    let r = post_signed(
        &gw,
        "/webhooks/resend/globex",
        "msg_x",
        now,
        &standard_webhooks_signature(SECRET, "msg_x", now, &body),
        &body,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

/// Issue 12 item 16 (Resend): `email.suppressed` means Resend refused to send to the
/// address because it is on the account's suppression list (after a hard bounce or a
/// complaint): a permanent email DND, per recipient, in Resend's documented shape.
#[tokio::test]
async fn item_16_resend_email_suppressed_is_a_permanent_email_dnd() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body = json!({
        "type": "email.suppressed",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>",
            "to": ["suppressed@example.com"],
            "subject": "Sending this example",
            "template_id": "43f68331-0622-4e15-8202-246a0388854b",
            "suppressed": {
                "message": "Resend has suppressed sending to this address because it is on the account-level suppression list. This does not count toward your bounce rate metric",
                "type": "OnAccountSuppressionList"
            },
            "tags": {"category": "confirm_email"}
        }
    });
    let r = post(&gw, "msg_suppressed_1", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied 1"), "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "suppressed@example.com").await;
    assert!(v.blocked, "{v:?}");
    assert_eq!(v.scope, Some(Scope::Channel(Channel::Email)));
    let record = v.record.unwrap();
    assert_eq!(record.state, State::Permanent);
    assert_eq!(record.reason, "standard-webhooks:suppressed");
    gw.stop().await;
}

/// Issue 12 item 4: a Resend complaint dated `0001-01-01T00:00:00Z` is recorded at its
/// time of receipt, so the apply script reads the record, and a `DELETE` without
/// evidence answers 409 and changes nothing.
#[tokio::test]
async fn item_04_a_complaint_dated_year_1_cannot_be_cleared_without_evidence() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let mut body = email_event("email.complained", json!(["y1@example.com"]), None);
    body["created_at"] = json!("0001-01-01T00:00:00Z");
    let r = post(&gw, "msg_year_1", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "y1@example.com").await;
    let rec = v.record.unwrap();
    assert!(v.blocked);
    assert_eq!(rec.state, State::Permanent);
    let before = redis.snapshot();
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "DELETE",
        "/v1/tenants/acme/dnd/email/y1@example.com",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"actor": "mallory"}"#,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "y1@example.com")
            .await
            .blocked
    );
    let records = |s: Vec<String>| -> Vec<String> {
        s.into_iter().filter(|k| !k.contains(":audit")).collect()
    };
    assert_eq!(records(redis.snapshot()), records(before));
    let now = dndgate::pipeline::now_ms();
    assert!(
        (now - 60_000..=now).contains(&rec.event_ms),
        "recorded at its receipt: {}",
        rec.event_ms
    );
    gw.stop().await;
}

/// Issue 12 item 3 through a webhook: a provider timestamp in the future is recorded
/// at the time of receipt, so a STOP that follows is newer and applies.
#[tokio::test]
async fn item_03_a_provider_time_in_the_future_is_recorded_at_receipt() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body = json!({"type": "contact.updated", "created_at": "2100-01-01T00:00:00Z", "data": {
        "id": "e169aa45-1ecf-4183-9955-b1499d5701d3", "audience_id": "78261eea-8f8b-4381-83c6-79fa7120f1cf",
        "created_at": "2100-01-01T00:00:00Z", "updated_at": "2100-01-01T00:00:00Z",
        "email": "f@example.com", "first_name": "F", "last_name": null, "unsubscribed": false}});
    let r = post(&gw, "msg_future_resub", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let complaint = email_event("email.complained", json!(["f@example.com"]), None);
    let r = post(&gw, "msg_future_complaint", &complaint).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "f@example.com").await;
    assert!(v.blocked, "the later complaint is not superseded");
    gw.stop().await;
}
