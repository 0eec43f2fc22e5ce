//! The `dndgate` command line: `serve`, `config check`, `check`, the operator verbs,
//! the bulk verbs and `simulate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, RedisTarget};
use crate::event::Channel;
use crate::lookup::{self, Lookup, LookupError};
use crate::managed::ManagedRedisServer;
use crate::pipeline::Gateway;
use crate::store::Store;

/// dndgate: turns messaging providers' webhooks into Do-Not-Disturb flags in Redis.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (and, with redis_url = "managed", its redis-server).
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "dndgate.toml")]
        config: PathBuf,
        /// Refuse to start (exit 2) unless Redis persists every write (appendonly yes)
        /// and never evicts (maxmemory-policy noeviction); without it, a warning.
        #[arg(long)]
        strict: bool,
        /// Log lines as text for people or as one JSON object a line for a log
        /// pipeline (also `DNDGATE_LOG_FORMAT`).
        #[arg(long, value_enum, env = "DNDGATE_LOG_FORMAT", default_value = "text")]
        log_format: LogFormat,
    },
    /// Work with the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// May this address be sent to on this channel? Exit 0: allowed, 1: blocked (DND),
    /// 2: error (do not send). JSON on stdout. The configuration file gives the Redis
    /// location.
    Check {
        #[command(flatten)]
        tenancy: Tenancy,
        /// The channel: sms, voice, whatsapp, messenger, instagram or email.
        #[arg(long)]
        channel: String,
        /// The address (E.164 phone number, email address, PAGE_ID:USER_ID).
        address: String,
    },
    /// Set a DND record by hand (permanent, or temporary with --temporary).
    Set {
        #[command(flatten)]
        target: Target,
        /// A temporary record (for the tenant's temporary_ttl) instead of a permanent one.
        #[arg(long)]
        temporary: bool,
        /// Why (recorded as operator:REASON; at most 40 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Clear a DND record. A permanent one needs consent evidence: all four of
    /// --agreed, --captured-at, --method and --reference. Exit 0: cleared, 1: refused
    /// for want of evidence (nothing changed), 2: error.
    Clear {
        #[command(flatten)]
        target: Target,
        /// What the contact agreed to.
        #[arg(long)]
        agreed: Option<String>,
        /// When the consent was captured (RFC 3339, not in the future).
        #[arg(long)]
        captured_at: Option<String>,
        /// How it was captured: web form, paper form, recorded call, verbal, email,
        /// keyword, double opt-in, in app, api or import.
        #[arg(long)]
        method: Option<String>,
        /// Where the proof is (submission id, URL, file).
        #[arg(long)]
        reference: Option<String>,
    },
    /// Print the audit entries of an address, oldest first, one JSON object a line.
    History {
        #[command(flatten)]
        tenancy: Tenancy,
        /// The address (phone number, email address or PAGE_ID:USER_ID).
        address: String,
    },
    /// Mint an unsubscribe link for an address and a scope (what the contact leaves),
    /// with its List-Unsubscribe and List-Unsubscribe-Post header values (JSON on
    /// stdout). The configuration file needs a `[links]` table.
    Link {
        #[command(flatten)]
        record: RecordArgs,
        /// A campaign to record with the unsubscribe (at most 12 of A-Z a-z 0-9 _ -).
        #[arg(long)]
        campaign: Option<String>,
        /// Make the link lapse after this long (e.g. 30d); by default after the tenant's
        /// `page.link_expires_after` (`links.expires_after`, 90 days unless configured).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Import existing suppression lists (SendGrid and Twilio CSV exports, a plain
    /// address list, or a dndgate export) as permanent DND records.
    Import(crate::bulk::ImportArgs),
    /// Export a tenant's DND records as CSV.
    Export(crate::bulk::ExportArgs),
    /// Read a contacts CSV on stdin and write only the rows that may be sent to.
    Filter(crate::bulk::FilterArgs),
    /// Sign a provider's webhook as the provider would (with the tenant's configured
    /// secret), post it to the running gateway, and show its answer and the DND state
    /// it left. Exit 0: as the fixture expects, 1: something else happened, 2: error.
    /// `--list` shows every provider's events.
    Simulate(crate::simulate::SimulateArgs),
}

/// The configuration file and the tenant, which every per-tenant verb takes.
#[derive(Debug, clap::Args)]
pub struct Tenancy {
    /// The configuration file.
    #[arg(long, short, default_value = "dndgate.toml")]
    config: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
}

/// Which record a verb works on: a tenant's address in a scope.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    tenancy: Tenancy,
    /// A channel (sms, voice, whatsapp, messenger, instagram, email) or all.
    #[arg(long)]
    scope: String,
    /// The address.
    address: String,
}

/// Which record an operator verb works on, and who is changing it.
#[derive(Debug, clap::Args)]
pub struct Target {
    #[command(flatten)]
    record: RecordArgs,
    /// Who is making the change (recorded in the audit entry).
    #[arg(long)]
    actor: Option<String>,
}

/// `dndgate config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration, resolve every secret and report every problem, per
    /// tenant and provider. Exit 0 when it is valid.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "dndgate.toml")]
        config: PathBuf,
    },
}

/// Run the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dndgate: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                strict,
                log_format,
            } => serve(&config, strict, log_format).await,
            Command::Config {
                command: ConfigCommand::Check { config },
            } => config_check(&config),
            Command::Check {
                tenancy,
                channel,
                address,
            } => check(&tenancy.config, &tenancy.tenant, &channel, &address).await,
            Command::Set {
                target,
                temporary,
                reason,
            } => set(&target, temporary, reason.as_deref()).await,
            Command::Clear {
                target,
                agreed,
                captured_at,
                method,
                reference,
            } => clear(&target, [agreed, captured_at, method, reference]).await,
            Command::History { tenancy, address } => {
                history(&tenancy.config, &tenancy.tenant, &address).await
            }
            Command::Link {
                record,
                campaign,
                expires_in,
            } => link(&record, campaign.as_deref(), expires_in.as_deref()).await,
            Command::Import(args) => crate::bulk::import_cmd(args).await,
            Command::Export(args) => crate::bulk::export_cmd(args).await,
            Command::Filter(args) => crate::bulk::filter_cmd(args).await,
            Command::Simulate(args) => crate::simulate::run(args).await,
        }
    })
}

/// How `serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line an event.
    Text,
    /// One JSON object a line, with the request span's fields (provider, tenant,
    /// outcome, status) on every event inside it.
    Json,
}

/// The log writer of `dndgate serve`: each event's line goes to stderr through
/// [`crate::redact::log_line`], so no address reaches the log in full on any path
/// (unless `log_addresses = "full"`), whatever a call site or a library wrote.
struct MaskedStderr;

/// One log line on its way to stderr, masked when complete.
struct MaskedLine(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedLine;

    fn make_writer(&'a self) -> MaskedLine {
        MaskedLine(Vec::with_capacity(256))
    }
}

impl std::io::Write for MaskedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.0);
        let line = crate::redact::log_line(&text);
        let result = std::io::stderr().write_all(line.as_bytes());
        self.0.clear();
        result
    }
}

impl Drop for MaskedLine {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DNDGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MaskedStderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colour codes only on a terminal: a log file or journal gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

fn config_check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("{}: ok", path.display());
            for warning in config.warnings() {
                println!("  warning: {warning}");
            }
            println!(
                "  listen {}, public_url {}",
                config.listen, config.public_url
            );
            match config.admin_listen {
                Some(addr) => println!("  admin_listen {addr} (/metrics, detailed /readyz)"),
                None => println!("  admin_listen off"),
            }
            match &config.redis {
                RedisTarget::Url(u) => println!("  redis {}", crate::redact::url(u)),
                RedisTarget::Managed(m) => println!(
                    "  redis managed on 127.0.0.1:{} (data in {}, appendfsync {})",
                    m.port,
                    m.dir.display(),
                    m.appendfsync
                ),
            }
            for t in config.tenants.values() {
                let providers: Vec<&str> = crate::providers::Provider::ALL
                    .iter()
                    .filter(|p| config.providers.tenant_has(**p, &t.id))
                    .map(|p| p.as_str())
                    .collect();
                let providers = if providers.is_empty() {
                    "none".to_string()
                } else {
                    providers.join(", ")
                };
                let p = &t.policy;
                let also: Vec<&str> = p.sms_opt_out_also.iter().map(|c| c.as_str()).collect();
                println!(
                    "  tenant {}: {} API token(s); providers: {providers}; temporary records last {}, {} failures within {} make them permanent; an SMS STOP also covers [{}]",
                    t.id,
                    t.api_tokens.len(),
                    crate::config::format_duration(p.temporary_ttl),
                    p.escalate_after,
                    crate::config::format_duration(p.escalate_window),
                    also.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(path: &Path, strict: bool, log_format: LogFormat) -> ExitCode {
    init_logging(log_format);
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    crate::redact::set_log_addresses(config.log_addresses);
    for warning in config.warnings() {
        tracing::warn!(%warning, "configuration");
    }
    let managed = match &config.redis {
        RedisTarget::Managed(m) => match ManagedRedisServer::start(m.clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("dndgate: {e}");
                return ExitCode::from(2);
            }
        },
        RedisTarget::Url(_) => None,
    };
    let code = run_gateway(config, strict).await;
    if let Some(server) = managed {
        server.stop().await;
    }
    code
}

async fn run_gateway(config: Config, strict: bool) -> ExitCode {
    // First: from here on a SIGTERM is a clean stop, even one that comes during start-up.
    let shutdown = shutdown_signal();
    let store = match Store::open(&config.redis.url(), config.store_options()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dndgate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "redis is not answering yet; webhooks go to the spool until it does");
    }
    if let Err(code) = startup_checks(&store, strict).await {
        return code;
    }
    let listener = match crate::server::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dndgate: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(2);
        }
    };
    let admin = match config.admin_listen {
        Some(addr) => match crate::server::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!(
                    "dndgate: cannot listen on {addr} (admin_listen, for /metrics and the detailed /readyz): {e}; choose another address, or admin_listen = \"off\""
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    tracing::info!(listen = %config.listen, public_url = %config.public_url, "dndgate serving");
    match config.admin_listen {
        Some(addr) => tracing::info!(admin_listen = %addr, "admin listener: /metrics, /readyz"),
        None => tracing::info!("admin listener off (admin_listen = \"off\"): no /metrics"),
    }
    let config = Arc::new(config);
    // The spool (SPEC section 8): replayed now, and whenever Redis returns.
    let spool = match crate::spool::Spool::open_with_limits(&config.spool_dir, config.spool_limits)
    {
        Ok(spool) => {
            spool.start_replayer(store.clone(), config.clone());
            Some(spool)
        }
        Err(e) => {
            tracing::error!(error = %e, "no spool: webhooks get 503 while redis is down");
            None
        }
    };
    // Events out (issue 14): workers for every enabled endpoint, and the audit
    // stream's retention.
    let outbound = match crate::outbound::Outbound::start(store.clone(), config.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dndgate: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway = Gateway {
        config,
        store,
        fetch: match crate::fetch::HttpsFetch::new() {
            Ok(f) => Arc::new(f),
            Err(e) => {
                eprintln!("dndgate: {e}");
                return ExitCode::from(2);
            }
        },
        spool: spool.clone(),
    };
    crate::server::run_with_admin(gateway, listener, admin, shutdown).await;
    outbound.shutdown().await;
    if let Some(spool) = spool {
        spool.shutdown().await;
    }
    ExitCode::SUCCESS
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when the future is first polled: a SIGTERM that arrives before the accept loop first
/// waits on the future must not meet the default action, which kills the process
/// without a clean shutdown (seen under load: a SIGTERM right after the first answer).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(&mut term) => {},
                _ = recv(&mut interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}

async fn check(path: &Path, tenant: &str, channel: &str, address: &str) -> ExitCode {
    let fail = |message: String| fail("check", &format!("{message}; do not send"));
    let settings = match Config::load_redis_only(path) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string().replace('\n', " ")),
    };
    if !settings.tenants.iter().any(|t| t == tenant) {
        return fail(format!("unknown tenant {tenant:?} in {}", path.display()));
    }
    let channel: Channel = match channel.parse() {
        Ok(c) => c,
        Err(e) => return fail(format!("{e}")),
    };
    let lookup = match Lookup::connect_with_timeout(&settings.redis.url(), settings.timeout) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    match lookup.check(tenant, channel, address).await {
        Ok(verdict) => {
            let normalised = crate::address::Address::parse(channel, address)
                .map(|a| a.to_string())
                .unwrap_or_else(|_| address.to_string());
            println!(
                "{}",
                lookup::verdict_json(tenant, channel, &normalised, &verdict)
            );
            if verdict.blocked {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(LookupError::Store(e @ crate::store::StoreError::Spooled(_))) => fail(e.to_string()),
        Err(LookupError::Store(e)) => fail(format!(
            "{e} (redis at {}; with redis_url = \"managed\" the gateway must be running)",
            settings.redis.display_url()
        )),
        Err(e) => fail(e.to_string()),
    }
}

/// Print a one-line error (and the same as JSON on stdout) and give exit code 2.
fn fail(verb: &str, message: &str) -> ExitCode {
    println!("{}", json!({ "error": message }));
    eprintln!("dndgate {verb}: {message}");
    ExitCode::from(2)
}

/// Load the whole configuration and open the store, for verbs that change records.
pub fn open(path: &Path) -> Result<(Config, Store), String> {
    let config = Config::load(path).map_err(|e| e.to_string().replace('\n', " "))?;
    let store =
        Store::open(&config.redis.url(), config.store_options()).map_err(|e| e.to_string())?;
    Ok((config, store))
}

fn target_address(
    record: &RecordArgs,
) -> Result<(crate::event::Scope, crate::address::Address), String> {
    let scope: crate::event::Scope = record.scope.parse().map_err(|e| format!("{e}"))?;
    let address = match scope {
        crate::event::Scope::Channel(c) => crate::address::Address::parse(c, &record.address),
        crate::event::Scope::All => crate::address::Address::parse_any(&record.address),
    }
    .map_err(|e| e.to_string())?;
    Ok((scope, address))
}

fn print_changes(outcomes: &crate::state::Outcomes) {
    for c in &outcomes.changes {
        println!(
            "{}",
            json!({
                "address": c.address.as_str(),
                "scope": c.scope.as_str(),
                "outcome": c.outcome.as_str(),
                "state": c.record.as_ref().map(|r| r.state.as_str()),
                "reason": c.record.as_ref().map(|r| r.reason.as_str()),
            })
        );
    }
}

async fn set(target: &Target, temporary: bool, reason: Option<&str>) -> ExitCode {
    let run = async {
        let (config, store) = open(&target.record.tenancy.config)?;
        let tenant = config
            .tenants
            .get(&target.record.tenancy.tenant)
            .ok_or_else(|| format!("unknown tenant {:?}", target.record.tenancy.tenant))?;
        let (scope, address) = target_address(&target.record)?;
        let change = crate::state::OperatorChange {
            scope,
            address: &address,
            actor: target.actor.as_deref(),
            now_ms: crate::time::now_ms(),
        };
        let permanence = if temporary {
            crate::classify::Permanence::Temporary
        } else {
            crate::classify::Permanence::Permanent
        };
        crate::state::operator_set(&store, tenant, &change, permanence, reason)
            .await
            .map_err(|e| e.to_string())
    };
    match run.await {
        Ok(outcomes) => {
            print_changes(&outcomes);
            ExitCode::SUCCESS
        }
        Err(e) => fail("set", &e),
    }
}

async fn clear(target: &Target, evidence: [Option<String>; 4]) -> ExitCode {
    let given = evidence.iter().filter(|e| e.is_some()).count();
    if given != 0 && given != 4 {
        return fail(
            "clear",
            "consent evidence needs all of --agreed, --captured-at, --method and --reference",
        );
    }
    let [agreed, captured_at, method, reference] = evidence;
    let evidence = match (agreed, captured_at, method, reference) {
        (Some(agreed), Some(captured_at), Some(method), Some(reference)) => {
            Some(crate::state::Evidence {
                agreed,
                captured_at,
                method,
                reference,
            })
        }
        _ => None,
    };
    let run = async {
        let (config, store) = open(&target.record.tenancy.config).map_err(|e| (2, e))?;
        let tenant = config
            .tenants
            .get(&target.record.tenancy.tenant)
            .ok_or_else(|| {
                (
                    2,
                    format!("unknown tenant {:?}", target.record.tenancy.tenant),
                )
            })?;
        let (scope, address) = target_address(&target.record).map_err(|e| (2, e))?;
        let change = crate::state::OperatorChange {
            scope,
            address: &address,
            actor: target.actor.as_deref(),
            now_ms: crate::time::now_ms(),
        };
        crate::state::operator_clear(&store, tenant, &change, evidence.as_ref())
            .await
            .map_err(|e| match e {
                crate::state::OperatorError::NeedsEvidence(_) => (1, e.to_string()),
                other => (2, other.to_string()),
            })
    };
    match run.await {
        Ok(outcomes) => {
            print_changes(&outcomes);
            ExitCode::SUCCESS
        }
        Err((code, e)) => {
            fail("clear", &e);
            ExitCode::from(code)
        }
    }
}

async fn history(path: &Path, tenant: &str, raw: &str) -> ExitCode {
    let run = async {
        let (config, store) = open(path)?;
        if !config.tenants.contains_key(tenant) {
            return Err(format!("unknown tenant {tenant:?}"));
        }
        let address = crate::address::Address::parse_any(raw).map_err(|e| e.to_string())?;
        store
            .history_window(tenant, &address, crate::api::HISTORY_SCAN)
            .await
            .map_err(|e| e.to_string())
    };
    match run.await {
        Ok((entries, window_start)) => {
            // On stderr, so stdout stays one JSON entry a line.
            match window_start {
                Some(ms) => eprintln!(
                    "history kept from {} (older entries are trimmed after audit_retention)",
                    crate::time::format_rfc3339_ms(ms)
                ),
                None => eprintln!("history: nothing kept for this address's shard"),
            }
            for fields in entries {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                println!("{}", serde_json::Value::Object(object));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("history", &e),
    }
}

async fn link(record: &RecordArgs, campaign: Option<&str>, expires_in: Option<&str>) -> ExitCode {
    let run = async {
        let (config, store) = open(&record.tenancy.config)?;
        let tenant = &record.tenancy.tenant;
        let tenant = config
            .tenants
            .get(tenant)
            .ok_or_else(|| format!("unknown tenant {tenant:?}"))?;
        let ring = config
            .links
            .as_ref()
            .ok_or("unsubscribe links are not configured: add [links] keys and sign_with")?;
        let (scope, address) = target_address(record)?;
        let expires_min =
            crate::api::link_expiry(expires_in, tenant.page.link_expiry, crate::time::now_ms())
                .map_err(|e| e.message)?;
        crate::links::mint_link(
            &store,
            ring,
            &config.public_url,
            &tenant.id,
            &address,
            scope,
            campaign,
            expires_min,
        )
        .await
        .map_err(|e| e.to_string())
    };
    match run.await {
        Ok(link) => {
            println!(
                "{}",
                json!({
                    "url": link.url,
                    "token": link.token,
                    "headers": {
                        "List-Unsubscribe": link.list_unsubscribe,
                        "List-Unsubscribe-Post": link.list_unsubscribe_post,
                    },
                })
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("link", &e),
    }
}

/// SPEC section 8: check that Redis keeps what it acknowledges (`appendonly yes`) and
/// never evicts (`maxmemory-policy noeviction`). Each problem is one loud warning line;
/// with `--strict` any problem, or a Redis that cannot be asked, refuses the start.
/// Without `--strict`, a Redis that is down at start is checked once it answers.
async fn startup_checks(store: &Store, strict: bool) -> Result<(), ExitCode> {
    let report = store.durability_report().await;
    match report {
        Ok(report) => {
            let problems = report.problems();
            if strict && !problems.is_empty() {
                for p in &problems {
                    eprintln!("dndgate serve --strict: refusing to start: {p}");
                }
                return Err(ExitCode::from(2));
            }
            log_durability(&problems);
        }
        Err(e) if strict => {
            eprintln!(
                "dndgate serve --strict: refusing to start: could not check redis persistence and eviction: {e}"
            );
            return Err(ExitCode::from(2));
        }
        Err(e) => {
            tracing::warn!(
                "could not check redis persistence and eviction yet ({e}); checking again once redis answers"
            );
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    if let Ok(report) = store.durability_report().await {
                        log_durability(&report.problems());
                        return;
                    }
                }
            });
        }
    }
    Ok(())
}

fn log_durability(problems: &[String]) {
    if problems.is_empty() {
        tracing::info!(
            "redis persistence and eviction checked: appendonly yes, maxmemory-policy noeviction"
        );
    }
    for p in problems {
        tracing::warn!("{p} (dndgate serve --strict refuses to start on this)");
    }
}
