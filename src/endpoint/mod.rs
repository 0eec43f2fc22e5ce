//! The vocabulary of events out, shared by the configuration and the delivery
//! (`crate::outbound`): a tenant's endpoints (`[[tenants.ID.endpoints]]`), the event
//! types they subscribe to, and the retry schedule ([`schedule`]).

pub mod schedule;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::event::Channel;
use crate::secret::Secret;

/// The kinds of event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// The contact is now on DND on the scope (the record blocks and did not).
    Enabled,
    /// The contact is off DND on the scope (the record blocked and does not).
    Disabled,
    /// The record changed but the contact's DND did not (a temporary block made
    /// permanent, a permanent block refreshed).
    Updated,
    /// A lift was refused: an operator clear of a permanent record without consent
    /// evidence, or an own unblock of a record something else set.
    Refused,
    /// A possible opt-out ("please stop texting me") set aside for a human.
    Review,
    /// A help request (HELP, INFO).
    Help,
    /// A temporary block ran out: the contact is off DND on the scope again, by time
    /// alone.
    Expired,
}

crate::event::names! {
    /// The event's `type`.
    EventType {
        Enabled => "dnd.enabled",
        Disabled => "dnd.disabled",
        Updated => "dnd.updated",
        Refused => "dnd.refused",
        Review => "dnd.review",
        Help => "dnd.help",
        Expired => "dnd.expired",
    }
}

/// One endpoint, checked.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id, unique within the tenant (`[a-z0-9_-]`, at most 32): in metrics, logs
    /// and the Redis keys of its delivery state.
    pub id: String,
    /// Where events are POSTed: https, or http to a loopback address (for tests).
    pub url: String,
    /// The signing secrets (`whsec_...`). Every one signs each event, so a receiver
    /// that knows any of them verifies it while a secret rotates.
    pub secrets: Vec<Secret>,
    /// The event types it takes; `None` for all.
    pub events: Option<BTreeSet<EventType>>,
    /// The channels it takes; `None` for all. An `all`-scope change reaches every
    /// channel, so it is delivered whatever this says.
    pub channels: Option<BTreeSet<Channel>>,
    /// Off: nothing is delivered and its undelivered events no longer hold the audit
    /// stream's retention.
    pub enabled: bool,
}

impl Endpoint {
    /// Does the endpoint take an event of `kind` on scope `scope` (a channel name or
    /// `all`)?
    pub fn wants(&self, kind: EventType, scope: &str) -> bool {
        let kind_ok = self.events.as_ref().is_none_or(|e| e.contains(&kind));
        let scope_ok = match (&self.channels, scope.parse::<Channel>()) {
            (None, _) => true,
            (Some(_), Err(_)) => true,
            (Some(set), Ok(channel)) => set.contains(&channel),
        };
        kind_ok && scope_ok
    }
}

/// `[[tenants.ID.endpoints]]` as written, and an endpoint made through the operator
/// API as it is stored.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// The id.
    pub id: String,
    /// The URL.
    pub url: String,
    /// The secrets as written (`whsec_...`, or `env:`/`file:` in the configuration).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Event type names; absent for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Channel names; absent for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// On or off.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Is `url` one events may go to: https anywhere, http only to a loopback host.
pub fn url_problem(url: &str) -> Option<String> {
    if url.chars().any(char::is_whitespace) {
        return Some(format!("{url:?} has white space"));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return (rest.is_empty() || rest.starts_with('/')).then(|| format!("{url:?} has no host"));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Some(format!("{url:?} must be an https:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!("{url:?}: plain http is allowed only to a loopback address (127.0.0.1, [::1], localhost); use https")
    })
}

/// Read tenant `tenant`'s endpoints; every problem goes to `problems`, naming the
/// setting.
pub fn read(
    tenant: &str,
    raw: Vec<RawEndpoint>,
    base: &Path,
    problems: &mut Vec<String>,
) -> Vec<Endpoint> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in raw.into_iter().enumerate() {
        let at = format!("tenants.{tenant}.endpoints[{i}]");
        let before = problems.len();
        if e.id.is_empty()
            || e.id.len() > 32
            || !e
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            problems.push(format!(
                "{at}.id: {:?} must be 1 to 32 of a-z, 0-9, - and _",
                e.id
            ));
        } else if !seen.insert(e.id.clone()) {
            problems.push(format!("{at}.id: {:?} is used twice in this tenant", e.id));
        }
        if let Some(p) = url_problem(&e.url) {
            problems.push(format!("{at}.url: {p}"));
        }
        if e.secrets.is_empty() {
            problems.push(format!(
                "{at}.secrets is empty: events would go unsigned (give a whsec_ secret)"
            ));
        }
        let mut secrets = Vec::new();
        for (j, spec) in e.secrets.iter().enumerate() {
            match crate::secret::resolve(spec, base) {
                Ok(s)
                    if crate::signature::decode_whsec(s.expose()).is_some_and(|k| k.len() >= 24)
                        && s.expose().starts_with(crate::signature::WHSEC_PREFIX) =>
                {
                    secrets.push(s)
                }
                Ok(_) => problems.push(format!(
                    "{at}.secrets[{j}]: write it as whsec_ and the base64 of at least 24 random bytes"
                )),
                Err(err) => problems.push(format!("{at}.secrets[{j}]: {err}")),
            }
        }
        let events = e.events.map(|names| {
            names
                .iter()
                .filter_map(|n| {
                    EventType::from_name(n).or_else(|| {
                        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                        problems.push(format!(
                            "{at}.events: {n:?} is not an event type ({})",
                            known.join(", ")
                        ));
                        None
                    })
                })
                .collect::<BTreeSet<_>>()
        });
        let channels = e.channels.map(|names| {
            names
                .iter()
                .filter_map(|n| {
                    n.parse::<Channel>()
                        .map_err(|_| {
                            problems.push(format!("{at}.channels: {n:?} is not a channel"))
                        })
                        .ok()
                })
                .collect::<BTreeSet<_>>()
        });
        if problems.len() == before {
            out.push(Endpoint {
                id: e.id,
                url: e.url,
                secrets,
                events,
                channels,
                enabled: e.enabled,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        for ok in [
            "https://crm.example.com/hooks/dnd",
            "http://127.0.0.1:9000/in",
            "http://localhost:8080/",
            "http://[::1]:9000/x",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in [
            "http://crm.example.com/hooks",
            "http://10.0.0.1/x",
            "ftp://x",
            "https://",
            "https://a b",
            "crm.example.com",
        ] {
            let p = url_problem(bad).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!p.contains('\n'), "{p}");
        }
    }

    fn raw(toml_text: &str) -> Vec<RawEndpoint> {
        #[derive(Deserialize)]
        struct T {
            endpoints: Vec<RawEndpoint>,
        }
        toml::from_str::<T>(toml_text).expect("toml").endpoints
    }

    #[test]
    fn a_good_endpoint_reads_and_filters() {
        let mut problems = Vec::new();
        let eps = read(
            "acme",
            raw(r#"
                [[endpoints]]
                id = "crm"
                url = "https://crm.example.com/dnd"
                secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
                events = ["dnd.enabled", "dnd.disabled"]
                channels = ["sms"]
            "#),
            Path::new("."),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let e = &eps[0];
        assert!(e.enabled);
        assert!(e.wants(EventType::Enabled, "sms"));
        assert!(e.wants(EventType::Enabled, "all"));
        assert!(!e.wants(EventType::Enabled, "email"));
        assert!(!e.wants(EventType::Help, "sms"));
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_setting() {
        let mut problems = Vec::new();
        let eps = read(
            "acme",
            raw(r#"
                [[endpoints]]
                id = "CRM!"
                url = "http://crm.example.com/dnd"
                secrets = ["whsec_c2hvcnQ="]
                events = ["dnd.enabeld"]
                channels = ["fax"]

                [[endpoints]]
                id = "b"
                url = "https://b.example.com"

                [[endpoints]]
                id = "b"
                url = "https://b.example.com"
                secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
            "#),
            Path::new("."),
            &mut problems,
        );
        assert!(eps.is_empty(), "{eps:?}");
        let want = [
            "tenants.acme.endpoints[0].id:",
            "tenants.acme.endpoints[0].url:",
            "tenants.acme.endpoints[0].secrets[0]:",
            "tenants.acme.endpoints[0].events: \"dnd.enabeld\"",
            "tenants.acme.endpoints[0].channels: \"fax\"",
            "tenants.acme.endpoints[1].secrets is empty",
            "tenants.acme.endpoints[2].id: \"b\" is used twice",
        ];
        assert_eq!(problems.len(), want.len(), "{problems:#?}");
        for (p, w) in problems.iter().zip(want) {
            assert!(p.starts_with(w), "{p:?} should start with {w:?}");
            assert!(!p.contains('\n'));
        }
    }
}
