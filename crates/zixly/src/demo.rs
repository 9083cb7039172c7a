//! Demo data for the tenant `zixly up` creates on a fresh database, so the first look at the product
//! shows charts rather than empty states. The rows are generated as CSV and loaded through the same
//! path as `zixly import` (parser, validation, loader), with `source_system = demo`.
//!
//! Deterministic (a fixed-seed generator) and relative to today: 13 months of daily financials for
//! five clients, a year of sales-pipeline events, and weekly custom metrics.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use uuid::Uuid;
use zixly_db::loader::{self, LoadOptions, LoadReport, Loadable};
use zixly_db::AppDb;
use zixly_domain::ingest::{CustomMetricRow, FinancialRow, LeadEventRow};

use crate::cmd::import::stream_csv;

/// (client id, name, industry, daily revenue scale, expense ratio): one client runs at a loss.
const CLIENTS: &[(&str, &str, &str, u32, u32)] = &[
    (
        "HBR-001",
        "Harbour Bridge Renovation",
        "Construction",
        9000,
        72,
    ),
    (
        "BRD-002",
        "Bondi Residential Development",
        "Construction",
        6500,
        64,
    ),
    (
        "CBD-003",
        "Sydney CBD Office Fit-Out",
        "Construction",
        4000,
        104,
    ),
    ("NDG-004", "Northside Dental Group", "Healthcare", 3000, 58),
    ("PLG-005", "Parramatta Logistics", "Logistics", 5000, 81),
];

const STAGES: &[&str] = &["lead", "qualified", "proposal", "negotiation"];

/// A small linear congruential generator: reproducible demo data without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
}

fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

fn financials_csv(today: NaiveDate, rng: &mut Lcg) -> String {
    let mut out =
        String::from("client_id,client_name,industry,record_date,revenue,expenses,cash_flow\n");
    let start = today - Duration::days(395);
    for &(id, name, industry, scale, expense_ratio) in CLIENTS {
        let mut day = start;
        while day <= today {
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            // Seasonality: a slow January, a busy spring (in Sydney: September to November).
            let season = match day.month() {
                1 => 70,
                9..=11 => 120,
                _ => 100,
            };
            let base = if weekend { scale / 12 } else { scale };
            let revenue = i64::from(base * season / 100 * (80 + rng.below(40)) / 100) * 100
                + i64::from(rng.below(100));
            let expenses = revenue * i64::from(expense_ratio + rng.below(10)) / 100
                + i64::from(rng.below(5000));
            let cash_flow = revenue * i64::from(85 + rng.below(15)) / 100 - expenses;
            let _ = writeln!(
                out,
                "{id},{name},{industry},{day},{},{},{}",
                cents(revenue),
                cents(expenses),
                cents(cash_flow)
            );
            day += Duration::days(1);
        }
    }
    out
}

fn lead_events_csv(today: NaiveDate, rng: &mut Lcg) -> String {
    let mut out = String::from("client_id,event_date,lead_id,stage,value,status\n");
    for (c, &(id, ..)) in CLIENTS.iter().enumerate() {
        for deal in 0..14 {
            let lead_id = format!("D-{}-{:03}", c + 1, deal + 1);
            let value = i64::from(5_000 + rng.below(60_000)) * 100;
            let mut at = today - Duration::days(i64::from(20 + rng.below(340)));
            // How far the deal got, and how it ended.
            let reached = 1 + rng.below(STAGES.len() as u32) as usize;
            for stage in &STAGES[..reached] {
                if at > today {
                    break;
                }
                let _ = writeln!(
                    out,
                    "{id},{at}T{:02}:30:00+10:00,{lead_id},{stage},{},active",
                    9 + rng.below(8),
                    cents(value)
                );
                at += Duration::days(i64::from(3 + rng.below(20)));
            }
            if at <= today {
                let outcome = match (reached, rng.below(10)) {
                    (4, 0..=5) | (3, 0..=2) => Some(("closed", "won")),
                    (_, 0..=3) => Some(("closed", "lost")),
                    _ if today - at > Duration::days(60) => Some(("negotiation", "stale")),
                    _ => None,
                };
                if let Some((stage, status)) = outcome {
                    let _ = writeln!(
                        out,
                        "{id},{at}T16:00:00+10:00,{lead_id},{stage},{},{status}",
                        cents(value)
                    );
                }
            }
        }
    }
    out
}

fn metrics_csv(today: NaiveDate, rng: &mut Lcg) -> String {
    let mut out = String::from("client_id,metric_name,metric_value,unit,record_date\n");
    for &(id, ..) in CLIENTS {
        let mut nps = 30 + rng.below(30);
        let mut week = today - Duration::days(364);
        while week <= today {
            nps = (nps + rng.below(9)).saturating_sub(4).min(90);
            let utilisation = 6000 + rng.below(3500); // hundredths of a percent
            let _ = writeln!(out, "{id},nps,{nps},score,{week}");
            let _ = writeln!(
                out,
                "{id},utilisation,{}.{:02},percent,{week}",
                utilisation / 100,
                utilisation % 100
            );
            week += Duration::days(7);
        }
    }
    out
}

async fn load_csv<T: Loadable>(
    app: &AppDb,
    tenant: Uuid,
    name: &str,
    csv: String,
) -> Result<LoadReport> {
    let ctx = loader::ingest_context(app, tenant, "demo").await?;
    let mut options = LoadOptions::new("demo");
    options.file_name = Some(name.to_string());
    let report = stream_csv::<T, _>(
        app,
        tenant,
        &options,
        ctx,
        std::io::Cursor::new(csv.into_bytes()),
        None,
        None,
    )
    .await?;
    if report.error_count > 0 || report.aborted.is_some() {
        anyhow::bail!(
            "demo data {name} did not load: {:?} {:?}",
            report.errors.first(),
            report.aborted
        );
    }
    Ok(report)
}

/// Loads the demo dataset into `tenant`. Returns the number of rows written.
pub async fn load(app: &AppDb, tenant: Uuid) -> Result<u64> {
    let today = Utc::now().date_naive();
    let mut rng = Lcg(0x5eed_2026);
    let mut written = 0;
    for report in [
        load_csv::<FinancialRow>(
            app,
            tenant,
            "demo-financials.csv",
            financials_csv(today, &mut rng),
        )
        .await?,
        load_csv::<LeadEventRow>(
            app,
            tenant,
            "demo-lead-events.csv",
            lead_events_csv(today, &mut rng),
        )
        .await?,
        load_csv::<CustomMetricRow>(
            app,
            tenant,
            "demo-metrics.csv",
            metrics_csv(today, &mut rng),
        )
        .await?,
    ] {
        written += report.inserted + report.updated;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formatting_keeps_sign_and_two_places() {
        assert_eq!(cents(123456), "1234.56");
        assert_eq!(cents(-5), "-0.05");
        assert_eq!(cents(0), "0.00");
    }

    #[test]
    fn generated_csv_is_deterministic_and_has_a_loss_making_client() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let a = financials_csv(today, &mut Lcg(1));
        assert_eq!(a, financials_csv(today, &mut Lcg(1)));
        assert_eq!(a.lines().count(), 1 + CLIENTS.len() * 396);
        let loss: i64 = a
            .lines()
            .skip(1)
            .filter(|l| l.starts_with("CBD-003"))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let money = |s: &str| s.replace('.', "").parse::<i64>().unwrap();
                money(f[4]) - money(f[5])
            })
            .sum();
        assert!(
            loss < 0,
            "the fit-out client should run at a loss, got {loss}"
        );
    }
}
