//! Time-range reads of one client's series: `financials`, `lead_events`, `custom_metrics`.
//!
//! Ranges are business dates, inclusive at both ends (`from` ≤ date ≤ `to`, as the seed's
//! `BETWEEN`). For the timestamped series (lead events, metrics) a date means a day in the
//! tenant's time zone (`tenants.time_zone`), and buckets are cut there too: an event at
//! 2025-03-31T22:00Z belongs to 1 April in Sydney.
//!
//! Two shapes:
//! - raw rows, paged by a keyset cursor on the series' natural order (`(record_date,
//!   source_system)` for financials — its unique key —, `(instant, id)` for the others);
//! - aggregates per bucket (`date_trunc('day' | 'week' | 'month')`, weeks start on Monday), paged
//!   by date windows: a page covers at most `limit` buckets and the cursor is the first day of the
//!   next window. The first and last buckets are clipped to the range (a month bucket of a range
//!   starting on the 15th sums from the 15th). Money is summed per currency: amounts in different
//!   currencies are never added up here (the reports convert them).
//!
//! A client that does not exist (or belongs to another tenant — RLS makes the two look alike) is
//! `DbError::NotFound("client")`, so callers answer 404 rather than an empty series.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use zixly_domain::metrics::Aggregation;

use crate::error::{Ctx, DbError, DbResult};
use crate::numeric::{numeric, opt_numeric};
use crate::queries::clients::Page;
use crate::queries::metrics::{aggregation, DEFINED};
use crate::queries::rollups::split_months;
use crate::TenantTx;

pub use zixly_domain::period::{
    bucket_window, Bucket, BucketWindow, DateRange, InvalidRange, UnknownBucket,
};

// ---------------------------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinancialRow {
    pub id: Uuid,
    pub record_date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub net_profit: Decimal,
    pub cash_flow: Decimal,
    pub currency: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FinancialCursor {
    pub record_date: NaiveDate,
    pub source_system: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinancialBucket {
    pub bucket_start: NaiveDate,
    pub currency: String,
    /// Number of rows summed.
    pub rows: i64,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub net_profit: Decimal,
    pub cash_flow: Decimal,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LeadEventRow {
    pub id: Uuid,
    pub event_date: DateTime<Utc>,
    pub lead_id: String,
    pub stage: String,
    pub value: Option<Decimal>,
    pub currency: String,
    pub status: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Cursor of the timestamped series: `(instant, id)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstantCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LeadEventBucket {
    pub bucket_start: NaiveDate,
    pub stage: String,
    pub status: String,
    pub currency: String,
    pub events: i64,
    pub leads: i64,
    /// Sum of the events' values (events without a value count, but add nothing).
    pub value: Decimal,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricRow {
    pub id: Uuid,
    pub metric_name: String,
    pub metric_value: Decimal,
    pub unit: Option<String>,
    pub record_date: DateTime<Utc>,
    pub source_system: String,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricBucket {
    pub bucket_start: NaiveDate,
    pub metric_name: String,
    /// From the metric's definition (`metric_definitions`); a metric without one reads as a
    /// first sight would define it.
    pub display_name: String,
    /// The definition's unit, else the rows' (`min(unit)` of the bucket).
    pub unit: Option<String>,
    pub aggregation: Aggregation,
    /// The aggregate the definition names: one of `sum`/`avg`/`min`/`max`, or for `last` the
    /// value at the latest `record_date` of the bucket.
    pub value: Decimal,
    pub count: i64,
    pub sum: Decimal,
    /// Rounded to 4 places, the precision of `metric_value`.
    pub avg: Decimal,
    pub min: Decimal,
    pub max: Decimal,
}

/// What to read: the range (inclusive dates), and for raw reads a cursor and a page size.
#[derive(Debug, Clone)]
pub struct SeriesQuery<C> {
    pub range: DateRange,
    pub after: Option<C>,
    pub limit: u32,
}

fn page<T, C>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> C) -> Page<T, C> {
    let limit = limit.max(1) as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next }
}

/// The tenant's time zone, as a scalar subquery: the planner runs it once (an InitPlan) and can
/// then use the day bounds below as index conditions.
const TENANT_TZ: &str = "(select time_zone from tenants where id = $1)";

/// The local day bounds of a timestamped series, in SQL: `$2` from, `$3` to (inclusive), in the
/// time zone of tenant `$1`.
fn local_range(column: &str) -> String {
    format!(
        "{column} >= ($2::date::timestamp at time zone {TENANT_TZ})
         and {column} < (($3::date + 1)::timestamp at time zone {TENANT_TZ})"
    )
}

impl TenantTx {
    async fn not_found_unless_client(&self, client: Uuid, empty: bool) -> DbResult<()> {
        if empty && !self.client_exists(client).await? {
            return Err(DbError::NotFound("client"));
        }
        Ok(())
    }

    async fn query_cached(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> DbResult<Vec<tokio_postgres::Row>> {
        let stmt = self.client().prepare_cached(sql).await.ctx(context)?;
        self.client().query(&stmt, params).await.ctx(context)
    }

    /// A page of one client's financial rows in `q.range`, by (record_date, source_system).
    pub async fn financials(
        &self,
        client: Uuid,
        q: &SeriesQuery<FinancialCursor>,
    ) -> DbResult<Page<FinancialRow, FinancialCursor>> {
        let (after_date, after_source) = match &q.after {
            Some(c) => (Some(c.record_date), Some(c.source_system.as_str())),
            None => (None, None),
        };
        let rows = self
            .query_cached(
                "reading financials",
                "select id, record_date, revenue, expenses, net_profit, cash_flow, currency::text,
                        source_system, external_id, metadata
                   from financials
                  where tenant_id = $1 and client_kpi_id = $2
                    and record_date between $3 and $4
                    and ($5::date is null or (record_date, source_system) > ($5::date, $6::text))
                  order by record_date, source_system
                  limit $7",
                &[
                    &self.tenant_id(),
                    &client,
                    &q.range.from(),
                    &q.range.to(),
                    &after_date,
                    &after_source,
                    &(i64::from(q.limit.max(1)) + 1),
                ],
            )
            .await?;
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        let items = rows
            .iter()
            .map(|r| FinancialRow {
                id: r.get(0),
                record_date: r.get(1),
                revenue: numeric(r, 2),
                expenses: numeric(r, 3),
                net_profit: numeric(r, 4),
                cash_flow: numeric(r, 5),
                currency: r.get(6),
                source_system: r.get(7),
                external_id: r.get(8),
                metadata: r.get(9),
            })
            .collect();
        Ok(page(items, q.limit, |r: &FinancialRow| FinancialCursor {
            record_date: r.record_date,
            source_system: r.source_system.clone(),
        }))
    }

    /// One client's financials summed per bucket and currency over `window`.
    pub async fn financial_buckets(
        &self,
        client: Uuid,
        bucket: Bucket,
        window: &BucketWindow,
    ) -> DbResult<Vec<FinancialBucket>> {
        let rows = if bucket == Bucket::Month {
            // Whole months from the rollups, the days of partial months at the window's edges raw.
            let split = split_months(&[(window.from, window.to)]);
            self.query_cached(
                "aggregating financials",
                "select b, cur, sum(n)::bigint, sum(r), sum(e), sum(r) - sum(e), sum(c)
                   from (select m.month as b, m.currency::text as cur, m.row_count as n, m.revenue as r,
                                m.expenses as e, m.cash_flow as c
                           from financial_months m
                          where m.tenant_id = $1 and m.client_kpi_id = $2 and m.month = any($3::date[])
                         union all
                         select date_trunc('month', f.record_date::timestamp)::date, f.currency::text, 1,
                                f.revenue, f.expenses, f.cash_flow
                           from unnest($4::date[], $5::date[]) as w(a, b)
                          cross join lateral (
                                -- OFFSET 0 keeps this a per-edge scan of one partition (pruned at
                                -- run time); flattened, the planner joins the client's every row
                                -- to the edges instead. The window's bounds prune at plan time.
                                select f.record_date, f.currency, f.revenue, f.expenses, f.cash_flow
                                  from financials f
                                 where f.tenant_id = $1 and f.client_kpi_id = $2
                                   and f.record_date between w.a and w.b and f.record_date between $6 and $7
                                offset 0) f) x
                  group by 1, 2
                  order by 1, 2",
                &[
                    &self.tenant_id(),
                    &client,
                    &split.months,
                    &split.edges_from,
                    &split.edges_to,
                    &window.from,
                    &window.to,
                ],
            )
            .await?
        } else {
            self.query_cached(
                "aggregating financials",
                "select date_trunc($5::text, record_date::timestamp)::date as b, currency::text, count(*),
                        sum(revenue), sum(expenses), sum(net_profit), sum(cash_flow)
                   from financials
                  where tenant_id = $1 and client_kpi_id = $2 and record_date between $3 and $4
                  group by 1, 2
                  order by 1, 2",
                &[&self.tenant_id(), &client, &window.from, &window.to, &bucket.as_str()],
            )
            .await?
        };
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        Ok(rows
            .iter()
            .map(|r| FinancialBucket {
                bucket_start: r.get(0),
                currency: r.get(1),
                rows: r.get(2),
                revenue: numeric(r, 3),
                expenses: numeric(r, 4),
                net_profit: numeric(r, 5),
                cash_flow: numeric(r, 6),
            })
            .collect())
    }

    /// A page of one client's lead events whose instant falls on a day of `q.range` (tenant's time
    /// zone), by (event_date, id).
    pub async fn lead_events(
        &self,
        client: Uuid,
        q: &SeriesQuery<InstantCursor>,
    ) -> DbResult<Page<LeadEventRow, InstantCursor>> {
        let (after_at, after_id) = (
            q.after.as_ref().map(|c| c.at),
            q.after.as_ref().map(|c| c.id),
        );
        let sql = format!(
            "select id, event_date, lead_id, stage, value, currency::text, status::text,
                    source_system, external_id, metadata
               from lead_events
              where tenant_id = $1 and client_kpi_id = $4 and {}
                and ($5::timestamptz is null or (event_date, id) > ($5::timestamptz, $6::uuid))
              order by event_date, id
              limit $7",
            local_range("event_date")
        );
        let rows = self
            .query_cached(
                "reading lead events",
                &sql,
                &[
                    &self.tenant_id(),
                    &q.range.from(),
                    &q.range.to(),
                    &client,
                    &after_at,
                    &after_id,
                    &(i64::from(q.limit.max(1)) + 1),
                ],
            )
            .await?;
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        let items = rows
            .iter()
            .map(|r| LeadEventRow {
                id: r.get(0),
                event_date: r.get(1),
                lead_id: r.get(2),
                stage: r.get(3),
                value: opt_numeric(r, 4),
                currency: r.get(5),
                status: r.get(6),
                source_system: r.get(7),
                external_id: r.get(8),
                metadata: r.get(9),
            })
            .collect();
        Ok(page(items, q.limit, |r: &LeadEventRow| InstantCursor {
            at: r.event_date,
            id: r.id,
        }))
    }

    /// One client's lead events counted and summed per bucket, stage, status and currency.
    pub async fn lead_event_buckets(
        &self,
        client: Uuid,
        bucket: Bucket,
        window: &BucketWindow,
    ) -> DbResult<Vec<LeadEventBucket>> {
        let sql = format!(
            "select date_trunc($5::text, event_date at time zone {TENANT_TZ})::date as b, stage, status::text,
                    currency::text, count(*), count(distinct lead_id), coalesce(sum(value), 0)
               from lead_events
              where tenant_id = $1 and client_kpi_id = $4 and {}
              group by 1, 2, 3, 4
              order by 1, 2, 3, 4",
            local_range("event_date")
        );
        let rows = self
            .query_cached(
                "aggregating lead events",
                &sql,
                &[
                    &self.tenant_id(),
                    &window.from,
                    &window.to,
                    &client,
                    &bucket.as_str(),
                ],
            )
            .await?;
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        Ok(rows
            .iter()
            .map(|r| LeadEventBucket {
                bucket_start: r.get(0),
                stage: r.get(1),
                status: r.get(2),
                currency: r.get(3),
                events: r.get(4),
                leads: r.get(5),
                value: numeric(r, 6),
            })
            .collect())
    }

    /// A page of one client's metric values (all metrics, or the one named) on days of `q.range`,
    /// by (record_date, id).
    pub async fn custom_metrics(
        &self,
        client: Uuid,
        name: Option<&str>,
        q: &SeriesQuery<InstantCursor>,
    ) -> DbResult<Page<MetricRow, InstantCursor>> {
        let (after_at, after_id) = (
            q.after.as_ref().map(|c| c.at),
            q.after.as_ref().map(|c| c.id),
        );
        // Two statements rather than `($n is null or metric_name = $n)`: with the name, the plan is
        // a range scan of the natural key (tenant, client, metric_name, record_date).
        let sql = format!(
            "select id, metric_name, metric_value, unit, record_date, source_system, metadata
               from custom_metrics
              where tenant_id = $1 and client_kpi_id = $4 {} and {}
                and ($5::timestamptz is null or (record_date, id) > ($5::timestamptz, $6::uuid))
              order by record_date, id
              limit $7",
            if name.is_some() {
                "and metric_name = $8"
            } else {
                ""
            },
            local_range("record_date")
        );
        let limit = i64::from(q.limit.max(1)) + 1;
        let tenant = self.tenant_id();
        let (from, to) = (q.range.from(), q.range.to());
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&tenant, &from, &to, &client, &after_at, &after_id, &limit];
        if let Some(n) = &name {
            params.push(n);
        }
        let rows = self
            .query_cached("reading custom metrics", &sql, &params)
            .await?;
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        let items = rows
            .iter()
            .map(|r| MetricRow {
                id: r.get(0),
                metric_name: r.get(1),
                metric_value: numeric(r, 2),
                unit: r.get(3),
                record_date: r.get(4),
                source_system: r.get(5),
                metadata: r.get(6),
            })
            .collect();
        Ok(page(items, q.limit, |r: &MetricRow| InstantCursor {
            at: r.record_date,
            id: r.id,
        }))
    }

    /// One client's metric values aggregated per bucket and metric, and by the metric's definition.
    pub async fn custom_metric_buckets(
        &self,
        client: Uuid,
        name: Option<&str>,
        bucket: Bucket,
        window: &BucketWindow,
    ) -> DbResult<Vec<MetricBucket>> {
        let sql = format!(
            "with a as (
                 select date_trunc($5::text, record_date at time zone {TENANT_TZ})::date as b, metric_name,
                        min(unit) as unit, count(*) as n, sum(metric_value) as sum,
                        round(avg(metric_value), 4) as avg, min(metric_value) as min,
                        max(metric_value) as max,
                        (array_agg(metric_value order by record_date desc, id desc))[1] as last
                   from custom_metrics
                  where tenant_id = $1 and client_kpi_id = $4 {} and {}
                  group by 1, 2)
             select a.b, a.metric_name, {DEFINED}, a.n, a.sum, a.avg, a.min, a.max
               from a left join metric_definitions d on d.tenant_id = $1 and d.name = a.metric_name
              order by 1, 2",
            if name.is_some() { "and metric_name = $6" } else { "" },
            local_range("record_date")
        );
        let bucket_name = bucket.as_str();
        let tenant = self.tenant_id();
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&tenant, &window.from, &window.to, &client, &bucket_name];
        if let Some(n) = &name {
            params.push(n);
        }
        let rows = self
            .query_cached("aggregating custom metrics", &sql, &params)
            .await?;
        self.not_found_unless_client(client, rows.is_empty())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricBucket {
                    bucket_start: r.get(0),
                    metric_name: r.get(1),
                    display_name: r.get(2),
                    unit: r.get(3),
                    aggregation: aggregation(r, 4)?,
                    value: numeric(r, 5),
                    count: r.get(6),
                    sum: numeric(r, 7),
                    avg: numeric(r, 8),
                    min: numeric(r, 9),
                    max: numeric(r, 10),
                })
            })
            .collect()
    }
}
