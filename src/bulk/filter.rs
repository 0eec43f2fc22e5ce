//! `dndgate filter`: a contacts CSV in, only the rows that may be sent to out.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use csv::ByteRecord;
use tokio::task::JoinHandle;

use crate::event::Channel;
use crate::lookup::{BatchItem, Lookup, LookupError, MAX_BATCH};

use super::{fatal, read_store, redis_settings};

/// The address columns tried, in order, when `--column` is not given (compared without
/// regard to case).
pub const ADDRESS_COLUMNS: [&str; 5] = ["phone", "phone_number", "mobile", "email", "address"];

/// Chunks of [`MAX_BATCH`] rows looked up at once: enough to keep Redis busy while the
/// next chunk is parsed and the previous one written, few enough to bound memory.
const IN_FLIGHT: usize = 4;

/// `dndgate filter`: read a contacts CSV on stdin and write to stdout only the rows
/// that may be sent to on the channel, in input order, header kept. A row is dropped
/// when its address is on DND, cannot be read as an address for the channel, or is
/// missing. A summary goes to stderr: `read N, sendable S, blocked B, invalid I`.
///
/// Exit 0: the output is complete. Exit 2: error (one line on stderr), e.g. Redis
/// stopped answering part-way: rows already written were checked and may be sent, but
/// the output is incomplete, so treat the whole run as failed. Redis down at the start
/// writes nothing.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Rows whose address is on DND, missing, or not an address on the channel are left out; the \
header and the other rows are written in input order. Summary on stderr: \
`read N, sendable S, blocked B, invalid I`.\n\n\
Exit 0: the output is complete. 2: error (one line on stderr). If Redis fails part-way, the \
rows already written were checked, but the output is incomplete: treat the run as failed. \
Redis down at the start, an unknown tenant or no address column: nothing is written.")]
pub struct FilterArgs {
    /// The configuration file (for the Redis location and the tenants).
    #[arg(long, short, default_value = "dndgate.toml")]
    pub config: PathBuf,
    /// The tenant whose DND records apply.
    #[arg(long)]
    pub tenant: String,
    /// The channel the campaign goes out on: sms, voice, whatsapp, messenger,
    /// instagram or email.
    #[arg(long)]
    pub channel: Channel,
    /// The column holding the address (the header's name; case is ignored). Default:
    /// the first of phone, phone_number, mobile, email, address that the header has.
    #[arg(long)]
    pub column: Option<String>,
}

/// What a filter run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterSummary {
    /// Data rows read (the header not counted).
    pub read: u64,
    /// Rows written: checked, and not on DND.
    pub sendable: u64,
    /// Rows dropped because the address is on DND.
    pub blocked: u64,
    /// Rows dropped because the address is missing or cannot be normalised.
    pub invalid: u64,
}

impl std::fmt::Display for FilterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {}, sendable {}, blocked {}, invalid {}",
            self.read, self.sendable, self.blocked, self.invalid
        )
    }
}

/// Why a filter run stopped. After any of these the output is incomplete.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The header names no address column.
    #[error("{0}")]
    Column(String),
    /// The input could not be read as CSV.
    #[error("cannot read the input: {0}")]
    Read(csv::Error),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Write(csv::Error),
    /// A lookup failed: fail closed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

/// The index of the address column in `header`: `wanted` if given, else the first of
/// [`ADDRESS_COLUMNS`]; an error naming the columns seen otherwise.
pub fn address_column(header: &ByteRecord, wanted: Option<&str>) -> Result<usize, String> {
    let names = super::header_names(header);
    let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
    let found = match wanted {
        Some(w) => find(w.trim()),
        None => ADDRESS_COLUMNS.iter().find_map(|c| find(c)),
    };
    found.ok_or_else(|| {
        let expected = match wanted {
            Some(w) => format!("no column {w:?}"),
            None => format!(
                "no address column (one of {}, or give --column NAME)",
                ADDRESS_COLUMNS.join(", ")
            ),
        };
        let seen = if names.iter().all(String::is_empty) {
            "none (empty input?)".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("{expected}; columns seen: {seen}")
    })
}

/// Filter the contacts CSV `input` into `output`. Rows are read in chunks of
/// [`MAX_BATCH`], each chunk checked with one [`Lookup::check_many`] (one round trip),
/// `IN_FLIGHT` chunks at a time, and written in input order. The header is written
/// once the column is found; a lookup error stops the run (fail closed) with the rows
/// of earlier chunks already written.
pub async fn filter<R: Read, W: Write>(
    lookup: &Lookup,
    tenant: &str,
    channel: Channel,
    column: Option<&str>,
    input: R,
    output: W,
) -> Result<FilterSummary, FilterError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // A short row is a row without an address (invalid), not a reason to stop.
        .flexible(true)
        .from_reader(input);
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(output);
    let header = reader.byte_headers().map_err(FilterError::Read)?.clone();
    let index = address_column(&header, column).map_err(FilterError::Column)?;
    writer
        .write_byte_record(&header)
        .map_err(FilterError::Write)?;

    let mut summary = FilterSummary::default();
    let mut pending: VecDeque<JoinHandle<Result<Checked, LookupError>>> = VecDeque::new();
    let mut done = false;
    while !done {
        // Reading is synchronous on this task while earlier chunks are looked up on
        // the runtime's workers: parsing and Redis overlap.
        let mut rows = Vec::with_capacity(MAX_BATCH);
        let mut record = ByteRecord::new();
        while rows.len() < MAX_BATCH {
            if !reader
                .read_byte_record(&mut record)
                .map_err(FilterError::Read)?
            {
                done = true;
                break;
            }
            rows.push(std::mem::take(&mut record));
        }
        if !rows.is_empty() {
            summary.read += rows.len() as u64;
            pending.push_back(spawn_check(lookup, tenant, channel, index, rows));
        }
        while pending.len() >= IN_FLIGHT || (done && !pending.is_empty()) {
            let front = pending.pop_front().expect("checked non-empty");
            let checked = match front.await {
                Ok(result) => result?,
                Err(e) => {
                    return Err(FilterError::Lookup(LookupError::Store(
                        crate::store::StoreError::Protocol(format!("lookup task failed: {e}")),
                    )));
                }
            };
            write_sendable(&mut writer, checked, &mut summary)?;
        }
    }
    writer
        .flush()
        .map_err(|e| FilterError::Write(csv::Error::from(e)))?;
    Ok(summary)
}

/// A chunk of rows with one verdict per row.
struct Checked {
    rows: Vec<ByteRecord>,
    verdicts: Vec<BatchItem>,
}

fn spawn_check(
    lookup: &Lookup,
    tenant: &str,
    channel: Channel,
    index: usize,
    rows: Vec<ByteRecord>,
) -> JoinHandle<Result<Checked, LookupError>> {
    let lookup = lookup.clone();
    let tenant = tenant.to_string();
    tokio::spawn(async move {
        // A missing field or one that is not UTF-8 becomes "", which no channel
        // accepts: the row is counted invalid and not sent.
        let addresses: Vec<&str> = rows
            .iter()
            .map(|r| {
                r.get(index)
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .unwrap_or("")
            })
            .collect();
        let verdicts = lookup.check_many(&tenant, channel, &addresses).await?;
        Ok(Checked { rows, verdicts })
    })
}

fn write_sendable<W: Write>(
    writer: &mut csv::Writer<W>,
    checked: Checked,
    summary: &mut FilterSummary,
) -> Result<(), FilterError> {
    for (row, verdict) in checked.rows.iter().zip(&checked.verdicts) {
        match verdict {
            Ok(v) if !v.blocked => {
                writer.write_byte_record(row).map_err(FilterError::Write)?;
                summary.sendable += 1;
            }
            Ok(_) => summary.blocked += 1,
            Err(_) => summary.invalid += 1,
        }
    }
    Ok(())
}

/// Run `dndgate filter`.
pub async fn filter_cmd(args: FilterArgs) -> ExitCode {
    let settings = match redis_settings(&args.config, &args.tenant) {
        Ok(s) => s,
        Err(e) => return fatal("filter", format!("{e}; nothing was written")),
    };
    let store = match read_store(&settings).await {
        Ok(s) => s,
        Err(e) => return fatal("filter", format!("{e}; nothing was written")),
    };
    let lookup = Lookup::from_store(store);
    let input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
    let output = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    match filter(
        &lookup,
        &args.tenant,
        args.channel,
        args.column.as_deref(),
        input,
        output,
    )
    .await
    {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(FilterError::Column(e)) => fatal("filter", format!("{e}; nothing was written")),
        Err(e) => fatal(
            "filter",
            format!("{e}; the output is incomplete, do not send to it"),
        ),
    }
}
