//! Logs: phone numbers and email addresses are masked by default (`+1******1234`), in
//! full only with `log_addresses = "full"`; secrets, bearer tokens and signature headers
//! never reach a log line. Read from the stderr of the real `dndgate serve`.

mod common;

use common::*;

const STOPPER: &str = "+14155551234";
const STOPPER_MASKED: &str = "+1******1234";
const WRONG_BEARER: &str = "not-the-token-0123456789";

async fn run_and_log(log_addresses: Option<&str>) -> String {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut text = config_text(&redis.url())
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
    if let Some(mode) = log_addresses {
        text = format!("log_addresses = \"{mode}\"\n{text}");
    }
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = ServeProcess::start(&config, &[]);
    serve.wait_ready(addr).await.expect("dndgate serve starts");

    let path = "/webhooks/twilio/acme";
    let post = |params: Vec<(&'static str, &'static str)>| async move {
        post_twilio(addr, path, TWILIO_TOKEN, &params).await
    };
    // A STOP: the record is written and logged.
    let r = post(inbound_sms(
        "SM11111111111111111111111111111111",
        STOPPER,
        "STOP",
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A callback whose address cannot be read: the refusal quotes it.
    let r = post(status_callback(
        "SM22222222222222222222222222222222",
        "4155559876",
        "undelivered",
        Some("30003"),
    ))
    .await;
    assert!(
        r.status == 400 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    assert!(
        r.body.contains("4155559876"),
        "the answer names it: {}",
        r.body
    );
    // A forged signature and a wrong bearer token: refused, logged without either.
    let forged = http(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", "Zm9yZ2VkLXNpZ25hdHVyZS12YWx1ZQ=="),
        ],
        form(&inbound_sms("SM3", STOPPER, "START")).as_bytes(),
    )
    .await;
    assert_eq!(forged.status, 401);
    let api = http(
        addr,
        "GET",
        &format!("/v1/tenants/acme/dnd/sms/{}", STOPPER.replace('+', "%2B")),
        &[("Authorization", &format!("Bearer {WRONG_BEARER}"))],
        b"",
    )
    .await;
    assert_eq!(api.status, 401);

    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    for secret in [
        TWILIO_TOKEN,
        OLD_TWILIO_TOKEN,
        API_TOKEN,
        WRONG_BEARER,
        LINK_KEY,
        "Zm9yZ2VkLXNpZ25hdHVyZS12YWx1ZQ==",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    log
}

#[tokio::test]
async fn addresses_are_masked_in_logs_by_default() {
    let log = run_and_log(None).await;
    let record_line = log
        .lines()
        .find(|l| l.contains("dnd record"))
        .unwrap_or_else(|| panic!("the STOP is logged:\n{log}"));
    assert!(record_line.contains(STOPPER_MASKED), "{record_line}");
    assert!(!log.contains(STOPPER), "full number in the log:\n{log}");
    assert!(
        !log.contains("4155559876"),
        "unreadable number in the log:\n{log}"
    );
    assert!(log.contains("******9876"), "{log}");
}

#[tokio::test]
async fn log_addresses_full_shows_them_for_debugging() {
    let log = run_and_log(Some("full")).await;
    let record_line = log
        .lines()
        .find(|l| l.contains("dnd record"))
        .unwrap_or_else(|| panic!("the STOP is logged:\n{log}"));
    assert!(record_line.contains(STOPPER), "{record_line}");
    assert!(log.contains("4155559876"), "{log}");
}

#[test]
fn a_bad_log_addresses_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dndgate.toml");
    std::fs::write(
        &config,
        format!(
            "log_addresses = \"plain\"\n{}",
            config_text("redis://127.0.0.1:1/")
        ),
    )
    .unwrap();
    let (code, _, stderr) = dndgate(&["config", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("log_addresses: \"plain\" is not \"masked\" or \"full\""),
        "{stderr}"
    );
}

#[test]
fn secrets_stay_out_of_config_check_and_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dndgate.toml");
    let text = config_text("redis://:redis-password-0123@127.0.0.1:1/");
    std::fs::write(&config, &text).unwrap();
    let (code, stdout, stderr) =
        dndgate(&["config", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("redis redis://:***@127.0.0.1:1/"),
        "{stdout}"
    );
    let debug = format!(
        "{:?}",
        dndgate::config::Config::parse(&text, std::path::Path::new(".")).unwrap()
    );
    for secret in [
        TWILIO_TOKEN,
        OLD_TWILIO_TOKEN,
        API_TOKEN,
        LINK_KEY,
        LINK_KEY_OLD,
    ] {
        assert!(
            !stdout.contains(secret) && !debug.contains(secret),
            "{secret} shown"
        );
    }
    assert!(!stdout.contains("redis-password-0123"), "{stdout}");
    // A failing lookup names where Redis is, without its password.
    let (code, _, stderr) = dndgate(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        "acme",
        "--channel",
        "sms",
        "+14155551234",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("redis://:***@127.0.0.1:1/"), "{stderr}");
    assert!(!stderr.contains("redis-password-0123"), "{stderr}");
}

/// base64("dndgate-standard-webhooks-test-key")
const RESEND_SECRET: &str = "whsec_ZG5kZ2F0ZS1zdGFuZGFyZC13ZWJob29rcy10ZXN0LWtleQ==";

#[tokio::test]
async fn item_19_no_full_address_in_any_log_line_on_the_spool_path() {
    // Redis is down the whole time (nothing listens on its port): every recipient of a
    // multi-recipient Resend bounce goes to the spool, and each one's event id embeds
    // its address (`webhook-id:ADDRESS`).
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let redis_url = format!("redis://127.0.0.1:{}/", free_port());
    let text = config_text(&redis_url)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
        .replacen(
            "[tenants.acme.twilio]",
            &format!(
                "[tenants.acme.standard_webhooks]\nsecrets = [\"{RESEND_SECRET}\"]\n\n[tenants.acme.twilio]"
            ),
            1,
        );
    let text = format!("log_addresses = \"masked\"\nspool_dir = \"spool\"\n{text}");
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut serve = ServeProcess::start(&config, &[]);
    serve.wait_ready(addr).await.expect("dndgate serve starts");

    let recipients = [
        "carol.bounced@example.com",
        "dave.bounced@example.org",
        "erin.bounced@example.net",
    ];
    let body = serde_json::json!({
        "type": "email.bounced",
        "created_at": iso_ago(60_000),
        "data": {
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>",
            "to": recipients,
            "subject": "Sending this example",
            "bounce": {"message": "m", "subType": "General", "type": "Permanent"}
        }
    })
    .to_string();
    let id = "msg_2ZvHLbVQ8mZ4o0h1oAtqKgTtVdQ";
    let ts = now_ms() / 1000;
    let r = http(
        addr,
        "POST",
        "/webhooks/resend/acme",
        &[
            ("Content-Type", "application/json"),
            ("svix-id", id),
            ("svix-timestamp", &ts.to_string()),
            (
                "svix-signature",
                &standard_webhooks_signature(RESEND_SECRET, id, ts, &body),
            ),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "spooled: {}", r.body);

    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("spool"), "the spool path was taken:\n{log}");
    // The line is there, with the address masked: its event id still tells it apart.
    assert!(
        log.contains(&format!("{id}:ca***@example.com")),
        "the spooled event is logged, masked:\n{log}"
    );
    for address in recipients {
        let local = address.split('@').next().unwrap();
        assert!(!log.contains(address), "{address} in the log:\n{log}");
        assert!(!log.contains(local), "{local} in the log:\n{log}");
    }
}
