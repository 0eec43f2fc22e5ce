//! `dndgate simulate`: sign a realistic webhook exactly as a provider would, post it to
//! the running gateway, and show the answer and the DND state it left.
//!
//! The events are the fixture folders' named cases (`tests/providers/<name>/cases.toml`,
//! embedded at build time by `build.rs`): the same payloads and signing tables the tests
//! send. What differs from a test is the key. A provider that signs with a secret the
//! tenant configures (Twilio's auth token, a Standard Webhooks `whsec_`) is signed with
//! that secret, read from the configuration at the path the folder's `[simulate]` table
//! names. A provider that signs with a key of its own (SendGrid, Telnyx) cannot be
//! imitated: the simulator signs with the fixtures' key, and says which public key the
//! tenant must list to accept it (a test setup only). SES is signed by AWS with a
//! certificate the gateway fetches from AWS, so it is not simulated; the command says
//! how to send a real test instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::event::Channel;
use crate::lookup::Lookup;
use crate::providers::Provider;
use fixture::{CaseFile, Folder, Outcome};
use sign::Request;

pub mod fixture;
pub mod sign;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

/// The tenant every fixture folder is written for.
const FIXTURE_TENANT: &str = "acme";

/// `dndgate simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The configuration file (the gateway's, with the tenant's provider section).
    #[arg(long, short, default_value = "dndgate.toml")]
    pub config: PathBuf,
    /// The tenant whose URL and secret are used.
    #[arg(long, required_unless_present = "list")]
    pub tenant: Option<String>,
    /// List every provider's events (or one provider's) and exit.
    #[arg(long)]
    pub list: bool,
    /// Print the request as a curl command instead of posting it.
    #[arg(long)]
    pub print: bool,
    /// The gateway's base URL to post to (default: http:// and the configuration's
    /// `listen` address).
    #[arg(long)]
    pub url: Option<String>,
    /// The provider (`twilio`, `sendgrid`, ...; `dndgate simulate --list` shows them).
    #[arg(required_unless_present = "list")]
    pub provider: Option<String>,
    /// The event (`stop`, `hard-bounce`, ...).
    #[arg(required_unless_present = "list")]
    pub event: Option<String>,
    /// The address to use instead of the fixture's (phone number or email address).
    pub address: Option<String>,
}

/// An embedded fixture folder.
struct Embedded(&'static [(&'static str, &'static str)]);

impl Folder for Embedded {
    fn read(&self, name: &str) -> Result<String, String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| format!("{name}: not in the fixture folder"))
    }
}

/// The fixture folder of `provider`, and its case file.
fn folder_of(provider: Provider) -> Result<(Embedded, CaseFile), String> {
    let name = provider.section();
    let files = embedded::FOLDERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, files)| Embedded(files))
        .ok_or_else(|| format!("{} has no fixture folder to simulate", provider.as_str()))?;
    let cases = CaseFile::parse(&files.read("cases.toml")?)?;
    Ok((files, cases))
}

/// A provider by its name, a route alias, or its folder's name.
fn provider_named(name: &str) -> Result<Provider, String> {
    Provider::ALL
        .iter()
        .copied()
        .find(|p| p.as_str() == name || p.section() == name || p.aliases().contains(&name))
        .ok_or_else(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown provider {name:?}; one of {}", names.join(", "))
        })
}

/// Run `dndgate simulate`.
pub async fn run(args: SimulateArgs) -> ExitCode {
    if args.list {
        return list(args.provider.as_deref());
    }
    match simulate(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dndgate simulate: {e}");
            ExitCode::from(2)
        }
    }
}

fn list(only: Option<&str>) -> ExitCode {
    let providers: Vec<Provider> = match only.map(provider_named) {
        Some(Ok(p)) => vec![p],
        Some(Err(e)) => {
            eprintln!("dndgate simulate: {e}");
            return ExitCode::from(2);
        }
        None => Provider::ALL.to_vec(),
    };
    for p in providers {
        let (_, cases) = match folder_of(p) {
            Ok(f) => f,
            Err(e) => {
                println!("{}: {e}", p.as_str());
                continue;
            }
        };
        println!("{}", p.as_str());
        if let Some(why) = &cases.simulate.unsupported {
            println!("  (not simulated: {why})");
        }
        for (event, case) in cases.events() {
            println!("  {event:<24} {}", case.name);
        }
    }
    ExitCode::SUCCESS
}

/// Sign, post and report one event; `Ok(false)` when the gateway's answer or the DND
/// state is not what the fixture expects.
async fn simulate(args: &SimulateArgs) -> Result<bool, String> {
    let (Some(tenant), Some(provider), Some(event)) = (
        args.tenant.as_deref(),
        args.provider.as_deref(),
        args.event.as_deref(),
    ) else {
        return Err("give --tenant, PROVIDER and EVENT (or --list)".into());
    };
    let provider = provider_named(provider)?;
    let (folder, cases) = folder_of(provider)?;
    if let Some(why) = &cases.simulate.unsupported {
        return Err(format!("{} is not simulated: {why}", provider.as_str()));
    }
    let case = cases.event(event).ok_or_else(|| {
        let events: Vec<&str> = cases.events().map(|(e, _)| e).collect();
        format!(
            "{} has no event {event:?}; one of {}",
            provider.as_str(),
            events.join(", ")
        )
    })?;

    let config = Config::load(&args.config).map_err(|e| e.to_string().replace('\n', " "))?;
    if !config.tenants.contains_key(tenant) {
        return Err(format!(
            "unknown tenant {tenant:?} in {}",
            args.config.display()
        ));
    }
    if !config.providers.tenant_has(provider, tenant) {
        return Err(format!(
            "tenant {tenant:?} has no {} section in {}",
            provider.section(),
            args.config.display()
        ));
    }
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    let raw: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let base = args.config.parent().unwrap_or(Path::new("."));

    let public_url = config.public_url.as_str();
    let prepared = prepare(
        &folder,
        &cases,
        case,
        Target {
            raw: &raw,
            base,
            tenant,
            public_url,
        },
        args.address.as_deref(),
    )?;
    let mut req = prepared.request;
    let table = fixture::resolve_sign_table(&folder, prepared.sign, &prepared.vars)?;
    fixture::signer(table)?.sign(&mut req)?;
    cases.set_headers(case, &prepared.vars, &mut req)?;
    // After signing: a signer may add to a GET's query (Vonage's `sig`).
    let path = req.url[public_url.len()..].to_string();

    let target = args.url.clone().unwrap_or_else(|| {
        let mut listen = config.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}")
    });
    let target = format!("{}{path}", target.trim_end_matches('/'));
    if args.print {
        println!("{}", curl(&req, &target));
        return Ok(true);
    }

    println!(
        "{} {event} for tenant {tenant}: {}",
        provider.as_str(),
        case.name
    );
    println!("{} {target}", req.method);
    let (status, answer) = post(&req, &target).await?;
    println!("answer: {status} {}", answer.trim_end());
    let mut as_expected = status == case.status;
    if !as_expected {
        println!("  the fixture expects {}", case.status);
    }

    let settings =
        Config::load_redis_only(&args.config).map_err(|e| e.to_string().replace('\n', " "))?;
    let lookup = Lookup::connect_with_timeout(&settings.redis.url(), settings.timeout)
        .map_err(|e| e.to_string())?;
    for expect in &prepared.expect {
        let channel: Channel = expect
            .channel
            .parse()
            .map_err(|_| format!("unknown channel {:?}", expect.channel))?;
        let verdict = lookup
            .check(&expect.tenant, channel, &expect.address)
            .await
            .map_err(|e| format!("lookup {}: {e}", expect.address))?;
        let now = Outcome::of(&verdict);
        let reason = verdict
            .record
            .as_ref()
            .map(|r| format!(" ({})", r.reason))
            .unwrap_or_default();
        match expect.mismatch(&verdict) {
            None => println!(
                "{} {}: {}{reason}, as expected",
                expect.channel,
                expect.address,
                now.as_str()
            ),
            Some(why) => {
                as_expected = false;
                println!("{} {}: {why}", expect.channel, expect.address);
            }
        }
    }
    Ok(as_expected)
}

/// Where a case is replayed: the configuration as written (`raw`, in the directory
/// `base`), the tenant, and the public URL the provider signs.
struct Target<'a> {
    raw: &'a toml::Table,
    base: &'a Path,
    tenant: &'a str,
    public_url: &'a str,
}

/// A case made ready for a tenant: its request (unsigned, for the public URL), its
/// sign table with the configured key, its vars, and its expectations for the tenant.
struct Prepared {
    request: Request,
    sign: toml::Table,
    vars: fixture::Vars,
    expect: Vec<fixture::Expect>,
}

fn prepare(
    folder: &Embedded,
    cases: &CaseFile,
    case: &fixture::Case,
    target: Target<'_>,
    address: Option<&str>,
) -> Result<Prepared, String> {
    let Target {
        raw,
        base,
        tenant,
        public_url,
    } = target;
    if case.tamper.is_some() {
        return Err("a tampered case is not an event to simulate".into());
    }
    let sim = &cases.simulate;
    let mut overrides = BTreeMap::new();
    // A var the configuration does not set keeps the fixture's value: a tenant without
    // Messenger pages still replays its WhatsApp events, and a Messenger event then shows
    // what the gateway says of a page no tenant lists.
    for (name, path) in &sim.vars {
        if let Some(value) = fixture::lookup_path(raw, path, tenant) {
            overrides.insert(name.clone(), value.to_string());
        }
    }
    let mut expect = case.expect.clone();
    if let Some(address) = address {
        let plain = written_vars(cases, case)?;
        let old = case
            .expect
            .first()
            .map(|e| e.address.clone())
            .ok_or("this event checks no address, so it takes none")?;
        let mut found = false;
        for (name, value) in plain {
            if let Some(new) = replace_address(&value, &old, address) {
                overrides.insert(name, new);
                found = true;
            }
        }
        if !found {
            return Err(format!(
                "this event's payload has its address ({old}) built in; it takes no ADDRESS"
            ));
        }
        for e in &mut expect {
            if e.address == old {
                e.address = address.to_string();
            }
        }
    }
    let vars = fixture::Vars::new(&cases.defaults, case, &overrides)?;
    let mut request = cases.request(folder, case, &vars, public_url)?;
    let path: Vec<&str> = request.url[public_url.len()..]
        .split('/')
        .map(|s| if s == FIXTURE_TENANT { tenant } else { s })
        .collect();
    request.url = format!("{public_url}{}", path.join("/"));

    let mut sign = cases.sign_table(case)?;
    // A field the case sets itself (another key, another method) is the case's own;
    // only what it leaves to `[defaults.sign]` comes from the configuration.
    let own = |field: &str| case.sign.as_ref().is_some_and(|t| t.contains_key(field));
    let mut from_config: Vec<(&str, &str)> = sim
        .sign
        .iter()
        .map(|(f, p)| (f.as_str(), p.as_str()))
        .collect();
    if let Some(path) = &sim.key {
        from_config.push(("key", path));
    }
    for (field, spec) in from_config {
        if own(field) || !sign.contains_key(field) {
            continue;
        }
        let (path, default) = match spec.split_once(" | ") {
            Some((p, d)) => (p.trim(), Some(d.trim())),
            None => (spec, None),
        };
        let value = match (fixture::lookup_path(raw, path, tenant), default) {
            (Some(v), _) => crate::secret::resolve(v, base)
                .map_err(|e| format!("{}: {e}", path_for(path, tenant)))?
                .expose()
                .to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(format!(
                    "the configuration has no {}",
                    path_for(path, tenant)
                ));
            }
        };
        sign.insert(field.into(), value.into());
    }
    if let Some(path) = &sim.provider_key {
        let fixture_config: toml::Table =
            toml::from_str(&folder.read("gateway.toml")?).map_err(|e| e.to_string())?;
        let key = fixture::lookup_path(&fixture_config, path, FIXTURE_TENANT)
            .ok_or_else(|| format!("the fixture's gateway.toml has no {path}"))?;
        let listed = fixture::lookup_all(raw, path, tenant);
        if !listed.contains(&key) {
            return Err(format!(
                "this provider signs with a key of its own, which a simulator cannot use; \
                 it signs with dndgate's test key instead. To accept simulated events (on a \
                 test setup only), add \"{key}\" to {}",
                path_for(path, tenant)
            ));
        }
    }
    for e in &mut expect {
        if e.tenant == FIXTURE_TENANT {
            e.tenant = tenant.to_string();
        }
    }
    Ok(Prepared {
        request,
        sign,
        vars,
        expect,
    })
}

/// The case's own vars (laid over the defaults'), expanded.
fn written_vars(
    cases: &CaseFile,
    case: &fixture::Case,
) -> Result<BTreeMap<String, String>, String> {
    let vars = fixture::Vars::new(&cases.defaults, case, &BTreeMap::new())?;
    let mut names: Vec<&String> = cases.defaults.vars.keys().collect();
    names.extend(case.vars.keys());
    Ok(names
        .into_iter()
        .filter_map(|n| vars.get(n).map(|v| (n.clone(), v.to_string())))
        .collect())
}

/// `value` (a var as written) with the address `old` in it replaced by `new`, or `None`
/// when it does not hold `old`: the address itself (an email address in any case), its
/// percent-encoding (a form), the number without its `+` (Vonage, Plivo), or the number
/// after a channel prefix (`whatsapp:+1...`, Twilio).
fn replace_address(value: &str, old: &str, new: &str) -> Option<String> {
    if value == old || (old.contains('@') && value.eq_ignore_ascii_case(old)) {
        return Some(new.to_string());
    }
    let decoded = decode(value);
    if decoded == old {
        return Some(encode(new));
    }
    if old.strip_prefix('+') == Some(value) {
        return Some(new.trim_start_matches('+').to_string());
    }
    let (prefix, rest) = decoded.rsplit_once(':')?;
    (rest == old && !prefix.is_empty()).then(|| {
        let replaced = format!("{prefix}:{new}");
        if decoded == value {
            replaced
        } else {
            encode(&replaced)
        }
    })
}

fn path_for(path: &str, tenant: &str) -> String {
    path.replace("{tenant}", tenant)
}

/// A form value's percent-decoding (`%2B` -> `+`).
fn decode(value: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={value}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
        .unwrap_or_else(|| value.to_string())
}

/// A form value's percent-encoding.
fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s[2..].to_string())
        .unwrap_or_else(|_| value.to_string())
}

async fn post(req: &Request, target: &str) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("bad method {:?}", req.method))?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut builder = client.request(method, target).body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let answer = builder
        .send()
        .await
        .map_err(|e| format!("cannot post to {target}: {e} (is the gateway running?)"))?;
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    Ok((status, text))
}

/// The request as a shell command.
fn curl(req: &Request, target: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut out = format!("curl -sS -X {} {}", req.method, quote(target));
    for (name, value) in &req.headers {
        out.push_str(&format!(" \\\n  -H {}", quote(&format!("{name}: {value}"))));
    }
    if !req.body.is_empty() {
        out.push_str(&format!(
            " \\\n  --data-binary {}",
            quote(&String::from_utf8_lossy(&req.body))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_a_fixture_folder_with_events_or_a_reason() {
        for p in Provider::ALL {
            let (_, cases) = folder_of(*p).unwrap();
            assert!(
                cases.events().next().is_some() || cases.simulate.unsupported.is_some(),
                "{} has no event to simulate and no reason why",
                p.as_str()
            );
        }
    }

    #[test]
    fn an_address_is_found_however_the_payload_writes_it() {
        let new = "+15550001111";
        assert_eq!(
            replace_address("+15550100001", "+15550100001", new).unwrap(),
            new
        );
        assert_eq!(
            replace_address("%2B15550100001", "+15550100001", new).unwrap(),
            "%2B15550001111"
        );
        assert_eq!(
            replace_address("15550100001", "+15550100001", new).unwrap(),
            "15550001111"
        );
        assert_eq!(
            replace_address("whatsapp%3A%2B15550100001", "+15550100001", new).unwrap(),
            "whatsapp%3A%2B15550001111"
        );
        assert_eq!(
            replace_address("Hard@Example.com", "hard@example.com", "b@example.org").unwrap(),
            "b@example.org"
        );
        assert_eq!(replace_address("+15550100002", "+15550100001", new), None);
        assert_eq!(replace_address("STOP", "+15550100001", new), None);
    }

    #[test]
    fn form_values_round_trip() {
        assert_eq!(decode("%2B13125550100"), "+13125550100");
        assert_eq!(encode("+13125550100"), "%2B13125550100");
    }

    #[test]
    fn curl_quotes_what_the_shell_would_split() {
        let req = Request {
            method: "POST".into(),
            url: String::new(),
            headers: vec![("X-A".into(), "it's".into())],
            body: b"a=b c".to_vec(),
        };
        let cmd = curl(&req, "http://127.0.0.1:8080/x");
        assert!(cmd.contains(r"-H 'X-A: it'\''s'"), "{cmd}");
        assert!(cmd.contains("--data-binary 'a=b c'"), "{cmd}");
    }
}
