//! `zixly bench alerts`: what alert evaluation costs (issue 13).
//!
//! One tenant with `--clients` clients and `--days` days of daily figures ending yesterday (the
//! API benchmark's seed: financials, weekly leads, a weekly custom metric), and ten rules that
//! each watch every client separately — thresholds on revenue, expenses, net profit, margin and
//! win rate, two change rules, two anomaly rules and a stale rule — so one evaluation judges
//! `10 × clients` subjects. Measured, in one process against the database directly (no HTTP):
//!
//! - `first_eval_s`: the first evaluation, which creates every alert;
//! - `steady_eval_s`: `--runs` evaluations on unchanged data (median, min, max), as the 5-minute
//!   schedule runs them; `subjects_per_s` is `subjects / steady median`;
//! - `import_s` and `eval_after_import_s`: a one-row CSV import for one client and the
//!   evaluation it queues. The import itself only adds the queued job to its transaction; the
//!   evaluation runs afterwards in the worker, so `eval_after_import_s` is how long after an
//!   import its alerts are settled (plus the queue's pickup delay, not measured here).
//!
//! The tenant is deleted at the end.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Days, Utc};
use clap::Args;
use rust_decimal::Decimal;
use zixly_db::loader::{self, LoadOptions, LoadStatus};
use zixly_db::queries::alerts::RuleSpec;
use zixly_domain::alerts::{ChangeMode, CompareTo, Condition, RuleKind, Scope};
use zixly_domain::ingest::FinancialRow;
use zixly_domain::period::Bucket;
use zixly_domain::CurrencyCode;

use crate::env::{Database, Global};

#[derive(Args)]
pub struct BenchAlertsArgs {
    /// Clients of the tenant; every rule watches each of them.
    #[arg(long, default_value_t = 500)]
    pub clients: u32,
    /// Days of daily figures per client, ending yesterday (730: two seasonal cycles of months,
    /// so the anomaly rules use the seasonal decomposition).
    #[arg(long, default_value_t = 730)]
    pub days: u32,
    /// Evaluations on unchanged data to time.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn rule(name: &str, kind: RuleKind, kpi: Option<&str>) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        kind,
        kpi: kpi.map(str::to_owned),
        scope: Scope::EachClient,
        client_ids: Vec::new(),
        bucket: Bucket::Month,
        condition: None,
        value: None,
        change_mode: None,
        compare_to: None,
        goal_id: None,
        stale_days: None,
        integration_id: None,
        pending_for: 0,
        repeat_every: None,
        enabled: true,
        channel_ids: Vec::new(),
    }
}

fn threshold(kpi: &str, condition: Condition, value: &str) -> RuleSpec {
    RuleSpec {
        condition: Some(condition),
        value: Some(value.parse().expect("a decimal")),
        ..rule(
            &format!("{kpi} {condition} {value}"),
            RuleKind::Threshold,
            Some(kpi),
        )
    }
}

fn change(kpi: &str, mode: ChangeMode, compare: CompareTo, c: Condition, v: &str) -> RuleSpec {
    RuleSpec {
        condition: Some(c),
        value: Some(v.parse().expect("a decimal")),
        change_mode: Some(mode),
        compare_to: Some(compare),
        ..rule(
            &format!("{kpi} change {c} {v}"),
            RuleKind::Change,
            Some(kpi),
        )
    }
}

/// The ten rules: every kind the evaluation reads figures for, over money, ratio and lead KPIs.
fn rules() -> Vec<RuleSpec> {
    use {ChangeMode::*, CompareTo::*, Condition::*};
    vec![
        threshold("revenue", Above, "170000"),
        threshold("expenses", Above, "140000"),
        threshold("net_profit", Below, "10000"),
        threshold("margin", Below, "0.2"),
        threshold("win_rate", Below, "0.3"),
        change("revenue", Percent, Previous, Below, "10"),
        change("cash_flow", Absolute, LastYear, Above, "5000"),
        rule("revenue anomaly", RuleKind::Anomaly, Some("revenue")),
        RuleSpec {
            condition: Some(Below),
            ..rule("net profit drops", RuleKind::Anomaly, Some("net_profit"))
        },
        RuleSpec {
            stale_days: Some(3),
            ..rule("stale", RuleKind::Stale, None)
        },
    ]
}

pub async fn run(global: &Global, args: BenchAlertsArgs) -> Result<ExitCode> {
    if args.clients == 0 || args.days == 0 || args.runs == 0 {
        crate::env::usage_error!("--clients, --days and --runs must be at least 1");
    }
    let db = Database::open(global, 2).await?;
    let tenant = db
        .system
        .create_tenant("zixly bench alerts", CurrencyCode::AUD, "Australia/Sydney")
        .await?;
    let outcome = measure(&db, tenant, &args).await;
    // Leave nothing behind (not timed).
    db.system.delete_tenant(tenant).await?;
    db.close().await?;
    let json = outcome?;
    if args.json {
        println!("{json}");
    } else {
        println!(
            "zixly bench alerts: {} clients × {} days, {} rules per client",
            args.clients, args.days, json["rules"]
        );
        for key in [
            "seed_s",
            "subjects",
            "first_eval_s",
            "steady_eval_s",
            "subjects_per_s",
            "import_s",
            "eval_after_import_s",
        ] {
            println!("  {key:<20} {}", json[key]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    db: &Database,
    tenant: uuid::Uuid,
    args: &BenchAlertsArgs,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    // The months the seed writes (its lead events run a few days past its last day), so that no
    // row lands in the default partition; a day either side covers any tenant time zone.
    let utc_today = Utc::now().date_naive();
    db.system
        .create_month_partitions(
            utc_today - Days::new(u64::from(args.days) + 2),
            utc_today + Days::new(10),
        )
        .await?;
    let tx = db.app.begin_tenant(tenant).await?;
    let today = tx.tenant_today().await?;
    let yesterday = today - Days::new(1);
    let seeded = tx
        .seed_synthetic_series(args.clients, args.days, yesterday)
        .await
        .context("seeding the tenant")?;
    let rules = rules();
    for spec in &rules {
        tx.create_alert_rule(spec, None).await?;
    }
    tx.commit().await?;
    let seed_s = started.elapsed().as_secs_f64();

    let evaluate = || async {
        let t = Instant::now();
        let s = zixly_alerts::evaluate::evaluate_tenant(&db.app, tenant, Utc::now()).await?;
        Ok::<_, anyhow::Error>((t.elapsed().as_secs_f64(), s))
    };
    let (first_eval_s, first) = evaluate().await?;
    let mut steady = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let (secs, s) = evaluate().await?;
        anyhow::ensure!(
            s.transitions == 0,
            "unchanged data changed {} alerts",
            s.transitions
        );
        steady.push(secs);
    }
    steady.sort_by(f64::total_cmp);
    let median = steady[steady.len() / 2];

    // One client's correction through the import path, then the evaluation it queued.
    let csv = format!(
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         bench-001,Bench client 001,{},{},100.00,0\n",
        today - Days::new(40),
        Decimal::new(99_000_000, 2)
    );
    let ctx = loader::ingest_context(&db.app, tenant, "csv").await?;
    let t = Instant::now();
    let report = super::import::stream_csv::<FinancialRow, _>(
        &db.app,
        tenant,
        &LoadOptions {
            file_name: Some("bench-alerts.csv".into()),
            ..LoadOptions::new("csv")
        },
        ctx,
        std::io::Cursor::new(csv.into_bytes()),
        None,
        None,
    )
    .await?;
    let import_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.status == LoadStatus::Succeeded && report.inserted == 1,
        "the correction did not load: {:?}",
        report.errors.first()
    );
    let (eval_after_import_s, _) = evaluate().await?;

    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "bench": "alerts",
        "clients": args.clients,
        "days": args.days,
        "financial_rows": seeded.financials,
        "lead_events": seeded.lead_events,
        "rules": rules.len(),
        "subjects": first.subjects,
        "first_transitions": first.transitions,
        "seed_s": round(seed_s),
        "first_eval_s": round(first_eval_s),
        "steady_eval_s": {
            "median": round(median),
            "min": round(steady[0]),
            "max": round(steady[steady.len() - 1]),
            "runs": args.runs,
        },
        "subjects_per_s": (first.subjects as f64 / median).round(),
        "import_s": round(import_s),
        "eval_after_import_s": round(eval_after_import_s),
    }))
}
