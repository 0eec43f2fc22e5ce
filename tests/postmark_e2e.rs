//! End to end: Postmark webhooks in Postmark's documented shapes, with HTTP basic auth,
//! through a running gateway into a real redis-server, read back through the lookup.

mod common;

use common::*;
use dndgate::event::{Channel, Scope};
use dndgate::store::State;
use serde_json::{Value, json};

const CREDENTIALS: &str = "pm_hook_user:pm_hook_pass_123";
const OLD_CREDENTIALS: &str = "old_user:old_pass";
const PATH: &str = "/webhooks/postmark/acme";

fn config(redis: &RedisServer) -> String {
    config_text(&redis.url()).replacen(
        "[tenants.acme.twilio]",
        &format!(
            "[tenants.acme.postmark]\ncredentials = [\"{OLD_CREDENTIALS}\", \"{CREDENTIALS}\"]\n\n[tenants.acme.twilio]"
        ),
        1,
    )
}

async fn post_as(gw: &TestGateway, authorization: Option<&str>, body: &str) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    http(gw.addr, "POST", PATH, &headers, body.as_bytes()).await
}

async fn post(gw: &TestGateway, body: &Value) -> HttpResponse {
    post_as(gw, Some(&sign::basic(CREDENTIALS)), &body.to_string()).await
}

/// An ISO 8601 time `ago_s` seconds before now, as Postmark writes it.
fn iso(ago_s: i64) -> String {
    let ms = dndgate::pipeline::now_ms() - ago_s * 1000;
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.1234567Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn bounce(id: u64, kind: &str, email: &str, inactive: bool, ago_s: i64) -> Value {
    json!({
        "RecordType": "Bounce", "MessageStream": "outbound", "ID": id, "Type": kind,
        "TypeCode": 1, "Name": kind, "Tag": "Test", "MessageID": format!("msg-{id}"),
        "ServerID": 23, "Description": "d", "Details": "details", "Email": email,
        "From": "sender@example.com", "BouncedAt": iso(ago_s), "DumpAvailable": true,
        "Inactive": inactive, "CanActivate": true, "Subject": "Test subject"
    })
}

fn subscription_change(email: &str, suppress: bool, origin: &str, ago_s: i64) -> Value {
    json!({
        "RecordType": "SubscriptionChange", "MessageID": "a4909a96-73d7-4c49-b148-a54522d3f7ac",
        "ServerID": 23, "MessageStream": "outbound", "ChangedAt": iso(ago_s),
        "Recipient": email, "Origin": origin, "SuppressSending": suppress,
        "SuppressionReason": if suppress { json!("ManualSuppression") } else { Value::Null },
        "Tag": "welcome-email", "Metadata": {"example": "value"}
    })
}

#[tokio::test]
async fn hard_soft_inactive_and_ignored_bounces() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;

    let r = post(
        &gw,
        &bounce(1001, "HardBounce", "Hard@Example.com", false, 60),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "hard@example.com").await;
    assert!(v.blocked);
    let rec = v.record.unwrap();
    assert_eq!(
        (rec.state, rec.reason.as_str(), rec.source.as_str()),
        (State::Permanent, "postmark:HardBounce", "postmark")
    );
    assert_eq!(v.scope, Some(Scope::Channel(Channel::Email)));

    let r = post(
        &gw,
        &bounce(1002, "SoftBounce", "soft@example.com", false, 60),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "soft@example.com").await;
    assert!(v.blocked);
    let rec = v.record.unwrap();
    assert_eq!(rec.state, State::Temporary);
    assert!(rec.expires_ms.is_some());

    // Inactive: Postmark deactivated the address, so permanent whatever the type.
    let r = post(
        &gw,
        &bounce(1003, "SoftBounce", "gone@example.com", true, 60),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = verdict(&redis, "acme", Channel::Email, "gone@example.com")
        .await
        .record
        .unwrap();
    assert_eq!(
        (rec.state, rec.reason.as_str()),
        (State::Permanent, "postmark:Inactive")
    );

    // A sender-side bounce and a delivery record change nothing, and get 200.
    let before = redis.snapshot();
    let r = post(
        &gw,
        &bounce(1004, "Blocked", "blocked@example.com", false, 60),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let delivery = json!({"RecordType": "Delivery", "ServerID": 23, "MessageID": "m",
        "Recipient": "john@example.com", "DeliveredAt": iso(1), "Details": "ok"});
    let r = post(&gw, &delivery).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("skipped 1"), "{}", r.body);
    assert_eq!(redis.snapshot(), before);

    // The same bounce again (a Postmark retry) is applied once.
    let audit = email_audit_len(&redis, "hard@example.com");
    let r = post(
        &gw,
        &bounce(1001, "HardBounce", "hard@example.com", false, 60),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(email_audit_len(&redis, "hard@example.com"), audit);
    gw.stop().await;
}

#[tokio::test]
async fn complaint_is_permanent_email_dnd() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    // Postmark's example complaint, TypeCode 512 and all.
    let body = json!({
        "RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
        "TypeCode": 512, "Name": "Spam complaint", "Tag": "Test",
        "MessageID": "00000000-0000-0000-0000-000000000000", "ServerID": 1234, "Description": "",
        "Details": "Test spam complaint details", "Email": "john@example.com",
        "From": "sender@example.com", "BouncedAt": iso(30), "DumpAvailable": true,
        "Inactive": true, "CanActivate": false, "Subject": "Test subject"
    });
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "john@example.com").await;
    let rec = v.record.unwrap();
    assert_eq!(
        (rec.state, rec.reason.as_str()),
        (State::Permanent, "postmark:complaint")
    );
    assert_eq!(v.scope, Some(Scope::Channel(Channel::Email)));
    gw.stop().await;
}

#[tokio::test]
async fn unsubscribe_blocks_every_channel_and_resubscribe_lifts_it() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let email = "john@example.com";

    let r = post(&gw, &subscription_change(email, true, "Recipient", 120)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The `all` record: it blocks every channel of the contact (SPEC section 6.5).
    let v = verdict(&redis, "acme", Channel::Email, email).await;
    assert!(v.blocked);
    assert_eq!(v.scope, Some(Scope::All));
    assert_eq!(v.record.unwrap().reason, "postmark:stop");

    // A reactivation by the account holder is not the contact's consent: ignored.
    let before = redis.snapshot();
    let r = post(&gw, &subscription_change(email, false, "Customer", 60)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("not by the recipient"), "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    assert!(verdict(&redis, "acme", Channel::Email, email).await.blocked);

    // The recipient resubscribes: lifted.
    let r = post(&gw, &subscription_change(email, false, "Recipient", 30)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, email).await;
    assert!(!v.blocked, "{v:?}");
    assert_eq!(v.record.unwrap().state, State::Cleared);
    gw.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body = subscription_change("john@example.com", true, "Recipient", 60).to_string();
    let before = redis.snapshot();
    let wrong = sign::basic("pm_hook_user:wrong");
    let bearer = "Bearer pm_hook_pass_123".to_string();
    let garbage = "Basic !!!".to_string();
    for (name, auth) in [
        ("missing", None),
        ("wrong password", Some(&wrong)),
        ("other scheme", Some(&bearer)),
        ("not base64", Some(&garbage)),
    ] {
        let r = post_as(&gw, auth.map(String::as_str), &body).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"dndgate\""),
            "{name}"
        );
        assert_eq!(r.body.lines().count(), 1, "{name}: {}", r.body);
        assert!(!r.body.contains("pm_hook_pass_123"), "{name}: {}", r.body);
        assert_eq!(redis.snapshot(), before, "{name}");
    }
    // The credentials being rotated out still work.
    let r = post_as(&gw, Some(&sign::basic(OLD_CREDENTIALS)), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn bad_bodies_after_good_credentials() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let before = redis.snapshot();
    let auth = sign::basic(CREDENTIALS);
    let r = post_as(&gw, Some(&auth), "{\"RecordType\": \"Bounce\",").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A record without its address: accepted (Postmark could never send it better),
    // nothing written.
    let no_email = json!({"RecordType": "Bounce", "ID": 5, "Type": "HardBounce"}).to_string();
    let r = post_as(&gw, Some(&auth), &no_email).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(
        gw.addr,
        "POST",
        PATH,
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    // Unknown tenant, and a tenant without Postmark: 404.
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/postmark/nobody",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/postmark/globex",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("[tenants.globex.postmark]"), "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

/// Issue 12 item 15 (Postmark): a `Bounce` that names no `Email` (here `Type:
/// Unsubscribe`) carries nothing to apply, and Postmark would send it the same way on
/// every retry: 200, nothing written, and the answer says it was ignored. Only a body
/// that cannot be read as a Postmark record at all is a 400.
#[tokio::test]
async fn item_15_postmark_bounce_without_email_is_accepted_and_ignored() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let before = redis.snapshot();
    let mut unsubscribe = bounce(2001, "Unsubscribe", "x@example.com", false, 5);
    unsubscribe["TypeCode"] = json!(16);
    unsubscribe["Name"] = json!("Unsubscribe request");
    unsubscribe.as_object_mut().unwrap().remove("Email");
    let r = post(&gw, &unsubscribe).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied 0 event(s)"), "{}", r.body);
    assert!(r.body.contains("skipped 1"), "{}", r.body);
    assert!(r.body.contains("no Email"), "{}", r.body);
    // A hard bounce without Email: the same.
    let mut hard = bounce(2002, "HardBounce", "x@example.com", false, 5);
    hard.as_object_mut().unwrap().remove("Email");
    let r = post(&gw, &hard).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    // A body that is not a Postmark record at all is still refused.
    let r = post_as(&gw, Some(&sign::basic(CREDENTIALS)), "[1, 2]").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}
