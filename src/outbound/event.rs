//! What an endpoint receives: one event per audit entry that says something an
//! automation acts on, as Standard Webhooks' payload shape (`type`, `timestamp`,
//! `data`), with a stable id.

use crate::audit::AuditEntry;
use crate::endpoint::EventType;
use crate::store::{Outcome, Record};
use serde_json::{Value, json};

/// The event an audit entry makes, or `None` for an entry no automation acts on
/// (superseded, kept permanent, refused for its time, nothing to do).
pub fn event_type(entry: &AuditEntry) -> Option<EventType> {
    match entry.outcome {
        Outcome::Refused => Some(EventType::Refused),
        Outcome::Review => Some(EventType::Review),
        Outcome::Help => Some(EventType::Help),
        Outcome::Expired => Some(EventType::Expired),
        Outcome::Applied | Outcome::Escalated => Some(if entry.dnd_enabled() {
            EventType::Enabled
        } else if entry.dnd_disabled() {
            EventType::Disabled
        } else {
            EventType::Updated
        }),
        Outcome::Superseded | Outcome::KeptPermanent | Outcome::RefusedTime | Outcome::Noop => None,
    }
}

/// One event, ready to sign and send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutEvent {
    /// Stable across retries, replays and gateway instances: the audit shard and the
    /// entry's stream id (`evt_3_1718000000415-0`). Receivers deduplicate on it.
    pub id: String,
    /// Its type.
    pub kind: EventType,
    /// The JSON body.
    pub body: String,
}

/// A record as an event shows it.
fn record_json(record: Option<&Record>, at_ms: i64) -> Value {
    match record {
        None => Value::Null,
        Some(r) => json!({
            "state": r.state.as_str(),
            "blocks": r.blocks_at(at_ms),
            "event_ms": r.event_ms,
            "expires_ms": r.expires_ms,
            "reason": r.reason,
            "source": r.source,
        }),
    }
}

impl OutEvent {
    /// The event of `entry` (read from audit shard `shard`), or `None` when the entry
    /// makes none ([`event_type`]).
    pub fn of(entry: &AuditEntry, shard: u8) -> Option<OutEvent> {
        let kind = event_type(entry)?;
        let id = format!("evt_{shard:x}_{}", entry.id);
        let body = json!({
            "id": id,
            "type": kind.as_str(),
            "timestamp": crate::time::format_rfc3339_ms(entry.event_ms),
            "data": {
                "tenant": entry.tenant,
                "contact": entry.contact,
                "channel": entry.scope.as_str(),
                "address": entry.address,
                "dnd": entry.blocked_after(),
                "before": record_json(entry.before.as_ref(), entry.event_ms),
                "after": record_json(entry.after.as_ref(), entry.event_ms),
                "action": entry.action,
                "outcome": entry.outcome.as_str(),
                "reason": entry.reason,
                "source": entry.provider,
                "event_id": entry.event_id,
                "event_ms": entry.event_ms,
                "received_ms": entry.received_ms,
                "actor": entry.actor,
                "evidence": entry.evidence,
            },
        });
        Some(OutEvent {
            id,
            kind,
            body: body.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: &str, before: &str, after: &str, event_ms: i64) -> AuditEntry {
        let fields: Vec<(String, String)> = [
            ("tenant", "acme"),
            ("scope", "sms"),
            ("address", "+14155551234"),
            ("action", "block_permanent"),
            ("outcome", outcome),
            ("before", before),
            ("after", after),
            ("reason", "keyword:STOP"),
            ("provider", "twilio"),
            ("event_id", "SM1"),
            ("event_ms", &event_ms.to_string()),
            ("received_ms", &(event_ms + 5).to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AuditEntry::parse("1718000000415-0", &fields).expect("a valid entry")
    }

    #[test]
    fn each_outcome_makes_the_event_the_contract_names() {
        let now = crate::time::now_ms();
        let p = format!("P|{}||keyword:STOP|twilio", now - 10);
        let c = format!("C|{}||keyword:START|twilio", now - 20);
        let live_t = format!("T|{}|{}|twilio:30003|twilio", now - 30, now + 60_000);
        let dead_t = format!("T|{}|{}|twilio:30003|twilio", now - 90_000, now - 30_000);
        let rows: &[(&str, &str, &str, Option<EventType>)] = &[
            ("applied", "", &p, Some(EventType::Enabled)),
            ("applied", &c, &p, Some(EventType::Enabled)),
            ("applied", &dead_t, &live_t, Some(EventType::Enabled)),
            ("applied", &p, &c, Some(EventType::Disabled)),
            ("applied", &live_t, &c, Some(EventType::Disabled)),
            ("escalated", &live_t, &p, Some(EventType::Updated)),
            ("applied", &p, &p, Some(EventType::Updated)),
            ("refused", &p, &p, Some(EventType::Refused)),
            ("review", "", "", Some(EventType::Review)),
            ("help", "", "", Some(EventType::Help)),
            ("expired", &dead_t, &dead_t, Some(EventType::Expired)),
            ("expired", &dead_t, &dead_t, Some(EventType::Expired)),
            ("superseded", &p, &p, None),
            ("kept_permanent", &p, &p, None),
            ("refused_time", "", "", None),
        ];
        for (outcome, before, after, want) in rows {
            let e = entry(outcome, before, after, now);
            assert_eq!(event_type(&e), *want, "{outcome} {before:?} -> {after:?}");
        }
    }

    #[test]
    fn the_body_carries_the_id_type_time_and_the_change() {
        let now = crate::time::now_ms();
        let p = format!("P|{now}||keyword:STOP|twilio");
        let event = OutEvent::of(&entry("applied", "", &p, now), 0xa).expect("an event");
        assert_eq!(event.id, "evt_a_1718000000415-0");
        let v: Value = serde_json::from_str(&event.body).expect("JSON");
        assert_eq!(v["id"], "evt_a_1718000000415-0");
        assert_eq!(v["type"], "dnd.enabled");
        assert_eq!(v["timestamp"], crate::time::format_rfc3339_ms(now));
        let d = &v["data"];
        assert_eq!(d["tenant"], "acme");
        assert_eq!(d["channel"], "sms");
        assert_eq!(d["address"], "+14155551234");
        assert_eq!(d["dnd"], true);
        assert_eq!(d["before"], Value::Null);
        assert_eq!(d["after"]["state"], "permanent");
        assert_eq!(d["after"]["blocks"], true);
        assert_eq!(d["reason"], "keyword:STOP");
        assert_eq!(d["source"], "twilio");
        assert_eq!(d["event_id"], "SM1");
        assert_eq!(d["contact"], Value::Null);
        assert!(OutEvent::of(&entry("superseded", &p, &p, now), 0).is_none());
    }
}
