//! Reads the web dashboard needs beyond the per-client series: tenant-wide totals per day, the
//! pipeline summary and per-client summaries, all in the tenant's base currency.
//!
//! Money is converted to `tenants.base_currency` row by row with the ECB-layout reference rates
//! (`fx_rates`, base EUR): the rate of the latest day on or before the row's date. A row whose
//! currency has no rate yet is left out of the sums and counted in `unconverted`, so a page can say
//! so instead of showing a silently wrong total. Rows already in the base currency (the normal
//! case: ingestion normalises) cost no lookup at all (`case` evaluates its branches lazily).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::TenantTx;

/// The tenant as the pages show it.
#[derive(Debug, Clone)]
pub struct TenantProfile {
    pub name: String,
    pub base_currency: String,
    pub time_zone: String,
}

/// Tenant-wide financials of one day, in the base currency.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyTotals {
    pub date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub net_profit: Decimal,
    pub cash_flow: Decimal,
}

/// Open pipeline as of a day, and leads closed within a range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineSummary {
    /// Sum of the latest value of every lead whose latest status is `active`.
    pub open_value: Decimal,
    pub open_leads: i64,
    /// Leads whose latest status is `won` / `lost`, closed inside the range.
    pub won: i64,
    pub lost: i64,
    /// Open leads whose value could not be converted (no rate).
    pub unconverted: i64,
}

impl PipelineSummary {
    /// Won / (won + lost), `None` when nothing closed.
    pub fn win_rate(&self) -> Option<f64> {
        let closed = self.won + self.lost;
        (closed > 0).then(|| self.won as f64 / closed as f64)
    }
}

/// A client with its totals over a range and monthly revenue for a sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSummary {
    pub id: Uuid,
    pub client_id: String,
    pub client_name: String,
    pub industry: Option<String>,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub net_profit: Decimal,
    /// (first day of month, revenue) for every month of the range that has data.
    pub monthly_revenue: Vec<(NaiveDate, Decimal)>,
}

/// `%` and `_` (and the escape character) in a search are literal.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `amount` converted from `currency` to `z.base` on `day` (NULL when no rate is known).
fn fx(amount: &str, currency: &str, day: &str) -> String {
    let rate = |cur: &str| {
        format!(
            "(case when {cur} = 'EUR' then 1::numeric else
                (select r.rate from fx_rates r where r.base_currency = 'EUR' and r.quote_currency = {cur}
                    and r.rate_date <= {day} order by r.rate_date desc limit 1) end)"
        )
    };
    format!(
        "(case when {currency} = z.base then {amount} else round({amount} * {} / {}, 2) end)",
        rate("z.base"),
        rate(currency)
    )
}

impl TenantTx {
    /// Name, base currency and time zone of the current tenant.
    pub async fn tenant_profile(&self) -> DbResult<TenantProfile> {
        let stmt = self
            .client()
            .prepare_cached(
                "select name, base_currency::text, time_zone from tenants where id = $1",
            )
            .await
            .ctx("reading the tenant")?;
        let row = self
            .client()
            .query_opt(&stmt, &[&self.tenant_id()])
            .await
            .ctx("reading the tenant")?;
        let row = row.ok_or(DbError::NotFound("tenant"))?;
        Ok(TenantProfile {
            name: row.get(0),
            base_currency: row.get(1),
            time_zone: row.get(2),
        })
    }

    /// Tenant-wide (or one client's, with `client`) financials per day in `[from, to]`, converted to
    /// the base currency, and the number of rows left out for want of a rate.
    pub async fn daily_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        client: Option<Uuid>,
    ) -> DbResult<(Vec<DailyTotals>, i64)> {
        let sql = format!(
            "with z as (select base_currency::text as base from tenants where id = $1),
                  g as (select record_date as d, currency::text as cur, sum(revenue) as r, sum(expenses) as e,
                               sum(cash_flow) as c, count(*) as n
                          from financials
                         where tenant_id = $1 and record_date between $2 and $3
                           and ($4::uuid is null or client_kpi_id = $4)
                         group by 1, 2),
                  v as (select g.d, g.n, {r} as r, {e} as e, {c} as c from g, z)
             select d, coalesce(sum(r), 0), coalesce(sum(e), 0), coalesce(sum(c), 0),
                    coalesce(sum(n) filter (where r is null or e is null or c is null), 0)::bigint
               from v group by d order by d",
            r = fx("g.r", "g.cur", "g.d"),
            e = fx("g.e", "g.cur", "g.d"),
            c = fx("g.c", "g.cur", "g.d"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summing financials per day")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &from, &to, &client])
            .await
            .ctx("summing financials per day")?;
        let mut unconverted = 0;
        let days = rows
            .iter()
            .map(|r| {
                unconverted += r.get::<_, i64>(4);
                let (revenue, expenses): (Decimal, Decimal) = (r.get(1), r.get(2));
                DailyTotals {
                    date: r.get(0),
                    revenue,
                    expenses,
                    net_profit: revenue - expenses,
                    cash_flow: r.get(3),
                }
            })
            .collect();
        Ok((days, unconverted))
    }

    /// Open pipeline as of the end of `to` and leads closed in `[from, to]` (days in the tenant's
    /// time zone), tenant-wide or for one client.
    pub async fn pipeline_summary(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        client: Option<Uuid>,
    ) -> DbResult<PipelineSummary> {
        let sql = format!(
            "with z as (select base_currency::text as base, time_zone as tz from tenants where id = $1),
                  latest as (
                      select distinct on (e.client_kpi_id, e.lead_id)
                             e.status::text as status, e.value, e.currency::text as cur, e.event_date
                        from lead_events e, z
                       where e.tenant_id = $1 and ($4::uuid is null or e.client_kpi_id = $4)
                         and e.event_date < (($3::date + 1)::timestamp at time zone z.tz)
                       order by e.client_kpi_id, e.lead_id, e.event_date desc, e.id desc),
                  v as (select l.*, {conv} as conv,
                               l.event_date >= ($2::date::timestamp at time zone z.tz) as in_range
                          from latest l, z)
             select coalesce(sum(conv) filter (where status = 'active'), 0),
                    count(*) filter (where status = 'active'),
                    count(*) filter (where status = 'won' and in_range),
                    count(*) filter (where status = 'lost' and in_range),
                    count(*) filter (where status = 'active' and value is not null and conv is null)
               from v",
            conv = fx("l.value", "l.cur", "(l.event_date at time zone z.tz)::date"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summarising the pipeline")?;
        let row = self
            .client()
            .query_one(&stmt, &[&self.tenant_id(), &from, &to, &client])
            .await
            .ctx("summarising the pipeline")?;
        Ok(PipelineSummary {
            open_value: row.get(0),
            open_leads: row.get(1),
            won: row.get(2),
            lost: row.get(3),
            unconverted: row.get(4),
        })
    }

    /// Every client (optionally only those whose name contains `search`) with revenue, expenses and
    /// profit over `[from, to]` and monthly revenue, in the base currency; ordered by name.
    pub async fn client_summaries(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        search: Option<&str>,
    ) -> DbResult<Vec<ClientSummary>> {
        let pattern = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(like_pattern);
        let sql = format!(
            "with z as (select base_currency::text as base from tenants where id = $1),
                  c as (select id, client_id, client_name, industry from client_kpis
                         where tenant_id = $1 and ($4::text is null or client_name ilike $4)),
                  g as (select f.client_kpi_id as cid, date_trunc('month', f.record_date)::date as m,
                               f.record_date as d, f.currency::text as cur,
                               sum(f.revenue) as r, sum(f.expenses) as e
                          from financials f join c on c.id = f.client_kpi_id
                         where f.tenant_id = $1 and f.record_date between $2 and $3
                         group by 1, 3, 4),
                  v as (select g.cid, g.m, {r} as r, {e} as e from g, z),
                  mo as (select cid, m, coalesce(sum(r), 0) as r, coalesce(sum(e), 0) as e from v group by 1, 2)
             select c.id, c.client_id, c.client_name, c.industry,
                    coalesce(array_agg(mo.m order by mo.m) filter (where mo.m is not null), '{{}}'),
                    coalesce(array_agg(mo.r order by mo.m) filter (where mo.m is not null), '{{}}'),
                    coalesce(sum(mo.e), 0)
               from c left join mo on mo.cid = c.id
              group by c.id, c.client_id, c.client_name, c.industry
              order by lower(c.client_name), c.id",
            r = fx("g.r", "g.cur", "g.d"),
            e = fx("g.e", "g.cur", "g.d"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summarising clients")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &from, &to, &pattern])
            .await
            .ctx("summarising clients")?;
        Ok(rows
            .iter()
            .map(|r| {
                let months: Vec<NaiveDate> = r.get(4);
                let revenues: Vec<Decimal> = r.get(5);
                let revenue: Decimal = revenues.iter().copied().sum();
                let expenses: Decimal = r.get(6);
                ClientSummary {
                    id: r.get(0),
                    client_id: r.get(1),
                    client_name: r.get(2),
                    industry: r.get(3),
                    revenue,
                    expenses,
                    net_profit: revenue - expenses,
                    monthly_revenue: months.into_iter().zip(revenues).collect(),
                }
            })
            .collect())
    }

    /// The most recent lead events of one client (any date), newest first.
    pub async fn recent_lead_events(
        &self,
        client: Uuid,
        limit: i64,
    ) -> DbResult<Vec<RecentLeadEvent>> {
        let stmt = self
            .client()
            .prepare_cached(
                "select event_date, lead_id, stage, value, currency::text, status::text, source_system
                   from lead_events where tenant_id = $1 and client_kpi_id = $2
                  order by event_date desc, id desc limit $3",
            )
            .await
            .ctx("reading recent lead events")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &client, &limit])
            .await
            .ctx("reading recent lead events")?;
        Ok(rows
            .iter()
            .map(|r| RecentLeadEvent {
                event_date: r.get(0),
                lead_id: r.get(1),
                stage: r.get(2),
                value: r.get(3),
                currency: r.get(4),
                status: r.get(5),
                source_system: r.get(6),
            })
            .collect())
    }

    /// Names of the custom metrics one client has, with their unit.
    pub async fn metric_names(&self, client: Uuid) -> DbResult<Vec<(String, Option<String>)>> {
        let stmt = self
            .client()
            .prepare_cached(
                "select metric_name, min(unit) from custom_metrics where tenant_id = $1 and client_kpi_id = $2
                  group by metric_name order by metric_name",
            )
            .await
            .ctx("listing metric names")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &client])
            .await
            .ctx("listing metric names")?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// A lead event as the client page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentLeadEvent {
    pub event_date: chrono::DateTime<chrono::Utc>,
    pub lead_id: String,
    pub stage: String,
    pub value: Option<Decimal>,
    pub currency: String,
    pub status: String,
    pub source_system: String,
}

/// One integration as the integrations page shows it (never the tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationStatus {
    pub provider: String,
    pub status: String,
    pub last_sync_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
}

impl TenantTx {
    /// The tenant's integrations, one per provider that was ever connected.
    pub async fn integration_overview(&self) -> DbResult<Vec<IntegrationStatus>> {
        let stmt = self
            .client()
            .prepare_cached(
                "select provider::text, status::text, last_sync_at, last_error, consecutive_failures
                   from integrations where tenant_id = $1 order by provider",
            )
            .await
            .ctx("listing integrations")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id()])
            .await
            .ctx("listing integrations")?;
        Ok(rows
            .iter()
            .map(|r| IntegrationStatus {
                provider: r.get(0),
                status: r.get(1),
                last_sync_at: r.get(2),
                last_error: r.get(3),
                consecutive_failures: r.get(4),
            })
            .collect())
    }
}
