//! A provider's road: what the house hands a provider and what the provider hands back.
//!
//! This is vocabulary. A provider folder (`src/providers/<name>/`) implements [`Road`]
//! with these types and nothing of the house's upper floors: it gets the request
//! ([`WebhookRequest`]), its own configuration ([`ProviderConfig`]) and a [`Host`] for
//! the few things it may ask of the house (a one-time token claim, an outbound GET),
//! and it fills a [`Delivery`]: which tenant, which events for which tenant, what it
//! refused or skipped, and how to answer. The pipeline classifies, applies (or spools)
//! and answers; the registry (`crate::providers`) dispatches by provider.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::classify::ErrorTable;
use crate::error::{Error, Kind};
use crate::event::{ChannelEvent, Source};
use crate::fetch::Fetch;
use crate::secret::Secret;

/// A webhook request as the server received it: no hyper types. Its `Debug` shows
/// header names only and the body's length, never credentials or addresses.
#[derive(Clone)]
pub struct WebhookRequest {
    /// How the provider called: POST, or GET with the parameters in the query (only
    /// for a provider whose [`About::get_webhooks`] is set).
    pub method: WebhookMethod,
    /// The provider segment of the path.
    pub provider: String,
    /// The tenant segment of the path, when the provider posts per tenant.
    pub tenant: Option<String>,
    /// Path and query exactly as received; with the configured public URL in front it
    /// is the URL the provider signed.
    pub path_and_query: String,
    /// The media type of the body, lower-cased, without parameters.
    pub content_type: Option<String>,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// The method of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMethod {
    /// A body (almost every provider, always).
    Post,
    /// Parameters in the query (Vonage's SMS API and Plivo, when an account picks GET).
    Get,
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("method", &self.method)
            .field("provider", &self.provider)
            .field("tenant", &self.tenant)
            .field("content_type", &self.content_type)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl WebhookRequest {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw query string (after `?`; empty without one).
    pub fn query(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or("", |(_, query)| query)
    }

    /// Refuse (415) a body whose media type is not one `about` accepts, in one line
    /// that says what the provider sends ("content type text/plain is not accepted:
    /// telnyx posts application/json").
    pub fn require_content_type(&self, about: &About) -> Result<(), Error> {
        if self.method == WebhookMethod::Get {
            // A GET carries its parameters in the query and no body to type.
            return Ok(());
        }
        match self.content_type.as_deref() {
            Some(t) if about.accepts.contains(&t) => Ok(()),
            other => Err(Error::new(
                Kind::UnsupportedMediaType,
                format!(
                    "content type {} is not accepted: {} posts {}{}{}",
                    other.unwrap_or("(none)"),
                    about.name,
                    about.accepts.join(" or "),
                    if about.accepts_note.is_empty() {
                        ""
                    } else {
                        "; "
                    },
                    about.accepts_note,
                ),
            )),
        }
    }
}

/// What the server sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Seconds for a `Retry-After` header (503 only).
    pub retry_after: Option<u32>,
    /// A `Location` header (303 after a preference form).
    pub location: Option<String>,
    /// A `WWW-Authenticate` header (a 401 from a provider that authenticates with
    /// HTTP basic auth, so a person testing with curl learns what to send).
    pub www_authenticate: Option<&'static str>,
}

impl Answer {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            retry_after: None,
            location: None,
            www_authenticate: None,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer {
            content_type: "application/json",
            ..Answer::text(status, body.to_string())
        }
    }

    /// The answer for an error on a webhook route: its status and one line of text
    /// (and `Retry-After` on a 503, and the challenge the error names on a 401).
    pub fn from_error(e: &Error) -> Answer {
        let mut answer = Answer::text(e.kind.status(), format!("{}\n", e.message));
        if e.kind == Kind::Unavailable {
            answer.retry_after = Some(5);
        }
        if e.kind == Kind::Unauthorized {
            answer.www_authenticate = e.challenge;
        }
        answer
    }
}

/// How a road wants a request that went through answered (the answer to an error is
/// always [`Answer::from_error`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reply {
    /// 200 with one line: how many events were applied, and one line per part
    /// refused, skipped or for no tenant.
    #[default]
    Summary,
    /// 200 with an empty TwiML document: Twilio sends no reply to the contact.
    Twiml,
    /// 200 with an empty body.
    Empty,
    /// 200 with this text (a handshake-like message, e.g. an SNS subscription).
    Text(String),
}

/// An empty TwiML document: Twilio sends no reply to the contact.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// One event and the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The tenant id (a configured tenant: the road found it in its configuration).
    pub tenant: String,
    /// The event.
    pub event: ChannelEvent,
}

/// What a road hands back: filled as the road goes, so even a refused request says
/// which tenant it was for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The tenant, once the road knows it (a shared URL may carry events of several:
    /// then the first).
    pub tenant: Option<String>,
    /// When the request was received (milliseconds since the epoch), read once by the
    /// road from [`crate::time::now_ms`]: event times are clamped to it.
    pub received_ms: i64,
    /// The events to classify and apply, in order.
    pub events: Vec<Routed>,
    /// Parts of a batch that could not be read, one line each.
    pub rejected: Vec<String>,
    /// Records that carry no DND signal, one line each.
    pub skipped: Vec<String>,
    /// Events for accounts no tenant owns, one line each.
    pub unrouted: Vec<String>,
    /// How to answer.
    pub reply: Reply,
}

impl Delivery {
    /// Queue `events` for `tenant`, in order.
    pub fn push(&mut self, tenant: &str, events: impl IntoIterator<Item = ChannelEvent>) {
        self.events.extend(events.into_iter().map(|event| Routed {
            tenant: tenant.to_string(),
            event,
        }));
    }

    /// Note the tenant the request is for.
    pub fn for_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_string());
    }
}

/// A boxed future, for the [`Host`]'s asynchronous services.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A one-time token to claim ([`Host::claim_once`]).
#[derive(Debug, Clone, Copy)]
pub struct Once<'a> {
    /// The fingerprint of the signing key the token was signed with.
    pub key: &'a str,
    /// The provider's name.
    pub provider: &'static str,
    /// The token.
    pub token: &'a str,
    /// The fingerprint of the request (tenant and body).
    pub request: &'a str,
    /// How long the claim is remembered.
    pub ttl: Duration,
}

/// What a road may ask of the house besides its own configuration: read-only settings
/// and two services. The pipeline implements it; a road never sees the store.
pub trait Host: Sync {
    /// The base URL providers call and sign, without a trailing slash.
    fn public_url(&self) -> &str;
    /// How long the store remembers an event id (dedup) and a one-time token.
    fn dedup_ttl(&self) -> Duration;
    /// Is `id` a configured tenant (with or without this provider's section)?
    fn has_tenant(&self, id: &str) -> bool;
    /// Outbound HTTPS GETs.
    fn fetch(&self) -> &dyn Fetch;
    /// Claim a provider's one-time token under the signing key whose fingerprint is
    /// `once.key`, for the request whose fingerprint is `once.request`, remembered for
    /// `once.ttl`.
    /// `Ok(true)`: the token is new, or was claimed before by this same request (a
    /// retry); `Ok(false)`: it was claimed by another request (a replay).
    fn claim_once<'a>(&'a self, once: Once<'a>) -> HostFuture<'a, bool>;
}

/// One provider's configuration: its gateway-wide settings, its section of each
/// tenant that has one, and its error-code table (embedded, with the overrides).
pub struct ProviderConfig<R: Road> {
    /// The gateway-wide settings (`[meta]`, `[sns]`; nothing for most providers).
    pub settings: R::Settings,
    /// Tenant id -> that tenant's section (`[tenants.ID.<section>]`).
    pub tenants: BTreeMap<String, R::Section>,
    /// The error-code table.
    pub codes: ErrorTable,
}

impl<R: Road> Clone for ProviderConfig<R> {
    fn clone(&self) -> Self {
        ProviderConfig {
            settings: self.settings.clone(),
            tenants: self.tenants.clone(),
            codes: self.codes.clone(),
        }
    }
}

impl<R: Road> fmt::Debug for ProviderConfig<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(R::ABOUT.name)
            .field("settings", &self.settings)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl<R: Road> ProviderConfig<R> {
    /// The tenant named in the path and its section: the one lookup of the roads that
    /// post per tenant. Errors: no tenant in the path, an unknown tenant, a tenant
    /// without this provider's section (each 404, naming what to configure).
    pub fn path_tenant<'c>(
        &'c self,
        req: &WebhookRequest,
        host: &dyn Host,
    ) -> Result<(&'c str, &'c R::Section), Error> {
        let name = R::ABOUT.name;
        let id = req.tenant.as_deref().ok_or_else(|| {
            Error::not_found(format!(
                "post {name} webhooks to /webhooks/{name}/{{tenant}}"
            ))
        })?;
        self.tenant(id, host)
    }

    /// The configured tenant `id` and its section (404s as [`Self::path_tenant`]).
    pub fn tenant<'c>(
        &'c self,
        id: &str,
        host: &dyn Host,
    ) -> Result<(&'c str, &'c R::Section), Error> {
        match self.tenants.get_key_value(id) {
            Some((id, section)) => Ok((id.as_str(), section)),
            None if host.has_tenant(id) => Err(Error::not_found(format!(
                "tenant {id:?} has no [tenants.{id}.{}] configuration",
                R::ABOUT.section
            ))),
            None => Err(Error::not_found(format!("unknown tenant {id:?}"))),
        }
    }

    /// The first tenant (in id order) whose section satisfies `owns`.
    pub fn find(&self, owns: impl Fn(&R::Section) -> bool) -> Option<(&str, &R::Section)> {
        self.tenants
            .iter()
            .find(|(_, s)| owns(s))
            .map(|(id, s)| (id.as_str(), s))
    }
}

/// A tenant section of lists under known keys (`signing_keys = [...]`), as written:
/// read with [`ConfigCx::list`], which refuses any other key.
pub type Lists = BTreeMap<String, Vec<String>>;

/// A tenant section that is one list of signing secrets, tried in turn (several while
/// rotating).
#[derive(Debug, Clone)]
pub struct Secrets(pub Vec<Secret>);

/// What a provider's configuration parser is given: where relative paths start, the
/// list of problems to add to (every problem is reported, not only the first), and a
/// registry of ids that must belong to one tenant only.
pub struct ConfigCx<'a> {
    base: &'a Path,
    problems: &'a mut Vec<String>,
    owners: BTreeMap<String, String>,
}

impl<'a> ConfigCx<'a> {
    /// A context for a configuration whose relative paths start at `base`.
    pub fn new(base: &'a Path, problems: &'a mut Vec<String>) -> ConfigCx<'a> {
        ConfigCx {
            base,
            problems,
            owners: BTreeMap::new(),
        }
    }

    /// Report a problem (one line, naming the setting).
    pub fn problem(&mut self, line: impl Into<String>) {
        self.problems.push(line.into());
    }

    /// Read a TOML table into `T` (serde, unknown keys refused by `T`'s attributes);
    /// `at` names the table in the problem (`tenants.acme.twilio`).
    pub fn table<T: DeserializeOwned>(&mut self, at: &str, value: toml::Value) -> Option<T> {
        T::deserialize(value)
            .map_err(|e| self.problem(format!("{at}: {}", e.message())))
            .ok()
    }

    /// Resolve a list of secrets (inline, `env:VAR` or `file:PATH`); `at` names the
    /// setting (`tenants.acme.mailgun.signing_keys`). A list that is given but empty
    /// is a problem when `required` is set: `why` says what cannot work without it.
    pub fn secrets(&mut self, at: &str, specs: &[String]) -> Vec<Secret> {
        specs
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| {
                crate::secret::resolve(spec, self.base)
                    .map_err(|e| self.problem(format!("{at}[{i}]: {e}")))
                    .ok()
            })
            .collect()
    }

    /// [`Self::secrets`], with an empty list reported as `{at} is empty: {why}`.
    pub fn required_secrets(&mut self, at: &str, specs: &[String], why: &str) -> Vec<Secret> {
        if specs.is_empty() {
            self.problem(format!("{at} is empty: {why}"));
        }
        self.secrets(at, specs)
    }

    /// Record that `key` (an account id, a topic ARN) belongs to `tenant`; the tenant
    /// that claimed it first, if another one did.
    pub fn claim(&mut self, key: String, tenant: &str) -> Option<String> {
        match self.owners.get(&key) {
            Some(other) if other != tenant => Some(other.clone()),
            Some(_) => None,
            None => {
                self.owners.insert(key, tenant.to_string());
                None
            }
        }
    }
}

/// One tenant's section of one provider, being read: what [`Road::section`] is
/// given. The section is read once, into a serde type ([`Self::read`]) or as the
/// provider's one list of keys ([`Self::signing_secrets`], [`Self::public_keys`],
/// [`Self::list`]); every problem is reported through the context, naming the
/// setting.
pub struct SectionCx<'s, 'c> {
    /// The tenant whose section it is.
    pub tenant: &'s str,
    /// Where it is written (`tenants.ID.<section>`), for problems.
    pub at: &'s str,
    value: Option<toml::Value>,
    /// The whole configuration's context.
    pub cx: &'s mut ConfigCx<'c>,
}

impl<'s, 'c> SectionCx<'s, 'c> {
    /// Tenant `tenant`'s section `value`, written at `at`.
    pub fn new(
        tenant: &'s str,
        at: &'s str,
        value: toml::Value,
        cx: &'s mut ConfigCx<'c>,
    ) -> SectionCx<'s, 'c> {
        SectionCx {
            tenant,
            at,
            value: Some(value),
            cx,
        }
    }

    /// The section read into `T` (unknown keys refused by `T`'s attributes); `None`
    /// after reporting why not.
    ///
    /// # Panics
    ///
    /// When the section was read already: a road reads its section once.
    pub fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        let value = self.value.take().expect("a road reads its section once");
        self.cx.table(self.at, value)
    }

    /// The section's one list `key` (empty when absent); any other key of the section
    /// is a problem (most likely a typo).
    pub fn list(&mut self, key: &str) -> Option<Vec<String>> {
        let mut lists: Lists = self.read()?;
        let list = lists.remove(key).unwrap_or_default();
        for other in lists.keys() {
            self.problem(format!(
                "{}: unknown key {other:?} (expected {key})",
                self.at
            ));
        }
        Some(list)
    }

    /// The signing secrets of the section's one list `key`, resolved; an empty list
    /// is a problem, since no webhook could be verified.
    pub fn signing_secrets(&mut self, key: &str) -> Option<Secrets> {
        let specs = self.list(key)?;
        let at = format!("{}.{key}", self.at);
        let why = "its webhooks cannot be verified";
        Some(Secrets(self.cx.required_secrets(&at, &specs, why)))
    }

    /// The public verification keys of the section's one list `key`, each read by
    /// `parse` (one problem per key it refuses, naming its index); an empty list is a
    /// problem, since no webhook could be verified. Public keys are written as they
    /// are (no `env:` or `file:`): they are not secret.
    pub fn public_keys<K>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<K, String>,
    ) -> Option<Vec<K>> {
        let keys = self.list(key)?;
        let at = format!("{}.{key}", self.at);
        if keys.is_empty() {
            self.problem(format!("{at} is empty: its webhooks cannot be verified"));
        }
        let parsed = keys
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                parse(text)
                    .map_err(|e| self.problem(format!("{at}[{i}]: {e}")))
                    .ok()
            })
            .collect();
        Some(parsed)
    }

    /// Report a problem (one line, naming the setting).
    pub fn problem(&mut self, line: impl Into<String>) {
        self.cx.problem(line);
    }

    /// Claim `key` (an account id, a topic ARN) for this tenant; the tenant that
    /// claimed it first, if another one did.
    pub fn claim(&mut self, key: String) -> Option<String> {
        self.cx.claim(key, self.tenant)
    }
}

/// A batch that is a JSON array (SendGrid, SparkPost, Bandwidth, Mandrill's
/// `mandrill_events`): its elements. Anything else is refused whole (400), naming
/// `what` was read and saying `shape`, what the provider posts: it is not the
/// provider's batch, and would never arrive differently.
pub fn json_array(json: &[u8], what: &str, shape: &str) -> Result<Vec<serde_json::Value>, Error> {
    match serde_json::from_slice(json) {
        Ok(serde_json::Value::Array(items)) => Ok(items),
        Ok(_) => Err(Error::bad_request(format!(
            "{what} is not a JSON array: {shape}"
        ))),
        Err(e) => Err(Error::bad_request(format!(
            "{what} is not JSON ({e}): {shape}"
        ))),
    }
}

/// What names a provider: its name, its embedded error-code table and, where they
/// differ from the defaults, its route aliases, its section key and its gateway-wide
/// table. Built with `const` calls: `About::new("twilio", "Twilio", include_str!(..))`.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The name in routes (`/webhooks/<name>`), metrics, audit entries and the spool.
    pub name: &'static str,
    /// The name people know it by, as the console writes it (`SendGrid`, `Amazon SES`).
    pub title: &'static str,
    /// Other route names that reach this road (`resend` for Standard Webhooks).
    pub aliases: &'static [&'static str],
    /// The key of its tenant section (`[tenants.ID.<section>]`) and of its
    /// `[providers.<section>]` policy table; the name unless set.
    pub section: &'static str,
    /// The key of its gateway-wide table (`[meta]`, `[sns]`), if it has one.
    pub settings: Option<&'static str>,
    /// Its error-code table, embedded from `providers/<name>.toml`.
    pub codes: &'static str,
    /// The media types its webhooks post (`application/json` unless set); anything
    /// else is refused with 415 before the road starts.
    pub accepts: &'static [&'static str],
    /// Said after the accepted types when one is refused (empty for nothing).
    pub accepts_note: &'static str,
    /// The provider may call its webhook URL with GET, the parameters in the query:
    /// a GET then walks the road like a POST instead of reaching [`Road::handshake`].
    pub get_webhooks: bool,
    /// The status that makes this provider try a request again when the gateway cannot
    /// take it now (Redis down and the spool full): 503 unless set. Brevo drops a
    /// webhook on any 5xx and retries a 429.
    pub retry_status: u16,
}

impl About {
    /// A provider called `name` (`title` to people) with the error-code table `codes`.
    pub const fn new(name: &'static str, title: &'static str, codes: &'static str) -> About {
        About {
            name,
            title,
            aliases: &[],
            section: name,
            settings: None,
            codes,
            accepts: &["application/json"],
            accepts_note: "",
            get_webhooks: false,
            retry_status: 503,
        }
    }

    /// Asking for a retry with `status` instead of 503.
    pub const fn retry_status(self, status: u16) -> About {
        About {
            retry_status: status,
            ..self
        }
    }

    /// Taking webhooks by GET too (parameters in the query).
    pub const fn get_webhooks(self) -> About {
        About {
            get_webhooks: true,
            ..self
        }
    }

    /// Accepting these media types (the first is what it usually sends), with `note`
    /// said when one is refused.
    pub const fn accepts(self, accepts: &'static [&'static str], note: &'static str) -> About {
        About {
            accepts,
            accepts_note: note,
            ..self
        }
    }

    /// With these route aliases.
    pub const fn aliases(self, aliases: &'static [&'static str]) -> About {
        About { aliases, ..self }
    }

    /// With this section key.
    pub const fn section(self, section: &'static str) -> About {
        About { section, ..self }
    }

    /// With this gateway-wide table.
    pub const fn settings(self, key: &'static str) -> About {
        About {
            settings: Some(key),
            ..self
        }
    }

    /// Its embedded error-code table, read (the registry's test reads every one, so
    /// this does not fail on a shipped table).
    pub fn table(self) -> ErrorTable {
        ErrorTable::from_toml(self.name, self.codes).unwrap_or_else(|e| {
            panic!("the embedded table of {} is valid (tested): {e}", self.name)
        })
    }

    /// The source its events carry.
    pub const fn source(self) -> Source {
        Source::provider(self.name)
    }
}

/// One request on its way down a provider's road: what the road is given (its
/// configuration, the request, the [`Host`]) and what it fills ([`Delivery`]).
pub struct Trip<'a, R: Road> {
    /// The provider's configuration.
    pub config: &'a ProviderConfig<R>,
    /// The request.
    pub req: &'a WebhookRequest,
    /// The house's services.
    pub host: &'a dyn Host,
    /// What the road hands back.
    pub out: Delivery,
}

impl<'a, R: Road> Trip<'a, R> {
    /// The tenant named in the path and its section ([`ProviderConfig::path_tenant`]),
    /// noted as the request's tenant.
    pub fn path_tenant(&mut self) -> Result<(&'a str, &'a R::Section), Error> {
        let (id, section) = self.config.path_tenant(self.req, self.host)?;
        self.out.for_tenant(id);
        Ok((id, section))
    }

    /// Read the clock once for the request ([`crate::time::now_ms`]) and note it as
    /// the time of receipt; event times are clamped to it.
    pub fn receive(&mut self) -> i64 {
        self.out.received_ms = crate::time::now_ms();
        self.out.received_ms
    }

    /// A header of the request.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.req.header(name)
    }
}

/// One provider: the pieces a provider folder writes. Every item without a default is
/// required, so a provider that forgets one does not compile; the registry
/// (`crate::providers`) turns the list of providers into the `Provider` enum and its
/// exhaustive dispatch.
pub trait Road: Sized + 'static {
    /// Its names and its error-code table.
    const ABOUT: About;

    /// Gateway-wide settings (`()` for a provider without a top-level table).
    type Settings: fmt::Debug + Clone + Default + Send + Sync;
    /// A tenant's section, checked.
    type Section: fmt::Debug + Clone + Send + Sync;

    /// Read the gateway-wide table (`None` when the configuration has none).
    fn settings(raw: Option<toml::Value>, cx: &mut ConfigCx<'_>) -> Self::Settings {
        let _ = (raw, cx);
        Self::Settings::default()
    }

    /// Read and check one tenant's section; `None` after reporting its problems.
    fn section(section: &mut SectionCx<'_, '_>) -> Option<Self::Section>;

    /// Checks across the whole configuration, once every section is read (a tenant
    /// section that needs the gateway-wide table, say).
    fn check(config: &ProviderConfig<Self>, cx: &mut ConfigCx<'_>) {
        let _ = (config, cx);
    }

    /// Warnings about a configuration that loads but may not do what the operator
    /// expects (`dndgate config check` prints them, `serve` logs them).
    fn warnings(config: &ProviderConfig<Self>) -> Vec<String> {
        let _ = config;
        Vec::new()
    }

    /// Answer a GET on the provider's route (Meta's `hub.challenge`); `query` is the
    /// raw query string. By default 405: the provider only posts.
    fn handshake(config: &ProviderConfig<Self>, query: &str) -> Result<Answer, Error> {
        let _ = (config, query);
        Err(Error::new(
            Kind::MethodNotAllowed,
            format!("{} posts its webhooks: use POST", Self::ABOUT.name),
        ))
    }

    /// The road: tenant and secrets, verify, parse, normalise, in the order this
    /// provider's safety needs, filling `trip.out`.
    fn handle(trip: &mut Trip<'_, Self>) -> impl Future<Output = Result<(), Error>> + Send;
}
