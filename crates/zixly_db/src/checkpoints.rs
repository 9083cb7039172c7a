//! SQL of resumable syncs (migration 0011): the checkpoint of an integration's unfinished run and
//! the pause a provider budget imposes.
//!
//! Protocol (one run of an integration at a time, guaranteed by the job queue's unique key):
//! 1. [`TenantTx::begin_sync_attempt`] at the start of every attempt: returns the stored
//!    checkpoint (a resumed run) with `stalled_attempts` incremented, or none (a new run).
//! 2. For every page: the page's rows and [`TenantTx::save_sync_checkpoint`] in **one**
//!    transaction, so the checkpoint never runs ahead of (or behind) what is committed. Saving
//!    resets `stalled_attempts`: the attempt made progress, and opens the run's one `sync_runs`
//!    row on its first page (`queries::sync_runs::SyncRunRef`).
//! 3. When the run settles (its cursor committed with its last rows),
//!    [`TenantTx::clear_sync_checkpoint`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::queries::sync_runs::SyncRunRef;
use crate::TenantTx;

/// The progress of an unfinished run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncCheckpoint {
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The runner's own state: plan, stream, page or token, high-water mark.
    pub state: serde_json::Value,
    /// The stream being read (`invoices`, `deals`, …), for display.
    pub stream: Option<String>,
    pub pages_read: i64,
    pub items_read: i64,
    /// Items the provider says the run will read, when it says.
    pub items_total: Option<i64>,
    pub requests: i64,
    /// Attempts since the last committed page (including the current one).
    pub stalled_attempts: i32,
}

/// What the Integrations page, the API and `zixly sync --wait` show of an unfinished run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncProgress {
    pub stream: Option<String>,
    pub pages_read: i64,
    pub items_read: i64,
    pub items_total: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SyncProgress {
    /// "invoices: 3,700 of about 200,000 items read (37 pages)".
    pub fn describe(&self) -> String {
        let stream = self.stream.as_deref().unwrap_or("finishing");
        let pages = match self.pages_read {
            1 => "1 page".to_string(),
            n => format!("{} pages", thousands(n)),
        };
        match self.items_total {
            Some(t) if t >= self.items_read => format!(
                "{stream}: {} of about {} items read ({pages})",
                thousands(self.items_read),
                thousands(t)
            ),
            _ => format!(
                "{stream}: {} items read ({pages})",
                thousands(self.items_read)
            ),
        }
    }
}

impl From<&SyncCheckpoint> for SyncProgress {
    fn from(c: &SyncCheckpoint) -> SyncProgress {
        SyncProgress {
            stream: c.stream.clone(),
            pages_read: c.pages_read,
            items_read: c.items_read,
            items_total: c.items_total,
            started_at: c.started_at,
            updated_at: c.updated_at,
        }
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// What a runner writes with each committed page.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointUpdate<'a> {
    pub state: &'a serde_json::Value,
    pub stream: Option<&'a str>,
    pub pages_read: i64,
    pub items_read: i64,
    pub items_total: Option<i64>,
    pub requests: i64,
}

/// [`CheckpointUpdate`] owned, for a load that writes it in its transaction
/// (`loader::LoadOptions::checkpoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedCheckpoint {
    pub state: serde_json::Value,
    pub stream: Option<String>,
    pub pages_read: i64,
    pub items_read: i64,
    pub items_total: Option<i64>,
    pub requests: i64,
}

impl OwnedCheckpoint {
    pub fn as_update(&self) -> CheckpointUpdate<'_> {
        CheckpointUpdate {
            state: &self.state,
            stream: self.stream.as_deref(),
            pages_read: self.pages_read,
            items_read: self.items_read,
            items_total: self.items_total,
            requests: self.requests,
        }
    }
}

const COLUMNS: &str =
    "started_at, updated_at, state, stream, pages_read, items_read, items_total, \
                       requests, stalled_attempts";

fn from_row(r: &tokio_postgres::Row) -> SyncCheckpoint {
    SyncCheckpoint {
        started_at: r.get(0),
        updated_at: r.get(1),
        state: r.get(2),
        stream: r.get(3),
        pages_read: r.get(4),
        items_read: r.get(5),
        items_total: r.get(6),
        requests: r.get(7),
        stalled_attempts: r.get(8),
    }
}

impl TenantTx {
    /// The checkpoint of the integration's unfinished run, if any (read-only: for display).
    pub async fn sync_checkpoint(&self, integration_id: Uuid) -> DbResult<Option<SyncCheckpoint>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {COLUMNS} from sync_checkpoints where tenant_id = $1 and integration_id = $2"
                ),
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("reading a sync checkpoint")?;
        Ok(row.as_ref().map(from_row))
    }

    /// Starts an attempt: counts it against the stored checkpoint (a resumed run) and returns it,
    /// or returns `None` for a new run. Also clears a pause whose time has come.
    pub async fn begin_sync_attempt(
        &self,
        integration_id: Uuid,
    ) -> DbResult<Option<SyncCheckpoint>> {
        self.client()
            .execute(
                "update integrations set paused_until = null, pause_reason = null
                  where tenant_id = $1 and id = $2 and paused_until is not null",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("clearing an integration's pause")?;
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update sync_checkpoints set stalled_attempts = stalled_attempts + 1
                      where tenant_id = $1 and integration_id = $2 returning {COLUMNS}"
                ),
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("starting a sync attempt")?;
        Ok(row.as_ref().map(from_row))
    }

    /// Writes the checkpoint after a page (in the page's transaction): the attempt made progress.
    /// Opens the run's one `sync_runs` row in the same transaction when it is the run's first
    /// page ([`SyncRunRef`]), so a checkpoint never exists without its run's row.
    pub async fn save_sync_checkpoint(
        &self,
        run: &SyncRunRef,
        update: &CheckpointUpdate<'_>,
    ) -> DbResult<()> {
        let integration_id = run.integration_id;
        self.open_sync_run_row(run).await?;
        self.client()
            .execute(
                "insert into sync_checkpoints (tenant_id, integration_id, state, stream, pages_read,
                                               items_read, items_total, requests, stalled_attempts)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, 0)
                 on conflict (tenant_id, integration_id) do update
                    set state = excluded.state, stream = excluded.stream,
                        pages_read = excluded.pages_read, items_read = excluded.items_read,
                        items_total = excluded.items_total, requests = excluded.requests,
                        stalled_attempts = 0",
                &[
                    &self.tenant_id(),
                    &integration_id,
                    update.state,
                    &update.stream,
                    &update.pages_read,
                    &update.items_read,
                    &update.items_total,
                    &update.requests,
                ],
            )
            .await
            .ctx("saving a sync checkpoint")?;
        Ok(())
    }

    /// An admin asked for a sync: the unfinished run's attempts without progress count from 0.
    pub async fn reset_sync_stall(&self, integration_id: Uuid) -> DbResult<()> {
        self.client()
            .execute(
                "update sync_checkpoints set stalled_attempts = 0
                  where tenant_id = $1 and integration_id = $2 and stalled_attempts <> 0",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("resetting a sync's stalled attempts")?;
        Ok(())
    }

    /// The run settled: its checkpoint goes.
    pub async fn clear_sync_checkpoint(&self, integration_id: Uuid) -> DbResult<()> {
        self.client()
            .execute(
                "delete from sync_checkpoints where tenant_id = $1 and integration_id = $2",
                &[&self.tenant_id(), &integration_id],
            )
            .await
            .ctx("clearing a sync checkpoint")?;
        Ok(())
    }

    /// A provider budget stops the run until `until`; the checkpoint stays for the resume.
    pub async fn pause_integration(
        &self,
        integration_id: Uuid,
        until: DateTime<Utc>,
        reason: &str,
    ) -> DbResult<()> {
        self.client()
            .execute(
                "update integrations set paused_until = $3, pause_reason = $4
                  where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &integration_id, &until, &reason],
            )
            .await
            .ctx("pausing an integration")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_sentence() {
        let at = Utc::now();
        let mut p = SyncProgress {
            stream: Some("invoices".into()),
            pages_read: 37,
            items_read: 3700,
            items_total: Some(200_000),
            started_at: at,
            updated_at: at,
        };
        assert_eq!(
            p.describe(),
            "invoices: 3,700 of about 200,000 items read (37 pages)"
        );
        p.items_total = None;
        p.pages_read = 1;
        p.items_read = 999;
        assert_eq!(p.describe(), "invoices: 999 items read (1 page)");
        p.stream = None;
        assert_eq!(p.describe(), "finishing: 999 items read (1 page)");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(0), "0");
    }
}
