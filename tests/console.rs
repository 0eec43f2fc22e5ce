//! The operator console (`/console/` on the admin listener) end to end: first over raw
//! HTTP (cookies, CSRF tokens, tenant isolation, where it is served), then in a real
//! headless Chromium (sign in, search, tick, untick, the consent form, the timeline,
//! a second tenant, phone and desktop widths). Redis is real; every change is checked
//! in Redis, through the same lookup senders use.
//!
//! The browser tests need Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them); they fail, never skip, without them. With
//! `DNDGATE_UPDATE_SCREENSHOT=1` the desktop test keeps its screenshots in `docs/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::*;
use common::*;
use dndgate::event::Channel;
use dndgate::lookup::Lookup;
use fantoccini::{Client, Locator};
use std::net::SocketAddr;
use std::time::Duration;

const ALICE: &str = "+14155550101";
const BOB_EMAIL: &str = "bob@example.com";

/// The value of `name="NAME" value="..."` in a page.
fn input_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

/// The value a `Set-Cookie` header gives cookie `name`, and the whole header.
fn set_cookie<'a>(r: &'a HttpResponse, name: &str) -> Option<(&'a str, &'a str)> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap();
            (value, v)
        })
}

/// A console session over raw HTTP.
struct Session {
    addr: SocketAddr,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn sign_in(addr: SocketAddr, tenant: &str, token: &str) -> Session {
        let form_page = http(addr, "GET", "/console/login", &[], b"").await;
        assert_eq!(form_page.status, 200, "{}", form_page.body);
        let (pre, _) = set_cookie(&form_page, "dndgate_signin").expect("the sign-in cookie");
        let csrf = input_value(&form_page.body, "csrf").expect("the form's token");
        assert_eq!(
            pre, csrf,
            "a double submit: the form's token is its cookie's"
        );
        let body = form(&[("csrf", &csrf), ("tenant", tenant), ("token", token)]);
        let cookie = format!("dndgate_signin={pre}");
        let r = http(
            addr,
            "POST",
            "/console/login",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/console/overview"));
        let (id, _) = set_cookie(&r, "dndgate_console").expect("the session cookie");
        let cookie = format!("dndgate_console={id}");
        let overview = http(
            addr,
            "GET",
            "/console/overview",
            &[("Cookie", &cookie)],
            b"",
        )
        .await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        let csrf = input_value(&overview.body, "csrf").expect("the session's token");
        Session { addr, cookie, csrf }
    }

    async fn get(&self, path: &str) -> HttpResponse {
        http(self.addr, "GET", path, &[("Cookie", &self.cookie)], b"").await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        http(
            self.addr,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form(fields).as_bytes(),
        )
        .await
    }
}

/// Alice replied STOP to a text: SMS and calls are on permanent DND (Twilio, signed).
async fn alice_says_stop(gw: &TestGateway, sid: &str) {
    let r = gw
        .twilio(
            "/webhooks/twilio",
            TWILIO_TOKEN,
            &inbound_sms(sid, ALICE, "STOP"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn blocked(redis: &RedisServer, tenant: &str, channel: Channel, address: &str) -> bool {
    Lookup::connect(&redis.url())
        .unwrap()
        .check(tenant, channel, address)
        .await
        .unwrap()
        .blocked
}

/// Every record bucket and its fields: what a refused change must leave alone (the
/// audit stream does change: a refusal is audited, SPEC section 6).
fn records(redis: &RedisServer) -> Vec<String> {
    redis
        .snapshot()
        .into_iter()
        .filter(|line| line.contains(" hash "))
        .collect()
}

/// The audit entries of `tenant` that name `address`, oldest first within a shard,
/// each as its lines (id, then field and value in turn).
fn audit_of(redis: &RedisServer, tenant: &str, address: &str) -> Vec<String> {
    let is_id = |l: &str| {
        l.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
    };
    let mut out = Vec::new();
    for s in "0123456789abcdef".chars() {
        let key = format!("dnd:{{{tenant}:{s}}}:audit");
        let text = redis.cli(&["XRANGE", &key, "-", "+"]).unwrap_or_default();
        let mut entry: Vec<&str> = Vec::new();
        for line in text.lines().chain(["0-0"]) {
            if is_id(line) {
                if entry.contains(&address) {
                    out.push(entry.join("\n"));
                }
                entry.clear();
            }
            entry.push(line);
        }
    }
    out
}

#[tokio::test]
async fn sessions_csrf_and_tenants_over_plain_http() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    alice_says_stop(&gw, "SM00000000000000000000000000000601").await;
    let admin = gw.admin_addr;

    // Signed out: every page sends to the sign-in form; nothing is shown.
    for path in [
        "/console/",
        "/console/overview",
        "/console/contact?address=%2B14155550101",
    ] {
        let r = http(admin, "GET", path, &[], b"").await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        assert_eq!(r.header("location"), Some("/console/login"), "{path}");
    }
    // The console is on the admin listener only (the default), not beside the webhooks.
    let r = http(gw.addr, "GET", "/console/login", &[], b"").await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The cookies: HttpOnly, SameSite=Strict, Secure (the public URL is https), scoped
    // to /console, expiring.
    let page = http(admin, "GET", "/console/login", &[], b"").await;
    let (_, header) = set_cookie(&page, "dndgate_signin").unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/console",
        "Max-Age=",
    ] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.starts_with("default-src 'none'")),
        "{:?}",
        page.headers
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // A sign-in form posted without its cookie (from another site) signs nobody in.
    let csrf = input_value(&page.body, "csrf").unwrap();
    let r = http(
        admin,
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form(&[("csrf", &csrf), ("tenant", "acme"), ("token", API_TOKEN)]).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(set_cookie(&r, "dndgate_console").is_none());
    // A wrong token, or another tenant's, signs nobody in either.
    for (tenant, token) in [
        ("acme", "wrong"),
        ("acme", GLOBEX_API_TOKEN),
        ("nobody", API_TOKEN),
    ] {
        let page = http(admin, "GET", "/console/login", &[], b"").await;
        let csrf = input_value(&page.body, "csrf").unwrap();
        let r = http(
            admin,
            "POST",
            "/console/login",
            &[
                ("Cookie", &format!("dndgate_signin={csrf}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form(&[("csrf", &csrf), ("tenant", tenant), ("token", token)]).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401, "{tenant}/{token}: {}", r.body);
        assert!(r.body.contains("Wrong tenant or API token."), "{}", r.body);
        assert!(set_cookie(&r, "dndgate_console").is_none());
    }

    let acme = Session::sign_in(admin, "acme", API_TOKEN).await;
    let login = http(admin, "GET", "/console/login", &[], b"").await;
    let csrf = input_value(&login.body, "csrf").unwrap();
    let r = http(
        admin,
        "POST",
        "/console/login",
        &[
            ("Cookie", &format!("dndgate_signin={csrf}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form(&[("csrf", &csrf), ("tenant", "acme"), ("token", API_TOKEN)]).as_bytes(),
    )
    .await;
    let (_, header) = set_cookie(&r, "dndgate_console").unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }

    // A link that names nothing valid says so.
    let r = acme.get("/console/contact?address=not-a-number").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body.contains("names no valid address or contact id"),
        "{}",
        r.body
    );

    // The panel shows the STOP in words.
    let panel = acme.get("/console/contact?address=%2B14155550101").await;
    assert_eq!(panel.status, 200, "{}", panel.body);
    assert!(
        panel.body.contains("Replied STOP by text (Twilio)"),
        "{}",
        panel.body
    );

    // A form without its CSRF token, or with another session's, changes nothing.
    let before = redis.snapshot();
    let tick_email = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("subject_address", ALICE),
            ("shown", "sms|+14155550101"),
            ("shown", "whatsapp|+14155550101"),
            ("dnd", "whatsapp|+14155550101"),
        ]
    };
    let r = acme.post("/console/contact", &tick_email("")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = acme
        .post(
            "/console/contact",
            &tick_email("0000000000000000000000000000000000000000000000000000000000000000"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Nothing was changed"), "{}", r.body);
    assert_eq!(redis.snapshot(), before, "nothing changed in Redis");
    assert!(!blocked(&redis, "acme", Channel::Whatsapp, ALICE).await);

    // Another tenant's session sees its own (empty) records for the same number, and
    // its changes land in its own tenant only, whatever the form names.
    let globex = Session::sign_in(admin, "globex", GLOBEX_API_TOKEN).await;
    let panel = globex
        .get("/console/contact?address=%2B14155550101&tenant=acme")
        .await;
    assert_eq!(panel.status, 200, "{}", panel.body);
    assert!(
        !panel.body.contains("STOP"),
        "globex sees acme's STOP: {}",
        panel.body
    );
    assert!(
        !panel.body.contains(" checked"),
        "nothing ticked for globex"
    );
    let acme_records = records(&redis);
    let csrf = globex.csrf.clone();
    let r = globex
        .post(
            "/console/contact",
            &[
                ("csrf", &csrf),
                ("subject_address", ALICE),
                ("tenant", "acme"),
                // acme's SMS record unticked: for globex there is none, so nothing to do.
                ("shown", "sms|+14155550101"),
                ("shown", "whatsapp|+14155550101"),
                ("dnd", "whatsapp|+14155550101"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(blocked(&redis, "globex", Channel::Whatsapp, ALICE).await);
    assert!(!blocked(&redis, "acme", Channel::Whatsapp, ALICE).await);
    assert!(
        blocked(&redis, "acme", Channel::Sms, ALICE).await,
        "acme's STOP stays"
    );
    let changed: Vec<String> = records(&redis)
        .into_iter()
        .filter(|l| !acme_records.contains(l))
        .collect();
    assert!(
        !changed.is_empty() && changed.iter().all(|l| l.starts_with("dnd:{globex:")),
        "only globex's records changed: {changed:?}"
    );
    // acme's session token does not work in globex's session.
    let r = globex
        .post("/console/consent", &[("csrf", &acme.csrf)])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A temporary block (Twilio error 30003 on a text to Carol) reads as such, and
    // unticking it lifts it: no consent needed.
    let carol = "+14155550133";
    let r = gw
        .twilio(
            "/webhooks/twilio",
            TWILIO_TOKEN,
            &status_callback(
                "SM00000000000000000000000000000633",
                carol,
                "undelivered",
                Some("30003"),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(blocked(&redis, "acme", Channel::Sms, carol).await);
    let panel = acme.get("/console/contact?address=%2B14155550133").await;
    assert!(panel.body.contains("Temporary"), "{}", panel.body);
    assert!(panel.body.contains("until "), "{}", panel.body);
    assert!(
        panel.body.contains("Error 30003 at Twilio"),
        "{}",
        panel.body
    );
    let csrf = acme.csrf.clone();
    let r = acme
        .post(
            "/console/contact",
            &[
                ("csrf", &csrf),
                ("subject_address", carol),
                ("shown", "sms|+14155550133"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("/console/contact?address=%2B14155550133&n=saved")
    );
    assert!(
        !blocked(&redis, "acme", Channel::Sms, carol).await,
        "lifted"
    );
    let last = audit_of(&redis, "acme", carol).pop().unwrap();
    assert!(last.contains("clear") && last.contains("applied"), "{last}");

    // The export is the tenant's CSV, as `dndgate export` writes it.
    let csv = acme.get("/console/export.csv").await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.contains("dnd-acme.csv")),
        "{:?}",
        csv.headers
    );
    assert!(
        csv.body
            .starts_with("scope,address,state,reason,source,event_ms,expires_ms"),
        "{}",
        csv.body
    );
    assert!(
        csv.body
            .contains("sms,+14155550101,permanent,keyword:STOP,twilio,"),
        "{}",
        csv.body
    );
    assert!(
        !csv.body.contains("whatsapp"),
        "globex's record is not acme's: {}",
        csv.body
    );

    // Signing out ends the session in Redis: the old cookie no longer works.
    let csrf = acme.csrf.clone();
    let r = acme.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));
    let r = acme.get("/console/overview").await;
    assert_eq!(r.status, 303, "signed out: {}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn the_console_is_served_where_the_configuration_says() {
    let redis = RedisServer::start();
    let public = config_text(&redis.url()).replacen(
        "admin_listen = \"off\"",
        "admin_listen = \"off\"\nconsole = \"public\"",
        1,
    );
    let off = config_text(&redis.url()).replacen(
        "admin_listen = \"off\"",
        "admin_listen = \"off\"\nconsole = \"off\"",
        1,
    );
    // (configuration, status on the public listener, status on the admin listener)
    for (config, public_status, admin_status) in [(public, 200, 404), (off, 404, 404)] {
        let gw = TestGateway::start(&config).await;
        let on = |addr| async move { http(addr, "GET", "/console/login", &[], b"").await.status };
        assert_eq!(on(gw.addr).await, public_status, "{config}");
        assert_eq!(on(gw.admin_addr).await, admin_status, "{config}");
        gw.stop().await;
    }
    let problems = dndgate::config::Config::parse(
        &config_text(&redis.url()).replacen(
            "admin_listen = \"off\"",
            "admin_listen = \"off\"\nconsole = \"admin\"",
            1,
        ),
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("console = \"admin\" needs an admin listener")),
        "{problems:?}"
    );
}

/// The visible text of the page's `<main>`.
async fn main_text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(c: &Client, admin: SocketAddr, tenant: &str, token: &str, actor: &str) {
    c.goto(&format!("http://{admin}/console/")).await.unwrap();
    arrive(c, &format!("http://{admin}/console/login")).await;
    c.find(Locator::Id("tenant"))
        .await
        .unwrap()
        .send_keys(tenant)
        .await
        .unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("actor"))
        .await
        .unwrap()
        .send_keys(actor)
        .await
        .unwrap();
    let button = c
        .find(Locator::Css(".signin button[type=submit]"))
        .await
        .unwrap();
    submit(c, button).await;
    arrive(c, &format!("http://{admin}/console/overview")).await;
}

async fn search(c: &Client, text: &str) {
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys(text).await.unwrap();
    let button = c.find(Locator::Css(".search button")).await.unwrap();
    submit(c, button).await;
    c.find(Locator::Css("form.dnd")).await.unwrap();
}

/// Each row's box, by its `SCOPE|ADDRESS` key.
async fn ticks(c: &Client) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for input in c.find_all(Locator::Css("input[name=dnd]")).await.unwrap() {
        let value = input.attr("value").await.unwrap().unwrap();
        out.push((value, input.is_selected().await.unwrap()));
    }
    out
}

async fn set_tick(c: &Client, key: &str, ticked: bool) {
    let input = c
        .find(Locator::Css(&format!("input[name=dnd][value='{key}']")))
        .await
        .unwrap();
    if input.is_selected().await.unwrap() != ticked {
        // Click the label, as a person would: the box must be inside it.
        c.find(Locator::Css(&format!("li[data-row='{key}'] label")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    assert_eq!(input.is_selected().await.unwrap(), ticked, "{key}");
}

/// Click `button` and wait for the page it submits to: the old page's `<main>` goes
/// stale, and a new one is in place.
async fn submit(c: &Client, button: fantoccini::elements::Element) {
    let old = c.find(Locator::Css("main")).await.unwrap();
    button.click().await.unwrap();
    let mut waited = 0;
    while old.text().await.is_ok() {
        assert!(waited < 400, "the form was not submitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main"))
        .await
        .unwrap();
}

async fn save(c: &Client) {
    let button = c
        .find(Locator::Css("form.dnd button[type=submit]"))
        .await
        .unwrap();
    submit(c, button).await;
}

async fn row_text(c: &Client, key: &str) -> String {
    c.find(Locator::Css(&format!("li[data-row='{key}']")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// No sideways scrolling at this width, and every box has a label.
async fn assert_fits(c: &Client, width: u32) {
    let layout = c
        .execute(
            r#"return {
                viewport: window.innerWidth,
                scroll: document.documentElement.scrollWidth,
                unlabelled: [...document.querySelectorAll("input[type=checkbox]")].filter(i => i.labels.length === 0).length,
                scripts: document.scripts.length,
            };"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(layout["viewport"], width, "{layout}");
    assert!(
        layout["scroll"].as_f64().unwrap() <= width as f64,
        "no sideways scrolling: {layout}"
    );
    assert_eq!(layout["unlabelled"], 0, "{layout}");
    assert_eq!(layout["scripts"], 0, "the console runs no script: {layout}");
}

/// `YYYY-MM-DDTHH:MM` a day ago, in UTC: what a `datetime-local` input holds.
fn a_day_ago_local() -> String {
    let ms = now_ms() - 86_400_000;
    dndgate::time::format_rfc3339_ms(ms)[..16].to_string()
}

#[tokio::test]
async fn an_operator_lifts_a_stop_only_with_consent_and_ticks_email_in_a_browser() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    alice_says_stop(&gw, "SM00000000000000000000000000000701").await;
    // Alice's email is linked to her number, so the panel shows both.
    let auth = format!("Bearer {API_TOKEN}");
    let r = http(
        gw.addr,
        "PUT",
        "/v1/tenants/acme/contacts/c-1042",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"addresses": ["+14155550101", "alice@example.com"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let admin = gw.admin_addr;
    let browser = Browser::start_sized(1280, 900, false).await;
    let c = &browser.client;
    sign_in(c, admin, "acme", API_TOKEN, "Dana at support").await;
    assert_fits(c, 1280).await;

    // Search the number as a person would type it.
    search(c, "+1 (415) 555-0101").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/console/contact");
    assert_eq!(url.query(), Some("address=%2B14155550101"));
    let text = main_text(c).await;
    assert!(text.contains("Contact c-1042"), "{text}");
    assert!(
        text.contains("alice@example.com"),
        "the linked address: {text}"
    );
    assert_eq!(
        ticks(c).await,
        [
            ("sms|+14155550101".to_string(), true),
            ("voice|+14155550101".to_string(), true),
            ("whatsapp|+14155550101".to_string(), false),
            ("all|+14155550101".to_string(), false),
            ("email|alice@example.com".to_string(), false),
            ("all|alice@example.com".to_string(), false),
        ],
        "SMS and calls ticked after the STOP"
    );
    let sms = row_text(c, "sms|+14155550101").await;
    assert!(sms.contains("Permanent"), "{sms}");
    assert!(sms.contains("Replied STOP by text (Twilio) on "), "{sms}");
    assert_fits(c, 1280).await;

    // Untick SMS and save: a permanent block needs consent, so the form opens and
    // nothing changes.
    let before = redis.snapshot();
    set_tick(c, "sms|+14155550101", false).await;
    save(c).await;
    let consent = c
        .find(Locator::Css("form.consent[data-row='sms|+14155550101']"))
        .await
        .expect("the consent form opens");
    assert!(consent.text().await.unwrap().contains("consent needed"));
    assert_eq!(redis.snapshot(), before, "unticking alone changes nothing");
    assert!(blocked(&redis, "acme", Channel::Sms, ALICE).await);

    // Submitted without evidence: refused (the API's 409), in words; no record changes,
    // the refusal is audited.
    let records_before = records(&redis);
    let audited = audit_of(&redis, "acme", ALICE).len();
    submit(
        c,
        consent
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap(),
    )
    .await;
    let refused = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("form.consent .error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refused.contains(
            "Not lifted: +14155550101 is on permanent DND: clearing it needs consent evidence"
        ),
        "{refused}"
    );
    assert_eq!(records(&redis), records_before, "no record changed");
    assert!(blocked(&redis, "acme", Channel::Sms, ALICE).await);
    let entries = audit_of(&redis, "acme", ALICE);
    assert_eq!(entries.len(), audited + 1, "{entries:?}");
    assert!(entries.last().unwrap().contains("refused"), "{entries:?}");

    // Half an answer is refused too, naming what is missing.
    let consent = c
        .find(Locator::Css("form.consent[data-row='sms|+14155550101']"))
        .await
        .unwrap();
    consent
        .find(Locator::Css("input[name=agreed]"))
        .await
        .unwrap()
        .send_keys("Order updates by text from Acme")
        .await
        .unwrap();
    submit(
        c,
        consent
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap(),
    )
    .await;
    let refused = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("form.consent .error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("evidence.reference is empty"), "{refused}");
    assert!(blocked(&redis, "acme", Channel::Sms, ALICE).await);

    // With evidence: lifted, and audited with it and with who did it.
    let consent = c
        .find(Locator::Css("form.consent[data-row='sms|+14155550101']"))
        .await
        .unwrap();
    let agreed = consent
        .find(Locator::Css("input[name=agreed]"))
        .await
        .unwrap();
    assert_eq!(
        agreed.prop("value").await.unwrap().as_deref(),
        Some("Order updates by text from Acme"),
        "what was typed is kept"
    );
    // A date picker's keyboard format depends on the locale: set its value directly.
    let when = a_day_ago_local();
    let captured = consent
        .find(Locator::Css("input[name=captured_at]"))
        .await
        .unwrap();
    c.execute(
        "arguments[0].value = arguments[1];",
        vec![
            serde_json::to_value(&captured).unwrap(),
            serde_json::Value::String(when.clone()),
        ],
    )
    .await
    .unwrap();
    consent
        .find(Locator::Css("select[name=method]"))
        .await
        .unwrap()
        .select_by_value("recorded call")
        .await
        .unwrap();
    consent
        .find(Locator::Css("input[name=reference]"))
        .await
        .unwrap()
        .send_keys("call-2291")
        .await
        .unwrap();
    submit(
        c,
        consent
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap(),
    )
    .await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("p.notice"))
        .await
        .unwrap();
    assert!(
        main_text(c)
            .await
            .contains("Lifted with the consent recorded.")
    );
    assert!(
        !blocked(&redis, "acme", Channel::Sms, ALICE).await,
        "SMS lifted"
    );
    assert!(
        blocked(&redis, "acme", Channel::Voice, ALICE).await,
        "calls stay"
    );
    let last = audit_of(&redis, "acme", ALICE).pop().unwrap();
    for part in [
        "clear",
        "applied",
        "operator:consent",
        "call-2291",
        "recorded call",
        "console:Dana at support",
    ] {
        assert!(last.contains(part), "{part} in {last}");
    }
    assert!(
        last.contains(&format!("{when}:00Z")),
        "captured_at in UTC: {last}"
    );

    // The timeline, newest first: the lift with its evidence, the refusal, the STOP.
    let timeline = c
        .find(Locator::Css(".history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lifted = timeline.find("DND lifted").expect(&timeline);
    let refusal = timeline
        .find("Refused: needs consent evidence")
        .expect(&timeline);
    let stop = timeline.find("DND set (permanent)").expect(&timeline);
    assert!(
        lifted < refusal && refusal < stop,
        "newest first: {timeline}"
    );
    for part in [
        "Dana at support (console)",
        "an operator asked to lift it",
        "call-2291",
        "Order updates by text from Acme",
        "SM00000000000000000000000000000701",
        "Replied STOP by text (Twilio)".to_lowercase().as_str(),
    ] {
        assert!(
            timeline.to_lowercase().contains(&part.to_lowercase()),
            "{part} in {timeline}"
        );
    }
    if std::env::var("DNDGATE_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let panel = c.find(Locator::Css("section.panel")).await.unwrap();
        std::fs::write("docs/console-panel.png", panel.screenshot().await.unwrap()).unwrap();
        let history = c.find(Locator::Css("section.history")).await.unwrap();
        std::fs::write(
            "docs/console-timeline.png",
            history.screenshot().await.unwrap(),
        )
        .unwrap();
    }

    // Another contact: tick email.
    c.goto(&format!("http://{admin}/console/overview"))
        .await
        .unwrap();
    search(c, "Bob@Example.com").await;
    assert_eq!(
        ticks(c).await,
        [
            ("email|bob@example.com".to_string(), false),
            ("all|bob@example.com".to_string(), false),
        ]
    );
    set_tick(c, "email|bob@example.com", true).await;
    save(c).await;
    assert!(main_text(c).await.contains("Saved."));
    assert!(blocked(&redis, "acme", Channel::Email, BOB_EMAIL).await);
    let v = Lookup::connect(&redis.url())
        .unwrap()
        .check("acme", Channel::Email, BOB_EMAIL)
        .await
        .unwrap();
    let record = v.record.unwrap();
    assert_eq!(
        (record.reason.as_str(), record.source.as_str()),
        ("operator", "operator")
    );
    assert!(
        row_text(c, "email|bob@example.com")
            .await
            .contains("Set by an operator")
    );

    // The overview counts what is on DND now, by channel.
    c.goto(&format!("http://{admin}/console/overview"))
        .await
        .unwrap();
    let count = |scope: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Css(&format!("tr[data-scope='{scope}']")))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(count("Phone calls").await, "Phone calls 1 0 0 0");
    assert_eq!(count("Email").await, "Email 1 0 0 0");
    assert_eq!(
        count("Text messages (SMS)").await,
        "Text messages (SMS) 0 0 0 1"
    );
    assert!(
        main_text(c).await.contains("bob@example.com"),
        "the last changes"
    );

    // Sign out; a second tenant signs in and sees nothing of acme's, by search or by
    // editing the URL.
    let button = c.find(Locator::Css(".signout button")).await.unwrap();
    submit(c, button).await;
    arrive(c, &format!("http://{admin}/console/login")).await;
    sign_in(c, admin, "globex", GLOBEX_API_TOKEN, "Gus").await;
    search(c, "+14155550101").await;
    assert!(
        ticks(c).await.iter().all(|(_, t)| !t),
        "{:?}",
        ticks(c).await
    );
    let text = main_text(c).await;
    assert!(!text.contains("STOP") && !text.contains("c-1042"), "{text}");
    c.goto(&format!(
        "http://{admin}/console/contact?id=c-1042&tenant=acme"
    ))
    .await
    .unwrap();
    let text = main_text(c).await;
    assert!(text.contains("No such contact"), "{text}");
    c.goto(&format!(
        "http://{admin}/console/contact?address=%2B14155550101&tenant=acme"
    ))
    .await
    .unwrap();
    assert!(ticks(c).await.iter().all(|(_, t)| !t));
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn the_panel_fits_a_phone() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    alice_says_stop(&gw, "SM00000000000000000000000000000801").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    sign_in(c, gw.admin_addr, "acme", API_TOKEN, "").await;
    assert_fits(c, PHONE_WIDTH).await;
    search(c, "+14155550101").await;
    assert_fits(c, PHONE_WIDTH).await;
    let sms = row_text(c, "sms|+14155550101").await;
    assert!(
        sms.contains("Permanent") && sms.contains("Replied STOP"),
        "{sms}"
    );
    // Untick on a phone: the consent form opens and fits too.
    set_tick(c, "sms|+14155550101", false).await;
    save(c).await;
    c.find(Locator::Css("form.consent")).await.unwrap();
    assert_fits(c, PHONE_WIDTH).await;
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn the_export_streams_every_page_and_matches_dndgate_export() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    // 6,000 numbers: their buckets span several SCAN pages, so the download comes in
    // several pieces.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dndgate.toml");
    std::fs::write(&config, config_text(&redis.url())).unwrap();
    let list = dir.path().join("list.txt");
    let numbers: String = (0..6000).map(|i| format!("+1555{i:07}\n")).collect();
    std::fs::write(&list, numbers).unwrap();
    let config = config.to_str().unwrap();
    let (code, _, err) = dndgate(&[
        "import",
        "--config",
        config,
        "--tenant",
        "acme",
        "--format",
        "list",
        "--scope",
        "sms",
        list.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, cli, err) = dndgate(&["export", "--config", config, "--tenant", "acme"]);
    assert_eq!(code, 0, "{err}");

    let acme = Session::sign_in(gw.admin_addr, "acme", API_TOKEN).await;
    let r = acme.get("/console/export.csv").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "sent as it is read"
    );
    assert!(!r.body.ends_with("<incomplete>"), "a whole transfer");
    let rows = |text: &str| -> (String, std::collections::BTreeSet<String>) {
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        (header, lines.map(str::to_string).collect())
    };
    let (console_header, console_rows) = rows(&r.body);
    let (cli_header, cli_rows) = rows(&cli);
    assert_eq!(console_header, cli_header);
    assert_eq!(console_rows.len(), 6000);
    assert_eq!(
        console_rows, cli_rows,
        "the console's export is `dndgate export`'s"
    );
    gw.stop().await;
}
