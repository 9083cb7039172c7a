//! Unit tests of `rows.rs` (kept apart so that the module reads as one thing).

use super::*;
use crate::timezone::Tz;

pub(crate) fn ctx() -> IngestContext {
    IngestContext {
        time_zone: "Australia/Sydney".parse::<Tz>().unwrap(),
        base_currency: CurrencyCode::AUD,
        default_source_system: "csv".into(),
    }
}

fn fin(fields: &[(&str, &str)]) -> Result<FinancialRow, Vec<RowError>> {
    FinancialRow::parse_named(fields, 7, &ctx())
}

const GOOD: &[(&str, &str)] = &[
    ("client_id", "C1"),
    ("client_name", "Acme"),
    ("record_date", "2024-03-01"),
    ("revenue", "100.50"),
    ("expenses", "40"),
    ("cash_flow", "-5.25"),
];

fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = GOOD
        .iter()
        .filter(|(n, _)| !over.iter().any(|(o, _)| o == n))
        .copied()
        .collect();
    v.extend(over.iter().filter(|(_, val)| *val != "<absent>").copied());
    v
}

fn only_error(r: Result<impl std::fmt::Debug, Vec<RowError>>) -> RowError {
    let errs = r.unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn column_positions_match_the_column_lists() {
    let f = columns::FINANCIALS;
    assert_eq!(
        [
            f[fin::CLIENT_ID],
            f[fin::CLIENT_NAME],
            f[fin::RECORD_DATE],
            f[fin::REVENUE],
            f[fin::EXPENSES]
        ]
        .map(|c| c.name),
        [
            "client_id",
            "client_name",
            "record_date",
            "revenue",
            "expenses"
        ]
    );
    assert_eq!(
        [
            f[fin::NET_PROFIT],
            f[fin::CASH_FLOW],
            f[fin::CURRENCY],
            f[fin::SOURCE_SYSTEM],
            f[fin::EXTERNAL_ID],
            f[fin::INDUSTRY]
        ]
        .map(|c| c.name),
        [
            "net_profit",
            "cash_flow",
            "currency",
            "source_system",
            "external_id",
            "industry"
        ]
    );
    let l = columns::LEAD_EVENTS;
    assert_eq!(
        [
            lead::CLIENT_ID,
            lead::CLIENT_NAME,
            lead::EVENT_DATE,
            lead::LEAD_ID,
            lead::STAGE,
            lead::VALUE
        ]
        .map(|i| l[i].name),
        [
            "client_id",
            "client_name",
            "event_date",
            "lead_id",
            "stage",
            "value"
        ]
    );
    assert_eq!(
        [
            lead::STATUS,
            lead::CURRENCY,
            lead::SOURCE_SYSTEM,
            lead::EXTERNAL_ID,
            lead::INDUSTRY
        ]
        .map(|i| l[i].name),
        [
            "status",
            "currency",
            "source_system",
            "external_id",
            "industry"
        ]
    );
    let m = columns::CUSTOM_METRICS;
    assert_eq!(
        [
            metric::CLIENT_ID,
            metric::CLIENT_NAME,
            metric::METRIC_NAME,
            metric::METRIC_VALUE,
            metric::UNIT
        ]
        .map(|i| m[i].name),
        [
            "client_id",
            "client_name",
            "metric_name",
            "metric_value",
            "unit"
        ]
    );
    assert_eq!(
        [metric::RECORD_DATE, metric::SOURCE_SYSTEM, metric::INDUSTRY].map(|i| m[i].name),
        ["record_date", "source_system", "industry"]
    );
}

#[test]
fn financial_row_derives_net_profit_and_applies_defaults() {
    let row = fin(GOOD).unwrap();
    assert_eq!(row.net_profit().decimal().to_string(), "60.50");
    assert_eq!(row.cash_flow().decimal().to_string(), "-5.25");
    assert_eq!(row.currency(), CurrencyCode::AUD);
    assert_eq!(row.source_system(), "csv");
    assert_eq!(row.external_id(), None);
    assert_eq!(row.client().client_id(), "C1");
    assert_eq!(row.client().client_name(), Some("Acme"));
    let row = fin(&with(&[
        ("net_profit", "60.5"),
        ("currency", "USD"),
        ("source_system", "xero"),
    ]))
    .unwrap();
    assert_eq!(row.net_profit().decimal().to_string(), "60.50");
    assert_eq!(row.currency().as_str(), "USD");
    assert_eq!(row.source_system(), "xero");
}

#[test]
fn inconsistent_net_profit_is_rejected_with_its_column_and_line() {
    let e = only_error(fin(&with(&[("net_profit", "60.00")])));
    assert_eq!((e.line, e.column.as_deref()), (7, Some("net_profit")));
    assert!(
        e.reason
            .contains("is not revenue - expenses = 100.50 - 40.00 = 60.50"),
        "{}",
        e.reason
    );
}

#[test]
fn derived_net_profit_out_of_range_is_rejected() {
    let e = only_error(fin(&with(&[
        ("revenue", "9999999999.99"),
        ("expenses", "-1"),
    ])));
    assert_eq!(e.column.as_deref(), Some("net_profit"));
    assert!(e.reason.contains("out of range"));
}

#[test]
fn every_error_of_a_row_is_reported() {
    let errs = fin(&with(&[
        ("client_id", "  "),
        ("record_date", "2024-02-30"),
        ("revenue", "1,000.00"),
        ("expenses", "1.234"),
        ("cash_flow", "<absent>"),
        ("currency", "usd"),
    ]))
    .unwrap_err();
    let cols: Vec<_> = errs
        .iter()
        .map(|e| (e.line, e.column.as_deref().unwrap()))
        .collect();
    assert_eq!(
        cols,
        [
            (7, "client_id"),
            (7, "record_date"),
            (7, "revenue"),
            (7, "expenses"),
            (7, "cash_flow"),
            (7, "currency")
        ]
    );
    assert_eq!(errs[0].reason, "required value is missing");
    assert!(errs[5].reason.contains("not an ISO 4217 currency code"));
}

#[test]
fn client_name_is_required_for_financials_only() {
    let e = only_error(fin(&with(&[("client_name", "")])));
    assert_eq!(e.column.as_deref(), Some("client_name"));
    let m = CustomMetricRow::parse_named(
        &[
            ("client_id", "C1"),
            ("metric_name", "nps"),
            ("metric_value", "42.5"),
            ("record_date", "2024-03-01"),
        ],
        2,
        &ctx(),
    )
    .unwrap();
    assert_eq!(m.client().client_name(), None);
    assert_eq!(m.metric_value().decimal().to_string(), "42.5000");
    assert_eq!(m.record_date().to_rfc3339(), "2024-02-29T13:00:00+00:00");
}

#[test]
fn text_fields_have_limits() {
    let long = "x".repeat(MAX_TEXT_LEN + 1);
    let fields = with(&[("external_id", "<absent>")]);
    let mut fields: Vec<(&str, &str)> = fields;
    fields.push(("external_id", &long));
    assert!(only_error(fin(&fields)).reason.contains("longer than 500"));
    assert!(only_error(fin(&with(&[("client_name", "a\0b")])))
        .reason
        .contains("NUL"));
}

#[test]
fn unknown_named_fields_are_rejected() {
    let mut fields = GOOD.to_vec();
    fields.push(("profit", "1"));
    let e = only_error(fin(&fields));
    assert_eq!(e.column, None);
    assert!(
        e.reason.contains("unknown column `profit` for financials"),
        "{}",
        e.reason
    );
}

#[test]
fn lead_events_validate_status_value_and_timestamp() {
    let parse = |status: &'static str, value: &'static str, date: &'static str| {
        LeadEventRow::parse_named(
            &[
                ("client_id", "C1"),
                ("event_date", date),
                ("lead_id", "L1"),
                ("stage", "proposal"),
                ("value", value),
                ("status", status),
            ],
            3,
            &ctx(),
        )
    };
    let row = parse("Won", "", "2024-03-01T09:30:00").unwrap();
    assert_eq!(row.status(), LeadStatus::Won);
    assert_eq!(row.value(), None);
    assert_eq!(row.event_date().to_rfc3339(), "2024-02-29T22:30:00+00:00");
    assert_eq!(
        row.local_date(),
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
    );
    let e = only_error(parse("open", "1", "2024-03-01"));
    assert_eq!((e.line, e.column.as_deref()), (3, Some("status")));
    assert!(e.reason.contains("active, won, lost or stale"));
    let e = only_error(parse("won", "1.001", "2024-03-01"));
    assert_eq!(e.column.as_deref(), Some("value"));
    let e = only_error(parse("won", "", "2024-10-06T02:30:00"));
    assert_eq!(e.column.as_deref(), Some("event_date"));
    assert!(e.reason.contains("does not exist in Australia/Sydney"));
}

#[test]
fn metric_values_have_four_places() {
    let e = only_error(CustomMetricRow::parse_named(
        &[
            ("client_id", "C1"),
            ("metric_name", "nps"),
            ("metric_value", "1.23456"),
            ("record_date", "2024-03-01"),
        ],
        9,
        &ctx(),
    ));
    assert_eq!((e.line, e.column.as_deref()), (9, Some("metric_value")));
}
