//! The operator API over HTTP: a contact walked through set, lookup, refused clear,
//! clear with evidence and history; tenant isolation; bad input; the OpenAPI document.

mod common;

use common::*;
use serde_json::{Value, json};

const PHONE: &str = "/v1/tenants/acme/dnd/sms/%2B15550007001";

async fn call(
    gw: &TestGateway,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = http(
        gw.addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    let json = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.body));
    (r.status, json)
}

fn evidence() -> Value {
    json!({
        "agreed": "marketing texts from Acme",
        "captured_at": iso_ago(86_400_000),
        "method": "web form",
        "reference": "https://acme.example/forms/signup/4711"
    })
}

#[tokio::test]
async fn a_contact_walks_through_set_lookup_refused_clear_clear_with_evidence_and_history() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;

    let (status, body) = call(
        &gw,
        "PUT",
        PHONE,
        API_TOKEN,
        Some(json!({"state": "permanent", "reason": "asked by phone", "actor": "alice@crm"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"][0]["outcome"], "applied");

    let (status, body) = call(&gw, "GET", PHONE, API_TOKEN, None).await;
    assert_eq!((status, &body["blocked"]), (200, &json!(true)), "{body}");
    assert_eq!(body["record"]["reason"], "operator:asked by phone");
    assert_eq!(body["record"]["source"], "operator");

    let before = redis.snapshot();
    let (status, body) = call(
        &gw,
        "DELETE",
        PHONE,
        API_TOKEN,
        Some(json!({"actor": "bob@crm"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("consent evidence"));
    let (_, body) = call(&gw, "GET", PHONE, API_TOKEN, None).await;
    assert_eq!(body["blocked"], true, "a refused clear changes nothing");
    // The refusal is audited, and that is the only change.
    let after = redis.snapshot();
    let changed: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].contains(":audit stream") && changed[0].contains("refused"));

    let (status, body) = call(
        &gw,
        "DELETE",
        PHONE,
        API_TOKEN,
        Some(json!({"actor": "bob@crm", "evidence": evidence()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = call(&gw, "GET", PHONE, API_TOKEN, None).await;
    assert_eq!(body["blocked"], false);
    assert_eq!(body["record"]["state"], "cleared");

    let (status, body) = call(
        &gw,
        "GET",
        "/v1/tenants/acme/history/%2B15550007001",
        API_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "refused", "applied"]);
    assert_eq!(entries[0]["actor"], "alice@crm");
    assert_eq!(entries[1]["actor"], "bob@crm");
    assert_eq!(
        entries[2]["evidence"]["reference"],
        "https://acme.example/forms/signup/4711"
    );
    assert_eq!(entries[2]["reason"], "operator:consent");

    // Another tenant's token can do nothing here, and sees nothing of acme's.
    let before = redis.snapshot();
    for (method, path, body) in [
        ("GET", PHONE, None),
        ("PUT", PHONE, Some(json!({"state": "permanent"}))),
        ("DELETE", PHONE, Some(json!({"evidence": evidence()}))),
        ("GET", "/v1/tenants/acme/history/%2B15550007001", None),
        (
            "PUT",
            "/v1/tenants/acme/contacts/c1",
            Some(json!({"addresses": ["+15550007001"]})),
        ),
        (
            "POST",
            "/v1/tenants/acme/dnd/check",
            Some(json!({"channel": "sms", "addresses": []})),
        ),
    ] {
        let (status, json) = call(&gw, method, path, GLOBEX_API_TOKEN, body).await;
        assert_eq!(status, 401, "{method} {path}: {json}");
    }
    assert_eq!(redis.snapshot(), before);
    let (_, body) = call(
        &gw,
        "GET",
        "/v1/tenants/globex/history/%2B15550007001",
        GLOBEX_API_TOKEN,
        None,
    )
    .await;
    assert_eq!(body["entries"], json!([]));
    gw.stop().await;
}

#[tokio::test]
async fn all_scope_through_a_linked_contact() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let (status, body) = call(
        &gw,
        "PUT",
        "/v1/tenants/acme/contacts/contact-9",
        API_TOKEN,
        Some(json!({"addresses": ["+1 (555) 000-7002", "Bob@Example.com"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["addresses"],
        json!(["+15550007002", "bob@example.com"])
    );
    let (status, body) = call(
        &gw,
        "PUT",
        "/v1/tenants/acme/dnd/all/bob%40example.com",
        API_TOKEN,
        Some(json!({"state": "permanent"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"].as_array().unwrap().len(), 2);
    let (_, body) = call(
        &gw,
        "GET",
        "/v1/tenants/acme/dnd/whatsapp/%2B15550007002",
        API_TOKEN,
        None,
    )
    .await;
    assert_eq!(
        (&body["blocked"], &body["record"]["scope"]),
        (&json!(true), &json!("all")),
        "{body}"
    );
    let (_, body) = call(
        &gw,
        "GET",
        "/v1/tenants/acme/contacts/contact-9",
        API_TOKEN,
        None,
    )
    .await;
    assert_eq!(
        body["addresses"],
        json!(["+15550007002", "bob@example.com"])
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_operator_input_is_refused_in_one_line_and_changes_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let mut partial = evidence();
    partial["method"] = json!("");
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        (
            "PUT",
            "/v1/tenants/acme/dnd/fax/%2B15550007001",
            Some(json!({"state": "permanent"})),
            400,
        ),
        (
            "PUT",
            "/v1/tenants/acme/dnd/sms/5550007001",
            Some(json!({"state": "permanent"})),
            400,
        ),
        ("PUT", PHONE, Some(json!({"state": "forever"})), 400),
        (
            "PUT",
            PHONE,
            Some(json!({"state": "permanent", "colour": "red"})),
            400,
        ),
        (
            "PUT",
            PHONE,
            Some(json!({"state": "permanent", "reason": "x".repeat(41)})),
            400,
        ),
        ("DELETE", PHONE, Some(json!({"evidence": partial})), 400),
        ("GET", "/v1/tenants/acme/dnd/all/%2B15550007001", None, 400),
        ("GET", "/v1/tenants/acme/history/not-an-address", None, 400),
        (
            "PUT",
            "/v1/tenants/acme/contacts/bad%20id",
            Some(json!({"addresses": ["+15550007001"]})),
            400,
        ),
        (
            "PUT",
            "/v1/tenants/acme/contacts/c1",
            Some(json!({"addresses": ["+15550007001", "nope"]})),
            400,
        ),
        (
            "POST",
            "/v1/tenants/acme/dnd/check",
            Some(json!({"channel": "pager", "addresses": []})),
            400,
        ),
        ("PATCH", PHONE, None, 405),
        (
            "GET",
            "/v1/tenants/initech/dnd/sms/%2B15550007001",
            None,
            401, // an unknown tenant is answered as a wrong token (issue 12 item 21)
        ),
        ("GET", "/v1/tenants/acme/nothing", None, 404),
    ];
    for (method, path, body, want) in cases {
        let before = redis.snapshot();
        let (status, json) = call(&gw, method, path, API_TOKEN, body).await;
        assert_eq!(status, want, "{method} {path}: {json}");
        let message = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: {json}"));
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        );
        assert_eq!(redis.snapshot(), before, "{method} {path} changed redis");
    }
    gw.stop().await;
}

#[tokio::test]
async fn openapi_is_served_as_kept_in_the_repo_and_every_operation_is_routed() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let r = http(gw.addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(r.status, 200);
    let kept = std::fs::read_to_string("docs/openapi.json").unwrap();
    assert_eq!(r.body, kept);
    let spec: Value = serde_json::from_str(&kept).unwrap();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{tenant}", "acme")
            .replace("{scope}", "sms")
            .replace("{address}", "%2B15550007009")
            .replace("{contact}", "c7")
            .replace("{endpoint}", "nosuch");
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let body = match (method.as_str(), path.as_str()) {
                ("POST", p) if p.ends_with("/endpoints") => {
                    Some(json!({"id": "t1", "url": "https://crm.example.com/dnd"}))
                }
                ("POST", p) if p.contains("/endpoints/") => Some(json!({})),
                ("POST", p) if p.ends_with("/links") => {
                    Some(json!({"address": "+15550007009", "scope": "sms"}))
                }
                ("POST", _) => Some(json!({"channel": "sms", "addresses": ["+15550007009"]})),
                ("PUT", p) if p.contains("contacts") => {
                    Some(json!({"addresses": ["+15550007009"]}))
                }
                ("PUT", _) => Some(json!({"state": "temporary"})),
                _ => None,
            };
            let (status, json) = call(&gw, &method, &concrete, API_TOKEN, body).await;
            let documented = &ops[method.to_lowercase().as_str()]["responses"];
            assert!(
                documented.get(status.to_string()).is_some(),
                "{method} {concrete}: {status} is not documented: {json}"
            );
            // Endpoint routes are called on an endpoint that does not exist (404),
            // but for the list and the creation; every other route answers 200.
            let want = match (method.as_str(), path.ends_with("/endpoints")) {
                ("POST", true) => 201,
                (_, false) if path.contains("/endpoints/") => 404,
                _ => 200,
            };
            assert_eq!(status, want, "{method} {concrete}: {json}");
        }
    }
    gw.stop().await;
}

/// Issue 12 item 2: consent evidence must parse. A `captured_at` that is not an
/// RFC 3339 time, or lies in the future, a method outside the documented list, an
/// empty `agreed` or `reference`: 400 naming the field, and the permanent record stays.
#[tokio::test]
async fn item_02_consent_evidence_must_parse_or_nothing_is_cleared() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let (status, body) = call(
        &gw,
        "PUT",
        PHONE,
        API_TOKEN,
        Some(json!({"state": "permanent", "reason": "asked by phone"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = redis.snapshot();
    let tomorrow = dndgate::time::format_rfc3339_ms(now_ms() + 86_400_000);
    for (field, value, named) in [
        ("captured_at", json!("never"), "evidence.captured_at"),
        (
            "captured_at",
            json!("2026-13-01T00:00:00Z"),
            "evidence.captured_at",
        ),
        ("captured_at", json!(tomorrow), "evidence.captured_at"),
        (
            "captured_at",
            json!("1969-07-20T20:17:00Z"),
            "evidence.captured_at",
        ),
        ("method", json!("telepathy"), "evidence.method"),
        (
            "method",
            json!("unsubscribe preference page"),
            "evidence.method",
        ),
        ("reference", json!("   "), "evidence.reference"),
        ("agreed", json!(""), "evidence.agreed"),
    ] {
        let mut evidence = evidence();
        evidence[field] = value.clone();
        let (status, body) = call(
            &gw,
            "DELETE",
            PHONE,
            API_TOKEN,
            Some(json!({"actor": "mallory", "evidence": evidence})),
        )
        .await;
        assert_eq!(status, 400, "{field} = {value}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(named), "{field} = {value}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
        assert_eq!(redis.snapshot(), before, "{field} = {value} changed state");
    }
    // The documented methods are accepted, in any case.
    let mut good = evidence();
    good["method"] = json!("Paper Form");
    let (status, body) = call(
        &gw,
        "DELETE",
        PHONE,
        API_TOKEN,
        Some(json!({"evidence": good})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"][0]["outcome"], "applied");
    gw.stop().await;
}
