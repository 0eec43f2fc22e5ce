//! `/metrics` and the request span, checked from outside: a real gateway process gets a
//! known sequence of requests, then its Prometheus text must count exactly them, be
//! well-formed, and the JSON log must carry the span's fields on every request line.

mod common;

use common::*;
use std::collections::BTreeMap;

/// Every sample of a text exposition, `name{labels}` -> value; panics on a line that is
/// neither a comment nor a sample, or a sample whose family has no TYPE and HELP.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut helped = std::collections::HashSet::new();
    let mut samples = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "ends with # EOF: {text}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
        } else if line == "# EOF" || line.starts_with("# UNIT ") {
        } else {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "bad name in {line:?}"
            );
            let family = ["_total", "_bucket", "_count", "_sum", "_created"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(
                typed.contains(family) && helped.contains(family),
                "{family} has TYPE and HELP"
            );
            samples.insert(series.to_string(), value);
        }
    }
    samples
}

#[tokio::test]
async fn metrics_count_what_happened_and_the_json_log_carries_the_span() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("dndgate.toml");
    std::fs::write(
        &config,
        with_admin_listen(&config_text(&redis.url()), admin)
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\"")),
    )
    .unwrap();
    let mut serve = ServeProcess::start(&config, &["--log-format", "json"]);
    serve.wait_ready(addr).await.unwrap();

    let post = |params: Vec<(&'static str, &'static str)>, token: &'static str| async move {
        post_twilio(addr, "/webhooks/twilio/acme", token, &params).await
    };
    let stop = inbound_sms("SM0000000000000000000000000000m001", "+14155550101", "STOP");
    let hello = inbound_sms(
        "SM0000000000000000000000000000m002",
        "+14155550102",
        "hello",
    );
    assert_eq!(post(stop.clone(), TWILIO_TOKEN).await.status, 200);
    assert_eq!(
        post(stop.clone(), TWILIO_TOKEN).await.status,
        200,
        "a retry"
    );
    assert_eq!(post(hello, TWILIO_TOKEN).await.status, 200);
    assert_eq!(post(stop, "not-the-token").await.status, 401);
    let unsigned = http(
        addr,
        "POST",
        "/webhooks/twilio/acme",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Body=STOP",
    )
    .await;
    assert_eq!(unsigned.status, 401);
    // An unknown tenant must not become a label (it is whatever the path says).
    let r = http(
        addr,
        "POST",
        "/webhooks/twilio/nosuchtenant",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Body=hi",
    )
    .await;
    assert_eq!(r.status, 404);
    // A provider added after the first seven is counted under its own name, not as
    // `unknown` (an unsigned Telnyx post for a tenant without a Telnyx section), and
    // a route that names no provider is `unknown`.
    let telnyx = http(
        addr,
        "POST",
        "/webhooks/telnyx/acme",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    assert!(telnyx.status >= 400, "{}", telnyx.body);
    let nobody = http(
        addr,
        "POST",
        "/webhooks/nosuchprovider",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(nobody.status, 404);
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        addr,
        "GET",
        "/v1/tenants/acme/dnd/sms/%2B14155550101",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Metrics are on the admin listener only.
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").await.status, 404);
    let r = http(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let samples = parse_exposition(&r.body);
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from\n{}", r.body))
    };
    let requests = |outcome: &str, tenant: &str, status: u16| {
        format!(
            "dndgate_requests_total{{provider=\"twilio\",tenant=\"{tenant}\",outcome=\"{outcome}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(get(&requests("applied", "acme", 200)), 1.0);
    assert_eq!(get(&requests("duplicate", "acme", 200)), 1.0);
    assert_eq!(get(&requests("unchanged", "acme", 200)), 1.0);
    assert_eq!(get(&requests("refused", "acme", 401)), 2.0);
    assert_eq!(get(&requests("refused", "", 404)), 1.0);
    assert_eq!(
        get(&format!(
            "dndgate_requests_total{{provider=\"telnyx\",tenant=\"\",outcome=\"refused\",status=\"{}\"}}",
            telnyx.status
        )),
        1.0,
        "{}",
        r.body
    );
    assert_eq!(
        get(
            "dndgate_requests_total{provider=\"unknown\",tenant=\"\",outcome=\"refused\",status=\"404\"}"
        ),
        1.0,
        "only the route with no provider is unknown: {}",
        r.body
    );
    assert!(
        !r.body.contains("nosuchtenant"),
        "an unknown tenant is not a label"
    );
    assert_eq!(
        get("dndgate_verification_failures_total{provider=\"twilio\",reason=\"mismatch\"}"),
        1.0
    );
    assert_eq!(
        get("dndgate_verification_failures_total{provider=\"twilio\",reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        get(
            "dndgate_requests_total{provider=\"api\",tenant=\"acme\",outcome=\"ok\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        get("dndgate_request_duration_seconds_count{provider=\"twilio\"}"),
        6.0
    );
    assert_eq!(get("dndgate_redis_up"), 1.0);
    assert_eq!(
        get("dndgate_events_total{provider=\"twilio\",kind=\"inbound\"}"),
        3.0,
        "two STOPs (one a retry) and a hello"
    );
    assert_eq!(get("dndgate_spool_records"), 0.0);
    assert_eq!(get("dndgate_spool_appended_total"), 0.0);
    assert_eq!(
        get("dndgate_lookups_total{kind=\"single\",outcome=\"blocked\"}"),
        1.0
    );
    assert_eq!(
        get("dndgate_lookup_duration_seconds_count{kind=\"single\"}"),
        1.0
    );
    // The STOP wrote two records (a revocation by text covers calls); the retry none.
    for channel in ["sms", "voice"] {
        assert_eq!(
            get(&format!(
                "dndgate_dnd_changes_total{{channel=\"{channel}\",state=\"permanent\",reason=\"keyword:STOP\"}}"
            )),
            1.0
        );
    }

    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    // Every line is JSON; the lines logged while a request is handled carry its span.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let changed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "dnd record")
        .collect();
    assert_eq!(changed.len(), 2, "the STOP's sms and voice records: {log}");
    for line in changed {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["route"], "twilio", "{line}");
        assert_eq!(line["span"]["method"], "POST", "{line}");
        assert_eq!(line["fields"]["address"], "+1******0101", "{line}");
    }
    let refused: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "webhook refused")
        .collect();
    assert_eq!(
        refused.len(),
        5,
        "two bad signatures, one unknown tenant, Telnyx for a tenant without it, no such provider: {log}"
    );
    assert!(
        !log.contains("+14155550101"),
        "addresses stay masked in JSON logs too"
    );
}
