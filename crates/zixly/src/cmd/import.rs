//! `zixly import financials|lead-events|custom-metrics --tenant ID FILE [--skip-invalid] [--rejects FILE]`
//!
//! The file is parsed on a separate thread and streamed to the loader in batches of 1,024 rows
//! through a bounded channel, so memory stays flat whatever the file size. Errors are printed as
//! `FILE:LINE: column COLUMN: reason` (the first 100, then a count), then one summary line.
//!
//! Exit codes: 0 every row of the file is in the database (inserted, updated or unchanged);
//! 1 some row was rejected or nothing was written (also any other error); 2 usage.
//!
//! `--rejects FILE` writes the rejected records (original columns plus `line` and `error`) with a
//! second pass over the input; it keeps one line number and message per rejected row in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;
use zixly_db::loader::{
    self, LoadOptions, LoadReport, LoadStatus, Loadable, ReadProgress, RejectSink,
};
use zixly_db::AppDb;
use zixly_domain::ingest::{
    write_rejects, CustomMetricRow, FinancialRow, IngestContext, LeadEventRow, RowError,
};

use crate::env::{Database, Global};

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Financial rows: client_id, client_name, record_date, revenue, expenses, net_profit?, cash_flow,
    /// currency?, source_system?, external_id?, industry?
    Financials(ImportArgs),
    /// Lead events: client_id, client_name?, event_date, lead_id, stage, value?, status, currency?,
    /// source_system?, external_id?, industry?
    LeadEvents(ImportArgs),
    /// Custom metrics: client_id, client_name?, metric_name, metric_value, unit?, record_date,
    /// source_system?, industry?
    CustomMetrics(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// Tenant id (see `zixly tenant list`).
    #[arg(long)]
    pub tenant: Uuid,
    /// CSV file: header on line 1, columns by name in any order (UTF-8, optional BOM, LF or CRLF).
    pub file: PathBuf,
    /// Load the valid rows even when some are invalid (default: all or nothing).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Write the rejected rows to this CSV file (original columns plus `line` and `error`).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

pub async fn run(global: &Global, command: ImportCommand) -> Result<ExitCode> {
    match command {
        ImportCommand::Financials(args) => import::<FinancialRow>(global, args).await,
        ImportCommand::LeadEvents(args) => import::<LeadEventRow>(global, args).await,
        ImportCommand::CustomMetrics(args) => import::<CustomMetricRow>(global, args).await,
    }
}

async fn import<T: Loadable>(global: &Global, args: ImportArgs) -> Result<ExitCode> {
    // Check what we can before starting the database.
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    if let Some(rejects) = &args.rejects {
        if rejects == &args.file {
            crate::env::usage_error!("--rejects must not be the input file");
        }
    }
    let db = Database::open(global, 2).await?;
    let result = import_opened::<T>(&db, &args, size).await;
    db.close().await?;
    result
}

/// Collects rejected lines for the rejects file.
#[derive(Default)]
struct RejectedLines(BTreeMap<u64, String>);

impl RejectSink for RejectedLines {
    fn rejected(&mut self, line: u64, errors: &[RowError]) {
        let message: Vec<String> = errors.iter().map(ToString::to_string).collect();
        self.0.insert(line, message.join("; "));
    }
}

async fn import_opened<T: Loadable>(
    db: &Database,
    args: &ImportArgs,
    size: u64,
) -> Result<ExitCode> {
    if !db.system.tenant_exists(args.tenant).await? {
        bail!(
            "no tenant with id {} (see `zixly tenant list`)",
            args.tenant
        );
    }
    let ctx = loader::ingest_context(&db.app, args.tenant, "csv").await?;
    let file_name = args.file.display().to_string();
    let options = LoadOptions {
        file_name: Some(file_name.clone()),
        skip_invalid: args.skip_invalid,
        // The audit row of an upload through the API or the page, with the CLI as the actor.
        audit: Some(crate::env::cli_audit(
            "import.csv",
            "dataset",
            Some(T::DATASET.as_str().to_string()),
            serde_json::json!({"file_name": file_name, "skip_invalid": args.skip_invalid}),
        )),
        ..LoadOptions::new("csv")
    };
    let file = File::open(&args.file).with_context(|| format!("cannot open {file_name}"))?;
    let progress = progress_bar(size);
    let mut rejected = args.rejects.as_ref().map(|_| RejectedLines::default());
    let report = stream_csv::<T, _>(
        &db.app,
        args.tenant,
        &options,
        ctx,
        file,
        progress.clone(),
        rejected.as_mut().map(|r| r as &mut dyn RejectSink),
    )
    .await?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    for error in &report.errors {
        eprintln!("{}", error.display_in(&file_name));
    }
    if report.errors_not_listed() > 0 {
        eprintln!(
            "{file_name}: ... and {} more errors",
            report.errors_not_listed()
        );
    }
    if let (Some(path), Some(rejected)) = (&args.rejects, &rejected) {
        write_rejects_file(&args.file, path, &rejected.0)?;
    }
    println!("{}", summary(&file_name, &report));
    Ok(if report.status == LoadStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_rejects_file(input: &Path, path: &Path, rejected: &BTreeMap<u64, String>) -> Result<()> {
    let input = File::open(input).with_context(|| format!("reopening {}", input.display()))?;
    let out = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let n = write_rejects(input, BufWriter::new(out), rejected)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {n} rejected rows to {}", path.display());
    Ok(())
}

pub fn summary(file_name: &str, r: &LoadReport) -> String {
    let outcome = match r.status {
        LoadStatus::Succeeded => "loaded".to_string(),
        LoadStatus::Partial => format!("loaded without the {} rejected rows", r.rejected),
        LoadStatus::Failed if r.aborted.is_some() => {
            "nothing written: the input could not be read".to_string()
        }
        LoadStatus::Failed => format!(
            "nothing written: {} rows rejected with {} errors",
            r.rejected, r.error_count
        ),
    };
    let duplicates = r
        .duplicates_message()
        .map_or_else(String::new, |m| format!(", {m}"));
    format!(
        "{file_name}: {outcome} ({}: {} rows read{duplicates}, {} inserted, {} updated, {} unchanged, {} rejected; {} new clients; {:.1}s; sync run {})",
        r.dataset,
        r.rows_read,
        r.inserted,
        r.updated,
        r.unchanged,
        r.rejected,
        r.clients_inserted,
        r.duration.as_secs_f64(),
        r.sync_run_id
    )
}

fn progress_bar(total_bytes: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Turns the byte bar into a spinner once the file is read: staging, checks and the upsert take
/// seconds on a large file, and a bar frozen at 100 % looks like a hang.
fn database_phase(bar: &ProgressBar, bytes: u64, rows: u64) {
    bar.set_position(bytes);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!(
        "read {rows} {}; checking and writing to the database",
        if rows == 1 { "row" } else { "rows" }
    ));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
}

/// Parses `input` on a blocking thread and streams the rows into [`loader::load`] through a
/// bounded channel ([`loader::load_csv`]: at most 4 batches of 1,024 rows in flight). Header
/// errors and read errors abort the load (a `failed` sync run records them).
pub async fn stream_csv<T: Loadable, R: Read + Send + 'static>(
    app: &AppDb,
    tenant: Uuid,
    options: &LoadOptions,
    ctx: IngestContext,
    input: R,
    progress: Option<ProgressBar>,
    rejects: Option<&mut dyn RejectSink>,
) -> Result<LoadReport> {
    let progress = progress.map(|p| {
        Box::new(move |step: ReadProgress| match step {
            ReadProgress::Read(bytes) => p.set_position(bytes),
            ReadProgress::Done { bytes, rows } => database_phase(&p, bytes, rows),
        }) as Box<dyn Fn(ReadProgress) + Send>
    });
    Ok(loader::load_csv::<T, R>(app, tenant, options, ctx, input, progress, rejects).await?)
}
