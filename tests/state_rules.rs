//! Every rule of SPEC section 6, against a real redis-server, each with the audit
//! entries it leaves. Time is a parameter: expiry and escalation windows are crossed by
//! passing later times, not by sleeping.

mod common;

use std::path::Path;

use common::*;
use dndgate::address::Address;
use dndgate::classify::Permanence;
use dndgate::config::{Config, Tenant};
use dndgate::event::{Channel, Scope, Source};
use dndgate::state::{self, Evidence, OperatorChange, OperatorError, Request};
use dndgate::store::{Outcome, State, Store, StoreAction, StoreOptions};

const T0: i64 = 1_764_000_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

struct World {
    redis: RedisServer,
    store: Store,
    tenant: Tenant,
}

fn world(extra: &str) -> World {
    let redis = RedisServer::start();
    // Extra settings go into the [tenants.acme] table.
    let text = config_text(&redis.url()).replacen(
        "[tenants.acme]\n",
        &format!("[tenants.acme]\n{extra}\n"),
        1,
    );
    let config = Config::parse(&text, Path::new(".")).unwrap_or_else(|p| panic!("{p:?}"));
    let store = Store::open(
        &redis.url(),
        StoreOptions {
            timeout: config.redis_timeout,
            dedup_ttl: config.dedup_ttl,
        },
    )
    .unwrap();
    let tenant = config.tenants["acme"].clone();
    World {
        redis,
        store,
        tenant,
    }
}

fn sms(n: &str) -> Address {
    Address::parse(Channel::Sms, n).unwrap()
}

impl World {
    async fn event(
        &self,
        address: &Address,
        scopes: &[Scope],
        action: StoreAction,
        reason: &str,
        id: &str,
        at: i64,
    ) -> state::Outcomes {
        state::apply(
            &self.store,
            &self.tenant,
            &Request {
                address,
                scopes: scopes.to_vec(),
                action,
                reason,
                provider: dndgate::providers::Provider::Twilio.source(),
                event_id: id,
                event_ms: at,
                received_ms: at,
                now_ms: at,
                actor: None,
                evidence: None,
            },
        )
        .await
        .unwrap()
    }

    async fn blocked(&self, address: &Address, channel: Channel, at: i64) -> Option<State> {
        let v = self
            .store
            .lookup(&self.tenant.id, channel, address, at)
            .await
            .unwrap();
        v.blocked.then(|| v.record.unwrap().state)
    }

    /// (outcome, reason) of every audit entry of the address, oldest first.
    async fn audit(&self, address: &Address) -> Vec<(String, String)> {
        self.store
            .history(&self.tenant.id, address, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                let get = |k: &str| e.iter().find(|(n, _)| n == k).unwrap().1.clone();
                (get("outcome"), get("reason"))
            })
            .collect()
    }
}

fn op(address: &Address, scope: Scope, at: i64) -> OperatorChange<'_> {
    OperatorChange {
        scope,
        address,
        actor: Some("alice@crm"),
        now_ms: at,
    }
}

fn evidence() -> Evidence {
    Evidence {
        agreed: "marketing texts from Acme".into(),
        // A day before the tests' explicit times: evidence is checked as of the change.
        captured_at: dndgate::time::format_rfc3339_ms(T0 - 86_400_000),
        method: "web form".into(),
        reference: "form-submission-4711".into(),
    }
}

const SMS: Scope = Scope::Channel(Channel::Sms);

#[tokio::test]
async fn rule_1_permanent_lifted_only_by_opt_in_on_that_channel_or_evidence() {
    let w = world("");
    let a = sms("+15550001001");
    w.event(
        &a,
        &[SMS],
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SM1",
        T0,
    )
    .await;
    assert_eq!(
        w.blocked(&a, Channel::Sms, T0 + 1).await,
        Some(State::Permanent)
    );

    // An ordinary message (proof of reachability) does not lift it.
    let r = w
        .event(
            &a,
            &[SMS],
            StoreAction::Reachable,
            "inbound",
            "SM2",
            T0 + 10,
        )
        .await;
    assert_eq!(r.changes[0].outcome, Outcome::Noop);
    // An opt-in on another channel does not lift it.
    let wa = Scope::Channel(Channel::Whatsapp);
    w.event(
        &a,
        &[wa],
        StoreAction::Unblock,
        "keyword:START",
        "SM3",
        T0 + 20,
    )
    .await;
    assert_eq!(
        w.blocked(&a, Channel::Sms, T0 + 30).await,
        Some(State::Permanent)
    );
    // An operator without evidence: refused (409 in the API), audited, nothing changes.
    let err = state::operator_clear(&w.store, &w.tenant, &op(&a, SMS, T0 + 40), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OperatorError::NeedsEvidence(_)), "{err}");
    assert_eq!(
        w.blocked(&a, Channel::Sms, T0 + 50).await,
        Some(State::Permanent)
    );
    // Evidence with a field missing is a bad request, not a clear.
    let mut partial = evidence();
    partial.reference = " ".into();
    let err = state::operator_clear(&w.store, &w.tenant, &op(&a, SMS, T0 + 60), Some(&partial))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OperatorError::Invalid(ref m) if m.contains("evidence.reference")),
        "{err}"
    );
    // With evidence: cleared.
    state::operator_clear(
        &w.store,
        &w.tenant,
        &op(&a, SMS, T0 + 70),
        Some(&evidence()),
    )
    .await
    .unwrap();
    assert_eq!(w.blocked(&a, Channel::Sms, T0 + 80).await, None);

    // A second number: the contact's own START on that channel lifts it.
    let b = sms("+15550001002");
    w.event(
        &b,
        &[SMS],
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SM4",
        T0,
    )
    .await;
    w.event(
        &b,
        &[SMS],
        StoreAction::Unblock,
        "keyword:START",
        "SM5",
        T0 + 10,
    )
    .await;
    assert_eq!(w.blocked(&b, Channel::Sms, T0 + 20).await, None);

    let audit = w.audit(&a).await;
    let outcomes: Vec<&str> = audit.iter().map(|(o, _)| o.as_str()).collect();
    // STOP, WhatsApp START (its own record), refused clear, clear with evidence.
    assert_eq!(outcomes, ["applied", "applied", "refused", "applied"]);
    assert_eq!(audit[3].1, "operator:consent");
    let evidence_field = w.store.history(&w.tenant.id, &a, 100).await.unwrap()[3]
        .iter()
        .find(|(k, _)| k == "evidence")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(evidence_field.contains("form-submission-4711"));
}

#[tokio::test]
async fn rule_2_temporary_lifted_by_operator_inbound_or_expiry_and_escalates() {
    let w = world("temporary_ttl = \"72h\"\nescalate_after = 3\nescalate_window = \"30d\"");
    let a = sms("+15550002001");
    // Expiry: blocks for 72 hours, then by itself no more.
    w.event(
        &a,
        &[SMS],
        StoreAction::BlockTemporary,
        "twilio:30003",
        "SMa:undelivered",
        T0,
    )
    .await;
    assert_eq!(
        w.blocked(&a, Channel::Sms, T0 + 71 * HOUR).await,
        Some(State::Temporary)
    );
    assert_eq!(w.blocked(&a, Channel::Sms, T0 + 72 * HOUR).await, None);

    // Inbound message lifts it.
    let b = sms("+15550002002");
    w.event(
        &b,
        &[SMS],
        StoreAction::BlockTemporary,
        "twilio:30005",
        "SMb:failed",
        T0,
    )
    .await;
    w.event(
        &b,
        &[SMS],
        StoreAction::Reachable,
        "inbound",
        "SMb2",
        T0 + HOUR,
    )
    .await;
    assert_eq!(w.blocked(&b, Channel::Sms, T0 + 2 * HOUR).await, None);
    assert_eq!(
        w.audit(&b).await,
        [
            ("applied".into(), "twilio:30005".into()),
            ("applied".into(), "inbound".into())
        ]
    );

    // An operator lifts it without evidence.
    let c = sms("+15550002003");
    w.event(
        &c,
        &[SMS],
        StoreAction::BlockTemporary,
        "twilio:30006",
        "SMc:undelivered",
        T0,
    )
    .await;
    state::operator_clear(&w.store, &w.tenant, &op(&c, SMS, T0 + HOUR), None)
        .await
        .unwrap();
    assert_eq!(w.blocked(&c, Channel::Sms, T0 + 2 * HOUR).await, None);

    // Escalation: three failures within 30 days make it permanent...
    let d = sms("+15550002004");
    for (i, at) in [T0, T0 + 10 * DAY, T0 + 20 * DAY].into_iter().enumerate() {
        let id = format!("SMd{i}:undelivered");
        let r = w
            .event(
                &d,
                &[SMS],
                StoreAction::BlockTemporary,
                "twilio:30003",
                &id,
                at,
            )
            .await;
        let want = if i < 2 {
            Outcome::Applied
        } else {
            Outcome::Escalated
        };
        assert_eq!(r.changes[0].outcome, want, "failure {i}");
    }
    assert_eq!(
        w.blocked(&d, Channel::Sms, T0 + 400 * DAY).await,
        Some(State::Permanent)
    );
    // Each earlier block had run out (72 h) before the next failure came: its
    // expiry is audited first, in order.
    let audit = w.audit(&d).await;
    let outcomes: Vec<&str> = audit.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["applied", "expired", "applied", "expired", "escalated"]
    );
    assert_eq!(
        audit[4],
        ("escalated".into(), "escalated:twilio:30003".into())
    );
    // ...and an ordinary inbound message no longer lifts it.
    let r = w
        .event(
            &d,
            &[SMS],
            StoreAction::Reachable,
            "inbound",
            "SMd9",
            T0 + 21 * DAY,
        )
        .await;
    assert_eq!(r.changes[0].outcome, Outcome::Noop);

    // ...but three failures spread over more than 30 days do not.
    let e = sms("+15550002005");
    for (i, at) in [T0, T0 + 20 * DAY, T0 + 40 * DAY].into_iter().enumerate() {
        let id = format!("SMe{i}:undelivered");
        let r = w
            .event(
                &e,
                &[SMS],
                StoreAction::BlockTemporary,
                "twilio:30003",
                &id,
                at,
            )
            .await;
        assert_eq!(r.changes[0].outcome, Outcome::Applied, "failure {i}");
    }
    // ...and a reachable contact starts counting again.
    let f = sms("+15550002006");
    w.event(
        &f,
        &[SMS],
        StoreAction::BlockTemporary,
        "twilio:30003",
        "SMf0:u",
        T0,
    )
    .await;
    w.event(
        &f,
        &[SMS],
        StoreAction::BlockTemporary,
        "twilio:30003",
        "SMf1:u",
        T0 + DAY,
    )
    .await;
    w.event(
        &f,
        &[SMS],
        StoreAction::Reachable,
        "inbound",
        "SMf2",
        T0 + 2 * DAY,
    )
    .await;
    let r = w
        .event(
            &f,
            &[SMS],
            StoreAction::BlockTemporary,
            "twilio:30003",
            "SMf3:u",
            T0 + 3 * DAY,
        )
        .await;
    assert_eq!(r.changes[0].outcome, Outcome::Applied);
    assert_eq!(
        w.blocked(&f, Channel::Sms, T0 + 3 * DAY + 1).await,
        Some(State::Temporary)
    );
}

#[tokio::test]
async fn rule_3_event_time_orders_changes_and_duplicates_apply_once() {
    let w = world("");
    let a = sms("+15550003001");
    w.event(
        &a,
        &[SMS],
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SM1",
        T0,
    )
    .await;
    let r = w
        .event(
            &a,
            &[SMS],
            StoreAction::Unblock,
            "keyword:START",
            "SM0",
            T0 - 1000,
        )
        .await;
    assert_eq!(r.changes[0].outcome, Outcome::Superseded);
    assert_eq!(
        w.blocked(&a, Channel::Sms, T0 + 1).await,
        Some(State::Permanent)
    );
    let r = w
        .event(
            &a,
            &[SMS],
            StoreAction::BlockPermanent,
            "keyword:STOP",
            "SM1",
            T0,
        )
        .await;
    assert!(r.duplicate);
    assert_eq!(
        w.audit(&a).await,
        [
            ("applied".into(), "keyword:STOP".into()),
            ("superseded".into(), "keyword:START".into())
        ]
    );
}

#[tokio::test]
async fn rule_5_all_scope_reaches_every_linked_address_and_lookups_stay_one_key() {
    let w = world("");
    let phone = sms("+15550005001");
    let email = Address::parse(Channel::Email, "Alice@Example.com").unwrap();
    let page = Address::parse(Channel::Messenger, "1234:5678").unwrap();
    w.store
        .link_contact(
            &w.tenant.id,
            "contact-42",
            &[phone.clone(), email.clone(), page.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        w.store
            .contact_of(&w.tenant.id, &email)
            .await
            .unwrap()
            .as_deref(),
        Some("contact-42")
    );
    // An unsubscribe on the email address blocks every channel of the contact.
    let r = w
        .event(
            &email,
            &[Scope::All],
            StoreAction::BlockPermanent,
            "unsubscribe",
            "EV1",
            T0,
        )
        .await;
    assert_eq!(r.changed(), 3);
    assert_eq!(
        w.blocked(&phone, Channel::Sms, T0 + 1).await,
        Some(State::Permanent)
    );
    assert_eq!(
        w.blocked(&phone, Channel::Voice, T0 + 1).await,
        Some(State::Permanent)
    );
    assert_eq!(
        w.blocked(&page, Channel::Messenger, T0 + 1).await,
        Some(State::Permanent)
    );
    assert_eq!(
        w.blocked(&email, Channel::Email, T0 + 1).await,
        Some(State::Permanent)
    );
    // Each linked address's audit names the contact.
    let entry = &w.store.history(&w.tenant.id, &phone, 10).await.unwrap()[0];
    assert!(entry.contains(&("contact".to_string(), "contact-42".to_string())));
    // The record sits in the phone's own bucket: one HMGET on one key answers.
    let keys = dndgate::store::keys("acme", &phone);
    let got = w
        .redis
        .cli(&[
            "HMGET",
            &keys.bucket,
            "sms:+15550005001",
            "all:+15550005001",
        ])
        .unwrap();
    assert!(got.lines().nth(1).unwrap().starts_with("P|"), "{got}");

    // Clearing all without evidence is refused as a whole...
    let err = state::operator_clear(&w.store, &w.tenant, &op(&phone, Scope::All, T0 + 10), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OperatorError::NeedsEvidence(_)));
    for a in [&phone, &email, &page] {
        assert!(
            w.store
                .record(&w.tenant.id, Scope::All, a)
                .await
                .unwrap()
                .unwrap()
                .blocks_at(T0 + 20)
        );
    }
    // ...and with evidence lifts every address.
    state::operator_clear(
        &w.store,
        &w.tenant,
        &op(&phone, Scope::All, T0 + 30),
        Some(&evidence()),
    )
    .await
    .unwrap();
    assert_eq!(w.blocked(&email, Channel::Email, T0 + 40).await, None);
    assert_eq!(w.blocked(&page, Channel::Messenger, T0 + 40).await, None);

    // Without a link, an all-scope change covers only the address it names.
    let lone = sms("+15550005002");
    state::operator_set(
        &w.store,
        &w.tenant,
        &op(&lone, Scope::All, T0),
        Permanence::Temporary,
        Some("bounced"),
    )
    .await
    .unwrap();
    assert_eq!(
        w.blocked(&lone, Channel::Whatsapp, T0 + 1).await,
        Some(State::Temporary)
    );
    assert_eq!(w.blocked(&phone, Channel::Sms, T0 + 100).await, None);

    // Relinking moves an address between contacts.
    w.store
        .link_contact(&w.tenant.id, "contact-43", std::slice::from_ref(&email))
        .await
        .unwrap();
    assert_eq!(
        w.store
            .contact_addresses(&w.tenant.id, "contact-42")
            .await
            .unwrap(),
        vec![phone.clone(), page.clone()]
    );
}

#[tokio::test]
async fn an_sms_stop_also_covers_the_configured_channels() {
    for (setting, voice_blocked) in [("", true), ("sms_opt_out_also = []", false)] {
        let w = world(setting);
        let event = dndgate::event::ChannelEvent {
            provider: dndgate::providers::Provider::Twilio.source(),
            event_id: "SM1".into(),
            event_time_ms: T0,
            channel: Channel::Sms,
            address: sms("+15550006001"),
            kind: dndgate::event::EventKind::Inbound {
                body: "STOP".into(),
                payload: None,
                provider_verdict: None,
            },
        };
        let decision = dndgate::classify::classify(
            &event,
            &w.tenant.keywords,
            &dndgate::providers::Provider::Twilio.embedded_table(),
        );
        let scopes = state::event_scopes(&event, decision.action, &w.tenant.policy);
        w.event(
            &event.address,
            &scopes,
            StoreAction::BlockPermanent,
            &decision.reason,
            "SM1",
            T0,
        )
        .await;
        assert_eq!(
            w.blocked(&event.address, Channel::Voice, T0 + 1)
                .await
                .is_some(),
            voice_blocked,
            "{setting:?}"
        );
    }
}

/// Issue 12 item 2 at the depth every road goes through: consent evidence that does
/// not parse (here a `captured_at` of "never", as a spool record or a Rust caller could
/// carry it past the API's check) is no evidence, so the permanent record stays.
#[tokio::test]
async fn item_02_evidence_that_does_not_parse_lifts_nothing_through_state_apply() {
    let w = world("");
    let a = sms("+15550001201");
    w.event(
        &a,
        &[SMS],
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SM1",
        T0,
    )
    .await;
    for (id, evidence) in [
        (
            "op1",
            r#"{"agreed":"texts","captured_at":"never","method":"web form","reference":"r-1"}"#,
        ),
        (
            "op2",
            r#"{"agreed":"texts","captured_at":"2025-11-01T00:00:00Z","method":"telepathy","reference":"r-1"}"#,
        ),
        (
            "op3",
            r#"{"agreed":"texts","captured_at":"2025-11-01T00:00:00Z","method":"web form","reference":""}"#,
        ),
        ("op4", r#"not json"#),
    ] {
        let outcomes = state::apply(
            &w.store,
            &w.tenant,
            &Request {
                address: &a,
                scopes: vec![SMS],
                action: StoreAction::Clear,
                reason: "operator:consent",
                provider: Source::OPERATOR,
                event_id: id,
                event_ms: T0 + 1000,
                received_ms: T0 + 1000,
                now_ms: T0 + 1000,
                actor: Some("mallory"),
                evidence: Some(evidence),
            },
        )
        .await
        .unwrap();
        assert!(outcomes.refused(), "{evidence}: {outcomes:?}");
        assert_eq!(
            w.blocked(&a, Channel::Sms, T0 + 2000).await,
            Some(State::Permanent),
            "{evidence}"
        );
    }
}
