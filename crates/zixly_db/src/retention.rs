//! Retention of raw daily financials (migrations/0022_retention.sql; issue 14, item 3).
//!
//! A tenant keeps its raw `financials` rows for `raw_retention_months` whole calendar months
//! before the current one (in its time zone; `None`, the default, keeps them forever). The
//! worker's scheduled job ([`SystemDb::apply_retention`]) deletes the older rows in bounded
//! batches, each batch a transaction of its own, so a tenant with ten years of history never
//! holds one long transaction (nor the tenant's rollup lock, which its loads wait for). The
//! deletion runs with `zixly.keep_rollups` on, which only the owner role may use: the monthly
//! rollups (`financial_months`) keep what the rows summed, while the tenant's day rollups go with
//! the rows. Before the cutoff a tenant's figures are whole months; pages and API say from which
//! day they are per day ([`Retention::raw_data_from`]), and the loader keeps rows dated before
//! it out of the database (counted in its report), so a re-sync cannot count a month twice.
//!
//! Once every tenant has a retention period, the monthly partitions wholly before the earliest
//! cutoff hold no rows any more; [`SystemDb::drop_retained_partitions`] drops them (each checked
//! empty under an exclusive lock, so a concurrent write cannot lose a row).

use chrono::NaiveDate;
use serde_json::json;
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::queries::audit::AuditEntry;
use crate::{SystemDb, TenantTx};

/// Largest retention period accepted: a hundred years (the column's check agrees).
pub const MAX_RETENTION_MONTHS: i32 = 1200;

/// A tenant's retention setting and what it means today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Whole months of raw rows kept before the current month; `None` keeps them forever.
    pub months: Option<i32>,
    /// The first day whose raw rows are kept (`None`: every day's).
    pub raw_data_from: Option<NaiveDate>,
}

/// What one run of retention did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRun {
    pub tenant_id: Uuid,
    pub raw_data_from: NaiveDate,
    pub deleted: u64,
    pub batches: u32,
}

fn retention_of(row: &tokio_postgres::Row) -> Retention {
    Retention {
        months: row.get(0),
        raw_data_from: row.get(1),
    }
}

impl TenantTx {
    /// The current tenant's retention setting.
    pub async fn retention(&self) -> DbResult<Retention> {
        let row = self
            .client()
            .query_opt(
                "select raw_retention_months, zixly_raw_data_from(raw_retention_months, time_zone)
                   from tenants where id = $1",
                &[&self.tenant_id()],
            )
            .await
            .ctx("reading the retention setting")?
            .ok_or(DbError::NotFound("tenant"))?;
        Ok(retention_of(&row))
    }

    /// Sets the current tenant's retention (`None`: forever). The deletion itself is the
    /// scheduled job's; shortening the period deletes nothing here. Months are checked by the
    /// caller (1 to [`MAX_RETENTION_MONTHS`]) and again by the column's constraint.
    pub async fn set_retention(&self, months: Option<i32>) -> DbResult<Retention> {
        let row = self
            .client()
            .query_opt(
                "update tenants set raw_retention_months = $2 where id = $1
                 returning raw_retention_months, zixly_raw_data_from(raw_retention_months, time_zone)",
                &[&self.tenant_id(), &months],
            )
            .await
            .ctx("setting the retention period")?
            .ok_or(DbError::NotFound("tenant"))?;
        Ok(retention_of(&row))
    }
}

impl SystemDb {
    /// Deletes, for every tenant with a retention period, its raw financials before its cutoff,
    /// `batch_rows` at a time, each batch in its own transaction with the rollups kept; appends
    /// one audit row per tenant that lost rows (in the transaction of its last batch). Returns
    /// what it did per tenant with a retention period.
    pub async fn apply_retention(&self, batch_rows: i64) -> DbResult<Vec<RetentionRun>> {
        self.apply_retention_with(batch_rows, |_| {}).await
    }

    /// [`SystemDb::apply_retention`], telling `progress` after every committed batch what the
    /// tenant's run has done so far (`zixly db retention` shows it).
    pub async fn apply_retention_with(
        &self,
        batch_rows: i64,
        mut progress: impl FnMut(&RetentionRun),
    ) -> DbResult<Vec<RetentionRun>> {
        let batch_rows = batch_rows.max(1);
        let tenants: Vec<(Uuid, i32, NaiveDate)> = self
            .pool()
            .get()
            .await?
            .query(
                "/* cross-tenant */ select id, raw_retention_months,
                        zixly_raw_data_from(raw_retention_months, time_zone)
                   from tenants where raw_retention_months is not null order by id",
                &[],
            )
            .await
            .ctx("listing the tenants with a retention period")?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let mut runs = Vec::with_capacity(tenants.len());
        for (tenant, months, cutoff) in tenants {
            let mut run = RetentionRun {
                tenant_id: tenant,
                raw_data_from: cutoff,
                deleted: 0,
                batches: 0,
            };
            loop {
                let tx = TenantTx::begin(self.pool().get().await?, tenant).await?;
                // Transaction-local: the next user of the connection keeps its rollups.
                tx.client()
                    .batch_execute("set local zixly.keep_rollups = 'on'")
                    .await
                    .ctx("keeping the rollups")?;
                let deleted = tx
                    .client()
                    .execute(
                        "with doomed as (select tenant_id, id, record_date from financials
                                          where tenant_id = $1 and record_date < $2
                                          limit $3)
                         delete from financials f using doomed d
                          where f.tenant_id = $1 and f.record_date < $2
                            and (f.tenant_id, f.id, f.record_date) = (d.tenant_id, d.id, d.record_date)",
                        &[&tenant, &cutoff, &batch_rows],
                    )
                    .await
                    .ctx("deleting raw financials under retention")?;
                run.deleted += deleted;
                run.batches += 1;
                let last = (deleted as i64) < batch_rows;
                if last && run.deleted > 0 {
                    tx.append_audit(&AuditEntry {
                        actor_user_id: None,
                        actor_label: "system:retention".into(),
                        action: "tenant.retention_applied".into(),
                        entity_type: "tenant".into(),
                        entity_id: Some(tenant.to_string()),
                        summary: json!({
                            "raw_retention_months": months,
                            "deleted_before": cutoff,
                            "deleted_rows": run.deleted,
                            "batches": run.batches,
                        }),
                        request_id: None,
                        client_addr: None,
                    })
                    .await?;
                }
                tx.commit().await?;
                progress(&run);
                if last {
                    break;
                }
            }
            runs.push(run);
        }
        Ok(runs)
    }

    /// Drops the monthly partitions of `financials` that no tenant needs any more: only when
    /// every tenant has a retention period, those wholly before the earliest cutoff, and only
    /// when empty (checked under an exclusive lock). Returns the dropped partitions' names.
    pub async fn drop_retained_partitions(&self) -> DbResult<Vec<String>> {
        let mut client = self.pool().get().await?;
        let horizon: Option<NaiveDate> = client
            .query_one(
                "/* cross-tenant */ select case when count(*) > 0 and bool_and(raw_retention_months is not null)
                        then min(zixly_raw_data_from(raw_retention_months, time_zone)) end
                   from tenants",
                &[],
            )
            .await
            .ctx("finding the retention horizon")?
            .get(0);
        let Some(horizon) = horizon else {
            return Ok(Vec::new());
        };
        // Monthly partitions are named `financials_pYYYY_MM` (migrations/0014).
        let candidates: Vec<String> = client
            .query(
                "select c.relname::text from pg_inherits i
                   join pg_class c on c.oid = i.inhrelid
                   join pg_class p on p.oid = i.inhparent
                  where p.relname = 'financials' and c.relname ~ '^financials_p[0-9]{4}_[0-9]{2}$'
                    and (to_date(substr(c.relname, 13), 'YYYY_MM') + interval '1 month')::date <= $1
                  order by 1",
                &[&horizon],
            )
            .await
            .ctx("listing the partitions before the retention horizon")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut dropped = Vec::new();
        for part in candidates {
            let tx = client
                .transaction()
                .await
                .ctx("dropping a retained partition")?;
            // Dropping a partition locks its parent too: the parent first, as every query does,
            // so no reader deadlocks with it, and not for long: a busy table is left for the next
            // run. The name matched the pattern above: letters, digits and underscores only.
            tx.batch_execute(&format!(
                "set local lock_timeout = '5s'; lock table financials, {part} in access exclusive mode"
            ))
            .await
            .ctx("locking a retained partition")?;
            let empty = !tx
                .query_one(&format!("select exists (select 1 from {part})"), &[])
                .await
                .ctx("checking a retained partition is empty")?
                .get::<_, bool>(0);
            if empty {
                tx.batch_execute(&format!("drop table {part}"))
                    .await
                    .ctx("dropping a retained partition")?;
                dropped.push(part);
            }
            tx.commit().await.ctx("dropping a retained partition")?;
        }
        Ok(dropped)
    }
}
