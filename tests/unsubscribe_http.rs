//! `/u/{token}` over plain HTTP (`tests/browser.rs` drives the same page in Chromium): a GET
//! changes nothing, a one-click POST unsubscribes at once, an invalid token gets the
//! same 200 and changes nothing, the page's form unsubscribes and re-enables what a link
//! set (and nothing else, nor outside its scope), and the tenant's confirmation URL gets
//! a 303.

mod common;

use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use serde_json::{Value, json};

async fn mint(gw: &TestGateway, address: &str, scope: &str) -> String {
    let auth = format!("Bearer {API_TOKEN}");
    let body = json!({"address": address, "scope": scope, "campaign": "nov-sale"}).to_string();
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/links",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn form(gw: &TestGateway, token: &str, body: &str) -> HttpResponse {
    http(
        gw.addr,
        "POST",
        &format!("/u/{token}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await
}

fn page_config(redis: &RedisServer, extra: &str) -> String {
    config_text(&redis.url()).replacen(
        "[tenants.acme.twilio]",
        &format!("[tenants.acme.page]\nname = \"Acme Shoes\"\n{extra}\n\n[tenants.acme.twilio]"),
        1,
    )
}

#[tokio::test]
async fn get_changes_nothing_and_one_click_unsubscribes() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let token = mint(&gw, "alice@example.com", "all").await;
    let before = redis.snapshot();
    let r = http(gw.addr, "GET", &format!("/u/{token}"), &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("Messages from Acme Shoes") && r.body.contains("al***@example.com"));
    assert!(
        r.body.contains("value=\"email\" checked"),
        "allowed now, so ticked"
    );
    assert_eq!(
        redis.snapshot(),
        before,
        "a GET (a mail scanner's prefetch) changes nothing"
    );

    let r = form(&gw, &token, "List-Unsubscribe=One-Click").await;
    assert_eq!((r.status, r.header("location")), (200, None), "{}", r.body);
    assert_eq!(r.body, "ok\n", "the same answer as for an invalid link");
    let v = Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Email, "alice@example.com")
        .await
        .unwrap();
    assert!(v.blocked);
    let record = v.record.unwrap();
    assert_eq!(
        (record.reason.as_str(), record.source.as_str()),
        ("link:nov-sale", "link")
    );
    assert_eq!(v.scope, Some(dndgate::event::Scope::All));
    // The mail provider retries the one-click POST: applied once.
    let audited = redis.snapshot();
    assert_eq!(
        form(&gw, &token, "").await.status,
        200,
        "lenient about the body"
    );
    assert_eq!(redis.snapshot(), audited);
    gw.stop().await;
}

#[tokio::test]
async fn invalid_tokens_get_200_on_post_404_on_get_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let token = mint(&gw, "bob@example.com", "email").await;
    let before = redis.snapshot();
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), &token[..token.len() - 3], "not-a-token"] {
        let r = form(&gw, bad, "List-Unsubscribe=One-Click").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{bad}");
        let r = http(gw.addr, "GET", &format!("/u/{bad}"), &[], b"").await;
        assert_eq!(r.status, 404, "{bad}");
        assert!(r.body.contains("This link is not valid"));
        assert_eq!(redis.snapshot(), before, "{bad}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_form_unsubscribes_and_re_enables_what_the_link_set_then_redirects() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(
        &redis,
        "confirm_url = \"https://acme.example/thanks\"",
    ))
    .await;
    let token = mint(&gw, "+14155550123", "sms").await;
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let blocked = |c: Channel| {
        let lookup = lookup.clone();
        async move {
            lookup
                .check("acme", c, "+14155550123")
                .await
                .unwrap()
                .blocked
        }
    };
    // The prominent button: the link's scope (sms), then 303 to the tenant's page.
    let r = form(&gw, &token, "form=preferences&action=unsubscribe").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("https://acme.example/thanks"));
    assert!(blocked(Channel::Sms).await && !blocked(Channel::Voice).await);
    // The page now shows SMS unticked, and only SMS: the link's scope.
    let r = http(gw.addr, "GET", &format!("/u/{token}"), &[], b"").await;
    assert!(
        r.body.contains("value=\"sms\">") && !r.body.contains("value=\"voice\""),
        "{}",
        r.body
    );
    // Save with SMS ticked again: the link set that record, so the page lifts it.
    // A channel outside the scope in the form is ignored.
    let r = form(
        &gw,
        &token,
        "form=preferences&action=save&receive=sms&receive=whatsapp",
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        !blocked(Channel::Sms).await
            && !blocked(Channel::Voice).await
            && !blocked(Channel::Whatsapp).await
    );
    let auth = format!("Bearer {API_TOKEN}");
    let h = http(
        gw.addr,
        "GET",
        "/v1/tenants/acme/history/%2B14155550123",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    let history: Value = serde_json::from_str(&h.body).unwrap();
    let entries = history["entries"].as_array().unwrap();
    let lift = entries
        .iter()
        .find(|e| e["action"] == "unblock_own")
        .unwrap();
    assert_eq!(
        (&lift["outcome"], &lift["scope"], &lift["provider"]),
        (&json!("applied"), &json!("sms"), &json!("link"))
    );
    assert!(
        entries.iter().all(|e| e.get("evidence").is_none()),
        "the page writes no evidence: {entries:?}"
    );
    assert!(entries.iter().all(|e| e["scope"] == "sms"), "{entries:?}");
    gw.stop().await;
}

#[tokio::test]
async fn immediate_mode_applies_on_get() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "link_mode = \"immediate\"")).await;
    let token = mint(&gw, "carol@example.com", "email").await;
    let r = http(gw.addr, "GET", &format!("/u/{token}"), &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("You will no longer receive: Email"));
    let v = Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Email, "carol@example.com")
        .await
        .unwrap();
    assert!(v.blocked);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_form_posts_are_refused_and_change_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let token = mint(&gw, "dave@example.com", "email").await;
    let before = redis.snapshot();
    let big = format!(
        "form=preferences&action=unsubscribe&pad={}",
        "x".repeat(20 * 1024)
    );
    let r = form(&gw, &token, &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(redis.snapshot(), before);
    gw.stop().await;
}

#[tokio::test]
async fn expired_retired_foreign_recordless_and_other_tenant_tokens_change_nothing() {
    use dndgate::event::Scope;
    use dndgate::links::{KeyRing, LinkClaims, link_id, mint as sign};
    use dndgate::secret::Secret;
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let address = "dan@example.com";
    // A real link, so that its record exists: the bad tokens below name it.
    let real = mint(&gw, address, "email").await;
    let ring = KeyRing::new([(2, Secret::new(LINK_KEY))], 2).unwrap();
    let id = link_id(&ring, "acme", address);
    let now_min = (now_s() / 60) as u32;
    let claims = |expires_min| LinkClaims {
        link_id: id,
        scope: Scope::Channel(Channel::Email),
        expires_min,
        campaign: None,
    };
    // The test's ring is the gateway's: this token verifies there.
    assert_eq!(
        dndgate::links::verify(&ring, &real, (now_s() * 1000) as i64).map(|c| c.link_id),
        Ok(id)
    );
    let expired = sign(&ring, &claims(Some(now_min - 1))).unwrap();
    // Key id 9 was never (or is no longer) in the gateway's ring.
    let retired = sign(
        &KeyRing::new([(9, Secret::new("a-key-that-was-retired-long-ago"))], 9).unwrap(),
        &claims(None),
    )
    .unwrap();
    // Key id 2, but another deployment's secret.
    let foreign = sign(
        &KeyRing::new([(2, Secret::new("somebody-elses-key-0123456789"))], 2).unwrap(),
        &claims(None),
    )
    .unwrap();
    // Properly signed, but for an address no link was ever minted for.
    let recordless = sign(
        &ring,
        &LinkClaims {
            link_id: link_id(&ring, "acme", "nobody@example.com"),
            ..claims(None)
        },
    )
    .unwrap();
    let before = redis.snapshot();
    for (name, bad) in [
        ("expired", &expired),
        ("retired", &retired),
        ("foreign", &foreign),
        ("recordless", &recordless),
    ] {
        let r = form(&gw, bad, "List-Unsubscribe=One-Click").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{name}");
        let r = form(&gw, bad, "form=preferences&action=unsubscribe").await;
        assert_eq!(r.status, 404, "{name}: {}", r.body);
        let r = http(gw.addr, "GET", &format!("/u/{bad}"), &[], b"").await;
        assert_eq!(r.status, 404, "{name}");
        assert!(r.body.contains("This link is not valid"), "{name}");
        assert_eq!(redis.snapshot(), before, "{name} changed state");
    }

    // A link of another tenant reaches that tenant's record and no other.
    let auth = format!("Bearer {GLOBEX_API_TOKEN}");
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/globex/links",
        &[("Authorization", &auth)],
        json!({"address": address, "scope": "email"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let globex = serde_json::from_str::<Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(form(&gw, &globex, "").await.status, 200);
    let lookup = Lookup::connect(&redis.url()).unwrap();
    assert!(
        lookup
            .check("globex", Channel::Email, address)
            .await
            .unwrap()
            .blocked
    );
    assert!(
        !lookup
            .check("acme", Channel::Email, address)
            .await
            .unwrap()
            .blocked
    );
    // A tenant's API token cannot mint links for another tenant.
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/links",
        &[("Authorization", &auth)],
        json!({"address": address, "scope": "email"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    gw.stop().await;
}

/// Issue 12 item 1: the page may re-enable only channels within its link's scope whose
/// records a link (or the page) set. A STOP by text and a STOP on WhatsApp stay, the
/// channels outside the link's scope are not touched, the page says how to opt back
/// in, and no "evidence" is written for a page action.
#[tokio::test]
async fn item_01_the_page_lifts_only_what_a_link_set_within_its_scope() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let phone = "+14155550131";
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let blocked = |c: Channel| {
        let lookup = lookup.clone();
        async move { lookup.check("acme", c, phone).await.unwrap().blocked }
    };
    // STOP by SMS (covers calls too), then STOP on WhatsApp.
    let r = gw
        .twilio(
            "/webhooks/twilio",
            TWILIO_TOKEN,
            &inbound_sms("SM00000000000000000000000000000131", phone, "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let whatsapp_from = format!("whatsapp:{phone}");
    let r = gw
        .twilio(
            "/webhooks/twilio",
            TWILIO_TOKEN,
            &inbound_sms("SM00000000000000000000000000000132", &whatsapp_from, "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for c in [Channel::Sms, Channel::Voice, Channel::Whatsapp] {
        assert!(blocked(c).await, "{c} starts blocked");
    }

    // A link for scope sms; its page posted with every channel ticked.
    let token = mint(&gw, phone, "sms").await;
    let before = redis.snapshot();
    let r = form(
        &gw,
        &token,
        "form=preferences&action=save&receive=sms&receive=voice&receive=whatsapp",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for c in [Channel::Sms, Channel::Voice, Channel::Whatsapp] {
        assert!(blocked(c).await, "{c}: nothing is lifted");
    }
    assert!(
        r.body.contains("reply START"),
        "the page says how to opt back in: {}",
        r.body
    );
    let auth = format!("Bearer {API_TOKEN}");
    let history = |gw_addr| {
        let auth = auth.clone();
        async move {
            let h = http(
                gw_addr,
                "GET",
                "/v1/tenants/acme/history/%2B14155550131",
                &[("Authorization", &auth)],
                b"",
            )
            .await;
            serde_json::from_str::<Value>(&h.body).unwrap()["entries"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let entries = history(gw.addr).await;
    assert!(
        entries.iter().all(|e| e.get("evidence").is_none()),
        "the page writes no evidence: {entries:?}"
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["provider"] == "link")
            .all(|e| e["scope"] == "sms" && e["outcome"] == "refused"),
        "only the link's scope is touched, and the lift is refused: {entries:?}"
    );
    // Records are as they were (the refusal is in the audit stream only).
    let records = |snapshot: Vec<String>| -> Vec<String> {
        snapshot
            .into_iter()
            .filter(|k| !k.contains(":audit"))
            .collect()
    };
    assert_eq!(records(redis.snapshot()), records(before));

    // A one-click on the same link does not make the STOP a link's record...
    let r = form(&gw, &token, "List-Unsubscribe=One-Click").await;
    assert_eq!(r.status, 200);
    let r = form(&gw, &token, "form=preferences&action=save&receive=sms").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blocked(Channel::Sms).await, "a STOP stays a STOP");

    // ...but a record the link set, on a channel in its scope, is re-enabled.
    let other = "+14155550132";
    let token = mint(&gw, other, "sms").await;
    let r = form(&gw, &token, "form=preferences&action=unsubscribe").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        lookup
            .check("acme", Channel::Sms, other)
            .await
            .unwrap()
            .blocked
    );
    let r = form(&gw, &token, "form=preferences&action=save&receive=sms").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("You will receive again"), "{}", r.body);
    assert!(
        !lookup
            .check("acme", Channel::Sms, other)
            .await
            .unwrap()
            .blocked
    );
    // The page of an sms link shows the sms channel only.
    let r = http(gw.addr, "GET", &format!("/u/{token}"), &[], b"").await;
    assert!(
        r.body.contains("value=\"sms\"") && !r.body.contains("value=\"voice\""),
        "{}",
        r.body
    );
    gw.stop().await;
}

/// A contact who changes their mind on the page within a minute (unsubscribe, back in,
/// out again) ends on their last choice: each submission is its own change, never
/// dropped as a duplicate of an earlier one in the other direction.
#[tokio::test]
async fn item_01_every_choice_on_the_page_is_applied_even_within_a_minute() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let phone = "+14155550141";
    let lookup = Lookup::connect(&redis.url()).unwrap();
    let blocked = || {
        let lookup = lookup.clone();
        async move {
            lookup
                .check("acme", Channel::Sms, phone)
                .await
                .unwrap()
                .blocked
        }
    };
    let token = mint(&gw, phone, "sms").await;

    let r = form(&gw, &token, "form=preferences&action=unsubscribe").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blocked().await, "first unsubscribe");
    let r = form(&gw, &token, "form=preferences&action=save&receive=sms").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!blocked().await, "back in");
    // Out again, the same minute: the page says so, and so must the record.
    let r = form(&gw, &token, "form=preferences&action=save").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        blocked().await,
        "out again: the opt-out was lost: {}",
        r.body
    );
    let r = form(&gw, &token, "form=preferences&action=save&receive=sms").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!blocked().await, "back in again");
    // A one-click POST (the mail client's button) after that, still the same minute.
    let r = http(
        gw.addr,
        "POST",
        &format!("/u/{token}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blocked().await, "one-click after a resubscribe");
}
