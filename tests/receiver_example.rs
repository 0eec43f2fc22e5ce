//! `examples/receiver.rs`, the local receiver for events out: its signature check, and
//! a gateway delivering a STOP to it end to end. (Tests inside an example run only
//! under `cargo test --examples`; this file includes it so `cargo test` runs them.)

mod common;

#[path = "../examples/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::time::Duration;

use common::*;
use receiver::{Refusal, TOLERANCE_S, describe, keys, verify};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn now_s() -> i64 {
    dndgate::time::now_ms() / 1000
}

/// The headers dndgate sends for `body`, signed with `secrets`, at `ts`.
fn headers(secrets: &[&str], id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let secrets: Vec<dndgate::secret::Secret> = secrets
        .iter()
        .map(|s| dndgate::secret::resolve(s, std::path::Path::new(".")).unwrap())
        .collect();
    dndgate::outbound::signed_headers(&secrets, id, ts, body)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn check(
    keys: &[Vec<u8>],
    headers: &[(String, String)],
    body: &str,
    now: i64,
) -> Result<(), Refusal> {
    verify(
        keys,
        |name| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        },
        body.as_bytes(),
        now,
    )
}

#[test]
fn the_receiver_verifies_what_dndgate_signs_and_nothing_else() {
    let body = r#"{"id":"evt_3_1-0","type":"dnd.enabled","data":{"channel":"sms","address":"+14155551234"}}"#;
    let now = now_s();
    let mine = keys(SECRET).unwrap();
    let signed = headers(&[SECRET], "evt_3_1-0", now, body);
    assert_eq!(check(&mine, &signed, body, now), Ok(()));
    assert_eq!(
        describe(body.as_bytes()).as_deref(),
        Some("dnd.enabled sms +14155551234 evt_3_1-0")
    );

    // While the endpoint's secret rotates, dndgate signs with both; a receiver that
    // knows either verifies, and one that knows both does too.
    let both = headers(&[OLD_SECRET, SECRET], "evt_3_1-0", now, body);
    assert_eq!(check(&mine, &both, body, now), Ok(()));
    assert_eq!(check(&keys(OLD_SECRET).unwrap(), &both, body, now), Ok(()));
    let rotating = keys(&format!("{OLD_SECRET} {SECRET}")).unwrap();
    assert_eq!(check(&rotating, &signed, body, now), Ok(()));

    // A changed body, id or timestamp, or another secret: refused.
    let altered = body.replace("+14155551234", "+14155551235");
    assert_eq!(
        check(&mine, &signed, &altered, now),
        Err(Refusal::Signature)
    );
    let mut other_id = signed.clone();
    other_id[0].1 = "evt_3_2-0".into();
    assert_eq!(check(&mine, &other_id, body, now), Err(Refusal::Signature));
    let mut other_ts = signed.clone();
    other_ts[1].1 = (now - 1).to_string();
    assert_eq!(check(&mine, &other_ts, body, now), Err(Refusal::Signature));
    assert_eq!(
        check(&keys(OLD_SECRET).unwrap(), &signed, body, now),
        Err(Refusal::Signature)
    );

    // Five minutes either way is accepted; more is not, however well signed.
    for (ts, ok) in [
        (now - TOLERANCE_S, true),
        (now + TOLERANCE_S, true),
        (now - TOLERANCE_S - 1, false),
        (now + TOLERANCE_S + 1, false),
    ] {
        let h = headers(&[SECRET], "evt_3_1-0", ts, body);
        let want = if ok { Ok(()) } else { Err(Refusal::Timestamp) };
        assert_eq!(check(&mine, &h, body, now), want, "{ts} vs {now}");
    }

    // A missing header, and secrets that are not whsec_ base64.
    assert_eq!(
        check(&mine, &signed[..2], body, now),
        Err(Refusal::MissingHeader)
    );
    assert!(keys("").is_err());
    assert!(keys("whsec_not base64!").is_err());
}

#[tokio::test]
async fn a_gateway_delivers_a_stop_to_the_example_receiver() {
    let redis = RedisServer::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(receiver::serve(listener, keys(SECRET).unwrap(), move |l| {
        let _ = tx.send(l);
    }));
    let config = format!(
        r#"{}
[[tenants.acme.endpoints]]
id = "local"
url = "http://127.0.0.1:{port}/dnd"
secrets = ["{SECRET}"]
events = ["dnd.enabled"]
channels = ["sms"]
"#,
        config_text(&redis.url())
    );
    let gw = TestGateway::start(&config).await;
    let sid = format!("SM{:032}", 1);
    let r = gw
        .twilio(
            "/webhooks/twilio/acme",
            TWILIO_TOKEN,
            &inbound_sms(&sid, "+14155550199", "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let line = tokio::time::timeout(Duration::from_secs(10), lines.recv())
        .await
        .expect("a delivery within 10 s")
        .unwrap();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts[..3], ["dnd.enabled", "sms", "+14155550199"], "{line}");
    assert!(parts[3].starts_with("evt_"), "{line}");
    // The voice event of the same STOP is filtered out by `channels`.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), lines.recv())
            .await
            .is_err()
    );
    gw.stop().await;
    server.abort();
}
