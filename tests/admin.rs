//! The admin listener (issue 12 item 21): `/metrics` and the detailed `/readyz` are
//! served on `admin_listen` (loopback by default) and nowhere else; the public listener
//! keeps `/healthz` and a bare `/readyz` that names no tenant, count, Redis error or
//! spool size; and the operator API answers an unknown tenant exactly as it answers a
//! wrong token.

mod common;

use common::*;

#[tokio::test]
async fn item_21_public_listener_gives_nothing_away() {
    let mut redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    // Something to count: a STOP for acme.
    let r = gw
        .twilio(
            "/webhooks/twilio/acme",
            TWILIO_TOKEN,
            &inbound_sms("SM21000000000000000000000000000001", "+14155550121", "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Public: no metrics, a bare readiness answer.
    let r = http(gw.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 404, "public /metrics: {}", r.body);
    assert!(!r.body.contains("dndgate_"), "{}", r.body);
    let r = http(gw.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert_eq!(http(gw.addr, "GET", "/healthz", &[], b"").await.status, 200);

    // An unknown tenant looks exactly like a known one with a wrong token, with or
    // without a token.
    let path = |t: &str| format!("/v1/tenants/{t}/dnd/sms/%2B14155550121");
    for auth in [
        Some("Bearer not-the-token"),
        Some(&*format!("Bearer {API_TOKEN}")),
        None,
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let known = http(gw.addr, "GET", &path("acme"), &headers, b"").await;
        let unknown = http(gw.addr, "GET", &path("nosuch"), &headers, b"").await;
        if auth.is_some_and(|a| a.contains(API_TOKEN)) {
            // acme's own token works for acme only; for "nosuch" it is a wrong token.
            assert_eq!(known.status, 200, "{}", known.body);
            let wrong = http(gw.addr, "GET", &path("globex"), &headers, b"").await;
            assert_eq!(
                (unknown.status, unknown.body.as_str()),
                (wrong.status, wrong.body.as_str()),
                "unknown tenant vs another tenant's token"
            );
            continue;
        }
        assert_eq!(
            (unknown.status, unknown.body.as_str()),
            (known.status, known.body.as_str()),
            "unknown tenant vs wrong token ({auth:?})"
        );
        assert_eq!(unknown.status, 401);
        assert_eq!(
            unknown.header("www-authenticate"),
            known.header("www-authenticate")
        );
    }
    for (method, route) in [
        ("POST", "/v1/tenants/nosuch/dnd/check"),
        ("GET", "/v1/tenants/nosuch/history/%2B14155550121"),
        ("PUT", "/v1/tenants/nosuch/contacts/c1"),
        ("POST", "/v1/tenants/nosuch/links"),
    ] {
        let known = route.replace("nosuch", "acme");
        let bad = [("Authorization", "Bearer not-the-token")];
        let a = http(gw.addr, method, route, &bad, b"{}").await;
        let b = http(gw.addr, method, &known, &bad, b"{}").await;
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{method} {route}");
    }

    // The admin listener has them: metrics naming the tenant, detailed readiness.
    let r = http(gw.admin_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("tenant=\"acme\""), "{}", r.body);
    let r = http(gw.admin_addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("ready\nredis: ok\n"), "{}", r.body);
    assert_eq!(
        http(gw.admin_addr, "GET", "/healthz", &[], b"")
            .await
            .status,
        200
    );
    // ... and nothing else: no webhooks, no operator API.
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.admin_addr,
        "GET",
        &path("acme"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(gw.admin_addr, "POST", "/webhooks/twilio/acme", &[], b"").await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Redis down: the public readiness answer still says no more than its status; the
    // admin one says why.
    redis.kill();
    let r = http(gw.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"));
    assert!(r.header("retry-after").is_some());
    let r = http(gw.admin_addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("redis: redis unavailable"), "{}", r.body);
    gw.stop().await;
}

#[test]
fn item_21_admin_listen_defaults_to_loopback_and_can_be_off() {
    let parse = |extra: &str| {
        let text = config_text("redis://127.0.0.1:1/").replace("admin_listen = \"off\"\n", extra);
        dndgate::config::Config::parse(&text, std::path::Path::new("."))
    };
    let config = parse("").unwrap();
    assert_eq!(config.admin_listen, Some("127.0.0.1:9091".parse().unwrap()));
    let config = parse("admin_listen = \"off\"\n").unwrap();
    assert_eq!(config.admin_listen, None);
    let config = parse("admin_listen = \"10.0.0.5:9100\"\n").unwrap();
    assert_eq!(config.admin_listen, Some("10.0.0.5:9100".parse().unwrap()));
    let problems = parse("admin_listen = \"everywhere\"\n").unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("admin_listen: \"everywhere\"")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn item_21_serve_puts_metrics_on_the_admin_listener_only() {
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
    let mut serve = ServeProcess::start(&config, &[]);
    serve.wait_ready(addr).await.unwrap();
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").await.status, 404);
    let r = http(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let r = http(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("dndgate_redis_up 1"), "{}", r.body);
    let r = http(admin, "GET", "/readyz", &[], b"").await;
    assert!(r.body.contains("spool: records=0 "), "{}", r.body);
    let (code, log) = serve.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(&format!("admin_listen={admin}")), "{log}");
}
