//! The audit stream contract against real redis-servers: entries written by the state
//! engine come back typed through the consumer group, across every shard, with
//! at-least-once delivery, crash recovery and unreadable entries reported by id.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::RedisServer;
use dndgate::address::Address;
use dndgate::audit::{
    AuditConsumer, AuditEntry, AuditError, ConsumerOptions, Delivery, EntryError, StartFrom,
};
use dndgate::config::{Config, Tenant};
use dndgate::event::{Channel, Scope, Source};
use dndgate::state::{self, Request};
use dndgate::store::{self, Outcome, State, Store, StoreAction, StoreOptions};

/// A redis-server, the store on it and the tenant `acme` of the test configuration.
struct Env {
    redis: RedisServer,
    store: Store,
    tenant: Tenant,
}

fn env() -> Env {
    let redis = RedisServer::start();
    let config = Config::parse(&common::config_text(&redis.url()), Path::new("."))
        .unwrap_or_else(|p| panic!("test config: {p:?}"));
    let store = Store::open(
        &redis.url(),
        StoreOptions {
            timeout: Duration::from_secs(2),
            dedup_ttl: config.dedup_ttl,
        },
    )
    .unwrap();
    let tenant = config.tenants["acme"].clone();
    Env {
        redis,
        store,
        tenant,
    }
}

fn sms(n: &str) -> Address {
    Address::parse(Channel::Sms, n).unwrap()
}

/// The epoch of the explicit times below (2025-11-24, a realistic past time: the apply
/// script refuses event times before 2000).
const T0: i64 = 1_764_000_000_000;

/// One change on the sms record of an address, at an explicit time (ms after [`T0`]).
struct Ev<'a> {
    address: &'a str,
    action: StoreAction,
    reason: &'a str,
    id: &'a str,
    at: i64,
    evidence: Option<&'a str>,
}

fn ev<'a>(address: &'a str, action: StoreAction, reason: &'a str, id: &'a str, at: i64) -> Ev<'a> {
    Ev {
        address,
        action,
        reason,
        id,
        at,
        evidence: None,
    }
}

impl Env {
    async fn apply(&self, ev: &Ev<'_>) {
        let address = sms(ev.address);
        let operator = ev.action == StoreAction::Clear;
        state::apply(
            &self.store,
            &self.tenant,
            &Request {
                address: &address,
                scopes: vec![Scope::Channel(Channel::Sms)],
                action: ev.action,
                reason: ev.reason,
                provider: if operator {
                    Source::OPERATOR
                } else {
                    dndgate::providers::Provider::Twilio.source()
                },
                event_id: ev.id,
                event_ms: T0 + ev.at,
                received_ms: T0 + ev.at + 5,
                now_ms: T0 + ev.at,
                actor: operator.then_some("alice@acme.example"),
                evidence: ev.evidence,
            },
        )
        .await
        .unwrap();
    }

    /// A STOP on each of `n` numbers: entries spread over the shards.
    async fn stops(&self, n: usize) -> Vec<String> {
        let mut numbers = Vec::new();
        for i in 0..n {
            let number = format!("+1415555{i:04}");
            let id = format!("SMstop{i}");
            self.apply(&ev(
                &number,
                StoreAction::BlockPermanent,
                "keyword:STOP",
                &id,
                1000,
            ))
            .await;
            numbers.push(number);
        }
        numbers
    }

    async fn consumer(&self, group: &str, name: &str, options: ConsumerOptions) -> AuditConsumer {
        AuditConsumer::connect(&self.redis.url(), "acme", group, name, options)
            .await
            .unwrap()
    }

    /// The group's pending entries as Redis itself counts them, shard by shard.
    fn xpending(&self, group: &str) -> u64 {
        store::audit_keys("acme")
            .iter()
            .map(|k| {
                let out = self.redis.cli(&["XPENDING", k, group]).unwrap();
                out.lines().next().unwrap().parse::<u64>().unwrap()
            })
            .sum()
    }
}

fn from_beginning() -> ConsumerOptions {
    ConsumerOptions {
        start: StartFrom::Beginning,
        ..ConsumerOptions::default()
    }
}

/// Every batch until one comes back empty (no waiting).
async fn drain(consumer: &mut AuditConsumer, count: usize) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = consumer.next_batch(count, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// The readable entries of a batch, panicking on an unreadable one.
fn entries(batch: Vec<Delivery>) -> Vec<(String, AuditEntry)> {
    batch
        .into_iter()
        .map(|(stream, item)| (stream, item.unwrap_or_else(|bad| panic!("{bad}"))))
        .collect()
}

fn ack_list(batch: &[Delivery]) -> Vec<(String, String)> {
    batch
        .iter()
        .map(|(stream, item)| {
            let id = match item {
                Ok(e) => e.id.clone(),
                Err(b) => b.id.clone(),
            };
            (stream.clone(), id)
        })
        .collect()
}

const A: &str = "+14155550101";
const B: &str = "+14155550102";
const C: &str = "+14155550103";
/// Consent evidence captured a day before the changes' times (evidence dated after the
/// change would be in its future, and is dropped).
fn evidence() -> String {
    format!(
        r#"{{"agreed":"Texts from Acme","captured_at":"{}","method":"web form","reference":"form-42"}}"#,
        dndgate::time::format_rfc3339_ms(T0 - 86_400_000)
    )
}

/// One row per change: what the entry must say, and what an automation concludes.
struct Expect {
    id: &'static str,
    outcome: Outcome,
    before: Option<State>,
    after: Option<State>,
    enabled: bool,
    disabled: bool,
    changed: bool,
}

const fn row(
    id: &'static str,
    outcome: Outcome,
    before: Option<State>,
    after: Option<State>,
    enabled: bool,
    disabled: bool,
    changed: bool,
) -> Expect {
    Expect {
        id,
        outcome,
        before,
        after,
        enabled,
        disabled,
        changed,
    }
}

async fn write_scenario(env: &Env) {
    use StoreAction::*;
    let evidence = evidence();
    let evs = [
        ev(A, BlockPermanent, "keyword:STOP", "SM1", 1000),
        ev(A, Unblock, "keyword:START", "SM2", 2000),
        // Older than the START it would undo: superseded.
        ev(A, BlockPermanent, "keyword:STOP", "SM3", 1500),
        ev(A, BlockTemporary, "twilio:30003", "SM4", 3000),
        ev(B, BlockPermanent, "twilio:21610", "SM5", 1000),
        // A permanent record without consent evidence: refused.
        ev(B, Clear, "operator", "op1", 5000),
        Ev {
            evidence: Some(&evidence),
            ..ev(B, Clear, "operator", "op2", 6000)
        },
        // Three temporary failures in the window: the third escalates.
        ev(C, BlockTemporary, "twilio:30003", "SM6", 1000),
        ev(C, BlockTemporary, "twilio:30005", "SM7", 2000),
        ev(C, BlockTemporary, "twilio:30003", "SM8", 3000),
        ev(C, Help, "keyword:HELP", "SM9", 4000),
    ];
    for e in &evs {
        env.apply(e).await;
    }
}

fn expected() -> Vec<Expect> {
    use Outcome::*;
    use State::*;
    vec![
        row("SM1", Applied, None, Some(Permanent), true, false, true),
        row(
            "SM2",
            Applied,
            Some(Permanent),
            Some(Cleared),
            false,
            true,
            true,
        ),
        row(
            "SM3",
            Superseded,
            Some(Cleared),
            Some(Cleared),
            false,
            false,
            false,
        ),
        row(
            "SM4",
            Applied,
            Some(Cleared),
            Some(Temporary),
            true,
            false,
            true,
        ),
        row("SM5", Applied, None, Some(Permanent), true, false, true),
        row(
            "op1",
            Refused,
            Some(Permanent),
            Some(Permanent),
            false,
            false,
            false,
        ),
        row(
            "op2",
            Applied,
            Some(Permanent),
            Some(Cleared),
            false,
            true,
            true,
        ),
        row("SM6", Applied, None, Some(Temporary), true, false, true),
        row(
            "SM7",
            Applied,
            Some(Temporary),
            Some(Temporary),
            false,
            false,
            true,
        ),
        // Already blocked: not "enabled", but the record changed (now permanent).
        row(
            "SM8",
            Escalated,
            Some(Temporary),
            Some(Permanent),
            false,
            false,
            true,
        ),
        row(
            "SM9",
            Help,
            Some(Permanent),
            Some(Permanent),
            false,
            false,
            false,
        ),
    ]
}

/// The scenario read back through a consumer in either read mode.
async fn scenario_comes_back_typed(cluster: bool) {
    let env = env();
    write_scenario(&env).await;
    let mut consumer = env
        .consumer(
            "crm",
            "w1",
            ConsumerOptions {
                cluster,
                ..from_beginning()
            },
        )
        .await;
    let got = entries(drain(&mut consumer, 100).await);
    let expected = expected();
    assert_eq!(got.len(), expected.len(), "one entry per change: {got:#?}");

    // Entries of one address are in one shard stream, in the order applied.
    for address in [A, B, C] {
        let ids: Vec<&str> = got
            .iter()
            .filter(|(_, e)| e.address == address)
            .map(|(_, e)| e.event_id.as_str())
            .collect();
        let want: Vec<&str> = expected
            .iter()
            .map(|x| x.id)
            .filter(|id| {
                got.iter()
                    .any(|(_, e)| e.event_id == *id && e.address == address)
            })
            .collect();
        assert_eq!(ids, want, "order of {address}");
    }

    for x in &expected {
        let (stream, e) = got
            .iter()
            .find(|(_, e)| e.event_id == x.id)
            .unwrap_or_else(|| panic!("no entry for {}", x.id));
        let row = x.id;
        assert_eq!(
            *stream,
            store::keys("acme", &sms(&e.address)).audit,
            "{row}"
        );
        assert_eq!(e.tenant, "acme", "{row}");
        assert_eq!(e.scope, Scope::Channel(Channel::Sms), "{row}");
        assert_eq!(e.outcome, x.outcome, "{row}");
        assert_eq!(e.before.as_ref().map(|r| r.state), x.before, "{row}");
        assert_eq!(e.after.as_ref().map(|r| r.state), x.after, "{row}");
        assert_eq!(e.dnd_enabled(), x.enabled, "{row} dnd_enabled");
        assert_eq!(e.dnd_disabled(), x.disabled, "{row} dnd_disabled");
        assert_eq!(e.changed(), x.changed, "{row} changed");
        assert_eq!(e.received_ms, e.event_ms + 5, "{row}");
    }

    let by_id: BTreeMap<&str, &AuditEntry> =
        got.iter().map(|(_, e)| (e.event_id.as_str(), e)).collect();
    let stop = by_id["SM1"];
    assert_eq!(
        (
            stop.action.as_str(),
            stop.reason.as_str(),
            stop.provider.as_str()
        ),
        ("block_permanent", "keyword:STOP", "twilio")
    );
    assert_eq!(stop.event_ms, T0 + 1000);
    assert_eq!(stop.after.as_ref().unwrap().event_ms, T0 + 1000);
    assert_eq!((&stop.actor, &stop.evidence), (&None, &None));

    let temporary = by_id["SM4"].after.as_ref().unwrap();
    let ttl = env.tenant.policy.temporary_ttl.as_millis() as i64;
    assert_eq!(temporary.expires_ms, Some(T0 + 3000 + ttl));

    let refused = by_id["op1"];
    assert_eq!(refused.action, "clear");
    assert_eq!(refused.provider, "operator");
    assert_eq!(refused.actor.as_deref(), Some("alice@acme.example"));
    assert_eq!(refused.evidence, None);

    let cleared = by_id["op2"];
    let evidence = cleared.evidence.as_ref().unwrap();
    assert_eq!(evidence["reference"], "form-42");
    assert_eq!(evidence["method"], "web form");
    assert_eq!(cleared.actor.as_deref(), Some("alice@acme.example"));

    assert!(
        by_id["SM8"]
            .after
            .as_ref()
            .unwrap()
            .reason
            .starts_with("escalated:")
    );
    assert_eq!(by_id["SM9"].action, "help");
}

#[tokio::test]
async fn every_kind_of_change_comes_back_typed() {
    scenario_comes_back_typed(false).await;
}

#[tokio::test]
async fn cluster_mode_reads_the_same_entries() {
    scenario_comes_back_typed(true).await;
}

#[tokio::test]
async fn every_shard_is_read_and_ack_empties_the_pending_list() {
    let env = env();
    let numbers = env.stops(40).await;
    let shards: BTreeSet<String> = numbers
        .iter()
        .map(|n| store::keys("acme", &sms(n)).audit)
        .collect();
    assert!(
        shards.len() >= 10,
        "40 numbers over {} shards",
        shards.len()
    );

    for cluster in [false, true] {
        let group = format!("crm-{cluster}");
        let options = ConsumerOptions {
            cluster,
            ..from_beginning()
        };
        let mut consumer = env.consumer(&group, "w1", options).await;
        // COUNT is per shard: with 1, one batch holds at most one entry per shard.
        let mut batches = 0;
        let mut all = Vec::new();
        loop {
            let batch = consumer.next_batch(1, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 16);
            batches += 1;
            all.extend(batch);
        }
        assert!(batches > 1, "{batches} batches");
        let streams: BTreeSet<String> = all.iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(streams, shards, "cluster={cluster}");
        let read: BTreeSet<String> = entries(all.clone())
            .into_iter()
            .map(|(_, e)| e.address)
            .collect();
        assert_eq!(read, numbers.iter().cloned().collect(), "cluster={cluster}");

        assert_eq!(consumer.pending().await.unwrap(), 40);
        assert_eq!(env.xpending(&group), 40);
        assert_eq!(consumer.ack(&ack_list(&all)).await.unwrap(), 40);
        assert_eq!(consumer.pending().await.unwrap(), 0);
        assert_eq!(env.xpending(&group), 0);
        // Acknowledging again is harmless.
        assert_eq!(consumer.ack(&ack_list(&all)).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn unacknowledged_entries_come_back_after_a_crash() {
    let env = env();
    env.stops(5).await;
    let mut first = env.consumer("crm", "w1", from_beginning()).await;
    let before_crash = drain(&mut first, 100).await;
    assert_eq!(before_crash.len(), 5);
    // Acknowledge one; crash with the other four in flight.
    first.ack(&ack_list(&before_crash[..1])).await.unwrap();
    drop(first);

    // Another consumer of the group does not get them: they are w1's.
    let mut other = env.consumer("crm", "w2", from_beginning()).await;
    assert!(drain(&mut other, 100).await.is_empty());

    // w1 restarted: its pending entries first, then new ones.
    let mut again = env.consumer("crm", "w1", from_beginning()).await;
    let recovered = again.next_batch(100, Duration::ZERO).await.unwrap();
    assert_eq!(ack_list(&recovered), ack_list(&before_crash[1..]));
    env.apply(&ev(
        A,
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SMnew",
        9000,
    ))
    .await;
    let next = entries(drain(&mut again, 100).await);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.event_id, "SMnew");
    // Recovery walks the pending list once: the unacknowledged four are not repeated.
    assert_eq!(again.pending().await.unwrap(), 5);
}

#[tokio::test]
async fn entries_left_by_a_consumer_that_never_returns_can_be_claimed() {
    let env = env();
    env.stops(3).await;
    let mut gone = env.consumer("crm", "pod-a", from_beginning()).await;
    let read = drain(&mut gone, 100).await;
    assert_eq!(read.len(), 3);
    drop(gone);

    let mut heir = env.consumer("crm", "pod-b", from_beginning()).await;
    // Not idle long enough yet.
    assert!(
        heir.claim_stale(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claimed = heir
        .claim_stale(Duration::from_millis(20), 10)
        .await
        .unwrap();
    let mut want = ack_list(&read);
    let mut got = ack_list(&claimed);
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(heir.ack(&got).await.unwrap(), 3);
    assert_eq!(env.xpending("crm"), 0);
}

#[tokio::test]
async fn consumer_groups_are_independent() {
    let env = env();
    env.stops(6).await;
    let mut crm = env.consumer("crm", "w1", from_beginning()).await;
    let mut billing = env.consumer("billing", "w1", from_beginning()).await;
    let crm_read = drain(&mut crm, 100).await;
    crm.ack(&ack_list(&crm_read)).await.unwrap();
    let billing_read = drain(&mut billing, 100).await;
    let mut a = ack_list(&crm_read);
    let mut b = ack_list(&billing_read);
    a.sort();
    b.sort();
    assert_eq!(a.len(), 6);
    assert_eq!(a, b);
    assert_eq!(env.xpending("crm"), 0);
    assert_eq!(env.xpending("billing"), 6);
}

#[tokio::test]
async fn a_new_group_starts_after_the_history_and_an_existing_one_keeps_its_place() {
    let env = env();
    env.stops(3).await;
    let mut fresh = env.consumer("crm", "w1", ConsumerOptions::default()).await;
    assert!(drain(&mut fresh, 100).await.is_empty());
    env.apply(&ev(
        A,
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SMx",
        5000,
    ))
    .await;
    let read = entries(drain(&mut fresh, 100).await);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1.event_id, "SMx");

    // Joining the existing group "from the beginning" does not rewind it.
    let mut late = env.consumer("crm", "w2", from_beginning()).await;
    assert!(drain(&mut late, 100).await.is_empty());
}

#[tokio::test]
async fn an_unreadable_entry_is_reported_with_its_id() {
    let env = env();
    env.stops(2).await;
    let key = &store::audit_keys("acme")[5];
    let junk = env
        .redis
        .cli(&["XADD", key, "*", "hello", "world"])
        .unwrap();
    let bad_time = env
        .redis
        .cli(&[
            "XADD",
            key,
            "*",
            "tenant",
            "acme",
            "scope",
            "sms",
            "address",
            A,
            "action",
            "block_permanent",
            "outcome",
            "applied",
            "before",
            "",
            "after",
            "P|1||keyword:STOP|twilio",
            "reason",
            "keyword:STOP",
            "provider",
            "twilio",
            "event_id",
            "SMbad",
            "event_ms",
            "yesterday",
            "received_ms",
            "1",
        ])
        .unwrap();
    let mut consumer = env.consumer("crm", "w1", from_beginning()).await;
    let all = drain(&mut consumer, 100).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    let bad: Vec<_> = all
        .iter()
        .filter_map(|(s, item)| item.as_ref().err().map(|b| (s, b)))
        .collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].0, key);
    assert_eq!(bad[0].1.id, junk);
    assert_eq!(bad[0].1.error, EntryError::Missing("tenant"));
    assert_eq!(bad[1].1.id, bad_time);
    assert_eq!(
        bad[1].1.error,
        EntryError::Bad {
            field: "event_ms",
            value: "yesterday".into()
        }
    );
    assert!(bad[1].1.to_string().contains("event_ms"));
    // Acknowledged, it is gone for good.
    consumer.ack(&ack_list(&all)).await.unwrap();
    assert_eq!(env.xpending("crm"), 0);
}

#[tokio::test]
async fn a_pending_entry_trimmed_from_the_stream_is_reported_not_lost() {
    let env = env();
    env.stops(1).await;
    let mut first = env.consumer("crm", "w1", from_beginning()).await;
    let read = drain(&mut first, 100).await;
    drop(first);
    let stream = read[0].0.clone();
    env.redis.cli(&["XTRIM", &stream, "MAXLEN", "0"]).unwrap();

    let mut again = env.consumer("crm", "w1", from_beginning()).await;
    let recovered = again.next_batch(100, Duration::ZERO).await.unwrap();
    assert_eq!(recovered.len(), 1);
    let bad = recovered[0].1.as_ref().unwrap_err();
    assert_eq!(bad.error, EntryError::Trimmed);
    assert_eq!(ack_list(&recovered), ack_list(&read));
    again.ack(&ack_list(&recovered)).await.unwrap();
    assert_eq!(env.xpending("crm"), 0);
}

#[tokio::test]
async fn a_blocking_read_wakes_on_the_next_change_and_times_out_when_quiet() {
    let env = env();
    for cluster in [false, true] {
        let group = format!("crm-{cluster}");
        let options = ConsumerOptions {
            cluster,
            // Shorter than the wait: the read's deadline must add the two.
            timeout: Duration::from_millis(200),
            ..ConsumerOptions::default()
        };
        let mut consumer = env.consumer(&group, "w1", options).await;

        let started = Instant::now();
        let quiet = consumer
            .next_batch(10, Duration::from_millis(400))
            .await
            .unwrap();
        assert!(quiet.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
            "{waited:?}"
        );

        let store = env.store.clone();
        let tenant = env.tenant.clone();
        let id = format!("SMwake{cluster}");
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let address = sms(B);
            state::apply(
                &store,
                &tenant,
                &Request {
                    address: &address,
                    scopes: vec![Scope::Channel(Channel::Sms)],
                    action: StoreAction::BlockPermanent,
                    reason: "keyword:STOP",
                    provider: dndgate::providers::Provider::Twilio.source(),
                    event_id: &id,
                    event_ms: T0 + 1000,
                    received_ms: T0 + 1000,
                    now_ms: T0 + 1000,
                    actor: None,
                    evidence: None,
                },
            )
            .await
            .unwrap();
        });
        let started = Instant::now();
        let woke = consumer
            .next_batch(10, Duration::from_secs(10))
            .await
            .unwrap();
        writer.await.unwrap();
        assert_eq!(woke.len(), 1, "cluster={cluster}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "cluster={cluster}"
        );
        // The second run (cluster) sees the first run's record: STOP again is no change
        // in state, but still an applied entry.
        assert!(woke[0].1.as_ref().unwrap().changed());
    }
}

#[tokio::test]
async fn a_lost_group_is_recreated_and_nothing_written_after_the_loss_is_missed() {
    let env = env();
    let mut consumer = env.consumer("crm", "w1", ConsumerOptions::default()).await;
    // Redis lost everything (restart without persistence, FLUSHALL): groups included.
    env.redis.flushall();
    env.apply(&ev(
        A,
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SMafter",
        1000,
    ))
    .await;
    let read = entries(drain(&mut consumer, 100).await);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1.event_id, "SMafter");
}

#[tokio::test]
async fn misuse_is_refused() {
    let env = env();
    let refused = AuditConsumer::connect(&env.redis.url(), "ac{me", "g", "c", from_beginning())
        .await
        .err();
    assert!(matches!(refused, Some(AuditError::Tenant(_))));
    let mut consumer = env.consumer("crm", "w1", from_beginning()).await;
    let other_tenant = store::audit_keys("globex")[0].clone();
    let err = consumer
        .ack(&[(other_tenant, "1-0".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, AuditError::UnknownStream(_)));
}

#[tokio::test]
async fn history_entries_parse_too() {
    let env = env();
    write_scenario(&env).await;
    let history = env.store.history("acme", &sms(B), 100).await.unwrap();
    let parsed: Vec<AuditEntry> = history
        .iter()
        .map(|f| AuditEntry::parse(&f[0].1, &f[1..]).unwrap())
        .collect();
    let ids: Vec<&str> = parsed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["SM5", "op1", "op2"]);
    assert!(parsed[2].dnd_disabled());
}

/// Field rules of the parser, one row per broken field.
#[test]
fn parse_names_the_missing_or_bad_field() {
    let good: Vec<(String, String)> = [
        ("tenant", "acme"),
        ("scope", "all"),
        ("address", "ann@example.com"),
        ("action", "block_permanent"),
        ("outcome", "applied"),
        ("before", ""),
        ("after", "P|10||unsubscribe|link"),
        ("reason", "unsubscribe"),
        ("provider", "link"),
        ("event_id", "u1"),
        ("event_ms", "10"),
        ("received_ms", "11"),
        ("contact", "c-7"),
        ("future_field", "ignored"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let entry = AuditEntry::parse("1-0", &good).unwrap();
    assert_eq!(entry.scope, Scope::All);
    assert_eq!(entry.contact.as_deref(), Some("c-7"));
    assert!(entry.dnd_enabled() && !entry.dnd_disabled());

    let bad = |field: &'static str, value: &str| EntryError::Bad {
        field,
        value: value.into(),
    };
    let table: [(&str, Option<&str>, EntryError); 9] = [
        ("tenant", None, EntryError::Missing("tenant")),
        ("before", None, EntryError::Missing("before")),
        ("received_ms", None, EntryError::Missing("received_ms")),
        ("scope", Some("fax"), bad("scope", "fax")),
        ("outcome", Some("exploded"), bad("outcome", "exploded")),
        ("after", Some("Z|1||r|s"), bad("after", "Z|1||r|s")),
        ("before", Some("P|soon||r|s"), bad("before", "P|soon||r|s")),
        ("event_ms", Some("1.5"), bad("event_ms", "1.5")),
        ("evidence", Some("{not json"), bad("evidence", "{not json")),
    ];
    for (field, value, want) in table {
        let mut fields: Vec<(String, String)> =
            good.iter().filter(|(k, _)| k != field).cloned().collect();
        if let Some(v) = value {
            fields.push((field.to_string(), v.to_string()));
        }
        assert_eq!(
            AuditEntry::parse("1-0", &fields),
            Err(want),
            "{field}={value:?}"
        );
    }
}

/// A temporary record is judged at the entry's event time: blocking then, whatever
/// the clock says when the automation reads it.
#[test]
fn temporary_blocks_are_judged_at_the_event_time() {
    let fields = |before: &str, after: &str, at: &str| -> Vec<(String, String)> {
        [
            ("tenant", "acme"),
            ("scope", "sms"),
            ("address", A),
            ("action", "block_temporary"),
            ("outcome", "applied"),
            ("before", before),
            ("after", after),
            ("reason", "twilio:30003"),
            ("provider", "twilio"),
            ("event_id", "SM1"),
            ("event_ms", at),
            ("received_ms", at),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    // An expired temporary record before, a fresh one after: enabled again.
    let e = AuditEntry::parse(
        "1-0",
        &fields("T|1|50|twilio:30003|twilio", "T|100|200|r|twilio", "100"),
    )
    .unwrap();
    assert!(e.dnd_enabled());
    // A live temporary record lifted: disabled.
    let e = AuditEntry::parse(
        "1-0",
        &fields("T|1|500|twilio:30003|twilio", "C|100||r|twilio", "100"),
    )
    .unwrap();
    assert!(e.dnd_disabled());
}

#[tokio::test]
async fn entries_delivered_to_a_dropped_read_are_not_lost() {
    let env = env();
    let mut consumer = env.consumer("crm", "w1", ConsumerOptions::default()).await;
    // The caller gives up on a blocking read (a timeout, a select!): Redis keeps the
    // read blocked and delivers the next entry to it, into this consumer's pending
    // list, though no one sees the reply.
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        consumer.next_batch(10, Duration::from_secs(2)),
    )
    .await;
    assert!(dropped.is_err());
    env.apply(&ev(
        A,
        StoreAction::BlockPermanent,
        "keyword:STOP",
        "SMlost",
        1000,
    ))
    .await;
    // On a cluster the consumer polls (no blocking read spans slots), so a dropped
    // call leaves no read behind to take the entry: it is simply read next.
    let left_behind = if env.redis.is_cluster() { 0 } else { 1 };
    assert_eq!(env.xpending("crm"), left_behind);
    let read = entries(drain(&mut consumer, 10).await);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1.event_id, "SMlost");
}
