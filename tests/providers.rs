//! Every provider's fixtures, end to end, as data: each folder under `tests/providers/`
//! holds a provider's tenant configuration (`gateway.toml`), its sample payloads, and
//! its cases (`cases.toml`): the request, how it is signed, and the expected status
//! and DND outcome. The folders are read at run time, so a new provider's folder is
//! picked up with no change here; `tests/providers/README.md` describes the format.
//!
//! Each folder gets its own redis-server (a cluster with `DNDGATE_TEST_REDIS=cluster`)
//! and in-process gateway; its cases run in order against them, so a case may rely on
//! what the ones before it left (a START after a STOP). Every failing case is reported
//! at the end with its folder, its name, and what was expected and found.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use common::sign::Signer as FixtureSigner;
use common::*;
use dndgate::event::Channel;
use dndgate::simulate::fixture::{self, Case, CaseFile, Vars};
use dndgate::simulate::sign::{Request, Signer};

/// The folders this suite was written with: a folder that disappears is an error, not
/// a quietly smaller run. New folders need no entry here.
const KNOWN: &[&str] = &[
    "bandwidth",
    "brevo",
    "mailgun",
    "mandrill",
    "meta",
    "plivo",
    "postmark",
    "sendgrid",
    "ses",
    "signalwire",
    "sparkpost",
    "standard_webhooks",
    "telnyx",
    "twilio",
    "vonage",
];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/providers")
}

/// The configuration every folder's `gateway.toml` is appended to.
fn base_config(redis_url: &str) -> String {
    format!(
        r#"admin_listen = "off"
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
redis_url = "{redis_url}"
redis_timeout = "1s"

[tenants.acme]
api_tokens = ["{API_TOKEN}"]

[tenants.globex]
api_tokens = ["{GLOBEX_API_TOKEN}"]
"#
    )
}

/// Run one case; the list of what did not match (empty: it passed).
async fn run_case(
    dir: &Path,
    cases: &CaseFile,
    case: &Case,
    gw: &TestGateway,
    redis: &RedisServer,
    fetch: &FixtureFetch,
) -> Result<Vec<String>, String> {
    let vars = Vars::new(&cases.defaults, case, &BTreeMap::new())?;
    let folder = dir.to_path_buf();
    let mut req = cases.request(&folder, case, &vars, PUBLIC_URL)?;
    let method = req.method.clone();
    let table = fixture::resolve_sign_table(&folder, cases.sign_table(case)?, &vars)?;
    for served in FixtureSigner::from_table(table)?.sign(&mut req)? {
        fetch.serve(&served.url, served.body);
    }
    cases.set_headers(case, &vars, &mut req)?;
    // After signing: a signer may add to a GET's query (Vonage's `sig`).
    let path = req.url[PUBLIC_URL.len()..].to_string();
    if let Some(t) = &case.tamper {
        let text = String::from_utf8(req.body).map_err(|_| "tamper: the body is not text")?;
        if !text.contains(&t.replace) {
            return Err(format!("tamper: {:?} is not in the signed body", t.replace));
        }
        req.body = text.replacen(&t.replace, &t.with, 1).into_bytes();
    }

    let before = case.writes_nothing.then(|| redis.snapshot());
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let answer = http(gw.addr, &method, &path, &headers, &req.body).await;

    let mut wrong = Vec::new();
    let said = answer.body.trim_end();
    if answer.status != case.status {
        wrong.push(format!(
            "status: expected {}, got {} ({said})",
            case.status, answer.status
        ));
    }
    if let Some(fragment) = &case.answer_contains
        && !answer.body.contains(fragment.as_str())
    {
        wrong.push(format!(
            "answer: expected it to contain {fragment:?}, got {said:?}"
        ));
    }
    if let Some(before) = before {
        let after = redis.snapshot();
        if after != before {
            let new: Vec<&String> = after.iter().filter(|e| !before.contains(e)).collect();
            let gone: Vec<&String> = before.iter().filter(|e| !after.contains(e)).collect();
            wrong.push(format!(
                "writes_nothing: redis changed: added {new:?}, removed {gone:?}"
            ));
        }
    }
    wrong.extend(check_expectations(redis, &case.expect).await?);
    Ok(wrong)
}

/// What differs from `expect`, read through the lookup API.
async fn check_expectations(
    redis: &RedisServer,
    expect: &[fixture::Expect],
) -> Result<Vec<String>, String> {
    let lookup =
        dndgate::lookup::Lookup::connect(&redis.url()).map_err(|e| format!("lookup: {e}"))?;
    let mut wrong = Vec::new();
    for e in expect {
        let channel = Channel::from_str(&e.channel)
            .map_err(|_| format!("expect: unknown channel {:?}", e.channel))?;
        let what = format!("{} {} {}", e.tenant, e.channel, e.address);
        match lookup.check(&e.tenant, channel, &e.address).await {
            Ok(v) => {
                if let Some(why) = e.mismatch(&v) {
                    wrong.push(format!("{what}: {why}"));
                }
            }
            Err(err) => wrong.push(format!("{what}: lookup failed: {err}")),
        }
    }
    Ok(wrong)
}

/// Load and run one folder: how many cases ran, and every failure, each naming its case.
async fn run_folder(dir: &Path) -> (usize, Vec<String>) {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let fail = |what: String| (0, vec![format!("{name}: {what}")]);
    let gateway = match std::fs::read_to_string(dir.join("gateway.toml")) {
        Ok(t) => t,
        Err(e) => return fail(format!("gateway.toml: {e}")),
    };
    let cases: CaseFile = match std::fs::read_to_string(dir.join("cases.toml")) {
        Ok(t) => match toml::from_str(&t) {
            Ok(c) => c,
            Err(e) => return fail(format!("cases.toml: {e}")),
        },
        Err(e) => return fail(format!("cases.toml: {e}")),
    };
    if cases.case.is_empty() {
        return fail("cases.toml has no [[case]]: a folder must test something".into());
    }
    let mut failures = Vec::new();
    let mut events = std::collections::BTreeSet::new();
    for case in &cases.case {
        if let Some(event) = &case.event {
            let well_formed = !event.is_empty()
                && event
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                failures.push(format!(
                    "{name} / {}: event {event:?} is not lowercase letters, digits and dashes",
                    case.name
                ));
            }
            if !(200..300).contains(&case.status) || case.tamper.is_some() {
                failures.push(format!(
                    "{name} / {}: event {event:?} names a refused or tampered case; \
                     an event is what a user replays, signed as the provider would",
                    case.name
                ));
            }
            if case.expect.iter().any(|e| e.tenant != "acme") {
                failures.push(format!(
                    "{name} / {}: event {event:?} is about another tenant than acme; \
                     simulate replays an event for the tenant it is given",
                    case.name
                ));
            }
            if !events.insert(event.clone()) {
                failures.push(format!(
                    "{name} / {}: event {event:?} names two cases",
                    case.name
                ));
            }
        }
        if case.expect.is_empty() && !case.writes_nothing {
            failures.push(format!(
                "{name} / {}: checks no DND outcome (give `expect` or `writes_nothing = true`)",
                case.name
            ));
        }
    }
    if !failures.is_empty() {
        return (0, failures);
    }

    let redis = RedisServer::start();
    let config = format!("{}\n{gateway}", base_config(&redis.url()));
    if let Err(problems) = dndgate::config::Config::parse(&config, dir) {
        return fail(format!(
            "gateway.toml: the configuration is refused: {problems:?}"
        ));
    }
    let fetch = Arc::new(FixtureFetch::default());
    let gw = TestGateway::start_with_fetch(&config, fetch.clone()).await;
    for case in &cases.case {
        match run_case(dir, &cases, case, &gw, &redis, &fetch).await {
            Ok(wrong) => failures.extend(
                wrong
                    .into_iter()
                    .map(|w| format!("{name} / {}: {w}", case.name)),
            ),
            Err(e) => failures.push(format!("{name} / {}: cannot run: {e}", case.name)),
        }
    }
    gw.stop().await;
    (cases.case.len(), failures)
}

fn folders() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .expect("tests/providers/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test]
async fn every_provider_folder_runs_end_to_end() {
    let dirs = folders();
    assert!(!dirs.is_empty(), "no folder under tests/providers/");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for dir in &dirs {
        let (ran, found) = run_folder(dir).await;
        let summary = format!(
            "{}: {ran} case(s), {} failure(s)",
            dir.file_name().unwrap().to_string_lossy(),
            found.len()
        );
        println!("{summary}");
        counts.push(summary);
        failures.extend(found);
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}\n(per folder: {})",
        failures.len(),
        failures.join("\n  "),
        counts.join("; ")
    );
}

#[test]
fn the_folders_this_suite_was_written_with_are_all_there() {
    let names: Vec<String> = folders()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for known in KNOWN {
        assert!(
            names.iter().any(|n| n == known),
            "tests/providers/{known}/ is gone: {names:?}"
        );
    }
}

/// A folder without cases is an error, never a pass.
#[tokio::test]
async fn a_folder_without_cases_fails() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("empty");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("gateway.toml"), "").unwrap();
    std::fs::write(
        folder.join("cases.toml"),
        "[defaults]\npath = \"/webhooks/x/acme\"\n",
    )
    .unwrap();
    let (ran, failures) = run_folder(&folder).await;
    assert_eq!((ran, failures.len()), (0, 1), "{failures:?}");
    assert!(failures[0].contains("no [[case]]"), "{failures:?}");
}

/// One row of [`the_signer_reproduces_published_vectors`].
struct Vector {
    name: &'static str,
    /// A `sign` table as a fixture writes it.
    sign: &'static str,
    url: &'static str,
    body: &'static str,
    /// The header to read, and its expected value; `None`: the signature is randomised
    /// (ECDSA, RSA checked by verifying instead), or lives in the body (Mailgun).
    header: &'static str,
    expected: Option<&'static str>,
}

const TELNYX_BODY: &str = r#"{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4","occurred_at":"2024-01-15T20:16:07.588+00:00","payload":{"direction":"inbound","encoding":"GSM-7","errors":[],"from":{"carrier":"T-Mobile USA","line_type":"long_code","phone_number":"+13125550100"},"id":"84cca175-9755-4859-b67f-4730d7f58aa3","media":[],"messaging_profile_id":"740572b6-099c-44a1-89b9-6c92163bc68d","parts":1,"received_at":"2024-01-15T20:16:07.503+00:00","record_type":"message","text":"Hello from Telnyx!","to":[{"carrier":"Telnyx","line_type":"Wireless","phone_number":"+17735550100","status":"webhook_delivered"}],"type":"SMS"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://hooks.example.com/telnyx"}}"#;

const TWILIO_PARAMS: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

/// The P-256 scalar 0x42 * 32 (tests/providers/sendgrid) as PKCS#8 PEM.
const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQkJCQkJCQkJCQkJC
QkJCQkJCQkJCQkJCQkJCQkJCQkKhRANCAAQ604YalWITklFrtZPvBVg+0uWGb1y2
JgowFyN/2JuQr9CWHH43B1pnkaOcYfVilbArbSZWe2FeYKpB7hyOgziN
-----END PRIVATE KEY-----";

/// The signer is what every fixture rests on: it must reproduce the providers' own
/// vectors (tests/providers/*/vectors.json, research/providers.md), in the form a fixture writes.
#[test]
fn the_signer_reproduces_published_vectors() {
    let vectors = [
        Vector {
            name: "Meta: WhatsApp Node SDK utils.test.ts",
            sign: r#"scheme = "template"
                algorithm = "hmac-sha256"
                key = "TEST_APP_SECRET"
                message = "{body}"
                encoding = "hex"
                prefix = "sha256="
                header = "X-Hub-Signature-256""#,
            url: "https://hooks.example.com/meta",
            body: "test",
            header: "X-Hub-Signature-256",
            expected: Some(
                "sha256=0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221",
            ),
        },
        Vector {
            name: "Standard Webhooks: svix test_sign_function",
            sign: r#"scheme = "template"
                algorithm = "hmac-sha256"
                key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                key_prefix = "whsec_"
                key_encoding = "base64"
                message = "{id}.{timestamp}.{body}"
                prefix = "v1,"
                header = "webhook-signature"
                timestamp = "1614265330"
                timestamp_header = "webhook-timestamp"
                id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
                id_header = "webhook-id""#,
            url: "https://hooks.example.com/svix",
            body: r#"{"test": 2432232314}"#,
            header: "webhook-signature",
            expected: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        },
        Vector {
            name: "Twilio: request validator, basic",
            sign: r#"scheme = "twilio"
                key = "12345""#,
            url: "https://mycompany.com/myapp.php?foo=1&bar=2",
            body: TWILIO_PARAMS,
            header: "X-Twilio-Signature",
            expected: Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        },
        Vector {
            name: "Twilio: a repeated parameter's values sorted and told once",
            sign: r#"scheme = "twilio"
                key = "12345""#,
            url: "https://mycompany.com/myapp.php?foo=1&bar=2",
            body: "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
            header: "X-Twilio-Signature",
            expected: Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="),
        },
        Vector {
            name: "Twilio JSON (bodySHA256): HMAC-SHA1 over the URL alone, as a template",
            sign: r#"scheme = "template"
                algorithm = "hmac-sha1"
                key = "12345"
                message = "{url}"
                header = "X-Twilio-Signature""#,
            url: "https://mycompany.com/myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
            body: r#"{"property": "value", "boolean": true}"#,
            header: "X-Twilio-Signature",
            expected: Some("y77kIzt2vzLz71DgmJGsen2scGs="),
        },
        Vector {
            name: "Telnyx: Ed25519 over timestamp|body, RFC 8032 test-1 key (hex seed)",
            sign: r#"scheme = "template"
                algorithm = "ed25519"
                key = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
                key_encoding = "hex"
                message = "{timestamp}|{body}"
                header = "telnyx-signature-ed25519"
                timestamp = "1705349767"
                timestamp_header = "telnyx-timestamp""#,
            url: "https://hooks.example.com/telnyx",
            body: TELNYX_BODY,
            header: "telnyx-signature-ed25519",
            expected: Some(
                "5T1UQ8/DsZ6NItQDFJZ35g7JtNx7g5oHLDlvUNwYgpIwQym49A2rs7dqkJ/kFAUTV7p4I6AOojqy2Zs5BxNAAQ==",
            ),
        },
        Vector {
            name: "Telnyx: the same key as PKCS#8 PEM",
            sign: r#"scheme = "template"
                algorithm = "ed25519"
                key = """-----BEGIN PRIVATE KEY-----
                MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
                -----END PRIVATE KEY-----"""
                key_encoding = "pem"
                message = "{timestamp}|{body}"
                header = "telnyx-signature-ed25519"
                timestamp = "1705349767""#,
            url: "https://hooks.example.com/telnyx",
            body: TELNYX_BODY,
            header: "telnyx-signature-ed25519",
            expected: Some(
                "5T1UQ8/DsZ6NItQDFJZ35g7JtNx7g5oHLDlvUNwYgpIwQym49A2rs7dqkJ/kFAUTV7p4I6AOojqy2Zs5BxNAAQ==",
            ),
        },
        Vector {
            name: "Basic auth: RFC 7617's example",
            sign: r#"scheme = "basic"
                key = "Aladdin:open sesame""#,
            url: "https://hooks.example.com/postmark",
            body: "{}",
            header: "Authorization",
            expected: Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        },
    ];
    for v in &vectors {
        let signer: Signer = toml::from_str(v.sign).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let mut req = Request {
            method: "POST".into(),
            url: v.url.into(),
            headers: Vec::new(),
            body: v.body.as_bytes().to_vec(),
        };
        signer
            .sign(&mut req)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let got = req
            .headers
            .iter()
            .find(|(n, _)| n == v.header)
            .map(|(_, value)| value.as_str());
        assert_eq!(got, v.expected, "{}", v.name);
    }

    // A misspelt field is an error, not a default.
    for table in [
        "scheme = \"twilio\"\nkye = \"12345\"",
        "scheme = \"template\"\nalgorithm = \"hmac-sha256\"\nkey = \"k\"\nmessage = \"{body}\"\nheader = \"h\"\nprefx = \"v1,\"",
    ] {
        assert!(toml::from_str::<Signer>(table).is_err(), "{table}");
    }

    // Mailgun: mailgun-php's WebhookTest vector, written into the body.
    let signer: Signer =
        toml::from_str("scheme = \"mailgun\"\nkey = \"key-3ax6xnjp29jd6fds4gc373sgvjxteol0\"")
            .unwrap();
    let mut req = Request {
        method: "POST".into(),
        url: String::new(),
        headers: Vec::new(),
        body: br#"{"signature":{"timestamp":"1403645220","token":"5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6","signature":""},"event-data":{}}"#.to_vec(),
    };
    signer.sign(&mut req).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body["signature"]["signature"],
        "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"
    );

    // ECDSA is randomised: what the signer makes must verify under SendGrid's key for it
    // (tests/providers/sendgrid/gateway.toml), from the hex scalar and from PEM alike.
    use p256::ecdsa::signature::Verifier;
    let public = dndgate::providers::sendgrid::verify::parse_p256_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOtOGGpViE5JRa7WT7wVYPtLlhm9ctiYKMBcjf9ibkK/Qlhx+NwdaZ5GjnGH1YpWwK20mVnthXmCqQe4cjoM4jQ==",
    )
    .unwrap();
    for (key, encoding) in [("42".repeat(32), "hex"), (P256_PEM.to_string(), "pem")] {
        let mut t = toml::Table::new();
        for (k, v) in [
            ("scheme", "template"),
            ("algorithm", "ecdsa-p256-sha256"),
            ("key", key.as_str()),
            ("key_encoding", encoding),
            ("message", "{timestamp}{body}"),
            ("header", "X-Twilio-Email-Event-Webhook-Signature"),
            ("timestamp", "1600112502"),
        ] {
            t.insert(k.into(), v.into());
        }
        let signer: Signer = toml::Value::Table(t).try_into().unwrap();
        let mut req = Request {
            method: "POST".into(),
            url: String::new(),
            headers: Vec::new(),
            body: b"[{\"event\":\"spamreport\"}]\r\n".to_vec(),
        };
        signer.sign(&mut req).unwrap();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(&req.headers[0].1)
            .unwrap();
        let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
        let mut message = b"1600112502".to_vec();
        message.extend_from_slice(&req.body);
        assert!(public.verify(&message, &signature).is_ok(), "{encoding}");
    }

    // SNS: RSA over the canonical string, checked with the test key's public half.
    let key = include_str!("fixtures/sns/test-signing-key.pem");
    for version in [1u8, 2] {
        let mut envelope = serde_json::json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": "hello", "Timestamp": "2026-01-01T00:00:00.000Z",
        });
        common::sign::sns(&mut envelope, key, version).unwrap();
        let text = "Message\nhello\nMessageId\nm-1\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n";
        use base64::Engine;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::signature::Verifier;
        let public = rsa::PrivateKey::from_pkcs8_pem(key)
            .unwrap()
            .to_public_key();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(envelope["Signature"].as_str().unwrap())
            .unwrap();
        let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
        let ok = if version == 1 {
            rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(public).verify(text.as_bytes(), &sig)
        } else {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public).verify(text.as_bytes(), &sig)
        };
        assert!(ok.is_ok(), "sns version {version}");
        assert_eq!(envelope["SignatureVersion"], version.to_string());
    }
}

/// `dndgate simulate ARGS`: its exit code, stdout and stderr.
async fn simulate(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dndgate"))
        .arg("simulate")
        .args(args)
        .output()
        .await
        .expect("run dndgate simulate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder's gateway (its `gateway.toml` on the base configuration), and that
/// configuration written to a file for `dndgate simulate --config`.
struct Simulated {
    redis: RedisServer,
    gw: TestGateway,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Simulated {
    /// The gateway runs `gateway_toml`; the file simulate reads holds `simulate_toml`.
    async fn start(gateway_toml: &str, simulate_toml: &str) -> Simulated {
        let redis = RedisServer::start();
        let gw =
            TestGateway::start(&format!("{}\n{gateway_toml}", base_config(&redis.url()))).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("dndgate.toml");
        std::fs::write(
            &config,
            format!("{}\n{simulate_toml}", base_config(&redis.url())),
        )
        .unwrap();
        Simulated {
            redis,
            gw,
            _dir: dir,
            config,
        }
    }

    async fn run(&self, rest: &[&str]) -> (i32, String, String) {
        let url = format!("http://{}", self.gw.addr);
        let mut args = vec![
            "--config",
            self.config.to_str().unwrap(),
            "--tenant",
            "acme",
            "--url",
            url.as_str(),
        ];
        args.extend_from_slice(rest);
        simulate(&args).await
    }
}

fn folder_text(folder: &str, file: &str) -> String {
    std::fs::read_to_string(fixtures_root().join(folder).join(file)).unwrap()
}

#[tokio::test]
async fn every_named_event_replays_through_dndgate_simulate() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in folders() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let cases = CaseFile::parse(&folder_text(&name, "cases.toml")).unwrap();
        if cases.simulate.unsupported.is_some() {
            continue;
        }
        let events: Vec<(&str, &Case)> = cases.events().collect();
        if events.is_empty() {
            failures.push(format!(
                "{name}: no case names an `event` for dndgate simulate"
            ));
            continue;
        }
        let gateway = folder_text(&name, "gateway.toml");
        let sim = Simulated::start(&gateway, &gateway).await;
        for (event, case) in events {
            ran += 1;
            let (code, out, err) = sim.run(&[&name, event]).await;
            let answer = format!("answer: {} ", case.status);
            if code != 0 || !out.contains(&answer) {
                failures.push(format!(
                    "{name} {event}: exit {code}, expected 0 and {answer:?}\n{out}{err}"
                ));
            }
            for wrong in check_expectations(&sim.redis, &case.expect).await.unwrap() {
                failures.push(format!("{name} {event}: {wrong}"));
            }
        }
        sim.gw.stop().await;
    }
    println!("{ran} event(s) replayed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn simulate_signs_with_the_configured_secret() {
    let gateway = folder_text("twilio", "gateway.toml");
    // The file simulate reads holds another auth token than the gateway's: the request
    // is refused, so the key came from the configuration, not from the fixture.
    let other = gateway.replace("test_auth_token_0123456789abcdef", "another-token");
    assert_ne!(other, gateway);
    let sim = Simulated::start(&gateway, &other).await;
    let (code, out, _) = sim.run(&["twilio", "stop"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("answer: 401"), "{out}");
    sim.gw.stop().await;

    // Both hold the other token: accepted.
    let sim = Simulated::start(&other, &other).await;
    let (code, out, err) = sim.run(&["twilio", "stop"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("answer: 200"), "{out}");
    sim.gw.stop().await;
}

#[tokio::test]
async fn simulate_takes_an_address_and_prints_a_curl_command() {
    let gateway = folder_text("twilio", "gateway.toml");
    let sim = Simulated::start(&gateway, &gateway).await;
    let (code, out, err) = sim.run(&["twilio", "stop", "+15550199999"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sms +15550199999: permanent"), "{out}");
    let blocked = check_expectations(
        &sim.redis,
        &[fixture::Expect {
            tenant: "acme".into(),
            channel: "sms".into(),
            address: "+15550199999".into(),
            state: fixture::Outcome::Permanent,
            reason: None,
            scope: None,
        }],
    )
    .await
    .unwrap();
    assert!(blocked.is_empty(), "{blocked:?}");

    let before = sim.redis.snapshot();
    let (code, out, _) = sim
        .run(&["--print", "twilio", "stop", "+15550198888"])
        .await;
    assert_eq!(code, 0);
    assert!(out.starts_with("curl -sS -X POST"), "{out}");
    assert!(out.contains("X-Twilio-Signature: "), "{out}");
    assert!(out.contains("%2B15550198888"), "{out}");
    assert_eq!(sim.redis.snapshot(), before, "--print posts nothing");

    let (code, _, err) = sim.run(&["twilio", "no-such-event"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("one of stop, start"), "{err}");
    sim.gw.stop().await;
}

#[tokio::test]
async fn simulate_explains_what_it_cannot_sign() {
    // SendGrid signs with its own key: the tenant must list the simulator's public key.
    let gateway = folder_text("sendgrid", "gateway.toml");
    let fixture_key = gateway
        .lines()
        .find_map(|l| l.strip_prefix("public_keys = [\""))
        .and_then(|l| l.split('"').next())
        .unwrap()
        .to_string();
    let other = gateway.replace(
        &fixture_key,
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==",
    );
    let sim = Simulated::start(&gateway, &other).await;
    let (code, out, err) = sim.run(&["sendgrid", "hard-bounce"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(err.contains(&fixture_key), "{err}");
    assert!(err.contains("tenants.acme.sendgrid.public_keys"), "{err}");

    let (code, _, err) = sim.run(&["ses", "hard-bounce"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("mailbox simulator"), "{err}");
    sim.gw.stop().await;

    let (code, out, _) = simulate(&["--list"]).await;
    assert_eq!(code, 0);
    for p in dndgate::providers::Provider::ALL {
        assert!(
            out.lines().any(|l| l == p.as_str()),
            "{} missing:\n{out}",
            p.as_str()
        );
    }
}

#[tokio::test]
async fn with_redis_down_brevo_is_asked_to_retry_with_429_and_twilio_with_503() {
    // Brevo drops a webhook answered 5xx and retries a 429; Twilio retries a 503. The
    // test gateway has no spool, so with Redis down nothing can be taken now.
    let mut redis = RedisServer::start();
    let gateway = format!(
        "{}\n{}",
        folder_text("brevo", "gateway.toml"),
        folder_text("twilio", "gateway.toml")
    );
    let gw = TestGateway::start(&format!("{}\n{gateway}", base_config(&redis.url()))).await;
    redis.kill();

    let body = br#"{"event":"hard_bounce","email":"down@example.com","id":1,"message-id":"<down@brevo>","ts_event":1,"reason":"unknown user"}"#;
    let auth = common::sign::basic("brevo_user:brevo_pass_123");
    let r = http(
        gw.addr,
        "POST",
        "/webhooks/brevo/acme",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);

    let params = [
        ("From", "+15550100077"),
        ("Body", "STOP"),
        ("MessageSid", "SM0077"),
        ("AccountSid", "AC00000000000000000000000000000000"),
    ];
    let r = gw
        .twilio(
            "/webhooks/twilio/acme",
            "test_auth_token_0123456789abcdef",
            &params,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn every_named_event_replays_for_another_address() {
    // What a user does first: `dndgate simulate ... PROVIDER EVENT +15551234567`. Each
    // folder's events are replayed in order, each fixture address mapped to a new one,
    // so an event that builds on an earlier one (START after STOP) finds it there. The
    // event must reach the new address, not the fixture's, and not be deduplicated as a
    // replay of the fixture's own event id.
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in folders() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let cases = CaseFile::parse(&folder_text(&name, "cases.toml")).unwrap();
        if cases.simulate.unsupported.is_some() {
            continue;
        }
        let gateway = folder_text(&name, "gateway.toml");
        let sim = Simulated::start(&gateway, &gateway).await;
        let mut mapped: BTreeMap<String, String> = BTreeMap::new();
        for (event, case) in cases.events() {
            let Some(first) = case.expect.first() else {
                continue;
            };
            let n = mapped.len();
            let other = mapped
                .entry(first.address.clone())
                .or_insert_with(|| {
                    if first.address.contains('@') {
                        format!("replay-{n}@example.org")
                    } else {
                        format!("+1555019{n:04}")
                    }
                })
                .clone();
            if !(first.address.contains('@') || first.address.starts_with('+')) {
                continue; // PAGE_ID:USER_ID: no address to make up
            }
            ran += 1;
            let (code, out, err) = sim.run(&[&name, event, &other]).await;
            if code == 2 && case.writes_nothing && err.contains("built in") {
                continue; // an event about no address (a test batch, a URL check)
            }
            if code != 0 {
                failures.push(format!("{name} {event} {other}: exit {code}\n{out}{err}"));
                continue;
            }
            let mut expect = first.clone();
            expect.address = other.clone();
            for wrong in check_expectations(&sim.redis, &[expect]).await.unwrap() {
                failures.push(format!("{name} {event}: {wrong}"));
            }
        }
        sim.gw.stop().await;
    }
    println!("{ran} event(s) replayed for another address");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
