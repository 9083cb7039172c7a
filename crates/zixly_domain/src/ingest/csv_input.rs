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
mod tests {
    use super::*;
    use crate::ingest::{CustomMetricRow, FinancialRow, LeadEventRow};
    use crate::timezone::Tz;
    use crate::CurrencyCode;

    fn ctx() -> IngestContext {
        IngestContext {
            time_zone: "Australia/Sydney".parse::<Tz>().unwrap(),
            base_currency: CurrencyCode::AUD,
            default_source_system: "csv".into(),
        }
    }

    fn read<T: IngestRow>(input: &str) -> Result<Vec<RowResult<T>>, Vec<RowError>> {
        Ok(CsvRows::<_, T>::new(input.as_bytes(), ctx())?.collect())
    }

    fn errors_of<T: IngestRow>(items: &[RowResult<T>]) -> Vec<(u64, Option<&str>)> {
        items
            .iter()
            .filter_map(|r| r.as_ref().err())
            .flatten()
            .map(|e| (e.line, e.column.as_deref()))
            .collect()
    }

    const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow";

    #[test]
    fn reads_rows_with_bom_crlf_quotes_and_any_column_order() {
        let input = "\u{feff}revenue,Client_Name,client_id,record_date,cash_flow,expenses\r\n\
                     100,\"Acme, \"\"the\"\" best\",C1,2024-03-01,5,40\r\n\
                     \"200.5\",\"Multi\nline\",C2,2024-03-02,0,0\r\n";
        let rows = read::<FinancialRow>(input).unwrap();
        assert_eq!(rows.len(), 2);
        let a = rows[0].as_ref().unwrap();
        assert_eq!(a.line, 2);
        assert_eq!(a.row.client().client_name(), Some("Acme, \"the\" best"));
        assert_eq!(a.row.net_profit().decimal().to_string(), "60.00");
        let b = rows[1].as_ref().unwrap();
        assert_eq!(b.line, 3);
        assert_eq!(b.row.client().client_name(), Some("Multi\nline"));
    }

    #[test]
    fn crlf_becomes_lf_across_read_boundaries() {
        /// Hands out one byte per read, to split every CRLF.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        for input in [&b"a\r\nb\rc\r\r\nd\r"[..], b"\r\n\r\n", b"plain\n"] {
            let expected: Vec<u8> = String::from_utf8(input.to_vec())
                .unwrap()
                .replace("\r\n", "\n")
                .into_bytes();
            let mut out = Vec::new();
            CrlfToLf::new(Trickle(input)).read_to_end(&mut out).unwrap();
            assert_eq!(out, expected);
            let mut out = Vec::new();
            CrlfToLf::new(input).read_to_end(&mut out).unwrap();
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn crlf_line_numbers_are_exact() {
        let input = format!("{HEADER}\r\nC1,A,2024-03-01,1,1,1\r\nC1,A,2024-03-01,1,1,1\r\nC2,B,2024-02-30,1,1,1\r\n");
        let rows = read::<FinancialRow>(&input).unwrap();
        assert_eq!(errors_of(&rows), [(4, Some("record_date"))]);
    }

    #[test]
    fn line_numbers_count_lines_inside_quoted_fields() {
        let input =
            format!("{HEADER}\nC1,\"two\nlines\",2024-03-01,1,1,1\nC2,B,2024-02-30,1,1,1\n");
        let rows = read::<FinancialRow>(&input).unwrap();
        // Row 1 spans lines 2-3, so the bad row starts on line 4.
        assert_eq!(errors_of(&rows), [(4, Some("record_date"))]);
    }

    #[test]
    fn unknown_columns_are_header_errors_naming_them() {
        let err = read::<FinancialRow>(&format!("{HEADER},profit,Notes\n")).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].line, 1);
        assert!(
            err[0]
                .reason
                .starts_with("unknown columns `profit`, `Notes` for financials"),
            "{}",
            err[0].reason
        );
    }

    #[test]
    fn missing_required_and_duplicate_columns_are_header_errors() {
        let err = read::<FinancialRow>("client_id,client_id,record_date,revenue\n").unwrap_err();
        let got: Vec<_> = err
            .iter()
            .map(|e| (e.line, e.column.as_deref().unwrap_or(""), e.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "client_id", "the column appears more than once"),
                (
                    1,
                    "client_name",
                    "required column is missing from the header"
                ),
                (1, "expenses", "required column is missing from the header"),
                (1, "cash_flow", "required column is missing from the header"),
            ]
        );
        let err = read::<FinancialRow>("").unwrap_err();
        assert!(err[0].reason.contains("empty"));
    }

    #[test]
    fn wrong_field_counts_and_bad_utf8_are_row_errors() {
        let mut input =
            format!("{HEADER}\nC1,A,2024-03-01,1,1\nC2,B,2024-03-01,1,1,1\n").into_bytes();
        input.extend_from_slice(b"C3,\xff\xfe,2024-03-01,1,1,1\n");
        let rows: Vec<_> = CsvRows::<_, FinancialRow>::new(&input[..], ctx())
            .unwrap()
            .collect();
        assert_eq!(errors_of(&rows), [(2, None), (4, Some("client_name"))]);
        assert!(rows[0].as_ref().unwrap_err()[0]
            .reason
            .contains("expected 6 fields"));
        assert!(rows[1].is_ok());
    }

    #[test]
    fn every_rule_reports_its_line() {
        let input = format!(
            "{HEADER},net_profit,currency\n\
             C1,A,2024-03-01,10,4,1,,\n\
             C1,A,2024-03-01,10,4,1,7,\n\
             C1,A,2024-03-01,10.001,4,1,,\n\
             C1,A,2024-03-01,\"1,000\",4,1,,\n\
             C1,A,03/01/2024,10,4,1,,\n\
             C1,A,2024-03-01,10,4,1,,XXX\n\
             ,A,2024-03-01,10,4,1,,\n\
             C1,A,2024-03-01,10,4,99999999999,,\n"
        );
        let rows = read::<FinancialRow>(&input).unwrap();
        assert_eq!(
            errors_of(&rows),
            [
                (3, Some("net_profit")),
                (4, Some("revenue")),
                (5, Some("revenue")),
                (6, Some("record_date")),
                (7, Some("currency")),
                (8, Some("client_id")),
                (9, Some("cash_flow")),
            ]
        );
    }

    #[test]
    fn lead_events_and_custom_metrics_read_timestamps_in_the_tenant_zone() {
        let input = "client_id,event_date,lead_id,stage,status,value\n\
                     C1,2024-03-01 09:30,L1,won,WON,10\n\
                     C1,2024-03-01T09:30:00Z,L1,won,bogus,10\n";
        let rows = read::<LeadEventRow>(input).unwrap();
        assert_eq!(
            rows[0].as_ref().unwrap().row.event_date().to_rfc3339(),
            "2024-02-29T22:30:00+00:00"
        );
        assert_eq!(errors_of(&rows), [(3, Some("status"))]);

        let input = "metric_name,client_id,metric_value,record_date\nnps,C1,1.5,2024-03-01\nnps,C1,x,2024-03-01\n";
        let rows = read::<CustomMetricRow>(input).unwrap();
        assert!(rows[0].is_ok());
        assert_eq!(errors_of(&rows), [(3, Some("metric_value"))]);
    }

    #[test]
    fn streams_without_reading_ahead() {
        // An input that fails after the first two records: the rows before it come out first.
        struct Failing {
            data: &'static [u8],
            pos: usize,
        }
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.pos == self.data.len() {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let data = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,A,2024-03-01,1,1,1\n";
        let mut rows = CsvRows::<_, FinancialRow>::new(Failing { data, pos: 0 }, ctx()).unwrap();
        assert!(rows.next().unwrap().is_ok());
        let err = rows.next().unwrap().unwrap_err();
        assert!(err[0].reason.contains("disk on fire"));
        assert!(rows.read_failure().is_some());
        assert!(rows.next().is_none());
    }

    /// The error that ended the input (the last item) and the number of items before it.
    fn failure<T: IngestRow + std::fmt::Debug>(rows: CsvRows<&[u8], T>) -> (usize, RowError) {
        let items: Vec<_> = rows.collect();
        let last = items.last().expect("an item").as_ref().unwrap_err()[0].clone();
        (items.len() - 1, last)
    }

    #[test]
    fn an_unclosed_quote_fails_at_the_record_size_limit_naming_both_lines() {
        // Line 3 opens a quote that never closes: the rest of the file would be one record.
        let mut input = format!("{HEADER}\nC1,A,2024-03-01,1,1,1\nC2,\"B,2024-03-01,1,1,1\n");
        for _ in 0..20 {
            input.push_str("C3,C,2024-03-01,1,1,1\n");
        }
        let rows =
            CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
        let (before, e) = failure(rows);
        assert_eq!(before, 1, "the valid line 2 comes first");
        assert_eq!(e.line, 3);
        assert_eq!(
            e.reason,
            "line 3: record longer than 64 bytes (unclosed quote at line 3?)"
        );

        // The record starts on line 3; the quote left open is the one on line 4.
        let input = format!(
            "{HEADER}\nC1,A,2024-03-01,1,1,1\nC2,\"two\nlines\",2024-03-01,1,\"1,1\n{}",
            "x\n".repeat(40)
        );
        let rows =
            CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
        assert_eq!(
            failure(rows).1.reason,
            "line 3: record longer than 64 bytes (unclosed quote at line 4?)"
        );
    }

    #[test]
    fn a_long_line_without_quotes_fails_without_the_quote_hint() {
        let input = format!(
            "{HEADER}\nC1,A,2024-03-01,1,1,1\r\n{}\r\nC2,B,2024-03-01,1,1,1\r\n",
            "y".repeat(100)
        );
        let rows =
            CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64).unwrap();
        let (before, e) = failure(rows);
        assert_eq!((before, e.line), (1, 3));
        assert_eq!(e.reason, "line 3: record longer than 64 bytes");

        // The header is a record too.
        let input = format!("{HEADER},{}\n", "z".repeat(100));
        let err = CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), 64)
            .err()
            .unwrap();
        assert_eq!(err[0].reason, "line 1: record longer than 64 bytes");
    }

    #[test]
    fn records_up_to_the_limit_and_quotes_inside_unquoted_fields_are_fine() {
        // A quote inside an unquoted field is an ordinary character for the csv crate, and so
        // for the limit: every record here is short, whatever the quotes.
        let mut input = format!("{HEADER}\n");
        for i in 0..50 {
            input.push_str(&format!("C{i},5\" screen,2024-03-01,1,1,1\n"));
            input.push_str(&format!("C{i},\"say \"\"hi\"\"\",2024-03-02,1,1,1\n"));
        }
        let longest = input.lines().map(str::len).max().unwrap();
        let rows: Vec<_> =
            CsvRows::<_, FinancialRow>::with_max_record(input.as_bytes(), ctx(), longest + 1)
                .unwrap()
                .collect();
        assert_eq!(rows.len(), 100);
        assert!(
            rows.iter().all(Result::is_ok),
            "{:?}",
            rows.iter().find(|r| r.is_err())
        );
        assert_eq!(
            rows[1].as_ref().unwrap().row.client().client_name(),
            Some("say \"hi\"")
        );
    }

    #[test]
    fn the_record_limit_fails_before_buffering_the_record() {
        // An endless quoted field: without the limit the reader would buffer until memory runs
        // out. The source panics if more than twice the limit is read.
        struct Endless {
            sent: usize,
            head: &'static [u8],
        }
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                assert!(self.sent < 2 * MAX_RECORD_BYTES, "read far past the limit");
                let n = if self.sent < self.head.len() {
                    let n = buf.len().min(self.head.len() - self.sent);
                    buf[..n].copy_from_slice(&self.head[self.sent..self.sent + n]);
                    n
                } else {
                    buf.fill(b'x');
                    buf.len()
                };
                self.sent += n;
                Ok(n)
            }
        }
        let head = b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,\"";
        let mut rows = CsvRows::<_, FinancialRow>::new(Endless { sent: 0, head }, ctx()).unwrap();
        let err = rows.next().unwrap().unwrap_err();
        assert_eq!(
            err[0].reason,
            format!(
                "line 2: record longer than {MAX_RECORD_BYTES} bytes (unclosed quote at line 2?)"
            )
        );
        assert_eq!(err[0].line, 2);
        assert!(rows.read_failure().is_some());
        assert!(rows.next().is_none());
    }

    #[test]
    fn long_values_are_cut_in_error_messages() {
        let huge = "9".repeat(10_000);
        let input = format!("{HEADER},currency\nC1,A,{huge},x{huge},1,1,{huge}\n");
        let rows = read::<FinancialRow>(&input).unwrap();
        let errors = rows[0].as_ref().unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        for e in errors {
            assert!(e.reason.len() < 300, "{}", e.reason);
            assert!(e.reason.contains("…` (10"), "{}", e.reason);
        }
        assert_eq!(
            errors[0].reason,
            format!(
                "`{}…` (10000 characters) is not an ISO date (YYYY-MM-DD)",
                "9".repeat(80)
            )
        );
        // Many unknown columns: ten named, the rest counted.
        let header: Vec<String> = (0..1000).map(|i| format!("extra{i}")).collect();
        let err = read::<FinancialRow>(&format!("{HEADER},{}\n", header.join(","))).unwrap_err();
        assert!(err[0].reason.len() < 1000, "{}", err[0].reason);
        assert!(
            err[0]
                .reason
                .contains("`extra9`, and 990 more for financials"),
            "{}",
            err[0].reason
        );
    }

    #[test]
    fn rejects_file_has_original_columns_line_and_error() {
        let input = format!(
            "\u{feff}{HEADER}\r\nC1,A,2024-03-01,1,1,1\r\nC2,\"B, b\",2024-02-30,1,1,1\r\n"
        );
        let rejected = BTreeMap::from([(
            3,
            "column record_date: `2024-02-30` is not a real date".to_string(),
        )]);
        let mut out = Vec::new();
        assert_eq!(
            write_rejects(input.as_bytes(), &mut out, &rejected).unwrap(),
            1
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{HEADER},line,error\nC2,\"B, b\",2024-02-30,1,1,1,3,column record_date: `2024-02-30` is not a real date\n")
        );
    }
}
