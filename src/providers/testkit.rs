//! What the providers' unit tests share: payloads built over a base, the decision the
//! shipped error-code table takes on an event, and the table checks every normaliser
//! takes. Test code only (declared under `#[cfg(test)]`).

use std::fmt::Debug;

use serde_json::Value;

use crate::classify::{self, Action, KeywordPolicy, Permanence};
use crate::event::ChannelEvent;
use crate::road::Road;

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

/// What `event` means by `R`'s shipped error-code table and the default keyword
/// policy: (action, reason).
pub(crate) fn decide<R: Road>(event: &ChannelEvent) -> (Action, String) {
    let d = classify::classify(event, &KeywordPolicy::default(), &R::ABOUT.table());
    (d.action, d.reason)
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
