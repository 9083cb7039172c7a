//! The cross-tenant path. **Everything here ignores tenant isolation on purpose.**
//!
//! `SystemDb` connects as the schema owner (`zixly_owner`, BYPASSRLS) or a superuser. It exists for
//! work that is about tenants rather than inside one: creating, listing and deleting tenants,
//! importing global reference data, and (later) the scheduler claiming jobs of every tenant.
//! The web crate's request state never holds a `SystemDb`; handlers get only an [`crate::AppDb`].

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;
use zixly_domain::CurrencyCode;

use crate::connect::build_pool;
use crate::error::{Ctx, DbResult};

#[derive(Clone)]
pub struct SystemDb {
    pool: Pool,
    /// Kept for the job queue's LISTEN connection (a dedicated, unpooled connection). Holds a
    /// password: never printed.
    url: std::sync::Arc<str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
    pub base_currency: String,
    pub time_zone: String,
    pub users: i64,
    pub clients: i64,
    pub created_at: DateTime<Utc>,
}

impl SystemDb {
    pub fn connect(url: &str, max_size: usize) -> DbResult<Self> {
        Ok(SystemDb {
            pool: build_pool(url, max_size, "zixly-system")?,
            url: url.into(),
        })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Closes the pool (see [`crate::AppDb::close`]).
    pub fn close(&self) {
        self.pool.close();
    }

    pub async fn create_tenant(
        &self,
        name: &str,
        base_currency: CurrencyCode,
        time_zone: &str,
    ) -> DbResult<Uuid> {
        let client = self.pool.get().await?;
        let id = Uuid::now_v7();
        client
            .execute(
                "insert into tenants (id, name, base_currency, time_zone) values ($1, $2, $3, $4)",
                &[&id, &name.trim(), &base_currency.as_str(), &time_zone],
            )
            .await
            .ctx("creating tenant")?;
        Ok(id)
    }

    pub async fn list_tenants(&self) -> DbResult<Vec<TenantSummary>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "select /* cross-tenant */ t.id, t.name, t.base_currency::text, t.time_zone, t.created_at,
                        (select count(*) from users u where u.tenant_id = t.id),
                        (select count(*) from client_kpis c where c.tenant_id = t.id)
                   from tenants t order by t.created_at, t.id",
                &[],
            )
            .await
            .ctx("listing tenants")?;
        Ok(rows
            .iter()
            .map(|r| TenantSummary {
                id: r.get(0),
                name: r.get(1),
                base_currency: r.get(2),
                time_zone: r.get(3),
                created_at: r.get(4),
                users: r.get(5),
                clients: r.get(6),
            })
            .collect())
    }

    pub async fn tenant_exists(&self, id: Uuid) -> DbResult<bool> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt("select 1 from tenants where id = $1", &[&id])
            .await
            .ctx("looking up tenant")?
            .is_some())
    }

    /// Deletes a tenant and, by cascade, everything it owns. Returns false when no such tenant.
    pub async fn delete_tenant(&self, id: Uuid) -> DbResult<bool> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await.ctx("deleting tenant")?;
        let n = tx
            .execute("delete from tenants where id = $1", &[&id])
            .await
            .ctx("deleting tenant")?;
        // Months kept after retention deleted their raw rows (migrations/0022) have no raw rows
        // for the cascade's triggers to subtract; they go with the tenant.
        tx.execute("delete from financial_months where tenant_id = $1", &[&id])
            .await
            .ctx("deleting the tenant's retained months")?;
        tx.commit().await.ctx("deleting tenant")?;
        Ok(n == 1)
    }

    /// Creates the monthly partitions of the time series for the current month (UTC) and the
    /// `ahead` following ones that do not exist yet (migrations/0014_partitions.sql), so that the
    /// first load of a new month finds its partition. Returns how many were created. Idempotent;
    /// safe to run from several workers at once.
    pub async fn create_partitions_ahead(&self, ahead: i32) -> DbResult<i32> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("select zixly_create_partitions_ahead($1)", &[&ahead])
            .await
            .ctx("creating the coming months' partitions")?
            .get(0))
    }

    /// The size on disk of the current database (tables, indexes, TOAST; not the WAL), in bytes:
    /// what `zixly bench api` reports per dataset shape.
    pub async fn database_size_bytes(&self) -> DbResult<i64> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("select pg_database_size(current_database())", &[])
            .await
            .ctx("reading the database size")?
            .get(0))
    }

    /// Creates the monthly partitions of every time-series table for the months of `[from, to]`
    /// that have none yet; returns how many were created. For writers that insert outside the
    /// loader (the synthetic bench data): without it their rows would land in the default
    /// partition, which every read then scans whole.
    pub async fn create_month_partitions(&self, from: NaiveDate, to: NaiveDate) -> DbResult<i32> {
        let mut months = Vec::new();
        let mut m = from.with_day(1).unwrap_or(from);
        while m <= to {
            months.push(m);
            m = m
                .checked_add_months(Months::new(1))
                .unwrap_or(NaiveDate::MAX);
        }
        let client = self.pool.get().await?;
        let mut created = 0;
        for table in ["financials", "lead_events", "custom_metrics"] {
            created += create_months(&client, table, &months).await?;
        }
        Ok(created)
    }

    /// Gives every month found in a default partition its own partition, which moves those rows
    /// out of the default (migrations/0014_partitions.sql); returns how many months it created.
    /// Normally the defaults are empty and this is three index-less scans of empty tables. Rows
    /// get there only by an INSERT outside the loader, and there every read scans them whole
    /// (run-time pruning cannot exclude a default partition), so the scheduler repairs it.
    pub async fn drain_default_partitions(&self) -> DbResult<i32> {
        let client = self.pool.get().await?;
        let mut created = 0;
        for (table, column) in [
            ("financials", "record_date"),
            ("lead_events", "event_date"),
            ("custom_metrics", "record_date"),
        ] {
            // timestamptz columns are partitioned by UTC months.
            let month = if table == "financials" {
                format!("date_trunc('month', {column})::date")
            } else {
                format!("date_trunc('month', {column} at time zone 'UTC')::date")
            };
            let months: Vec<NaiveDate> = client
                .query_one(
                    &format!(
                        "/* cross-tenant */ select coalesce(array_agg(distinct {month}), '{{}}') \
                         from {table}_default"
                    ),
                    &[],
                )
                .await
                .ctx("reading the months in a default partition")?
                .get(0);
            if months.is_empty() {
                continue;
            }
            created += create_months(&client, table, &months).await?;
        }
        Ok(created)
    }
}

/// Creates the partitions of `months` of `table` that do not exist yet (idempotent and race-safe:
/// migrations/0014_partitions.sql); returns how many it created.
async fn create_months(
    client: &deadpool_postgres::Object,
    table: &str,
    months: &[NaiveDate],
) -> DbResult<i32> {
    Ok(client
        .query_one(
            "select zixly_create_month_partitions($1, $2)",
            &[&table, &months],
        )
        .await
        .ctx("creating monthly partitions")?
        .get(0))
}
