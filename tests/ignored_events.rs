//! Events that carry no DND signal (deliveries, opens, clicks) are counted by a metric
//! and never logged at WARN: at real volume a WARN line each would flood the log, and
//! the tenant is known. What a webhook names for an account no tenant owns is counted
//! too, and stays a WARN (a configuration gap can lose a STOP). Read from the real
//! `dndgate serve`: its `/metrics` (on the admin listener) and its JSON log on stderr.

mod common;

use common::*;
use serde_json::{Value, json};

const POSTMARK_CREDENTIALS: &str = "pm_hook_user:pm_hook_pass_123";
/// base64("dndgate-standard-webhooks-test-key")
const SW_SECRET: &str = "whsec_ZG5kZ2F0ZS1zdGFuZGFyZC13ZWJob29rcy10ZXN0LWtleQ==";
const META_SECRET: &str = "meta-app-secret";
const ACME_PHONE_ID: &str = "106540352242922";

fn config(redis: &RedisServer, addr: std::net::SocketAddr) -> String {
    let acme = format!(
        "[tenants.acme.meta]\nwhatsapp_phone_number_ids = [\"{ACME_PHONE_ID}\"]\n\n\
         [tenants.acme.postmark]\ncredentials = [\"{POSTMARK_CREDENTIALS}\"]\n\n\
         [tenants.acme.standard_webhooks]\nsecrets = [\"{SW_SECRET}\"]\n\n\
         [tenants.acme.twilio]"
    );
    let base = config_text(&redis.url())
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
        .replacen("[tenants.acme.twilio]", &acme, 1);
    format!("{base}\n[meta]\napp_secrets = [\"{META_SECRET}\"]\nverify_tokens = [\"token\"]\n")
}

async fn postmark(addr: std::net::SocketAddr, body: &Value) -> HttpResponse {
    let auth = sign::basic(POSTMARK_CREDENTIALS);
    http(
        addr,
        "POST",
        "/webhooks/postmark/acme",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

async fn resend(addr: std::net::SocketAddr, id: &str, body: &Value) -> HttpResponse {
    let body = body.to_string();
    let ts = now_s();
    let signature = standard_webhooks_signature(SW_SECRET, id, ts as i64, &body);
    http(
        addr,
        "POST",
        "/webhooks/resend/acme",
        &[
            ("Content-Type", "application/json"),
            ("svix-id", id),
            ("svix-timestamp", &ts.to_string()),
            ("svix-signature", &signature),
        ],
        body.as_bytes(),
    )
    .await
}

async fn meta(addr: std::net::SocketAddr, body: &Value) -> HttpResponse {
    let body = body.to_string();
    let signature = sign::meta(META_SECRET, body.as_bytes());
    http(
        addr,
        "POST",
        "/webhooks/meta",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &signature),
        ],
        body.as_bytes(),
    )
    .await
}

/// The value of one sample of the exposition, 0 when the series is absent.
fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn item_17_events_without_a_dnd_signal_are_counted_not_warned() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.path().join("dndgate.toml");
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(&path, with_admin_listen(&config(&redis, addr), admin)).unwrap();
    let mut serve = ServeProcess::start(&path, &["--log-format", "json"]);
    serve.wait_ready(addr).await.expect("dndgate serve starts");
    let before = redis.snapshot();

    // Postmark: a delivery, an open and a click, in Postmark's documented shapes.
    let records = [
        json!({"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
               "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": "john@example.com",
               "Tag": "welcome-email", "DeliveredAt": iso_ago(1_000), "Details": "Test delivery webhook details",
               "Metadata": {"example": "value"}}),
        json!({"RecordType": "Open", "MessageStream": "outbound", "FirstOpen": true, "Client": {},
               "OS": {}, "Platform": "WebMail", "UserAgent": "Mozilla/5.0", "ReadSeconds": 5,
               "Geo": {}, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
               "Metadata": {"a_key": "a_value"}, "ReceivedAt": iso_ago(1_000),
               "Tag": "welcome-email", "Recipient": "john@example.com"}),
        json!({"RecordType": "Click", "MessageStream": "outbound", "ClickLocation": "HTML",
               "Client": {}, "OS": {}, "Platform": "Desktop", "UserAgent": "Mozilla/5.0",
               "OriginalLink": "https://example.com", "Geo": {},
               "MessageID": "00000000-0000-0000-0000-000000000000", "Metadata": {"a_key": "a_value"},
               "ReceivedAt": iso_ago(1_000), "Tag": "welcome-email", "Recipient": "john@example.com"}),
    ];
    for record in &records {
        let r = postmark(addr, record).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // And a bounce that names no address (item 15): nothing to apply, counted alike.
    let no_email = json!({"RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807u64,
        "Type": "Unsubscribe", "TypeCode": 16, "Name": "Unsubscribe request", "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "ServerID": 23, "Description": "d",
        "Details": "Test bounce details", "From": "sender@example.com", "BouncedAt": iso_ago(1_000),
        "DumpAvailable": true, "Inactive": false, "CanActivate": true, "Subject": "Test subject"});
    let r = postmark(addr, &no_email).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Resend: sent, delivered, opened, clicked.
    for (i, kind) in [
        "email.sent",
        "email.delivered",
        "email.opened",
        "email.clicked",
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"type": kind, "created_at": iso_ago(1_000), "data": {
            "created_at": iso_ago(2_000), "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>", "to": ["delivered@resend.dev"],
            "subject": "Sending this example", "tags": {"category": "confirm_email"}}});
        let r = resend(addr, &format!("msg_ignored_{i}"), &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Meta: a change for a phone number id no tenant lists.
    let t = now_s();
    let unknown = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "444444444444444"},
            "contacts": [{"wa_id": "16505557301"}],
            "messages": [{"from": "16505557301", "id": "wamid.UNKNOWN1", "timestamp": t.to_string(),
                          "type": "text", "text": {"body": "STOP"}}]}}]}]});
    let r = meta(addr, &unknown).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(redis.snapshot(), before, "nothing to write");

    let r = http(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    let ignored = |provider: &str, kind: &str| {
        sample(
            &r.body,
            &format!("dndgate_events_ignored_total{{provider=\"{provider}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(ignored("postmark", "no_signal"), 4.0, "{}", r.body);
    assert_eq!(ignored("standard-webhooks", "no_signal"), 4.0, "{}", r.body);
    assert_eq!(ignored("meta", "unknown_account"), 1.0, "{}", r.body);

    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    let warnings: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["span"]["name"] == "request")
        .collect();
    let meta_only = warnings
        .iter()
        .all(|w| w["span"]["route"] == "meta" && w["fields"]["message"].as_str().is_some());
    assert!(
        meta_only && warnings.len() == 1,
        "one WARN, for the account no tenant owns: {warnings:#?}"
    );
    let message = warnings[0]["fields"]["message"].as_str().unwrap();
    assert!(!message.contains("unknown account"), "{message}");
    assert!(message.contains("no tenant"), "{message}");
}
