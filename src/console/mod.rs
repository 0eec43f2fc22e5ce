//! The operator console under `/console/` (SPEC section 13, issue 17): sign in with a
//! tenant's API token, search a contact, see and change its DND per channel with the
//! reasons in words, lift a permanent block only with consent evidence, read the
//! contact's history, and a tenant overview with an export.
//!
//! Every change goes through `state::operator_set` and `state::operator_clear`, the
//! functions behind the operator API: the same state rules, the same audit entries,
//! no second path to Redis. Knows no hyper: the server hands it plain values
//! ([`ConsoleRequest`]) and sends back what it answers ([`ConsoleAnswer`]).
//!
//! Sessions: a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! when the public URL is https) scoped to `/console`, kept in Redis under its SHA-256
//! for [`SESSION_TTL`] and ended by signing out. Every form carries the session's CSRF
//! token, compared in constant time; the sign-in form carries one bound to a cookie of
//! its own (a double submit), so nobody can sign a browser into their own tenant.

pub mod page;
pub mod words;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::address::Address;
use crate::audit::AuditEntry;
use crate::classify::Permanence;
use crate::event::{Channel, Scope};
use crate::pipeline::{Answer, Gateway, now_ms};
use crate::providers::Provider;
use crate::secret::constant_time_eq;
use crate::state::{self, Evidence, OperatorChange, OperatorError};
use crate::store::{Record, State};

use page::{ConsentView, CountRow, EntryView, PanelView, RecentView, RowView};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "dndgate_console";
/// The sign-in form's own cookie (its CSRF token, before there is a session).
pub const SIGN_IN_COOKIE: &str = "dndgate_signin";
/// How long a session lasts from sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The largest form the console reads.
pub const MAX_BODY: usize = 16 * 1024;
/// How many history entries the contact page shows.
const TIMELINE_LIMIT: usize = 200;
/// How many changes the overview lists.
const RECENT: usize = 20;

/// The headers every console answer carries: no script, no framing, no caching, no
/// referrer (addresses are in the URLs).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
];

/// One request to the console, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleRequest<'a> {
    /// A POST (else a GET or HEAD).
    pub post: bool,
    /// The path's segments after `console`.
    pub path: &'a [&'a str],
    /// The query string, without `?`.
    pub query: &'a str,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The form body of a POST.
    pub body: &'a [u8],
}

/// What the console answers: the answer, cookies to set, and a download's file name.
#[derive(Debug)]
pub struct ConsoleAnswer {
    pub answer: Answer,
    /// `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// Send the body as a download with this file name.
    pub attachment: Option<String>,
    /// The body, in pieces as they are made, in place of the answer's (the export).
    /// An `Err` piece breaks the transfer off.
    pub pieces: Option<tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>>,
}

impl From<Answer> for ConsoleAnswer {
    fn from(answer: Answer) -> ConsoleAnswer {
        ConsoleAnswer {
            answer,
            set_cookies: Vec::new(),
            attachment: None,
            pieces: None,
        }
    }
}

fn html(status: u16, body: String) -> Answer {
    Answer {
        content_type: "text/html; charset=utf-8",
        ..Answer::text(status, body)
    }
}

fn redirect(location: String) -> Answer {
    Answer {
        location: Some(location),
        ..Answer::text(303, "")
    }
}

/// A signed-in operator.
struct Session {
    /// The SHA-256 of the session id: the Redis key's name.
    digest: String,
    tenant: String,
    csrf: String,
    /// Who signed in, as they said (recorded as the actor of their changes).
    actor: String,
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}

fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A cookie for `/console`, for `max_age` seconds (0 ends it).
fn set_cookie(gw: &Gateway, name: &str, value: &str, max_age: u64) -> String {
    let secure = if gw.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The form fields of a POST body, in order (a repeated name repeats).
fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

async fn session(gw: &Gateway, req: &ConsoleRequest<'_>) -> Result<Option<Session>, Answer> {
    let Some(id) = cookie(req.cookie, SESSION_COOKIE).filter(|id| is_token(id)) else {
        return Ok(None);
    };
    let digest = digest(id);
    let value = gw
        .store
        .session(&digest)
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(value) = value else { return Ok(None) };
    let mut parts = value.splitn(3, '\n');
    let (Some(tenant), Some(csrf), actor) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    // A tenant removed from the configuration since sign-in has no console.
    if !gw.config.tenants.contains_key(tenant) {
        return Ok(None);
    }
    Ok(Some(Session {
        digest,
        tenant: tenant.to_string(),
        csrf: csrf.to_string(),
        actor: actor.unwrap_or("console").to_string(),
    }))
}

fn unavailable(e: &crate::store::StoreError) -> Answer {
    tracing::warn!(error = %e, "console: Redis did not answer");
    let mut a = html(
        503,
        page::message(
            "Try again in a moment",
            "Redis did not answer, so nothing was read or changed.",
            None,
        ),
    );
    a.retry_after = Some(5);
    a
}

/// Answer one console request.
pub async fn handle(gw: &Gateway, req: ConsoleRequest<'_>) -> ConsoleAnswer {
    let path = match req.path {
        [""] => &[][..],
        p => p,
    };
    match (req.post, path) {
        (false, ["login"]) => return sign_in_page(gw, None, 200).await,
        (true, ["login"]) => return sign_in(gw, &req).await,
        _ => {}
    }
    let s = match session(gw, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => return redirect("/console/login".into()).into(),
        Err(a) => return a.into(),
    };
    let fields = if req.post { form(req.body) } else { Vec::new() };
    if req.post && !constant_time_eq(field(&fields, "csrf").as_bytes(), s.csrf.as_bytes()) {
        tracing::warn!(tenant = %s.tenant, "console: a form without its CSRF token was refused");
        return html(
            403,
            page::message(
                "Nothing was changed",
                "This form's security token does not match your session: reload the page and try again.",
                Some((&s.tenant, &s.csrf)),
            ),
        )
        .into();
    }
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query).unwrap_or_default();
    let answer = match (req.post, path) {
        (false, []) => Ok(redirect("/console/overview".into())),
        (true, ["logout"]) => return sign_out(gw, &s).await,
        (false, ["overview"]) => overview(gw, &s, None).await,
        (false, ["export.csv"]) => return export(gw, &s).await,
        (false, ["search"]) => search(gw, &s, field(&query, "q")).await,
        (false, ["contact"]) => {
            let notice = match field(&query, "n") {
                "saved" => Some("Saved.".to_string()),
                "lifted" => Some("Lifted with the consent recorded.".to_string()),
                _ => None,
            };
            match Subject::from_fields(&query, "") {
                Some(subject) => {
                    contact_page(
                        gw,
                        &s,
                        &subject,
                        Extra {
                            notice,
                            ..Extra::default()
                        },
                    )
                    .await
                }
                None => {
                    let error = "That link names no valid address or contact id: search again.";
                    overview(gw, &s, Some(error.to_string())).await
                }
            }
        }
        (true, ["contact"]) => save(gw, &s, &fields).await,
        (true, ["consent"]) => consent(gw, &s, &fields).await,
        _ => Ok(html(
            404,
            page::message(
                "Not found",
                "The console has no such page.",
                Some((&s.tenant, &s.csrf)),
            ),
        )),
    };
    answer.unwrap_or_else(|a| a).into()
}

async fn sign_in_page(gw: &Gateway, error: Option<&str>, status: u16) -> ConsoleAnswer {
    let csrf = random_hex();
    ConsoleAnswer {
        answer: html(status, page::sign_in(&csrf, error)),
        set_cookies: vec![set_cookie(gw, SIGN_IN_COOKIE, &csrf, 3600)],
        attachment: None,
        pieces: None,
    }
}

async fn sign_in(gw: &Gateway, req: &ConsoleRequest<'_>) -> ConsoleAnswer {
    let fields = form(req.body);
    let sent = field(&fields, "csrf");
    let bound = cookie(req.cookie, SIGN_IN_COOKIE).unwrap_or("");
    if !is_token(sent) || !constant_time_eq(sent.as_bytes(), bound.as_bytes()) {
        return sign_in_page(
            gw,
            Some("The sign-in form expired: please sign in again."),
            403,
        )
        .await;
    }
    let tenant = field(&fields, "tenant").trim();
    let token = field(&fields, "token").trim();
    let bearer = format!("Bearer {token}");
    if token.is_empty() || crate::api::authorize(&gw.config, tenant, Some(&bearer)).is_err() {
        tracing::warn!("console: a sign-in with a wrong tenant or token was refused");
        return sign_in_page(gw, Some("Wrong tenant or API token."), 401).await;
    }
    // The actor lands in audit entries: one line, bounded.
    let actor: String = field(&fields, "actor")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
        .trim()
        .to_string();
    let actor = if actor.is_empty() {
        "console".to_string()
    } else {
        format!("console:{actor}")
    };
    let id = random_hex();
    let csrf = random_hex();
    if let Err(e) = gw
        .store
        .put_session(
            &digest(&id),
            &format!("{tenant}\n{csrf}\n{actor}"),
            SESSION_TTL,
        )
        .await
    {
        return unavailable(&e).into();
    }
    tracing::info!(tenant, "console: signed in");
    ConsoleAnswer {
        answer: redirect("/console/overview".into()),
        set_cookies: vec![
            set_cookie(gw, SESSION_COOKIE, &id, SESSION_TTL.as_secs()),
            set_cookie(gw, SIGN_IN_COOKIE, "", 0),
        ],
        attachment: None,
        pieces: None,
    }
}

async fn sign_out(gw: &Gateway, s: &Session) -> ConsoleAnswer {
    if let Err(e) = gw.store.drop_session(&s.digest).await {
        return unavailable(&e).into();
    }
    ConsoleAnswer {
        answer: redirect("/console/login".into()),
        set_cookies: vec![set_cookie(gw, SESSION_COOKIE, "", 0)],
        attachment: None,
        pieces: None,
    }
}

/// Whose panel a page shows: an address (and the contact it is linked to), or a
/// contact by id.
enum Subject {
    Address(Address),
    Contact(String),
}

impl Subject {
    /// From `address=` or `id=` (with `prefix`: `subject_address=`, `subject_id=`).
    fn from_fields(fields: &[(String, String)], prefix: &str) -> Option<Subject> {
        let address = field(fields, &format!("{prefix}address"));
        let id = field(fields, &format!("{prefix}id"));
        if !address.is_empty() {
            Address::parse_any(address).ok().map(Subject::Address)
        } else if is_contact_id(id) {
            Some(Subject::Contact(id.to_string()))
        } else {
            None
        }
    }

    /// The query that reaches its page.
    fn query(&self) -> String {
        let pair = match self {
            Subject::Address(a) => ("address", a.as_str()),
            Subject::Contact(id) => ("id", id.as_str()),
        };
        serde_urlencoded::to_string([pair]).unwrap_or_default()
    }
}

/// A contact id as the API takes it.
fn is_contact_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

async fn search(gw: &Gateway, s: &Session, q: &str) -> Result<Answer, Answer> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(redirect("/console/overview".into()));
    }
    let subject = match Address::parse_any(q) {
        Ok(a) => Subject::Address(a),
        Err(e) if is_contact_id(q) => {
            let linked = gw
                .store
                .contact_addresses(&s.tenant, q)
                .await
                .map_err(|e| unavailable(&e))?;
            if linked.is_empty() {
                return overview(
                    gw,
                    s,
                    Some(format!(
                        "No contact {q:?} has linked addresses, and it is not an address: {e}."
                    )),
                )
                .await;
            }
            Subject::Contact(q.to_string())
        }
        Err(e) => return overview(gw, s, Some(format!("Not found: {e}."))).await,
    };
    Ok(redirect(format!("/console/contact?{}", subject.query())))
}

/// What a contact page shows besides the records.
#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    consent: Vec<ConsentView>,
    status: Option<u16>,
}

/// The line a provider's error-code table gives a code.
fn code_meaning(gw: &Gateway) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |provider: &str, code: &str| {
        let p = provider.parse::<Provider>().ok()?;
        gw.config
            .providers
            .codes(p)
            .lookup(code)
            .map(|rule| rule.reason.clone())
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why a record is what it is, in words, with its date.
fn record_words(gw: &Gateway, record: &Record) -> String {
    let why = words::reason(&record.reason, &record.source, &code_meaning(gw));
    format!("{} on {}", capitalised(&why), words::date(record.event_ms))
}

fn badge(record: Option<&Record>, now_ms: i64) -> &'static str {
    match record {
        Some(r) if r.blocks_at(now_ms) => match r.state {
            State::Permanent => "permanent",
            State::Marketing => "marketing",
            State::Temporary => "temporary",
            State::Cleared => "allowed",
        },
        _ => "allowed",
    }
}

/// The scopes a row may be on for `address`: its channels, then `all`.
fn scopes_of(address: &Address) -> Vec<Scope> {
    crate::links::page::channels_of(address.as_str())
        .iter()
        .map(|c| Scope::Channel(*c))
        .chain([Scope::All])
        .collect()
}

fn row_key(scope: Scope, address: &Address) -> String {
    format!("{scope}|{address}")
}

/// A row's key read back: the scope and the address normalised for it.
fn parse_row(key: &str) -> Option<(Scope, Address)> {
    let (scope, address) = key.split_once('|')?;
    let scope: Scope = scope.parse().ok()?;
    let address = match scope {
        Scope::Channel(c) => Address::parse(c, address),
        Scope::All => Address::parse_any(address),
    }
    .ok()?;
    Some((scope, address))
}

fn scope_label(scope: Scope) -> String {
    words::scope(scope).to_string()
}

async fn contact_page(
    gw: &Gateway,
    s: &Session,
    subject: &Subject,
    extra: Extra,
) -> Result<Answer, Answer> {
    let store = &gw.store;
    let tenant = s.tenant.as_str();
    let fail = |e: crate::store::StoreError| unavailable(&e);
    let (heading, contact, addresses) = match subject {
        Subject::Address(a) => {
            let contact = store.contact_of(tenant, a).await.map_err(fail)?;
            let mut addresses = match &contact {
                Some(id) => store.contact_addresses(tenant, id).await.map_err(fail)?,
                None => Vec::new(),
            };
            addresses.retain(|x| x != a);
            addresses.insert(0, a.clone());
            (a.to_string(), contact, addresses)
        }
        Subject::Contact(id) => {
            let addresses = store.contact_addresses(tenant, id).await.map_err(fail)?;
            if addresses.is_empty() {
                return Ok(html(
                    404,
                    page::message(
                        "No such contact",
                        &format!("No addresses are linked to contact {id:?} in this tenant."),
                        Some((&s.tenant, &s.csrf)),
                    ),
                ));
            }
            (format!("Contact {id}"), Some(id.clone()), addresses)
        }
    };
    let now = now_ms();
    let mut rows = Vec::new();
    for address in &addresses {
        let all = store
            .record(tenant, Scope::All, address)
            .await
            .map_err(fail)?;
        let all_blocks = all.as_ref().is_some_and(|r| r.blocks_at(now));
        for scope in scopes_of(address) {
            let record = if scope == Scope::All {
                all.clone()
            } else {
                store.record(tenant, scope, address).await.map_err(fail)?
            };
            rows.push(RowView {
                key: row_key(scope, address),
                label: scope_label(scope),
                address: address.to_string(),
                ticked: record.as_ref().is_some_and(|r| r.blocks_at(now)),
                class: badge(record.as_ref(), now),
                state: words::state(record.as_ref(), now),
                reason: record
                    .as_ref()
                    .map(|r| record_words(gw, r))
                    .unwrap_or_default(),
                all_blocks: all_blocks && scope != Scope::All,
            });
        }
    }
    // The history of every address shown, newest first.
    let mut entries = Vec::new();
    let mut window_start: Option<i64> = None;
    for address in &addresses {
        let (found, start) = store
            .history_window(tenant, address, crate::api::HISTORY_SCAN)
            .await
            .map_err(fail)?;
        if let Some(start) = start {
            window_start = Some(window_start.map_or(start, |w: i64| w.max(start)));
        }
        for mut fields in found {
            let id = if fields.first().is_some_and(|(k, _)| k == "id") {
                fields.remove(0).1
            } else {
                String::new()
            };
            if let Ok(entry) = AuditEntry::parse(&id, &fields) {
                entries.push(entry);
            }
        }
    }
    let order = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    entries.sort_by_key(|e| std::cmp::Reverse(order(&e.id)));
    entries.truncate(TIMELINE_LIMIT);
    let timeline = entries.iter().map(|e| entry_view(gw, e)).collect();
    let view = PanelView {
        heading,
        subject_query: subject.query(),
        contact,
        addresses: addresses.iter().map(Address::to_string).collect(),
        rows,
        consent: extra.consent,
        timeline,
        notice: extra.notice,
        error: extra.error,
        window_note: window_start.map(|w| {
            format!(
                "History kept from {} (audit_retention trims older changes).",
                words::date_time(w)
            )
        }),
        tenant: &s.tenant,
        csrf: &s.csrf,
    };
    Ok(html(extra.status.unwrap_or(200), page::panel(&view)))
}

fn entry_view(gw: &Gateway, e: &AuditEntry) -> EntryView {
    let evidence = match &e.evidence {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let label = match k.as_str() {
                    "agreed" => "Agreed to",
                    "captured_at" => "Captured at",
                    "method" => "Method",
                    "reference" => "Reference",
                    other => other,
                };
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                let text = match crate::time::parse_rfc3339_ms(&text) {
                    Some(ms) if k == "captured_at" => words::date_time(ms),
                    _ => text,
                };
                (label.to_string(), text)
            })
            .collect(),
        _ => Vec::new(),
    };
    EntryView {
        when: words::date_time(e.event_ms),
        scope: scope_label(e.scope),
        address: e.address.clone(),
        outcome: e.outcome.as_str().to_string(),
        what: capitalised(words::outcome(e.outcome.as_str(), &e.action)),
        why: if e.action == "clear" && e.reason == "operator" {
            "an operator asked to lift it".to_string()
        } else {
            words::reason(&e.reason, &e.provider, &code_meaning(gw))
        },
        source: words::source(&e.provider),
        event_id: e.event_id.clone(),
        // Changes made in the console are recorded as `console:NAME`.
        actor: e.actor.as_ref().map(|a| match a.strip_prefix("console:") {
            Some(name) => format!("{name} (console)"),
            None if a == "console" => "the console".to_string(),
            None => a.clone(),
        }),
        evidence,
    }
}

/// The DND form: tick sets a permanent operator record; untick clears a temporary
/// one, and asks for consent evidence where the record is permanent.
async fn save(gw: &Gateway, s: &Session, fields: &[(String, String)]) -> Result<Answer, Answer> {
    let Some(subject) = Subject::from_fields(fields, "subject_") else {
        return Ok(redirect("/console/overview".into()));
    };
    let tenant = &gw.config.tenants[&s.tenant];
    let ticked: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "dnd")
        .map(|(_, v)| v.as_str())
        .collect();
    let now = now_ms();
    let mut consent = Vec::new();
    let mut errors = Vec::new();
    for key in fields.iter().filter(|(k, _)| k == "shown").map(|(_, v)| v) {
        let Some((scope, address)) = parse_row(key) else {
            errors.push(format!("{key:?} is not a channel and address"));
            continue;
        };
        let record = gw
            .store
            .record(&s.tenant, scope, &address)
            .await
            .map_err(|e| unavailable(&e))?;
        let blocks = record.as_ref().is_some_and(|r| r.blocks_at(now));
        let want = ticked.contains(&key.as_str());
        let change = OperatorChange {
            scope,
            address: &address,
            actor: Some(&s.actor),
            now_ms: now,
        };
        let result = match (want, blocks, record.as_ref().map(|r| r.state)) {
            (true, false, _) => {
                state::operator_set(&gw.store, tenant, &change, Permanence::Permanent, None).await
            }
            (false, true, Some(State::Temporary)) => {
                state::operator_clear(&gw.store, tenant, &change, None).await
            }
            (false, true, Some(_)) => {
                let record = record.as_ref().expect("a record blocks");
                consent.push(ConsentView {
                    key: key.clone(),
                    label: format!("{} for {address}", words::scope(scope)),
                    reason: record_words(gw, record),
                    agreed: String::new(),
                    captured_at: String::new(),
                    method: String::new(),
                    reference: String::new(),
                    error: None,
                });
                continue;
            }
            _ => continue,
        };
        match result {
            Ok(_) => {}
            Err(OperatorError::Store(e)) => return Err(unavailable(&e)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if consent.is_empty() && errors.is_empty() {
        return Ok(redirect(format!(
            "/console/contact?{}&n=saved",
            subject.query()
        )));
    }
    let extra = Extra {
        error: (!errors.is_empty()).then(|| format!("Not saved: {}", errors.join("; "))),
        notice: (!consent.is_empty()).then(|| {
            "Your other changes are saved. A permanent block needs the contact's consent: fill in the form below, or leave the box ticked.".to_string()
        }),
        consent,
        status: (!errors.is_empty()).then_some(400),
    };
    contact_page(gw, s, &subject, extra).await
}

/// `captured_at` as typed: an RFC 3339 time, or a `datetime-local` value read as UTC.
fn captured_at(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() || crate::time::parse_rfc3339_ms(t).is_some() {
        return t.to_string();
    }
    match t.len() {
        16 => format!("{t}:00Z"),
        19 => format!("{t}Z"),
        _ => t.to_string(),
    }
}

/// The consent form: lift a permanent record with evidence, through the API's rule.
async fn consent(gw: &Gateway, s: &Session, fields: &[(String, String)]) -> Result<Answer, Answer> {
    let Some(subject) = Subject::from_fields(fields, "subject_") else {
        return Ok(redirect("/console/overview".into()));
    };
    let key = field(fields, "row");
    let Some((scope, address)) = parse_row(key) else {
        let extra = Extra {
            error: Some(format!("Not lifted: {key:?} is not a channel and address.")),
            status: Some(400),
            ..Extra::default()
        };
        return contact_page(gw, s, &subject, extra).await;
    };
    let tenant = &gw.config.tenants[&s.tenant];
    let typed = [
        field(fields, "agreed"),
        field(fields, "captured_at"),
        field(fields, "method"),
        field(fields, "reference"),
    ];
    let evidence = if typed.iter().all(|v| v.trim().is_empty()) {
        None
    } else {
        Some(Evidence {
            agreed: typed[0].trim().to_string(),
            captured_at: captured_at(typed[1]),
            method: typed[2].trim().to_string(),
            reference: typed[3].trim().to_string(),
        })
    };
    let now = now_ms();
    let change = OperatorChange {
        scope,
        address: &address,
        actor: Some(&s.actor),
        now_ms: now,
    };
    let (status, why) =
        match state::operator_clear(&gw.store, tenant, &change, evidence.as_ref()).await {
            Ok(_) => {
                return Ok(redirect(format!(
                    "/console/contact?{}&n=lifted",
                    subject.query()
                )));
            }
            Err(OperatorError::Store(e)) => return Err(unavailable(&e)),
            Err(e @ OperatorError::NeedsEvidence(_)) => (409, e.to_string()),
            Err(e @ OperatorError::Invalid(_)) => (400, e.to_string()),
        };
    let record = gw
        .store
        .record(&s.tenant, scope, &address)
        .await
        .map_err(|e| unavailable(&e))?;
    let extra = Extra {
        consent: vec![ConsentView {
            key: key.to_string(),
            label: format!("{} for {address}", words::scope(scope)),
            reason: record
                .as_ref()
                .map(|r| record_words(gw, r))
                .unwrap_or_default(),
            agreed: typed[0].to_string(),
            captured_at: typed[1].to_string(),
            method: typed[2].to_string(),
            reference: typed[3].to_string(),
            error: Some(format!("Not lifted: {why}.")),
        }],
        status: Some(status),
        ..Extra::default()
    };
    contact_page(gw, s, &subject, extra).await
}

async fn overview(gw: &Gateway, s: &Session, error: Option<String>) -> Result<Answer, Answer> {
    let now = now_ms();
    let scopes: Vec<Scope> = Channel::ALL
        .iter()
        .map(|c| Scope::Channel(*c))
        .chain([Scope::All])
        .collect();
    let mut counts: Vec<CountRow> = scopes
        .iter()
        .map(|s| CountRow {
            label: words::scope(*s),
            permanent: 0,
            temporary: 0,
            marketing: 0,
            lifted: 0,
        })
        .collect();
    gw.store
        .each_record(&s.tenant, |scope, record| {
            let Some(i) = scopes.iter().position(|x| *x == scope) else {
                return;
            };
            let row = &mut counts[i];
            match badge(Some(record), now) {
                "permanent" => row.permanent += 1,
                "temporary" => row.temporary += 1,
                "marketing" => row.marketing += 1,
                _ => row.lifted += 1,
            }
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let recent = gw
        .store
        .recent_audit(&s.tenant, RECENT)
        .await
        .map_err(|e| unavailable(&e))?;
    let recent: Vec<RecentView> = recent
        .iter()
        .filter_map(|(id, fields)| AuditEntry::parse(id, fields).ok())
        .map(|e| RecentView {
            when: words::date_time(e.event_ms),
            scope: scope_label(e.scope),
            address: e.address.clone(),
            what: capitalised(words::outcome(e.outcome.as_str(), &e.action)),
            why: words::reason(&e.reason, &e.provider, &code_meaning(gw)),
        })
        .collect();
    let status = if error.is_some() { 404 } else { 200 };
    Ok(html(
        status,
        page::overview(&s.tenant, &s.csrf, &counts, &recent, error.as_deref()),
    ))
}

/// The tenant's records that block now, as the CSV of `dndgate export`, sent page by
/// page: the gateway never holds the whole file (a million records would be about
/// 60 MB). The first page is read before answering, so a Redis that does not answer
/// gets a 503 page; a failure later breaks the download off.
async fn export(gw: &Gateway, s: &Session) -> ConsoleAnswer {
    use crate::bulk::export::{Export, ExportError, ExportFilter};
    let mut export = Export::new(ExportFilter {
        scope: None,
        all_states: false,
        now_ms: now_ms(),
    });
    let first = match export.next_piece(&gw.store, &s.tenant).await {
        Ok(piece) => piece.unwrap_or_default(),
        Err(ExportError::Store(e)) => return unavailable(&e).into(),
        Err(e) => return html(500, page::message("Export failed", &e.to_string(), None)).into(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let store = gw.store.clone();
    let tenant = s.tenant.clone();
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            let piece = match export.next_piece(&store, &tenant).await {
                Ok(Some(piece)) => Ok(piece),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "console: export broken off");
                    Err(e.to_string())
                }
            };
            let failed = piece.is_err();
            // The browser went away: stop reading Redis.
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    ConsoleAnswer {
        answer: Answer {
            content_type: "text/csv; charset=utf-8",
            ..Answer::text(200, String::new())
        },
        set_cookies: Vec::new(),
        attachment: Some(format!("dnd-{}.csv", s.tenant)),
        pieces: Some(rx),
    }
}

/// Read `data` as everything the console reads from a request before it touches the
/// store (a form body, a `Cookie` header, a query string), and render the pages that
/// take text; each parse's refusals returned as one line each. For the fuzz targets in
/// `fuzz/` only.
#[doc(hidden)]
pub fn fuzz_inputs(data: &[u8], now_ms: i64) -> Vec<String> {
    let mut refusals = Vec::new();
    let text = String::from_utf8_lossy(data);
    let _ = cookie(Some(&text), SESSION_COOKIE).map(is_token);
    let _ = cookie(Some(&text), SIGN_IN_COOKIE);
    for fields in [
        form(data),
        serde_urlencoded::from_str(&text).unwrap_or_default(),
    ] {
        for prefix in ["", "subject_"] {
            if let Some(subject) = Subject::from_fields(&fields, prefix) {
                let _ = subject.query();
            }
        }
        for (name, value) in &fields {
            if matches!(name.as_str(), "shown" | "dnd" | "row") && parse_row(value).is_none() {
                refusals.push(format!("{value:?} is not a channel and address"));
            }
        }
        let evidence = Evidence {
            agreed: field(&fields, "agreed").trim().to_string(),
            captured_at: captured_at(field(&fields, "captured_at")),
            method: field(&fields, "method").trim().to_string(),
            reference: field(&fields, "reference").trim().to_string(),
        };
        if let Err(e) = evidence.validate(now_ms) {
            refusals.push(e);
        }
        let _ = page::sign_in(field(&fields, "csrf"), Some(field(&fields, "tenant")));
        let _ = page::message(field(&fields, "q"), &text, Some((&text, &text)));
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name() {
        let header = Some("a=1; dndgate_console=abc ; other=x=y");
        assert_eq!(cookie(header, "dndgate_console"), Some("abc"));
        assert_eq!(cookie(header, "a"), Some("1"));
        assert_eq!(cookie(header, "other"), Some("x=y"));
        assert_eq!(cookie(header, "missing"), None);
        assert_eq!(cookie(None, "a"), None);
    }

    #[test]
    fn rows_read_back_normalised_and_refuse_what_is_not_one() {
        let (scope, address) = parse_row("sms|+14155550100").unwrap();
        assert_eq!(scope, Scope::Channel(Channel::Sms));
        assert_eq!(address.as_str(), "+14155550100");
        assert_eq!(
            parse_row("all|Alice@Example.com").unwrap().1.as_str(),
            "alice@example.com"
        );
        assert!(parse_row("sms|alice@example.com").is_none());
        assert!(parse_row("fax|+14155550100").is_none());
        assert!(parse_row("sms").is_none());
    }

    #[test]
    fn what_a_request_carries_is_read_without_panics_and_refused_in_one_line() {
        let now = 1_767_225_600_000;
        let inputs: [&[u8]; 6] = [
            b"shown=sms%7C%2B1&dnd=fax%7Cx&row=%7C&agreed=%0Aa&captured_at=2999-01-01T00%3A00&method=carrier+pigeon",
            b"subject_address=%FF%FE&subject_id=..&csrf=%00",
            b"dndgate_console=\xff\xfe; ;=;==",
            b"q=<script>&tenant=\"><b>",
            b"",
            &[0xff, 0x00, b'=', b'&', 0x80],
        ];
        for input in inputs {
            for refusal in fuzz_inputs(input, now) {
                assert!(
                    !refusal.is_empty() && !refusal.contains('\n'),
                    "{refusal:?}"
                );
            }
        }
        let refusals = fuzz_inputs(
            b"row=sms%7Cnobody&agreed=x&captured_at=2999-01-01T00%3A00&method=web+form&reference=r",
            now,
        );
        assert!(
            refusals
                .iter()
                .any(|r| r.contains("not a channel and address")),
            "{refusals:?}"
        );
        assert!(
            refusals.iter().any(|r| r.contains("evidence.captured_at")),
            "{refusals:?}"
        );
    }

    #[test]
    fn a_datetime_local_value_is_read_as_utc() {
        assert_eq!(captured_at("2026-11-27T10:00"), "2026-11-27T10:00:00Z");
        assert_eq!(captured_at("2026-11-27T10:00:30"), "2026-11-27T10:00:30Z");
        assert_eq!(
            captured_at("2026-11-27T10:00:00+01:00"),
            "2026-11-27T10:00:00+01:00"
        );
        assert_eq!(captured_at(" "), "");
    }
}
