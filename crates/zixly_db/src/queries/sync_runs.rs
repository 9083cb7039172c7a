//! `sync_runs`: one row per import or sync, whatever its outcome (a resumable sync: one row for
//! all its pages and attempts, [`SyncRunRef`]).
//!
//! Lifecycle (migrations/0009_sync_run_interrupted.sql): a load inserts its row as `running` in a
//! transaction of its own, on the connection that then loads, after taking a session-level
//! advisory lock on `(RUN_LOCK_CLASS, hashtext(id))`; the loading transaction turns it into
//! `succeeded`, `partial` or `failed`; then the lock is released. A row left `running` by a
//! process that died is found by [`SystemDb::interrupt_orphaned_sync_runs`]: its lock is free,
//! because locks die with their session. A live load holds its lock however long it runs, so it is
//! never marked.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::{SystemDb, TenantTx};

/// First key of the advisory lock a loading session holds on its running `sync_runs` row (the
/// second is `hashtext(id::text)`): "zxsr". The two-key form does not collide with the one-key
/// locks of migrations and bootstrap.
pub(crate) const RUN_LOCK_CLASS: i32 = 0x7a78_7372;

/// The reason recorded (as the first error) on a run marked `interrupted`.
pub const INTERRUPTED_REASON: &str = "interrupted: the process running this import or sync \
     stopped before it finished (killed, crashed, or the database restarted); nothing of it was \
     written — run it again";

/// A run as it starts (status `running`).
#[derive(Debug, Clone)]
pub struct NewSyncRun<'a> {
    pub id: Uuid,
    pub source: &'a str,
    pub dataset: &'a str,
    pub integration_id: Option<Uuid>,
    pub file_name: Option<&'a str>,
    pub triggered_by: Option<Uuid>,
    pub started_at: DateTime<Utc>,
}

/// The outcome of one run, written once when it is over.
#[derive(Debug, Clone)]
pub struct FinishedSyncRun<'a> {
    /// `csv`, `api`, or a connector name.
    pub source: &'a str,
    /// `financials`, `lead_events`, `custom_metrics`, `clients` or `mixed`.
    pub dataset: &'a str,
    pub integration_id: Option<Uuid>,
    pub file_name: Option<&'a str>,
    /// `succeeded`, `partial` or `failed`.
    pub status: &'a str,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_rejected: i64,
    pub error_count: i64,
    /// A JSON array (the first errors; `error_count` has the total).
    pub errors: serde_json::Value,
    pub triggered_by: Option<Uuid>,
    /// A connector's cursor for the next incremental run.
    pub cursor: Option<&'a serde_json::Value>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
}

/// A resumable sync's run: **one** `sync_runs` row for all its pages and attempts, however many
/// 429s, restarts and token refreshes it takes. The row is opened (`running`) by the run's first
/// committed page, in that page's transaction (every checkpoint save opens it:
/// [`TenantTx::save_sync_checkpoint`]); each page's load adds its counts to it in the load's
/// transaction (`loader::LoadOptions::run`); the last page's load settles it (`succeeded`, or
/// `partial` when rows were rejected) with the cursor. So the row is `running` exactly while the
/// integration holds a checkpoint, which is why the orphan sweep leaves such rows alone: no
/// session holds a lock on them between pages, and the run is not lost, only waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRunRef {
    pub id: Uuid,
    pub integration_id: Uuid,
    /// The connector's name (`sync_runs.source`).
    pub source: String,
    /// `financials`, `lead_events` or `custom_metrics`.
    pub dataset: String,
    /// When the run's first attempt began (kept by the resumed attempts).
    pub started_at: DateTime<Utc>,
}

/// An integration's latest finished run, as the Integrations page and the API show it: a
/// resumable sync's one row, so the counts are the whole run's, every page and attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastSyncRun {
    /// `succeeded`, `partial`, `failed` or `interrupted`.
    pub status: String,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_rejected: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl LastSyncRun {
    /// "230 rows read: 230 inserted, 0 updated, 0 unchanged" (", 2 rejected" when any).
    pub fn describe(&self) -> String {
        let rows = if self.rows_read == 1 { "row" } else { "rows" };
        let mut s = format!(
            "{} {rows} read: {} inserted, {} updated, {} unchanged",
            self.rows_read, self.rows_inserted, self.rows_updated, self.rows_unchanged
        );
        if self.rows_rejected > 0 {
            s.push_str(&format!(", {} rejected", self.rows_rejected));
        }
        s
    }
}

/// The open run of an integration as found at an attempt's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSyncRun {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
}

impl TenantTx {
    /// The integration's open (`running`) run row, if a resumable run left one.
    pub async fn open_sync_run(&self, integration_id: Uuid) -> DbResult<Option<OpenSyncRun>> {
        let row = self
            .client()
            .query_opt(
                "select id, started_at from sync_runs
                  where tenant_id = $1 and integration_id = $2 and status = 'running'
                  order by started_at desc, id desc limit 1",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("reading the open sync run")?;
        Ok(row.map(|r| OpenSyncRun {
            id: r.get(0),
            started_at: r.get(1),
        }))
    }

    /// Opens `run`'s row (`running`, no counts) unless it exists (in this page's transaction).
    pub(crate) async fn open_sync_run_row(&self, run: &SyncRunRef) -> DbResult<()> {
        self.client()
            .execute(
                "insert into sync_runs (tenant_id, id, source, dataset, integration_id, started_at,
                                        status)
                 values ($1, $2, $3, $4, $5, $6, 'running')
                 on conflict (tenant_id, id) do nothing",
                &[
                    &self.tenant_id(),
                    &run.id,
                    &run.source,
                    &run.dataset,
                    &run.integration_id,
                    &run.started_at,
                ],
            )
            .await
            .ctx("opening the sync run")?;
        Ok(())
    }

    /// Adds one page's load (`page`: its counts and first errors) to `run`'s row, opening it if
    /// needed; `settle` (the run's last load) also sets its final status, `finished_at`, the
    /// run's whole duration and `page.cursor`. A row no longer `running` (settled by an earlier
    /// attempt whose checkpoint clear was lost, or failed by the engine) is left as it is:
    /// `NotFound`, so the caller's transaction does not commit a page into a closed run.
    pub(crate) async fn add_to_sync_run(
        &self,
        run: &SyncRunRef,
        page: &FinishedSyncRun<'_>,
        settle: bool,
    ) -> DbResult<()> {
        self.open_sync_run_row(run).await?;
        // The errors list stays bounded (`loader::MAX_REPORTED_ERRORS`); `error_count` has them all.
        let n = self
            .client()
            .execute(
                "update sync_runs
                    set rows_read = rows_read + $3, rows_inserted = rows_inserted + $4,
                        rows_updated = rows_updated + $5, rows_unchanged = rows_unchanged + $6,
                        rows_rejected = rows_rejected + $7, error_count = error_count + $8,
                        errors = (select coalesce(jsonb_agg(e order by i), '[]'::jsonb)
                                    from jsonb_array_elements(errors || $9::jsonb)
                                         with ordinality as x(e, i) where i <= $10),
                        status = case when not $11 then status
                                      when rows_rejected + $7 > 0 then 'partial'::sync_status
                                      else 'succeeded'::sync_status end,
                        finished_at = case when $11 then greatest(clock_timestamp(), started_at) end,
                        duration_ms = case when $11 then
                            (extract(epoch from greatest(clock_timestamp(), started_at) - started_at)
                             * 1000)::int8 end,
                        cursor = case when $11 then $12::jsonb else cursor end
                  where tenant_id = $1 and id = $2 and status = 'running'",
                &[
                    &self.tenant_id(),
                    &run.id,
                    &page.rows_read,
                    &page.rows_inserted,
                    &page.rows_updated,
                    &page.rows_unchanged,
                    &page.rows_rejected,
                    &page.error_count,
                    &page.errors,
                    &(crate::loader::MAX_REPORTED_ERRORS as i64),
                    &settle,
                    &page.cursor,
                ],
            )
            .await
            .ctx("adding a page to the sync run")?;
        if n == 1 {
            Ok(())
        } else {
            Err(DbError::NotFound("open sync run"))
        }
    }

    /// The run of the integration ended in ERROR (the engine gave up): its open row is settled
    /// `failed` with `reason` first among its errors. Returns whether there was one. The
    /// checkpoint stays: an admin's "sync again" resumes the reading, as a new run row.
    pub async fn fail_open_sync_run(&self, integration_id: Uuid, reason: &str) -> DbResult<bool> {
        let error = serde_json::json!([{ "line": 0, "column": null, "reason": reason }]);
        let n = self
            .client()
            .execute(
                "update sync_runs
                    set status = 'failed', finished_at = greatest(clock_timestamp(), started_at),
                        duration_ms = (extract(epoch from greatest(clock_timestamp(), started_at)
                                       - started_at) * 1000)::int8,
                        error_count = error_count + 1, errors = $3::jsonb || errors
                  where tenant_id = $1 and integration_id = $2 and status = 'running'",
                &[&self.tenant_id(), &integration_id, &error],
            )
            .await
            .ctx("recording the failed sync run")?;
        Ok(n > 0)
    }
}

/// A stored run, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncRun {
    pub id: Uuid,
    pub source: String,
    pub dataset: String,
    pub file_name: Option<String>,
    pub status: String,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_rejected: i64,
    pub error_count: i64,
    pub errors: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

impl TenantTx {
    /// Takes this session's advisory lock on `run.id` and inserts the run as `running` (commit
    /// the transaction to publish it). Returns false, inserting nothing, when the lock is taken
    /// by another session (another live run whose id hashes alike): pick another id.
    ///
    /// The lock is session-level: it outlives this transaction and must be released with
    /// [`release_run_lock`] on the same connection, or by closing it.
    pub(crate) async fn start_sync_run(&self, run: &NewSyncRun<'_>) -> DbResult<bool> {
        let n = self
            .client()
            .execute(
                "with owner as (select pg_try_advisory_lock($1, hashtext($2::uuid::text)) as locked)
                 insert into sync_runs (tenant_id, id, source, dataset, integration_id, file_name,
                        triggered_by, started_at, status, owner_pid)
                 select $9, $2, $3, $4, $5, $6, $7, $8, 'running', pg_backend_pid()
                   from owner where locked",
                &[
                    &RUN_LOCK_CLASS,
                    &run.id,
                    &run.source,
                    &run.dataset,
                    &run.integration_id,
                    &run.file_name,
                    &run.triggered_by,
                    &run.started_at, &self.tenant_id()],
            )
            .await
            .ctx("recording the start of the sync run")?;
        Ok(n == 1)
    }

    /// Records the outcome of run `id` of the current tenant: one still `running`, or already
    /// marked `interrupted` because its session died first. A finished run is never rewritten
    /// (`NotFound`): a best-effort `failed` after a commit whose answer was lost must not
    /// overwrite the `succeeded` that did commit.
    pub(crate) async fn finish_sync_run(
        &self,
        id: Uuid,
        run: &FinishedSyncRun<'_>,
    ) -> DbResult<()> {
        let n = self
            .client()
            .execute(
                "update sync_runs
                    set source = $2, dataset = $3, integration_id = $4, file_name = $5,
                        status = $6::text::sync_status, rows_read = $7, rows_inserted = $8,
                        rows_updated = $9, rows_unchanged = $10, rows_rejected = $11,
                        error_count = $12, errors = $13, triggered_by = $14, started_at = $15,
                        finished_at = $15::timestamptz + $16::bigint * interval '1 millisecond',
                        duration_ms = $16::bigint, cursor = $17
                  where tenant_id = $18 and id = $1
                    and status in ('running', 'interrupted')",
                &[
                    &id,
                    &run.source,
                    &run.dataset,
                    &run.integration_id,
                    &run.file_name,
                    &run.status,
                    &run.rows_read,
                    &run.rows_inserted,
                    &run.rows_updated,
                    &run.rows_unchanged,
                    &run.rows_rejected,
                    &run.error_count,
                    &run.errors,
                    &run.triggered_by,
                    &run.started_at,
                    &run.duration_ms,
                    &run.cursor,
                    &self.tenant_id(),
                ],
            )
            .await
            .ctx("recording the sync run")?;
        if n == 1 {
            Ok(())
        } else {
            Err(DbError::NotFound("sync run"))
        }
    }

    /// The tenant's most recent runs, newest first.
    pub async fn recent_sync_runs(&self, limit: i64) -> DbResult<Vec<SyncRun>> {
        let rows = self
            .client()
            .query(
                "select id, source, dataset, file_name, status::text, rows_read, rows_inserted, rows_updated,
                        rows_unchanged, rows_rejected, error_count, errors, started_at, finished_at, duration_ms
                   from sync_runs where tenant_id = $2
                  order by started_at desc, id desc limit $1",
                &[&limit, &self.tenant_id()],
            )
            .await
            .ctx("listing sync runs")?;
        Ok(rows
            .iter()
            .map(|r| SyncRun {
                id: r.get(0),
                source: r.get(1),
                dataset: r.get(2),
                file_name: r.get(3),
                status: r.get(4),
                rows_read: r.get(5),
                rows_inserted: r.get(6),
                rows_updated: r.get(7),
                rows_unchanged: r.get(8),
                rows_rejected: r.get(9),
                error_count: r.get(10),
                errors: r.get(11),
                started_at: r.get(12),
                finished_at: r.get(13),
                duration_ms: r.get(14),
            })
            .collect())
    }
}

/// One file import (`sync_runs` row of source `csv`: the imports page, `POST /api/v1/imports`,
/// `zixly import`) with who started it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportRun {
    pub run: SyncRun,
    /// The uploader's email; `None` for `zixly import` (no user) or a user since deleted.
    pub triggered_by_email: Option<String>,
    pub triggered_by: Option<Uuid>,
}

const IMPORT_RUN_COLUMNS: &str =
    "r.id, r.source, r.dataset, r.file_name, r.status::text, r.rows_read,
    r.rows_inserted, r.rows_updated, r.rows_unchanged, r.rows_rejected, r.error_count, r.errors,
    r.started_at, r.finished_at, r.duration_ms, u.email, r.triggered_by";

fn import_run(r: &tokio_postgres::Row) -> ImportRun {
    ImportRun {
        run: SyncRun {
            id: r.get(0),
            source: r.get(1),
            dataset: r.get(2),
            file_name: r.get(3),
            status: r.get(4),
            rows_read: r.get(5),
            rows_inserted: r.get(6),
            rows_updated: r.get(7),
            rows_unchanged: r.get(8),
            rows_rejected: r.get(9),
            error_count: r.get(10),
            errors: r.get(11),
            started_at: r.get(12),
            finished_at: r.get(13),
            duration_ms: r.get(14),
        },
        triggered_by_email: r.get(15),
        triggered_by: r.get(16),
    }
}

impl TenantTx {
    /// The tenant's latest file imports, newest first (the history of the imports page).
    pub async fn import_history(&self, limit: i64) -> DbResult<Vec<ImportRun>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {IMPORT_RUN_COLUMNS}
                       from sync_runs r
                       left join users u on u.tenant_id = r.tenant_id and u.id = r.triggered_by
                      where r.tenant_id = $2 and r.source = 'csv'
                      order by r.started_at desc, r.id desc limit $1"
                ),
                &[&limit, &self.tenant_id()],
            )
            .await
            .ctx("listing the import history")?;
        Ok(rows.iter().map(import_run).collect())
    }

    /// One file import of the tenant by id (with its stored errors), `None` when there is none.
    pub async fn import_run(&self, id: Uuid) -> DbResult<Option<ImportRun>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {IMPORT_RUN_COLUMNS}
                       from sync_runs r
                       left join users u on u.tenant_id = r.tenant_id and u.id = r.triggered_by
                      where r.tenant_id = $2 and r.source = 'csv' and r.id = $1"
                ),
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("reading an import run")?;
        Ok(row.as_ref().map(import_run))
    }
}

/// Releases the advisory lock [`TenantTx::start_sync_run`] took, outside any transaction. False
/// when it could not (the caller then closes the connection, which releases it too).
pub(crate) async fn release_run_lock(client: &deadpool_postgres::Object, id: Uuid) -> bool {
    client
        .query_one(
            "select pg_advisory_unlock($1, hashtext($2::uuid::text))",
            &[&RUN_LOCK_CLASS, &id],
        )
        .await
        .is_ok_and(|r| r.get::<_, bool>(0))
}

/// A run marked `interrupted` by [`SystemDb::interrupt_orphaned_sync_runs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedRun {
    pub tenant_id: Uuid,
    pub id: Uuid,
}

impl SystemDb {
    /// **Cross-tenant.** Marks `interrupted` every `running` run whose owner is provably gone:
    /// the advisory lock its loading session held is free (sessions lose their locks when they
    /// end, however the process died). A live load keeps its lock and is left alone however long
    /// it takes. The open row of a resumable sync ([`SyncRunRef`]) holds no lock between pages:
    /// while its integration has a checkpoint the run is waiting to resume, not lost, and is left
    /// alone too (an engine ERROR settles it `failed`). Safe to run from any number of processes at once: each candidate is locked
    /// before it is updated, and a run finished meanwhile is skipped (`status = 'running'` is
    /// checked again on the current row). At most 256 runs per call.
    pub async fn interrupt_orphaned_sync_runs(&self) -> DbResult<Vec<InterruptedRun>> {
        let client = self.pool().get().await?;
        let errors =
            serde_json::json!([{ "line": 0, "column": null, "reason": INTERRUPTED_REASON }]);
        // MATERIALIZED: the lock function is called on the running candidates only, never on
        // the whole table (each successful call holds a lock until the statement's end).
        let rows = client
            .query(
                "with /* cross-tenant */ running as materialized (
                     select s.tenant_id, s.id from sync_runs s
                      where s.status = 'running'
                        and not exists (select 1 from sync_checkpoints c
                                         where c.tenant_id = s.tenant_id
                                           and c.integration_id = s.integration_id)
                      order by s.tenant_id, s.id limit 256),
                 gone as materialized (
                     select tenant_id, id from running
                      where pg_try_advisory_xact_lock($1, hashtext(id::text)))
                 update sync_runs s
                    set status = 'interrupted', finished_at = greatest(now(), s.started_at),
                        duration_ms = greatest(0, (extract(epoch from now() - s.started_at) * 1000)::int8),
                        error_count = s.error_count + 1, errors = $2::jsonb || s.errors
                   from gone
                  where s.tenant_id = gone.tenant_id and s.id = gone.id and s.status = 'running'
              returning s.tenant_id, s.id",
                &[&RUN_LOCK_CLASS, &errors],
            )
            .await
            .ctx("marking interrupted sync runs")?;
        Ok(rows
            .iter()
            .map(|r| InterruptedRun {
                tenant_id: r.get(0),
                id: r.get(1),
            })
            .collect())
    }
}
