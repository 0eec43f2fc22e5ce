//! `dndgate export`: a tenant's DND records as CSV on stdout.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::address::Address;
use crate::event::Scope;
use crate::store::{Record, Store, StoreError};
use crate::time::now_ms;

use super::{EXPORT_COLUMNS, export_cell, fatal, read_store, redis_settings};

/// `dndgate export`: write a tenant's DND records to stdout as CSV with the header
/// `scope,address,state,reason,source,event_ms,expires_ms` (times in milliseconds since
/// the Unix epoch; `expires_ms` only for temporary records). Rows come in no
/// particular order. A cell a spreadsheet would run as a formula is written with a
/// leading `'` ([`super::export_cell`]). `dndgate import --format dndgate` reads the file
/// back exactly.
///
/// Exit 0: complete. Exit 2: error (one line on stderr); if some rows were already
/// written, the output is incomplete and must not be used.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Columns: scope,address,state,reason,source,event_ms,expires_ms (times in ms since the Unix \
epoch). A cell that a spreadsheet would run as a formula (starting with =, +, -, @, tab or \
CR; not an E.164 number) is written with a leading ' and so is one starting with '. \
`dndgate import --format dndgate` reads the file back exactly.\n\n\
Exit 0: complete. 2: error (one line on stderr); any output already written is incomplete.")]
pub struct ExportArgs {
    /// The configuration file (for the Redis location and the tenants).
    #[arg(long, short, default_value = "dndgate.toml")]
    pub config: PathBuf,
    /// The tenant whose records to export.
    #[arg(long)]
    pub tenant: String,
    /// Only records of this scope: sms, voice, whatsapp, messenger, instagram, email,
    /// or all (the records that block every channel). Default: every scope.
    #[arg(long)]
    pub scope: Option<Scope>,
    /// Also export records that do not block now: cleared ones (lifted by an opt-in or
    /// an operator) and expired temporary ones. Default: only records that block now.
    /// Use it for a backup or a copy to another tenant that keeps the opt-in history.
    #[arg(long)]
    pub all_states: bool,
}

/// Which records an export writes.
#[derive(Debug, Clone, Copy)]
pub struct ExportFilter {
    /// Only this scope, or every scope.
    pub scope: Option<Scope>,
    /// Include records that do not block at `now_ms`.
    pub all_states: bool,
    /// The clock for "blocks now".
    pub now_ms: i64,
}

/// Write the tenant's records to `out` as CSV (header included) and return how many
/// rows were written: [`Export`]'s pieces in turn.
pub async fn export<W: Write>(
    store: &Store,
    tenant: &str,
    filter: ExportFilter,
    mut out: W,
) -> Result<u64, ExportError> {
    let mut export = Export::new(filter);
    while let Some(piece) = export.next_piece(store, tenant).await? {
        out.write_all(&piece)
            .map_err(|e| ExportError::Write(e.into()))?;
    }
    out.flush().map_err(|e| ExportError::Write(e.into()))?;
    Ok(export.written)
}

/// A tenant's export as CSV, one piece per page of [`Store::records_page`] (the header
/// first), so a caller can send it as it comes (the console's download) without
/// holding it whole. Pages until the cursor is back at 0; a bucket SCAN returns twice
/// is read once.
pub struct Export {
    filter: ExportFilter,
    cursor: u64,
    seen: HashSet<String>,
    started: bool,
    done: bool,
    /// Rows written so far.
    pub written: u64,
}

impl Export {
    /// An export not yet started.
    pub fn new(filter: ExportFilter) -> Export {
        Export {
            filter,
            cursor: 0,
            seen: HashSet::new(),
            started: false,
            done: false,
            written: 0,
        }
    }

    /// The next piece of the CSV; `None` once it is complete.
    pub async fn next_piece(
        &mut self,
        store: &Store,
        tenant: &str,
    ) -> Result<Option<Vec<u8>>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        if !self.started {
            self.started = true;
            writer
                .write_record(EXPORT_COLUMNS)
                .map_err(ExportError::Write)?;
        }
        let (next, records) = store
            .records_page(tenant, self.cursor, &mut self.seen)
            .await?;
        for (scope, address, record) in records {
            if self.filter.scope.is_some_and(|s| s != scope)
                || !(self.filter.all_states || record.blocks_at(self.filter.now_ms))
            {
                continue;
            }
            write_row(&mut writer, scope, &address, &record)?;
            self.written += 1;
        }
        self.cursor = next;
        self.done = next == 0;
        writer
            .into_inner()
            .map(Some)
            .map_err(|e| ExportError::Write(e.into_error().into()))
    }
}

fn write_row<W: Write>(
    writer: &mut csv::Writer<W>,
    scope: Scope,
    address: &Address,
    record: &Record,
) -> Result<(), ExportError> {
    let expires = record.expires_ms.map(|e| e.to_string()).unwrap_or_default();
    let event = record.event_ms.to_string();
    let cells = [
        scope.as_str(),
        address.as_str(),
        record.state.as_str(),
        &record.reason,
        &record.source,
        &event,
        &expires,
    ];
    writer
        .write_record(cells.map(export_cell).iter().map(|c| c.as_bytes()))
        .map_err(ExportError::Write)
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Redis could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Write(csv::Error),
}

/// Run `dndgate export`.
pub async fn export_cmd(args: ExportArgs) -> ExitCode {
    let settings = match redis_settings(&args.config, &args.tenant) {
        Ok(s) => s,
        Err(e) => return fatal("export", e),
    };
    let store = match read_store(&settings).await {
        Ok(s) => s,
        Err(e) => return fatal("export", format!("{e}; nothing was exported")),
    };
    let filter = ExportFilter {
        scope: args.scope,
        all_states: args.all_states,
        now_ms: now_ms(),
    };
    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    match export(&store, &args.tenant, filter, out).await {
        Ok(n) => {
            eprintln!("exported {n} records");
            ExitCode::SUCCESS
        }
        Err(e) => fatal(
            "export",
            format!("{e}; the output is incomplete, do not use it"),
        ),
    }
}
