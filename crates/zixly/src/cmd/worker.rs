//! `zixly worker`, and the job worker that `zixly up` / `zixly serve` run next to HTTP.
//!
//! The worker runs every job kind this binary knows: `sync` (zixly_sync) plus the scheduler
//! that enqueues due integration syncs, the alert and notification jobs (zixly_alerts), and the
//! creation of the coming months' partitions of the time series. Its token keyring comes from
//! `ZIXLY_ENCRYPTION_KEY` (base64, 32 bytes; previous keys in `ZIXLY_ENCRYPTION_OLD_KEYS`,
//! comma-separated) or, with the embedded database, from `<data dir>/encryption.keys` (0600,
//! generated on first use). With an external database and no key, integrations are off: the
//! worker still runs (queue maintenance) but registers no sync handler.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use zixly_crypto::Keyring;
use zixly_queue::{Worker, WorkerConfig};
use zixly_sync::engine::{SyncConfig, SyncEngine};

use crate::env::{external_url, Database, Global};

#[derive(Args)]
pub struct WorkerArgs {
    /// Jobs run at the same time.
    #[arg(long, env = "ZIXLY_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// Job-queue settings shared by `zixly worker`, `zixly up` and `zixly serve`.
#[derive(Args, Clone, Copy, Debug)]
pub struct JobArgs {
    /// Seconds a running job may go without a heartbeat (workers send one every 10 s) before
    /// another worker takes it back as orphaned by a dead worker. Raise it when workers can pause
    /// for long (VM snapshots, suspended machines); lower it to recover sooner from crashes.
    #[arg(
        long,
        env = "ZIXLY_RESCUE_AFTER",
        value_name = "SECONDS",
        default_value_t = DEFAULT_RESCUE_AFTER_SECS,
        value_parser = clap::value_parser!(u64).range(30..=86_400)
    )]
    pub rescue_after: u64,
}

/// Two minutes: twelve missed heartbeats.
const DEFAULT_RESCUE_AFTER_SECS: u64 = 120;

impl Default for JobArgs {
    fn default() -> Self {
        JobArgs {
            rescue_after: DEFAULT_RESCUE_AFTER_SECS,
        }
    }
}

/// The key file of the embedded default.
pub fn key_file(global: &Global) -> std::path::PathBuf {
    global.data_dir.join("encryption.keys")
}

/// The token keyring (see the module docs); `None` when none is configured for an external
/// database.
pub fn keyring(global: &Global) -> Result<Option<Keyring>> {
    if let Ok(key) = std::env::var("ZIXLY_ENCRYPTION_KEY") {
        if !key.trim().is_empty() {
            let older = std::env::var("ZIXLY_ENCRYPTION_OLD_KEYS").unwrap_or_default();
            return Keyring::from_base64(key.trim(), &older)
                .map(Some)
                .context("ZIXLY_ENCRYPTION_KEY / ZIXLY_ENCRYPTION_OLD_KEYS");
        }
    }
    if external_url().is_some() {
        return Ok(None);
    }
    let path = key_file(global);
    zixly_crypto::keyfile::load_or_create(&path)
        .map(Some)
        .with_context(|| format!("encryption key file {}", path.display()))
}

/// The sync engine with every configured provider, or `None` without a keyring.
pub fn sync_engine(global: &Global, db: &Database) -> Result<Option<SyncEngine>> {
    let Some(keyring) = keyring(global)? else {
        tracing::warn!("integrations are off: set ZIXLY_ENCRYPTION_KEY to store provider tokens with an external database");
        return Ok(None);
    };
    let providers = SyncEngine::providers_from_env().map_err(anyhow::Error::msg)?;
    let names: Vec<&str> = providers.iter().map(|p| p.provider.as_str()).collect();
    tracing::info!(providers = ?names, "integrations configured");
    Ok(Some(SyncEngine::new(
        db.app.clone(),
        Arc::new(keyring),
        providers,
        SyncConfig::default(),
    )))
}

/// A worker with every handler this binary has.
pub fn build(global: &Global, db: &Database, concurrency: usize, jobs: JobArgs) -> Result<Worker> {
    let engine = sync_engine(global, db)?;
    Ok(build_with(db, concurrency, jobs, engine.as_ref()))
}

/// A worker running `engine`'s syncs (the server shares its engine with the HTTP routes).
pub fn build_with(
    db: &Database,
    concurrency: usize,
    jobs: JobArgs,
    engine: Option<&SyncEngine>,
) -> Worker {
    let mut worker = Worker::new(db.system.clone(), worker_config(concurrency, jobs));
    if let Some(engine) = engine {
        engine.register(&mut worker, db.system.clone());
    }
    let alerts = zixly_alerts::Services {
        app: db.app.clone(),
        system: db.system.clone(),
        keyring: engine.map(|e| e.keyring().clone()),
    };
    zixly_alerts::register(&mut worker, &alerts);
    register_partitions(&mut worker, db.system.clone());
    register_retention(&mut worker, db.system.clone());
    worker
}

/// Raw financial rows the retention run deletes per transaction: a few seconds' work at most,
/// so a tenant's loads (which wait for its rollup lock) never wait long.
const RETENTION_BATCH_ROWS: i64 = 10_000;
/// How often the worker applies retention: cutoffs move a month at a time, so a few times a day
/// means a new month's cutoff applies within hours (and a shortened period too).
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The scheduler's retention job (migrations/0022): every tenant's raw financials before its
/// cutoff, in batches with the monthly rollups kept, then the partitions no tenant needs.
fn register_retention(worker: &mut Worker, system: zixly_db::SystemDb) {
    worker.every(RETENTION_EVERY, move || {
        let system = system.clone();
        async move {
            match system.apply_retention(RETENTION_BATCH_ROWS).await {
                Ok(runs) => {
                    for run in runs.iter().filter(|r| r.deleted > 0) {
                        tracing::info!(
                            tenant = %run.tenant_id,
                            before = %run.raw_data_from,
                            deleted = run.deleted,
                            batches = run.batches,
                            "retention deleted raw financials (monthly rollups kept)"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "applying retention failed (retried at the next run)"),
            }
            match system.drop_retained_partitions().await {
                Ok(dropped) if dropped.is_empty() => {}
                Ok(dropped) => tracing::info!(partitions = ?dropped, "dropped partitions no tenant keeps"),
                Err(e) => tracing::warn!(error = %e, "dropping retained partitions failed"),
            }
        }
    });
}

/// Months of partitions kept ahead of the current one (migrations/0014_partitions.sql).
const PARTITION_MONTHS_AHEAD: i32 = 3;
/// How often the worker checks them: a few times a day is plenty for months created 3 ahead
/// (and the loader creates any month it meets anyway); the first check runs at start.
const PARTITION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The scheduler's partition job: the coming months' partitions of the time series, and a
/// partition of its own for any month found in a default partition.
fn register_partitions(worker: &mut Worker, system: zixly_db::SystemDb) {
    worker.every(PARTITION_CHECK_EVERY, move || {
        let system = system.clone();
        async move {
            match system.create_partitions_ahead(PARTITION_MONTHS_AHEAD).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(created = n, "created monthly partitions ahead"),
                Err(e) => tracing::warn!(error = %e, "creating monthly partitions ahead failed"),
            }
            match system.drain_default_partitions().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    created = n,
                    "rows were in a default partition (an insert outside the loader): moved them \
                     into monthly partitions of their own"
                ),
                Err(e) => tracing::warn!(error = %e, "draining the default partitions failed"),
            }
        }
    });
}

fn worker_config(concurrency: usize, jobs: JobArgs) -> WorkerConfig {
    WorkerConfig {
        concurrency: concurrency.max(1),
        rescue_after: std::time::Duration::from_secs(jobs.rescue_after),
        ..WorkerConfig::default()
    }
}

pub async fn run(global: &Global, args: WorkerArgs) -> Result<ExitCode> {
    let db = Database::open(global, args.concurrency + 2).await?;
    let outcome = async {
        let worker = build(global, &db, args.concurrency, args.jobs)?;
        // Imports and syncs killed before they finished (this process' predecessor, a CLI, ...).
        zixly_queue::interrupt_orphaned_sync_runs(&db.system).await;
        println!("Zixly worker running  (Ctrl-C to stop)");
        worker.run(super::server::shutdown_signal()).await
    }
    .await;
    let closed = db.close().await;
    outcome?;
    closed?;
    Ok(ExitCode::SUCCESS)
}
