//! The validated rows of the three datasets. Fields are private: a value of these types has passed
//! every row-level rule of [`super`].

use chrono::{DateTime, NaiveDate, Utc};

use super::value::{parse_date, parse_timestamp, MetricValue, Money};
use super::{columns, Column, Dataset, IngestContext, IngestRow, RowError, MAX_TEXT_LEN};
use crate::CurrencyCode;

/// The client a row belongs to (`client_kpis` by `client_id`). `client_name` / `industry` `None`
/// means "not given": an existing client keeps its values, a new one is named after its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRef {
    client_id: String,
    client_name: Option<String>,
    industry: Option<String>,
}

impl ClientRef {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }
    pub fn industry(&self) -> Option<&str> {
        self.industry.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeadStatus {
    Active,
    Won,
    Lost,
    Stale,
}

impl LeadStatus {
    /// The `lead_status` enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Active => "active",
            LeadStatus::Won => "won",
            LeadStatus::Lost => "lost",
            LeadStatus::Stale => "stale",
        }
    }

    pub fn parse(s: &str) -> Result<LeadStatus, String> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(LeadStatus::Active),
            "won" => Ok(LeadStatus::Won),
            "lost" => Ok(LeadStatus::Lost),
            "stale" => Ok(LeadStatus::Stale),
            _ => Err(format!(
                "{} is not a lead status (active, won, lost or stale)",
                super::shown(s)
            )),
        }
    }
}

/// One row of `financials`: a client's numbers for one day from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct FinancialRow {
    client: ClientRef,
    record_date: NaiveDate,
    revenue: Money,
    expenses: Money,
    net_profit: Money,
    cash_flow: Money,
    currency: CurrencyCode,
    source_system: String,
    external_id: Option<String>,
}

impl FinancialRow {
    pub fn record_date(&self) -> NaiveDate {
        self.record_date
    }
    pub fn revenue(&self) -> Money {
        self.revenue
    }
    pub fn expenses(&self) -> Money {
        self.expenses
    }
    pub fn net_profit(&self) -> Money {
        self.net_profit
    }
    pub fn cash_flow(&self) -> Money {
        self.cash_flow
    }
    pub fn currency(&self) -> CurrencyCode {
        self.currency
    }
    pub fn source_system(&self) -> &str {
        &self.source_system
    }
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }
}

/// One row of `lead_events`: a lead reaching a stage at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadEventRow {
    client: ClientRef,
    event_date: DateTime<Utc>,
    local_date: NaiveDate,
    lead_id: String,
    stage: String,
    value: Option<Money>,
    currency: CurrencyCode,
    status: LeadStatus,
    source_system: String,
    external_id: Option<String>,
}

impl LeadEventRow {
    pub fn event_date(&self) -> DateTime<Utc> {
        self.event_date
    }
    /// The calendar date of the event in the tenant's zone (used for FX rates).
    pub fn local_date(&self) -> NaiveDate {
        self.local_date
    }
    pub fn lead_id(&self) -> &str {
        &self.lead_id
    }
    pub fn stage(&self) -> &str {
        &self.stage
    }
    pub fn value(&self) -> Option<Money> {
        self.value
    }
    pub fn currency(&self) -> CurrencyCode {
        self.currency
    }
    pub fn status(&self) -> LeadStatus {
        self.status
    }
    pub fn source_system(&self) -> &str {
        &self.source_system
    }
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }
}

/// One row of `custom_metrics`: a metric value of a client at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomMetricRow {
    client: ClientRef,
    metric_name: String,
    metric_value: MetricValue,
    unit: Option<String>,
    record_date: DateTime<Utc>,
    source_system: String,
}

impl CustomMetricRow {
    pub fn metric_name(&self) -> &str {
        &self.metric_name
    }
    pub fn metric_value(&self) -> MetricValue {
        self.metric_value
    }
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }
    pub fn record_date(&self) -> DateTime<Utc> {
        self.record_date
    }
    pub fn source_system(&self) -> &str {
        &self.source_system
    }
}

/// Reads the cells of one row, collecting every error with its column.
struct Cells<'a, F: Fn(usize) -> Option<&'a str>> {
    field: F,
    columns: &'static [Column],
    line: u64,
    errors: Vec<RowError>,
}

impl<'a, F: Fn(usize) -> Option<&'a str>> Cells<'a, F> {
    /// The trimmed cell, `None` when absent or blank.
    fn get(&self, i: usize) -> Option<&'a str> {
        (self.field)(i).map(str::trim).filter(|s| !s.is_empty())
    }

    fn error(&mut self, i: usize, reason: String) {
        self.errors
            .push(RowError::new(self.line, Some(self.columns[i].name), reason));
    }

    fn required<T>(
        &mut self,
        i: usize,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.get(i) {
            None => {
                self.error(i, "required value is missing".into());
                None
            }
            Some(s) => self.run(i, s, parse),
        }
    }

    fn optional<T>(
        &mut self,
        i: usize,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.get(i)?;
        self.run(i, s, parse)
    }

    fn run<T>(
        &mut self,
        i: usize,
        s: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        // Before any parser: their errors quote the value, and a reason holding a NUL could not
        // be stored with the load's `sync_runs` row (PostgreSQL text cannot hold U+0000).
        if s.contains('\0') {
            self.error(i, "contains a NUL character (U+0000)".into());
            return None;
        }
        match parse(s) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.error(i, reason);
                None
            }
        }
    }

    fn client(
        &mut self,
        id: usize,
        name: usize,
        industry: usize,
        name_required: bool,
    ) -> Option<ClientRef> {
        let client_id = self.required(id, text);
        let client_name = if name_required {
            self.required(name, text)
        } else {
            self.optional(name, text)
        };
        let industry = self.optional(industry, text);
        Some(ClientRef {
            client_id: client_id?,
            client_name,
            industry,
        })
    }

    fn currency(&mut self, i: usize, ctx: &IngestContext) -> CurrencyCode {
        self.optional(i, |s| s.parse::<CurrencyCode>().map_err(|e| e.to_string()))
            .unwrap_or(ctx.base_currency)
    }

    fn source_system(&mut self, i: usize, ctx: &IngestContext) -> String {
        self.optional(i, text)
            .unwrap_or_else(|| ctx.default_source_system.clone())
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<RowError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a field failed without an error");
                Err(self.errors)
            }
        }
    }
}

fn text(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_TEXT_LEN {
        return Err(format!("longer than {MAX_TEXT_LEN} characters"));
    }
    if s.contains('\0') {
        // PostgreSQL text cannot hold NUL.
        return Err("contains a NUL character".into());
    }
    Ok(s.to_string())
}

/// Column positions, in the order of the `columns` lists (a test checks they agree).
mod fin {
    pub const CLIENT_ID: usize = 0;
    pub const CLIENT_NAME: usize = 1;
    pub const RECORD_DATE: usize = 2;
    pub const REVENUE: usize = 3;
    pub const EXPENSES: usize = 4;
    pub const NET_PROFIT: usize = 5;
    pub const CASH_FLOW: usize = 6;
    pub const CURRENCY: usize = 7;
    pub const SOURCE_SYSTEM: usize = 8;
    pub const EXTERNAL_ID: usize = 9;
    pub const INDUSTRY: usize = 10;
}
mod lead {
    pub const CLIENT_ID: usize = 0;
    pub const CLIENT_NAME: usize = 1;
    pub const EVENT_DATE: usize = 2;
    pub const LEAD_ID: usize = 3;
    pub const STAGE: usize = 4;
    pub const VALUE: usize = 5;
    pub const STATUS: usize = 6;
    pub const CURRENCY: usize = 7;
    pub const SOURCE_SYSTEM: usize = 8;
    pub const EXTERNAL_ID: usize = 9;
    pub const INDUSTRY: usize = 10;
}
mod metric {
    pub const CLIENT_ID: usize = 0;
    pub const CLIENT_NAME: usize = 1;
    pub const METRIC_NAME: usize = 2;
    pub const METRIC_VALUE: usize = 3;
    pub const UNIT: usize = 4;
    pub const RECORD_DATE: usize = 5;
    pub const SOURCE_SYSTEM: usize = 6;
    pub const INDUSTRY: usize = 7;
}

impl IngestRow for FinancialRow {
    const DATASET: Dataset = Dataset::Financials;
    const COLUMNS: &'static [Column] = columns::FINANCIALS;
    // client_id, client_name, record_date, revenue, expenses, net_profit, cash_flow, currency,
    // source_system, external_id, industry
    const EXAMPLE: &'static [&'static str] = &[
        "ACME-01",
        "Acme Pty Ltd",
        "2026-01-31",
        "12500.00",
        "8300.50",
        "4199.50",
        "3900.00",
        // Empty: the account's base currency, so that the example loads in any account.
        "",
        "",
        "INV-1001",
        "Construction",
    ];

    fn parse_fields<'a>(
        field: impl Fn(usize) -> Option<&'a str>,
        line: u64,
        ctx: &IngestContext,
    ) -> Result<Self, Vec<RowError>> {
        let mut c = Cells {
            field,
            columns: Self::COLUMNS,
            line,
            errors: Vec::new(),
        };
        let client = c.client(fin::CLIENT_ID, fin::CLIENT_NAME, fin::INDUSTRY, true);
        let record_date = c.required(fin::RECORD_DATE, parse_date);
        let revenue = c.required(fin::REVENUE, Money::parse);
        let expenses = c.required(fin::EXPENSES, Money::parse);
        let given_net = c.optional(fin::NET_PROFIT, Money::parse);
        let net_given = c.get(fin::NET_PROFIT).is_some();
        let cash_flow = c.required(fin::CASH_FLOW, Money::parse);
        let currency = c.currency(fin::CURRENCY, ctx);
        let source_system = c.source_system(fin::SOURCE_SYSTEM, ctx);
        let external_id = c.optional(fin::EXTERNAL_ID, text);

        let mut net_profit = None;
        if let (Some(r), Some(e)) = (revenue, expenses) {
            match r.checked_sub(e) {
                None => c.error(fin::NET_PROFIT, format!("revenue - expenses = {r} - {e} is out of range (numeric(12,2))")),
                Some(derived) => match given_net {
                    Some(given) if given != derived => c.error(
                        fin::NET_PROFIT,
                        format!("{given} is not revenue - expenses = {r} - {e} = {derived} (leave it empty to derive it)"),
                    ),
                    Some(_) => net_profit = Some(derived),
                    None if !net_given => net_profit = Some(derived),
                    None => {} // malformed: already reported
                },
            }
        }

        let row = (|| {
            Some(FinancialRow {
                client: client?,
                record_date: record_date?,
                revenue: revenue?,
                expenses: expenses?,
                net_profit: net_profit?,
                cash_flow: cash_flow?,
                currency,
                source_system,
                external_id,
            })
        })();
        c.finish(row)
    }

    fn client(&self) -> &ClientRef {
        &self.client
    }
}

impl IngestRow for LeadEventRow {
    const DATASET: Dataset = Dataset::LeadEvents;
    const COLUMNS: &'static [Column] = columns::LEAD_EVENTS;
    // client_id, client_name, event_date, lead_id, stage, value, status, currency, source_system,
    // external_id, industry
    const EXAMPLE: &'static [&'static str] = &[
        "ACME-01",
        "Acme Pty Ltd",
        "2026-01-15T09:30:00+11:00",
        "LEAD-42",
        "proposal",
        "5000.00",
        "active",
        "",
        "",
        "",
        "Construction",
    ];

    fn parse_fields<'a>(
        field: impl Fn(usize) -> Option<&'a str>,
        line: u64,
        ctx: &IngestContext,
    ) -> Result<Self, Vec<RowError>> {
        let mut c = Cells {
            field,
            columns: Self::COLUMNS,
            line,
            errors: Vec::new(),
        };
        let client = c.client(lead::CLIENT_ID, lead::CLIENT_NAME, lead::INDUSTRY, false);
        let event = c.required(lead::EVENT_DATE, |s| parse_timestamp(s, ctx.time_zone));
        let lead_id = c.required(lead::LEAD_ID, text);
        let stage = c.required(lead::STAGE, text);
        let value = c.optional(lead::VALUE, Money::parse);
        let status = c.required(lead::STATUS, LeadStatus::parse);
        let currency = c.currency(lead::CURRENCY, ctx);
        let source_system = c.source_system(lead::SOURCE_SYSTEM, ctx);
        let external_id = c.optional(lead::EXTERNAL_ID, text);
        let row = (|| {
            let (event_date, local_date) = event?;
            Some(LeadEventRow {
                client: client?,
                event_date,
                local_date,
                lead_id: lead_id?,
                stage: stage?,
                value,
                currency,
                status: status?,
                source_system,
                external_id,
            })
        })();
        c.finish(row)
    }

    fn client(&self) -> &ClientRef {
        &self.client
    }
}

impl IngestRow for CustomMetricRow {
    const DATASET: Dataset = Dataset::CustomMetrics;
    const COLUMNS: &'static [Column] = columns::CUSTOM_METRICS;
    // client_id, client_name, metric_name, metric_value, unit, record_date, source_system,
    // industry
    const EXAMPLE: &'static [&'static str] = &[
        "ACME-01",
        "Acme Pty Ltd",
        "billable_hours",
        "37.5",
        "hours",
        "2026-01-31",
        "",
        "Construction",
    ];

    fn parse_fields<'a>(
        field: impl Fn(usize) -> Option<&'a str>,
        line: u64,
        ctx: &IngestContext,
    ) -> Result<Self, Vec<RowError>> {
        let mut c = Cells {
            field,
            columns: Self::COLUMNS,
            line,
            errors: Vec::new(),
        };
        let client = c.client(
            metric::CLIENT_ID,
            metric::CLIENT_NAME,
            metric::INDUSTRY,
            false,
        );
        let metric_name = c.required(metric::METRIC_NAME, text);
        let metric_value = c.required(metric::METRIC_VALUE, MetricValue::parse);
        let unit = c.optional(metric::UNIT, text);
        let record = c.required(metric::RECORD_DATE, |s| parse_timestamp(s, ctx.time_zone));
        let source_system = c.source_system(metric::SOURCE_SYSTEM, ctx);
        let row = (|| {
            Some(CustomMetricRow {
                client: client?,
                metric_name: metric_name?,
                metric_value: metric_value?,
                unit,
                record_date: record?.0,
                source_system,
            })
        })();
        c.finish(row)
    }

    fn client(&self) -> &ClientRef {
        &self.client
    }
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
