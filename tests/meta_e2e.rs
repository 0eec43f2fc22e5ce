//! End to end: Meta webhooks (WhatsApp Cloud API, Messenger, Instagram) in Meta's
//! documented shapes, signed with X-Hub-Signature-256, through a running gateway into a
//! real redis-server, read back through the lookup and the audit history.

mod common;

use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use serde_json::{Value, json};

const APP_SECRET: &str = "meta-app-secret";
const OLD_APP_SECRET: &str = "meta-app-secret-being-rotated-out";
const VERIFY_TOKEN: &str = "meatyhamhock";
const ACME_PHONE_ID: &str = "106540352242922";
const ACME_WABA: &str = "102290129340398";
const ACME_PAGE: &str = "1111111111";
const ACME_IG: &str = "17841400000000000";
const GLOBEX_PHONE_ID: &str = "200000000000001";

fn config(redis: &RedisServer) -> String {
    let base = config_text(&redis.url());
    let base = base.replacen(
        "[tenants.acme.twilio]",
        &format!(
            "[tenants.acme.meta]\nwhatsapp_phone_number_ids = [\"{ACME_PHONE_ID}\"]\nwhatsapp_business_account_ids = [\"{ACME_WABA}\"]\npage_ids = [\"{ACME_PAGE}\"]\ninstagram_account_ids = [\"{ACME_IG}\"]\n\n[tenants.acme.twilio]"
        ),
        1,
    );
    let base = base.replacen(
        "[tenants.globex.twilio]",
        &format!("[tenants.globex.meta]\nwhatsapp_phone_number_ids = [\"{GLOBEX_PHONE_ID}\"]\n\n[tenants.globex.twilio]"),
        1,
    );
    format!(
        "{base}\n[meta]\napp_secrets = [\"{OLD_APP_SECRET}\", \"{APP_SECRET}\"]\nverify_tokens = [\"{VERIFY_TOKEN}\"]\n"
    )
}

async fn post(gw: &TestGateway, body: &str) -> HttpResponse {
    post_signed(gw, body, &sign::meta(APP_SECRET, body.as_bytes())).await
}

async fn post_signed(gw: &TestGateway, body: &str, signature: &str) -> HttpResponse {
    http(
        gw.addr,
        "POST",
        "/webhooks/meta",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", signature),
        ],
        body.as_bytes(),
    )
    .await
}

/// A WhatsApp webhook of one change for a business phone number.
fn whatsapp(phone_number_id: &str, field: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "15550783881", "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account", "entry": [
        {"id": ACME_WABA, "changes": [{"field": field, "value": value}]}
    ]})
}

fn wa_text(from: &str, wamid: &str, text: &str, ts: u64) -> Value {
    json!({
        "contacts": [{"profile": {"name": "Kerry"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": ts.to_string(), "type": "text", "text": {"body": text}}]
    })
}

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_verify_token() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let ok =
        "/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
    let r = http(gw.addr, "GET", ok, &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "1158201444"));
    let bad = "/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong";
    let r = http(gw.addr, "GET", bad, &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains("1158201444"));
    gw.stop().await;
}

#[tokio::test]
async fn whatsapp_stop_start_buttons_statuses_and_preferences() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();

    // Inbound STOP (with an accented word elsewhere in the batch: Meta escapes it).
    let body = whatsapp(
        ACME_PHONE_ID,
        "messages",
        wa_text("16505551234", "wamid.STOP1", "Stop", t),
    )
    .to_string();
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505551234").await;
    assert!(v.blocked && !v.marketing_only);
    assert_eq!(v.record.unwrap().reason, "keyword:STOP");
    // Not SMS: a WhatsApp STOP is about WhatsApp.
    assert!(
        !verdict(&redis, "acme", Channel::Sms, "+16505551234")
            .await
            .blocked
    );
    let body = whatsapp(
        ACME_PHONE_ID,
        "messages",
        wa_text("16505551234", "wamid.START1", "START", t + 1),
    )
    .to_string();
    assert_eq!(post(&gw, &body).await.status, 200);
    assert!(
        !verdict(&redis, "acme", Channel::Whatsapp, "+16505551234")
            .await
            .blocked
    );

    // Both are in the audit history, with Meta's message ids and event times.
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "GET",
        "/v1/tenants/acme/history/%2B16505551234",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    let history: Value = serde_json::from_str(&r.body).unwrap();
    let entries: Vec<(&str, &str, &str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["scope"].as_str().unwrap(),
                e["provider"].as_str().unwrap(),
                e["event_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("whatsapp", "meta", "wamid.STOP1", "applied"),
            ("whatsapp", "meta", "wamid.START1", "applied")
        ]
    );
    assert_eq!(history["entries"][0]["event_ms"], (t * 1000).to_string());

    // The "Stop promotions" button of a marketing template: marketing only.
    let button = json!({
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "16505550002"}],
        "messages": [{"context": {"from": "15550783881", "id": "wamid.TEMPLATE"}, "from": "16505550002",
            "id": "wamid.BTN1", "timestamp": t.to_string(), "type": "button",
            "button": {"payload": "Stop promotions", "text": "Stop promotions"}}]
    });
    assert_eq!(
        post(
            &gw,
            &whatsapp(ACME_PHONE_ID, "messages", button).to_string()
        )
        .await
        .status,
        200
    );
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505550002").await;
    assert!(v.blocked && v.marketing_only, "{v:?}");
    assert_eq!(v.record.unwrap().state, dndgate::store::State::Marketing);
    // The user resumes marketing through their preferences.
    let resume = json!({
        "contacts": [{"wa_id": "16505550002"}],
        "user_preferences": [{"wa_id": "16505550002", "detail": "User requested to resume marketing messages",
            "category": "marketing_messages", "value": "resume", "timestamp": t + 5}]
    });
    assert_eq!(
        post(
            &gw,
            &whatsapp(ACME_PHONE_ID, "user_preferences", resume).to_string()
        )
        .await
        .status,
        200
    );
    assert!(
        !verdict(&redis, "acme", Channel::Whatsapp, "+16505550002")
            .await
            .blocked
    );

    // A preference stop.
    let stop = json!({
        "contacts": [{"wa_id": "16505550003"}],
        "user_preferences": [{"wa_id": "16505550003", "detail": "User requested to stop marketing messages",
            "category": "marketing_messages", "value": "stop", "timestamp": t}]
    });
    assert_eq!(
        post(
            &gw,
            &whatsapp(ACME_PHONE_ID, "user_preferences", stop).to_string()
        )
        .await
        .status,
        200
    );
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505550003").await;
    assert!(v.blocked && v.marketing_only);

    // Statuses with errors: 131050 marketing, 131026 temporary, 131048 (ours) nothing.
    for (recipient, code, want) in [
        ("16505550004", 131050, Some("marketing")),
        ("16505550005", 131026, Some("temporary")),
        ("16505550006", 131048, None),
    ] {
        let before = redis.snapshot();
        let status = json!({"statuses": [{
            "id": format!("wamid.OUT{code}"), "status": "failed", "timestamp": t.to_string(), "recipient_id": recipient,
            "errors": [{"code": code, "title": "error", "message": "error", "error_data": {"details": "details"}}]
        }]});
        let r = post(
            &gw,
            &whatsapp(ACME_PHONE_ID, "messages", status).to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = verdict(&redis, "acme", Channel::Whatsapp, &format!("+{recipient}")).await;
        assert_eq!(
            v.blocked.then(|| v.record.clone().unwrap().state.as_str()),
            want,
            "{code}"
        );
        if want.is_none() {
            assert_eq!(
                redis.snapshot(),
                before,
                "131048 is about our sender: nothing written"
            );
        } else {
            assert_eq!(v.record.unwrap().reason, format!("meta:{code}"));
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn messenger_and_instagram() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t_ms = now_s() * 1000;
    let messaging = |object: &str, account: &str, event: Value| {
        json!({"object": object, "entry": [{"id": account, "time": t_ms, "messaging": [event]}]})
            .to_string()
    };
    let text = |account: &str, psid: &str, mid: &str, text: &str, at: u64| {
        json!({"sender": {"id": psid}, "recipient": {"id": account}, "timestamp": at,
               "message": {"mid": mid, "text": text}})
    };
    // Messenger STOP and START.
    let r = post(
        &gw,
        &messaging(
            "page",
            ACME_PAGE,
            text(ACME_PAGE, "2222222222", "m_1", "stop", t_ms),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let address = format!("{ACME_PAGE}:2222222222");
    assert!(
        verdict(&redis, "acme", Channel::Messenger, &address)
            .await
            .blocked
    );
    post(
        &gw,
        &messaging(
            "page",
            ACME_PAGE,
            text(ACME_PAGE, "2222222222", "m_2", "start", t_ms + 1),
        ),
    )
    .await;
    assert!(
        !verdict(&redis, "acme", Channel::Messenger, &address)
            .await
            .blocked
    );
    // Our own messages come back as echoes: never the contact's words.
    let echo = json!({"sender": {"id": ACME_PAGE}, "recipient": {"id": "2222222222"}, "timestamp": t_ms,
                      "message": {"mid": "m_3", "is_echo": true, "text": "STOP"}});
    post(&gw, &messaging("page", ACME_PAGE, echo)).await;
    assert!(
        !verdict(&redis, "acme", Channel::Messenger, &address)
            .await
            .blocked
    );
    // Messenger marketing notifications turned off: marketing only.
    let optout = json!({"sender": {"id": "3333333333"}, "recipient": {"id": ACME_PAGE}, "timestamp": t_ms,
        "optin": {"type": "notification_messages", "notification_messages_status": "STOP NOTIFICATIONS",
                  "notification_messages_token": "token-1"}});
    post(&gw, &messaging("page", ACME_PAGE, optout)).await;
    let v = verdict(
        &redis,
        "acme",
        Channel::Messenger,
        &format!("{ACME_PAGE}:3333333333"),
    )
    .await;
    assert!(v.blocked && v.marketing_only, "{v:?}");
    // Instagram STOP.
    let r = post(
        &gw,
        &messaging(
            "instagram",
            ACME_IG,
            text(ACME_IG, "4444444444", "ig_1", "STOP", t_ms),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(
            &redis,
            "acme",
            Channel::Instagram,
            &format!("{ACME_IG}:4444444444")
        )
        .await
        .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_is_split_by_tenant_and_unknown_accounts_are_skipped() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();
    let change = |phone_id: &str, from: &str, wamid: &str| {
        json!({"id": "999", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_id},
            "contacts": [{"wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": t.to_string(), "type": "text", "text": {"body": "STOP"}}]
        }}]})
    };
    let body = json!({"object": "whatsapp_business_account", "entry": [
        change(ACME_PHONE_ID, "16505559001", "wamid.A"),
        change(GLOBEX_PHONE_ID, "16505559002", "wamid.B"),
        change("777777777777777", "16505559003", "wamid.C"),
        {"id": "", "changes": []},
    ]})
    .to_string();
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Whatsapp, "+16505559001")
            .await
            .blocked
    );
    assert!(
        !verdict(&redis, "globex", Channel::Whatsapp, "+16505559001")
            .await
            .blocked
    );
    assert!(
        verdict(&redis, "globex", Channel::Whatsapp, "+16505559002")
            .await
            .blocked
    );
    assert!(
        !verdict(&redis, "acme", Channel::Whatsapp, "+16505559002")
            .await
            .blocked
    );
    for tenant in ["acme", "globex"] {
        assert!(
            !verdict(&redis, tenant, Channel::Whatsapp, "+16505559003")
                .await
                .blocked
        );
    }

    // A thousand entries in one request: every one applied.
    let entries: Vec<Value> = (0..1000)
        .map(|i| {
            change(
                ACME_PHONE_ID,
                &format!("1650556{i:04}"),
                &format!("wamid.K{i}"),
            )
        })
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": entries}).to_string();
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let numbers: Vec<String> = (0..1000).map(|i| format!("+1650556{i:04}")).collect();
    let verdicts = Lookup::connect(&redis.url())
        .unwrap()
        .check_many("acme", Channel::Whatsapp, &numbers)
        .await
        .unwrap();
    assert!(verdicts.iter().all(|v| v.as_ref().unwrap().blocked));
    gw.stop().await;
}

#[tokio::test]
async fn bad_meta_input_changes_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    // Meta signs the body as sent, with non-ASCII escaped: \u00e9.
    let sent = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{ACME_WABA}","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{ACME_PHONE_ID}"}},"contacts":[{{"wa_id":"16505558001"}}],"messages":[{{"from":"16505558001","id":"wamid.E1","timestamp":"{}","type":"text","text":{{"body":"arr\u00eat"}}}}]}}}}]}}]}}"#,
        now_s()
    );
    let good_signature = sign::meta(APP_SECRET, sent.as_bytes());
    let reserialised = serde_json::from_str::<Value>(&sent).unwrap().to_string();
    assert!(reserialised.contains('ê'));
    let unknown_object = json!({"object": "carrier_pigeon", "entry": []}).to_string();
    let cases: Vec<(&str, String, String, &str, u16)> = vec![
        (
            "unsigned",
            sent.clone(),
            String::new(),
            "application/json",
            401,
        ),
        (
            "wrong secret",
            sent.clone(),
            sign::meta("not-the-secret", sent.as_bytes()),
            "application/json",
            401,
        ),
        (
            "signature over re-serialised JSON",
            reserialised.clone(),
            good_signature.clone(),
            "application/json",
            401,
        ),
        (
            "sha1 header format",
            sent.clone(),
            good_signature.replace("sha256=", "sha1="),
            "application/json",
            401,
        ),
        (
            "unknown object",
            unknown_object.clone(),
            sign::meta(APP_SECRET, unknown_object.as_bytes()),
            "application/json",
            400,
        ),
        (
            "not JSON",
            "{not json".into(),
            sign::meta(APP_SECRET, b"{not json"),
            "application/json",
            400,
        ),
        (
            "wrong content type",
            sent.clone(),
            good_signature.clone(),
            "text/plain",
            415,
        ),
    ];
    for (name, body, signature, content_type, want) in cases {
        let before = redis.snapshot();
        let mut headers = vec![("Content-Type", content_type)];
        if !signature.is_empty() {
            headers.push(("X-Hub-Signature-256", signature.as_str()));
        }
        let r = http(gw.addr, "POST", "/webhooks/meta", &headers, body.as_bytes()).await;
        assert_eq!(r.status, want, "{name}: {}", r.body);
        assert!(
            !r.body.trim_end().contains('\n'),
            "{name}: one line: {}",
            r.body
        );
        assert_eq!(redis.snapshot(), before, "{name}");
    }
    // The body exactly as Meta sent it verifies, under the old secret too (rotation).
    let r = post_signed(&gw, &sent, &sign::meta(OLD_APP_SECRET, sent.as_bytes())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505558001").await;
    assert!(v.blocked, "ARRÊT, escaped by Meta, is an opt-out");
    gw.stop().await;
}

/// Issue 12 item 9: each change is routed by its own phone number id only. A change
/// whose `metadata.phone_number_id` no tenant lists is skipped, even when another change
/// of the same entry (or the entry's business account id) belongs to a tenant.
#[tokio::test]
async fn item_09_a_change_is_routed_by_its_own_phone_number_id_only() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();
    let change = |phone_id: &str, from: &str, wamid: &str| {
        json!({"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_id},
            "contacts": [{"profile": {"name": "Kerry"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": t.to_string(), "type": "text",
                          "text": {"body": "STOP"}}]
        }})
    };
    // One entry of acme's business account: the first change is for acme's number,
    // the second for a number nobody configured.
    let body =
        json!({"object": "whatsapp_business_account", "entry": [{"id": ACME_WABA, "changes": [
            change(ACME_PHONE_ID, "16505557001", "wamid.OWN1"),
            change("333333333333333", "16505557002", "wamid.OTHER1"),
        ]}]})
        .to_string();
    let r = post(&gw, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("applied 1 event(s)"), "{}", r.body);
    assert!(
        r.body.contains("333333333333333"),
        "the unrouted change is named: {}",
        r.body
    );
    assert!(
        verdict(&redis, "acme", Channel::Whatsapp, "+16505557001")
            .await
            .blocked
    );
    for tenant in ["acme", "globex"] {
        let v = verdict(&redis, tenant, Channel::Whatsapp, "+16505557002").await;
        assert!(!v.blocked && v.record.is_none(), "{tenant}: {v:?}");
    }
    gw.stop().await;
}

/// Issue 12 item 12: Messenger's `notification_messages_status` in its underscore
/// spelling (which integrations compare against) is read like the spaced one.
#[tokio::test]
async fn item_12_messenger_notification_status_underscore_spellings() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t_ms = now_s() * 1000;
    let optin = |psid: &str, status: &str, at: u64| {
        json!({"object": "page", "entry": [{"id": ACME_PAGE, "time": at, "messaging": [
            {"sender": {"id": psid}, "recipient": {"id": ACME_PAGE}, "timestamp": at,
             "optin": {"type": "notification_messages", "notification_messages_status": status,
                       "notification_messages_token": "token-1", "token_expiry_timestamp": at + 86_400_000,
                       "user_token_status": "NOT_REFRESHED", "title": "Offers"}}]}]})
        .to_string()
    };
    let address = format!("{ACME_PAGE}:5555555555");
    let r = post(&gw, &optin("5555555555", "STOP_NOTIFICATIONS", t_ms)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("refused"), "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Messenger, &address).await;
    assert!(v.blocked && v.marketing_only, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "meta:marketing_stop");

    let r = post(&gw, &optin("5555555555", "RESUME_NOTIFICATIONS", t_ms + 1)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("refused"), "{}", r.body);
    assert!(
        !verdict(&redis, "acme", Channel::Messenger, &address)
            .await
            .blocked
    );
    gw.stop().await;
}

/// Issue 12 item 16: a WhatsApp `user_preferences` change with value `signup` lifts a
/// marketing stop, as `resume` does, and nothing stronger.
#[tokio::test]
async fn item_16_whatsapp_user_preference_signup_lifts_a_marketing_stop() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();
    let preference = |wa_id: &str, value: &str, detail: &str, at: u64| {
        whatsapp(
            ACME_PHONE_ID,
            "user_preferences",
            json!({
                "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
                "user_preferences": [{"wa_id": wa_id, "detail": detail,
                    "category": "marketing_messages", "value": value, "timestamp": at}]
            }),
        )
        .to_string()
    };
    let r = post(
        &gw,
        &preference(
            "16505557101",
            "stop",
            "User requested to stop marketing messages",
            t,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505557101").await;
    assert!(v.blocked && v.marketing_only, "{v:?}");
    let r = post(
        &gw,
        &preference(
            "16505557101",
            "signup",
            "User signed up for marketing messages",
            t + 1,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("refused"), "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505557101").await;
    assert!(!v.blocked, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "meta:marketing_resume");

    // Nothing stronger: a signup does not lift a STOP the contact typed.
    let r = post(
        &gw,
        &whatsapp(
            ACME_PHONE_ID,
            "messages",
            wa_text("16505557102", "wamid.SIGNUP_STOP", "STOP", t),
        )
        .to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &gw,
        &preference(
            "16505557102",
            "signup",
            "User signed up for marketing messages",
            t + 1,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505557102").await;
    assert!(v.blocked && !v.marketing_only, "{v:?}");
    gw.stop().await;
}

/// Issue 12 item 18: the id or payload a business gave its button is the contact's
/// explicit choice, classified before the button's title or the message's text.
#[tokio::test]
async fn item_18_button_and_quick_reply_payloads_are_classified_before_their_titles() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;
    let t = now_s();
    let wa_message = |from: &str, message: Value| {
        whatsapp(
            ACME_PHONE_ID,
            "messages",
            json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": from}], "messages": [message]}),
        )
        .to_string()
    };
    // An interactive reply button: id STOP, title "Stop messages".
    let interactive = json!({
        "context": {"from": "15550783881", "id": "wamid.ASK1"},
        "from": "16505557201", "id": "wamid.IBTN1", "timestamp": t.to_string(), "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "STOP", "title": "Stop messages"}}
    });
    let r = post(&gw, &wa_message("16505557201", interactive)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505557201").await;
    assert!(v.blocked && !v.marketing_only, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "keyword:STOP");

    // A template quick-reply button: payload STOP, text "Stop messages".
    let button = json!({
        "context": {"from": "15550783881", "id": "wamid.TEMPLATE2"},
        "from": "16505557202", "id": "wamid.BTN2", "timestamp": t.to_string(), "type": "button",
        "button": {"payload": "STOP", "text": "Stop messages"}
    });
    let r = post(&gw, &wa_message("16505557202", button)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(&redis, "acme", Channel::Whatsapp, "+16505557202").await;
    assert!(v.blocked && !v.marketing_only, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "keyword:STOP");

    // A button whose payload is an ordinary id: its title is read as before.
    let ordinary = json!({
        "from": "16505557203", "id": "wamid.IBTN3", "timestamp": t.to_string(), "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "offer-17", "title": "STOP"}}
    });
    let r = post(&gw, &wa_message("16505557203", ordinary)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        verdict(&redis, "acme", Channel::Whatsapp, "+16505557203")
            .await
            .blocked
    );

    // Messenger: quick reply payload STOP, text "Stop messages".
    let t_ms = t * 1000;
    let quick_reply = json!({"object": "page", "entry": [{"id": ACME_PAGE, "time": t_ms, "messaging": [
        {"sender": {"id": "6666666666"}, "recipient": {"id": ACME_PAGE}, "timestamp": t_ms,
         "message": {"mid": "m_qr1", "text": "Stop messages", "quick_reply": {"payload": "STOP"}}}]}]})
    .to_string();
    let r = post(&gw, &quick_reply).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = verdict(
        &redis,
        "acme",
        Channel::Messenger,
        &format!("{ACME_PAGE}:6666666666"),
    )
    .await;
    assert!(v.blocked && !v.marketing_only, "{v:?}");
    assert_eq!(v.record.unwrap().reason, "keyword:STOP");

    // A payload START under a title that says stop: the opt-out side wins, nothing
    // is lifted.
    let stopped = wa_message(
        "16505557204",
        json!({"from": "16505557204", "id": "wamid.S4", "timestamp": t.to_string(), "type": "text",
               "text": {"body": "STOP"}}),
    );
    assert_eq!(post(&gw, &stopped).await.status, 200);
    let confusing = json!({
        "from": "16505557204", "id": "wamid.IBTN4", "timestamp": (t + 1).to_string(), "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "START", "title": "Stop messages"}}
    });
    assert_eq!(
        post(&gw, &wa_message("16505557204", confusing))
            .await
            .status,
        200
    );
    assert!(
        verdict(&redis, "acme", Channel::Whatsapp, "+16505557204")
            .await
            .blocked
    );
    gw.stop().await;
}
