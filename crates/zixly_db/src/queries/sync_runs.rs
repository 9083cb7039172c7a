//! `sync_runs`: one row per import or sync, whatever its outcome.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

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
    /// Records a finished run of the current tenant; returns its id.
    pub async fn insert_finished_sync_run(&self, run: &FinishedSyncRun<'_>) -> DbResult<Uuid> {
        let id = Uuid::now_v7();
        self.client()
            .execute(
                "insert into sync_runs (tenant_id, id, source, dataset, integration_id, file_name, status,
                        rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected, error_count,
                        errors, triggered_by, started_at, finished_at, duration_ms, cursor)
                 values (zixly_current_tenant(), $1, $2, $3, $4, $5, $6::text::sync_status,
                         $7, $8, $9, $10, $11, $12, $13, $14, $15::timestamptz,
                         $15::timestamptz + $16::bigint * interval '1 millisecond', $16::bigint, $17)",
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
                ],
            )
            .await
            .ctx("recording the sync run")?;
        Ok(id)
    }

    /// The tenant's most recent runs, newest first.
    pub async fn recent_sync_runs(&self, limit: i64) -> DbResult<Vec<SyncRun>> {
        let rows = self
            .client()
            .query(
                "select id, source, dataset, file_name, status::text, rows_read, rows_inserted, rows_updated,
                        rows_unchanged, rows_rejected, error_count, errors, started_at, finished_at, duration_ms
                   from sync_runs where tenant_id = zixly_current_tenant()
                  order by started_at desc, id desc limit $1",
                &[&limit],
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
