//! CSV export: every list and report answers `?format=csv` with `text/csv` instead of JSON.
//!
//! - RFC 4180: comma-separated, CRLF line ends, a header line, fields quoted when they hold a
//!   comma, a quote, CR or LF, quotes doubled inside quotes. UTF-8 without BOM.
//! - Streamed: the body is written page by page from the database (a bounded channel between the
//!   query task and the connection), so a large export never sits whole in memory. An error
//!   after the first bytes can only cut the body short (the status line has gone); it is logged.
//! - Excel-safe: a text cell that starts with `=`, `+`, `-`, `@`, TAB or CR would be read as a
//!   formula by spreadsheet programs ("CSV injection"); such a cell is prefixed with a single
//!   quote `'` (OWASP's advice), e.g. `=HYPERLINK(...)` is exported as `'=HYPERLINK(...)`. Plain
//!   numbers (`-15.00`, `-0.25`) are left alone: they cannot carry a formula and stay numbers.
//! - An export starts at `cursor` when one is given and runs to the end (no `limit`).

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

/// One field, neutralized and quoted as needed.
pub fn field(s: &str) -> String {
    let neutralize = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) && !is_plain_number(s);
    let value = if neutralize {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// One record with its CRLF.
pub fn record<S: AsRef<str>>(cells: &[S]) -> String {
    let mut line = cells
        .iter()
        .map(|c| field(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Where an export writes its records. Buffers into chunks of about 32 KiB.
pub struct CsvSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: String,
}

impl CsvSink {
    /// Appends a record; `false` once the client has gone away (stop producing).
    pub async fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> bool {
        self.buf.push_str(&record(cells));
        if self.buf.len() >= 32 * 1024 {
            return self.flush().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.is_ok()
    }
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
    let sink = CsvSink {
        tx: tx.clone(),
        buf: record(header),
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
}
