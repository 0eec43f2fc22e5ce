//! `dndgate import`: existing suppression lists become DND records.
//!
//! Every row is one [`state::apply`] with [`crate::event::Source::IMPORT`] and an event id made
//! from the row itself (`import:FORMAT:SCOPE:ADDRESS`, plus the row's time where the
//! file gives one), so a file imported twice is applied once: the second run finds
//! each row's dedup marker and writes nothing, not even an audit entry. Dedup markers
//! live `dedup_ttl` (7 days by default); a re-import after that writes the same
//! records again (same state, reason and time), with fresh audit entries.
//!
//! Rows are read as a stream: a row that fails to parse is reported with its line
//! number and never applied; the good rows around it are. Up to [`LANES`] rows are
//! applied at once, never two of one address: the rows of one address are applied in
//! file order.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csv::ByteRecord;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::address::Address;
use crate::config::{Config, Tenant};
use crate::event::{Channel, Scope};
use crate::state::{self, Outcomes, Request};
use crate::store::{Outcome, Store, StoreAction, StoreError};
use crate::time::now_ms;

use super::{EXPORT_COLUMNS, fatal};

/// Rows applied at once, at most: one lane each. The store sends rows that arrive
/// together to Redis together, so the more in flight, the fewer round trips.
pub const LANES: usize = 1024;

/// Rows read ahead per lane, waiting for the lane's row in flight: the reader runs
/// ahead of a slow lane by this much before it waits, which bounds memory to
/// `LANES * (LANE_QUEUE + 1)` rows.
pub const LANE_QUEUE: usize = 4;

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A SendGrid suppression export (bounces, blocks, spam reports, invalid emails,
    /// global or group unsubscribes): CSV with an `email` column and, where SendGrid
    /// gives one, `created` (Unix seconds, or a UTC date-time), used as the event time.
    /// Other columns are ignored. Default scope: email.
    Sendgrid,
    /// A Twilio opt-out list: CSV with the number in a column named `phone_number`,
    /// `Phone Number`, `PhoneNumber` or `number`. Twilio documents no opt-out export
    /// file (Advanced Opt-Out keeps its list inside Twilio), so this is the shape of the
    /// lists people build from it; the event time is the time of import. Default
    /// scope: sms.
    Twilio,
    /// One address per line; blank lines and lines starting with `#` are skipped.
    /// Without --scope each address's channel is guessed: email for an email address,
    /// sms for a phone number, whatsapp for a business-scoped id; page-scoped ids
    /// (PAGE_ID:USER_ID) need --scope messenger or instagram.
    List,
    /// The CSV `dndgate export` writes. Each row keeps its scope, state, reason, event
    /// time and expiry; the source becomes `import`.
    Dndgate,
}

crate::event::names! {
    /// The name used in reasons and event ids.
    Format {
        Sendgrid => "sendgrid",
        Twilio => "twilio",
        List => "list",
        Dndgate => "dndgate",
    }
}

/// `dndgate import`: turn an existing suppression list into permanent DND records.
///
/// Bad rows are reported on stderr by line number and skipped; the good rows are
/// imported. The summary goes to stdout: `imported N, already present M, bad K`.
/// Exit 0: every row imported or already present. Exit 1: some rows were bad. Exit 2:
/// nothing could be done (unreadable file, unknown tenant, Redis down) or the import
/// stopped part-way (Redis went away): importing the file again is safe and completes it.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Bad rows are reported on stderr as `line N: why`, skipped, and never applied; the good rows \
are imported. Each row gets an event id made from the row, so importing the same file again \
changes nothing. Summary on stdout: `imported N, already present M, bad K`.\n\n\
Exit 0: done, no bad rows. 1: done, some rows were bad. 2: nothing could be done (unreadable \
file, unknown tenant, Redis down), or Redis went away part-way: import the file again.")]
pub struct ImportArgs {
    /// The configuration file (for Redis and the tenant's policy).
    #[arg(long, short, default_value = "dndgate.toml")]
    pub config: PathBuf,
    /// The tenant the records belong to.
    #[arg(long)]
    pub tenant: String,
    /// The file's format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where the records apply: sms, voice, whatsapp, messenger, instagram, email, or
    /// all (every channel of the contact). Default: email for sendgrid, sms for twilio,
    /// guessed per address for list. Not allowed with --format dndgate, whose rows name
    /// their scope.
    #[arg(long)]
    pub scope: Option<Scope>,
    /// The file to import, or `-` for stdin.
    pub file: PathBuf,
}

/// One row, parsed and ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The line the row starts on (1 is the first line of the file).
    pub line: u64,
    /// The normalised address.
    pub address: Address,
    /// Where the record applies.
    pub scope: Scope,
    /// What to write: permanent for suppression lists; for dndgate rows, the action
    /// that reproduces the row's state.
    pub action: StoreAction,
    /// The record's reason.
    pub reason: String,
    /// When the suppression happened (ms since the epoch).
    pub event_ms: i64,
    /// For a temporary record, how long after `event_ms` it stops blocking.
    pub temporary_ttl: Option<Duration>,
    /// The dedup key: the same row always gets the same id.
    pub event_id: String,
}

/// What reading one row gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A row to apply.
    Row(Row),
    /// A row that cannot be applied, and why (one line).
    Bad {
        /// The line the row starts on.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
}

/// The rows of an import file, parsed one at a time.
pub struct Rows {
    how: How,
    source: Source,
}

/// How rows become [`Row`]s: the format, the scope asked for, the time of import.
struct How {
    format: Format,
    scope: Option<Scope>,
    now_ms: i64,
}

/// The input, with the buffer each row is read into (reused from row to row).
enum Source {
    Csv {
        reader: csv::Reader<Box<dyn Read>>,
        columns: Columns,
        record: ByteRecord,
    },
    Lines {
        reader: BufReader<Box<dyn Read>>,
        line: u64,
        buf: Vec<u8>,
    },
}

/// Where the fields a format needs are in the header.
enum Columns {
    Sendgrid {
        email: usize,
        created: Option<usize>,
    },
    Twilio {
        number: usize,
    },
    Dndgate([usize; 7]),
}

/// The column names a Twilio opt-out list may use for the number.
pub const TWILIO_NUMBER_COLUMNS: [&str; 4] =
    ["phone_number", "Phone Number", "PhoneNumber", "number"];

impl Rows {
    /// Start reading `input` as `format`; for CSV formats the header is read and
    /// checked here, so a file without the needed columns fails before any row.
    /// `now_ms` is the event time of rows whose format gives none.
    pub fn new(
        format: Format,
        scope: Option<Scope>,
        input: Box<dyn Read>,
        now_ms: i64,
    ) -> Result<Rows, String> {
        if format == Format::Dndgate && scope.is_some() {
            return Err(
                "--scope does not apply to --format dndgate: each row names its scope".into(),
            );
        }
        let source = if format == Format::List {
            Source::Lines {
                reader: BufReader::with_capacity(1 << 16, input),
                line: 0,
                buf: Vec::new(),
            }
        } else {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
            let header = reader
                .byte_headers()
                .map_err(|e| format!("cannot read the header: {e}"))?
                .clone();
            Source::Csv {
                columns: columns(format, &header)?,
                reader,
                record: ByteRecord::new(),
            }
        };
        Ok(Rows {
            how: How {
                format,
                scope,
                now_ms,
            },
            source,
        })
    }
}

impl How {
    fn parse_csv(&self, line: u64, record: &ByteRecord, columns: &Columns) -> Item {
        let field = |i: usize| -> Result<&str, String> {
            let raw = record.get(i).unwrap_or_default();
            std::str::from_utf8(raw)
                .map(str::trim)
                .map_err(|_| "not valid UTF-8".to_string())
        };
        let parsed = match columns {
            Columns::Sendgrid { email, created } => (|| {
                let time = match created {
                    Some(c) => parse_time(field(*c)?)?,
                    None => None,
                };
                self.suppression(field(*email)?, Channel::Email, time)
            })(),
            Columns::Twilio { number } => {
                field(*number).and_then(|n| self.suppression(n, Channel::Sms, None))
            }
            Columns::Dndgate(idx) => idx
                .iter()
                .map(|i| field(*i))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|f| dndgate_row(&f)),
        };
        // The event-time rule (SPEC section 13): an import can say no, so a row dated
        // further ahead than the skew (a 2100 date, a file in microseconds) or before
        // the floor is a bad row rather than a record that pins every later change.
        let column = match columns {
            Columns::Dndgate(_) => "event_ms",
            _ => "created",
        };
        let parsed = parsed.and_then(|mut row| {
            row.event_ms = crate::time::event_time(row.event_ms, self.now_ms)
                .map_err(|e| format!("{column}: {e}"))?;
            Ok(row)
        });
        match parsed {
            Ok(mut row) => {
                row.line = line;
                Item::Row(row)
            }
            Err(message) => Item::Bad { line, message },
        }
    }

    /// A row of a suppression list: a permanent record on the given or default scope.
    fn suppression(&self, raw: &str, default: Channel, time: Option<i64>) -> Result<Row, String> {
        let (address, scope) = match self.scope {
            Some(Scope::Channel(c)) => (parse(c, raw)?, Scope::Channel(c)),
            Some(Scope::All) if self.format == Format::List => (
                Address::parse_any(raw).map_err(|e| e.to_string())?,
                Scope::All,
            ),
            Some(Scope::All) => (parse(default, raw)?, Scope::All),
            None if self.format == Format::List => guess(raw)?,
            None => (parse(default, raw)?, Scope::Channel(default)),
        };
        let format = self.format.as_str();
        let mut event_id = format!("import:{format}:{scope}:{address}");
        // A later suppression of the same address (a new bounce after an opt-in) is a
        // new event; the same row again is not.
        if let Some(t) = time {
            event_id.push_str(&format!(":{t}"));
        }
        Ok(Row {
            line: 0,
            address,
            scope,
            action: StoreAction::BlockPermanent,
            reason: format!("import:{format}"),
            event_ms: time.unwrap_or(self.now_ms),
            temporary_ttl: None,
            event_id,
        })
    }
}

impl Iterator for Rows {
    /// A row, a bad row, or `Err` when the input cannot be read further.
    type Item = Result<Item, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let how = &self.how;
        match &mut self.source {
            Source::Csv {
                reader,
                columns,
                record,
            } => match reader.read_byte_record(record) {
                Ok(false) => None,
                Err(e) => Some(Err(format!("cannot read the file: {e}"))),
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    Some(Ok(how.parse_csv(line, record, columns)))
                }
            },
            Source::Lines { reader, line, buf } => loop {
                buf.clear();
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Err(e) => return Some(Err(format!("cannot read the file: {e}"))),
                    Ok(_) => {}
                }
                *line += 1;
                let line = *line;
                let Ok(text) = std::str::from_utf8(buf) else {
                    return Some(Ok(Item::Bad {
                        line,
                        message: "not valid UTF-8".into(),
                    }));
                };
                let text = text.trim_start_matches('\u{feff}').trim();
                if text.is_empty() || text.starts_with('#') {
                    continue;
                }
                return Some(Ok(match how.suppression(text, Channel::Sms, None) {
                    Ok(mut row) => {
                        row.line = line;
                        Item::Row(row)
                    }
                    Err(message) => Item::Bad { line, message },
                }));
            },
        }
    }
}

fn parse(channel: Channel, raw: &str) -> Result<Address, String> {
    Address::parse(channel, raw).map_err(|e| e.to_string())
}

/// The channel of a list entry without --scope, from the form of the address.
fn guess(raw: &str) -> Result<(Address, Scope), String> {
    let address = Address::parse_any(raw).map_err(|e| e.to_string())?;
    let a = address.as_str();
    let channel = if a.contains('@') {
        Channel::Email
    } else if a.starts_with('+') {
        Channel::Sms
    } else if a.contains(':') {
        // Messenger and Instagram ids look alike: guessing would block the wrong one.
        return Err(format!(
            "{raw:?} is a page-scoped id: give --scope messenger or --scope instagram"
        ));
    } else {
        Channel::Whatsapp
    };
    Ok((address, Scope::Channel(channel)))
}

fn columns(format: Format, header: &ByteRecord) -> Result<Columns, String> {
    let names = super::header_names(header);
    let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
    let missing = |wanted: String| {
        format!(
            "no {wanted} column in the header; columns seen: {}",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match format {
        Format::Sendgrid => Ok(Columns::Sendgrid {
            email: find("email").ok_or_else(|| missing("\"email\"".into()))?,
            created: find("created"),
        }),
        Format::Twilio => TWILIO_NUMBER_COLUMNS
            .iter()
            .find_map(|c| find(c))
            .map(|number| Columns::Twilio { number })
            .ok_or_else(|| {
                missing(format!(
                    "phone number ({})",
                    TWILIO_NUMBER_COLUMNS.join(", ")
                ))
            }),
        Format::Dndgate => {
            let mut idx = [0; 7];
            for (slot, name) in idx.iter_mut().zip(EXPORT_COLUMNS) {
                *slot = find(name).ok_or_else(|| {
                    missing(format!(
                        "{name:?} (a dndgate export has {})",
                        EXPORT_COLUMNS.join(",")
                    ))
                })?;
            }
            Ok(Columns::Dndgate(idx))
        }
        Format::List => unreachable!("a list has no header"),
    }
}

/// A row of a dndgate export: the fields in [`EXPORT_COLUMNS`] order.
fn dndgate_row(f: &[&str]) -> Result<Row, String> {
    // Undo the export's spreadsheet escaping first.
    let f: Vec<&str> = f.iter().map(|c| super::import_cell(c)).collect();
    let [scope, address, state, reason, _source, event_ms, expires_ms] = f.as_slice() else {
        unreachable!("seven columns are looked up")
    };
    let scope: Scope = scope.parse().map_err(|e| format!("scope: {e}"))?;
    let address = match scope {
        Scope::Channel(c) => parse(c, address)?,
        Scope::All => Address::parse_any(address).map_err(|e| e.to_string())?,
    };
    let event: i64 = event_ms
        .parse()
        .map_err(|_| format!("event_ms {event_ms:?} is not a time in milliseconds"))?;
    let (action, temporary_ttl) = match *state {
        "permanent" => (StoreAction::BlockPermanent, None),
        // What export writes for a marketing-only record (`M`).
        "marketing" => (StoreAction::BlockMarketing, None),
        // Unblock is the action that writes a cleared record whatever was there,
        // under the same ordering rule as an opt-in.
        "cleared" => (StoreAction::Unblock, None),
        "temporary" => {
            let expires: i64 = expires_ms
                .parse()
                .map_err(|_| format!("a temporary record needs expires_ms, got {expires_ms:?}"))?;
            if expires <= event {
                return Err(format!(
                    "expires_ms {expires} is not after event_ms {event}"
                ));
            }
            let ttl = Duration::from_millis((expires - event) as u64);
            (StoreAction::BlockTemporary, Some(ttl))
        }
        other => {
            return Err(format!(
                "state {other:?} is not one of permanent, marketing, temporary, cleared"
            ));
        }
    };
    if temporary_ttl.is_none() && !expires_ms.is_empty() {
        return Err(format!(
            "a {state} record has no expires_ms, got {expires_ms:?}"
        ));
    }
    let reason = if reason.is_empty() {
        "import:dndgate".to_string()
    } else {
        reason.to_string()
    };
    Ok(Row {
        line: 0,
        event_id: format!("import:dndgate:{scope}:{address}:{state}:{event}:{expires_ms}"),
        address,
        scope,
        action,
        reason,
        event_ms: event,
        temporary_ttl,
    })
}

/// A time as SendGrid writes it: Unix seconds (the API's `created`), or a UTC
/// date-time `YYYY-MM-DD HH:MM:SS` (also with `T`, fractional seconds, `Z` or
/// `+00:00`). Empty: no time. Milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || format!("created {s:?} is not Unix seconds or a UTC date-time");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s.parse().map_err(|_| bad())?;
        return secs.checked_mul(1000).map(Some).ok_or_else(bad);
    }
    let rest = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .or_else(|| s.strip_suffix(" UTC"))
        .unwrap_or(s);
    let (date, time) = rest.split_once(['T', ' ']).ok_or_else(bad)?;
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let (time, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = time.split(':').collect();
    let ([y, mo, da], [h, mi, se]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let (y, mo, da, h, mi, se) = (num(y)?, num(mo)?, num(da)?, num(h)?, num(mi)?, num(se)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let ms = match frac.get(..3.min(frac.len())) {
        Some(f) if !f.is_empty() => num(&format!("{f:0<3}"))?,
        _ => 0,
    };
    let days = crate::time::days_from_civil(y, mo, da);
    Ok(Some(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000 + ms))
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Rows that changed a record.
    pub imported: u64,
    /// Rows that changed nothing: imported before (same event id), or a record in
    /// place already said as much.
    pub present: u64,
    /// Of `present`: rows older than the record in place, which was kept (audited as
    /// superseded), e.g. a bounce from before the contact's opt-in.
    pub superseded: u64,
    /// Rows that could not be parsed, not applied.
    pub bad: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {}, already present {}, bad {}",
            self.imported, self.present, self.bad
        )
    }
}

/// What applying one row did.
enum RowOutcome {
    Imported,
    Present,
    Superseded,
}

fn row_outcome(outcomes: &Outcomes) -> RowOutcome {
    if outcomes.changed() > 0 {
        RowOutcome::Imported
    } else if outcomes
        .changes
        .iter()
        .any(|c| c.outcome == Outcome::Superseded)
    {
        RowOutcome::Superseded
    } else {
        RowOutcome::Present
    }
}

/// Apply one row. `temporary` is this lane's copy of the tenant for rows that carry
/// their own temporary ttl (made on the first such row, then only its ttl changes).
async fn apply_row(
    store: &Store,
    tenant: &Tenant,
    temporary: &mut Option<Tenant>,
    row: &Row,
) -> Result<RowOutcome, StoreError> {
    // A temporary record's expiry is event time + the tenant's temporary_ttl; to
    // reproduce an exported expiry exactly, the row's own ttl stands in for the
    // tenant's, and an imported record never counts towards escalation.
    let tenant = match row.temporary_ttl {
        Some(ttl) => {
            let t = temporary.get_or_insert_with(|| {
                let mut t = tenant.clone();
                t.policy.escalate_after = u32::MAX;
                t
            });
            t.policy.temporary_ttl = ttl;
            &*t
        }
        None => tenant,
    };
    let now = now_ms();
    let request = Request {
        address: &row.address,
        scopes: vec![row.scope],
        action: row.action,
        reason: &row.reason,
        provider: crate::event::Source::IMPORT,
        event_id: &row.event_id,
        event_ms: row.event_ms,
        received_ms: now,
        now_ms: now,
        actor: None,
        evidence: None,
    };
    state::apply(store, tenant, &request)
        .await
        .map(|o| row_outcome(&o))
}

/// Why an import stopped part-way.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be read further.
    #[error("{0}")]
    Read(String),
    /// Redis could not take a row.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportSummary {
    fn count(&mut self, outcome: RowOutcome) {
        match outcome {
            RowOutcome::Imported => self.imported += 1,
            RowOutcome::Present => self.present += 1,
            RowOutcome::Superseded => {
                self.present += 1;
                self.superseded += 1;
            }
        }
    }

    fn add(&mut self, other: ImportSummary) {
        self.imported += other.imported;
        self.present += other.present;
        self.superseded += other.superseded;
        self.bad += other.bad;
    }
}

/// What the lanes share: the first error, and whether one happened (so that no lane
/// starts another row, and the reader stops reading).
#[derive(Default)]
struct Failure {
    stopped: AtomicBool,
    first: Mutex<Option<ImportError>>,
}

impl Failure {
    fn set(&self, e: ImportError) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// The lane of an address: every row of one address goes to the same lane, so rows
/// of one address are applied one after another, in file order.
fn lane_of(address: &Address) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    address.as_str().hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

/// One lane: its rows, one at a time, in the order they were read. A lane stops
/// taking rows once any lane has failed; the row it is applying then is finished.
async fn lane(
    store: Store,
    tenant: Arc<Tenant>,
    failure: Arc<Failure>,
    mut rows: mpsc::Receiver<Row>,
) -> ImportSummary {
    let mut summary = ImportSummary::default();
    let mut temporary = None;
    while let Some(row) = rows.recv().await {
        if failure.stopped() {
            break;
        }
        match apply_row(&store, &tenant, &mut temporary, &row).await {
            Ok(outcome) => summary.count(outcome),
            Err(e) => failure.set(ImportError::Store(e)),
        }
    }
    summary
}

/// Apply `rows` for `tenant`; `on_bad` hears of every bad row (line, message) as it
/// is read. Rows go to [`LANES`] lanes by a hash of their address: each lane applies
/// its rows one after another in file order (so two rows of one address are never
/// applied at once or out of order), the lanes run at the same time (up to [`LANES`]
/// rows in flight), and each holds at most [`LANE_QUEUE`] rows read ahead, which
/// bounds memory. Returns the summary, and the error that stopped the import early,
/// if any (rows in flight then are finished first).
pub async fn import(
    store: &Store,
    tenant: &Tenant,
    rows: Rows,
    on_bad: &mut dyn FnMut(u64, &str),
) -> (ImportSummary, Option<ImportError>) {
    let tenant = Arc::new(tenant.clone());
    let failure = Arc::new(Failure::default());
    let mut summary = ImportSummary::default();
    // The lanes start with the first row that needs one: a short file starts few.
    let mut lanes: Vec<Option<mpsc::Sender<Row>>> = (0..LANES).map(|_| None).collect();
    let mut running: JoinSet<ImportSummary> = JoinSet::new();
    for item in rows {
        match item {
            Err(e) => failure.set(ImportError::Read(e)),
            Ok(Item::Bad { line, message }) => {
                summary.bad += 1;
                on_bad(line, &message);
            }
            Ok(Item::Row(row)) => {
                let sender = lanes[lane_of(&row.address)].get_or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(LANE_QUEUE);
                    running.spawn(lane(store.clone(), tenant.clone(), failure.clone(), rx));
                    tx
                });
                // A lane only ends early after a failure, which stops the loop below.
                let _ = sender.send(row).await;
            }
        }
        if failure.stopped() {
            break;
        }
    }
    // Closing the lanes lets each finish what it holds.
    drop(lanes);
    while let Some(done) = running.join_next().await {
        match done {
            Ok(s) => summary.add(s),
            Err(e) => failure.set(ImportError::Store(StoreError::Protocol(format!(
                "import task failed: {e}"
            )))),
        }
    }
    let failure = Arc::into_inner(failure)
        .and_then(|f| f.first.into_inner().ok())
        .flatten();
    (summary, failure)
}

/// Run `dndgate import`.
pub async fn import_cmd(args: ImportArgs) -> ExitCode {
    let fail = |e: String| fatal("import", format!("{e}; nothing was imported"));
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let Some(tenant) = config.tenants.get(&args.tenant) else {
        return fail(format!(
            "unknown tenant {:?} in {}",
            args.tenant,
            args.config.display()
        ));
    };
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
        }
    };
    let rows = match Rows::new(args.format, args.scope, input, now_ms()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let store = match Store::open(&config.redis.url(), config.store_options()) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = store.ping().await {
        return fail(format!("{e} (redis at {})", config.redis.display_url()));
    }
    let mut on_bad = |line: u64, message: &str| eprintln!("line {line}: {message}");
    let (summary, failure) = import(&store, tenant, rows, &mut on_bad).await;
    println!("{summary}");
    if summary.superseded > 0 {
        eprintln!(
            "note: {} of the rows already present were older than the record in place, which was kept",
            summary.superseded
        );
    }
    match failure {
        Some(e) => fatal(
            "import",
            format!(
                "stopped part-way: {e}; the rows counted above are applied, and importing the file again is safe"
            ),
        ),
        None if summary.bad > 0 => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendgrid_times() {
        let ok = [
            ("", None),
            ("1700000000", Some(1_700_000_000_000)),
            ("0", Some(0)),
            ("2023-11-14 22:13:20", Some(1_700_000_000_000)),
            ("2023-11-14T22:13:20Z", Some(1_700_000_000_000)),
            ("2023-11-14T22:13:20.5+00:00", Some(1_700_000_000_500)),
            ("2024-02-29 00:00:00 UTC", Some(1_709_164_800_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_time(text), Ok(want), "{text}");
        }
        for bad in [
            "yesterday",
            "2023-11-14",
            "2023-13-01 00:00:00",
            "2023-11-14T22:13:20+02:00",
            "-5",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn item_20_every_state_export_writes_is_read_back() {
        // export writes `marketing` for a marketing-only record (a WhatsApp marketing
        // stop): a restore from an export must not refuse, and so lose, that opt-out.
        let row = dndgate_row(&[
            "whatsapp",
            "+14155551234",
            "marketing",
            "meta:marketing",
            "meta",
            "1000",
            "",
        ])
        .unwrap();
        assert_eq!(row.action, StoreAction::BlockMarketing);
        assert_eq!(row.reason, "meta:marketing");
    }

    #[test]
    fn dndgate_rows_map_states_to_actions() {
        let row = |state: &str, expires: &str| {
            dndgate_row(&["sms", "+14155551234", state, "r", "twilio", "1000", expires])
        };
        assert_eq!(
            row("permanent", "").unwrap().action,
            StoreAction::BlockPermanent
        );
        assert_eq!(row("cleared", "").unwrap().action, StoreAction::Unblock);
        let t = row("temporary", "4000").unwrap();
        assert_eq!(t.action, StoreAction::BlockTemporary);
        assert_eq!(t.temporary_ttl, Some(Duration::from_millis(3000)));
        assert!(row("temporary", "").is_err());
        assert!(row("temporary", "1000").is_err());
        assert!(row("permanent", "4000").is_err());
        assert!(row("gone", "").is_err());
    }
}
