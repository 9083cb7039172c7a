//! CSV export: every list and report answers `?format=csv` with `text/csv` instead of JSON.
//!
//! - RFC 4180, written by the `csv` crate (the reader of uploads is the same crate):
//!   comma-separated, CRLF line ends, a header line, fields quoted when they hold a comma, a
//!   quote, CR or LF, quotes doubled inside quotes. UTF-8 without BOM. Rows are [`CsvRow`]s.
//! - Streamed: the body is written page by page from the database (a bounded channel between the
//!   query task and the connection), so a large export never sits whole in memory. An error
//!   after the first bytes can only cut the body short (the status line has gone); it is logged.
//! - Excel-safe: a text cell that starts with `=`, `+`, `-`, `@`, TAB or CR would be read as a
//!   formula by spreadsheet programs ("CSV injection"); such a cell is prefixed with a single
//!   quote `'` (OWASP's advice), e.g. `=HYPERLINK(...)` is exported as `'=HYPERLINK(...)`. Plain
//!   numbers (`-15.00`, `-0.25`) are left alone: they cannot carry a formula and stay numbers.
//! - An export starts at `cursor` when one is given and runs to the end (no `limit`).

use std::borrow::Cow;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Response format of lists and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// `?format=json|csv`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json` (default) or `csv` (RFC 4180, streamed; text cells that start with `=`, `+`, `-`,
    /// `@`, TAB or CR are prefixed with `'` so spreadsheets do not evaluate them).
    pub format: Option<Format>,
}

impl FormatParam {
    pub fn is_csv(&self) -> bool {
        self.format == Some(Format::Csv)
    }
}

fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// One value made safe for spreadsheets: a text that starts with `=`, `+`, `-`, `@`, TAB or CR
/// gets a leading `'`; plain numbers are left alone. Quoting is the `csv` writer's.
pub fn neutralize(s: &str) -> Cow<'_, str> {
    let formula = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) && !is_plain_number(s);
    if formula {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// One exported row: the columns of its export and its cells in that order. Every CSV export
/// (lists, series, reports, the reports page's download) writes its rows through this shape.
pub trait CsvRow {
    const HEADER: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new())
}

fn write_record<S: AsRef<str>>(w: &mut csv::Writer<Vec<u8>>, cells: &[S]) {
    w.write_record(cells.iter().map(|c| neutralize(c.as_ref()).into_owned()))
        .expect("writing CSV into a Vec cannot fail");
}

fn take(w: csv::Writer<Vec<u8>>) -> Vec<u8> {
    w.into_inner()
        .unwrap_or_else(|_| unreachable!("flushing CSV into a Vec cannot fail"))
}

/// One record with its CRLF (RFC 4180 quoting by the `csv` crate, formulas neutralized).
pub fn record<S: AsRef<str>>(cells: &[S]) -> String {
    let mut w = writer();
    write_record(&mut w, cells);
    String::from_utf8(take(w)).expect("the cells were UTF-8")
}

/// Where an export writes its records. Buffers into chunks of about 32 KiB.
pub struct CsvSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    out: csv::Writer<Vec<u8>>,
}

impl CsvSink {
    /// Appends a record; `false` once the client has gone away (stop producing).
    pub async fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> bool {
        write_record(&mut self.out, cells);
        self.out
            .flush()
            .expect("flushing CSV into a Vec cannot fail");
        if self.out.get_ref().len() >= 32 * 1024 {
            return self.flush().await;
        }
        true
    }

    /// Appends one [`CsvRow`].
    pub async fn write<R: CsvRow>(&mut self, row: &R) -> bool {
        self.row(&row.cells()).await
    }

    async fn flush(&mut self) -> bool {
        let out = std::mem::replace(&mut self.out, writer());
        let bytes = take(out);
        if bytes.is_empty() {
            return true;
        }
        self.tx.send(Ok(Bytes::from(bytes))).await.is_ok()
    }
}

/// [`stream`] with `R`'s header.
pub fn stream_rows<R, F, Fut>(filename: &str, produce: F) -> Response
where
    R: CsvRow,
    F: FnOnce(CsvSink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<CsvSink, ApiError>> + Send + 'static,
{
    stream(filename, R::HEADER, produce)
}

/// A streamed `text/csv` response: `header` first, then whatever `produce` writes. `produce` owns
/// its transaction, commits it at the end and hands the sink back; its error cuts the body short
/// and is logged.
pub fn stream<F, Fut>(filename: &str, header: &[&str], produce: F) -> Response
where
    F: FnOnce(CsvSink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<CsvSink, ApiError>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let mut out = writer();
    write_record(&mut out, header);
    let sink = CsvSink {
        tx: tx.clone(),
        out,
    };
    tokio::spawn(async move {
        let result = match produce(sink).await {
            Ok(mut sink) => {
                sink.flush().await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "CSV export failed after the response started");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut r = (StatusCode::OK, body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    let disposition = format!(
        "attachment; filename=\"{}.csv\"",
        filename.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field as the writer renders it.
    fn field(s: &str) -> String {
        record(&[s]).trim_end_matches("\r\n").to_string()
    }

    #[test]
    fn formulas_are_neutralized_and_numbers_are_not() {
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("+61 2 5550"), "'+61 2 5550");
        assert_eq!(field("-cmd"), "'-cmd");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(field("-15.00"), "-15.00");
        assert_eq!(field("-0.2500"), "-0.2500");
        assert_eq!(field("-1-2"), "'-1-2");
        assert_eq!(field("-"), "'-");
        assert_eq!(field("plain"), "plain");
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            field("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(record(&["a", "", "b c"]), "a,,b c\r\n");
    }

    #[test]
    fn a_hostile_value_is_neutralized_quoted_and_reads_back() {
        // A comma, quotes, a newline and a leading `=`: the product exports it prefixed with `'`
        // (so no spreadsheet evaluates it) and quoted (so it stays one field of one record).
        let hostile = "=HYPERLINK(\"http://x\",\"a,b\")\nnext";
        let line = record(&["id-1", hostile, "-12.50"]);
        assert_eq!(
            line,
            "id-1,\"'=HYPERLINK(\"\"http://x\"\",\"\"a,b\"\")\nnext\",-12.50\r\n"
        );
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let back: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(
            back[0].iter().map(str::to_string).collect::<Vec<_>>(),
            [
                "id-1".to_string(),
                format!("'{hostile}"),
                "-12.50".to_string()
            ]
        );
    }
}
