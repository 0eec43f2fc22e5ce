//! End to end: SendGrid Event Webhook batches in SendGrid's documented shape (CRLF
//! between events and at the end), signed with ECDSA P-256 by a test key, through a
//! running gateway into a real redis-server, read back through the lookup.

mod common;

use base64::Engine as _;
use common::*;
use dndgate::event::Channel;
use dndgate::store::State;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

const SIG: &str = "X-Twilio-Email-Event-Webhook-Signature";
const TS: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// The private scalars (hex) acme signs with now, and the one being rotated out (both
/// configured), and a stranger's.
const KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";
const OLD_KEY: &str = "1717171717171717171717171717171717171717171717171717171717171717";
const STRANGER_KEY: &str = "9999999999999999999999999999999999999999999999999999999999999999";

/// The public key of the scalar `key_hex` as SendGrid shows it: base64 DER
/// SubjectPublicKeyInfo.
fn public_key_b64(key_hex: &str) -> String {
    let sk = SigningKey::from_slice(&hex::decode(key_hex).unwrap()).unwrap();
    let der = sk.verifying_key().to_public_key_der().unwrap();
    base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
}

/// The official single-event vector: its key for globex, to post SendGrid's own bytes.
fn official() -> Value {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("providers/sendgrid/vectors.json")).unwrap();
    vectors[0].clone()
}

fn config(redis: &RedisServer) -> String {
    let base = config_text(&redis.url());
    let acme = format!(
        "[tenants.acme.sendgrid]\npublic_keys = [\"{}\", \"{}\"]\n\n[tenants.globex]\n",
        public_key_b64(OLD_KEY),
        public_key_b64(KEY)
    );
    let base = base.replacen("[tenants.globex]\n", &acme, 1);
    format!(
        "{base}\n[tenants.globex.sendgrid]\npublic_keys = [\"{}\"]\n",
        official()["secret"].as_str().unwrap()
    )
}

/// A batch as SendGrid sends it: `[e1,\r\ne2]\r\n`.
fn batch(events: &[Value]) -> String {
    let parts: Vec<String> = events.iter().map(Value::to_string).collect();
    format!("[{}]\r\n", parts.join(",\r\n"))
}

fn ev(event: &str, email: &str, id: &str, ts: u64, extra: Value) -> Value {
    let mut e = json!({
        "email": email, "event": event, "sg_event_id": id, "timestamp": ts,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "category": ["cat facts"],
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

async fn post_signed(
    gw: &TestGateway,
    tenant: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http(
        gw.addr,
        "POST",
        &format!("/webhooks/sendgrid/{tenant}"),
        &all,
        body,
    )
    .await
}

async fn post(gw: &TestGateway, body: &str) -> HttpResponse {
    let ts = now_s().to_string();
    let sig = sign::sendgrid(KEY, &ts, body.as_bytes());
    post_signed(gw, "acme", body.as_bytes(), &[(SIG, &sig), (TS, &ts)]).await
}

/// Entries in the audit stream shard of `email` (shared with other addresses of the
/// shard, so only its changes are meaningful).
#[tokio::test]
async fn bounces_blocks_and_complaints_and_a_replayed_batch_is_applied_once() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s() - 100;
    let body = batch(&[
        ev("processed", "hard@example.com", "p1", t, json!({})),
        ev(
            "bounce",
            "Hard@Example.com",
            "b1",
            t,
            json!({"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 no such user"}),
        ),
        ev(
            "bounce",
            "rep@example.com",
            "b2",
            t,
            json!({"type": "blocked", "status": "5.7.1", "bounce_classification": "Reputation"}),
        ),
        ev(
            "bounce",
            "full@example.com",
            "b3",
            t,
            json!({"type": "blocked", "status": "4.2.2", "bounce_classification": "Mailbox Unavailable"}),
        ),
        ev(
            "bounce",
            "gone@example.com",
            "b4",
            t,
            json!({"type": "blocked", "bounce_classification": "Invalid Address"}),
        ),
        ev(
            "deferred",
            "slow@example.com",
            "d1",
            t,
            json!({"response": "450 try later", "attempt": "2"}),
        ),
        ev(
            "dropped",
            "dropped@example.com",
            "x1",
            t,
            json!({"reason": "Bounced Address"}),
        ),
        ev("spamreport", "angry@example.com", "s1", t, json!({})),
        ev(
            "delivered",
            "ok@example.com",
            "ok1",
            t,
            json!({"response": "250 OK"}),
        ),
        ev(
            "open",
            "ok@example.com",
            "o1",
            t,
            json!({"useragent": "Mozilla"}),
        ),
    ]);
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("applied 7 event(s)"), "{}", r.body);

    for (email, want) in [
        (
            "hard@example.com",
            Some((State::Permanent, "sendgrid:bounce")),
        ),
        (
            "gone@example.com",
            Some((State::Permanent, "sendgrid:blocked.invalid-address")),
        ),
        (
            "full@example.com",
            Some((State::Temporary, "sendgrid:blocked.mailbox-unavailable")),
        ),
        (
            "dropped@example.com",
            Some((State::Permanent, "sendgrid:dropped.bounced-address")),
        ),
        (
            "angry@example.com",
            Some((State::Permanent, "sendgrid:complaint")),
        ),
        ("rep@example.com", None),
        ("slow@example.com", None),
        ("ok@example.com", None),
    ] {
        let v = verdict(&redis, "acme", Channel::Email, email).await;
        let got = v.record.as_ref().map(|r| (r.state, r.reason.as_str()));
        assert_eq!(v.blocked, want.is_some(), "{email}");
        assert_eq!(got, want, "{email}");
        // Email events are about email: SMS of the same contact is untouched.
        assert!(v.scope.is_none_or(|s| s.as_str() == "email"), "{email}");
    }

    // SendGrid retries the same batch (same bytes, same signature): applied once.
    let before: Vec<usize> = ["hard@example.com", "full@example.com", "angry@example.com"]
        .iter()
        .map(|e| email_audit_len(&redis, e))
        .collect();
    assert!(before.iter().all(|n| *n > 0));
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after: Vec<usize> = ["hard@example.com", "full@example.com", "angry@example.com"]
        .iter()
        .map(|e| email_audit_len(&redis, e))
        .collect();
    assert_eq!(
        after, before,
        "a redelivered batch is deduplicated by sg_event_id"
    );
    gw.stop().await;
}

#[tokio::test]
async fn unsubscribe_blocks_every_channel_of_the_contact_and_resubscribe_lifts_it() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "PUT",
        "/v1/tenants/acme/contacts/erin",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"addresses": ["+14155550100", "erin@example.com"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let t = now_s() - 100;
    let body = batch(&[ev(
        "group_unsubscribe",
        "Erin@example.com",
        "u1",
        t,
        json!({"asm_group_id": 42}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    for (channel, address) in [
        (Channel::Email, "erin@example.com"),
        (Channel::Sms, "+14155550100"),
        (Channel::Whatsapp, "+14155550100"),
    ] {
        let v = verdict(&redis, "acme", channel, address).await;
        assert!(v.blocked, "{channel} {address}");
        assert_eq!(v.scope.unwrap().as_str(), "all");
        assert_eq!(v.record.unwrap().reason, "sendgrid:group:42");
    }

    // A global unsubscribe of someone not linked: the `all` record on the email.
    let body = batch(&[ev("unsubscribe", "solo@example.com", "u2", t, json!({}))]);
    assert_eq!(post(&gw, &body).await.status, 200);
    let v = verdict(&redis, "acme", Channel::Email, "solo@example.com").await;
    assert!(v.blocked);
    assert_eq!(v.scope.unwrap().as_str(), "all");

    // The contact resubscribes to the group later: lifted everywhere.
    let body = batch(&[ev(
        "group_resubscribe",
        "erin@example.com",
        "r1",
        t + 10,
        json!({"asm_group_id": 42}),
    )]);
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (channel, address) in [
        (Channel::Email, "erin@example.com"),
        (Channel::Sms, "+14155550100"),
    ] {
        assert!(
            !verdict(&redis, "acme", channel, address).await.blocked,
            "{channel}"
        );
    }

    // A late, older unsubscribe (a retry from before the resubscribe) does not undo it.
    let body = batch(&[ev(
        "unsubscribe",
        "erin@example.com",
        "u3",
        t + 5,
        json!({}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    assert!(
        !verdict(&redis, "acme", Channel::Email, "erin@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_malformed_event_applies_the_rest() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();
    let body = batch(&[
        ev("spamreport", "first@example.com", "m1", t, json!({})),
        json!({"event": "bounce", "type": "bounce", "email": "no id@", "timestamp": t}),
        ev(
            "bounce",
            "third@example.com",
            "m3",
            t,
            json!({"type": "bounce"}),
        ),
    ]);
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied 2 event(s)"), "{}", r.body);
    assert!(r.body.contains("refused 1: event 1: "), "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "first@example.com")
            .await
            .blocked
    );
    assert!(
        verdict(&redis, "acme", Channel::Email, "third@example.com")
            .await
            .blocked
    );

    // A verified body that is not a batch at all: 400, nothing written.
    let before = redis.snapshot();
    let r = post(&gw, "{\"event\":\"bounce\"}\r\n").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

#[tokio::test]
async fn the_official_vector_verifies_through_the_gateway() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let v = official();
    let h = &v["headers"];
    let r = post_signed(
        &gw,
        "globex",
        v["body"].as_str().unwrap().as_bytes(),
        &[
            (SIG, h[SIG].as_str().unwrap()),
            (TS, h[TS].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "globex", Channel::Email, "hello@world.com").await;
    assert!(v.blocked);
    assert_eq!(v.record.unwrap().reason, "sendgrid:dropped.bounced-address");
    gw.stop().await;
}

#[tokio::test]
async fn rotation_accepts_the_old_key_too() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let body = batch(&[ev(
        "spamreport",
        "rot@example.com",
        "k1",
        now_s(),
        json!({}),
    )]);
    let ts = now_s().to_string();
    let sig = sign::sendgrid(OLD_KEY, &ts, body.as_bytes());
    let r = post_signed(&gw, "acme", body.as_bytes(), &[(SIG, &sig), (TS, &ts)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Email, "rot@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

/// A refused request: name, tenant, content type, body, headers, status, and a
/// fragment of the answer.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    u16,
    &'a str,
);

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    // Something in Redis first, so "unchanged" is not trivially "empty".
    let seed = batch(&[ev(
        "spamreport",
        "seed@example.com",
        "seed",
        now_s(),
        json!({}),
    )]);
    assert_eq!(post(&gw, &seed).await.status, 200);

    let body = batch(&[ev(
        "bounce",
        "victim@example.com",
        "evil1",
        now_s(),
        json!({"type": "bounce"}),
    )]);
    let ts = now_s().to_string();
    let good = sign::sendgrid(KEY, &ts, body.as_bytes());
    let wrong_key = sign::sendgrid(STRANGER_KEY, &ts, body.as_bytes());
    let stripped = body.trim_end().to_string();
    let tampered = body.replace("victim@", "other@");
    let next_second = (now_s() + 1).to_string();
    let official = official();
    let official_sig = official["headers"][SIG].as_str().unwrap().to_string();

    let cases: Vec<Case> = vec![
        (
            "unsigned",
            "acme",
            "application/json",
            &body,
            vec![],
            401,
            "Signed Event Webhook",
        ),
        (
            "no timestamp",
            "acme",
            "application/json",
            &body,
            vec![(SIG, &good)],
            401,
            TS,
        ),
        (
            "wrong key",
            "acme",
            "application/json",
            &body,
            vec![(SIG, &wrong_key), (TS, &ts)],
            401,
            "does not match",
        ),
        (
            "tampered body",
            "acme",
            "application/json",
            &tampered,
            vec![(SIG, &good), (TS, &ts)],
            401,
            "does not match",
        ),
        (
            "stripped CRLF",
            "acme",
            "application/json",
            &stripped,
            vec![(SIG, &good), (TS, &ts)],
            401,
            "does not match",
        ),
        (
            "other timestamp",
            "acme",
            "application/json",
            &body,
            vec![(SIG, &good), (TS, &next_second)],
            401,
            "does not match",
        ),
        (
            "garbage signature",
            "acme",
            "application/json",
            &body,
            vec![(SIG, "not-base64!"), (TS, &ts)],
            401,
            "malformed",
        ),
        (
            "another tenant's signature",
            "acme",
            "application/json",
            official["body"].as_str().unwrap(),
            vec![(SIG, &official_sig), (TS, "1600112502")],
            401,
            "does not match",
        ),
        (
            "form content",
            "acme",
            "application/x-www-form-urlencoded",
            &body,
            vec![(SIG, &good), (TS, &ts)],
            415,
            "application/json",
        ),
        (
            "unknown tenant",
            "initech",
            "application/json",
            &body,
            vec![(SIG, &good), (TS, &ts)],
            404,
            "unknown tenant",
        ),
    ];
    for (name, tenant, content_type, body, headers, status, fragment) in cases {
        let before = redis.snapshot();
        let mut all = vec![("Content-Type", content_type)];
        all.extend(headers);
        let r = http(
            gw.addr,
            "POST",
            &format!("/webhooks/sendgrid/{tenant}"),
            &all,
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.body.contains(fragment), "{name}: {}", r.body);
        assert_eq!(r.body.trim_end().lines().count(), 1, "{name}: one line");
        assert_eq!(redis.snapshot(), before, "{name}: redis must be unchanged");
    }
    assert!(
        !verdict(&redis, "acme", Channel::Email, "victim@example.com")
            .await
            .blocked
    );
    assert!(
        !verdict(&redis, "acme", Channel::Email, "other@example.com")
            .await
            .blocked
    );
    gw.stop().await;
}

/// Issue 12 item 14: a `bounce` without `type`, as in the batch SendGrid posts when the
/// Event Webhook is tested from its settings page, is a bounce all the same: SendGrid
/// puts the address on its bounce suppression list, so dndgate records a permanent email
/// DND with reason `sendgrid:bounce`. A `blocked` bounce keeps its own rule (no
/// classification: nothing).
#[tokio::test]
async fn item_14_a_bounce_without_type_is_a_permanent_email_dnd() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s() - 30;
    let body = batch(&[
        ev(
            "bounce",
            "untyped@example.com",
            "sg-untyped-1",
            t,
            json!({"reason": "500 unknown recipient", "status": "5.0.0"}),
        ),
        ev(
            "bounce",
            "blocked@example.com",
            "sg-blocked-1",
            t,
            json!({"type": "blocked", "reason": "550 blocked", "status": "5.7.1"}),
        ),
    ]);
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Email, "untyped@example.com").await;
    assert!(v.blocked, "{v:?}");
    let record = v.record.unwrap();
    assert_eq!(record.state, State::Permanent);
    assert_eq!(record.reason, "sendgrid:bounce");
    let v = verdict(&redis, "acme", Channel::Email, "blocked@example.com").await;
    assert!(!v.blocked && v.record.is_none(), "{v:?}");
    gw.stop().await;
}

/// Issue 12 item 11: a group unsubscribe is recorded for its group, and the matching
/// `group_resubscribe` lifts that record only. A global `unsubscribe`, a bounce or a
/// spam report stays, on every channel of a linked contact; another group's
/// resubscribe lifts nothing.
#[tokio::test]
async fn item_11_group_resubscribe_lifts_only_its_own_group_unsubscribe() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "PUT",
        "/v1/tenants/acme/contacts/gina",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"addresses": ["+14155550111", "gina@example.com"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = now_s() - 100;
    let blocked = |channel: Channel, address: &'static str| {
        let redis = &redis;
        async move { verdict(redis, "acme", channel, address).await.blocked }
    };

    // A global unsubscribe, then a group resubscribe: the unsubscribe stays.
    let body = batch(&[ev("unsubscribe", "gina@example.com", "g1", t, json!({}))]);
    assert_eq!(post(&gw, &body).await.status, 200);
    let body = batch(&[ev(
        "group_resubscribe",
        "gina@example.com",
        "g2",
        t + 10,
        json!({"asm_group_id": 42}),
    )]);
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        blocked(Channel::Email, "gina@example.com").await,
        "global unsubscribe stays"
    );
    assert!(
        blocked(Channel::Sms, "+14155550111").await,
        "on every channel"
    );

    // A group unsubscribe on top of the global one, and its resubscribe: still blocked.
    let body = batch(&[ev(
        "group_unsubscribe",
        "gina@example.com",
        "g3",
        t + 20,
        json!({"asm_group_id": 42}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    let body = batch(&[ev(
        "group_resubscribe",
        "gina@example.com",
        "g4",
        t + 30,
        json!({"asm_group_id": 42}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    assert!(
        blocked(Channel::Email, "gina@example.com").await,
        "global unsubscribe stays"
    );

    // A bounce and a spam report stay too.
    for (i, (event, extra)) in [
        (
            "bounce",
            json!({"type": "bounce", "reason": "550 5.1.1 unknown user", "status": "5.1.1"}),
        ),
        ("spamreport", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let email: &'static str = ["bounced@example.com", "spam@example.com"][i];
        let body = batch(&[ev(event, email, &format!("b{i}"), t, extra)]);
        assert_eq!(post(&gw, &body).await.status, 200);
        let body = batch(&[ev(
            "group_resubscribe",
            email,
            &format!("r{i}"),
            t + 10,
            json!({"asm_group_id": 42}),
        )]);
        assert_eq!(post(&gw, &body).await.status, 200);
        assert!(blocked(Channel::Email, email).await, "{event} stays");
    }

    // A group unsubscribe alone: recorded for its group; another group's resubscribe
    // lifts nothing, its own lifts it.
    let body = batch(&[ev(
        "group_unsubscribe",
        "hal@example.com",
        "h1",
        t,
        json!({"asm_group_id": 42}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    let v = verdict(&redis, "acme", Channel::Email, "hal@example.com").await;
    assert!(v.blocked);
    assert_eq!(v.record.unwrap().reason, "sendgrid:group:42");
    let body = batch(&[ev(
        "group_resubscribe",
        "hal@example.com",
        "h2",
        t + 10,
        json!({"asm_group_id": 7}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    assert!(
        blocked(Channel::Email, "hal@example.com").await,
        "group 7 is not group 42"
    );
    let body = batch(&[ev(
        "group_resubscribe",
        "hal@example.com",
        "h3",
        t + 20,
        json!({"asm_group_id": 42}),
    )]);
    assert_eq!(post(&gw, &body).await.status, 200);
    assert!(
        !blocked(Channel::Email, "hal@example.com").await,
        "its own group lifts it"
    );
    gw.stop().await;
}
