//! The unsubscribe page in a real headless Chromium, driven over WebDriver by
//! chromedriver: load the page (which forbids itself every script, so it works as it
//! would with JavaScript off) from a running gateway, tick and untick channels,
//! submit, follow the redirect, then check the lookup; the same for a one-click POST
//! sent by the browser; and a screenshot at phone width (kept in docs/ when
//! `DNDGATE_UPDATE_SCREENSHOT=1`).
//!
//! These tests need Debian's `chromium` and `chromium-driver` (`.ci/run` installs them
//! where missing); `DNDGATE_CHROMIUM` and `DNDGATE_CHROMEDRIVER` point elsewhere. They
//! fail, never skip, when the browser is missing.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::*;
use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::Duration;

/// The page runs no script at all (its policy forbids them), so what the browser does
/// with it is what a mail app with JavaScript off does.
async fn assert_scriptless(client: &Client) {
    let scripts = client
        .execute(
            "return [document.scripts.length, \
             [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length, \
             document.querySelector('meta[http-equiv=Content-Security-Policy]').content]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scripts[0], 0, "no <script>: {scripts}");
    assert_eq!(scripts[1], 0, "no inline handlers: {scripts}");
    assert!(
        scripts[2]
            .as_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "{scripts}"
    );
}

/// The visible text of the page's `<main>`.
async fn main_text(client: &Client) -> String {
    client
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Whether each of the page's checkboxes is ticked, by channel.
async fn ticks(client: &Client) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for input in client
        .find_all(Locator::Css("input[type=checkbox]"))
        .await
        .unwrap()
    {
        let value = input.attr("value").await.unwrap().unwrap();
        out.push((value, input.is_selected().await.unwrap()));
    }
    out
}

async fn set_tick(client: &Client, channel: &str, ticked: bool) {
    let input = client
        .find(Locator::Css(&format!("input[value={channel}]")))
        .await
        .unwrap();
    if input.is_selected().await.unwrap() != ticked {
        // Click the label, as a thumb would: the box must be wired to it.
        client
            .find(Locator::Css(&format!("label[for=ch-{channel}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    assert_eq!(input.is_selected().await.unwrap(), ticked, "{channel}");
}

async fn mint(gw: &TestGateway, address: &str, scope: &str) -> String {
    let auth = format!("Bearer {API_TOKEN}");
    let body = json!({"address": address, "scope": scope, "campaign": "winter"}).to_string();
    let r = http(
        gw.addr,
        "POST",
        "/v1/tenants/acme/links",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["url"], format!("{PUBLIC_URL}/u/{token}"));
    token
}

fn page_config(redis: &RedisServer, page: &str) -> String {
    config_text(&redis.url()).replacen(
        "[tenants.acme.twilio]",
        &format!("[tenants.acme.page]\nname = \"Acme Shoes\"\ncolor = \"#c2410c\"\n{page}\n\n[tenants.acme.twilio]"),
        1,
    )
}

/// A stand-in for the tenant's own "thank you" page, where the page redirects.
async fn thanks_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<!doctype html><title>Acme thanks you</title><h1>See you around</h1>";
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

async fn blocked(redis: &RedisServer, channel: Channel, address: &str) -> bool {
    Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", channel, address)
        .await
        .unwrap()
        .blocked
}

#[tokio::test]
async fn ticking_and_unticking_with_scripts_forbidden_then_following_the_redirect() {
    let redis = RedisServer::start();
    let thanks = thanks_server().await;
    let gw = TestGateway::start(&page_config(
        &redis,
        &format!("confirm_url = \"http://{thanks}/thanks\""),
    ))
    .await;
    let phone = "+14155550161";
    // The contact once replied STOP to a text: SMS starts out blocked, and calls with
    // it (a revocation by text covers calls).
    let r = gw
        .twilio(
            "/webhooks/twilio",
            TWILIO_TOKEN,
            &inbound_sms("SM00000000000000000000000000000161", phone, "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blocked(&redis, Channel::Sms, phone).await);
    let token = mint(&gw, phone, "all").await;

    let browser = Browser::start().await;
    let c = &browser.client;
    let before = redis.snapshot();
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    assert_eq!(c.title().await.unwrap(), "Messages from Acme Shoes");
    assert_scriptless(c).await;
    let text = main_text(c).await;
    assert!(text.contains("+1******0161"), "masked address: {text}");
    assert!(
        !text.contains(phone),
        "the full number is not shown: {text}"
    );
    assert_eq!(
        ticks(c).await,
        [
            ("sms".to_string(), false),
            ("voice".to_string(), false),
            ("whatsapp".to_string(), true)
        ],
        "the boxes show the current state"
    );
    assert_eq!(redis.snapshot(), before, "loading the page changes nothing");

    // Tick SMS back on, untick WhatsApp, save. The STOP stays (only the contact's START
    // or an operator with consent evidence lifts it), so instead of the redirect the
    // page says how to opt back in; WhatsApp gets the link's DND.
    set_tick(c, "sms", true).await;
    set_tick(c, "whatsapp", false).await;
    assert_eq!(redis.snapshot(), before, "ticking alone changes nothing");
    c.find(Locator::Css("button[value=save]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//h1[text()='Thank you']"))
        .await
        .unwrap();
    let text = main_text(c).await;
    assert!(
        text.contains("Text messages (SMS): you turned these off another way")
            && text.contains("reply START"),
        "{text}"
    );
    assert!(
        text.contains("You will no longer receive: WhatsApp."),
        "{text}"
    );
    assert!(blocked(&redis, Channel::Sms, phone).await, "the STOP stays");
    assert!(
        blocked(&redis, Channel::Voice, phone).await,
        "left unticked"
    );
    assert!(blocked(&redis, Channel::Whatsapp, phone).await, "unticked");
    let v = Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Whatsapp, phone)
        .await
        .unwrap();
    assert_eq!(v.record.unwrap().reason, "link:winter");

    // Back on the page, the boxes show what was saved; WhatsApp (the link's own
    // record) ticked again is re-enabled, and the redirect follows.
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    assert_eq!(
        ticks(c).await,
        [
            ("sms".to_string(), false),
            ("voice".to_string(), false),
            ("whatsapp".to_string(), false)
        ]
    );
    set_tick(c, "whatsapp", true).await;
    c.find(Locator::Css("button[value=save]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, &format!("http://{thanks}/thanks")).await;
    assert_eq!(c.title().await.unwrap(), "Acme thanks you");
    assert!(
        !blocked(&redis, Channel::Whatsapp, phone).await,
        "re-enabled"
    );
    assert!(blocked(&redis, Channel::Sms, phone).await);

    // Then the big button: the link's scope, every channel.
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    c.find(Locator::Css("button[value=unsubscribe]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, &format!("http://{thanks}/thanks")).await;
    assert!(
        blocked(&redis, Channel::Sms, phone).await,
        "the link's scope"
    );
    assert!(blocked(&redis, Channel::Voice, phone).await);
    assert!(blocked(&redis, Channel::Whatsapp, phone).await);
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn unsubscribe_button_shows_the_built_in_confirmation_in_the_tenants_language() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "language = \"fr\"")).await;
    let email = "zoe@example.com";
    let token = mint(&gw, email, "all").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    assert_eq!(c.title().await.unwrap(), "Messages de Acme Shoes");
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("fr"));
    let button = c
        .find(Locator::Css("button[value=unsubscribe]"))
        .await
        .unwrap();
    assert_eq!(button.text().await.unwrap(), "Me désabonner");
    button.click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//h1[text()='Merci']"))
        .await
        .unwrap();
    let text = main_text(c).await;
    assert!(text.contains("Vous ne recevrez plus : E-mail."), "{text}");
    assert!(blocked(&redis, Channel::Email, email).await);
    // Reloading the confirmation (a POST) is not offered; going back shows the state.
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    assert_eq!(ticks(c).await, [("email".to_string(), false)]);
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn one_click_post_from_the_browser_applies_at_once_without_a_redirect() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let email = "yuri@example.com";
    let token = mint(&gw, email, "email").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    // Load any page of the gateway's origin, then POST as a mail provider does.
    c.goto(&format!("http://{}/healthz", gw.addr))
        .await
        .unwrap();
    let post = r#"
        const [path, body, done] = arguments;
        fetch(path, {method: "POST", redirect: "manual",
                     headers: {"Content-Type": "application/x-www-form-urlencoded"}, body})
          .then(async r => done({status: r.status, type: r.type, body: await r.text()}))
          .catch(e => done({error: String(e)}));
    "#;
    let answer = c
        .execute_async(
            post,
            vec![
                json!(format!("/u/{token}")),
                json!("List-Unsubscribe=One-Click"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["type"], "basic", "no redirect: {answer}");
    assert!(blocked(&redis, Channel::Email, email).await);
    let v = Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Email, email)
        .await
        .unwrap();
    let record = v.record.unwrap();
    assert_eq!(
        (record.reason.as_str(), record.source.as_str()),
        ("link:winter", "link")
    );

    // A forged token gets the same 200 and changes nothing.
    let before = redis.snapshot();
    let mut forged = token.into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let answer = c
        .execute_async(
            post,
            vec![
                json!(format!("/u/{forged}")),
                json!("List-Unsubscribe=One-Click"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(redis.snapshot(), before);
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn the_page_fits_a_phone_and_its_screenshot_is_kept() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&page_config(&redis, "")).await;
    let phone = "+447700900123";
    let token = mint(&gw, phone, "all").await;
    // One channel already off, so the picture shows both states.
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "PUT",
        "/v1/tenants/acme/dnd/voice/%2B447700900123",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"state": "permanent", "reason": "asked on a call", "actor": "agent"}"#,
    )
    .await;
    assert!(r.status < 300, "{} {}", r.status, r.body);
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("http://{}/u/{token}", gw.addr))
        .await
        .unwrap();
    let layout = c
        .execute(
            r#"
            const b = document.querySelector("button[value=unsubscribe]").getBoundingClientRect();
            const unlabelled = [...document.querySelectorAll("input[type=checkbox]")]
                .filter(i => i.labels.length === 0).length;
            return {
                viewport: window.innerWidth,
                scroll: document.documentElement.scrollWidth,
                button_bottom: b.bottom, button_height: b.height,
                unlabelled,
                font: parseFloat(getComputedStyle(document.body).fontSize),
            };
            "#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(layout["viewport"], PHONE_WIDTH, "{layout}");
    assert!(
        layout["scroll"].as_f64().unwrap() <= PHONE_WIDTH as f64,
        "no sideways scrolling: {layout}"
    );
    assert!(
        layout["button_bottom"].as_f64().unwrap() <= PHONE_HEIGHT as f64,
        "the unsubscribe button is visible without scrolling: {layout}"
    );
    assert!(
        layout["button_height"].as_f64().unwrap() >= 44.0,
        "a thumb-sized button: {layout}"
    );
    assert_eq!(layout["unlabelled"], 0, "every box has a label: {layout}");
    assert!(layout["font"].as_f64().unwrap() >= 16.0, "{layout}");

    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, PHONE_WIDTH * 2, "phone width at 2x");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unsubscribe-page.png");
    std::fs::write(&out, &png).unwrap();
    if std::env::var_os("DNDGATE_UPDATE_SCREENSHOT").is_some() {
        let kept =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/unsubscribe-page.png");
        std::fs::write(kept, &png).unwrap();
    }
    browser.close().await;
    gw.stop().await;
}
