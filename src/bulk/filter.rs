//! `dndgate filter`: a contacts CSV in, only the rows that may be sent to out.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use csv::ByteRecord;
use tokio::task::JoinHandle;

use crate::event::Channel;
use crate::lookup::{Lookup, LookupError, MAX_BATCH};

use super::{fatal, read_store, redis_settings};

/// The address columns tried, in order, when `--column` is not given (compared without
/// regard to case).
pub const ADDRESS_COLUMNS: [&str; 5] = ["phone", "phone_number", "mobile", "email", "address"];

/// Chunks of [`BATCH`] rows looked up at once: enough to keep Redis busy while the
/// next chunk is parsed and the previous one written, few enough to bound memory.
const IN_FLIGHT: usize = 8;

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
/// [`BATCH`], each chunk checked with one [`Lookup::check_many`] (one round trip),
/// [`IN_FLIGHT`] chunks at a time, and written in input order. The header is written
/// once the column is found; a lookup error stops the run (fail closed) with the rows
/// of earlier chunks already written.
///
/// The header is written as a CSV writer writes it; a sendable row is written as it
/// was read (its bytes, quoting included), ended by `\n`. The input is split into
/// records by the CSV reader's own parser (`csv_core`, the one `csv` uses), so what
/// counts as a row, a field and the address is what it was.
pub async fn filter<R: Read, W: Write>(
    lookup: &Lookup,
    tenant: &str,
    channel: Channel,
    column: Option<&str>,
    input: R,
    mut output: W,
) -> Result<FilterSummary, FilterError> {
    let mut reader = Splitter::new(input);
    let header = reader.header().map_err(read_error)?;
    let index = address_column(&header, column).map_err(FilterError::Column)?;
    {
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut output);
        writer
            .write_byte_record(&header)
            .map_err(FilterError::Write)?;
        writer
            .flush()
            .map_err(|e| FilterError::Write(csv::Error::from(e)))?;
    }

    let tenant: Arc<str> = Arc::from(tenant);
    let mut summary = FilterSummary::default();
    let mut pending: VecDeque<JoinHandle<Result<Checked, LookupError>>> = VecDeque::new();
    // Chunks whose rows are written, kept to be filled again: no allocation per chunk
    // once IN_FLIGHT + 1 of them exist.
    let mut spare: Vec<Chunk> = Vec::new();
    let mut done = false;
    while !done {
        // Reading and splitting are synchronous on this task while earlier chunks are
        // looked up on the runtime's workers: parsing and Redis overlap.
        let mut chunk = spare.pop().unwrap_or_default();
        chunk.clear();
        done = !reader.fill(&mut chunk, index, BATCH).map_err(read_error)?;
        if chunk.len() > 0 {
            summary.read += chunk.len() as u64;
            pending.push_back(spawn_check(lookup, &tenant, channel, chunk));
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
            output
                .write_all(&checked.chunk.out)
                .map_err(|e| FilterError::Write(csv::Error::from(e)))?;
            summary.sendable += checked.sendable;
            summary.blocked += checked.blocked;
            summary.invalid += checked.invalid;
            spare.push(checked.chunk);
        }
    }
    output
        .flush()
        .map_err(|e| FilterError::Write(csv::Error::from(e)))?;
    Ok(summary)
}

/// Rows looked up in one [`Lookup::check_many`] call (at most [`MAX_BATCH`]).
const BATCH: usize = 4_096;
const _: () = assert!(BATCH <= MAX_BATCH);

/// How much of the input is read at once.
const READ_SIZE: usize = 1 << 18;

fn read_error(e: std::io::Error) -> FilterError {
    FilterError::Read(csv::Error::from(e))
}

/// Rows of one chunk: each row's bytes as read, and its address field as parsed.
#[derive(Default)]
struct Chunk {
    /// The rows' bytes, one after another, each without its line terminator.
    raw: Vec<u8>,
    /// Where each row ends in `raw`.
    row_ends: Vec<usize>,
    /// The address fields (unquoted), one after another; a row without the column
    /// has an empty one.
    addresses: Vec<u8>,
    /// Where each address ends in `addresses`.
    address_ends: Vec<usize>,
    /// The sendable rows as written: filled by the lookup task.
    out: Vec<u8>,
}

impl Chunk {
    fn clear(&mut self) {
        self.raw.clear();
        self.row_ends.clear();
        self.addresses.clear();
        self.address_ends.clear();
        self.out.clear();
    }

    fn len(&self) -> usize {
        self.row_ends.len()
    }

    fn rows(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.row_ends.iter().copied());
        starts
            .zip(self.row_ends.iter().copied())
            .map(|(a, b)| &self.raw[a..b])
    }

    fn addresses(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.address_ends.iter().copied());
        starts
            .zip(self.address_ends.iter().copied())
            .map(|(a, b)| &self.addresses[a..b])
    }
}

/// The input split into CSV records by `csv_core` (with `csv`'s defaults, as
/// `csv::Reader` splits it: a UTF-8 byte-order mark dropped, blank lines skipped,
/// `\n`, `\r` and `\r\n` ending a record, `""` a quote inside quotes), keeping each
/// record's bytes as they were read.
struct Splitter<R> {
    input: R,
    core: csv_core::Reader,
    /// Input read and not yet split, from `start`.
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Has the parser been given input yet?
    started: bool,
    /// The current record's fields and their ends.
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> Splitter<R> {
    fn new(input: R) -> Splitter<R> {
        Splitter {
            input,
            core: csv_core::Reader::new(),
            buf: Vec::with_capacity(READ_SIZE),
            start: 0,
            eof: false,
            started: false,
            fields: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// The next record, its fields in `fields` and `ends`; `None` at the end of the
    /// input.
    fn next(&mut self) -> std::io::Result<Option<Span>> {
        use csv_core::ReadRecordResult as R;
        let (mut nfields, mut nends) = (0, 0);
        let mut pos = self.start;
        loop {
            // An empty input tells the parser the input has ended: read more first.
            // The parser drops a byte-order mark only if its first input holds all
            // three bytes of it, and takes an input of just those as the end.
            while !self.eof && (pos == self.buf.len() || (!self.started && self.buf.len() <= 3)) {
                pos = self.refill(pos)?;
            }
            self.started = true;
            let at_end = pos == self.buf.len();
            let (res, nin, nout, nend) = self.core.read_record(
                &self.buf[pos..],
                &mut self.fields[nfields..],
                &mut self.ends[nends..],
            );
            pos += nin;
            nfields += nout;
            nends += nend;
            match res {
                R::Record => {
                    // Blank lines before the record are skipped; the terminator that
                    // ended it is dropped. A record the end of the input ended (no
                    // terminator, perhaps in an open quote) keeps all its bytes.
                    let record = &self.buf[self.start..pos];
                    let lead = record.iter().take_while(|b| is_eol(**b)).count();
                    let trail = if at_end {
                        0
                    } else {
                        record[lead..]
                            .iter()
                            .rev()
                            .take_while(|b| is_eol(**b))
                            .count()
                    };
                    let span = Span {
                        from: self.start + lead,
                        to: pos - trail,
                        fields: nends,
                        unterminated: at_end,
                    };
                    self.start = pos;
                    return Ok(Some(span));
                }
                R::End => {
                    self.start = pos;
                    return Ok(None);
                }
                R::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                R::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                // Everything read is split: read more (or, at the end, call the
                // parser with an empty input, which ends the last record).
                R::InputEmpty => {}
            }
        }
    }

    /// Read more input after `buf[..pos]`, first dropping what is before `start`
    /// (the bytes of records already returned). Returns `pos` in the moved buffer.
    fn refill(&mut self, pos: usize) -> std::io::Result<usize> {
        let used = self.start;
        self.buf.drain(..used);
        self.start = 0;
        let have = self.buf.len();
        self.buf.resize(have + READ_SIZE, 0);
        let n = loop {
            match self.input.read(&mut self.buf[have..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let n = n.inspect_err(|_| self.buf.truncate(have))?;
        self.buf.truncate(have + n);
        self.eof = n == 0;
        Ok(pos - used)
    }

    /// The first record (the header), empty when the input is.
    fn header(&mut self) -> std::io::Result<ByteRecord> {
        let mut header = ByteRecord::new();
        if let Some(span) = self.next()? {
            header = self.record(span.fields);
        }
        Ok(header)
    }

    /// The current record's first `n` fields.
    fn record(&self, n: usize) -> ByteRecord {
        let mut record = ByteRecord::new();
        let mut from = 0;
        for &end in &self.ends[..n] {
            record.push_field(&self.fields[from..end]);
            from = end;
        }
        record
    }

    /// Read up to `max` rows into `chunk`, with field `index` of each as its
    /// address. False once the input has ended.
    fn fill(&mut self, chunk: &mut Chunk, index: usize, max: usize) -> std::io::Result<bool> {
        while chunk.len() < max {
            let Some(Span {
                from,
                to,
                fields: n,
                unterminated,
            }) = self.next()?
            else {
                return Ok(false);
            };
            if unterminated {
                // The last row, without a terminator (perhaps in an open quote):
                // written as a CSV writer writes its fields, so that the `\n` after
                // it ends it.
                let mut writer = csv::WriterBuilder::new()
                    .flexible(true)
                    .from_writer(&mut chunk.raw);
                writer.write_byte_record(&self.record(n))?;
                writer.flush()?;
                drop(writer);
                chunk.raw.pop();
            } else {
                chunk.raw.extend_from_slice(&self.buf[from..to]);
            }
            chunk.row_ends.push(chunk.raw.len());
            if index < n {
                let start = if index == 0 { 0 } else { self.ends[index - 1] };
                chunk
                    .addresses
                    .extend_from_slice(&self.fields[start..self.ends[index]]);
            }
            chunk.address_ends.push(chunk.addresses.len());
        }
        Ok(true)
    }
}

/// Where a record is in the splitter's buffer: its bytes without the blank lines
/// before it or the terminator after it, its number of fields, and whether the end
/// of the input ended it (no terminator).
struct Span {
    from: usize,
    to: usize,
    fields: usize,
    unterminated: bool,
}

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// A chunk with its sendable rows written out, and the counts.
struct Checked {
    chunk: Chunk,
    sendable: u64,
    blocked: u64,
    invalid: u64,
}

fn spawn_check(
    lookup: &Lookup,
    tenant: &Arc<str>,
    channel: Channel,
    mut chunk: Chunk,
) -> JoinHandle<Result<Checked, LookupError>> {
    let lookup = lookup.clone();
    let tenant = tenant.clone();
    tokio::spawn(async move {
        // A missing field or one that is not UTF-8 becomes "", which no channel
        // accepts: the row is counted invalid and not sent.
        let addresses: Vec<&str> = chunk
            .addresses()
            .map(|a| std::str::from_utf8(a).unwrap_or(""))
            .collect();
        let verdicts = lookup.check_many(&tenant, channel, &addresses).await?;
        drop(addresses);
        let (mut sendable, mut blocked, mut invalid) = (0, 0, 0);
        let mut out = std::mem::take(&mut chunk.out);
        for (row, verdict) in chunk.rows().zip(&verdicts) {
            match verdict {
                Ok(v) if !v.blocked => {
                    out.extend_from_slice(row);
                    out.push(b'\n');
                    sendable += 1;
                }
                Ok(_) => blocked += 1,
                Err(_) => invalid += 1,
            }
        }
        chunk.out = out;
        Ok(Checked {
            chunk,
            sendable,
            blocked,
            invalid,
        })
    })
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
    let input = std::io::stdin().lock();
    let output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a call: records cross reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The splitter finds the header, the rows and the address fields `csv::Reader`
    /// finds (with filter's settings), and a row's bytes read back as the same record.
    #[test]
    fn rows_split_as_the_csv_reader_splits_them() {
        let inputs: [&[u8]; 9] = [
            b"",
            b"phone\n",
            b"phone\n+1555\n",
            b"\xef\xbb\xbfid,phone\r\n1,+1555\r\n\r\n2,\"+1\n555\"\r\n3\n",
            b"\n\nid,\"phone\"\n1,\"Contact 1, \"\"X\"\"\",+1555\n\n2,b\r3,c",
            b"id,phone\n1,\"unterminated\n2,x\n",
            b"id,phone\n\"a\"\"b\",+1\n,,,,,\n\"\"\n",
            b"a,b,c,d\n1,2,3,4\n5\n6,7,8,9,10,11\n",
            b"id,phone\r\n1,2\r\n",
        ];
        for input in inputs {
            for step in [1, 2, 3, 7, 1 << 20] {
                let mut want = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(input);
                let want_header = want.byte_headers().unwrap().clone();
                let want_rows: Vec<ByteRecord> = want.byte_records().map(Result::unwrap).collect();

                let mut got = Splitter::new(Trickle { data: input, step });
                let header = got.header().unwrap();
                assert_eq!(header, want_header, "{input:?} step {step}");
                let index = want_header.len().saturating_sub(1).min(1);
                let mut chunk = Chunk::default();
                let mut rows = Vec::new();
                let mut addresses = Vec::new();
                loop {
                    chunk.clear();
                    let more = got.fill(&mut chunk, index, 2).unwrap();
                    rows.extend(chunk.rows().map(<[u8]>::to_vec));
                    addresses.extend(chunk.addresses().map(<[u8]>::to_vec));
                    if !more {
                        break;
                    }
                }
                assert_eq!(rows.len(), want_rows.len(), "{input:?} step {step}");
                for ((raw, address), want) in rows.iter().zip(&addresses).zip(&want_rows) {
                    assert_eq!(
                        address.as_slice(),
                        want.get(index).unwrap_or_default(),
                        "{input:?} step {step}"
                    );
                    // The row's bytes as written, read as CSV, are the record.
                    let written = [raw.as_slice(), b"\n"].concat();
                    let again = csv::ReaderBuilder::new()
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(written.as_slice())
                        .byte_records()
                        .next()
                        .unwrap()
                        .unwrap();
                    assert_eq!(&again, want, "{input:?} step {step}: {raw:?}");
                }
            }
        }
    }
}
