//! Bad input, all in one table: every malformed request we know of, across providers
//! and routes, against a running gateway with a real redis-server that already holds a
//! record. For each: the expected status, a one-line error body (not empty, no newline
//! before its end), and the store exactly as it was.
//!
//! The requests are signed where the case needs a valid signature (so the body, not
//! the signature, is what is wrong), with the tests' one signer (`common::sign`),
//! written independently of the crate's verifiers.

mod common;

use base64::Engine as _;
use common::*;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePublicKey;

const META_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "meatyhamhock";
const MAILGUN_KEY: &str = "mailgun-signing-key-now";
const POSTMARK_CREDENTIALS: &str = "pm_hook_user:pm_hook_pass_123";
/// base64("dndgate-standard-webhooks-test-key")
const SW_SECRET: &str = "whsec_ZG5kZ2F0ZS1zdGFuZGFyZC13ZWJob29rcy10ZXN0LWtleQ==";
const SES_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:acme-ses-events";

/// SendGrid's private scalar for acme, hex.
const SENDGRID_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";

fn sendgrid_key() -> SigningKey {
    SigningKey::from_slice(&hex::decode(SENDGRID_KEY).unwrap()).unwrap()
}

/// The test configuration plus every other provider for acme, as the e2e tests add them.
fn config(redis: &RedisServer) -> String {
    let sendgrid_public = base64::engine::general_purpose::STANDARD.encode(
        sendgrid_key()
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes(),
    );
    let acme = format!(
        "[tenants.acme.meta]\nwhatsapp_phone_number_ids = [\"106540352242922\"]\n\n\
         [tenants.acme.sendgrid]\npublic_keys = [\"{sendgrid_public}\"]\n\n\
         [tenants.acme.mailgun]\nsigning_keys = [\"{MAILGUN_KEY}\"]\n\n\
         [tenants.acme.postmark]\ncredentials = [\"{POSTMARK_CREDENTIALS}\"]\n\n\
         [tenants.acme.standard_webhooks]\nsecrets = [\"{SW_SECRET}\"]\n\n\
         [tenants.acme.ses]\ntopic_arns = [\"{SES_TOPIC}\"]\n\n\
         [tenants.acme.twilio]\nevent_streams = true"
    );
    let base = config_text(&redis.url()).replacen("[tenants.acme.twilio]", &acme, 1);
    format!(
        "{base}\n[meta]\napp_secrets = [\"{META_SECRET}\"]\nverify_tokens = [\"{VERIFY_TOKEN}\"]\n"
    )
}

fn meta_signature(body: &[u8]) -> String {
    sign::meta(META_SECRET, body)
}

fn sendgrid_signature(timestamp: &str, body: &[u8]) -> String {
    sign::sendgrid(SENDGRID_KEY, timestamp, body)
}

/// A Mailgun body signed with a fresh `token` (Mailgun never reuses one).
fn mailgun_body(token: &str, event_data: &str) -> String {
    let timestamp = now_s().to_string();
    let signature = sign::mailgun(MAILGUN_KEY, &timestamp, token);
    format!(
        r#"{{"signature": {{"timestamp": "{timestamp}", "token": "{token}", "signature": "{signature}"}}, "event-data": {event_data}}}"#
    )
}

fn sw_signature(id: &str, ts: &str, body: &[u8]) -> String {
    sign::standard_webhooks(SW_SECRET, id, ts, body)
}

/// One malformed request and what the gateway must answer.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
        status,
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
const TWILIO_ACME: &str = "/webhooks/twilio/acme";
/// The SHA-256 of `[]`, an Event Streams body.
const EMPTY_ARRAY_SHA256: &str = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

/// A Twilio form case: the raw body, signed over the given (decoded) parameters.
fn twilio_case(
    name: &'static str,
    body: &[u8],
    signed: &[(&str, &str)],
    content_type: &str,
    status: u16,
) -> Case {
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{TWILIO_ACME}"), signed);
    case(
        name,
        "POST",
        TWILIO_ACME,
        &[("Content-Type", content_type), ("X-Twilio-Signature", &sig)],
        body,
        status,
    )
}

fn meta_case(name: &'static str, body: &[u8], status: u16) -> Case {
    let sig = meta_signature(body);
    case(
        name,
        "POST",
        "/webhooks/meta",
        &[("Content-Type", JSON), ("X-Hub-Signature-256", &sig)],
        body,
        status,
    )
}

fn sendgrid_case(name: &'static str, body: &[u8], status: u16) -> Case {
    let ts = now_s().to_string();
    let sig = sendgrid_signature(&ts, body);
    case(
        name,
        "POST",
        "/webhooks/sendgrid/acme",
        &[
            ("Content-Type", JSON),
            ("X-Twilio-Email-Event-Webhook-Signature", &sig),
            ("X-Twilio-Email-Event-Webhook-Timestamp", &ts),
        ],
        body,
        status,
    )
}

fn sw_case(name: &'static str, content_type: &str, body: &[u8], status: u16) -> Case {
    let ts = now_s().to_string();
    let sig = sw_signature("msg_bad_input", &ts, body);
    case(
        name,
        "POST",
        "/webhooks/standard-webhooks/acme",
        &[
            ("Content-Type", content_type),
            ("webhook-id", "msg_bad_input"),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &sig),
        ],
        body,
        status,
    )
}

fn postmark_case(name: &'static str, content_type: &str, body: &[u8], status: u16) -> Case {
    let auth = sign::basic(POSTMARK_CREDENTIALS);
    case(
        name,
        "POST",
        "/webhooks/postmark/acme",
        &[("Content-Type", content_type), ("Authorization", &auth)],
        body,
        status,
    )
}

fn api_case(
    name: &'static str,
    method: &'static str,
    path: &str,
    body: &[u8],
    status: u16,
) -> Case {
    let auth = format!("Bearer {API_TOKEN}");
    case(
        name,
        method,
        path,
        &[("Authorization", &auth), ("Content-Type", JSON)],
        body,
        status,
    )
}

fn cases() -> Vec<Case> {
    let stop = inbound_sms("SM00000000000000000000000000000bad", "+15550001111", "STOP");
    let stop_body = form(&stop);
    let acme_url = format!("{PUBLIC_URL}{TWILIO_ACME}");
    let good_sig = twilio_signature(TWILIO_TOKEN, &acme_url, &stop);
    let globex_sig = twilio_signature("globex-twilio-token", &acme_url, &stop);
    let wa_stop = r#"{"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}, "messages": [{"from": "15550002222", "id": "wamid.bad", "timestamp": "1", "type": "text", "text": {"body": "STOP"}}]}}]}]}"#;
    let oversized = vec![b'a'; 2 * 1024 * 1024];
    let long_address = format!(
        "/v1/tenants/acme/dnd/email/{}%40example.com",
        "a".repeat(300)
    );

    vec![
        // Routes, methods, providers and tenants.
        case("no such route", "GET", "/nowhere", &[], "", 404),
        case("unknown provider", "POST", "/webhooks/nosuch/acme", &[("Content-Type", JSON)], "{}", 404),
        case("unknown tenant in the path", "POST", "/webhooks/twilio/nosuch", &[("Content-Type", FORM), ("X-Twilio-Signature", &good_sig)], stop_body.clone(), 404),
        case("unknown tenant for sendgrid", "POST", "/webhooks/sendgrid/nosuch", &[("Content-Type", JSON)], "[]", 404),
        case("postmark without a tenant", "POST", "/webhooks/postmark", &[("Content-Type", JSON)], "{}", 404),
        case("tenant without that provider", "POST", "/webhooks/mailgun/globex", &[("Content-Type", JSON)], "{}", 404),
        case("PUT on a webhook", "PUT", TWILIO_ACME, &[("Content-Type", FORM)], stop_body.clone(), 405),
        case("DELETE on a webhook", "DELETE", "/webhooks/meta", &[], "", 405),
        case("GET on Twilio", "GET", "/webhooks/twilio", &[], "", 405),
        case("POST on healthz", "POST", "/healthz", &[], "", 405),
        case("bad percent-escape in the tenant", "POST", "/webhooks/twilio/ac%ZZme", &[("Content-Type", FORM)], stop_body.clone(), 400),
        case("non-UTF-8 tenant", "POST", "/webhooks/twilio/%FF%FE", &[("Content-Type", FORM)], stop_body.clone(), 400),
        case("oversized body", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", &good_sig)], oversized.clone(), 413),
        // Meta's handshake.
        case("meta handshake with a wrong token", "GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", &[], "", 403),
        case("meta handshake, not subscribe", "GET", &format!("/webhooks/meta?hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"), &[], "", 403),
        case("meta handshake without a challenge", "GET", &format!("/webhooks/meta?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"), &[], "", 400),
        case("meta handshake, bad percent-escape", "GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=%ZZ&hub.challenge=1", &[], "", 403),
        // Twilio signatures and bodies.
        case("twilio without a signature", "POST", TWILIO_ACME, &[("Content-Type", FORM)], stop_body.clone(), 401),
        case("twilio forged signature", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")], stop_body.clone(), 401),
        case("twilio truncated signature", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", &good_sig[..12])], stop_body.clone(), 401),
        case("twilio signature not base64", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", "!!not base64!!")], stop_body.clone(), 401),
        case("twilio another tenant's signature", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", &globex_sig)], stop_body.clone(), 401),
        case("twilio body altered after signing", "POST", TWILIO_ACME, &[("Content-Type", FORM), ("X-Twilio-Signature", &good_sig)], stop_body.replace("STOP", "STAR"), 401),
        case("twilio text/plain", "POST", TWILIO_ACME, &[("Content-Type", "text/plain"), ("X-Twilio-Signature", &good_sig)], stop_body.clone(), 415),
        case("twilio no content type", "POST", TWILIO_ACME, &[("X-Twilio-Signature", &good_sig)], stop_body.clone(), 415),
        twilio_case("twilio bad percent-encoding", b"Body=%ZZ&From=%2B15550001111", &[], FORM, 400),
        twilio_case("twilio truncated percent-escape", b"Body=STOP%2", &[], FORM, 400),
        twilio_case("twilio non-UTF-8 value", b"Body=%FF%FE&From=%2B15550001111", &[], FORM, 400),
        // A signed form that is no message and no status (as Twilio's voice callbacks
        // are) is ignored with Twilio's empty 200.
        twilio_case("twilio empty body, signed", b"", &[], FORM, 200),
        twilio_case("twilio no MessageSid, signed", b"Body=STOP&From=%2B15550001111", &[("Body", "STOP"), ("From", "+15550001111")], FORM, 400),
        twilio_case("twilio bad From, signed", b"MessageSid=SM1&Body=STOP&From=not-a-number&To=%2B15017122661", &[("MessageSid", "SM1"), ("Body", "STOP"), ("From", "not-a-number"), ("To", "+15017122661")], FORM, 400),
        twilio_case("twilio huge From, signed", b"MessageSid=SM1&Body=STOP&From=%2B99999999999999999999999999999&To=%2B15017122661", &[("MessageSid", "SM1"), ("Body", "STOP"), ("From", "+99999999999999999999999999999"), ("To", "+15017122661")], FORM, 400),
        twilio_case("twilio duplicated From, signed", b"MessageSid=SM1&Body=STOP&From=x&From=%2B15550001111&To=%2B15017122661", &[("MessageSid", "SM1"), ("Body", "STOP"), ("From", "x"), ("From", "+15550001111"), ("To", "+15017122661")], FORM, 400),
        case("twilio JSON without bodySHA256", "POST", TWILIO_ACME, &[("Content-Type", JSON), ("X-Twilio-Signature", &good_sig)], "[]", 401),
        case("twilio JSON with bodySHA256 not last", "POST", &format!("{TWILIO_ACME}?bodySHA256={EMPTY_ARRAY_SHA256}&z=1"), &[("Content-Type", JSON), ("X-Twilio-Signature", &good_sig)], "[]", 401),
        case("twilio JSON to a tenant without Event Streams", "POST", &format!("/webhooks/twilio/globex?bodySHA256={EMPTY_ARRAY_SHA256}"), &[("Content-Type", JSON), ("X-Twilio-Signature", &good_sig)], "[]", 415),
        // Meta.
        case("meta without a signature", "POST", "/webhooks/meta", &[("Content-Type", JSON)], wa_stop, 401),
        case("meta uppercase hex signature", "POST", "/webhooks/meta", &[("Content-Type", JSON), ("X-Hub-Signature-256", &meta_signature(wa_stop.as_bytes()).to_uppercase())], wa_stop, 401),
        case("meta truncated signature", "POST", "/webhooks/meta", &[("Content-Type", JSON), ("X-Hub-Signature-256", &meta_signature(wa_stop.as_bytes())[..40])], wa_stop, 401),
        case("meta signature without sha256=", "POST", "/webhooks/meta", &[("Content-Type", JSON), ("X-Hub-Signature-256", &meta_signature(wa_stop.as_bytes())[7..])], wa_stop, 401),
        case("meta body altered after signing", "POST", "/webhooks/meta", &[("Content-Type", JSON), ("X-Hub-Signature-256", &meta_signature(wa_stop.as_bytes()))], wa_stop.replace("STOP", "STAR"), 401),
        case("meta form content type", "POST", "/webhooks/meta", &[("Content-Type", FORM), ("X-Hub-Signature-256", &meta_signature(wa_stop.as_bytes()))], wa_stop, 415),
        meta_case("meta invalid JSON, signed", b"{\"object\": ", 400),
        meta_case("meta non-UTF-8, signed", b"{\"object\": \"\xff\xfe\"}", 400),
        meta_case("meta empty body, signed", b"", 400),
        meta_case("meta JSON array, signed", b"[1, 2, 3]", 400),
        meta_case("meta unknown object, signed", br#"{"object": "nonsense", "entry": []}"#, 400),
        meta_case("meta huge numbers, signed", br#"{"object": "whatsapp_business_account", "entry": [{"id": 1e999, "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": 99999999999999999999999999999}, "messages": [{"from": 1e400, "timestamp": 1e400}]}}]}]}"#, 400),
        meta_case("meta huge timestamp and id, signed", br#"{"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"}, "messages": [{"from": "99999999999999999999999999999", "id": "wamid.huge", "timestamp": "99999999999999999999999", "type": "text", "text": {"body": "STOP"}}]}}]}]}"#, 200),
        // SendGrid.
        case("sendgrid without a signature", "POST", "/webhooks/sendgrid/acme", &[("Content-Type", JSON), ("X-Twilio-Email-Event-Webhook-Timestamp", "1700000000")], "[]", 401),
        case("sendgrid signature not DER", "POST", "/webhooks/sendgrid/acme", &[("Content-Type", JSON), ("X-Twilio-Email-Event-Webhook-Signature", "AAAA"), ("X-Twilio-Email-Event-Webhook-Timestamp", "1700000000")], "[]", 401),
        case("sendgrid without a timestamp", "POST", "/webhooks/sendgrid/acme", &[("Content-Type", JSON), ("X-Twilio-Email-Event-Webhook-Signature", &sendgrid_signature("1700000000", b"[]"))], "[]", 401),
        case("sendgrid form content type", "POST", "/webhooks/sendgrid/acme", &[("Content-Type", FORM)], "[]", 415),
        sendgrid_case("sendgrid invalid JSON, signed", b"[{\"email\": ", 400),
        sendgrid_case("sendgrid object not array, signed", br#"{"email": "a@example.com", "event": "bounce"}"#, 400),
        sendgrid_case("sendgrid non-UTF-8, signed", b"[\"\xff\"]", 400),
        // Mailgun.
        case("mailgun not JSON", "POST", "/webhooks/mailgun/acme", &[("Content-Type", JSON)], "not json", 401),
        case("mailgun no signature object", "POST", "/webhooks/mailgun/acme", &[("Content-Type", JSON)], r#"{"event-data": {}}"#, 401),
        case("mailgun forged signature", "POST", "/webhooks/mailgun/acme", &[("Content-Type", JSON)], format!(r#"{{"signature": {{"timestamp": "{}", "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0", "signature": "{}"}}, "event-data": {{}}}}"#, now_s(), "0".repeat(64)), 401),
        case("mailgun form content type", "POST", "/webhooks/mailgun/acme", &[("Content-Type", FORM)], mailgun_body("a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0", "{}"), 415),
        // A verified Mailgun request spends its token (the replay guard's key is the one
        // write allowed); an event that cannot be read is refused in a 200, as for
        // batches, since Mailgun would only send it again.
        case("mailgun event-data null, signed", "POST", "/webhooks/mailgun/acme", &[("Content-Type", JSON)], mailgun_body("b8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de1", "null"), 200),
        case("mailgun event-data not an object, signed", "POST", "/webhooks/mailgun/acme", &[("Content-Type", JSON)], mailgun_body("c8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de2", "[99999999999999999999999]"), 200),
        // Postmark.
        case("postmark without credentials", "POST", "/webhooks/postmark/acme", &[("Content-Type", JSON)], "{}", 401),
        case("postmark wrong credentials", "POST", "/webhooks/postmark/acme", &[("Content-Type", JSON), ("Authorization", "Basic dXNlcjpwYXNz")], "{}", 401),
        case("postmark bearer scheme", "POST", "/webhooks/postmark/acme", &[("Content-Type", JSON), ("Authorization", "Bearer xyz")], "{}", 401),
        postmark_case("postmark form content type", FORM, b"{}", 415),
        postmark_case("postmark invalid JSON", JSON, b"{\"RecordType\": ", 400),
        postmark_case("postmark empty body", JSON, b"", 400),
        postmark_case("postmark bounce without an address", JSON, br#"{"RecordType": "Bounce", "Type": "HardBounce", "ID": 99999999999999999999999}"#, 200),
        // Standard Webhooks.
        case("standard webhooks without headers", "POST", "/webhooks/standard-webhooks/acme", &[("Content-Type", JSON)], "{}", 401),
        case("standard webhooks stale timestamp", "POST", "/webhooks/standard-webhooks/acme", &[("Content-Type", JSON), ("webhook-id", "msg_1"), ("webhook-timestamp", "1000000000"), ("webhook-signature", &sw_signature("msg_1", "1000000000", b"{}"))], "{}", 401),
        case("standard webhooks huge timestamp", "POST", "/webhooks/standard-webhooks/acme", &[("Content-Type", JSON), ("webhook-id", "msg_1"), ("webhook-timestamp", "99999999999999999999"), ("webhook-signature", "v1,AAAA")], "{}", 401),
        case("standard webhooks no v1 entry", "POST", "/webhooks/standard-webhooks/acme", &[("Content-Type", JSON), ("webhook-id", "msg_1"), ("webhook-timestamp", &now_s().to_string()), ("webhook-signature", "v2,abc v1a,def")], "{}", 401),
        sw_case("standard webhooks form content type", FORM, b"{}", 415),
        sw_case("standard webhooks invalid JSON", JSON, b"{\"type\": ", 400),
        sw_case("standard webhooks no type", JSON, br#"{"data": {}}"#, 400),
        sw_case("standard webhooks bounce without data", JSON, br#"{"type": "email.bounced", "data": 12}"#, 400),
        // SES through SNS (refused before the signature).
        case("ses form content type", "POST", "/webhooks/ses/acme", &[("Content-Type", FORM)], "{}", 415),
        case("ses not JSON", "POST", "/webhooks/ses/acme", &[("Content-Type", "text/plain")], "not json", 400),
        case("ses envelope missing fields", "POST", "/webhooks/ses/acme", &[("Content-Type", "text/plain")], r#"{"Type": "Notification"}"#, 400),
        case("ses raw delivery", "POST", "/webhooks/ses/acme", &[("Content-Type", "text/plain"), ("x-amz-sns-rawdelivery", "true")], "{}", 400),
        case("ses unknown topic", "POST", "/webhooks/ses/acme", &[("Content-Type", "text/plain")], r#"{"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:999999999999:other", "Message": "{}", "Timestamp": "2026-01-01T00:00:00.000Z", "SignatureVersion": "2", "Signature": "AAAA", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem"}"#, 403),
        case("ses forged certificate URL", "POST", "/webhooks/ses/acme", &[("Content-Type", "text/plain")], format!(r#"{{"Type": "Notification", "MessageId": "m", "TopicArn": "{SES_TOPIC}", "Message": "{{}}", "Timestamp": "2026-01-01T00:00:00.000Z", "SignatureVersion": "2", "Signature": "AAAA", "SigningCertURL": "https://evil.example.com/c.pem"}}"#), 401),
        // Unsubscribe links.
        case("link token not base64", "GET", "/u/!!!!", &[], "", 404),
        // One-click answers a forged token as it answers a valid one (no oracle).
        case("link token forged, one-click", "POST", &format!("/u/{}", "A".repeat(40)), &[("Content-Type", FORM)], "List-Unsubscribe=One-Click", 200),
        case("link token forged, page form", "POST", &format!("/u/{}", "A".repeat(40)), &[("Content-Type", FORM)], "form=preferences&scope=%ZZ", 404),
        case("link token too long", "GET", &format!("/u/{}", "A".repeat(200)), &[], "", 404),
        // The operator API.
        case("api without a token", "GET", "/v1/tenants/acme/dnd/sms/%2B15550001111", &[], "", 401),
        case("api another tenant's token", "GET", "/v1/tenants/acme/dnd/sms/%2B15550001111", &[("Authorization", &format!("Bearer {GLOBEX_API_TOKEN}"))], "", 401),
        case("api unknown tenant (answered as a wrong token)", "GET", "/v1/tenants/nosuch/dnd/sms/%2B15550001111", &[("Authorization", &format!("Bearer {API_TOKEN}"))], "", 401),
        api_case("api unknown route", "GET", "/v1/tenants/acme/nothing", b"", 404),
        api_case("api wrong method", "POST", "/v1/tenants/acme/history/%2B15550001111", b"", 405),
        api_case("api unknown channel", "GET", "/v1/tenants/acme/dnd/fax/%2B15550001111", b"", 400),
        api_case("api bad phone number", "PUT", "/v1/tenants/acme/dnd/sms/12ab", br#"{"state": "permanent"}"#, 400),
        api_case("api bad email", "PUT", "/v1/tenants/acme/dnd/email/not-an-email", br#"{"state": "permanent"}"#, 400),
        api_case("api address too long", "PUT", &long_address, br#"{"state": "permanent"}"#, 400),
        api_case("api bad percent-escape in the address", "GET", "/v1/tenants/acme/dnd/sms/%2", b"", 400),
        api_case("api non-UTF-8 address", "GET", "/v1/tenants/acme/dnd/sms/%FF", b"", 400),
        api_case("api set: invalid JSON", "PUT", "/v1/tenants/acme/dnd/sms/%2B15550003333", b"{\"state\": ", 400),
        api_case("api set: unknown state", "PUT", "/v1/tenants/acme/dnd/sms/%2B15550003333", br#"{"state": "forever"}"#, 400),
        api_case("api set: unknown field", "PUT", "/v1/tenants/acme/dnd/sms/%2B15550003333", br#"{"state": "permanent", "extra": 1}"#, 400),
        api_case("api set: state a number", "PUT", "/v1/tenants/acme/dnd/sms/%2B15550003333", br#"{"state": 1e999}"#, 400),
        api_case("api set: non-UTF-8", "PUT", "/v1/tenants/acme/dnd/sms/%2B15550003333", b"{\"state\": \"\xff\"}", 400),
        api_case("api clear: empty evidence", "DELETE", "/v1/tenants/acme/dnd/sms/%2B15550001111", br#"{"evidence": {"agreed": "", "captured_at": "", "method": "", "reference": ""}}"#, 400),
        api_case("api check: not an object", "POST", "/v1/tenants/acme/dnd/check", b"[]", 400),
        api_case("api check: unknown channel", "POST", "/v1/tenants/acme/dnd/check", br#"{"channel": "fax", "addresses": []}"#, 400),
        api_case("api check: too many addresses", "POST", "/v1/tenants/acme/dnd/check", format!(r#"{{"channel": "sms", "addresses": [{}]}}"#, vec!["\"+15550001111\""; 10_001].join(",")).as_bytes(), 400),
        api_case("api contact: bad address", "PUT", "/v1/tenants/acme/contacts/c1", br#"{"addresses": ["+15550001111", "nonsense"]}"#, 400),
        api_case("api contact: bad id", "PUT", "/v1/tenants/acme/contacts/bad%20id", br#"{"addresses": ["+15550001111"]}"#, 400),
        api_case("api link: bad scope", "POST", "/v1/tenants/acme/links", br#"{"address": "a@example.com", "scope": "fax"}"#, 400),
        api_case("api link: huge expiry", "POST", "/v1/tenants/acme/links", br#"{"address": "a@example.com", "scope": "email", "expires_in": "99999999999999999999d"}"#, 400),
        api_case("api link: bad campaign", "POST", "/v1/tenants/acme/links", br#"{"address": "a@example.com", "scope": "email", "campaign": "no spaces!"}"#, 400),
        api_case("api oversized body", "POST", "/v1/tenants/acme/dnd/check", &oversized, 413),
    ]
}

#[tokio::test]
async fn every_malformed_request_is_refused_clearly_and_changes_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config(&redis)).await;

    // A record to keep: the store is not empty, so "unchanged" means something.
    let stop = inbound_sms("SM00000000000000000000000000000001", "+15550001111", "STOP");
    let r = gw.twilio(TWILIO_ACME, TWILIO_TOKEN, &stop).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut before = redis.snapshot();
    assert!(!before.is_empty());

    let mut failures = Vec::new();
    for c in cases() {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = http(gw.addr, c.method, &c.path, &headers, &c.body).await;
        // The unsubscribe routes answer people with an HTML page; the rest a line.
        let page = r
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html"));
        let line = if page {
            "page"
        } else {
            r.body.strip_suffix('\n').unwrap_or(&r.body)
        };
        let mut wrong = Vec::new();
        if page && !r.body.contains("<html") {
            wrong.push("an HTML answer that is not a page".to_string());
        }
        if r.status != c.status {
            wrong.push(format!("status {} (expected {})", r.status, c.status));
        }
        if r.status >= 400 && line.trim().is_empty() {
            wrong.push("empty body".to_string());
        }
        if line.contains('\n') || line.contains('\r') {
            wrong.push("body of more than one line".to_string());
        }
        let after = redis.snapshot();
        let spent_token = |k: &&String| k.contains(":once:mailgun:");
        let added: Vec<_> = after.iter().filter(|k| !before.contains(k)).collect();
        if after.len() != before.len() + added.len() || !added.iter().all(spent_token) {
            wrong.push(format!("the store changed: {added:?}"));
        }
        before = after;
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}; body {:?}",
                c.name,
                wrong.join(", "),
                r.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gw.stop().await;
}
