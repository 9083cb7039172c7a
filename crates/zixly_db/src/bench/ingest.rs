//! Baselines for `zixly bench ingest`: raw binary COPY and the row-by-row loop the loader is
//! measured against (the SQL lives here, the driver in the binary's `cmd/bench.rs`).

use std::collections::HashMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::{AppDb, SystemDb};

/// One synthetic financial row, already typed (no parsing).
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub client_id: String,
    pub client_name: String,
    pub record_date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
}

/// Where the raw COPY baseline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyTarget {
    /// A regular (logged) table created `like financials including all`: the same columns,
    /// defaults, constraints and indexes, but no partitions, no foreign key and no rollup trigger
    /// (the baseline of issue 3, kept so that earlier figures stay comparable).
    PlainTable,
    /// `financials` itself, for a tenant of its own: partition routing, the foreign key to
    /// `client_kpis` and the statement-level rollup trigger all run, as they do for the import.
    /// This is issue 14's "raw COPY into the same table".
    Financials,
}

/// (a) Raw `COPY ... (FORMAT binary)` of typed rows, through the owner role, into `target`. The
/// clients must exist already in `tenant` (their ids are looked up first, outside the timing); the
/// plain table is dropped afterwards, rows copied into `financials` go with the tenant. Returns the
/// time of the COPY alone (with `Financials`, including the rollup trigger it fires).
pub async fn bench_raw_copy(
    system: &SystemDb,
    tenant: Uuid,
    target: CopyTarget,
    rows: impl Iterator<Item = BenchRow>,
) -> DbResult<Duration> {
    let client = system.pool().get().await?;
    let ids: HashMap<String, Uuid> = client
        .query(
            "select client_id, id from client_kpis where tenant_id = $1",
            &[&tenant],
        )
        .await
        .ctx("reading client ids")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let table = match target {
        CopyTarget::PlainTable => {
            client
                .batch_execute(
                    "set client_min_messages = warning;
                     drop table if exists zixly_bench_copy;
                     create table zixly_bench_copy (like financials including all);",
                )
                .await
                .ctx("creating the COPY baseline table")?;
            "zixly_bench_copy"
        }
        CopyTarget::Financials => "financials",
    };
    let started = Instant::now();
    let result = async {
        let sink = client
            .copy_in(&format!(
                "copy {table} (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow,
                               currency, source_system) from stdin (format binary)"
            ))
            .await
            .ctx("starting COPY")?;
        let types = [
            Type::UUID,
            Type::UUID,
            Type::DATE,
            Type::NUMERIC,
            Type::NUMERIC,
            Type::NUMERIC,
            Type::NUMERIC,
            Type::BPCHAR,
            Type::TEXT,
        ];
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        for row in rows {
            let id = ids.get(&row.client_id).ok_or(DbError::NotFound("bench client"))?;
            let net = row.revenue - row.expenses;
            let values: [&(dyn ToSql + Sync); 9] =
                [&tenant, id, &row.record_date, &row.revenue, &row.expenses, &net, &row.cash_flow, &"AUD", &"csv"];
            writer.as_mut().write(&values).await.ctx("COPY")?;
        }
        writer.finish().await.ctx("finishing COPY")?;
        Ok::<_, DbError>(())
    }
    .await;
    let elapsed = started.elapsed();
    if target == CopyTarget::PlainTable {
        client
            .batch_execute("drop table if exists zixly_bench_copy")
            .await
            .ctx("dropping the COPY baseline table")?;
    }
    result.map(|()| elapsed)
}

/// Creates the given bench clients (`(client_id, client_name)`) in `tenant`, as the owner, in one
/// statement: setup for the COPY-into-`financials` baseline, not timed.
pub async fn bench_create_clients(
    system: &SystemDb,
    tenant: Uuid,
    clients: &[(String, String)],
) -> DbResult<()> {
    let (ids, names): (Vec<&str>, Vec<&str>) = clients
        .iter()
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .unzip();
    let client = system.pool().get().await?;
    client
        .execute(
            "insert into client_kpis (tenant_id, client_id, client_name)
             select $1, id, name from unnest($2::text[], $3::text[]) as c (id, name)",
            &[&tenant, &ids, &names],
        )
        .await
        .ctx("creating the bench clients")?;
    Ok(())
}

/// (d) The ORM / low-code baseline: per row, "find or create the client" then
/// `INSERT ... ON CONFLICT DO UPDATE` of the financial row, each a round trip with a prepared
/// statement. With `one_transaction` false every row is its own tenant transaction (autocommit,
/// what an ORM or an n8n Postgres node does by default); with true all rows share one transaction
/// (the kindest variant of the loop).
pub async fn bench_row_by_row(
    app: &AppDb,
    tenant: Uuid,
    rows: &[BenchRow],
    one_transaction: bool,
) -> DbResult<Duration> {
    const CLIENT: &str = "insert into client_kpis (tenant_id, client_id, client_name) values ($1, $2, $3)
                          on conflict (tenant_id, client_id) do update set client_name = excluded.client_name
                          returning id";
    const ROW: &str = "insert into financials as f (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit,
                                                    cash_flow, currency, source_system)
                       values ($1, $2, $3, $4, $5, $6, $7, 'AUD', 'csv')
                       on conflict (tenant_id, client_kpi_id, record_date, source_system) do update
                          set revenue = excluded.revenue, expenses = excluded.expenses, net_profit = excluded.net_profit,
                              cash_flow = excluded.cash_flow";
    let started = Instant::now();
    let mut tx = Some(app.begin_tenant(tenant).await?);
    for row in rows {
        let current = match tx.take() {
            Some(t) => t,
            None => app.begin_tenant(tenant).await?,
        };
        let client = current.client();
        // Prepared once per connection and cached by the pool's statement cache.
        let upsert_client = client.prepare_cached(CLIENT).await.ctx("preparing")?;
        let upsert_row = client.prepare_cached(ROW).await.ctx("preparing")?;
        let id: Uuid = client
            .query_one(&upsert_client, &[&tenant, &row.client_id, &row.client_name])
            .await
            .ctx("row-by-row client upsert")?
            .get(0);
        let net = row.revenue - row.expenses;
        client
            .execute(
                &upsert_row,
                &[
                    &tenant,
                    &id,
                    &row.record_date,
                    &row.revenue,
                    &row.expenses,
                    &net,
                    &row.cash_flow,
                ],
            )
            .await
            .ctx("row-by-row insert")?;
        if one_transaction {
            tx = Some(current);
        } else {
            current.commit().await?;
        }
    }
    if let Some(t) = tx {
        t.commit().await?;
    }
    Ok(started.elapsed())
}
