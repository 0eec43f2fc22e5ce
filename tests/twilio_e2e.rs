//! End to end: signed Twilio webhooks into a running gateway, a real redis-server, and
//! the verdict through `dndgate check`, the HTTP API and the Rust API.

mod common;

use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use serde_json::Value;

const STOPPER: &str = "+15558675310";

fn write_config(dir: &tempfile::TempDir, redis: &RedisServer) -> String {
    let path = dir.path().join("dndgate.toml");
    std::fs::write(&path, config_text(&redis.url())).unwrap();
    path.display().to_string()
}

fn check(config: &str, channel: &str, address: &str) -> (i32, Value) {
    let (code, stdout, stderr) = dndgate(&[
        "check",
        "--config",
        config,
        "--tenant",
        "acme",
        "--channel",
        channel,
        address,
    ]);
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("check printed no JSON ({e}): {stdout:?} {stderr:?}"));
    (code, json)
}

fn audit_entries(redis: &RedisServer, address: &str) -> usize {
    let a = dndgate::address::Address::parse(Channel::Sms, address).unwrap();
    let key = dndgate::store::keys("acme", &a).audit;
    redis.cli(&["XLEN", &key]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn stop_blocks_start_clears_and_a_retried_stop_is_applied_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &redis);
    let gw = TestGateway::start(&config_text(&redis.url())).await;

    let stop = inbound_sms("SM11111111111111111111111111111111", STOPPER, "Stop.");
    let r = gw
        .twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &stop)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert_eq!(r.body, dndgate::pipeline::EMPTY_TWIML);

    let (code, json) = check(&config, "sms", STOPPER);
    assert_eq!(code, 1, "blocked exits 1: {json}");
    assert_eq!(json["blocked"], true);
    assert_eq!(json["record"]["state"], "permanent");
    assert_eq!(json["record"]["reason"], "keyword:STOP");
    assert_eq!(json["record"]["source"], "twilio");
    // By default an SMS STOP also revokes calls (sms_opt_out_also = ["voice"]), and
    // nothing else: WhatsApp is a separate consent.
    assert_eq!(check(&config, "voice", STOPPER).0, 1);
    assert_eq!(check(&config, "whatsapp", STOPPER).0, 0);
    assert_eq!(
        audit_entries(&redis, STOPPER),
        2,
        "one entry per record: sms and voice"
    );

    // Twilio retries the same STOP: no new audit entry.
    let r = gw
        .twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &stop)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(audit_entries(&redis, STOPPER), 2);

    let start = inbound_sms("SM22222222222222222222222222222222", STOPPER, "START");
    assert_eq!(
        gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &start)
            .await
            .status,
        200
    );
    let (code, json) = check(&config, "sms", STOPPER);
    assert_eq!(code, 0, "allowed exits 0: {json}");
    assert_eq!(json["blocked"], false);
    assert_eq!(
        check(&config, "voice", STOPPER).0,
        0,
        "START lifts what STOP set"
    );
    assert_eq!(audit_entries(&redis, STOPPER), 4);
    gw.stop().await;
}

#[tokio::test]
async fn error_codes_give_temporary_permanent_or_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &redis);
    let gw = TestGateway::start(&config_text(&redis.url())).await;

    let cases = [
        (
            "SM30003000000000000000000000000000",
            "+15550000001",
            "30003",
            1,
            Some("temporary"),
        ),
        (
            "SM30004000000000000000000000000000",
            "+15550000002",
            "30004",
            1,
            Some("permanent"),
        ),
        (
            "SM30007000000000000000000000000000",
            "+15550000003",
            "30007",
            0,
            None,
        ),
    ];
    for (sid, to, code, want_exit, want_state) in cases {
        let before = redis.snapshot();
        let p = status_callback(sid, to, "undelivered", Some(code));
        let r = gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &p).await;
        assert_eq!(r.status, 200, "{code}: {}", r.body);
        let (exit, json) = check(&config, "sms", to);
        assert_eq!(exit, want_exit, "{code}: {json}");
        assert_eq!(json["record"]["state"].as_str(), want_state, "{code}");
        if want_state.is_some() {
            assert_eq!(json["record"]["reason"], format!("twilio:{code}"));
        } else {
            assert_eq!(
                redis.snapshot(),
                before,
                "a sender-side code writes nothing"
            );
        }
    }
    // The temporary record carries its expiry: 72 hours by default.
    let (_, json) = check(&config, "sms", "+15550000001");
    let r = &json["record"];
    assert_eq!(
        r["expires_ms"].as_i64().unwrap() - r["event_ms"].as_i64().unwrap(),
        72 * 3_600_000
    );
    gw.stop().await;
}

#[tokio::test]
async fn whatsapp_through_twilio_and_the_shared_url() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let mut p = inbound_sms(
        "SM33333333333333333333333333333333",
        "whatsapp:+1 (415) 523-8886",
        "stop",
    );
    p.push(("ProfileName", "Alice"));
    p.push(("WaId", "14155238886"));
    // Posted to the shared URL: the tenant comes from AccountSid.
    let r = gw.twilio("/webhooks/twilio", TWILIO_TOKEN, &p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let v = lookup
        .check("acme", Channel::Whatsapp, "+14155238886")
        .await
        .unwrap();
    assert!(v.blocked);
    assert!(
        !lookup
            .check("acme", Channel::Sms, "+14155238886")
            .await
            .unwrap()
            .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn http_lookup_batch_and_tenant_isolation() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let stop = inbound_sms("SM44444444444444444444444444444444", STOPPER, "UNSUBSCRIBE");
    assert_eq!(
        gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &stop)
            .await
            .status,
        200
    );
    let fail = status_callback(
        "SM55555555555555555555555555555555",
        "+15550000009",
        "failed",
        Some("30005"),
    );
    assert_eq!(
        gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &fail)
            .await
            .status,
        200
    );

    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "GET",
        "/v1/tenants/acme/dnd/sms/%2B15558675310",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["blocked"], true);
    assert_eq!(json["record"]["reason"], "keyword:UNSUBSCRIBE");

    // Another tenant's token, no token, a wrong one: refused, one line each.
    for header in [
        format!("Bearer {GLOBEX_API_TOKEN}"),
        String::new(),
        "Bearer nope".into(),
    ] {
        let headers: Vec<(&str, &str)> = if header.is_empty() {
            vec![]
        } else {
            vec![("Authorization", &header)]
        };
        let r = http(
            gw.addr,
            "GET",
            "/v1/tenants/acme/dnd/sms/%2B15558675310",
            &headers,
            b"",
        )
        .await;
        assert_eq!(r.status, 401, "{header}: {}", r.body);
        let json: Value = serde_json::from_str(&r.body).unwrap();
        assert!(!json["error"].as_str().unwrap().contains('\n'));
    }
    // globex sees nothing of acme's records.
    let r = http(
        gw.addr,
        "GET",
        "/v1/tenants/globex/dnd/sms/+15558675310",
        &[("Authorization", &format!("Bearer {GLOBEX_API_TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["blocked"],
        false
    );

    // A batch of 10,000 with the two blocked numbers and one unreadable address in it.
    let mut addresses: Vec<String> = (0..9_997)
        .map(|i| format!("+1555{:07}", 1_000_000 + i))
        .collect();
    addresses.push(STOPPER.into());
    addresses.push("+1 555 000 0009".into());
    addresses.push("not a number".into());
    let body = serde_json::json!({ "channel": "sms", "addresses": addresses }).to_string();
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/dnd/check",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["checked"], 10_000);
    let blocked: Vec<&str> = json["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["address"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, [STOPPER, "+1 555 000 0009"]);
    assert_eq!(json["blocked"][1]["state"], "temporary");
    assert_eq!(json["invalid"][0]["address"], "not a number");

    // The same through the Rust API.
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let items = lookup
        .check_many("acme", Channel::Sms, &addresses)
        .await
        .unwrap();
    let blocked = items
        .iter()
        .filter(|i| matches!(i, Ok(v) if v.blocked))
        .count();
    assert_eq!((items.len(), blocked), (10_000, 2));
    assert!(items[9_999].is_err());

    // Over the limit: refused.
    addresses.push("+15550000000".into());
    let body = serde_json::json!({ "channel": "sms", "addresses": addresses }).to_string();
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/dnd/check",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_token_still_verifies() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let p = inbound_sms("SM66666666666666666666666666666666", "+15550000010", "STOP");
    assert_eq!(
        gw.twilio("/webhooks/twilio/acme", OLD_TWILIO_TOKEN, &p)
            .await
            .status,
        200
    );
    let lookup = Lookup::connect(&redis.url()).unwrap();
    assert!(
        lookup
            .check("acme", Channel::Sms, "+15550000010")
            .await
            .unwrap()
            .blocked
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_its_status_and_one_line_and_changes_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let path = "/webhooks/twilio/acme";
    let stop = inbound_sms("SM77777777777777777777777777777777", "+15550000011", "STOP");
    let body = form(&stop);
    let good_sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &stop);
    let tampered = body.replace("STOP", "STOP+");
    let bad_from = inbound_sms("SM88888888888888888888888888888888", "4155551234", "STOP");
    let bad_from_sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &bad_from);
    let other_tenant_sig =
        twilio_signature("globex-twilio-token", &format!("{PUBLIC_URL}{path}"), &stop);
    let big = vec![b'a'; 1024 * 1024 + 1];
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");
    // name, method, path, headers, body, expected status
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "unsigned",
            "POST",
            path,
            vec![form_ct],
            body.clone().into_bytes(),
            401,
        ),
        (
            "wrong signature",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", "WRONG_SIGNATURE")],
            body.clone().into_bytes(),
            401,
        ),
        (
            "tampered body",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", &good_sig)],
            tampered.into_bytes(),
            401,
        ),
        (
            "another tenant's token",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", &other_tenant_sig)],
            body.clone().into_bytes(),
            401,
        ),
        (
            "oversized",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", &good_sig)],
            big,
            413,
        ),
        (
            "wrong content type",
            "POST",
            path,
            vec![
                ("Content-Type", "application/xml"),
                ("X-Twilio-Signature", &good_sig),
            ],
            body.clone().into_bytes(),
            415,
        ),
        (
            "no content type",
            "POST",
            path,
            vec![("X-Twilio-Signature", &good_sig)],
            body.clone().into_bytes(),
            415,
        ),
        (
            "malformed form",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", &good_sig)],
            b"Body=%ZZ&From=%2".to_vec(),
            400,
        ),
        (
            "unknown tenant",
            "POST",
            "/webhooks/twilio/initech",
            vec![form_ct, ("X-Twilio-Signature", &good_sig)],
            body.clone().into_bytes(),
            404,
        ),
        (
            "unknown provider",
            "POST",
            "/webhooks/carrierpigeon/acme",
            vec![form_ct],
            body.clone().into_bytes(),
            404,
        ),
        ("wrong method", "GET", path, vec![], vec![], 405),
        (
            "unnormalisable number",
            "POST",
            path,
            vec![form_ct, ("X-Twilio-Signature", &bad_from_sig)],
            form(&bad_from).into_bytes(),
            400,
        ),
        (
            "unknown route",
            "POST",
            "/webhook/twilio/acme",
            vec![form_ct],
            body.clone().into_bytes(),
            404,
        ),
    ];
    for (name, method, path, headers, body, status) in cases {
        let before = redis.snapshot();
        let r = http(gw.addr, method, path, &headers, &body).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        let line = r.body.trim_end();
        assert!(
            !line.is_empty() && !line.contains('\n'),
            "{name}: one line, got {:?}",
            r.body
        );
        assert_eq!(redis.snapshot(), before, "{name}: redis must be unchanged");
    }
    // And the good request still works afterwards.
    assert_eq!(gw.twilio(path, TWILIO_TOKEN, &stop).await.status, 200);
    assert_ne!(redis.snapshot(), Vec::<String>::new());
    gw.stop().await;
}

#[tokio::test]
async fn redis_down_means_503_for_webhooks_and_fail_closed_lookups() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &redis);
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    redis.kill();
    let p = inbound_sms("SM99999999999999999999999999999999", "+15550000012", "STOP");
    let r = gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &p).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "GET",
        "/v1/tenants/acme/dnd/sms/+15550000012",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    let r = http(gw.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let (code, json) = check(&config, "sms", "+15550000012");
    assert_eq!(code, 2, "{json}");
    assert!(json["error"].as_str().unwrap().contains("redis"));
    gw.stop().await;
}

#[tokio::test]
async fn event_streams_json_batch_applies_the_good_events_and_reports_the_bad() {
    use sha2::Digest;
    let redis = RedisServer::start();
    let config = config_text(&redis.url()).replacen(
        &format!("account_sids = [\"{ACME_SID}\"]"),
        &format!("account_sids = [\"{ACME_SID}\"]\nevent_streams = true"),
        1,
    );
    let gw = TestGateway::start(&config).await;
    let t0 = iso_ago(60_000);
    let t1 = iso_ago(59_000);
    // Placeholders no timestamp contains (a bare "T1" is in "...T11:35..." after 10:00 UTC).
    let body = r#"[
 {"specversion":"1.0","type":"com.twilio.messaging.inbound-message.received","source":"/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/SMaa.json","id":"EZ1","datacontenttype":"application/json","time":"{T0}",
  "data":{"messageSid":"SMaa000000000000000000000000000000","from":"+15550000020","to":"+15017122661","body":"arrêt","timestamp":"{T0}","accountSid":"AC00000000000000000000000000000000"}},
 {"specversion":"1.0","type":"com.twilio.messaging.message.undelivered","id":"EZ2",
  "data":{"messageSid":"SMbb000000000000000000000000000000","to":"+15550000021","from":"+15017122661","messageStatus":"UNDELIVERED","errorCode":30003,"timestamp":"{T1}"}},
 {"specversion":"1.0","type":"com.twilio.messaging.message.failed","id":"EZ3","data":{"to":"+15550000022"}}
]"#
        .replace("{T0}", &t0)
        .replace("{T1}", &t1);
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let path = format!("/webhooks/twilio/acme?bodySHA256={hash}");
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &[]);
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Twilio-Signature", sig.as_str()),
    ];
    // The same signature over a different body: refused, nothing written.
    let r = http(
        gw.addr,
        "POST",
        &path,
        &headers,
        body.replace("arrêt", "hello").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(redis.snapshot(), Vec::<String>::new());

    let r = http(gw.addr, "POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("refused 1: event 2"), "{}", r.body);
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let v = lookup
        .check("acme", Channel::Sms, "+15550000020")
        .await
        .unwrap();
    assert!(v.blocked, "ARRÊT is an opt-out");
    let r = v.record.unwrap();
    assert_eq!(r.reason, "keyword:ARRET");
    assert_eq!(
        Some(r.event_ms),
        dndgate::time::parse_rfc3339_ms(&t0),
        "the event's own time, not receipt"
    );
    let v = lookup
        .check("acme", Channel::Sms, "+15550000021")
        .await
        .unwrap();
    assert_eq!(v.record.map(|r| r.reason), Some("twilio:30003".to_string()));
    gw.stop().await;
}

/// Issue 12 item 7: the form scheme signs `URL + name + value...` and the JSON scheme
/// signs the URL alone, with `bodySHA256` in its query. An attacker who texts the
/// business `&bodySHA256=HASH&z=` gets Twilio to sign a form whose concatenated string
/// reads as a URL binding the attacker's JSON body; replayed as an Event Streams post
/// (a START for a number that texted STOP), it must be refused and change nothing.
#[tokio::test]
async fn item_07_form_signature_cannot_be_replayed_as_json() {
    use sha2::Digest;
    let redis = RedisServer::start();
    // The configured URL carries a query string; the tenant takes Event Streams too.
    let config = config_text(&redis.url()).replacen(
        &format!("account_sids = [\"{ACME_SID}\"]"),
        &format!("account_sids = [\"{ACME_SID}\"]\nevent_streams = true"),
        1,
    );
    let gw = TestGateway::start(&config).await;
    let path = "/webhooks/twilio/acme?src=sms";
    let victim = "+15550000070";
    let stop = inbound_sms("SM70000000000000000000000000000070", victim, "STOP");
    assert_eq!(gw.twilio(path, TWILIO_TOKEN, &stop).await.status, 200);
    assert!(verdict(&redis, "acme", Channel::Sms, victim).await.blocked);

    // The attacker's body: a START from the victim's number, dated now.
    let forged = format!(
        r#"[{{"specversion":"1.0","type":"com.twilio.messaging.inbound-message.received","id":"EZ70","data":{{"messageSid":"SM71000000000000000000000000000071","from":"{victim}","to":"+15017122661","body":"START","timestamp":"{}"}}}}]"#,
        iso_ago(1000)
    );
    let hash = hex::encode(sha2::Sha256::digest(forged.as_bytes()));
    // The attacker texts the business; Twilio signs that inbound form as usual.
    let text = format!("&bodySHA256={hash}&z=");
    let captured = inbound_sms("SM72000000000000000000000000000072", "+15550000071", &text);
    let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &captured);
    // The string Twilio signed, taken as the URL of a JSON request: same HMAC.
    let mut sorted = captured.clone();
    sorted.sort();
    let mut forged_path = path.to_string();
    for (name, value) in &sorted {
        forged_path.push_str(name);
        forged_path.push_str(value);
    }
    assert_eq!(
        twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{forged_path}"), &[]),
        sig,
        "the replay carries a signature Twilio really made"
    );
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Twilio-Signature", sig.as_str()),
    ];
    let before = redis.snapshot();
    let r = http(gw.addr, "POST", &forged_path, &headers, forged.as_bytes()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("bodySHA256"), "{}", r.body);
    assert_eq!(redis.snapshot(), before, "the refusal changed nothing");
    assert!(verdict(&redis, "acme", Channel::Sms, victim).await.blocked);
    gw.stop().await;

    // A tenant not configured for Event Streams takes no JSON at all.
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let r = http(gw.addr, "POST", &forged_path, &headers, forged.as_bytes()).await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("event_streams"), "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

/// Issue 12 item 15 (Twilio): a status callback without `To`, as in Twilio's own docs
/// example for `sent`, carries no contact and so no DND signal: 200, nothing written
/// (counted as an ignored request), never a 400 that Twilio would retry and log. One
/// whose error code would be a DND cannot be applied either (a retry brings no `To`):
/// accepted the same way, with a warning in the log.
#[tokio::test]
async fn item_15_twilio_status_callback_without_to_is_accepted_as_ignored() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let path = "/webhooks/twilio/acme";
    let sent = [
        ("AccountSid", ACME_SID),
        ("From", "+15017122661"),
        ("MessageSid", "SM15000000000000000000000000000015"),
        ("MessageStatus", "sent"),
        ("SmsSid", "SM15000000000000000000000000000015"),
        ("SmsStatus", "sent"),
    ];
    let failed = [
        ("AccountSid", ACME_SID),
        ("ApiVersion", "2010-04-01"),
        ("ErrorCode", "30004"),
        ("From", "+15017122661"),
        ("MessageSid", "SM15100000000000000000000000000151"),
        ("MessageStatus", "undelivered"),
        ("SmsSid", "SM15100000000000000000000000000151"),
        ("SmsStatus", "undelivered"),
    ];
    for (name, params) in [("sent", &sent[..]), ("30004 without To", &failed[..])] {
        let before = redis.snapshot();
        let r = gw.twilio(path, TWILIO_TOKEN, params).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(redis.snapshot(), before, "{name}: nothing to apply");
    }
    // Through the shared URL too (the tenant comes from AccountSid).
    let r = gw.twilio("/webhooks/twilio", TWILIO_TOKEN, &sent).await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.stop().await;
}
