//! Minting unsubscribe links (SPEC section 9, first part): the HTTP API and
//! `dndgate link` produce the URL and the List-Unsubscribe headers; the token is at
//! most 64 characters, verifies with the configured keys, and names the right
//! (tenant, address) record.

mod common;

use common::*;
use dndgate::config::Config;
use dndgate::event::{Channel, Scope};
use dndgate::links;
use serde_json::{Value, json};

async fn mint(gw: &TestGateway, token: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/links",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    (r.status, serde_json::from_str(&r.body).unwrap())
}

#[tokio::test]
async fn api_and_cli_mint_the_same_verifiable_link() {
    let redis = RedisServer::start();
    let text = config_text(&redis.url());
    let gw = TestGateway::start(&text).await;
    let (status, body) = mint(
        &gw,
        API_TOKEN,
        json!({"address": " Alice@Example.com ", "scope": "email", "campaign": "nov-sale", "expires_in": "30d"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    let token = url
        .strip_prefix(&format!("{PUBLIC_URL}/u/"))
        .expect("URL under /u/");
    assert!(token.len() <= 64, "{token}");
    assert_eq!(body["token"], token);
    assert_eq!(body["headers"]["List-Unsubscribe"], format!("<{url}>"));
    assert_eq!(
        body["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );

    // The token verifies with the configured ring, and its record names the contact.
    let config = Config::parse(&text, std::path::Path::new(".")).unwrap();
    let ring = config.links.as_ref().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let claims = links::verify(ring, token, now).unwrap();
    assert_eq!(claims.scope, Scope::Channel(Channel::Email));
    assert_eq!(claims.campaign.as_deref(), Some("nov-sale"));
    let minutes = claims.expires_min.unwrap() as i64 - now / 60_000;
    assert!(
        (30 * 24 * 60..=30 * 24 * 60 + 1).contains(&minutes),
        "{minutes}"
    );
    let store = dndgate::store::Store::open(
        &redis.url(),
        dndgate::store::StoreOptions {
            timeout: std::time::Duration::from_secs(1),
            dedup_ttl: std::time::Duration::from_secs(60),
        },
    )
    .unwrap();
    let (tenant, address) = store.get_link(&claims.link_id).await.unwrap().unwrap();
    assert_eq!(
        (tenant.as_str(), address.as_str()),
        ("acme", "alice@example.com")
    );
    // Minting records no DND: only the link.
    assert!(
        redis.snapshot().iter().all(|k| k.starts_with("dndlink:")),
        "{:?}",
        redis.snapshot()
    );
    // Past its expiry the token is refused.
    assert!(matches!(
        links::verify(ring, token, (claims.expires_min.unwrap() as i64) * 60_000),
        Err(links::TokenError::Expired { .. })
    ));

    // The CLI mints a link for the same contact under the same record.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dndgate.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = dndgate(&[
        "link",
        "--config",
        path.to_str().unwrap(),
        "--tenant",
        "acme",
        "--scope",
        "all",
        "alice@example.com",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cli: Value = serde_json::from_str(out.trim()).unwrap();
    let cli_claims = links::verify(ring, cli["token"].as_str().unwrap(), now).unwrap();
    assert_eq!(cli_claims.link_id, claims.link_id);
    assert_eq!(cli_claims.scope, Scope::All);
    // Without --expires-in, the default expiry (90 days; item_01 below).
    assert!(cli_claims.expires_min.is_some());
    gw.stop().await;
}

#[tokio::test]
async fn bad_link_requests_are_refused_and_write_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    for (token, body, want) in [
        (
            API_TOKEN,
            json!({"address": "alice@example.com", "scope": "fax"}),
            400,
        ),
        (
            API_TOKEN,
            json!({"address": "not an email", "scope": "email"}),
            400,
        ),
        (
            API_TOKEN,
            json!({"address": "alice@example.com", "scope": "email", "campaign": "much-too-long-campaign"}),
            400,
        ),
        (
            API_TOKEN,
            json!({"address": "alice@example.com", "scope": "email", "campaign": "a b"}),
            400,
        ),
        (
            API_TOKEN,
            json!({"address": "alice@example.com", "scope": "email", "expires_in": "soon"}),
            400,
        ),
        (
            GLOBEX_API_TOKEN,
            json!({"address": "alice@example.com", "scope": "email"}),
            401,
        ),
    ] {
        let (status, answer) = mint(&gw, token, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.contains('\n')),
            "{answer}"
        );
        assert_eq!(redis.snapshot(), Vec::<String>::new(), "{body}");
    }
    gw.stop().await;

    // A gateway without [links] says so.
    let text = config_text(&redis.url());
    let start = text.find("[links]").unwrap();
    let end = text.find("[tenants.acme]").unwrap();
    let without = format!("{}{}", &text[..start], &text[end..]);
    let gw = TestGateway::start(&without).await;
    let (status, answer) = mint(
        &gw,
        API_TOKEN,
        json!({"address": "alice@example.com", "scope": "email"}),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("[links]"));
    gw.stop().await;
}

/// Issue 12 item 1: a link minted without an expiry lapses after 90 days by default;
/// `[links] expires_after` changes that for every tenant, and a tenant's
/// `[tenants.ID.page] link_expires_after` for that tenant.
#[tokio::test]
async fn item_01_links_expire_after_90_days_unless_configured() {
    let redis = RedisServer::start();
    let minutes_left = |text: &str, token: &str| {
        let config = Config::parse(text, std::path::Path::new(".")).unwrap();
        let claims = links::verify(config.links.as_ref().unwrap(), token, now_ms()).unwrap();
        claims.expires_min.expect("the link expires") as i64 - now_ms() / 60_000
    };
    let day = 24 * 60;
    // The default, through the API and the CLI.
    let text = config_text(&redis.url());
    let gw = TestGateway::start(&text).await;
    let (status, body) = mint(
        &gw,
        API_TOKEN,
        json!({"address": "a@example.com", "scope": "email"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let left = minutes_left(&text, body["token"].as_str().unwrap());
    assert!((90 * day..=90 * day + 1).contains(&left), "{left}");
    gw.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dndgate.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = dndgate(&[
        "link",
        "--config",
        path.to_str().unwrap(),
        "--tenant",
        "acme",
        "--scope",
        "sms",
        "+14155550100",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cli: Value = serde_json::from_str(out.trim()).unwrap();
    let left = minutes_left(&text, cli["token"].as_str().unwrap());
    assert!((90 * day..=90 * day + 1).contains(&left), "{left}");

    // Configured: globally 30 days, acme 7 days.
    let text = text
        .replacen(
            "sign_with = 2\n",
            "sign_with = 2\nexpires_after = \"30d\"\n",
            1,
        )
        .replacen(
            "[tenants.acme.twilio]",
            "[tenants.acme.page]\nlink_expires_after = \"7d\"\n\n[tenants.acme.twilio]",
            1,
        );
    let gw = TestGateway::start(&text).await;
    let (status, body) = mint(
        &gw,
        API_TOKEN,
        json!({"address": "a@example.com", "scope": "email"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let left = minutes_left(&text, body["token"].as_str().unwrap());
    assert!((7 * day..=7 * day + 1).contains(&left), "{left}");
    let auth = format!("Bearer {GLOBEX_API_TOKEN}");
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/globex/links",
        &[("Authorization", &auth)],
        json!({"address": "a@example.com", "scope": "email"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let body: Value = serde_json::from_str(&r.body).unwrap();
    let left = minutes_left(&text, body["token"].as_str().unwrap());
    assert!((30 * day..=30 * day + 1).contains(&left), "{left}");
    gw.stop().await;

    // config check names a bad value.
    let bad = text.replacen("expires_after = \"30d\"", "expires_after = \"soon\"", 1);
    let err = Config::parse(&bad, std::path::Path::new(".")).unwrap_err();
    assert!(
        err.iter().any(|p| p.contains("links.expires_after")),
        "{err:?}"
    );
}
