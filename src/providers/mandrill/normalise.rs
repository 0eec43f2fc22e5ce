//! Mandrill (Mailchimp Transactional): read the verified `mandrill_events` batch and
//! turn it into email events. Pure: no clock (the time of receipt is passed in), no
//! Redis, no HTTP.
//!
//! Mandrill posts a form with one parameter, `mandrill_events`: a JSON array of up to
//! 1000 events, batched about once a minute
//! (<https://mandrill.zendesk.com/hc/en-us/articles/360038740594-Webhook-Format>). Each
//! event is read on its own: one that cannot be read is refused on its own line of the
//! 200, and one without a DND signal is skipped and counted, because Mandrill resends a
//! failed batch whole and would lose the good events with the bad one.
//!
//! What becomes a [`ChannelEvent`] on [`Channel::Email`] (the address is `msg.email`,
//! the time `ts`, Unix seconds):
//!
//! | event | becomes |
//! |---|---|
//! | `hard_bounce` | [`EventKind::DeliveryStatus`], code `hard_bounce` (see the SMTP refinement below) |
//! | `soft_bounce` | DeliveryStatus, code `soft_bounce` (temporary: SPEC section 5, and Mandrill rejects the address only for a while after one) |
//! | `reject` | DeliveryStatus, code `reject`, or `reject.<reason>` when the message carries a `reject_reason` |
//! | `spam` | [`EventKind::Complaint`] |
//! | `unsub` | [`EventKind::Preference`] opt-out, not marketing-only (the tenant's `email_unsubscribe_scope` decides its reach) |
//! | sync `blacklist`, action `add` or `change` | DeliveryStatus, code `blacklist.<reject.reason>` (`blacklist` without one); the address is `reject.email` |
//! | sync `blacklist`, action `remove` | nothing (skipped): see below |
//! | sync `whitelist` (any action) | nothing (skipped): see below |
//! | `send`, `deferral`, `open`, `click`, `inbound`, others | nothing (skipped) |
//!
//! **The SMTP refinement.** A bounce's `diag` is the receiving server's answer
//! (`smtp;550 5.1.1 ...`). When it carries an RFC 3463 enhanced status code whose
//! subject is 7 (`x.7.x`, security or policy: usually about our sender, its
//! authentication or reputation), the code becomes `hard_bounce.policy` /
//! `soft_bounce.policy`; when it is `x.2.2` (mailbox full, which behaves as transient
//! whatever its class), `hard_bounce.mailbox-full` / `soft_bounce.mailbox-full`.
//! `providers/mandrill.toml` decides what each does (research/compliance.md section
//! 2.5). `bounce_description` and `diag` are otherwise Mandrill's free text; they are
//! not part of the stored reason (which stays a short table code).
//!
//! **Why a denylist removal lifts nothing.** A `blacklist` `remove` is the Mandrill
//! account holder deleting an entry, or Mandrill expiring it: neither is the contact's
//! consent. SPEC sections 6 and 13 lift a permanent record only with the contact's own
//! opt-in or an operator's clear with consent evidence, and a temporary record expires
//! by itself; so the removal is skipped and counted, and the operator lifts the record
//! through the API with evidence where that is right. The allowlist (`whitelist`) is
//! the sender's override of Mandrill's rejections, not the contact's consent either, so
//! its changes are skipped too. Mandrill has no resubscribe event.
//!
//! **Event ids.** A message event's `_id` is the message's id, shared by every event
//! of that message (a soft bounce, then a hard bounce), so the dedup key is
//! `_id:event:ts`; a retried batch repeats it. A sync event has no id: it is keyed by
//! its content ([`crate::event::derived_event_id`]), which a retry repeats too.

use serde_json::{Map, Value};

use crate::address::Address;
use crate::classify::codes::code_word;
use crate::error::{Error, quoted};
use crate::event::{Channel, ChannelEvent, EventKind, MAX_EVENT_ID_LEN};

use super::SOURCE;

/// The form parameter that carries the batch.
pub const EVENTS_PARAM: &str = "mandrill_events";

/// The most events read from one batch: Mandrill sends at most 1000.
pub const MAX_EVENTS: usize = 1000;

/// What a batch taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events that matter for DND, in the order of the batch.
    pub events: Vec<ChannelEvent>,
    /// Events that could not be read, one line each (`event 3: ...`).
    pub rejected: Vec<String>,
    /// Events without a DND signal, one line each (`event 0: open: no DND signal`).
    pub ignored: Vec<String>,
}

/// The JSON text of `mandrill_events` in the decoded form `params`. 400 when it is
/// missing or given twice: Mandrill always sends it once, so such a request can never
/// succeed.
pub fn events_param(params: &[(String, String)]) -> Result<&str, Error> {
    let mut found = params.iter().filter(|(k, _)| k == EVENTS_PARAM);
    match (found.next(), found.next()) {
        (Some((_, json)), None) => Ok(json),
        (None, _) => Err(Error::bad_request(format!(
            "the form has no {EVENTS_PARAM} parameter: Mandrill posts its events in it"
        ))),
        (Some(_), Some(_)) => Err(Error::bad_request(format!(
            "the form has {EVENTS_PARAM} more than once: Mandrill sends it once"
        ))),
    }
}

/// Parse the batch: a JSON array. Anything else is refused whole (400): it is not
/// Mandrill's shape and would never arrive differently.
pub fn parse(json: &str) -> Result<Vec<Value>, Error> {
    crate::road::json_array(
        json.as_bytes(),
        EVENTS_PARAM,
        "Mandrill posts a JSON array of events",
    )
}

/// Normalise a batch. `received_ms` stands in for an event without a `ts`.
pub fn normalise(events: &[Value], received_ms: i64) -> Normalised {
    let mut out = Normalised::default();
    for (i, raw) in events.iter().take(MAX_EVENTS).enumerate() {
        match normalise_event(raw, received_ms) {
            Ok(Read::Event(event)) => out.events.push(event),
            Ok(Read::Ignored(why)) => out.ignored.push(format!("event {i}: {why}")),
            Err(why) => out.rejected.push(format!("event {i}: {why}")),
        }
    }
    if events.len() > MAX_EVENTS {
        out.rejected.push(format!(
            "events {MAX_EVENTS} to {}: not read (Mandrill sends at most {MAX_EVENTS} per batch)",
            events.len() - 1
        ));
    }
    out
}

/// What one event of a batch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// An event that matters for DND.
    Event(ChannelEvent),
    /// An event without a DND signal, and why.
    Ignored(String),
}

/// Normalise one event: `Err` with a one-line reason for an event we act on that
/// cannot be read.
pub fn normalise_event(raw: &Value, received_ms: i64) -> Result<Read, String> {
    let obj = raw.as_object().ok_or("it is not a JSON object")?;
    if let Some(list) = text(obj, "type") {
        return sync_event(obj, raw, list, received_ms);
    }
    let name = text(obj, "event").ok_or("it has neither an event nor a type")?;
    let msg = obj.get("msg").and_then(Value::as_object);
    let kind = match name {
        "hard_bounce" | "soft_bounce" => status(name, bounce_code(name, msg)),
        "reject" => {
            let reason = msg.and_then(|m| text(m, "reject_reason"));
            let code = match reason.filter(|r| !r.is_empty()) {
                Some(reason) => format!("reject.{}", code_word(reason)),
                None => "reject".to_string(),
            };
            status(name, code)
        }
        "spam" => EventKind::Complaint,
        "unsub" => EventKind::Preference {
            marketing_only: false,
            opt_out: true,
        },
        other => return Ok(Read::Ignored(format!("{}: no DND signal", quoted(other)))),
    };
    let msg = msg.ok_or("it has no msg object")?;
    let email = text(msg, "email").ok_or("its msg has no email")?;
    let address = Address::parse(Channel::Email, email).map_err(|e| e.to_string())?;
    let id = text(obj, "_id").or_else(|| text(msg, "_id"));
    let event_id = match (id.filter(|id| !id.is_empty()), obj.get("ts")) {
        (Some(id), Some(Value::Number(ts))) => format!("{id}:{name}:{ts}"),
        (Some(id), _) => format!("{id}:{name}"),
        (None, _) => crate::event::derived_event_id(raw),
    };
    if event_id.len() > MAX_EVENT_ID_LEN {
        return Err("its _id is too long".into());
    }
    let time = event_time(obj.get("ts"), received_ms)?;
    Ok(Read::Event(ChannelEvent::email(
        SOURCE, event_id, time, address, kind,
    )))
}

/// A sync event: a change to the account's rejection denylist (`blacklist`) or
/// allowlist (`whitelist`).
fn sync_event(
    obj: &Map<String, Value>,
    raw: &Value,
    list: &str,
    received_ms: i64,
) -> Result<Read, String> {
    let action = text(obj, "action").unwrap_or_default();
    match (list, action) {
        ("blacklist", "add" | "change") => {}
        ("blacklist", "remove") => {
            return Ok(Read::Ignored(
                "blacklist remove: a denylist removal is the account's, not the contact's consent; lift a record through the API with consent evidence".into(),
            ));
        }
        ("whitelist", _) => {
            return Ok(Read::Ignored(format!(
                "whitelist {}: the allowlist is the sender's override, not the contact's consent",
                quoted(action)
            )));
        }
        _ => {
            return Ok(Read::Ignored(format!(
                "sync {} {}: no DND signal",
                quoted(list),
                quoted(action)
            )));
        }
    }
    let entry = obj
        .get("reject")
        .and_then(Value::as_object)
        .ok_or("its blacklist entry (reject) is not an object")?;
    let email = text(entry, "email").ok_or("its blacklist entry has no email")?;
    let address = Address::parse(Channel::Email, email).map_err(|e| e.to_string())?;
    let code = match text(entry, "reason").filter(|r| !r.is_empty()) {
        Some(reason) => format!("blacklist.{}", code_word(reason)),
        None => "blacklist".to_string(),
    };
    let time = event_time(obj.get("ts"), received_ms)?;
    Ok(Read::Event(ChannelEvent::email(
        SOURCE,
        crate::event::derived_event_id(raw),
        time,
        address,
        status("blacklist", code),
    )))
}

fn status(name: &str, code: String) -> EventKind {
    EventKind::DeliveryStatus {
        status: name.to_string(),
        error_code: Some(code),
    }
}

/// `hard_bounce` or `soft_bounce`, refined by the enhanced status code of `msg.diag`.
fn bounce_code(name: &str, msg: Option<&Map<String, Value>>) -> String {
    let diag = msg.and_then(|m| text(m, "diag")).unwrap_or_default();
    match enhanced_status(diag) {
        Some((_, 7, _)) => format!("{name}.policy"),
        Some((_, 2, 2)) => format!("{name}.mailbox-full"),
        _ => name.to_string(),
    }
}

/// The first RFC 3463 enhanced status code (`class.subject.detail`, class 2, 4 or 5,
/// subject and detail of one to three digits) among the words of `diag`.
pub fn enhanced_status(diag: &str) -> Option<(u8, u16, u16)> {
    diag.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let word = word.trim_matches('.');
            let mut parts = word.split('.');
            let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || !matches!(class, "2" | "4" | "5") {
                return None;
            }
            let number = |s: &str| {
                (!s.is_empty() && s.len() <= 3)
                    .then(|| s.parse::<u16>().ok())
                    .flatten()
            };
            Some((class.parse().ok()?, number(subject)?, number(detail)?))
        })
}

/// `ts` (Unix seconds) in milliseconds; `received_ms` when absent.
fn event_time(ts: Option<&Value>, received_ms: i64) -> Result<i64, String> {
    match ts {
        None | Some(Value::Null) => Ok(received_ms),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|s| (0..100_000_000_000).contains(s))
            .map(|s| s * 1000)
            .ok_or_else(|| "its ts is not Unix seconds".to_string()),
        Some(_) => Err("its ts is not a number".into()),
    }
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str).map(str::trim)
}

/// A decoded form of `pairs`, for tests.
#[cfg(test)]
pub(super) fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Action;
    use crate::providers::mandrill::Mandrill;
    use crate::providers::testkit::{self, PERM, TEMP};
    use serde_json::json;

    const NOW: i64 = 1_700_000_100_000;

    fn one(raw: &Value) -> ChannelEvent {
        match normalise_event(raw, NOW) {
            Ok(Read::Event(e)) => e,
            other => panic!("{raw}: {other:?}"),
        }
    }

    fn message(event: &str, msg: Value) -> Value {
        json!({ "event": event, "_id": "m1", "ts": 1_700_000_000, "msg": msg })
    }

    #[test]
    fn message_events_and_their_decisions() {
        let addr = json!({ "email": "A@Example.com" });
        testkit::assert_decisions::<Mandrill>(
            &[
                (
                    message("hard_bounce", addr.clone()),
                    PERM,
                    "mandrill:hard_bounce",
                ),
                (
                    message("soft_bounce", addr.clone()),
                    TEMP,
                    "mandrill:soft_bounce",
                ),
                (message("reject", addr.clone()), PERM, "mandrill:reject"),
                (message("spam", addr.clone()), PERM, "mandrill:complaint"),
                (message("unsub", addr.clone()), PERM, "mandrill:stop"),
                (
                    message(
                        "hard_bounce",
                        json!({"email": "a@example.com", "diag": "smtp;550 5.7.1 Sender rejected by policy"}),
                    ),
                    Action::None,
                    "mandrill:hard_bounce.policy",
                ),
                (
                    message(
                        "soft_bounce",
                        json!({"email": "a@example.com", "diag": "smtp;452 4.2.2 Mailbox full"}),
                    ),
                    TEMP,
                    "mandrill:soft_bounce.mailbox-full",
                ),
                (
                    message(
                        "hard_bounce",
                        json!({"email": "a@example.com", "diag": "smtp;552 5.2.2 over quota"}),
                    ),
                    TEMP,
                    "mandrill:hard_bounce.mailbox-full",
                ),
                (
                    message(
                        "soft_bounce",
                        json!({"email": "a@example.com", "diag": "smtp;421 4.7.0 try later, reputation"}),
                    ),
                    Action::None,
                    "mandrill:soft_bounce.policy",
                ),
                (
                    message(
                        "hard_bounce",
                        json!({"email": "a@example.com", "bounce_description": "bad_mailbox", "diag": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}),
                    ),
                    PERM,
                    "mandrill:hard_bounce",
                ),
                (
                    message(
                        "reject",
                        json!({"email": "a@example.com", "reject_reason": "invalid-sender"}),
                    ),
                    Action::None,
                    "mandrill:reject.invalid-sender",
                ),
                (
                    message(
                        "reject",
                        json!({"email": "a@example.com", "reject_reason": "hard-bounce"}),
                    ),
                    PERM,
                    "mandrill:reject.hard-bounce",
                ),
            ],
            one,
        );
        let e = one(&message("hard_bounce", json!({ "email": "A@Example.com" })));
        assert_eq!(
            testkit::identity(&e),
            (
                SOURCE,
                Channel::Email,
                "a@example.com",
                "m1:hard_bounce:1700000000",
                1_700_000_000_000
            )
        );
    }

    #[test]
    fn sync_events() {
        let sync = |list: &str, action: &str, reason: Value| {
            json!({ "type": list, "action": action, "ts": 1_700_000_000,
                    "reject": { "email": "x@example.com", "reason": reason, "detail": "", "expired": false },
                    "entry": { "email": "x@example.com", "detail": "note" } })
        };
        let cases = [
            (
                "add",
                json!("hard-bounce"),
                PERM,
                "mandrill:blacklist.hard-bounce",
            ),
            (
                "change",
                json!("soft-bounce"),
                TEMP,
                "mandrill:blacklist.soft-bounce",
            ),
            ("add", json!("spam"), PERM, "mandrill:blacklist.spam"),
            ("add", json!("unsub"), PERM, "mandrill:blacklist.unsub"),
            ("add", json!("custom"), PERM, "mandrill:blacklist.custom"),
            ("add", Value::Null, PERM, "mandrill:blacklist"),
        ];
        let cases: Vec<_> = cases
            .into_iter()
            .map(|(action, reason, want, why)| (sync("blacklist", action, reason), want, why))
            .collect();
        testkit::assert_decisions::<Mandrill>(&cases, one);
        for (list, action) in [
            ("blacklist", "remove"),
            ("whitelist", "add"),
            ("whitelist", "remove"),
        ] {
            let got = normalise_event(&sync(list, action, json!("hard-bounce")), NOW);
            assert!(
                matches!(got, Ok(Read::Ignored(_))),
                "{list} {action}: {got:?}"
            );
        }
        // A sync event has no id: its content keys it, the same on a retry.
        let raw = sync("blacklist", "add", json!("hard-bounce"));
        assert_eq!(one(&raw).event_id, one(&raw.clone()).event_id);
    }

    #[test]
    fn events_without_a_dnd_signal_are_skipped() {
        for name in [
            "send",
            "deferral",
            "open",
            "click",
            "inbound",
            "something_new",
        ] {
            let got = normalise_event(&message(name, json!({"email": "a@example.com"})), NOW);
            assert!(matches!(got, Ok(Read::Ignored(_))), "{name}: {got:?}");
        }
    }

    #[test]
    fn unreadable_events_are_refused_one_by_one() {
        testkit::assert_refusals(
            &[
                (json!("text"), "not a json object"),
                (json!({"msg": {}}), "neither an event nor a type"),
                (json!({"event": "hard_bounce"}), "no msg"),
                (json!({"event": "spam", "msg": {}}), "no email"),
                (
                    json!({"event": "spam", "msg": {"email": "not an address"}}),
                    "email",
                ),
                (
                    json!({"event": "spam", "ts": "yesterday", "msg": {"email": "a@example.com"}}),
                    "ts",
                ),
                (
                    json!({"event": "spam", "_id": "x".repeat(300), "msg": {"email": "a@example.com"}}),
                    "too long",
                ),
                (json!({"type": "blacklist", "action": "add"}), "reject"),
            ],
            |raw| normalise_event(raw, NOW).map(|_| ()),
        );
        let batch = vec![
            message("hard_bounce", json!({"email": "a@example.com"})),
            json!(17),
            message("open", json!({"email": "b@example.com"})),
        ];
        let out = normalise(&batch, NOW);
        assert_eq!(out.events.len(), 1);
        assert_eq!(
            out.rejected,
            vec!["event 1: it is not a JSON object".to_string()]
        );
        assert_eq!(out.ignored.len(), 1);
        assert!(
            out.ignored[0].starts_with("event 2: \"open\""),
            "{:?}",
            out.ignored
        );
    }

    #[test]
    fn an_event_without_ts_or_id_still_counts() {
        let e = one(&json!({"event": "spam", "msg": {"email": "a@example.com"}}));
        assert_eq!(e.event_time_ms, NOW);
        assert!(e.event_id.starts_with("sha256:"), "{}", e.event_id);
    }

    #[test]
    fn the_form_and_the_batch() {
        assert_eq!(
            events_param(&form(&[("mandrill_events", "[]")])).unwrap(),
            "[]"
        );
        assert!(events_param(&form(&[])).is_err());
        assert!(
            events_param(&form(&[
                ("mandrill_events", "[]"),
                ("mandrill_events", "[]")
            ]))
            .is_err()
        );
        assert_eq!(parse("[]").unwrap(), Vec::<Value>::new());
        for bad in ["{}", "nope", ""] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::BadRequest, "{bad}");
            assert!(!e.message.contains('\n'));
        }
        let many = vec![json!(1); MAX_EVENTS + 5];
        let out = normalise(&many, NOW);
        assert_eq!(out.rejected.len(), MAX_EVENTS + 1);
    }

    #[test]
    fn enhanced_status_codes() {
        assert_eq!(
            enhanced_status("smtp;550 5.1.1 no such user"),
            Some((5, 1, 1))
        );
        assert_eq!(enhanced_status("smtp;421 4.7.0 later"), Some((4, 7, 0)));
        assert_eq!(enhanced_status("(#5.2.2)"), Some((5, 2, 2)));
        assert_eq!(enhanced_status("version 1.2.3 and 10.0.0.1"), None);
        assert_eq!(enhanced_status(""), None);
    }

    /// The research vector's batch (tests/providers/mandrill/vectors.json): a hard
    /// bounce, a complaint and an unsubscribe.
    #[test]
    fn the_vector_batch() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/mandrill/vectors.json"
        ));
        let body = vectors[0]["body"].as_str().unwrap();
        let params = crate::providers::twilio::normalise::parse_form(body.as_bytes()).unwrap();
        let events = parse(events_param(&params).unwrap()).unwrap();
        let out = normalise(&events, NOW);
        assert!(out.rejected.is_empty() && out.ignored.is_empty(), "{out:?}");
        let decided = testkit::decide_each::<Mandrill>(&out.events);
        assert_eq!(
            decided,
            vec![
                (
                    "bounce@example.com".to_string(),
                    PERM,
                    "mandrill:hard_bounce".to_string()
                ),
                (
                    "complainer@example.com".to_string(),
                    PERM,
                    "mandrill:complaint".to_string()
                ),
                (
                    "leaver@example.com".to_string(),
                    PERM,
                    "mandrill:stop".to_string()
                ),
            ]
        );
    }
}
