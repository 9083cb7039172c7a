//! `zixly bench ingest --rows N [--json]`: the ingestion benchmark (issue 3).
//!
//! On one database, with N synthetic financial rows over `--clients` clients (generated on the
//! fly, never held whole): (a) raw binary `COPY` of the same typed rows into a table created
//! `like financials including all` (`copy_*`) and into `financials` itself for a tenant of its own
//! (`copy_financials_*`: partitions, foreign key and rollup trigger included, issue 14's "raw COPY
//! into the same table"); (b) the full import path (CSV parse, validate, normalize,
//! COPY to staging, checks, upsert) into an empty tenant; (c) the same import again (all rows
//! unchanged); (d) a row-by-row `INSERT ... ON CONFLICT` loop on a sample (`--sample` rows) into
//! another empty tenant, one transaction per row (`row_by_row_rows_per_s`, the ORM default) and
//! all rows in one transaction (`row_by_row_one_tx_rows_per_s`). Rates are rows per second of wall-clock time. `peak_rss_mb` is this
//! process's VmHWM (PostgreSQL's memory is not included). The bench tenants are deleted at the end.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::{Days, NaiveDate};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;
use zixly_db::bench::{self, BenchRow, CopyTarget};
use zixly_db::loader::{self, LoadOptions, LoadStatus};
use zixly_domain::ingest::FinancialRow;
use zixly_domain::CurrencyCode;

use crate::env::{Database, Global};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput: raw COPY vs the import path vs re-import vs a row-by-row loop.
    Ingest(IngestArgs),
    /// The read API under load, against the same SQL run directly (cmd/bench_api.rs).
    Api(super::bench_api::BenchApiArgs),
    /// What alert evaluation costs: 10 rules × every client, steady and after an import
    /// (cmd/bench_alerts.rs).
    Alerts(super::bench_alerts::BenchAlertsArgs),
    /// Server memory, /readyz and a normal tenant's API latency under hostile and slow CSV
    /// uploads (cmd/bench_attack.rs).
    Attack(super::bench_attack::BenchAttackArgs),
}

#[derive(Args)]
pub struct IngestArgs {
    /// Number of synthetic financial rows.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Number of distinct clients the rows are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub clients: u64,
    /// Rows for the row-by-row baseline (it is slow).
    #[arg(long, default_value_t = 20_000)]
    pub sample: u64,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Row `i`: client `i % clients`, one day per `clients` rows (keys are unique).
fn bench_row(i: u64, clients: u64) -> BenchRow {
    let client = i % clients;
    let day = NaiveDate::from_ymd_opt(2000, 1, 1).expect("date") + Days::new(i / clients);
    let revenue = Decimal::new(((i * 7919) % 10_000_000) as i64, 2);
    let expenses = Decimal::new(((i * 104_729) % 5_000_000) as i64, 2);
    let cash_flow = Decimal::new(((i * 31) % 200_000) as i64 - 100_000, 2);
    BenchRow {
        client_id: format!("client-{client:06}"),
        client_name: format!("Client {client}"),
        record_date: day,
        revenue,
        expenses,
        cash_flow,
    }
}

/// The same rows as CSV, produced on demand.
struct CsvGenerator {
    next: u64,
    rows: u64,
    clients: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl CsvGenerator {
    fn new(rows: u64, clients: u64) -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"client_id,client_name,record_date,revenue,expenses,cash_flow\n");
        CsvGenerator {
            next: 0,
            rows,
            clients,
            buf,
            pos: 0,
        }
    }
}

impl Read for CsvGenerator {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            while self.buf.len() < 256 * 1024 && self.next < self.rows {
                let r = bench_row(self.next, self.clients);
                writeln!(
                    self.buf,
                    "{},{},{},{},{},{}",
                    r.client_id, r.client_name, r.record_date, r.revenue, r.expenses, r.cash_flow
                )?;
                self.next += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(global: &Global, command: BenchCommand) -> Result<ExitCode> {
    let args = match command {
        BenchCommand::Ingest(args) => args,
        BenchCommand::Api(args) => return super::bench_api::run(global, args).await,
        BenchCommand::Attack(args) => return super::bench_attack::run(global, args).await,
        BenchCommand::Alerts(args) => return super::bench_alerts::run(global, args).await,
    };
    if args.rows == 0 || args.clients == 0 {
        crate::env::usage_error!("--rows and --clients must be at least 1");
    }
    let db = Database::open(global, 4).await?;
    let result = ingest(&db, &args).await;
    db.close().await?;
    result
}

async fn ingest(db: &Database, args: &IngestArgs) -> Result<ExitCode> {
    let n = args.rows;
    let sample = args.sample.clamp(1, n);
    let tenant = db
        .system
        .create_tenant("zixly bench ingest", CurrencyCode::AUD, "Australia/Sydney")
        .await?;
    let baseline = db
        .system
        .create_tenant(
            "zixly bench row-by-row",
            CurrencyCode::AUD,
            "Australia/Sydney",
        )
        .await?;
    let outcome = async {
        let per_s = |rows: u64, secs: f64| rows as f64 / secs.max(1e-9);
        let mut imports = Vec::new();
        for _ in 0..2 {
            let ctx = loader::ingest_context(&db.app, tenant, "csv").await?;
            let started = Instant::now();
            let report = super::import::stream_csv::<FinancialRow, _>(
                &db.app,
                tenant,
                &LoadOptions {
                    file_name: Some("bench.csv".into()),
                    ..LoadOptions::new("csv")
                },
                ctx,
                CsvGenerator::new(n, args.clients),
                None,
                None,
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            if report.status != LoadStatus::Succeeded {
                bail!("bench import failed: {:?}", report.errors.first());
            }
            imports.push((report, secs));
        }
        let (first, import_s) = &imports[0];
        let (second, reimport_s) = &imports[1];
        if first.inserted != n || second.unchanged != n {
            bail!(
                "unexpected counts: first {} inserted, second {} unchanged",
                first.inserted,
                second.unchanged
            );
        }
        let copy = bench::bench_raw_copy(
            &db.system,
            tenant,
            CopyTarget::PlainTable,
            (0..n).map(|i| bench_row(i, args.clients)),
        )
        .await?;
        // Issue 14's baseline: the same rows COPYed into `financials` itself, for a tenant of its
        // own with the same clients (partition routing, the foreign key and the rollup trigger
        // run as they do for the import).
        let copy_tenant = db
            .system
            .create_tenant("zixly bench copy", CurrencyCode::AUD, "Australia/Sydney")
            .await?;
        let copy_same = async {
            let clients: Vec<(String, String)> = (0..args.clients.min(n))
                .map(|i| {
                    let r = bench_row(i, args.clients);
                    (r.client_id, r.client_name)
                })
                .collect();
            bench::bench_create_clients(&db.system, copy_tenant, &clients).await?;
            bench::bench_raw_copy(
                &db.system,
                copy_tenant,
                CopyTarget::Financials,
                (0..n).map(|i| bench_row(i, args.clients)),
            )
            .await
        }
        .await;
        db.system.delete_tenant(copy_tenant).await?;
        let copy_same_s = copy_same?.as_secs_f64();
        let sample_rows: Vec<BenchRow> = (0..sample).map(|i| bench_row(i, args.clients)).collect();
        let row_by_row = bench::bench_row_by_row(&db.app, baseline, &sample_rows, false).await?;
        let one_tx_tenant = db
            .system
            .create_tenant(
                "zixly bench row-by-row 1tx",
                CurrencyCode::AUD,
                "Australia/Sydney",
            )
            .await?;
        let one_tx = bench::bench_row_by_row(&db.app, one_tx_tenant, &sample_rows, true).await;
        db.system.delete_tenant(one_tx_tenant).await?;
        let one_tx_s = one_tx?.as_secs_f64();
        let copy_s = copy.as_secs_f64();
        let rbr_s = row_by_row.as_secs_f64();
        let json = serde_json::json!({
            "rows": n,
            "clients": args.clients,
            "copy_rows_per_s": per_s(n, copy_s).round(),
            "copy_financials_rows_per_s": per_s(n, copy_same_s).round(),
            "import_rows_per_s": per_s(n, *import_s).round(),
            "reimport_rows_per_s": per_s(n, *reimport_s).round(),
            "row_by_row_rows_per_s": per_s(sample, rbr_s).round(),
            "row_by_row_sample": sample,
            "row_by_row_one_tx_rows_per_s": per_s(sample, one_tx_s).round(),
            "copy_s": copy_s,
            "copy_financials_s": copy_same_s,
            "import_s": import_s,
            "reimport_s": reimport_s,
            "row_by_row_s": rbr_s,
            "import_vs_copy": per_s(n, *import_s) / per_s(n, copy_s),
            "import_vs_copy_financials": per_s(n, *import_s) / per_s(n, copy_same_s),
            "import_vs_row_by_row": per_s(n, *import_s) / per_s(sample, rbr_s),
            "import_vs_row_by_row_one_tx": per_s(n, *import_s) / per_s(sample, one_tx_s),
            "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        });
        Ok::<_, anyhow::Error>(json)
    }
    .await;
    // Leave nothing behind (not timed).
    db.system.delete_tenant(tenant).await?;
    db.system.delete_tenant(baseline).await?;
    let json = outcome?;
    if args.json {
        println!("{json}");
    } else {
        println!("zixly bench ingest: {n} rows over {} clients", args.clients);
        for key in [
            "copy_rows_per_s",
            "copy_financials_rows_per_s",
            "import_rows_per_s",
            "reimport_rows_per_s",
            "row_by_row_rows_per_s",
            "row_by_row_one_tx_rows_per_s",
            "import_vs_copy",
            "import_vs_copy_financials",
            "import_vs_row_by_row",
            "import_vs_row_by_row_one_tx",
            "peak_rss_mb",
        ] {
            println!("  {key:<28} {}", json[key]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
