//! The store against a real redis-server: the state rules of the apply script, with
//! explicit event times, and the lookup.

mod common;

use std::time::Duration;

use common::RedisServer;
use dndgate::address::Address;
use dndgate::event::{Channel, Scope};
use dndgate::store::{Applied, Change, Outcome, State, Store, StoreAction, StoreOptions};

const HOUR_MS: i64 = 3_600_000;

fn store(redis: &RedisServer) -> Store {
    Store::open(
        &redis.url(),
        StoreOptions {
            timeout: Duration::from_secs(2),
            dedup_ttl: Duration::from_secs(3600),
        },
    )
    .unwrap()
}

fn sms(n: &str) -> Address {
    Address::parse(Channel::Sms, n).unwrap()
}

struct Ev<'a> {
    action: StoreAction,
    reason: &'a str,
    id: &'a str,
    at: i64,
}

fn ev<'a>(action: StoreAction, reason: &'a str, id: &'a str, at: i64) -> Ev<'a> {
    Ev {
        action,
        reason,
        id,
        at,
    }
}

async fn apply(store: &Store, address: &Address, ev: Ev<'_>) -> Applied {
    store
        .apply(&Change {
            tenant: "acme",
            address,
            scopes: &[Scope::Channel(Channel::Sms)],
            action: ev.action,
            reason: ev.reason,
            provider: dndgate::providers::Provider::Twilio.source(),
            event_id: ev.id,
            event_ms: ev.at,
            received_ms: ev.at,
            now_ms: ev.at,
            temporary_ttl: Duration::from_millis(72 * HOUR_MS as u64),
            escalate_after: 3,
            escalate_window: Duration::from_secs(30 * 86400),
            actor: None,
            evidence: None,
            contact: None,
        })
        .await
        .unwrap()
}

fn outcome(applied: &Applied) -> Outcome {
    match applied {
        Applied::Done(v) => v[0].1,
        Applied::Duplicate => panic!("unexpected duplicate"),
    }
}

fn audit_len(redis: &RedisServer, store_key: &str) -> usize {
    redis.cli(&["XLEN", store_key]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn stop_then_older_start_is_superseded_and_audited() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675310");
    let t = 1_764_000_000_000;
    let stop = ev(StoreAction::BlockPermanent, "keyword:STOP", "SM1", t);
    assert_eq!(outcome(&apply(&store, &a, stop).await), Outcome::Applied);
    let late_start = ev(StoreAction::Unblock, "keyword:START", "SM0", t - 1000);
    assert_eq!(
        outcome(&apply(&store, &a, late_start).await),
        Outcome::Superseded
    );

    let v = store.lookup("acme", Channel::Sms, &a, t + 1).await.unwrap();
    assert!(v.blocked, "a START older than the STOP must not lift it");
    let r = v.record.unwrap();
    assert_eq!(
        (r.state, r.reason.as_str(), r.source.as_str()),
        (State::Permanent, "keyword:STOP", "twilio")
    );

    let audit = dndgate::store::keys("acme", &a).audit;
    assert_eq!(audit_len(&redis, &audit), 2);
    let history = store.history("acme", &a, 100).await.unwrap();
    let outcomes: Vec<&str> = history
        .iter()
        .map(|e| e.iter().find(|(k, _)| k == "outcome").unwrap().1.as_str())
        .collect();
    assert_eq!(outcomes, ["applied", "superseded"]);

    // A newer START lifts it, and the lookup says so.
    let start = ev(StoreAction::Unblock, "keyword:START", "SM2", t + 1000);
    assert_eq!(outcome(&apply(&store, &a, start).await), Outcome::Applied);
    let v = store
        .lookup("acme", Channel::Sms, &a, t + 2000)
        .await
        .unwrap();
    assert!(!v.blocked);
    assert_eq!(v.record.unwrap().state, State::Cleared);
    // ...and a STOP older than that START, arriving late, does not block again.
    let late_stop = ev(StoreAction::BlockPermanent, "keyword:STOP", "SM1b", t + 500);
    assert_eq!(
        outcome(&apply(&store, &a, late_stop).await),
        Outcome::Superseded
    );
    assert!(
        !store
            .lookup("acme", Channel::Sms, &a, t + 2000)
            .await
            .unwrap()
            .blocked
    );
}

#[tokio::test]
async fn the_same_event_twice_is_applied_once() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675310");
    let t = 1_764_000_000_000;
    for _ in 0..2 {
        apply(
            &store,
            &a,
            ev(StoreAction::BlockPermanent, "keyword:STOP", "SMdup", t),
        )
        .await;
    }
    let again = apply(
        &store,
        &a,
        ev(StoreAction::BlockPermanent, "keyword:STOP", "SMdup", t + 5),
    )
    .await;
    assert_eq!(again, Applied::Duplicate);
    assert_eq!(
        audit_len(&redis, &dndgate::store::keys("acme", &a).audit),
        1
    );
}

#[tokio::test]
async fn temporary_records_expire_by_themselves_and_never_downgrade_permanent() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675311");
    let t = 1_764_000_000_000;
    let temp = ev(
        StoreAction::BlockTemporary,
        "twilio:30003",
        "SMa:undelivered",
        t,
    );
    assert_eq!(outcome(&apply(&store, &a, temp).await), Outcome::Applied);
    let v = store
        .lookup("acme", Channel::Sms, &a, t + HOUR_MS)
        .await
        .unwrap();
    assert!(v.blocked);
    assert_eq!(
        v.record.as_ref().unwrap().expires_ms,
        Some(t + 72 * HOUR_MS)
    );
    // No sweeper: at its expiry the same stored value stops blocking.
    assert!(
        !store
            .lookup("acme", Channel::Sms, &a, t + 72 * HOUR_MS)
            .await
            .unwrap()
            .blocked
    );

    // An inbound message lifts a live temporary record.
    let b = sms("+15558675312");
    apply(
        &store,
        &b,
        ev(StoreAction::BlockTemporary, "twilio:30005", "SMb:failed", t),
    )
    .await;
    let inbound = ev(StoreAction::Reachable, "inbound", "SMb2", t + 10);
    assert_eq!(outcome(&apply(&store, &b, inbound).await), Outcome::Applied);
    assert!(
        !store
            .lookup("acme", Channel::Sms, &b, t + 20)
            .await
            .unwrap()
            .blocked
    );

    // ...but never a permanent one, and a temporary failure does not downgrade it.
    let c = sms("+15558675313");
    apply(
        &store,
        &c,
        ev(
            StoreAction::BlockPermanent,
            "twilio:30004",
            "SMc:undelivered",
            t,
        ),
    )
    .await;
    let inbound = ev(StoreAction::Reachable, "inbound", "SMc2", t + 10);
    assert_eq!(outcome(&apply(&store, &c, inbound).await), Outcome::Noop);
    let temp = ev(
        StoreAction::BlockTemporary,
        "twilio:30003",
        "SMc3:undelivered",
        t + 20,
    );
    assert_eq!(
        outcome(&apply(&store, &c, temp).await),
        Outcome::KeptPermanent
    );
    let v = store
        .lookup("acme", Channel::Sms, &c, t + 100 * HOUR_MS)
        .await
        .unwrap();
    assert!(v.blocked);
    assert_eq!(v.record.unwrap().reason, "twilio:30004");
}

#[tokio::test]
async fn noop_events_leave_nothing_behind() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675314");
    let inbound = ev(StoreAction::Reachable, "inbound", "SMx", 1_764_000_000_000);
    assert_eq!(outcome(&apply(&store, &a, inbound).await), Outcome::Noop);
    assert_eq!(redis.snapshot(), Vec::<String>::new());
}

#[tokio::test]
async fn batch_lookup_of_ten_thousand() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let t = 1_764_000_000_000;
    let addresses: Vec<Address> = (0..10_000).map(|i| sms(&format!("+1555{i:07}"))).collect();
    for (i, a) in addresses.iter().enumerate().filter(|(i, _)| i % 7 == 0) {
        let id = format!("SM{i}");
        apply(
            &store,
            a,
            ev(StoreAction::BlockPermanent, "keyword:STOP", &id, t),
        )
        .await;
    }
    let verdicts = store
        .lookup_many("acme", Channel::Sms, &addresses, t + 1)
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 10_000);
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(v.blocked, i % 7 == 0, "address {i}");
    }
    // Another channel and another tenant see nothing.
    let other = store
        .lookup_many("acme", Channel::Whatsapp, &addresses[..10], t)
        .await
        .unwrap();
    assert!(other.iter().all(|v| !v.blocked));
    let other = store
        .lookup_many("globex", Channel::Sms, &addresses[..10], t)
        .await
        .unwrap();
    assert!(other.iter().all(|v| !v.blocked));
}

/// A batch big enough to go as several pipelines answers in the order given, around
/// the addresses it refuses, and fails closed as a whole on the spool marker of any
/// one shard it touches (here the shard of its last address only).
#[tokio::test]
async fn big_batch_keeps_its_order_and_fails_closed_on_one_shards_marker() {
    use sha1::Digest;
    let redis = RedisServer::start();
    let store = store(&redis);
    let t = 1_764_000_000_000;
    let raw: Vec<String> = (0..7_000)
        .map(|i| {
            if i % 1000 == 999 {
                format!("not a number {i}")
            } else {
                format!("+1777{i:07}")
            }
        })
        .collect();
    for i in (0..7_000).filter(|i| i % 5 == 0 && i % 1000 != 999) {
        let id = format!("SM{i}");
        let action = ev(StoreAction::BlockPermanent, "keyword:STOP", &id, t);
        apply(&store, &sms(&raw[i]), action).await;
    }
    let lookup = dndgate::lookup::Lookup::from_store(store.clone());
    let items = lookup.check_many("acme", Channel::Sms, &raw).await.unwrap();
    assert_eq!(items.len(), raw.len());
    for (i, item) in items.iter().enumerate() {
        if i % 1000 == 999 {
            assert!(item.is_err(), "address {i} is refused");
        } else {
            let v = item.as_ref().unwrap();
            assert_eq!(v.blocked, i % 5 == 0, "address {i}");
            if v.blocked {
                let r = v.record.as_ref().unwrap();
                assert_eq!(
                    (r.reason.as_str(), r.source.as_str()),
                    ("keyword:STOP", "twilio")
                );
            }
        }
    }
    let last = sms(&raw[6_998]);
    let shard = &hex::encode(sha1::Sha1::digest(last.as_str().as_bytes()))[..1];
    let marker = format!("dnd:{{acme:{shard}}}:spooled");
    redis.cli(&["HSET", &marker, "some-gateway", "1"]).unwrap();
    let err = lookup
        .check_many("acme", Channel::Sms, &raw)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            dndgate::lookup::LookupError::Store(dndgate::store::StoreError::Spooled(_))
        ),
        "{err:?}"
    );
    let err = store
        .lookup_many("acme", Channel::Sms, &[last], t + 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, dndgate::store::StoreError::Spooled(_)),
        "{err:?}"
    );
}

/// The export walk and the batch lookup see every record wherever it lives: on a
/// cluster the tenant's 16 shards spread over all three masters, so a walk of one node
/// or a pipeline sent to one node would miss some.
#[tokio::test]
async fn export_and_batch_lookup_reach_every_shard() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let t = 1_764_000_000_000;
    let addresses: Vec<Address> = (0..300).map(|i| sms(&format!("+1666{i:07}"))).collect();
    for (i, a) in addresses.iter().enumerate() {
        let id = format!("SM{i}");
        apply(
            &store,
            a,
            ev(StoreAction::BlockPermanent, "keyword:STOP", &id, t),
        )
        .await;
    }
    if redis.is_cluster() {
        for port in &redis.ports {
            let n: usize = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "DBSIZE"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().parse().unwrap())
                .unwrap();
            assert!(
                n > 0,
                "node {port} holds no keys: the test would not span nodes"
            );
        }
    }
    let verdicts = store
        .lookup_many("acme", Channel::Sms, &addresses, t + 1)
        .await
        .unwrap();
    assert!(verdicts.iter().all(|v| v.blocked));
    let mut exported = std::collections::BTreeSet::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let (next, records) = store.export_page("acme", cursor).await.unwrap();
        exported.extend(records.into_iter().map(|(_, a, _)| a.as_str().to_string()));
        pages += 1;
        assert!(pages < 1000, "the walk does not end");
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let expected: std::collections::BTreeSet<String> =
        addresses.iter().map(|a| a.as_str().to_string()).collect();
    assert_eq!(exported, expected);
    // Another tenant's walk finds none of them.
    let (_, none) = store.export_page("globex", 0).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn lookups_fail_closed_when_redis_is_down() {
    let mut redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675315");
    assert!(store.lookup("acme", Channel::Sms, &a, 1).await.is_ok());
    redis.kill();
    let err = store.lookup("acme", Channel::Sms, &a, 1).await.unwrap_err();
    assert!(
        matches!(err, dndgate::store::StoreError::Unavailable(_)),
        "{err}"
    );
}

#[tokio::test]
async fn expired_temporary_records_are_dropped_when_their_bucket_is_written() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let t = 1_764_000_000_000;
    // Find a second address in the same bucket as the first.
    let a = sms("+15550009000");
    let bucket = dndgate::store::keys("acme", &a).bucket;
    let b = (1..100_000)
        .map(|i| sms(&format!("+1555{:07}", 9_000_000 + i)))
        .find(|b| dndgate::store::keys("acme", b).bucket == bucket)
        .unwrap();
    apply(
        &store,
        &a,
        ev(StoreAction::BlockTemporary, "twilio:30003", "SMa:u", t),
    )
    .await;
    // Still live when b is written: kept.
    apply(
        &store,
        &b,
        ev(
            StoreAction::BlockPermanent,
            "keyword:STOP",
            "SMb",
            t + HOUR_MS,
        ),
    )
    .await;
    assert_eq!(redis.cli(&["HLEN", &bucket]).unwrap(), "2");
    // Expired when the bucket is next written: dropped, and the lookup never cared.
    let later = t + 73 * HOUR_MS;
    apply(
        &store,
        &b,
        ev(StoreAction::Unblock, "keyword:START", "SMb2", later),
    )
    .await;
    assert_eq!(redis.cli(&["HLEN", &bucket]).unwrap(), "1");
    assert!(
        !store
            .lookup("acme", Channel::Sms, &a, later)
            .await
            .unwrap()
            .blocked
    );
}

fn change<'a>(
    address: &'a Address,
    action: StoreAction,
    id: &'a str,
    event_ms: i64,
    now_ms: i64,
) -> Change<'a> {
    Change {
        tenant: "acme",
        address,
        scopes: &[Scope::Channel(Channel::Sms)],
        action,
        reason: "keyword:START",
        provider: dndgate::providers::Provider::Twilio.source(),
        event_id: id,
        event_ms,
        received_ms: now_ms,
        now_ms,
        temporary_ttl: Duration::from_millis(72 * HOUR_MS as u64),
        escalate_after: 3,
        escalate_window: Duration::from_secs(30 * 86400),
        actor: None,
        evidence: None,
        contact: None,
    }
}

/// Issue 12 item 3, the second line: whatever its caller did, the apply script
/// refuses (and audits) an event time later than its own clock plus the skew, or
/// before the floor, and writes no record and no dedup marker.
#[tokio::test]
async fn item_03_the_apply_script_refuses_an_event_time_past_its_clock_plus_skew() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let a = sms("+15558675320");
    let now = common::now_ms();
    // A caller whose clock jumped a day ahead: it believes "now" is tomorrow.
    let tomorrow = now + 24 * HOUR_MS;
    for (id, at) in [("J1", tomorrow), ("J2", 4_102_444_800_000), ("J3", 1000)] {
        let applied = store
            .apply(&change(&a, StoreAction::Unblock, id, at, tomorrow.max(at)))
            .await
            .unwrap();
        assert_eq!(outcome(&applied).as_str(), "refused_time", "{id} at {at}");
    }
    let records: Vec<String> = redis
        .snapshot()
        .into_iter()
        .filter(|k| !k.contains(":audit"))
        .collect();
    assert!(records.is_empty(), "no record, no marker: {records:?}");
    let history = store.history("acme", &a, 100).await.unwrap();
    assert_eq!(history.len(), 3, "each refusal is audited");
    // Within the skew the change applies.
    let applied = store
        .apply(&change(
            &a,
            StoreAction::BlockPermanent,
            "J4",
            now + 60_000,
            now,
        ))
        .await
        .unwrap();
    assert_eq!(outcome(&applied), Outcome::Applied);
    // A record dated 2100 that an earlier version wrote pins nothing: a STOP applies.
    let b = sms("+15558675321");
    let keys = dndgate::store::keys("acme", &b);
    let field = dndgate::store::field(Scope::Channel(Channel::Sms), &b);
    redis
        .cli(&[
            "HSET",
            &keys.bucket,
            &field,
            "C|4102444800000||keyword:START|import",
        ])
        .unwrap();
    let applied = store
        .apply(&change(&b, StoreAction::BlockPermanent, "J5", now, now))
        .await
        .unwrap();
    assert_eq!(outcome(&applied), Outcome::Applied);
    assert!(
        store
            .lookup("acme", Channel::Sms, &b, now)
            .await
            .unwrap()
            .blocked
    );
}

/// Issue 12 item 4: a stored value the script cannot read (an event time before 1970
/// written by an older version, or anything else) is never "no record": it counts as a
/// permanent record of unknown origin, which a clear without evidence cannot lift and
/// a lookup reports as blocking.
#[tokio::test]
async fn item_04_an_unreadable_or_pre_1970_record_is_never_no_record() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let now = common::now_ms();
    for (n, value) in [
        (
            "+15558675330",
            "P|-62135596800000||standard-webhooks:complaint|standard-webhooks",
        ),
        ("+15558675331", "P|1e12||keyword:STOP|twilio"),
        ("+15558675332", "garbage"),
    ] {
        let a = sms(n);
        let keys = dndgate::store::keys("acme", &a);
        redis
            .cli(&[
                "HSET",
                &keys.bucket,
                &dndgate::store::field(Scope::Channel(Channel::Sms), &a),
                value,
            ])
            .unwrap();
        let v = store.lookup("acme", Channel::Sms, &a, now).await.unwrap();
        assert!(v.blocked, "{value}: the lookup fails closed");
        let applied = store
            .apply(&change(&a, StoreAction::Clear, &format!("C{n}"), now, now))
            .await
            .unwrap();
        assert_eq!(outcome(&applied), Outcome::Refused, "{value}");
        let v = store.lookup("acme", Channel::Sms, &a, now).await.unwrap();
        assert!(v.blocked, "{value}: still blocked after the refused clear");
        // A temporary block does not replace it either.
        let applied = store
            .apply(&change(
                &a,
                StoreAction::BlockTemporary,
                &format!("T{n}"),
                now,
                now,
            ))
            .await
            .unwrap();
        assert_eq!(outcome(&applied), Outcome::KeptPermanent, "{value}");
    }
}

/// The outcomes in an address's history, oldest first.
async fn outcomes(store: &Store, address: &Address) -> Vec<String> {
    store
        .history("acme", address, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|fields| {
            fields
                .into_iter()
                .find(|(k, _)| k == "outcome")
                .map(|(_, v)| v)
                .unwrap()
        })
        .collect()
}

/// A temporary record that runs out is audited (`expired`) once, in its shard's
/// order: by the sweeper when nothing else comes, or by the next write to the address
/// that finds it first, before that write's own entry.
#[tokio::test]
async fn an_expiry_is_audited_once_in_order_by_the_sweeper_or_the_next_write() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let now = dndgate::time::now_ms();
    let long_ago = now - 100 * HOUR_MS; // its 72 h block ran out 28 h ago
    let shard = |a: &Address| dndgate::store::keys("acme", a).shard() as u8;

    let a = sms("+15550009101");
    apply(
        &store,
        &a,
        ev(
            StoreAction::BlockTemporary,
            "twilio:30003",
            "SMx1",
            long_ago,
        ),
    )
    .await;
    assert_eq!(outcomes(&store, &a).await, ["applied"]);
    let swept = store
        .sweep_expiries("acme", shard(&a), now, 100)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(outcomes(&store, &a).await, ["applied", "expired"]);
    let entry = store.history("acme", &a, 100).await.unwrap().pop().unwrap();
    let field = |k: &str| entry.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        field("event_ms"),
        Some((long_ago + 72 * HOUR_MS).to_string())
    );
    assert_eq!(field("before"), field("after"));
    assert_eq!(field("reason").as_deref(), Some("twilio:30003"));
    // Once: the record is gone and a second sweep finds nothing.
    assert_eq!(
        store
            .sweep_expiries("acme", shard(&a), now, 100)
            .await
            .unwrap(),
        0
    );
    assert!(
        !store
            .lookup("acme", Channel::Sms, &a, now)
            .await
            .unwrap()
            .blocked
    );

    let b = sms("+15550009102");
    apply(
        &store,
        &b,
        ev(
            StoreAction::BlockTemporary,
            "twilio:30003",
            "SMy1",
            long_ago,
        ),
    )
    .await;
    apply(
        &store,
        &b,
        ev(
            StoreAction::BlockTemporary,
            "twilio:30005",
            "SMy2",
            now - HOUR_MS,
        ),
    )
    .await;
    assert_eq!(
        outcomes(&store, &b).await,
        ["applied", "expired", "applied"]
    );
    // The new block is live: nothing to sweep, and it blocks.
    assert_eq!(
        store
            .sweep_expiries("acme", shard(&b), now, 100)
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .lookup("acme", Channel::Sms, &b, now)
            .await
            .unwrap()
            .blocked
    );
    // A permanent block over a live temporary one takes it out of the index: no
    // expiry is ever audited for it.
    apply(
        &store,
        &b,
        ev(StoreAction::BlockPermanent, "keyword:STOP", "SMy3", now),
    )
    .await;
    let later = now + 80 * HOUR_MS;
    assert_eq!(
        store
            .sweep_expiries("acme", shard(&b), later, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        outcomes(&store, &b).await,
        ["applied", "expired", "applied", "applied"]
    );
}

/// An expiry found by a change that then writes nothing (a reply on an expired
/// temporary block) is still audited once: a later change does not audit it again.
#[tokio::test]
async fn an_expiry_found_by_a_change_that_writes_nothing_is_audited_once() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let now = dndgate::time::now_ms();
    let c = sms("+15550009103");
    apply(
        &store,
        &c,
        ev(
            StoreAction::BlockTemporary,
            "twilio:30003",
            "SMz1",
            now - 100 * HOUR_MS,
        ),
    )
    .await;
    apply(
        &store,
        &c,
        ev(StoreAction::Reachable, "inbound", "SMz2", now - HOUR_MS),
    )
    .await;
    apply(
        &store,
        &c,
        ev(StoreAction::Reachable, "inbound", "SMz3", now),
    )
    .await;
    let shard = dndgate::store::keys("acme", &c).shard() as u8;
    assert_eq!(
        store.sweep_expiries("acme", shard, now, 100).await.unwrap(),
        0
    );
    assert_eq!(outcomes(&store, &c).await, ["applied", "expired"]);
}

/// Group commit: changes that arrive together share script calls, yet each caller gets
/// its own change's reply (applied, or duplicate for the second delivery of an event),
/// and a change that fails in Redis fails alone.
#[tokio::test]
async fn changes_arriving_together_share_script_calls_and_keep_their_own_replies() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let now = dndgate::time::now_ms();
    // One address whose failure window is not a sorted set: its temporary block fails
    // with WRONGTYPE inside the script.
    let broken = sms("+15550007999");
    let fails = format!(
        "dnd:{{{}}}:fails:sms:+15550007999",
        dndgate::store::keys("acme", &broken).tag
    );
    redis.cli(&["SET", &fails, "not a zset"]).unwrap();
    let calls_before = redis.calls("evalsha") + redis.calls("eval");
    let mut set = tokio::task::JoinSet::new();
    const N: usize = 150;
    for i in 0..N {
        // Every event delivered twice at once: one applies, the other is a duplicate.
        for _ in 0..2 {
            let store = store.clone();
            set.spawn(async move {
                let a = sms(&format!("+1555000{i:04}"));
                let id = format!("SMgc{i}");
                (
                    i,
                    apply(
                        &store,
                        &a,
                        ev(StoreAction::BlockPermanent, "keyword:STOP", &id, now),
                    )
                    .await,
                )
            });
        }
    }
    let bad = {
        let (store, broken) = (store.clone(), broken.clone());
        tokio::spawn(async move {
            store
                .apply(&Change {
                    tenant: "acme",
                    address: &broken,
                    scopes: &[Scope::Channel(Channel::Sms)],
                    action: StoreAction::BlockTemporary,
                    reason: "twilio:30003",
                    provider: dndgate::providers::Provider::Twilio.source(),
                    event_id: "SMgc-broken",
                    event_ms: now,
                    received_ms: now,
                    now_ms: now,
                    temporary_ttl: Duration::from_secs(3600),
                    escalate_after: 3,
                    escalate_window: Duration::from_secs(86400),
                    actor: None,
                    evidence: None,
                    contact: None,
                })
                .await
        })
    };
    let mut applied = vec![0; N];
    let mut duplicate = vec![0; N];
    while let Some(done) = set.join_next().await {
        let (i, reply) = done.unwrap();
        match reply {
            Applied::Duplicate => duplicate[i] += 1,
            Applied::Done(d) => {
                assert_eq!(d.len(), 1);
                assert_eq!(d[0].1, Outcome::Applied, "address {i}");
                applied[i] += 1;
            }
        }
    }
    assert!(applied.iter().all(|n| *n == 1), "{applied:?}");
    assert!(duplicate.iter().all(|n| *n == 1), "{duplicate:?}");
    let bad = bad.await.unwrap();
    assert!(
        matches!(bad, Err(dndgate::store::StoreError::Unavailable(ref m)) if m.contains("WRONGTYPE")),
        "{bad:?}"
    );
    let calls = redis.calls("evalsha") + redis.calls("eval") - calls_before;
    assert!(
        calls < (2 * N + 1) as u64,
        "{calls} script calls for {} changes: nothing was batched",
        2 * N + 1
    );
    for i in 0..N {
        let a = sms(&format!("+1555000{i:04}"));
        assert!(
            store
                .lookup("acme", Channel::Sms, &a, now + 1)
                .await
                .unwrap()
                .blocked
        );
    }
    assert!(
        !store
            .lookup("acme", Channel::Sms, &broken, now + 1)
            .await
            .unwrap()
            .blocked
    );
}
