//! The configuration: one TOML file, tenants with their secrets and policy.
//!
//! Loading resolves every secret (`env:VAR`, `file:PATH`, or inline) and checks every
//! setting, collecting all problems so `dndgate config check` can name each one, per
//! tenant and provider.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::classify::KeywordPolicy;
use crate::event::Channel;
use crate::providers::Provider;
use crate::secret::Secret;

/// The default limit on a request body (SPEC section 3).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a temporary record blocks unless the tenant says otherwise.
pub const DEFAULT_TEMPORARY_TTL: Duration = Duration::from_secs(72 * 3600);
/// How long the dedup marker of an applied event is kept: a provider retrying the same
/// event within this time is applied once.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long audit entries are kept by default (`audit_retention`).
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The shortest `dedup_ttl` accepted: the longest replay window a scheme is given
/// (SNS messages up to two hours old, Standard Webhooks five minutes). A shorter
/// memory would forget an event while a replay of it is still accepted.
pub const MIN_DEDUP_TTL: Duration = Duration::from_secs(2 * 3600);
/// The spool directory, relative to the configuration's, unless configured.
pub const DEFAULT_SPOOL_DIR: &str = "dndgate-spool";
/// The port of the managed redis-server unless configured.
pub const DEFAULT_MANAGED_PORT: u16 = 6380;
pub use crate::links::DEFAULT_LINK_EXPIRY;

/// A link expiry setting (`links.expires_after`, `tenants.ID.page.link_expires_after`):
/// a duration from one hour to ten years.
fn link_expiry_setting(name: &str, text: &str, problems: &mut Vec<String>) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if (3600..=3650 * 86400).contains(&d.as_secs()) => Some(d),
        Ok(_) => {
            problems.push(format!("{name}: {text:?} must be from 1h to 3650d"));
            None
        }
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            None
        }
    }
}

/// Where the admin listener (`/metrics`, the detailed `/readyz`) listens unless
/// configured: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9091";

/// Which listener serves the operator console (`console` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleOn {
    /// The admin listener (`admin_listen`, loopback by default): the default, so the
    /// console is reached only by who can reach the admin port.
    Admin,
    /// The public listener, beside the webhooks (behind the operators' own access
    /// rules, e.g. a VPN or an identity-aware proxy).
    Public,
    /// Not served.
    Off,
}

/// A configuration that loaded and passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where the admin listener listens (`admin_listen`; `None` for "off"): `/metrics`
    /// and the detailed `/readyz`, which name tenants and counts, never on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Which listener serves the operator console under `/console/` (`console`:
    /// "admin", the default, "public" or "off").
    pub console: ConsoleOn,
    /// The base URL providers call and sign, without a trailing slash.
    pub public_url: String,
    /// Where Redis is.
    pub redis: RedisTarget,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long a Redis call may take before the gateway answers 503 (or, for lookups,
    /// fails closed).
    pub redis_timeout: Duration,
    /// How long dedup markers are kept.
    pub dedup_ttl: Duration,
    /// How long audit entries are kept: older ones are trimmed, but never one that an
    /// enabled endpoint has not yet had delivered or dead-lettered.
    pub audit_retention: Duration,
    /// How events out are retried (`[events_out]`).
    pub events_out: crate::endpoint::schedule::Schedule,
    /// Set when the configuration still has `audit_max_len`, which no longer trims.
    pub audit_max_len_ignored: bool,
    /// Tenants by id.
    pub tenants: BTreeMap<String, Tenant>,
    /// Every provider's configuration: gateway-wide settings, tenant sections and
    /// error-code tables (`crate::providers`).
    pub providers: crate::providers::Providers,
    /// The keys unsubscribe links are signed with, when links are configured.
    pub links: Option<crate::links::KeyRing>,
    /// How contact addresses appear in log lines (`log_addresses`, default masked).
    pub log_addresses: crate::redact::LogAddresses,
    /// Connection and request limits of the HTTP server (`[limits]`).
    pub limits: ServerLimits,
    /// Where the durable spool lives (SPEC section 8): events go there when Redis is
    /// down or slow. `dndgate-spool` next to the configuration unless configured.
    pub spool_dir: PathBuf,
    /// The spool's caps (`[spool]`): past them a webhook gets 503 + Retry-After.
    pub spool_limits: SpoolLimits,
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// An existing Redis, by URL.
    Url(String),
    /// A redis-server that dndgate starts and supervises itself.
    Managed(ManagedRedis),
}

/// Settings of the managed redis-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRedis {
    /// Port on 127.0.0.1; senders read DND from here.
    pub port: u16,
    /// Data directory (append-only file), next to the configuration by default.
    pub dir: PathBuf,
    /// `appendfsync` policy: `always` makes every acknowledged write durable.
    pub appendfsync: String,
}

impl RedisTarget {
    /// The URL clients connect to.
    pub fn url(&self) -> String {
        match self {
            RedisTarget::Url(u) => u.clone(),
            RedisTarget::Managed(m) => format!("redis://127.0.0.1:{}/", m.port),
        }
    }

    /// [`RedisTarget::url`] with any password replaced by `***`, for messages.
    pub fn display_url(&self) -> String {
        crate::redact::url(&self.url()).into_owned()
    }
}

/// One tenant: its API tokens, provider secrets and policy.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant id, as in URLs and Redis keys.
    pub id: String,
    /// Bearer tokens for the operator API (several while rotating).
    pub api_tokens: Vec<Secret>,
    /// The unsubscribe page's look and behaviour.
    pub page: crate::links::page::PageSettings,
    /// Keyword lists and switches.
    pub keywords: KeywordPolicy,
    /// The DND state policy.
    pub policy: Policy,
    /// Where its DND-change events go.
    pub endpoints: Vec<crate::endpoint::Endpoint>,
}

/// A tenant's DND state policy (SPEC section 6), each setting with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long a temporary record blocks.
    pub temporary_ttl: Duration,
    /// Temporary failures within [`Policy::escalate_window`] that make the record
    /// permanent.
    pub escalate_after: u32,
    /// The window in which temporary failures are counted.
    pub escalate_window: Duration,
    /// Channels an SMS opt-out (and the opt-in that lifts it) covers besides SMS.
    pub sms_opt_out_also: Vec<Channel>,
    /// What an email unsubscribe blocks.
    pub email_unsubscribe_scope: EmailUnsubscribeScope,
}

/// What an email unsubscribe (a provider event or our link) blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailUnsubscribeScope {
    /// Every channel of the contact (an `all` record): the default.
    All,
    /// Email only.
    Email,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            temporary_ttl: DEFAULT_TEMPORARY_TTL,
            escalate_after: 3,
            escalate_window: Duration::from_secs(30 * 86400),
            // A revocation by text covers calls to the number too (FCC 24-24).
            sms_opt_out_also: vec![Channel::Voice],
            email_unsubscribe_scope: EmailUnsubscribeScope::All,
        }
    }
}

/// Caps on what the spool holds unapplied (issue 12 item 6): past any of them a new
/// change is refused (503, the provider retries later), and nothing already accepted
/// is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Unapplied bytes in all (framing included).
    pub max_bytes: u64,
    /// Unapplied records in all.
    pub max_records: u64,
    /// Unapplied bytes of one tenant.
    pub tenant_max_bytes: u64,
    /// Unapplied records of one tenant.
    pub tenant_max_records: u64,
}

impl Default for SpoolLimits {
    /// 256 MiB and 1,000,000 records in all; half of each for one tenant, so one
    /// tenant's flood leaves room for the others.
    fn default() -> SpoolLimits {
        SpoolLimits {
            max_bytes: 256 * 1024 * 1024,
            max_records: 1_000_000,
            tenant_max_bytes: 128 * 1024 * 1024,
            tenant_max_records: 500_000,
        }
    }
}

/// Why a configuration was refused: every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration {path}:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// One line per problem, naming the tenant and setting.
    pub problems: Vec<String>,
}

/// `redis_url`: one URL, or a list of a Redis Cluster's seed nodes.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRedisUrl {
    One(String),
    Seeds(Vec<String>),
}

/// The file as written. Unknown keys are refused: here by hand, because the keys
/// left over (`rest`) are the providers' gateway-wide tables (`[meta]`, `[sns]`).
#[derive(Deserialize)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    console: Option<String>,
    public_url: Option<String>,
    redis_url: Option<RawRedisUrl>,
    max_body_bytes: Option<usize>,
    redis_timeout: Option<String>,
    dedup_ttl: Option<String>,
    audit_max_len: Option<u64>,
    audit_retention: Option<String>,
    events_out: Option<RawEventsOut>,
    spool_dir: Option<String>,
    managed_redis: Option<RawManaged>,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
    #[serde(default)]
    providers: BTreeMap<String, RawProviderPolicy>,
    links: Option<RawLinks>,
    log_addresses: Option<String>,
    limits: Option<RawLimits>,
    spool: Option<RawSpool>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    /// Key id (0 to 255) -> secret.
    keys: BTreeMap<String, String>,
    /// The key id new links are signed with.
    sign_with: u8,
    /// How long a link minted without `expires_in` stays valid (default 90d).
    expires_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    name: Option<String>,
    color: Option<String>,
    confirm_url: Option<String>,
    link_mode: Option<String>,
    link_expires_after: Option<String>,
    logo_url: Option<String>,
    language: Option<String>,
    #[serde(default)]
    text: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawManaged {
    port: Option<u16>,
    dir: Option<String>,
    appendfsync: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderPolicy {
    /// Overrides of the embedded error-code table, in the same shape as
    /// `providers/twilio.toml`.
    error_codes_file: Option<String>,
}

/// A tenant as written. Unknown keys are refused by hand: the keys left over
/// (`sections`) are the providers' sections (`[tenants.ID.twilio]`, ...).
#[derive(Deserialize)]
struct RawTenant {
    #[serde(default)]
    api_tokens: Vec<String>,
    #[serde(default)]
    endpoints: Vec<crate::endpoint::RawEndpoint>,
    page: Option<RawPage>,
    temporary_ttl: Option<String>,
    escalate_after: Option<u32>,
    escalate_window: Option<String>,
    sms_opt_out_also: Option<Vec<String>>,
    email_unsubscribe_scope: Option<String>,
    #[serde(default)]
    phrase_mode: bool,
    #[serde(default)]
    yes_is_opt_in: bool,
    keywords: Option<RawKeywords>,
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
}

/// `[events_out]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventsOut {
    retry_delays: Option<Vec<String>>,
    timeout: Option<String>,
    disable_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeywords {
    opt_out: Option<Vec<String>>,
    opt_in: Option<Vec<String>>,
    help: Option<Vec<String>>,
    /// Extra lists per language, added to the lists above.
    #[serde(default)]
    languages: BTreeMap<String, RawKeywordLists>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeywordLists {
    #[serde(default)]
    opt_out: Vec<String>,
    #[serde(default)]
    opt_in: Vec<String>,
    #[serde(default)]
    help: Vec<String>,
}

pub use crate::event::valid_tenant_id;

/// Parse a duration written as a number and a unit: `90s`, `15m`, `72h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit: write e.g. 90s, 15m, 72h or 30d"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Write a duration the way the configuration does: `72h`, `30d`, `90s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Resolve a secret written inline, as `env:VAR` or as `file:PATH` (see
/// [`crate::secret::resolve`]).
pub fn resolve_secret(spec: &str, base: &Path) -> Result<Secret, String> {
    crate::secret::resolve(spec, base)
}

impl Config {
    /// Read and check the configuration at `path`, applying the `DNDGATE_LISTEN` and
    /// `DNDGATE_REDIS_URL` overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: shown.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|problems| ConfigError {
            path: shown,
            problems,
        })
    }

    /// Check configuration text; `base` is where relative paths start.
    pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![toml_error(&e)])?;
        let mut problems = Vec::new();
        // A key nobody reads is most likely a typo: said first.
        let mut raw_providers = crate::providers::RawProviders::default();
        for (key, table) in raw.rest {
            if Provider::ALL
                .iter()
                .any(|p| p.about().settings == Some(key.as_str()))
            {
                raw_providers.settings.insert(key, table);
            } else {
                problems.push(format!("unknown key {key:?} at the top level"));
            }
        }

        let listen_text = std::env::var("DNDGATE_LISTEN")
            .ok()
            .or(raw.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen = listen_text.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "listen: {listen_text:?} is not an address such as 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let admin_listen = admin_listen(raw.admin_listen, &mut problems);
        let console = match raw.console.as_deref() {
            None | Some("admin") => ConsoleOn::Admin,
            Some("public") => ConsoleOn::Public,
            Some("off") => ConsoleOn::Off,
            Some(other) => {
                problems.push(format!(
                    "console: {other:?} must be \"admin\" (the admin listener), \"public\" or \"off\""
                ));
                ConsoleOn::Off
            }
        };
        if console == ConsoleOn::Admin && admin_listen.is_none() && raw.console.is_some() {
            problems.push(
                "console = \"admin\" needs an admin listener: set admin_listen, or console = \"public\" or \"off\"".to_string(),
            );
        }

        let public_url = match raw.public_url {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => {
                problems.push(format!(
                    "public_url: {u:?} must start with https:// (or http://)"
                ));
                String::new()
            }
            None => {
                problems.push(
                    "public_url is missing: set the base URL providers call, e.g. https://hooks.example.com (providers sign it)"
                        .to_string(),
                );
                String::new()
            }
        };

        let redis = redis_target(raw.redis_url, raw.managed_redis, base, &mut problems);

        let mut duration = |name: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(v) => parse_duration(&v).unwrap_or_else(|e| {
                problems.push(format!("{name}: {e}"));
                default
            }),
        };
        let redis_timeout = duration("redis_timeout", raw.redis_timeout, Duration::from_secs(2));
        let audit_retention = duration(
            "audit_retention",
            raw.audit_retention,
            DEFAULT_AUDIT_RETENTION,
        );
        let mut delay_problems = Vec::new();
        let events_out = {
            let defaults = crate::endpoint::schedule::Schedule::default();
            let raw_out = raw.events_out.unwrap_or(RawEventsOut {
                retry_delays: None,
                timeout: None,
                disable_after: None,
            });
            let retry_delays = match raw_out.retry_delays {
                None => defaults.retry_delays.clone(),
                Some(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| {
                        parse_duration(d)
                            .map_err(|e| {
                                delay_problems.push(format!("events_out.retry_delays[{i}]: {e}"))
                            })
                            .ok()
                    })
                    .collect(),
            };
            crate::endpoint::schedule::Schedule {
                retry_delays,
                timeout: duration("events_out.timeout", raw_out.timeout, defaults.timeout),
                disable_after: duration(
                    "events_out.disable_after",
                    raw_out.disable_after,
                    defaults.disable_after,
                ),
            }
        };
        let dedup_ttl = duration("dedup_ttl", raw.dedup_ttl, DEFAULT_DEDUP_TTL);
        problems.extend(delay_problems);
        if events_out.retry_delays.is_empty() {
            problems.push(
                "events_out.retry_delays is empty: give at least one wait (the default schedule has nine, about three days in all)"
                    .to_string(),
            );
        }
        if dedup_ttl < MIN_DEDUP_TTL {
            problems.push(format!(
                "dedup_ttl: {} is shorter than {}: SNS messages are accepted for two hours, and an event forgotten sooner could be replayed inside that window",
                format_duration(dedup_ttl),
                format_duration(MIN_DEDUP_TTL)
            ));
        }
        let limits = server_limits(raw.limits, &mut problems);
        let spool_limits = spool_limits(raw.spool, &mut problems);
        let log_addresses = raw
            .log_addresses
            .as_deref()
            .map(str::parse)
            .transpose()
            .unwrap_or_else(|e| {
                problems.push(format!("log_addresses: {e}"));
                None
            })
            .unwrap_or_default();

        for (key, policy) in raw.providers {
            if !Provider::ALL.iter().any(|p| p.section() == key) {
                problems.push(format!(
                    "providers.{key}: no such provider (this gateway serves {})",
                    Provider::list()
                ));
            } else if let Some(file) = policy.error_codes_file {
                raw_providers.error_codes_files.insert(key, base.join(file));
            }
        }
        let link_expiry = raw
            .links
            .as_ref()
            .and_then(|l| l.expires_after.as_deref())
            .and_then(|t| link_expiry_setting("links.expires_after", t, &mut problems))
            .unwrap_or(DEFAULT_LINK_EXPIRY);
        let links = raw.links.and_then(|l| {
            let mut keys = Vec::new();
            for (kid, spec) in &l.keys {
                let Ok(kid_num) = kid.parse::<u8>() else {
                    problems.push(format!(
                        "links.keys: key id {kid:?} must be a number from 0 to 255"
                    ));
                    continue;
                };
                match resolve_secret(spec, base) {
                    Ok(secret) => keys.push((kid_num, secret)),
                    Err(e) => problems.push(format!("links.keys.{kid}: {e}")),
                }
            }
            crate::links::KeyRing::new(keys, l.sign_with)
                .map_err(|e| problems.push(format!("links: {e}")))
                .ok()
        });
        let mut tenants = BTreeMap::new();
        if raw.tenants.is_empty() {
            problems.push("no tenants: add a [tenants.NAME] table".to_string());
        }
        for (id, t) in raw.tenants {
            if !valid_tenant_id(&id) {
                problems.push(format!(
                    "tenants.{id}: a tenant id may hold only a-z, 0-9, _ and -, at most 64"
                ));
                continue;
            }
            let policy = tenant_policy(&id, &t, &mut problems);
            let mut secrets = |field: &str, specs: &[String]| -> Vec<Secret> {
                specs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match resolve_secret(s, base) {
                        Ok(secret) => Some(secret),
                        Err(e) => {
                            problems.push(format!("tenants.{id}.{field}[{i}]: {e}"));
                            None
                        }
                    })
                    .collect()
            };
            let api_tokens = secrets("api_tokens", &t.api_tokens);
            if api_tokens.is_empty() && t.api_tokens.is_empty() {
                problems.push(format!(
                    "tenants.{id}.api_tokens is empty: the operator API needs at least one token"
                ));
            }
            for key in t.sections.keys() {
                if !Provider::ALL.iter().any(|p| p.section() == key) {
                    problems.push(format!(
                        "tenants.{id}: unknown key {key:?} (a provider's section is one of {})",
                        Provider::ALL
                            .iter()
                            .map(|p| p.section())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            raw_providers.sections.insert(id.clone(), t.sections);
            let endpoints = crate::endpoint::read(&id, t.endpoints, base, &mut problems);
            let page = {
                let defaults = crate::links::page::PageSettings {
                    name: id.clone(),
                    link_expiry,
                    ..Default::default()
                };
                match &t.page {
                    None => defaults,
                    Some(p) => {
                        if let Some(c) = &p.color
                            && !(c.starts_with('#')
                                && c.len() <= 9
                                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()))
                        {
                            problems.push(format!(
                                "tenants.{id}.page.color: {c:?} is not a colour like #0b5fff"
                            ));
                        }
                        if let Some(u) = &p.confirm_url
                            && !u.starts_with("https://")
                            && !u.starts_with("http://")
                        {
                            problems.push(format!(
                                "tenants.{id}.page.confirm_url: {u:?} must be an http(s) URL"
                            ));
                        }
                        let immediate = match p.link_mode.as_deref() {
                            None | Some("confirm") => false,
                            Some("immediate") => true,
                            Some(other) => {
                                problems.push(format!("tenants.{id}.page.link_mode: {other:?} must be \"confirm\" or \"immediate\""));
                                false
                            }
                        };
                        if let Some(u) = &p.logo_url
                            && (!u.starts_with("https://") || u.contains(char::is_whitespace))
                        {
                            problems.push(format!(
                                "tenants.{id}.page.logo_url: {u:?} must be an https URL"
                            ));
                        }
                        let text = crate::links::page::Texts::builtin(
                            p.language.as_deref().unwrap_or("en"),
                        )
                        .map_err(|e| format!("tenants.{id}.page.language: {e}"))
                        .and_then(|t| {
                            t.with_overrides(&p.text)
                                .map_err(|e| format!("tenants.{id}.page.text: {e}"))
                        })
                        .unwrap_or_else(|e| {
                            problems.push(e);
                            crate::links::page::Texts::default()
                        });
                        crate::links::page::PageSettings {
                            name: p.name.clone().unwrap_or(defaults.name),
                            color: p.color.clone().unwrap_or(defaults.color),
                            logo_url: p.logo_url.clone(),
                            text,
                            confirm_url: p.confirm_url.clone(),
                            immediate,
                            link_expiry: p
                                .link_expires_after
                                .as_deref()
                                .and_then(|t| {
                                    link_expiry_setting(
                                        &format!("tenants.{id}.page.link_expires_after"),
                                        t,
                                        &mut problems,
                                    )
                                })
                                .unwrap_or(defaults.link_expiry),
                        }
                    }
                }
            };
            let keywords = match keyword_policy(t.keywords, t.phrase_mode, t.yes_is_opt_in) {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("tenants.{id}.keywords: {e}"));
                    KeywordPolicy::default()
                }
            };
            tenants.insert(
                id.clone(),
                Tenant {
                    id,
                    api_tokens,
                    page,
                    keywords,
                    policy,
                    endpoints,
                },
            );
        }

        let providers = {
            let mut cx = crate::road::ConfigCx::new(base, &mut problems);
            crate::providers::Providers::parse(raw_providers, &mut cx)
        };

        if problems.is_empty() {
            Ok(Config {
                listen,
                admin_listen,
                console,
                public_url,
                redis,
                max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                redis_timeout,
                dedup_ttl,
                audit_retention,
                events_out,
                audit_max_len_ignored: raw.audit_max_len.is_some(),
                tenants,
                providers,
                links,
                log_addresses,
                limits,
                spool_dir: base.join(raw.spool_dir.as_deref().unwrap_or(DEFAULT_SPOOL_DIR)),
                spool_limits,
            })
        } else {
            Err(problems)
        }
    }

    /// The store settings this configuration asks for.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            timeout: self.redis_timeout,
            dedup_ttl: self.dedup_ttl,
        }
    }

    /// What is allowed but worth an operator's attention, one line each, for
    /// `config check` and the start of `serve`. Never contains a secret.
    ///
    /// Tenants that list the same Mailgun signing key: Mailgun's key is account-wide,
    /// so either tenant's URL accepts requests signed for the other, and a token is
    /// claimed once for the key, on whichever path it reaches first. Tenants that list
    /// WhatsApp business account ids but no phone number ids: WhatsApp messages are
    /// routed by their phone number id alone, so none would reach them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.providers.warnings();
        if self.audit_max_len_ignored {
            warnings.push(format!(
                "audit_max_len is ignored: the audit stream is trimmed by age (audit_retention, now {}), and never past an entry an enabled endpoint has not had; remove the setting",
                format_duration(self.audit_retention)
            ));
        }
        warnings
    }
}

/// What a client of the store (the `check` verb) needs from the configuration: where
/// Redis is and which tenants exist. Secrets are not resolved, so a sender's machine
/// needs none of the providers' tokens.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Where Redis is.
    pub redis: RedisTarget,
    /// Longest wait for one Redis call.
    pub timeout: Duration,
    /// The configured tenant ids.
    pub tenants: Vec<String>,
}

impl Config {
    /// Read only the Redis settings and tenant ids of the configuration at `path`.
    pub fn load_redis_only(path: &Path) -> Result<RedisSettings, ConfigError> {
        let shown = path.display().to_string();
        let fail = |problems| ConfigError {
            path: shown.clone(),
            problems,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| fail(vec![toml_error(&e)]))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let redis = redis_target(raw.redis_url, raw.managed_redis, base, &mut problems);
        let timeout = match raw.redis_timeout.as_deref().map(parse_duration) {
            None => Duration::from_secs(2),
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                problems.push(format!("redis_timeout: {e}"));
                Duration::from_secs(2)
            }
        };
        if problems.is_empty() {
            Ok(RedisSettings {
                redis,
                timeout,
                tenants: raw.tenants.into_keys().collect(),
            })
        } else {
            Err(fail(problems))
        }
    }
}

fn toml_error(e: &toml::de::Error) -> String {
    e.to_string()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn redis_target(
    configured: Option<RawRedisUrl>,
    managed: Option<RawManaged>,
    base: &Path,
    problems: &mut Vec<String>,
) -> RedisTarget {
    let configured = match configured {
        None => None,
        Some(RawRedisUrl::One(url)) => Some(url),
        // A list is a cluster's seed nodes, whatever its length.
        Some(RawRedisUrl::Seeds(seeds)) => match crate::store::cluster_url(&seeds) {
            Ok(url) => Some(url),
            Err(e) => {
                problems.push(format!("redis_url: {e}"));
                return RedisTarget::Url(seeds.join(","));
            }
        },
    };
    let redis_url = std::env::var("DNDGATE_REDIS_URL")
        .ok()
        .or(configured)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_string());
    if redis_url == "managed" {
        let m = managed.unwrap_or_default();
        let appendfsync = m.appendfsync.unwrap_or_else(|| "always".to_string());
        if !["always", "everysec"].contains(&appendfsync.as_str()) {
            problems.push(format!(
                "managed_redis.appendfsync: {appendfsync:?} must be \"always\" or \"everysec\""
            ));
        }
        RedisTarget::Managed(ManagedRedis {
            port: m.port.unwrap_or(DEFAULT_MANAGED_PORT),
            dir: base.join(m.dir.unwrap_or_else(|| "dndgate-data".to_string())),
            appendfsync,
        })
    } else if ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .chain(&crate::store::CLUSTER_SCHEMES)
        .any(|p| redis_url.starts_with(p))
    {
        if let Err(e) = crate::store::parse_target(&redis_url) {
            problems.push(format!("redis_url: {e}"));
        }
        if managed.is_some() {
            problems
                .push("managed_redis is set but redis_url is not \"managed\": remove one".into());
        }
        RedisTarget::Url(redis_url)
    } else {
        problems.push(format!(
            "redis_url: {redis_url:?} must be \"managed\", a redis:// URL, a redis+cluster:// URL or a list of a cluster's redis:// URLs"
        ));
        RedisTarget::Url(redis_url)
    }
}

fn tenant_policy(id: &str, t: &RawTenant, problems: &mut Vec<String>) -> Policy {
    let defaults = Policy::default();
    let mut duration = |name: &str, value: &Option<String>, default: Duration| match value {
        None => default,
        Some(v) => match parse_duration(v) {
            Ok(d) if d >= Duration::from_secs(60) => d,
            Ok(_) => {
                problems.push(format!("tenants.{id}.{name}: {v:?} is under a minute"));
                default
            }
            Err(e) => {
                problems.push(format!("tenants.{id}.{name}: {e}"));
                default
            }
        },
    };
    let temporary_ttl = duration("temporary_ttl", &t.temporary_ttl, defaults.temporary_ttl);
    let escalate_window = duration(
        "escalate_window",
        &t.escalate_window,
        defaults.escalate_window,
    );
    let escalate_after = match t.escalate_after {
        Some(0) => {
            problems.push(format!(
                "tenants.{id}.escalate_after: 0 would make every temporary failure permanent; use 1 or more"
            ));
            defaults.escalate_after
        }
        Some(n) => n,
        None => defaults.escalate_after,
    };
    let sms_opt_out_also = match &t.sms_opt_out_also {
        None => defaults.sms_opt_out_also,
        Some(names) => names
            .iter()
            .filter_map(|n| match n.parse::<Channel>() {
                Ok(Channel::Sms) => None,
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("tenants.{id}.sms_opt_out_also: {e}"));
                    None
                }
            })
            .collect(),
    };
    let email_unsubscribe_scope = match t.email_unsubscribe_scope.as_deref() {
        None | Some("all") => EmailUnsubscribeScope::All,
        Some("email") => EmailUnsubscribeScope::Email,
        Some(other) => {
            problems.push(format!(
                "tenants.{id}.email_unsubscribe_scope: {other:?} must be \"all\" or \"email\""
            ));
            EmailUnsubscribeScope::All
        }
    };
    Policy {
        temporary_ttl,
        escalate_after,
        escalate_window,
        sms_opt_out_also,
        email_unsubscribe_scope,
    }
}

fn keyword_policy(
    raw: Option<RawKeywords>,
    phrase_mode: bool,
    yes_is_opt_in: bool,
) -> Result<KeywordPolicy, String> {
    let defaults = KeywordPolicy::default();
    let (mut opt_out, mut opt_in, mut help) = match raw.as_ref() {
        None => (defaults.opt_out, defaults.opt_in, defaults.help),
        Some(k) => (
            k.opt_out.clone().unwrap_or(defaults.opt_out),
            k.opt_in.clone().unwrap_or(defaults.opt_in),
            k.help.clone().unwrap_or(defaults.help),
        ),
    };
    for lists in raw.iter().flat_map(|k| k.languages.values()) {
        opt_out.extend(lists.opt_out.iter().cloned());
        opt_in.extend(lists.opt_in.iter().cloned());
        help.extend(lists.help.iter().cloned());
    }
    // The same word listed twice in one list (a default and a language list) is
    // harmless; the same word in two lists is the error KeywordPolicy reports.
    for list in [&mut opt_out, &mut opt_in, &mut help] {
        let mut seen = std::collections::BTreeSet::new();
        list.retain(|w| seen.insert(crate::classify::normalize_text(w)));
    }
    KeywordPolicy::new(&opt_out, &opt_in, &help, phrase_mode)
        .and_then(|k| k.with_yes_opt_in(yes_is_opt_in))
        .map_err(|e| e.to_string())
}

/// Connection and request limits of the HTTP server: the `[limits]` table. The
/// defaults are safe for a gateway on the public internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// A client has this long to send a request's headers; also how long an idle
    /// keep-alive connection stays open (slowloris).
    pub header_read_timeout: Duration,
    /// A client has this long to send a request's body once its headers are in.
    pub body_read_timeout: Duration,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes: 431 beyond it.
    pub max_header_bytes: usize,
    /// Most header fields in one request: 431 beyond it.
    pub max_headers: usize,
    /// Requests served on one keep-alive connection before it is closed.
    pub max_requests_per_connection: u64,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_requests_per_connection: 1000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_requests_per_connection: Option<u64>,
}

fn server_limits(raw: Option<RawLimits>, problems: &mut Vec<String>) -> ServerLimits {
    let default = ServerLimits::default();
    let Some(raw) = raw else { return default };
    let mut duration = |name: &str, value: Option<String>, default: Duration| match value
        .as_deref()
        .map(parse_duration)
    {
        None => default,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            problems.push(format!("limits.{name} must be longer than 0s"));
            default
        }
        Some(Err(e)) => {
            problems.push(format!("limits.{name}: {e}"));
            default
        }
    };
    let header_read_timeout = duration(
        "header_read_timeout",
        raw.header_read_timeout,
        default.header_read_timeout,
    );
    let body_read_timeout = duration(
        "body_read_timeout",
        raw.body_read_timeout,
        default.body_read_timeout,
    );
    let mut at_least = |name: &str, value: Option<u64>, min: u64, default: u64| match value {
        None => default,
        Some(v) if v >= min => v,
        Some(v) => {
            problems.push(format!("limits.{name} is {v}: it must be at least {min}"));
            default
        }
    };
    let max_connections = at_least(
        "max_connections",
        raw.max_connections.map(|v| v as u64),
        1,
        default.max_connections as u64,
    ) as usize;
    let max_header_bytes = at_least(
        "max_header_bytes",
        raw.max_header_bytes.map(|v| v as u64),
        1024,
        default.max_header_bytes as u64,
    ) as usize;
    let max_headers = at_least(
        "max_headers",
        raw.max_headers.map(|v| v as u64),
        8,
        default.max_headers as u64,
    ) as usize;
    let max_requests_per_connection = at_least(
        "max_requests_per_connection",
        raw.max_requests_per_connection,
        1,
        default.max_requests_per_connection,
    );
    ServerLimits {
        header_read_timeout,
        body_read_timeout,
        max_connections,
        max_header_bytes,
        max_headers,
        max_requests_per_connection,
    }
}

/// `admin_listen` (`DNDGATE_ADMIN_LISTEN` overrides): an address, or "off" for no
/// admin listener; loopback by default.
fn admin_listen(raw: Option<String>, problems: &mut Vec<String>) -> Option<SocketAddr> {
    let text = std::env::var("DNDGATE_ADMIN_LISTEN")
        .ok()
        .or(raw)
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_string());
    if text == "off" {
        return None;
    }
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "admin_listen: {text:?} is not an address such as {DEFAULT_ADMIN_LISTEN}, or \"off\""
            ));
            None
        }
    }
}

/// `[spool]`: caps on what the spool holds unapplied (issue 12 item 6).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    max_bytes: Option<u64>,
    max_records: Option<u64>,
    tenant_max_bytes: Option<u64>,
    tenant_max_records: Option<u64>,
}

fn spool_limits(raw: Option<RawSpool>, problems: &mut Vec<String>) -> SpoolLimits {
    let default = SpoolLimits::default();
    let Some(raw) = raw else { return default };
    let mut positive = |name: &str, value: Option<u64>, default: u64| match value {
        None => default,
        Some(0) => {
            problems.push(format!("spool.{name} must be at least 1"));
            default
        }
        Some(v) => v,
    };
    let max_bytes = positive("max_bytes", raw.max_bytes, default.max_bytes);
    let max_records = positive("max_records", raw.max_records, default.max_records);
    // A tenant's caps default to half of the overall ones, as configured.
    let tenant_max_bytes = positive(
        "tenant_max_bytes",
        raw.tenant_max_bytes,
        max_bytes.div_ceil(2),
    );
    let tenant_max_records = positive(
        "tenant_max_records",
        raw.tenant_max_records,
        max_records.div_ceil(2),
    );
    if tenant_max_bytes > max_bytes {
        problems.push(format!(
            "spool.tenant_max_bytes ({tenant_max_bytes}) is larger than spool.max_bytes ({max_bytes})"
        ));
    }
    if tenant_max_records > max_records {
        problems.push(format!(
            "spool.tenant_max_records ({tenant_max_records}) is larger than spool.max_records ({max_records})"
        ));
    }
    SpoolLimits {
        max_bytes,
        max_records,
        tenant_max_bytes,
        tenant_max_records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra_tenant: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "public_url = \"https://hooks.example.com\"\n[tenants.acme]\napi_tokens = [\"t\"]\n{extra_tenant}\n"
        );
        Config::parse(&text, Path::new("."))
    }

    /// Issue 12 item 9: a WhatsApp change is routed by its own phone number id alone
    /// (by the business account only when the change names no number, which a message
    /// change never does), so a tenant that lists business account ids but no phone
    /// number ids would silently lose every WhatsApp STOP: the configuration says so.
    #[test]
    fn item_09_business_accounts_without_phone_numbers_are_warned_about() {
        let meta = |ids: &str| {
            let text = format!(
                "public_url = \"https://hooks.example.com\"\n[meta]\napp_secrets = [\"s\"]\nverify_tokens = [\"v\"]\n[tenants.acme]\napi_tokens = [\"t\"]\n[tenants.acme.meta]\n{ids}\n"
            );
            Config::parse(&text, Path::new(".")).unwrap().warnings()
        };
        let warned = meta("whatsapp_business_account_ids = [\"102290129340398\"]");
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("acme") && warned[0].contains("whatsapp_phone_number_ids"),
            "{warned:?}"
        );
        for fine in [
            "whatsapp_business_account_ids = [\"102290129340398\"]\nwhatsapp_phone_number_ids = [\"106540352242922\"]",
            "whatsapp_phone_number_ids = [\"106540352242922\"]",
            "page_ids = [\"1111111111\"]",
        ] {
            assert_eq!(meta(fine), Vec::<String>::new(), "{fine}");
        }
    }

    #[test]
    fn durations_both_ways() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("72h", 259_200),
            ("30d", 2_592_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "72", "h", "3 fortnights", "-1h", "1y"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_inline_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        assert_eq!(
            resolve_secret("inline", dir.path()).unwrap().expose(),
            "inline"
        );
        assert_eq!(
            resolve_secret("file:token", dir.path()).unwrap().expose(),
            "from-file"
        );
        assert!(
            resolve_secret("file:missing", dir.path())
                .unwrap_err()
                .contains("cannot read")
        );
        assert!(
            resolve_secret("env:DNDGATE_SURELY_UNSET_42", dir.path())
                .unwrap_err()
                .contains("not set")
        );
        assert!(resolve_secret("", dir.path()).is_err());
    }

    #[test]
    fn policy_defaults_and_settings() {
        let config = parse("").unwrap();
        let policy = &config.tenants["acme"].policy;
        assert_eq!(*policy, Policy::default());
        assert_eq!(policy.sms_opt_out_also, [Channel::Voice]);
        let config = parse(
            "temporary_ttl = \"24h\"\nescalate_after = 5\nescalate_window = \"7d\"\nsms_opt_out_also = [\"voice\", \"whatsapp\"]\nemail_unsubscribe_scope = \"email\"",
        )
        .unwrap();
        let policy = &config.tenants["acme"].policy;
        assert_eq!(policy.temporary_ttl, Duration::from_secs(86400));
        assert_eq!(
            (policy.escalate_after, policy.escalate_window),
            (5, Duration::from_secs(7 * 86400))
        );
        assert_eq!(policy.sms_opt_out_also, [Channel::Voice, Channel::Whatsapp]);
        assert_eq!(policy.email_unsubscribe_scope, EmailUnsubscribeScope::Email);
    }

    #[test]
    fn keyword_languages_add_to_the_lists() {
        let config = parse(
            "yes_is_opt_in = true\n[tenants.acme.keywords.languages.de]\nopt_out = [\"Stopp\", \"STOP\"]\nhelp = [\"Hilfe\"]",
        )
        .unwrap();
        let k = &config.tenants["acme"].keywords;
        assert!(k.opt_out.iter().any(|w| w == "STOPP"));
        assert!(k.opt_out.iter().any(|w| w == "ARRET"), "defaults kept");
        assert!(k.help.iter().any(|w| w == "HILFE"));
        assert!(k.yes_is_opt_in());
    }

    #[test]
    fn every_problem_is_named_per_tenant() {
        let problems = parse(
            "escalate_after = 0\nsms_opt_out_also = [\"fax\"]\nemail_unsubscribe_scope = \"some\"\ntemporary_ttl = \"30s\"\n[tenants.acme.keywords]\nopt_in = [\"STOP\"]",
        )
        .unwrap_err();
        for needle in [
            "tenants.acme.escalate_after",
            "tenants.acme.sms_opt_out_also",
            "tenants.acme.email_unsubscribe_scope",
            "tenants.acme.temporary_ttl",
            "tenants.acme.keywords",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} not in {problems:?}"
            );
        }
        let problems = Config::parse(
            "public_url = \"x\"\n[tenants.\"Bad Id\"]\napi_tokens = [\"t\"]",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("public_url")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("tenants.Bad Id")),
            "{problems:?}"
        );
        let problems = Config::parse("publik_url = \"x\"", Path::new(".")).unwrap_err();
        assert!(problems[0].contains("publik_url"), "{problems:?}");
    }

    #[test]
    fn redis_url_names_a_server_or_a_cluster() {
        let with = |url: &str| {
            Config::parse(
                &format!(
                    "public_url = \"https://h.example.com\"\nredis_url = {url}\n[tenants.acme]\napi_tokens = [\"t\"]\n"
                ),
                Path::new("."),
            )
        };
        let url = |url: &str| with(url).unwrap().redis.url();
        assert_eq!(url("\"redis://10.0.0.1:6379/\""), "redis://10.0.0.1:6379/");
        assert_eq!(
            url("\"redis+cluster://10.0.0.1:7000,10.0.0.2:7000\""),
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
        );
        // A list is a cluster's seed nodes.
        assert_eq!(
            url("[\"redis://:pw@10.0.0.1:7000\", \"redis://:pw@10.0.0.2:7000\"]"),
            "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000/"
        );
        for (bad, needle) in [
            (
                "[\"redis://:a@h:1\", \"redis://:b@h:2\"]",
                "share one scheme",
            ),
            ("[]", "empty list"),
            ("[\"http://h:1\"]", "not a redis:// or rediss:// URL"),
            ("\"redis+cluster:///\"", "at least one node"),
            ("\"http://h:1\"", "redis+cluster://"),
        ] {
            let problems = with(bad).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("redis_url") && p.contains(needle)),
                "{bad}: {problems:?}"
            );
        }
    }

    #[test]
    fn page_branding_and_words() {
        let problems = parse(
            "[tenants.acme.page]\ncolor = \"red\"\nlogo_url = \"http://x/logo.png\"\nlanguage = \"tlh\"\nlink_mode = \"now\"",
        )
        .unwrap_err();
        for needle in [
            "tenants.acme.page.color",
            "tenants.acme.page.logo_url",
            "tenants.acme.page.language: \"tlh\" is not a built-in language",
            "tenants.acme.page.link_mode",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} not in {problems:?}"
            );
        }
        let problems = parse(
            "[tenants.acme.page]\nlanguage = \"es\"\n[tenants.acme.page.text]\nbutton = \"x\"",
        )
        .unwrap_err();
        assert!(
            problems[0].contains("tenants.acme.page.text: \"button\" is not a page text"),
            "{problems:?}"
        );
        let config = parse(
            "[tenants.acme.page]\nlanguage = \"es\"\nlogo_url = \"https://cdn.example/a.png\"\n[tenants.acme.page.text]\nunsubscribe = \"Baja\"",
        )
        .unwrap();
        let page = &config.tenants["acme"].page;
        assert_eq!(page.text.language(), "es");
        assert_eq!(page.logo_url.as_deref(), Some("https://cdn.example/a.png"));
        let html = crate::links::page::preferences(page, "a@b.example", &[]);
        assert!(html.contains(">Baja</button>") && html.contains("Mensajes de acme"));
    }
}
