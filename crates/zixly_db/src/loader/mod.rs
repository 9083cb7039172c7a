//! The bulk loader: the one way rows of `financials`, `lead_events` and `custom_metrics` get into
//! the database, whatever their source (CSV file, REST batch, connector).
//!
//! ```text
//! stream of parsed rows ──COPY (binary)──▶ temp staging table ──checks in SQL──▶ one upsert
//! ```
//!
//! (Lead events: the upsert is one statement per `sql::LEAD_EVENT_CHUNK_PAGES` staging pages, in
//! the same transaction, so that their rollup triggers' statements stay bounded.)
//!
//! Everything runs in ONE [`TenantTx`] (so RLS applies to every statement):
//!
//! 1. A temporary staging table (`on commit drop`) receives the valid rows through
//!    `COPY ... FROM STDIN (FORMAT binary)`, fed row by row as the input stream yields them, so
//!    memory stays bounded by one batch whatever the input size. Invalid rows (already rejected
//!    by the domain parser) are counted and reported, never staged.
//! 2. Checks that need the whole input, in SQL on the staging table:
//!    - **Exact duplicates collapse**: rows of one key whose every staged value is the same (a
//!      line copied twice, byte-identical rows being the usual case) are one row: the first line
//!      is kept, the others are dropped and counted ([`LoadReport::duplicates_ignored`]). Values
//!      are compared as parsed (`1.0` and `1.00` are one amount), because what matters is whether
//!      the two lines would store different things: if they would not, no choice is needed.
//!    - **Duplicate keys inside one input**: two rows with the same dedup key (financials: client,
//!      date, source; lead events: client, source, lead, stage, instant; custom metrics: client,
//!      metric, instant, source) are ambiguous. **Policy: every row of a duplicated key is
//!      rejected**, each error naming the other lines: the loader never guesses which one is right.
//!    - **Exchange rates**: a row whose currency is not the tenant's base currency needs a rate
//!      for its date (financials: `record_date`; lead events with a value: the event's local date
//!      in the tenant's zone). **Policy** (`zixly_fx_rate`, migrations/0003_ingest.sql): a direct,
//!      inverse or EUR cross rate, the latest on or before the date and at most 7 days older (ECB
//!      rates skip weekends and holidays). No rate is an error on the `currency` column, never a
//!      silent rate of 1. Amounts are stored in their original currency.
//!    - **Dry run** ([`LoadOptions::dry_run`], "Check file" on the imports page): the load stops
//!      here and rolls back: the same checks, nothing written, no `sync_runs` row.
//! 3. **Atomic by default**: if any row is invalid, the transaction rolls back and nothing is
//!    written; every error is reported (the first [`MAX_REPORTED_ERRORS`] in full, then a count).
//!    With [`LoadOptions::skip_invalid`], rejected rows are removed from the staging table and the
//!    rest is loaded.
//! 4. Clients are upserted by `(tenant_id, client_id)`: a new client gets the given name (or its id
//!    when the input has no name); an existing one gets the name/industry of the last line that
//!    gives them, and keeps its values when the input gives none. When the load added many clients,
//!    `zixly_refresh_client_stats` (migrations/0006_loader_stats.sql) analyzes `client_kpis` in the
//!    same transaction: with statistics that still say the table is (nearly) empty, the per-row
//!    foreign-key check of step 5 may walk all of the tenant's clients instead of probing the
//!    primary key, which makes a load cost rows x clients.
//!    Every month of the rows then gets its partition (migrations/0014_partitions.sql) when it
//!    has none yet, in a short transaction of its own on a second pooled connection.
//! 5. One set-based `INSERT ... SELECT ... ON CONFLICT (dedup key) DO UPDATE ... WHERE (columns) IS
//!    DISTINCT FROM (new columns)` writes the dataset. Unchanged rows are not rewritten (no new
//!    tuple, no `updated_at` bump); `RETURNING (created_at = now())` tells inserts from updates (see `sql.rs`), and
//!    unchanged = staged - inserted - updated.
//! 6. Exactly one `sync_runs` row records the run. It is inserted as `running` in a transaction
//!    of its own, committed before any input is read, by the session that then loads and holds
//!    the run's advisory lock (`queries::sync_runs`); the loading transaction turns it into
//!    `succeeded`, `partial` or `failed` (counts, the first errors, duration). After an atomic
//!    rollback or an aborted input it is finished in a fresh transaction. A load that never
//!    finishes (process killed, database restarted, future dropped) leaves it `running`, and
//!    `SystemDb::interrupt_orphaned_sync_runs` marks it `interrupted` once its session is gone.
//!    [`LoadOptions::audit`] adds an `audit_logs` row in the same transaction as the outcome
//!    (and so as the written rows), its summary completed with the outcome. Exception: a page of
//!    a resumable sync ([`LoadOptions::run`]) has no row of its own; its counts are added to its
//!    run's one row in the loading transaction ([`RunPart`]), so a sync of a thousand pages is
//!    one run with the sum of their counts.
//!
//! ## Calling it
//! ```ignore
//! let ctx = loader::ingest_context(&app, tenant, "api").await?;      // tenant zone + base currency
//! let rows = body.iter().enumerate().map(|(i, fields)| {               // any source of rows
//!     FinancialRow::parse_named(fields, i as u64 + 2, &ctx).map(|row| ValidRow { line: i as u64 + 2, row })
//! });
//! let report = loader::load(&app, tenant, &LoadOptions::new("api"), futures_util::stream::iter(rows), None).await?;
//! ```
//!
//! CSV sources: [`load_csv`] (any `std::io::Read`: a file) and [`load_csv_chunks`] (a stream of
//! byte chunks: an HTTP upload) parse on a blocking thread and feed the loader through bounded
//! channels, so memory stays flat whatever the input size.

mod csv;
mod datasets;
mod runs;
mod sql;

use std::pin::pin;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{Stream, StreamExt};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use zixly_domain::ingest::{RowError, RowResult, ValidRow};

pub use csv::{load_csv, load_csv_chunks, ReadProgress};
pub use datasets::Loadable;
pub use runs::ingest_context;
use runs::{check_connection, record_failure, release_run, start_run};

use crate::error::{Ctx, DbError, DbResult};
use crate::queries::audit::AuditEntry;
use crate::queries::sync_runs::{FinishedSyncRun, SyncRunRef};
use crate::{AppDb, TenantTx};

/// How many errors a report (and `sync_runs.errors`) carries in full; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// One item of the loader's input: a row, the errors of an invalid row, or the end of a source
/// that failed (an unreadable file, a dropped connection): the load then fails as a whole.
#[derive(Debug)]
pub enum Input<T> {
    Row(ValidRow<T>),
    Invalid(Vec<RowError>),
    Abort(String),
}

impl<T> From<RowResult<T>> for Input<T> {
    fn from(r: RowResult<T>) -> Self {
        match r {
            Ok(row) => Input::Row(row),
            Err(errors) => Input::Invalid(errors),
        }
    }
}

/// Where a load comes from and how strict it is.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `sync_runs.source`: `csv`, `api`, or a connector name.
    pub source: String,
    pub file_name: Option<String>,
    /// Load the valid rows even when some are invalid (default: all or nothing).
    pub skip_invalid: bool,
    pub integration_id: Option<Uuid>,
    pub triggered_by: Option<Uuid>,
    /// A connector's incremental-sync cursor, stored in this load's `sync_runs.cursor` so that it
    /// commits together with the rows (a sync's next run starts from the cursor of its latest
    /// `succeeded` run: `TenantTx::last_sync_cursor`).
    pub cursor: Option<serde_json::Value>,
    /// An audit row to append in the transaction that records the load (the rows' transaction
    /// when something is written; after an atomic rollback, the one of the `failed` sync run).
    /// Its `summary`, when an object, gets the outcome added: `sync_run_id`, `dataset`, `status`,
    /// `rows_read`, `inserted`, `updated`, `unchanged`, `rejected`, `duplicates_ignored`,
    /// `error_count` (any other
    /// summary is kept under `request`).
    pub audit: Option<AuditEntry>,
    /// This load is one page of a resumable sync run: its counts go to the run's one `sync_runs`
    /// row instead of a row of its own (see [`RunPart`]).
    pub run: Option<RunPart>,
    /// Check only: stage the rows and run every check of a load (parse errors, exact duplicates,
    /// duplicate keys, exchange rates), then roll back. Nothing is written, no `sync_runs` row or
    /// audit row is recorded, and the report's `sync_run_id` is nil.
    pub dry_run: bool,
}

/// A load that is a page of a resumable sync run ([`SyncRunRef`]). No row of its own is
/// started and no lock taken: the loading transaction adds the page's counts to the run's row
/// (opening it on the run's first page), writes the checkpoint, and, on the `last` page, settles
/// the row with [`LoadOptions::cursor`]. A load that fails adds its errors without settling:
/// the run stays open for the next attempt, and the engine settles it `failed` if it gives up.
/// A database error records nothing (the next attempt resumes at the checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct RunPart {
    pub run: SyncRunRef,
    /// The run's last load: it settles the run.
    pub last: bool,
    /// The run's checkpoint, written in the loading transaction so that it commits with the
    /// page's rows (never ahead of or behind them). Written only when rows were loaded (not
    /// after an atomic rollback or an aborted input).
    pub checkpoint: Option<CheckpointWrite>,
}

/// What a page's load does with its sync's checkpoint ([`RunPart::checkpoint`]).
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointWrite {
    /// More pages follow: the run resumes after this one.
    Save(crate::checkpoints::OwnedCheckpoint),
    /// The run's last page (its cursor in the same load): the run is settled.
    Clear,
}

impl LoadOptions {
    pub fn new(source: &str) -> Self {
        LoadOptions {
            source: source.into(),
            file_name: None,
            skip_invalid: false,
            integration_id: None,
            triggered_by: None,
            cursor: None,
            audit: None,
            run: None,
            dry_run: false,
        }
    }
}

/// Receives every rejected line as soon as the loader knows it (parse errors while streaming,
/// duplicate-key and exchange-rate errors after the COPY), e.g. to write a rejects file. Lines of
/// parse errors arrive in input order, then the others in line order.
pub trait RejectSink: Send {
    fn rejected(&mut self, line: u64, errors: &[RowError]);
    /// A line the parser accepted and that was staged (the checks after the COPY may still
    /// reject it, through [`RejectSink::rejected`]). Lines arrive in input order.
    fn staged(&mut self, _line: u64) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadStatus {
    /// Every row is in the database (inserted, updated or unchanged).
    Succeeded,
    /// Some rows were rejected (`skip_invalid`), the others loaded.
    Partial,
    /// Nothing was written.
    Failed,
}

impl LoadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Succeeded => "succeeded",
            LoadStatus::Partial => "partial",
            LoadStatus::Failed => "failed",
        }
    }
}

/// The outcome of one load (also stored as a `sync_runs` row, `sync_run_id`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub sync_run_id: Uuid,
    pub dataset: &'static str,
    pub status: LoadStatus,
    /// Data rows seen (valid + invalid), exact duplicates included.
    pub rows_read: u64,
    /// Rows dropped because an earlier line of the input is the very same row (see the module
    /// documentation); they are neither loaded nor rejected.
    pub duplicates_ignored: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Financial rows dated before the tenant's raw-data retention cutoff (migrations/0022): not
    /// stored, since the month they fall in is kept as a total already (a re-sync of old
    /// invoices would count them twice). Neither loaded nor rejected.
    pub before_retention: u64,
    /// Rows not loaded because of an error (in atomic mode, a failure loads none but only the
    /// invalid rows count here).
    pub rejected: u64,
    pub error_count: u64,
    /// The first [`MAX_REPORTED_ERRORS`] errors, by line.
    pub errors: Vec<RowError>,
    /// Why the whole load failed when it was not row errors (an unreadable input).
    pub aborted: Option<String>,
    pub clients_inserted: u64,
    pub clients_updated: u64,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl LoadReport {
    /// Errors beyond [`LoadReport::errors`].
    pub fn errors_not_listed(&self) -> u64 {
        self.error_count - self.errors.len() as u64
    }

    /// `1 duplicate row ignored` / `N duplicate rows ignored`, or `None`: the one wording of the
    /// CLI, the imports page and the API.
    pub fn duplicates_message(&self) -> Option<String> {
        duplicates_message(self.duplicates_ignored)
    }
}

/// See [`LoadReport::duplicates_message`].
pub fn duplicates_message(n: u64) -> Option<String> {
    match n {
        0 => None,
        1 => Some("1 duplicate row ignored".into()),
        n => Some(format!("{n} duplicate rows ignored")),
    }
}

/// `entry` with the outcome of the load added to its summary (see [`LoadOptions::audit`]).
fn audit_with_outcome(entry: &AuditEntry, report: &LoadReport) -> AuditEntry {
    let mut summary = match &entry.summary {
        serde_json::Value::Object(m) => m.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("request".into(), other.clone());
            m
        }
    };
    let outcome = serde_json::json!({
        "sync_run_id": report.sync_run_id,
        "dataset": report.dataset,
        "status": report.status.as_str(),
        "rows_read": report.rows_read,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "before_retention": report.before_retention,
        "rejected": report.rejected,
        "duplicates_ignored": report.duplicates_ignored,
        "error_count": report.error_count,
    });
    if let serde_json::Value::Object(o) = outcome {
        summary.extend(o);
    }
    AuditEntry {
        summary: serde_json::Value::Object(summary),
        ..entry.clone()
    }
}

/// Keeps the first errors by line out of two line-ordered sequences, and the totals.
#[derive(Default)]
struct Errors {
    parse: Vec<RowError>,
    checks: Vec<RowError>,
    count: u64,
    /// Lines rejected by the parser (never staged).
    parse_lines: u64,
    /// Lines rejected by the checks on the staging table.
    check_lines: u64,
}

impl Errors {
    fn add(list: &mut Vec<RowError>, errors: &[RowError]) {
        for e in errors {
            if list.len() < MAX_REPORTED_ERRORS {
                list.push(e.clone());
            }
        }
    }

    fn first(&self) -> Vec<RowError> {
        let mut all: Vec<RowError> = self.parse.iter().chain(&self.checks).cloned().collect();
        all.sort_by_key(|e| e.line); // stable: keeps the column order within a line
        all.truncate(MAX_REPORTED_ERRORS);
        all
    }
}

struct Counts {
    inserted: u64,
    updated: u64,
    before_retention: u64,
    clients_inserted: u64,
    clients_updated: u64,
}

/// Loads a stream of parsed rows into the tenant's `T` dataset (see the module documentation).
///
/// Returns `Err` only when the database fails (a `failed` sync run is still recorded when
/// possible); rejected rows are an `Ok` report with status `failed` or `partial`.
pub async fn load<T, S, I>(
    app: &AppDb,
    tenant: Uuid,
    options: &LoadOptions,
    rows: S,
    mut rejects: Option<&mut dyn RejectSink>,
) -> DbResult<LoadReport>
where
    T: Loadable,
    S: Stream<Item = I> + Send,
    I: Into<Input<T>>,
{
    let started = Instant::now();
    let started_at = Utc::now();
    // The run's row exists (`running`, committed) before any input is read, so a load that never
    // finishes still leaves its trace; `owner` is the connection that holds the run's lock.
    let (run_id, base, owner) = if options.dry_run {
        check_connection(app, tenant).await?
    } else if let Some(part) = &options.run {
        // A page of a resumable run: the run's row is written in the loading transaction.
        let (_, base, owner) = check_connection(app, tenant).await?;
        (part.run.id, base, owner)
    } else {
        start_run(app, tenant, options, T::DATASET.as_str(), started_at).await?
    };
    let mut errors = Errors::default();
    let mut rows_read = 0u64;
    let mut staged = 0u64;
    let mut duplicates = 0u64;
    let mut aborted = None;

    let outcome: DbResult<Staged> = async {
        let q = T::sql();
        let tx = TenantTx::begin(owner, tenant).await?;
        tx.client()
            .batch_execute(q.create_staging)
            .await
            .ctx("creating the staging table")?;
        let sink = tx
            .client()
            .copy_in(q.copy)
            .await
            .ctx("starting COPY into the staging table")?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, q.copy_types));
        let mut rows = pin!(rows);
        while let Some(item) = rows.next().await {
            match item.into() {
                Input::Row(v) => {
                    rows_read += 1;
                    v.row
                        .copy_row(v.line as i64, writer.as_mut())
                        .await
                        .ctx("copying rows into the staging table")?;
                    staged += 1;
                    if let Some(sink) = rejects.as_deref_mut() {
                        sink.staged(v.line);
                    }
                }
                Input::Invalid(errs) => {
                    rows_read += 1;
                    errors.count += errs.len() as u64;
                    errors.parse_lines += 1;
                    Errors::add(&mut errors.parse, &errs);
                    if let (Some(sink), Some(first)) = (rejects.as_deref_mut(), errs.first()) {
                        sink.rejected(first.line, &errs);
                    }
                }
                Input::Abort(reason) => {
                    aborted = Some(reason);
                    break;
                }
            }
        }
        if aborted.is_some() {
            // Dropping the unfinished COPY aborts it; dropping `tx` then closes the connection,
            // which rolls the transaction back (and releases the run's lock).
            return Ok(Staged::Aborted);
        }
        writer
            .finish()
            .await
            .ctx("finishing COPY into the staging table")?;
        tx.client()
            .batch_execute(q.checks_prepare)
            .await
            .ctx("analyzing the staging table")?;
        let collapsed = tx
            .client()
            .query_one(q.collapse_exact_duplicates, &[])
            .await
            .ctx("collapsing exact duplicate rows")?;
        let duplicated_keys: i64 = collapsed.get(0);
        duplicates = collapsed.get::<_, i64>(1) as u64;
        if duplicated_keys > 0 {
            tx.client()
                .execute(q.find_duplicates, &[])
                .await
                .ctx("looking for duplicate keys")?;
        }
        tx.client()
            .execute(sql::FIND_MISSING_RATES, &[&base.as_str()])
            .await
            .ctx("checking exchange rates")?;

        // Stream the check errors out in line order (there may be very many).
        let check_rows = tx
            .client()
            .query_raw(sql::LIST_REJECTS, std::iter::empty::<i64>())
            .await
            .ctx("reading rejected rows")?;
        let mut check_rows = pin!(check_rows);
        let mut current: Option<(u64, Vec<RowError>)> = None;
        let mut flush = |entry: Option<(u64, Vec<RowError>)>, errors: &mut Errors| {
            if let Some((line, errs)) = entry {
                errors.count += errs.len() as u64;
                errors.check_lines += 1;
                Errors::add(&mut errors.checks, &errs);
                if let Some(sink) = rejects.as_deref_mut() {
                    sink.rejected(line, &errs);
                }
            }
        };
        while let Some(row) = check_rows.next().await {
            let row = row.ctx("reading rejected rows")?;
            let line = row.get::<_, i64>(0) as u64;
            let error = RowError {
                line,
                column: row.get(1),
                reason: row.get(2),
            };
            match &mut current {
                Some((l, errs)) if *l == line => errs.push(error),
                _ => flush(current.replace((line, vec![error])), &mut errors),
            }
        }
        flush(current.take(), &mut errors);

        if options.dry_run {
            // The checks are done; a dry run never writes, whatever it found.
            // The rolled-back connection is clean: dropping it returns it to the pool.
            drop(tx.rollback_keep().await?);
            return Ok(Staged::Checked);
        }
        if errors.count > 0 && !options.skip_invalid {
            return Ok(Staged::Rejected(tx.rollback_keep().await?));
        }
        tx.client()
            .batch_execute(sql::DROP_REJECTED)
            .await
            .ctx("removing rejected rows")?;
        // Every month the rows fall in gets its partition first, in a transaction of its own on
        // another connection: DDL inside this one would hold its locks until the load commits.
        // This transaction has not touched the table yet, so it cannot block that DDL.
        let missing: Vec<chrono::NaiveDate> = tx
            .client()
            .query_one(q.missing_months, &[&q.table])
            .await
            .ctx("looking for months without a partition")?
            .get(0);
        if !missing.is_empty() {
            app.pre_tenant_client()
                .await?
                .query_one(sql::CREATE_MONTH_PARTITIONS, &[&q.table, &missing])
                .await
                .ctx("creating monthly partitions")?;
        }
        let tenant_param: &(dyn ToSql + Sync) = &tenant;
        let clients = tx
            .client()
            .query_one(sql::UPSERT_CLIENTS, &[tenant_param])
            .await
            .ctx("upserting clients")?;
        let clients_inserted: i64 = clients.get(0);
        if clients_inserted > 0 {
            tx.client()
                .execute(sql::REFRESH_CLIENT_STATS, &[&clients_inserted])
                .await
                .ctx("refreshing client statistics")?;
        }
        let (inserted, updated, before_retention) = match q.upsert_chunk_pages {
            None => {
                let row = tx
                    .client()
                    .query_one(q.upsert, &[tenant_param])
                    .await
                    .ctx(q.upsert_context)?;
                (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2))
            }
            Some(step) => {
                let pages: i64 = tx
                    .client()
                    .query_one(
                        "select pg_relation_size('zixly_stage') / current_setting('block_size')::bigint",
                        &[],
                    )
                    .await
                    .ctx("sizing the staged rows")?
                    .get(0);
                let stmt = tx
                    .client()
                    .prepare(q.upsert)
                    .await
                    .ctx(q.upsert_context)?;
                let (mut inserted, mut updated) = (0, 0);
                let mut first = 0;
                while first < pages {
                    // The rollup triggers' statements keep, per connection, the plans made at
                    // their first run — on a pooled connection perhaps when the tables were nearly
                    // empty, and within this load before its own rows were in them. Replanned for
                    // each chunk, they follow the tables as they fill (with the first chunk's
                    // plans, 78,000 events took 288 s instead of 13.5 s; BENCHMARKS.md).
                    tx.client()
                        .batch_execute("discard plans")
                        .await
                        .ctx("replanning for the next chunk")?;
                    let row = tx
                        .client()
                        .query_one(&stmt, &[tenant_param, &first, &(first + step)])
                        .await
                        .ctx(q.upsert_context)?;
                    inserted += row.get::<_, i64>(0);
                    updated += row.get::<_, i64>(1);
                    first += step;
                }
                // Lead events are not subject to retention (migrations/0022).
                (inserted, updated, 0)
            }
        };
        if let Some((define, context)) = q.after_upsert {
            tx.client()
                .execute(define, &[tenant_param])
                .await
                .ctx(context)?;
        }
        let counts = Counts {
            inserted: inserted as u64,
            updated: updated as u64,
            before_retention: before_retention as u64,
            clients_inserted: clients.get::<_, i64>(0) as u64,
            clients_updated: clients.get::<_, i64>(1) as u64,
        };
        Ok(Staged::Loaded(tx, counts))
    }
    .await;

    let report_errors = || -> Vec<RowError> {
        let mut list = errors.first();
        if let Some(reason) = &aborted {
            list.insert(0, RowError::new(rows_read + 1, None, reason.clone()));
            list.truncate(MAX_REPORTED_ERRORS);
        }
        list
    };
    let make_run =
        |status: LoadStatus, counts: Option<&Counts>, listed: &[RowError], duration: Duration| {
            let (inserted, updated, kept_out) =
                counts.map_or((0, 0, 0), |c| (c.inserted, c.updated, c.before_retention));
            let loaded = if counts.is_none() {
                0
            } else {
                staged - duplicates - errors.check_lines
            };
            (
                FinishedSyncRun {
                    source: &options.source,
                    dataset: T::DATASET.as_str(),
                    integration_id: options.integration_id,
                    file_name: options.file_name.as_deref(),
                    status: status.as_str(),
                    rows_read: rows_read as i64,
                    rows_inserted: inserted as i64,
                    rows_updated: updated as i64,
                    rows_unchanged: loaded.saturating_sub(inserted + updated + kept_out) as i64,
                    rows_rejected: (errors.parse_lines + errors.check_lines) as i64,
                    error_count: (errors.count + u64::from(aborted.is_some())) as i64,
                    errors: serde_json::to_value(listed).unwrap_or_default(),
                    triggered_by: options.triggered_by,
                    cursor: options.cursor.as_ref(),
                    started_at,
                    duration_ms: duration.as_millis() as i64,
                },
                loaded,
            )
        };

    // A database error before the outcome is known: record `failed` (best effort; if even that
    // fails, the row stays `running` and the next sweep marks it `interrupted`).
    let failure_run = |e: &DbError| {
        let mut listed = report_errors();
        listed.insert(0, RowError::new(0, None, format!("database error: {e}")));
        listed.truncate(MAX_REPORTED_ERRORS);
        listed
    };
    let outcome = match outcome {
        Ok(staged) => staged,
        Err(e) if options.dry_run || options.run.is_some() => return Err(e),
        Err(e) => {
            let listed = failure_run(&e);
            let (run, _) = make_run(LoadStatus::Failed, None, &listed, started.elapsed());
            record_failure(app, tenant, run_id, &run).await;
            return Err(e);
        }
    };

    let finished: DbResult<LoadReport> = async {
        match outcome {
            Staged::Loaded(tx, counts) => {
                let status = if errors.count == 0 {
                    LoadStatus::Succeeded
                } else if staged - duplicates > errors.check_lines {
                    LoadStatus::Partial
                } else {
                    LoadStatus::Failed
                };
                let listed = report_errors();
                let duration = started.elapsed();
                let (run, loaded) = make_run(status, Some(&counts), &listed, duration);
                match &options.run {
                    Some(part) => tx.add_to_sync_run(&part.run, &run, part.last).await?,
                    None => tx.finish_sync_run(run_id, &run).await?,
                }
                let report = LoadReport {
                    sync_run_id: run_id,
                    dataset: T::DATASET.as_str(),
                    status,
                    rows_read,
                    duplicates_ignored: duplicates,
                    inserted: counts.inserted,
                    updated: counts.updated,
                    unchanged: loaded - counts.inserted - counts.updated - counts.before_retention,
                    before_retention: counts.before_retention,
                    rejected: errors.parse_lines + errors.check_lines,
                    error_count: errors.count,
                    errors: listed,
                    aborted: None,
                    clients_inserted: counts.clients_inserted,
                    clients_updated: counts.clients_updated,
                    duration,
                };
                if let Some(entry) = &options.audit {
                    tx.append_audit(&audit_with_outcome(entry, &report)).await?;
                }
                if let Some(RunPart {
                    run,
                    checkpoint: Some(write),
                    ..
                }) = &options.run
                {
                    match write {
                        CheckpointWrite::Save(c) => {
                            tx.save_sync_checkpoint(run, &c.as_update()).await?
                        }
                        CheckpointWrite::Clear => {
                            tx.clear_sync_checkpoint(run.integration_id).await?
                        }
                    }
                }
                // Rows changed: the tenant's alert rules are evaluated again, as a job committed
                // with the rows (never inside the load, never for a load that changed nothing —
                // a re-import of the same file evaluates nothing). One live job per tenant.
                tx.data_changed(counts.inserted + counts.updated).await?;
                let client = tx.commit_keep().await?;
                if options.run.is_none() {
                    release_run(client, run_id).await;
                }
                Ok(report)
            }
            Staged::Checked | Staged::Aborted if options.dry_run => {
                // Nothing to record: a dry run has no sync run.
                let would_load = staged - duplicates - errors.check_lines;
                let status = if aborted.is_some() {
                    LoadStatus::Failed
                } else if errors.count == 0 {
                    LoadStatus::Succeeded
                } else if options.skip_invalid && would_load > 0 {
                    LoadStatus::Partial
                } else {
                    LoadStatus::Failed
                };
                Ok(LoadReport {
                    sync_run_id: run_id,
                    dataset: T::DATASET.as_str(),
                    status,
                    rows_read,
                    duplicates_ignored: duplicates,
                    inserted: 0,
                    updated: 0,
                    unchanged: 0,
                    before_retention: 0,
                    rejected: errors.parse_lines + errors.check_lines,
                    error_count: errors.count + u64::from(aborted.is_some()),
                    errors: report_errors(),
                    aborted: aborted.clone(),
                    clients_inserted: 0,
                    clients_updated: 0,
                    duration: started.elapsed(),
                })
            }
            Staged::Checked => unreachable!("only a dry run stops after the checks"),
            staged @ (Staged::Rejected(_) | Staged::Aborted) => {
                let listed = report_errors();
                let duration = started.elapsed();
                let (run, _) = make_run(LoadStatus::Failed, None, &listed, duration);
                // After an atomic rollback the owning connection is still ours; an aborted input
                // closed it, so a fresh one records the outcome.
                let (tx, owner) = match staged {
                    Staged::Rejected(client) => (TenantTx::begin(client, tenant).await?, true),
                    _ => (app.begin_tenant(tenant).await?, false),
                };
                match &options.run {
                    Some(part) => tx.add_to_sync_run(&part.run, &run, false).await?,
                    None => tx.finish_sync_run(run_id, &run).await?,
                }
                let report = LoadReport {
                    sync_run_id: run_id,
                    dataset: T::DATASET.as_str(),
                    status: LoadStatus::Failed,
                    rows_read,
                    duplicates_ignored: duplicates,
                    inserted: 0,
                    updated: 0,
                    unchanged: 0,
                    before_retention: 0,
                    rejected: errors.parse_lines + errors.check_lines,
                    error_count: errors.count + u64::from(aborted.is_some()),
                    errors: listed,
                    aborted: aborted.clone(),
                    clients_inserted: 0,
                    clients_updated: 0,
                    duration,
                };
                if let Some(entry) = &options.audit {
                    tx.append_audit(&audit_with_outcome(entry, &report)).await?;
                }
                let client = tx.commit_keep().await?;
                if owner && options.run.is_none() {
                    release_run(client, run_id).await;
                }
                Ok(report)
            }
        }
    }
    .await;
    if let (Err(e), false) = (&finished, options.dry_run || options.run.is_some()) {
        let listed = failure_run(e);
        let (run, _) = make_run(LoadStatus::Failed, None, &listed, started.elapsed());
        record_failure(app, tenant, run_id, &run).await;
    }
    finished
}

/// How the loading transaction ended.
enum Staged {
    /// Rows written; the transaction is open, to record the run and commit.
    Loaded(TenantTx, Counts),
    /// Atomic mode and some row was invalid: rolled back; the run's owning connection.
    Rejected(deadpool_postgres::Object),
    /// The input failed ([`Input::Abort`]): rolled back by closing the connection.
    Aborted,
    /// A dry run after its checks: rolled back.
    Checked,
}
