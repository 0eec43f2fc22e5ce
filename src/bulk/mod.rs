//! Bulk work on a tenant's records: `import` of existing suppression lists, `export`,
//! and `filter` (the "all contacts except DND" smart list).
//!
//! All three go through the store's public API ([`crate::state::apply`],
//! [`crate::store::Store::export_page`], [`crate::lookup::Lookup::check_many`]) and
//! never build a Redis key: the layout stays the store's business.
//!
//! - [`import`]: a SendGrid or Twilio export, a plain address list or a dndgate export
//!   becomes DND records, row by row, each row one atomic apply with a deterministic
//!   event id, so importing the same file twice changes nothing the second time.
//! - [`export`]: the tenant's records as CSV, in the shape `import --format dndgate`
//!   reads back.
//! - [`filter`]: a contacts CSV in, only the rows that may be sent to out; fails closed.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, RedisSettings};
use crate::store::{Store, StoreOptions};

pub mod export;
pub mod filter;
pub mod import;

pub use export::{ExportArgs, export_cmd};
pub use filter::{FilterArgs, filter_cmd};
pub use import::{ImportArgs, import_cmd};

/// The columns of a dndgate export, in order: the contract between `export` and
/// `import --format dndgate`.
pub const EXPORT_COLUMNS: [&str; 7] = [
    "scope",
    "address",
    "state",
    "reason",
    "source",
    "event_ms",
    "expires_ms",
];

/// A cell as `export` writes it, safe to open in a spreadsheet. A cell that a
/// spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, which spreadsheets read as "text follows"; so
/// does a cell that starts with `'` itself, so that [`import_cell`] can undo it exactly.
/// A normalised E.164 number (`+` and digits only) stays as it is: it is the address
/// senders look up, and a spreadsheet reads it as a number, not a formula.
pub fn export_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    let is_e164 = |s: &str| {
        s.strip_prefix('+')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    match cell.as_bytes().first() {
        Some(b'=' | b'-' | b'@' | b'\t' | b'\r' | b'\'') => format!("'{cell}").into(),
        Some(b'+') if !is_e164(cell) => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The value of a cell of a dndgate export: [`export_cell`] undone (one leading `'`
/// dropped).
pub fn import_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// Print `dndgate VERB: MESSAGE` as one line on stderr and return exit code 2, the
/// "nothing could be done / do not trust the output" code of every bulk verb.
fn fatal(verb: &str, message: impl std::fmt::Display) -> ExitCode {
    // Configuration errors span several lines; callers grep one.
    let line = message.to_string().replace('\n', " ");
    eprintln!("dndgate {verb}: {line}");
    ExitCode::from(2)
}

/// The Redis settings of `path`, with `tenant` checked against the tenants it names.
/// `export` and `filter` only read, so they need no provider secret resolved.
fn redis_settings(path: &Path, tenant: &str) -> Result<RedisSettings, String> {
    let settings = Config::load_redis_only(path).map_err(|e| e.to_string())?;
    if !settings.tenants.iter().any(|t| t == tenant) {
        return Err(format!("unknown tenant {tenant:?} in {}", path.display()));
    }
    Ok(settings)
}

/// A store for read-only work, and a PING so that "Redis is down" is reported before
/// any output is written.
async fn read_store(settings: &RedisSettings) -> Result<Store, String> {
    let store = Store::open(
        &settings.redis.url(),
        StoreOptions {
            timeout: settings.timeout,
            dedup_ttl: crate::config::DEFAULT_DEDUP_TTL,
        },
    )
    .map_err(|e| e.to_string())?;
    store.ping().await.map_err(|e| {
        format!(
            "{e} (redis at {}; with redis_url = \"managed\" the gateway must be running)",
            settings.redis.display_url()
        )
    })?;
    Ok(store)
}

/// The column names of a CSV header: trimmed, without a byte-order mark, as written.
pub(crate) fn header_names(header: &csv::ByteRecord) -> Vec<String> {
    header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect()
}
