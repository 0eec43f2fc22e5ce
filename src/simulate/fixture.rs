//! A provider's fixture folder as data: `tests/providers/<name>/cases.toml`, its payload
//! files and its `gateway.toml`. The tests run every case of every folder end to end;
//! `dndgate simulate` replays the cases that name an `event`. Both read the folder with
//! this module, so what a test sends is what a user can send by hand.
//!
//! The format is described in `tests/providers/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sign::{Request, Signer};
use crate::store::{State, Verdict};

/// `cases.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What every case takes unless it says otherwise.
    #[serde(default)]
    pub defaults: Defaults,
    /// How `dndgate simulate` finds the keys and values of a real configuration.
    #[serde(default)]
    pub simulate: Simulate,
    /// The requests, in order.
    #[serde(default)]
    pub case: Vec<Case>,
}

/// `[defaults]` of a case file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `POST` unless given.
    pub method: Option<String>,
    /// The request path.
    pub path: Option<String>,
    /// Sent as `Content-Type`.
    pub content_type: Option<String>,
    /// `{{name}}` placeholders.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Extra headers, set after signing.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How to sign: a [`Signer`] as a table.
    pub sign: Option<toml::Table>,
}

/// `[simulate]`: where a real configuration keeps what the fixtures' own
/// `gateway.toml` keeps. Each value is a dotted path into the configuration file, with
/// `{tenant}` for the tenant's id (`tenants.{tenant}.twilio.auth_tokens`); where the
/// path leads to a list, its first entry counts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulate {
    /// The signing secret (`env:` and `file:` resolved), laid over `sign.key`.
    pub key: Option<String>,
    /// The provider signs with a key of its own, so a simulator cannot: it signs with
    /// the fixtures' key instead, whose public half (the first entry at this path in the
    /// folder's `gateway.toml`) the tenant must list at the same path.
    pub provider_key: Option<String>,
    /// Vars taken from the configuration (an account id the provider routes by).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Other fields of the sign table taken from the configuration (Vonage's
    /// `method`): `"path"`, or `"path | default"` for a setting that has a default.
    /// Like `key`, each replaces only what the case leaves to `[defaults.sign]`.
    #[serde(default)]
    pub sign: BTreeMap<String, String>,
    /// Why this provider cannot be simulated, and what to do instead.
    pub unsupported: Option<String>,
}

/// One request of a case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown when the case fails.
    pub name: String,
    /// The name `dndgate simulate` replays this case under.
    pub event: Option<String>,
    /// Overrides `[defaults]`.
    pub method: Option<String>,
    /// Overrides `[defaults]`.
    pub path: Option<String>,
    /// Overrides `[defaults]`.
    pub content_type: Option<String>,
    /// A payload file in the folder; none for an empty body.
    pub body: Option<String>,
    /// `{{name}}` placeholders of this case, laid over the defaults'.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Set after signing, so they may replace a header the signer set.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Laid over `defaults.sign` key by key (unless it names another scheme).
    pub sign: Option<toml::Table>,
    /// Changes the body after signing: a tampered twin.
    pub tamper: Option<Tamper>,
    /// The expected HTTP status.
    pub status: u16,
    /// A piece of text the answer must contain.
    pub answer_contains: Option<String>,
    /// Redis must be exactly as it was before the request.
    #[serde(default)]
    pub writes_nothing: bool,
    /// The DND outcome of each address, after the request.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

/// `{ replace, with }`: a change to the body after signing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tamper {
    /// The first occurrence of this...
    pub replace: String,
    /// ...becomes this.
    pub with: String,
}

/// The DND outcome for one address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `acme` unless given.
    #[serde(default = "acme")]
    pub tenant: String,
    /// The channel's name.
    pub channel: String,
    /// The address, as the lookup takes it.
    pub address: String,
    /// What the lookup must say.
    pub state: Outcome,
    /// The record's reason.
    pub reason: Option<String>,
    /// `all`, or the channel's name.
    pub scope: Option<String>,
}

fn acme() -> String {
    "acme".into()
}

/// What a lookup says of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Blocked by a permanent record.
    Permanent,
    /// Blocked by a temporary record.
    Temporary,
    /// Blocked for marketing only.
    Marketing,
    /// Not blocked; the record is there, lifted.
    Cleared,
    /// Not blocked, whatever the record.
    Allowed,
    /// Not blocked, and no record at all.
    None,
}

impl Outcome {
    /// The name in `cases.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Permanent => "permanent",
            Outcome::Temporary => "temporary",
            Outcome::Marketing => "marketing",
            Outcome::Cleared => "cleared",
            Outcome::Allowed => "allowed",
            Outcome::None => "none",
        }
    }

    /// The most precise outcome that describes `v`.
    pub fn of(v: &Verdict) -> Outcome {
        match (v.blocked, v.record.as_ref().map(|r| r.state)) {
            (true, Some(State::Permanent)) => Outcome::Permanent,
            (true, Some(State::Temporary)) => Outcome::Temporary,
            (true, Some(State::Marketing)) => Outcome::Marketing,
            (false, Some(State::Cleared)) => Outcome::Cleared,
            (false, None) => Outcome::None,
            _ => Outcome::Allowed,
        }
    }
}

impl Expect {
    /// `None` when `v` is what this expects; else what was expected and what was found.
    pub fn mismatch(&self, v: &Verdict) -> Option<String> {
        let state = v.record.as_ref().map(|r| r.state);
        let state_ok = match self.state {
            Outcome::Permanent => v.blocked && state == Some(State::Permanent),
            Outcome::Temporary => v.blocked && state == Some(State::Temporary),
            Outcome::Marketing => v.blocked && v.marketing_only && state == Some(State::Marketing),
            Outcome::Cleared => !v.blocked && state == Some(State::Cleared),
            Outcome::Allowed => !v.blocked,
            Outcome::None => !v.blocked && v.record.is_none(),
        };
        let reason_ok = self
            .reason
            .as_ref()
            .is_none_or(|want| v.record.as_ref().is_some_and(|r| &r.reason == want));
        let scope_ok = self
            .scope
            .as_ref()
            .is_none_or(|want| v.scope.is_some_and(|s| s.as_str() == want));
        if state_ok && reason_ok && scope_ok {
            return None;
        }
        let mut want = self.state.as_str().to_string();
        if let Some(r) = &self.reason {
            want.push_str(&format!(" reason={r}"));
        }
        if let Some(s) = &self.scope {
            want.push_str(&format!(" scope={s}"));
        }
        Some(format!("expected {want}, got {}", describe(v)))
    }
}

/// A verdict in a few words: `blocked=true record=Some(("P", "keyword:STOP")) scope=...`.
pub fn describe(v: &Verdict) -> String {
    format!(
        "blocked={} record={:?} scope={:?}",
        v.blocked,
        v.record
            .as_ref()
            .map(|r| (r.state.as_str(), r.reason.as_str())),
        v.scope.map(|s| s.as_str())
    )
}

/// The files of a fixture folder, by name.
pub trait Folder {
    /// The text of `name` in the folder.
    fn read(&self, name: &str) -> Result<String, String>;
}

impl Folder for std::path::PathBuf {
    fn read(&self, name: &str) -> Result<String, String> {
        std::fs::read_to_string(self.join(name)).map_err(|e| format!("{name}: {e}"))
    }
}

/// The values of one case's placeholders.
#[derive(Debug, Clone)]
pub struct Vars {
    now_ms: i64,
    uuid: String,
    own: BTreeMap<String, String>,
}

impl Vars {
    /// The case's own vars laid over the folder's `[defaults.vars]`, then `overrides`
    /// (values taken as written), each expanded once.
    pub fn new(
        defaults: &Defaults,
        case: &Case,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Vars, String> {
        let mut vars = Vars {
            now_ms: crate::time::now_ms(),
            uuid: uuid(),
            own: BTreeMap::new(),
        };
        let mut own = BTreeMap::new();
        let mut all = defaults.vars.clone();
        all.extend(case.vars.clone());
        for (name, value) in &all {
            if vars.builtin(name).is_some() {
                return Err(format!("vars.{name}: a built-in placeholder's name"));
            }
            own.insert(name.clone(), vars.expand(value)?);
        }
        own.extend(overrides.clone());
        vars.own = own;
        Ok(vars)
    }

    /// The case's var `name`, expanded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.own.get(name).map(String::as_str)
    }

    /// `now_s`, `now_ms`, `now_iso` (each with an optional `+N`/`-N` seconds), `uuid` and
    /// `uuid_hex` (the same without dashes).
    fn builtin(&self, name: &str) -> Option<String> {
        match name {
            "uuid" => return Some(self.uuid.clone()),
            "uuid_hex" => return Some(self.uuid.replace('-', "")),
            _ => {}
        }
        let (base, offset_s) = match name.find(['+', '-']) {
            Some(i) => (
                &name[..i],
                name[i..].trim_start_matches('+').parse::<i64>().ok()?,
            ),
            None => (name, 0),
        };
        let ms = self.now_ms + offset_s * 1000;
        match base {
            "now_s" => Some((ms / 1000).to_string()),
            "now_ms" => Some(ms.to_string()),
            "now_iso" => Some(crate::time::format_rfc3339_ms(ms)),
            _ => None,
        }
    }

    /// `text` with every `{{name}}` replaced; an unknown name is an error.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| format!("an unclosed {{{{ in {text:?}"))?;
            let name = rest[open + 2..open + close].trim();
            let value = self
                .builtin(name)
                .or_else(|| self.own.get(name).cloned())
                .ok_or_else(|| format!("unknown placeholder {{{{{name}}}}}"))?;
            out.push_str(&value);
            rest = &rest[open + close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A fresh random UUID (version 4 layout).
fn uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: a clock-and-counter value is still unique in this process.
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        b[..8].copy_from_slice(&crate::time::now_ms().to_be_bytes());
        b[8..].copy_from_slice(&n.to_be_bytes());
    }
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl CaseFile {
    /// Parse a `cases.toml`.
    pub fn parse(text: &str) -> Result<CaseFile, String> {
        toml::from_str(text).map_err(|e| format!("cases.toml: {e}"))
    }

    /// The case `dndgate simulate` replays as `event`.
    pub fn event(&self, event: &str) -> Option<&Case> {
        self.case.iter().find(|c| c.event.as_deref() == Some(event))
    }

    /// The events a user can replay, in the folder's order.
    pub fn events(&self) -> impl Iterator<Item = (&str, &Case)> {
        self.case
            .iter()
            .filter_map(|c| c.event.as_deref().map(|e| (e, c)))
    }

    /// The sign table of `case`: `[defaults.sign]` with the case's keys laid over it
    /// (unless the case names another scheme).
    pub fn sign_table(&self, case: &Case) -> Result<toml::Table, String> {
        let defaults = self.defaults.sign.as_ref();
        Ok(match (defaults, case.sign.as_ref()) {
            (Some(d), Some(c)) if c.get("scheme").is_none_or(|s| Some(s) == d.get("scheme")) => {
                let mut t = d.clone();
                t.extend(c.clone());
                t
            }
            (_, Some(c)) => c.clone(),
            (Some(d), None) => d.clone(),
            (None, None) => {
                return Err("no `sign` table (give one, or `scheme = \"none\"`)".into());
            }
        })
    }

    /// The method, path and unsigned request of `case` (its URL is `public_url` plus
    /// the path).
    pub fn request(
        &self,
        folder: &dyn Folder,
        case: &Case,
        vars: &Vars,
        public_url: &str,
    ) -> Result<Request, String> {
        let body = match &case.body {
            Some(file) => vars
                .expand(&folder.read(file)?)
                .map_err(|e| format!("body {file}: {e}"))?,
            None => String::new(),
        };
        let method = case
            .method
            .as_ref()
            .or(self.defaults.method.as_ref())
            .map_or("POST", String::as_str);
        let path = vars.expand(
            case.path
                .as_ref()
                .or(self.defaults.path.as_ref())
                .ok_or("no path (in the case or in [defaults])")?,
        )?;
        let mut req = Request {
            method: method.to_string(),
            url: format!("{public_url}{path}"),
            headers: Vec::new(),
            body: body.into_bytes(),
        };
        if method == "GET" && !req.body.is_empty() {
            // A GET carries its payload (a form) as the query.
            let query = String::from_utf8_lossy(&req.body).trim_end().to_string();
            let joiner = if req.url.contains('?') { '&' } else { '?' };
            req.url = format!("{}{joiner}{query}", req.url);
            req.body.clear();
        }
        if let Some(ct) = case
            .content_type
            .as_ref()
            .or(self.defaults.content_type.as_ref())
        {
            req.set_header("Content-Type", ct);
        }
        Ok(req)
    }

    /// Set the folder's and the case's extra headers on a signed request.
    pub fn set_headers(&self, case: &Case, vars: &Vars, req: &mut Request) -> Result<(), String> {
        for (name, value) in self.defaults.headers.iter().chain(&case.headers) {
            req.set_header(name, &vars.expand(value)?);
        }
        Ok(())
    }
}

/// `table` with `key_file` read into `key` and placeholders expanded.
pub fn resolve_sign_table(
    folder: &dyn Folder,
    mut table: toml::Table,
    vars: &Vars,
) -> Result<toml::Table, String> {
    if let Some(file) = table.remove("key_file") {
        let file = file.as_str().ok_or("sign.key_file: a path")?;
        let text = folder
            .read(file)
            .map_err(|e| format!("sign.key_file {e}"))?;
        table.insert("key".into(), text.into());
    }
    for (name, value) in table.iter_mut() {
        if let toml::Value::String(s) = value {
            *s = vars.expand(s).map_err(|e| format!("sign.{name}: {e}"))?;
        }
    }
    Ok(table)
}

/// A resolved sign table as a [`Signer`].
pub fn signer(table: toml::Table) -> Result<Signer, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("sign: {e}"))
}

/// The value at a dotted `path` of a TOML document (`{tenant}` replaced); a list's
/// first entry; `None` when the path leads nowhere or to no text.
pub fn lookup_path<'a>(doc: &'a toml::Table, path: &str, tenant: &str) -> Option<&'a str> {
    lookup_all(doc, path, tenant).into_iter().next()
}

/// The values of a list (or the one value) at a dotted `path`.
pub fn lookup_all<'a>(doc: &'a toml::Table, path: &str, tenant: &str) -> Vec<&'a str> {
    let path = path.replace("{tenant}", tenant);
    let mut parts = path.split('.');
    let Some(mut value) = parts.next().and_then(|p| doc.get(p)) else {
        return Vec::new();
    };
    for part in parts {
        match value.as_table().and_then(|t| t.get(part)) {
            Some(v) => value = v,
            None => return Vec::new(),
        }
    }
    match value {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_and_unknown_ones_are_errors() {
        let file = CaseFile::parse(
            r#"
[defaults]
vars = { who = "+1555{{now_s}}" }
[[case]]
name = "x"
status = 200
vars = { id = "{{uuid}}" }
"#,
        )
        .unwrap();
        let vars = Vars::new(&file.defaults, &file.case[0], &BTreeMap::new()).unwrap();
        let who = vars.get("who").unwrap();
        assert!(who.starts_with("+1555") && who.len() > 10, "{who}");
        assert_eq!(vars.get("id").unwrap().len(), 36);
        assert!(vars.expand("{{nope}}").unwrap_err().contains("nope"));
        let now_s: i64 = vars.expand("{{now_s-30}}").unwrap().parse().unwrap();
        assert!((crate::time::now_ms() / 1000 - 30 - now_s).abs() <= 1);
    }

    #[test]
    fn config_paths_read_a_first_entry_or_a_value() {
        let doc: toml::Table = toml::from_str(
            "[tenants.acme.twilio]\nauth_tokens = [\"a\", \"b\"]\n[meta]\napp_secret = \"s\"\n",
        )
        .unwrap();
        assert_eq!(
            lookup_path(&doc, "tenants.{tenant}.twilio.auth_tokens", "acme"),
            Some("a")
        );
        assert_eq!(lookup_path(&doc, "meta.app_secret", "acme"), Some("s"));
        assert_eq!(
            lookup_path(&doc, "tenants.{tenant}.twilio.auth_tokens", "globex"),
            None
        );
        assert_eq!(
            lookup_all(&doc, "tenants.acme.twilio.auth_tokens", "x"),
            ["a", "b"]
        );
    }
}
