//! Ingestion: the rows of the three time series (`financials`, `lead_events`, `custom_metrics`),
//! their validation rules, and a streaming CSV reader. No IO: the reader takes any `std::io::Read`.
//!
//! Every source (CSV file, REST batch, connector) produces the same domain rows, so the rules live
//! here once:
//!
//! - **Money** (`revenue`, `expenses`, `net_profit`, `cash_flow`, `value`): a plain decimal
//!   (`-1234.5`), at most 2 decimal places, within `numeric(12,2)` (at most 10 integer digits). No
//!   thousands separators, no exponent, no currency symbols, no rounding: `12.345` is an error.
//! - **Metric values**: the same with at most 4 places, within `numeric(12,4)` (8 integer digits).
//! - **Dates**: ISO `YYYY-MM-DD` and real (`2024-02-30` is an error).
//! - **Timestamps** (`lead_events.event_date`, `custom_metrics.record_date`): RFC 3339 with an
//!   offset (`2024-03-01T09:30:00+11:00`, `...Z`), or naive (`2024-03-01T09:30:00`,
//!   `2024-03-01 09:30`, or a bare date = local midnight) read in the tenant's IANA time zone;
//!   stored as UTC. A naive time that does not exist (DST gap) or exists twice (DST overlap) in that
//!   zone is an error asking for an explicit offset.
//! - **Currency**: an active ISO 4217 code in upper case; empty = the tenant's base currency.
//! - **`net_profit`**: derived as `revenue - expenses` when empty; an error when present and
//!   different.
//! - **Lead status**: `active`, `won`, `lost` or `stale` (case-insensitive, stored lower case).
//! - **Text keys** (`client_id`, `lead_id`, `stage`, `metric_name`, ...): required ones non-blank;
//!   all text is trimmed and at most [`MAX_TEXT_LEN`] characters.
//! - **`source_system`**: empty = the context's default (`csv` for file imports). It is part of
//!   every dedup key, so a re-import with the same default never duplicates.
//!
//! Rules that need the whole input or the database (duplicate keys inside one input, missing FX
//! rates) are checked by the loader in `zixly_db::loader`, which reports them in the same
//! [`RowError`] shape.

mod csv_input;
pub mod fx;
mod rows;
#[cfg(test)]
mod template_tests;
mod value;

use std::fmt;

pub use csv_input::{write_rejects, CsvRows, RecordTooLong, RejectedLine, MAX_RECORD_BYTES};
pub use rows::{ClientRef, CustomMetricRow, FinancialRow, LeadEventRow, LeadStatus};
pub use value::{parse_date, parse_timestamp, MetricValue, Money};

use crate::timezone::Tz;
use crate::CurrencyCode;

/// Longest accepted text field, in characters.
pub const MAX_TEXT_LEN: usize = 500;

/// Characters of an input value that error messages echo; a longer value is cut (see [`shown`]).
pub const MAX_SHOWN_CHARS: usize = 80;

/// An input value as error messages show it: in backticks, at most [`MAX_SHOWN_CHARS`]
/// characters, a longer one cut with `…` and followed by its length in characters
/// (`` `123…` (10485760 characters) ``). Errors are kept and sent back (API answers, `sync_runs.errors`, the imports
/// page), so echoing a value in full would make their size the input's.
pub fn shown(value: &str) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // A NUL is written as `\0`: messages are stored as text, which cannot hold U+0000.
            let nul_safe = |s: &str| s.replace('\0', "\\0");
            match self.0.char_indices().nth(MAX_SHOWN_CHARS) {
                None => write!(f, "`{}`", nul_safe(self.0)),
                Some((cut, _)) => write!(
                    f,
                    "`{}…` ({} characters)",
                    nul_safe(&self.0[..cut]),
                    self.0.chars().count()
                ),
            }
        }
    }
    Shown(value)
}

/// Unknown column names listed in a header error; the rest are counted.
const MAX_LISTED_COLUMNS: usize = 10;

/// What went wrong with one row (or the header, line 1). `line` is the line in the file where the
/// record starts (header = line 1); for non-file sources it is the 1-based position + 1, so that
/// "line" means the same thing whether a batch came from a file or an API body. `column` is `None`
/// for errors about the row as a whole (wrong field count, duplicate key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
}

impl RowError {
    pub fn new(line: u64, column: Option<&str>, reason: impl Into<String>) -> Self {
        RowError {
            line,
            column: column.map(str::to_string),
            reason: reason.into(),
        }
    }

    /// `FILE:LINE: column COLUMN: reason` (or `FILE:LINE: reason` without a column).
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct D<'a>(&'a RowError, &'a str);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}: {}", self.1, self.0.line, self.0)
            }
        }
        D(self, file)
    }
}

impl fmt::Display for RowError {
    /// `column COLUMN: reason` (or just the reason).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column {c}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// A valid row and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRow<T> {
    pub line: u64,
    pub row: T,
}

/// One item of an ingestion stream: a valid row, or every error found on one line.
pub type RowResult<T> = Result<ValidRow<T>, Vec<RowError>>;

/// The three time series a loader can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    Financials,
    LeadEvents,
    CustomMetrics,
}

impl Dataset {
    /// The name used in `sync_runs.dataset` and in table names.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Financials => "financials",
            Dataset::LeadEvents => "lead_events",
            Dataset::CustomMetrics => "custom_metrics",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What parsing needs to know about the tenant and the source.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// Naive timestamps are read in this zone.
    pub time_zone: Tz,
    /// Currency of rows that do not name one.
    pub base_currency: CurrencyCode,
    /// `source_system` of rows that do not name one (`csv` for file imports).
    pub default_source_system: String,
}

/// A column of an input layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
}

const fn req(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}
const fn opt(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

/// A row type of one dataset: its input columns and how to build it from their text.
pub trait IngestRow: Sized + Send + 'static {
    const DATASET: Dataset;
    /// Accepted columns. "Required" means the column must be in the header; whether a cell may be
    /// empty is a rule of the field.
    const COLUMNS: &'static [Column];
    /// One valid example value per column of [`IngestRow::COLUMNS`], for the CSV template of the
    /// dataset ([`csv_template`]).
    const EXAMPLE: &'static [&'static str];

    /// Builds a row from the text of its columns: `field(i)` is the cell of `COLUMNS[i]`, `None`
    /// when the column is absent. Returns every error of the row, each naming its column.
    fn parse_fields<'a>(
        field: impl Fn(usize) -> Option<&'a str>,
        line: u64,
        ctx: &IngestContext,
    ) -> Result<Self, Vec<RowError>>;

    /// Builds a row from named text fields (REST bodies, connectors). Names outside
    /// [`IngestRow::COLUMNS`] are an error, as in a CSV header.
    fn parse_named<'a>(
        fields: &[(&'a str, &'a str)],
        line: u64,
        ctx: &IngestContext,
    ) -> Result<Self, Vec<RowError>> {
        let unknown: Vec<&str> = fields
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !Self::COLUMNS.iter().any(|c| c.name == *n))
            .collect();
        if !unknown.is_empty() {
            return Err(vec![RowError::new(
                line,
                None,
                unknown_columns_reason::<Self>(&unknown),
            )]);
        }
        Self::parse_fields(
            |i| {
                fields
                    .iter()
                    .find(|(n, _)| *n == Self::COLUMNS[i].name)
                    .map(|(_, v)| *v)
            },
            line,
            ctx,
        )
    }

    /// The client this row belongs to.
    fn client(&self) -> &ClientRef;
}

/// The CSV template of a dataset: the header (every accepted column) and one example row that
/// passes every rule of the dataset (a tenant with base currency AUD). Fields are written as they
/// are: no column name or example needs quoting.
pub fn csv_template<T: IngestRow>() -> String {
    let header: Vec<&str> = T::COLUMNS.iter().map(|c| c.name).collect();
    format!("{}\n{}\n", header.join(","), T::EXAMPLE.join(","))
}

pub(crate) fn unknown_columns_reason<T: IngestRow>(unknown: &[&str]) -> String {
    // `shown` cuts long names and writes a NUL as `\0` (the reason is stored as text, which
    // cannot hold U+0000).
    let mut quoted: Vec<String> = unknown
        .iter()
        .take(MAX_LISTED_COLUMNS)
        .map(|u| shown(u).to_string())
        .collect();
    if unknown.len() > MAX_LISTED_COLUMNS {
        quoted.push(format!("and {} more", unknown.len() - MAX_LISTED_COLUMNS));
    }
    let known: Vec<&str> = T::COLUMNS.iter().map(|c| c.name).collect();
    format!(
        "unknown column{} {} for {} (accepted: {})",
        if unknown.len() == 1 { "" } else { "s" },
        quoted.join(", "),
        T::DATASET,
        known.join(", ")
    )
}

pub(crate) mod columns {
    use super::{opt, req, Column};

    pub const FINANCIALS: &[Column] = &[
        req("client_id"),
        req("client_name"),
        req("record_date"),
        req("revenue"),
        req("expenses"),
        opt("net_profit"),
        req("cash_flow"),
        opt("currency"),
        opt("source_system"),
        opt("external_id"),
        opt("industry"),
    ];
    pub const LEAD_EVENTS: &[Column] = &[
        req("client_id"),
        opt("client_name"),
        req("event_date"),
        req("lead_id"),
        req("stage"),
        opt("value"),
        req("status"),
        opt("currency"),
        opt("source_system"),
        opt("external_id"),
        opt("industry"),
    ];
    pub const CUSTOM_METRICS: &[Column] = &[
        req("client_id"),
        opt("client_name"),
        req("metric_name"),
        req("metric_value"),
        opt("unit"),
        req("record_date"),
        opt("source_system"),
        opt("industry"),
    ];
}
