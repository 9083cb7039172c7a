//! A streaming CSV reader for the ingestion layouts.
//!
//! RFC 4180 (quoted fields, doubled quotes, line breaks inside quotes), LF or CRLF line ends, an
//! optional UTF-8 byte-order mark. Line 1 is the header; columns are matched by name (trimmed,
//! case-insensitive) in any order; unknown, duplicate or missing required columns are header
//! errors (line 1). A record's line is the file line it starts on. Memory use is one record at a
//! time, whatever the size of the input.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::marker::PhantomData;

use csv::{ByteRecord, ReaderBuilder};

use super::{unknown_columns_reason, IngestContext, IngestRow, RowError, RowResult, ValidRow};

/// Turns CRLF into LF as bytes stream through (a `\r` at the end of one read waits for the next).
///
/// The csv crate ends a CRLF record at the `\r` and counts its `\n` only when reading the next
/// record, so the line it reports for every record after the first lags by one; with LF only, line
/// numbers are exact. Inside quoted fields CRLF becomes LF too, which is harmless for this data.
struct CrlfToLf<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> CrlfToLf<R> {
    fn new(inner: R) -> Self {
        CrlfToLf {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.start == self.end {
                if self.eof {
                    return Ok(0);
                }
                self.fill()?;
                continue;
            }
            let mut written = 0;
            while written < out.len() && self.start < self.end {
                let pending = &self.buf[self.start..self.end];
                let room = out.len() - written;
                // Copy up to the next `\r` in one go.
                let plain = pending
                    .iter()
                    .take(room)
                    .position(|&b| b == b'\r')
                    .unwrap_or(pending.len().min(room));
                out[written..written + plain].copy_from_slice(&pending[..plain]);
                written += plain;
                self.start += plain;
                if plain == room || self.start == self.end {
                    break;
                }
                // At a `\r`.
                if self.start + 1 == self.end && !self.eof {
                    break; // need the next byte to decide
                }
                if self.start + 1 < self.end && self.buf[self.start + 1] == b'\n' {
                    self.start += 1; // drop the `\r` of a CRLF
                    continue;
                }
                out[written] = b'\r';
                written += 1;
                self.start += 1;
            }
            if written > 0 {
                return Ok(written);
            }
            self.fill()?;
        }
    }
}

/// Longest record (one CSV row, header included) the reader accepts, in bytes: 1 MiB.
///
/// The `csv` crate grows its record buffer without limit, so a stray quote would otherwise make the
/// rest of a file one record held in memory. Real rows of these layouts are a few hundred bytes
/// (text fields are at most [`super::MAX_TEXT_LEN`] characters); a longer record is an error that
/// ends the input ([`RecordTooLong`]).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// A record over [`MAX_RECORD_BYTES`]: `line L: record longer than N bytes (unclosed quote at line
/// K?)` — the hint only when a quoted field is open (the usual cause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTooLong {
    /// The line the record starts on.
    pub line: u64,
    pub max: usize,
    /// The line of the quote that opened the quoted field still open at the limit.
    pub open_quote_line: Option<u64>,
}

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: record longer than {} bytes",
            self.line, self.max
        )?;
        if let Some(k) = self.open_quote_line {
            write!(f, " (unclosed quote at line {k}?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecordTooLong {}

impl RecordTooLong {
    /// The record-size failure inside a `csv` error, if that is what it is.
    fn of(e: &csv::Error) -> Option<&RecordTooLong> {
        match e.kind() {
            csv::ErrorKind::Io(io) => io.get_ref()?.downcast_ref::<RecordTooLong>(),
            _ => None,
        }
    }
}

/// Where [`RecordLimit`] is in the CSV grammar: the states of `csv_core`'s reader (default
/// settings: `,` delimiter, `"` quote with doubling, `\r`, `\n` or CRLF ending a record) that
/// decide where a record ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexer {
    /// Between records (empty lines are skipped here, as `csv_core` does).
    StartRecord,
    StartField,
    /// In an unquoted field (a quote here is an ordinary character).
    InField,
    InQuotedField,
    /// After a quote inside a quoted field: a second quote is an escaped one.
    QuoteInQuotedField,
}

/// Passes bytes through to the `csv` reader and fails the read once the current record is longer
/// than `max` bytes, before the reader has buffered more than that: it follows record boundaries
/// as `csv_core` does (quotes only open a field at its start, doubled quotes, any of `\r`/`\n`
/// ends a record outside quotes) and counts the bytes since the record started. Lines are counted
/// as the `csv` crate counts them (`\n`), so they match the lines of the records.
struct RecordLimit<R> {
    inner: R,
    max: usize,
    state: Lexer,
    /// Current line (1-based).
    line: u64,
    record_line: u64,
    quote_line: u64,
    record_bytes: usize,
    failed: Option<RecordTooLong>,
}

impl<R: Read> RecordLimit<R> {
    fn new(inner: R, max: usize) -> Self {
        RecordLimit {
            inner,
            max,
            state: Lexer::StartRecord,
            line: 1,
            record_line: 1,
            quote_line: 0,
            record_bytes: 0,
            failed: None,
        }
    }

    /// Advances over one byte; `false` when it makes the record too long.
    fn step(&mut self, b: u8) -> bool {
        let end = b == b'\n' || b == b'\r';
        if self.state == Lexer::StartRecord && !end {
            self.state = Lexer::StartField;
            self.record_line = self.line;
            self.record_bytes = 0;
        }
        self.state = match self.state {
            Lexer::StartRecord => Lexer::StartRecord,
            Lexer::StartField | Lexer::InField | Lexer::QuoteInQuotedField if end => {
                Lexer::StartRecord
            }
            Lexer::StartField | Lexer::InField | Lexer::QuoteInQuotedField if b == b',' => {
                Lexer::StartField
            }
            Lexer::StartField if b == b'"' => {
                self.quote_line = self.line;
                Lexer::InQuotedField
            }
            Lexer::QuoteInQuotedField if b == b'"' => Lexer::InQuotedField,
            Lexer::StartField | Lexer::InField | Lexer::QuoteInQuotedField => Lexer::InField,
            Lexer::InQuotedField if b == b'"' => Lexer::QuoteInQuotedField,
            Lexer::InQuotedField => Lexer::InQuotedField,
        };
        if b == b'\n' {
            self.line += 1;
        }
        if self.state == Lexer::StartRecord {
            return true;
        }
        self.record_bytes += 1;
        if self.record_bytes > self.max {
            self.failed = Some(RecordTooLong {
                line: self.record_line,
                max: self.max,
                open_quote_line: (self.state == Lexer::InQuotedField).then_some(self.quote_line),
            });
            return false;
        }
        true
    }
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::other(failed.clone()));
        }
        let n = self.inner.read(out)?;
        for (i, &b) in out[..n].iter().enumerate() {
            if !self.step(b) {
                // Hand over what fits; the next read reports the failure.
                return match i {
                    0 => Err(io::Error::other(self.failed.clone().expect("just set"))),
                    i => Ok(i),
                };
            }
        }
        Ok(n)
    }
}

/// The error of a failed read: the record-size failure as it is, others with context.
fn read_error(e: &csv::Error, context: &str) -> String {
    match RecordTooLong::of(e) {
        Some(t) => t.to_string(),
        None => format!("{context}: {e}"),
    }
}

/// Iterator over the rows of a CSV input: `Ok(ValidRow)` or every error of one record.
pub struct CsvRows<R: Read, T: IngestRow> {
    reader: csv::Reader<Input<R>>,
    header: Vec<String>,
    /// For each of `T::COLUMNS`, its position in the record (None: not in the file).
    positions: Vec<Option<usize>>,
    ctx: IngestContext,
    record: ByteRecord,
    read_failure: Option<String>,
    _row: PhantomData<fn() -> T>,
}

/// What the `csv` reader reads: CRLF turned into LF, records bounded in size.
type Input<R> = RecordLimit<CrlfToLf<R>>;

fn input<R: Read>(raw: R, max_record: usize) -> Input<R> {
    RecordLimit::new(CrlfToLf::new(raw), max_record)
}

fn builder() -> ReaderBuilder {
    let mut b = ReaderBuilder::new();
    b.has_headers(false).flexible(true);
    b
}

fn decode_header(record: &ByteRecord) -> Result<Vec<String>, Vec<RowError>> {
    let mut names = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        match std::str::from_utf8(raw) {
            Ok(s) => names.push(s.trim().to_string()),
            Err(_) => {
                return Err(vec![RowError::new(
                    1,
                    None,
                    format!("header field {} is not valid UTF-8", i + 1),
                )])
            }
        }
    }
    Ok(names)
}

impl<R: Read, T: IngestRow> CsvRows<R, T> {
    /// Reads and checks the header. Errors are all on line 1.
    /// Records longer than [`MAX_RECORD_BYTES`] end the input with a [`RecordTooLong`] error.
    pub fn new(input: R, ctx: IngestContext) -> Result<Self, Vec<RowError>> {
        Self::with_max_record(input, ctx, MAX_RECORD_BYTES)
    }

    /// [`CsvRows::new`] with another record-size limit (tests).
    pub fn with_max_record(
        raw: R,
        ctx: IngestContext,
        max_record: usize,
    ) -> Result<Self, Vec<RowError>> {
        let mut reader = builder().from_reader(input(raw, max_record));
        let mut record = ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => {
                return Err(vec![RowError::new(
                    1,
                    None,
                    "the input is empty: expected a header line naming the columns",
                )])
            }
            Err(e) => {
                return Err(vec![RowError::new(
                    1,
                    None,
                    read_error(&e, "cannot read the header"),
                )])
            }
        }
        let header = decode_header(&record)?;
        let mut errors = Vec::new();
        let mut positions = vec![None; T::COLUMNS.len()];
        let mut unknown = Vec::new();
        for (pos, name) in header.iter().enumerate() {
            if name.is_empty() {
                errors.push(RowError::new(
                    1,
                    None,
                    format!("column {} has an empty name", pos + 1),
                ));
                continue;
            }
            match T::COLUMNS
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
            {
                None => unknown.push(name.as_str()),
                Some(i) if positions[i].is_some() => errors.push(RowError::new(
                    1,
                    Some(T::COLUMNS[i].name),
                    "the column appears more than once",
                )),
                Some(i) => positions[i] = Some(pos),
            }
        }
        if !unknown.is_empty() {
            errors.push(RowError::new(
                1,
                None,
                unknown_columns_reason::<T>(&unknown),
            ));
        }
        for (i, c) in T::COLUMNS.iter().enumerate() {
            if c.required && positions[i].is_none() {
                errors.push(RowError::new(
                    1,
                    Some(c.name),
                    "required column is missing from the header",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CsvRows {
            reader,
            header,
            positions,
            ctx,
            record,
            read_failure: None,
            _row: PhantomData,
        })
    }

    /// Column names as in the file (BOM removed).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Set when the input could not be read (an IO error, not a bad row): the caller must not
    /// treat the rows seen so far as the whole input. Iteration has ended.
    pub fn read_failure(&self) -> Option<&str> {
        self.read_failure.as_deref()
    }

    /// Bytes consumed so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    fn parse_record(&self, line: u64) -> RowResult<T> {
        let width = self.header.len();
        if self.record.len() != width {
            return Err(vec![RowError::new(
                line,
                None,
                format!(
                    "expected {width} fields as in the header, found {}",
                    self.record.len()
                ),
            )]);
        }
        let mut errors = Vec::new();
        for (pos, raw) in self.record.iter().enumerate() {
            if std::str::from_utf8(raw).is_err() {
                errors.push(RowError::new(
                    line,
                    Some(&self.header[pos]),
                    "not valid UTF-8",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let record = &self.record;
        let positions = &self.positions;
        let field = |i: usize| {
            positions[i]
                .and_then(|p| record.get(p))
                .and_then(|b| std::str::from_utf8(b).ok())
        };
        T::parse_fields(field, line, &self.ctx).map(|row| ValidRow { line, row })
    }
}

impl<R: Read, T: IngestRow> Iterator for CsvRows<R, T> {
    type Item = RowResult<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.read_failure.is_some() {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, |p| p.line());
                Some(self.parse_record(line))
            }
            Err(e) => {
                let line = match RecordTooLong::of(&e) {
                    Some(t) => t.line,
                    None => e
                        .position()
                        .map_or_else(|| self.reader.position().line(), |p| p.line()),
                };
                let message = read_error(&e, "cannot read the input");
                self.read_failure = Some(message.clone());
                Some(Err(vec![RowError::new(line, None, message)]))
            }
        }
    }
}

/// A rejected line for [`write_rejects`]: its errors joined in one message.
pub type RejectedLine = String;

/// Copies the records of `input` whose line is in `rejected` to `out`, as CSV with the original
/// columns plus `line` and `error`. Streams `input` (a second pass over the file); returns the
/// number of records written.
pub fn write_rejects<R: Read, W: Write>(
    input: R,
    out: W,
    rejected: &BTreeMap<u64, RejectedLine>,
) -> io::Result<u64> {
    let to_io = |e: csv::Error| io::Error::other(e.to_string());
    let mut reader = builder().from_reader(self::input(input, MAX_RECORD_BYTES));
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
    let mut record = ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(to_io)? {
        return Ok(0);
    }
    let mut header = ByteRecord::new();
    for name in decode_header(&record).map_err(|_| io::Error::other("header is not valid UTF-8"))? {
        header.push_field(name.as_bytes());
    }
    header.push_field(b"line");
    header.push_field(b"error");
    writer.write_byte_record(&header).map_err(to_io)?;
    let mut written = 0;
    while reader.read_byte_record(&mut record).map_err(to_io)? {
        let line = record.position().map_or(0, |p| p.line());
        if let Some(error) = rejected.get(&line) {
            record.push_field(line.to_string().as_bytes());
            record.push_field(error.as_bytes());
            writer.write_byte_record(&record).map_err(to_io)?;
            written += 1;
        }
    }
    writer.flush()?;
    Ok(written)
}

#[cfg(test)]
#[path = "csv_input_tests.rs"]
mod tests;
