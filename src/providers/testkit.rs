//! What the providers' unit tests share: payloads built over a base, the decision the
//! shipped error-code table takes on an event, and the table checks every normaliser
//! takes. Test code only (declared under `#[cfg(test)]`).

use std::fmt::Debug;

use serde_json::Value;

use crate::classify::{self, Action, KeywordPolicy, Permanence};
use crate::event::{Channel, ChannelEvent, EventKind, Source};
use crate::road::Road;
use crate::secret::Secret;

/// A permanent block.
pub(crate) const PERM: Action = Action::Block(Permanence::Permanent);
/// A temporary block.
pub(crate) const TEMP: Action = Action::Block(Permanence::Temporary);

/// `base` with the keys of the object `extra` set over it.
pub(crate) fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("extra is an object") {
        base[k] = v.clone();
    }
    base
}

/// `record` without its key `key`.
pub(crate) fn without(mut record: Value, key: &str) -> Value {
    record
        .as_object_mut()
        .expect("record is an object")
        .remove(key);
    record
}

/// What a normaliser read into `event` beside its kind: (provider, channel, address,
/// event id, event time in ms).
pub(crate) fn identity(event: &ChannelEvent) -> (Source, Channel, &str, &str, i64) {
    (
        event.provider,
        event.channel,
        event.address.as_str(),
        event.event_id.as_str(),
        event.event_time_ms,
    )
}

/// What `event` means by `R`'s shipped error-code table and the default keyword
/// policy: (action, reason).
pub(crate) fn decide<R: Road>(event: &ChannelEvent) -> (Action, String) {
    let d = classify::classify(event, &KeywordPolicy::default(), &R::ABOUT.table());
    (d.action, d.reason)
}

/// Each event's address, with what it means by `R`'s shipped error-code table and the
/// default keyword policy: (address, action, reason).
pub(crate) fn decide_each<R: Road>(events: &[ChannelEvent]) -> Vec<(String, Action, String)> {
    events
        .iter()
        .map(|e| {
            let (action, reason) = decide::<R>(e);
            (e.address.as_str().to_string(), action, reason)
        })
        .collect()
}

/// The kind of a global unsubscribe (an opt-out of every message), as a table of
/// event kinds expects it.
pub(crate) const UNSUB: Option<EventKind> = Some(EventKind::Preference {
    marketing_only: false,
    opt_out: true,
});

/// The kind of a delivery `status` with error code `code`, as a table of event kinds
/// expects it.
pub(crate) fn delivery_status(status: &str, code: &str) -> Option<EventKind> {
    Some(EventKind::DeliveryStatus {
        status: status.into(),
        error_code: Some(code.into()),
    })
}

/// Each (fields, kind): `kind_of` reads `kind` from `fields`.
pub(crate) fn assert_kinds(
    cases: &[(Value, Option<EventKind>)],
    kind_of: impl Fn(&Value) -> Option<EventKind>,
) {
    for (fields, want) in cases {
        assert_eq!(&kind_of(fields), want, "{fields}");
    }
}

/// Each (fields, action, reason): the event `normalise` reads from `fields` is decided
/// so by `R`'s shipped table.
pub(crate) fn assert_decisions<R: Road>(
    cases: &[(Value, Action, &str)],
    normalise: impl Fn(&Value) -> ChannelEvent,
) {
    for (fields, action, reason) in cases {
        let (got_action, got_reason) = decide::<R>(&normalise(fields));
        assert_eq!(
            (got_action, got_reason.as_str()),
            (*action, *reason),
            "{fields}"
        );
    }
}

/// Each (raw, fragment): `normalise` refuses `raw`, in words that contain `fragment`
/// (in any case).
pub(crate) fn assert_refusals<T: Debug>(
    cases: &[(Value, &str)],
    normalise: impl Fn(&Value) -> Result<T, String>,
) {
    for (raw, fragment) in cases {
        let why = normalise(raw).expect_err(&raw.to_string());
        assert!(why.to_lowercase().contains(fragment), "{raw}: {why}");
    }
}

/// Each of `values` as a secret (a tenant's configured secrets, tokens or keys).
pub(crate) fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|v| Secret::new(*v)).collect()
}

/// The entries of a provider's copy of research/vectors.json (`text`, as
/// `include_str!` gives it).
pub(crate) fn vectors(text: &str) -> Vec<Value> {
    serde_json::from_str(text).expect("vector file is JSON")
}

/// The value of header `name` among the `headers` of vector `v`, found in any case.
pub(crate) fn vector_header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    let headers = v["headers"].as_object().expect("the vector has headers");
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Checks that `result` is a success exactly when vector `v` says it is valid (the
/// vector's name and the result in the message if not); whether it is.
pub(crate) fn assert_vector_validity<T: Debug, E: Debug>(v: &Value, result: &Result<T, E>) -> bool {
    let want = v["expected_valid"].as_bool().expect("expected_valid");
    let name = v["name"].as_str().expect("name");
    assert_eq!(result.is_ok(), want, "{name}: {result:?}");
    want
}

/// [`assert_vector_validity`], and that a refusal is `refusal`; whether the vector is
/// valid.
pub(crate) fn assert_vector_verdict<T: Debug, E: Debug + PartialEq>(
    v: &Value,
    result: &Result<T, E>,
    refusal: E,
) -> bool {
    let valid = assert_vector_validity(v, result);
    if !valid {
        let name = v["name"].as_str().expect("name");
        assert_eq!(result.as_ref().err(), Some(&refusal), "{name}");
    }
    valid
}
