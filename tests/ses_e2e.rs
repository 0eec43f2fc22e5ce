//! End to end: Amazon SES notifications through SNS, signed like SNS signs them, through
//! a running gateway into a real redis-server, read back through the lookup and the
//! audit history. No network: a fixture fetcher serves the signing certificates by URL
//! and records every URL the gateway asks for.
//!
//! Notifications are signed with a test key (`tests/fixtures/sns/test-signing-key.pem`,
//! made once with `openssl genpkey`) whose certificate, issued for `sns.amazonaws.com`
//! as SNS's are and valid around now, is built in the test
//! ([`common::sign::sns_certificate`]) and served under an allow-listed SNS URL. The
//! real SNS messages of `tests/providers/ses/vectors.json` are posted too, with their genuine
//! (since expired) certificate.

mod common;

use std::sync::Arc;

use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use dndgate::store::State;
use serde_json::{Value, json};

const ACME_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:acme-ses-events";
const GLOBEX_TOPIC: &str = "arn:aws:sns:eu-west-1:210987654321:globex-ses";
const UNKNOWN_TOPIC: &str = "arn:aws:sns:us-east-1:999999999999:someone-else";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const TEST_KEY: &str = include_str!("fixtures/sns/test-signing-key.pem");

/// The gateway's fetcher: a certificate for the test key as SNS issues them
/// ([`sign::sns_certificate`]) at `CERT_URL`, and the vectors' genuine certificates at
/// theirs.
fn fixture_fetch() -> Arc<FixtureFetch> {
    let fetch = FixtureFetch::default();
    fetch.serve(CERT_URL, sign::sns_certificate(TEST_KEY));
    for v in vectors() {
        fetch.serve(
            v["signing_cert_url"].as_str().unwrap(),
            v["signing_cert_pem"].as_str().unwrap(),
        );
    }
    Arc::new(fetch)
}

fn vectors() -> Vec<Value> {
    serde_json::from_str(include_str!("providers/ses/vectors.json")).unwrap()
}

fn config(redis: &RedisServer, extra: &str) -> String {
    let base = config_text(&redis.url());
    let base = base.replacen(
        "[tenants.acme.twilio]",
        &format!("[tenants.acme.ses]\ntopic_arns = [\"{ACME_TOPIC}\"]\n\n[tenants.acme.twilio]"),
        1,
    );
    let base = base.replacen(
        "[tenants.globex.twilio]",
        &format!(
            "[tenants.globex.ses]\ntopic_arns = [\"{GLOBEX_TOPIC}\"]\n\n[tenants.globex.twilio]"
        ),
        1,
    );
    format!("{base}\n{extra}\n")
}

/// Now as SNS writes it: `2024-05-01T10:00:00.000Z`.
fn iso_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// A signed SNS Notification carrying `message` (an SES notification).
fn notification(topic: &str, message_id: &str, message: &Value) -> Value {
    let mut envelope = json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message.to_string(),
        "Timestamp": iso_now(),
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    });
    sign::sns(&mut envelope, TEST_KEY, 2).unwrap();
    envelope
}

fn subscribe_url(topic: &str) -> String {
    format!(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token=2336412f37fb"
    )
}

fn confirmation(topic: &str) -> Value {
    let mut envelope = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb",
        "TopicArn": topic,
        "Message": format!("You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": subscribe_url(topic),
        "Timestamp": iso_now(),
        "SigningCertURL": CERT_URL,
    });
    sign::sns(&mut envelope, TEST_KEY, 2).unwrap();
    envelope
}

fn bounce(bounce_type: &str, sub_type: &str, recipients: &[&str]) -> Value {
    let list: Vec<Value> = recipients
        .iter()
        .map(|a| {
            json!({"emailAddress": a, "action": "failed", "status": "5.1.1",
            "diagnosticCode": "smtp; 550 5.1.1 user unknown"})
        })
        .collect();
    json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bounceSubType": sub_type,
            "bouncedRecipients": list, "timestamp": iso_now(),
            "feedbackId": "000001378603176d-5a4b5ad9-6f30-4198-a8c3-b1eb0c270a1d-000000"},
        "mail": {"timestamp": iso_now(), "source": "news@acme.example",
            "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            "destination": recipients}
    })
}

fn complaint(recipient: &str) -> Value {
    json!({
        "eventType": "Complaint",
        "complaint": {"userAgent": "AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse", "timestamp": iso_now(),
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
        "mail": {"messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            "destination": [recipient]}
    })
}

async fn post_to(gw: &TestGateway, path: &str, envelope: &Value) -> HttpResponse {
    let body = envelope.to_string();
    http(
        gw.addr,
        "POST",
        path,
        &[
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("x-amz-sns-message-type", envelope["Type"].as_str().unwrap()),
            (
                "x-amz-sns-topic-arn",
                envelope["TopicArn"].as_str().unwrap(),
            ),
        ],
        body.as_bytes(),
    )
    .await
}

async fn post(gw: &TestGateway, envelope: &Value) -> HttpResponse {
    post_to(gw, "/webhooks/ses", envelope).await
}

async fn verdict(redis: &RedisServer, tenant: &str, address: &str) -> dndgate::store::Verdict {
    Lookup::connect(&redis.url())
        .unwrap()
        .check(tenant, Channel::Email, address)
        .await
        .unwrap()
}

fn state(v: &dndgate::store::Verdict) -> Option<State> {
    v.blocked.then(|| v.record.as_ref().unwrap().state)
}

/// The audit entries of `address`: (provider, event id, outcome).
async fn history(gw: &TestGateway, address: &str) -> Vec<(String, String, String)> {
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "GET",
        &format!("/v1/tenants/acme/history/{address}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let history: Value = serde_json::from_str(&r.body).unwrap();
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("provider"), s("event_id"), s("outcome"))
        })
        .collect()
}

#[tokio::test]
async fn bounces_and_complaints_become_email_dnd_per_the_table() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fetch.clone()).await;

    let cases: &[(&str, Value, Option<State>)] = &[
        (
            "hard@example.com",
            bounce("Permanent", "General", &["Hard@Example.com"]),
            Some(State::Permanent),
        ),
        (
            "gone@example.com",
            bounce("Permanent", "NoEmail", &["gone@example.com"]),
            Some(State::Permanent),
        ),
        (
            "suppressed@example.com",
            bounce(
                "Permanent",
                "OnAccountSuppressionList",
                &["suppressed@example.com"],
            ),
            Some(State::Permanent),
        ),
        (
            "full@example.com",
            bounce("Transient", "MailboxFull", &["full@example.com"]),
            Some(State::Temporary),
        ),
        (
            "content@example.com",
            bounce("Transient", "ContentRejected", &["content@example.com"]),
            None,
        ),
        (
            "unknown@example.com",
            bounce("Undetermined", "Undetermined", &["unknown@example.com"]),
            None,
        ),
        (
            "angry@example.com",
            complaint("angry@example.com"),
            Some(State::Permanent),
        ),
    ];
    for (i, (address, message, want)) in cases.iter().enumerate() {
        let r = post(&gw, &notification(ACME_TOPIC, &format!("msg-{i}"), message)).await;
        assert_eq!(r.status, 200, "{address}: {}", r.body);
        assert!(r.body.starts_with("applied 1 event(s)"), "{}", r.body);
        let v = verdict(&redis, "acme", address).await;
        assert_eq!(state(&v), *want, "{address}: {v:?}");
    }
    let v = verdict(&redis, "acme", "hard@example.com").await;
    assert_eq!(v.record.unwrap().reason, "ses:Permanent:General");
    assert!(
        !verdict(&redis, "globex", "hard@example.com").await.blocked,
        "the topic routed the bounce to acme only"
    );

    // One bounce naming several recipients: one event each.
    let r = post(
        &gw,
        &notification(
            ACME_TOPIC,
            "msg-many",
            &bounce("Permanent", "General", &["x@example.com", "y@example.com"]),
        ),
    )
    .await;
    assert!(r.body.starts_with("applied 2 event(s)"), "{}", r.body);

    // Ignored types get a 2xx so SNS does not retry them, and change nothing.
    let before = redis.snapshot();
    let delivery = json!({"notificationType": "Delivery", "mail": {"messageId": "m"},
        "delivery": {"recipients": ["ok@example.com"]}});
    let r = post(&gw, &notification(ACME_TOPIC, "msg-delivery", &delivery)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"Delivery\" is ignored"), "{}", r.body);
    assert_eq!(redis.snapshot(), before);

    // The certificate was fetched once for all those messages.
    assert_eq!(fetch.fetched(), vec![CERT_URL.to_string()]);
    gw.stop().await;
}

#[tokio::test]
async fn the_same_notification_twice_is_applied_once() {
    let redis = RedisServer::start();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fixture_fetch()).await;
    let message = notification(
        ACME_TOPIC,
        "6e5bd9a7-5b2f-5fd8-9a48-1f0d3ac1d6f2",
        &bounce("Permanent", "General", &["twice@example.com"]),
    );
    for _ in 0..2 {
        let r = post(&gw, &message).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let entries = history(&gw, "twice@example.com").await;
    assert_eq!(
        entries,
        [(
            "ses".to_string(),
            "6e5bd9a7-5b2f-5fd8-9a48-1f0d3ac1d6f2:twice@example.com".to_string(),
            "applied".to_string()
        )]
    );
    gw.stop().await;
}

#[tokio::test]
async fn per_tenant_path_takes_only_that_tenants_topics() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fetch.clone()).await;
    let message = bounce("Permanent", "General", &["p@example.com"]);

    let r = post_to(
        &gw,
        "/webhooks/ses/globex",
        &notification(GLOBEX_TOPIC, "g1", &message),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(verdict(&redis, "globex", "p@example.com").await.blocked);

    let before = redis.snapshot();
    let r = post_to(
        &gw,
        "/webhooks/ses/globex",
        &notification(ACME_TOPIC, "a1", &message),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("not in tenants.globex.ses.topic_arns"),
        "{}",
        r.body
    );
    let r = post_to(
        &gw,
        "/webhooks/ses/nobody",
        &notification(ACME_TOPIC, "a2", &message),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    assert_eq!(
        fetch.fetched(),
        vec![CERT_URL.to_string()],
        "only for the good one"
    );
    gw.stop().await;
}

#[tokio::test]
async fn refusals_change_nothing_and_fetch_nothing_they_should_not() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fetch.clone()).await;
    let message = bounce("Permanent", "General", &["victim@example.com"]);
    let before = redis.snapshot();

    // An unknown topic: refused before anything is fetched.
    let r = post(&gw, &notification(UNKNOWN_TOPIC, "u1", &message)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains(UNKNOWN_TOPIC) && r.body.contains("nothing fetched"),
        "{}",
        r.body
    );
    assert!(fetch.fetched().is_empty());

    // A certificate URL off the allow-list, for a known topic: refused unfetched.
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-test.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.txt",
    ] {
        let mut envelope = notification(ACME_TOPIC, "c1", &message);
        envelope["SigningCertURL"] = json!(url);
        let r = post(&gw, &envelope).await;
        assert_eq!(r.status, 401, "{url}: {}", r.body);
        assert!(r.body.contains("SigningCertURL"), "{}", r.body);
    }
    assert!(fetch.fetched().is_empty(), "{:?}", fetch.fetched());

    // A tampered Message: the signature no longer matches.
    let mut envelope = notification(ACME_TOPIC, "t1", &message);
    envelope["Message"] =
        json!(bounce("Permanent", "General", &["someone-else@example.com"]).to_string());
    let r = post(&gw, &envelope).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("does not match"), "{}", r.body);
    // Tampered Subject (added after signing), and a v2 signature relabelled v1.
    let mut envelope = notification(ACME_TOPIC, "t2", &message);
    envelope["Subject"] = json!("Amazon SES Email Event Notification");
    assert_eq!(post(&gw, &envelope).await.status, 401);
    let mut envelope = notification(ACME_TOPIC, "t3", &message);
    envelope["SignatureVersion"] = json!("1");
    assert_eq!(post(&gw, &envelope).await.status, 401);
    let mut envelope = notification(ACME_TOPIC, "t4", &message);
    envelope["SignatureVersion"] = json!("3");
    assert_eq!(post(&gw, &envelope).await.status, 401);

    // Wrong content type, wrong message-type header, no envelope, raw delivery.
    let good = notification(ACME_TOPIC, "w1", &message).to_string();
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/ses",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        good.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/ses",
        &[
            ("Content-Type", "text/plain"),
            ("x-amz-sns-message-type", "SubscriptionConfirmation"),
        ],
        good.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/ses",
        &[("Content-Type", "text/plain")],
        message.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/ses",
        &[
            ("Content-Type", "text/plain"),
            ("x-amz-sns-rawdelivery", "true"),
        ],
        good.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    assert_eq!(redis.snapshot(), before, "no refusal wrote anything");
    assert!(!verdict(&redis, "acme", "victim@example.com").await.blocked);
    // Only the signature checks of known topics with good URLs fetched, and the
    // certificate once.
    assert_eq!(fetch.fetched(), vec![CERT_URL.to_string()]);
    gw.stop().await;
}

#[tokio::test]
async fn subscription_confirmation_fetches_exactly_its_subscribe_url() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fetch.clone()).await;

    let r = post(&gw, &confirmation(UNKNOWN_TOPIC)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        fetch.fetched().is_empty(),
        "an unknown topic fetches nothing"
    );

    let r = post(&gw, &confirmation(ACME_TOPIC)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("confirmed"), "{}", r.body);
    assert_eq!(
        fetch.fetched(),
        vec![CERT_URL.to_string(), subscribe_url(ACME_TOPIC)]
    );

    // A SubscribeURL off the SNS hosts is never fetched, even when signed.
    let mut evil = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "m2", "Token": "t", "TopicArn": ACME_TOPIC,
        "Message": "confirm", "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription",
        "Timestamp": iso_now(), "SigningCertURL": CERT_URL,
    });
    sign::sns(&mut evil, TEST_KEY, 2).unwrap();
    let r = post(&gw, &evil).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(fetch.fetched().len(), 2, "{:?}", fetch.fetched());

    // Unsubscribe confirmations are noted, nothing fetched.
    let mut unsubscribe = confirmation(ACME_TOPIC);
    unsubscribe["Type"] = json!("UnsubscribeConfirmation");
    sign::sns(&mut unsubscribe, TEST_KEY, 2).unwrap();
    let r = post(&gw, &unsubscribe).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fetch.fetched().len(), 2, "{:?}", fetch.fetched());
    assert!(redis.snapshot().is_empty(), "handshakes write nothing");
    gw.stop().await;
}

#[tokio::test]
async fn subscriptions_are_left_pending_when_confirming_is_off() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let config = config(&redis, "[sns]\nconfirm_subscriptions = false");
    let gw = TestGateway::start_with_fetch(&config, fetch.clone()).await;
    let r = post(&gw, &confirmation(ACME_TOPIC)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("NOT confirmed"), "{}", r.body);
    assert_eq!(
        fetch.fetched(),
        vec![CERT_URL.to_string()],
        "SubscribeURL not fetched"
    );
    gw.stop().await;
}

/// The real SNS messages of the vectors, posted end to end with their genuine
/// certificate: issued for `sns.amazonaws.com` as SNS's us-east-2 certificates are, so
/// it passes the name check, but expired since 2022, so every one is refused (their
/// signatures verify under it at a time it was valid: `signature::sns`'s unit tests).
/// The look-alike host is refused before anything is fetched.
#[tokio::test]
async fn real_sns_messages_are_refused_once_their_certificate_has_expired() {
    let redis = RedisServer::start();
    let fetch = fixture_fetch();
    let topics: Vec<String> = vectors()
        .iter()
        .map(|v| {
            let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            format!("\"{}\"", body["TopicArn"].as_str().unwrap())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let extra = format!(
        "[tenants.vectors]\napi_tokens = [\"vectors-token\"]\n\n[tenants.vectors.ses]\ntopic_arns = [{}]",
        topics.join(", ")
    );
    let gw = TestGateway::start_with_fetch(&config(&redis, &extra), fetch.clone()).await;
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let headers: Vec<(&str, &str)> = v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, val)| (k.as_str(), val.as_str().unwrap()))
            .collect();
        let r = http(
            gw.addr,
            "POST",
            "/webhooks/ses",
            &headers,
            v["body"].as_str().unwrap().as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        let want = if name.contains("host") {
            "SigningCertURL"
        } else {
            "expired at 2022-08-17"
        };
        assert!(r.body.contains(want), "{name}: {}", r.body);
    }
    assert_eq!(
        fetch.fetched().len(),
        1,
        "one certificate, fetched once: {:?}",
        fetch.fetched()
    );
    assert!(redis.snapshot().is_empty());
    gw.stop().await;
}

/// A `Subscription` event in the shape of AWS's example (SES event publishing, list
/// management): the contact named in `mail.destination` changed their preferences for
/// contact list `ContactListName`.
fn subscription_event(recipient: &str, new_prefs: Value, old_prefs: Value) -> Value {
    json!({
        "eventType": "Subscription",
        "mail": {"timestamp": iso_ago(5_000), "source": "sender@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
            "sendingAccountId": "123456789012",
            "messageId": "EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
            "destination": [recipient], "headersTruncated": false,
            "headers": [{"name": "From", "value": "sender@example.com"},
                {"name": "To", "value": recipient},
                {"name": "Subject", "value": "Message sent from Amazon SES"}],
            "commonHeaders": {"from": ["sender@example.com"], "to": [recipient],
                "messageId": "EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
                "subject": "Message sent from Amazon SES"},
            "tags": {"ses:operation": ["SendEmail"], "ses:configuration-set": ["ConfigSet"]}},
        "subscription": {"contactList": "ContactListName", "timestamp": iso_ago(1_000),
            "source": "UnsubscribeHeader",
            "newTopicPreferences": new_prefs, "oldTopicPreferences": old_prefs}
    })
}

/// Issue 12 item 16 (SES): a contact-list unsubscribe (`unsubscribeAll`, as from the
/// one-click List-Unsubscribe header SES adds) is an email unsubscribe under the
/// tenant's policy (every channel by default); a single topic's opt-out blocks
/// marketing email; an opt-in lifts nothing (a list change proves no consent).
#[tokio::test]
async fn item_16_ses_subscription_events_are_unsubscribes() {
    let redis = RedisServer::start();
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), fixture_fetch()).await;
    let topic =
        |status: &str| json!([{"topicName": "ExampleTopicName", "subscriptionStatus": status}]);

    let all = subscription_event(
        "Leaver@Example.com",
        json!({"unsubscribeAll": true, "topicSubscriptionStatus": topic("OptOut")}),
        json!({"unsubscribeAll": false, "topicSubscriptionStatus": topic("OptOut")}),
    );
    let r = post(&gw, &notification(ACME_TOPIC, "sub-1", &all)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("applied 1 event(s)"), "{}", r.body);
    let v = verdict(&redis, "acme", "leaver@example.com").await;
    assert_eq!(state(&v), Some(State::Permanent), "{v:?}");
    assert_eq!(v.record.as_ref().unwrap().reason, "ses:stop");
    // email_unsubscribe_scope = "all" (the default): every channel of the contact.
    assert_eq!(v.scope, Some(dndgate::event::Scope::All), "{v:?}");

    let one_topic = subscription_event(
        "topic@example.com",
        json!({"unsubscribeAll": false, "topicSubscriptionStatus": topic("OPT_OUT")}),
        json!({"unsubscribeAll": false, "topicSubscriptionStatus": topic("OPT_IN")}),
    );
    let r = post(&gw, &notification(ACME_TOPIC, "sub-2", &one_topic)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", "topic@example.com").await;
    assert!(v.blocked && v.marketing_only, "{v:?}");

    // Opting back in changes nothing: only the contact's START-like consent or an
    // operator with evidence lifts an unsubscribe.
    let before = redis.snapshot();
    let back = subscription_event(
        "leaver@example.com",
        json!({"unsubscribeAll": false, "topicSubscriptionStatus": topic("OptIn")}),
        json!({"unsubscribeAll": true, "topicSubscriptionStatus": topic("OptOut")}),
    );
    let r = post(&gw, &notification(ACME_TOPIC, "sub-3", &back)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    assert!(verdict(&redis, "acme", "leaver@example.com").await.blocked);
    gw.stop().await;
}

/// Issue 12 item 10: the certificate a SigningCertURL serves must be issued for SNS at
/// that host and be valid now. A certificate for another name (what anyone can make
/// and host wherever a look-alike host lets them), an expired one and one not yet valid
/// are refused with 401 and change nothing; the same key under a proper certificate
/// verifies.
#[tokio::test]
async fn item_10_a_certificate_not_issued_for_sns_or_out_of_date_is_refused() {
    let redis = RedisServer::start();
    let now = now_ms() / 1000;
    let url = |name: &str| {
        format!("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{name}.pem")
    };
    let fixture = FixtureFetch::default();
    let cases: &[(&str, String, bool)] = &[
        (
            "wrong-name",
            self_signed_cert_pem(
                TEST_KEY,
                "attacker.example.com",
                &["attacker.example.com"],
                now - 3600,
                now + 86_400,
            ),
            false,
        ),
        (
            "cn-lookalike",
            self_signed_cert_pem(
                TEST_KEY,
                "sns.amazonaws.com.attacker.example",
                &[],
                now - 3600,
                now + 86_400,
            ),
            false,
        ),
        (
            "expired",
            self_signed_cert_pem(
                TEST_KEY,
                "sns.amazonaws.com",
                &["sns.amazonaws.com"],
                now - 86_400 * 30,
                now - 86_400,
            ),
            false,
        ),
        (
            "not-yet-valid",
            self_signed_cert_pem(
                TEST_KEY,
                "sns.amazonaws.com",
                &["sns.amazonaws.com"],
                now + 86_400,
                now + 86_400 * 30,
            ),
            false,
        ),
        (
            "good",
            self_signed_cert_pem(
                TEST_KEY,
                "sns.amazonaws.com",
                &["sns.amazonaws.com"],
                now - 3600,
                now + 86_400,
            ),
            true,
        ),
    ];
    for (name, pem, _) in cases {
        fixture.serve(&url(name), pem.as_str());
    }
    let gw = TestGateway::start_with_fetch(&config(&redis, ""), Arc::new(fixture)).await;
    for (i, (name, _, good)) in cases.iter().enumerate() {
        let address = format!("cert-{name}@example.com");
        let mut envelope = notification(
            ACME_TOPIC,
            &format!("item10-{i}"),
            &bounce("Permanent", "General", &[address.as_str()]),
        );
        // SigningCertURL is not among the signed fields.
        envelope["SigningCertURL"] = json!(url(name));
        let before = redis.snapshot();
        let r = post(&gw, &envelope).await;
        if *good {
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            assert!(verdict(&redis, "acme", &address).await.blocked, "{name}");
        } else {
            assert_eq!(r.status, 401, "{name}: {}", r.body);
            assert!(r.body.contains("certificate"), "{name}: {}", r.body);
            assert_eq!(redis.snapshot(), before, "{name}: nothing changed");
        }
    }
    gw.stop().await;
}
