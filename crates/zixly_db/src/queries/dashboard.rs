//! Reads the web dashboard needs beyond the per-client series: tenant-wide totals per day, the
//! pipeline summary and per-client summaries, all in the tenant's base currency.
//!
//! ## Currency
//! The same policy as the reports and the ingestion loader: the SQL function `zixly_fx_rate`
//! (migrations/0003_ingest.sql) — a direct rate, its inverse or the cross rate through EUR, the
//! latest on or before the day and at most 7 days older. A row whose currency has no such rate is
//! left out of the sums and counted in `unconverted`, so a page can say so instead of showing a
//! silently wrong total. Rows are summed per currency and day first and converted at full
//! precision; figures are rounded to cents once (per day for [`DailyTotals`], per client and range
//! for [`ClientSummary`] — as the profitability report does — and per period for the pipeline).
//! Rows already in the base currency (the normal case) cost no rate lookup.
//!
//! ## Speed
//! The overview needs three reads for its three periods (current, previous, last year); they are
//! shaped to be sent together (`tokio::try_join!` on one [`TenantTx`] pipelines them in one round
//! trip): [`TenantTx::daily_totals`] groups per day and currency, [`TenantTx::client_summaries`]
//! per client, month and currency (per day only for foreign currencies), and
//! [`TenantTx::pipeline_summaries`] sums the pipeline rollups' day rows up to each period's end
//! (migrations/0018; one client's from its lead events in one pass).
//! Every statement filters on `tenant_id` first, so the tenant-leading indexes are used.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_domain::period::DateRange;

use crate::error::{Ctx, DbError, DbResult};
use crate::queries::rollups::{shorter_edges, split_months};
use crate::TenantTx;

/// The tenant as the pages show it.
#[derive(Debug, Clone)]
pub struct TenantProfile {
    pub name: String,
    pub base_currency: String,
    pub time_zone: String,
    /// The first day whose figures are per day; before it, after the tenant's retention period
    /// (migrations/0022), only whole months are kept. `None`: every day is.
    pub raw_data_from: Option<NaiveDate>,
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
    /// Won over closed leads, rounded once (`zixly_domain::figures`).
    pub fn win_rate(&self) -> Option<Decimal> {
        zixly_domain::figures::win_rate(self.won, self.lost)
    }
}

fn pipeline_summary_of(row: &tokio_postgres::Row) -> PipelineSummary {
    PipelineSummary {
        open_value: row.get(1),
        open_leads: row.get(2),
        won: row.get(3),
        lost: row.get(4),
        unconverted: row.get(5),
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

/// The first and last day with a record of each series, tenant-wide (`None`: no record yet), so
/// a page can tell a comparison period without data from one whose figures are real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataSpans {
    pub financials: Option<DateRange>,
    /// Days in the tenant's time zone.
    pub lead_events: Option<DateRange>,
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

/// The factor that turns an amount in `currency` into `z.base` on `day` (NULL when no rate is
/// known): 1 for the base currency itself, else the loader's `zixly_fx_rate`.
pub(crate) fn fx_factor(currency: &str, day: &str) -> String {
    format!(
        "(case when {currency} = z.base then 1::numeric else zixly_fx_rate({currency}, z.base, {day}) end)"
    )
}

impl TenantTx {
    /// Name, base currency and time zone of the current tenant.
    pub async fn tenant_profile(&self) -> DbResult<TenantProfile> {
        let stmt = self
            .client()
            .prepare_cached(
                "select name, base_currency::text, time_zone, zixly_raw_data_from(raw_retention_months, time_zone)
                   from tenants where id = $1",
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
            raw_data_from: row.get(3),
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
        // Tenant-wide from the per-tenant day rollups (migrations/0019: at most a row per day and
        // currency, whatever the number of clients); one client's from its raw rows (an index
        // range of the client's days). Two statements rather than `($4 is null or ...)`: a cached
        // generic plan could then use neither index well. Both sum per day and currency and
        // convert each day's foreign sum at that day's rate, so both give the raw rows' answer.
        //
        // Before the tenant's retention cutoff (migrations/0022) the days are gone and the months
        // are kept: each whole month in the range counts as one entry on its first day, so sums
        // over periods of whole months stay right (a page says figures there are monthly). The
        // months' branch runs only for a tenant with a retention period: the last condition is a
        // one-time filter, so for the others it costs nothing. The days' branch stops at the
        // cutoff even before the retention run has deleted the older days (the cutoff moves on
        // the first of a month, the run follows within hours), so no month counts twice.
        let (days, months) = if client.is_some() {
            (
                "select record_date as d, currency as cur, sum(revenue) as r, sum(expenses) as e,
                        sum(cash_flow) as c, count(*) as n
                   from financials
                  where tenant_id = $1 and record_date between $2 and $3 and client_kpi_id = $4
                    and record_date >= coalesce((select raw_from from z), '-infinity')
                  group by 1, 2",
                "select month as d, currency as cur, revenue as r, expenses as e, cash_flow as c, row_count as n
                   from financial_months
                  where tenant_id = $1 and client_kpi_id = $4 and month between $2 and $3
                    and month < (select raw_from from z) and (select raw_from from z) is not null",
            )
        } else {
            (
                "select day as d, currency as cur, revenue as r, expenses as e, cash_flow as c, row_count as n
                   from financial_tenant_days
                  where tenant_id = $1 and day between $2 and $3 and $4::uuid is null
                    and day >= coalesce((select raw_from from z), '-infinity')",
                "select month as d, currency as cur, sum(revenue) as r, sum(expenses) as e,
                        sum(cash_flow) as c, sum(row_count)::bigint as n
                   from financial_months
                  where tenant_id = $1 and month between $2 and $3 and $4::uuid is null
                    and month < (select raw_from from z) and (select raw_from from z) is not null
                  group by 1, 2",
            )
        };
        let source = format!("{days} union all {months}");
        let sql = format!(
            "with z as (select base_currency as base,
                               zixly_raw_data_from(raw_retention_months, time_zone) as raw_from
                          from tenants where id = $1),
                  g as ({source}),
                  v as (select g.d, g.n, g.r * k.f as r, g.e * k.f as e, g.c * k.f as c
                          from g, z, lateral (select {f} as f) k)
             select d, round(coalesce(sum(r), 0), 2), round(coalesce(sum(e), 0), 2), round(coalesce(sum(c), 0), 2),
                    coalesce(sum(n) filter (where r is null), 0)::bigint
               from v group by d order by d",
            f = fx_factor("g.cur", "g.d"),
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

    /// The first and last day with financials and with lead events: both ends of the tenant's
    /// day rollups (migrations/0019; before a retention cutoff, of its month rollups) and of its
    /// lead events' copy in `lead_states` (0018, indexed
    /// by tenant and date in 0021) — an index probe each, whatever the history.
    pub async fn data_spans(&self) -> DbResult<DataSpans> {
        let stmt = self
            .client()
            .prepare_cached(
                "with z as (select time_zone as tz, zixly_raw_data_from(raw_retention_months, time_zone) as raw_from
                              from tenants where id = $1)
                 -- Before a retention cutoff (migrations/0022) only the months are left: their
                 -- ends count (an index probe each, nothing for a tenant without retention).
                 select least((select min(day) from financial_tenant_days where tenant_id = $1),
                              (select min(month) from financial_months
                                where tenant_id = $1 and month < (select raw_from from z))),
                        greatest((select max(day) from financial_tenant_days where tenant_id = $1),
                                 (select (max(month) + interval '1 month' - interval '1 day')::date
                                    from financial_months
                                   where tenant_id = $1 and month < (select raw_from from z))),
                        (select (min(event_date) at time zone (select tz from z))::date
                           from lead_states where tenant_id = $1),
                        (select (max(event_date) at time zone (select tz from z))::date
                           from lead_states where tenant_id = $1)",
            )
            .await
            .ctx("reading the first and last day of data")?;
        let row = self
            .client()
            .query_one(&stmt, &[&self.tenant_id()])
            .await
            .ctx("reading the first and last day of data")?;
        let span = |first: Option<NaiveDate>, last: Option<NaiveDate>| match (first, last) {
            (Some(f), Some(l)) => DateRange::new(f, l).ok(),
            _ => None,
        };
        Ok(DataSpans {
            financials: span(row.get(0), row.get(1)),
            lead_events: span(row.get(2), row.get(3)),
        })
    }

    /// Open pipeline as of the end of `to` and leads closed in `[from, to]` (days in the tenant's
    /// time zone), tenant-wide or for one client.
    pub async fn pipeline_summary(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        client: Option<Uuid>,
    ) -> DbResult<PipelineSummary> {
        let mut all = self.pipeline_summaries(&[(from, to)], client).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`TenantTx::pipeline_summary`] for several periods at once, in their order. Tenant-wide
    /// from the pipeline rollups (migrations/0018_pipeline_rollups.sql: sums over days, so the
    /// cost follows the tenant's days with lead activity, not its events); one client's from its
    /// lead events ([`TenantTx::pipeline_summaries_from_events`]: a client's events are few).
    ///
    /// Open values are summed per currency and converted once per period, at the rate of the
    /// period's last day: the open pipeline is a stock, valued at its closing rate (a lead last
    /// touched years ago is worth what its amount is worth now, not then).
    pub async fn pipeline_summaries(
        &self,
        periods: &[(NaiveDate, NaiveDate)],
        client: Option<Uuid>,
    ) -> DbResult<Vec<PipelineSummary>> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        if client.is_some() {
            return self.pipeline_summaries_from_events(periods, client).await;
        }
        // A period [f, t]: its end is the start of day t + 1, so the leads in a state then are
        // the day rows up to t; won and lost are the closing spans started in [f, t] less those
        // that also ended by t (a lead reopened after closing).
        //
        // Each table is read once, as one index range of the tenant's rows between the periods'
        // first day and last end (`ts`), however many periods: the open pipeline's day rows are
        // summed once per segment between two period ends (`width_bucket` counts the ends
        // before a day) and the segments then added up per period. Joined to the periods
        // directly, the planner scanned the whole table (every tenant's rows, filtered) once
        // and the matching rows once per period: 15 ms at 10 years of history, now 5.
        let sql = format!(
            "with z as (select base_currency as base from tenants where id = $1),
                  p as (select u.i, u.f, u.t from unnest($2::date[], $3::date[]) with ordinality as u(f, t, i)),
                  ts as (select array_agg(t order by t) as ends, min(f) as f0, max(t) as t1 from p),
                  o0 as (select d.currency, width_bucket(d.day - 1, ts.ends) as seg,
                                sum(d.leads) as n, sum(d.valued) as v, sum(d.value) as val
                           from ts, lead_pipeline_days d
                          where d.tenant_id = $1 and d.status = 'active' and d.day <= ts.t1
                          group by 1, 2),
                  -- A day is on or before the end t exactly when no more ends lie before it.
                  o as (select p.i, p.t, o0.currency, sum(o0.n) as n, sum(o0.v) as v, sum(o0.val) as val
                          from p, ts, o0
                         where o0.seg <= width_bucket(p.t - 1, ts.ends)
                         group by 1, 2, 3),
                  oc as (select o.i, o.n, o.v, o.val * {f} as conv from o, z),
                  s as (select p.i, d.status, sum(d.started) as n
                          from p join (select d.day, d.status, d.started
                                         from ts, lead_pipeline_days d
                                        where d.tenant_id = $1 and d.status in ('won', 'lost')
                                          and d.day between ts.f0 and ts.t1) d
                            on d.day between p.f and p.t
                         group by 1, 2),
                  x as (select p.i, c.status, sum(c.spans) as n
                          from p join (select c.start_day, c.end_day, c.status, c.spans
                                         from ts, lead_closing_ends c
                                        where c.tenant_id = $1 and c.start_day >= ts.f0 and c.end_day <= ts.t1) c
                            on c.start_day >= p.f and c.end_day <= p.t
                         group by 1, 2)
             select p.i,
                    round(coalesce((select sum(conv) from oc where oc.i = p.i), 0), 2),
                    coalesce((select sum(n) from oc where oc.i = p.i), 0)::bigint,
                    (coalesce((select n from s where s.i = p.i and s.status = 'won'), 0)
                     - coalesce((select n from x where x.i = p.i and x.status = 'won'), 0))::bigint,
                    (coalesce((select n from s where s.i = p.i and s.status = 'lost'), 0)
                     - coalesce((select n from x where x.i = p.i and x.status = 'lost'), 0))::bigint,
                    coalesce((select sum(v) from oc where oc.i = p.i and conv is null), 0)::bigint
               from p order by p.i",
            f = fx_factor("o.currency", "o.t"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summarising the pipeline")?;
        let (froms, tos): (Vec<NaiveDate>, Vec<NaiveDate>) = periods.iter().copied().unzip();
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &froms, &tos])
            .await
            .ctx("summarising the pipeline")?;
        Ok(rows.iter().map(pipeline_summary_of).collect())
    }

    /// The pipeline summaries computed from the lead events themselves, in one pass (each event
    /// knows when the lead's next event happened, so it is the lead's latest as of a period's end
    /// when it happened before that end and the next one did not). Serves one client; tenant-wide
    /// it is the reference the rollups are tested against (its cost grows with the history).
    pub async fn pipeline_summaries_from_events(
        &self,
        periods: &[(NaiveDate, NaiveDate)],
        client: Option<Uuid>,
    ) -> DbResult<Vec<PipelineSummary>> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        let filter = if client.is_some() {
            "and e.client_kpi_id = $4"
        } else {
            "and $4::uuid is null"
        };
        let sql = format!(
            "with z as (select base_currency as base, time_zone as tz from tenants where id = $1),
                  p as (select u.i, u.t, u.f::timestamp at time zone z.tz as start,
                               (u.t + 1)::timestamp at time zone z.tz as stop
                          from z, unnest($2::date[], $3::date[]) with ordinality as u(f, t, i)),
                  e as (select e.status, e.value, e.currency, e.event_date,
                               lead(e.event_date) over (partition by e.client_kpi_id, e.lead_id collate \"C\"
                                                        order by e.event_date, e.id) as next
                          from lead_events e
                         where e.tenant_id = $1 and e.event_date < (select max(stop) from p) {filter}),
                  v as (select p.i, e.status, e.value, e.event_date >= p.start as in_range,
                               case when e.status = 'active' and e.value is not null
                                    then e.value * {f} end as conv
                          from p join e on e.event_date < p.stop and (e.next is null or e.next >= p.stop), z)
             select p.i,
                    round(coalesce(sum(v.conv), 0), 2),
                    count(v.status) filter (where v.status = 'active'),
                    count(v.status) filter (where v.status = 'won' and v.in_range),
                    count(v.status) filter (where v.status = 'lost' and v.in_range),
                    count(v.status) filter (where v.status = 'active' and v.value is not null and v.conv is null)
               from p left join v on v.i = p.i
              group by p.i order by p.i",
            f = fx_factor("e.currency", "p.t"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summarising the pipeline from lead events")?;
        let (froms, tos): (Vec<NaiveDate>, Vec<NaiveDate>) = periods.iter().copied().unzip();
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &froms, &tos, &client])
            .await
            .ctx("summarising the pipeline from lead events")?;
        Ok(rows.iter().map(pipeline_summary_of).collect())
    }

    /// Every client (optionally only those whose name contains `search`) with revenue, expenses and
    /// profit over `[from, to]` and monthly revenue, in the base currency; ordered by name. The
    /// range totals are converted at full precision and rounded once, like the profitability
    /// report's; rows without a rate are left out.
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
        // Whole months from the monthly rollups (migrations/0015), the days of the partial months
        // at the range's edges raw (tenant-wide: one index range of the tenant's days per edge).
        // An edge longer than half its month is read as its month's rollup less the month's
        // other days (`shorter_edges`): the 12-month overview's first edge is 27 days of 31, its
        // complement 4. A month's or edge's foreign-currency rows are read raw, for that client,
        // month and currency only: they convert at each day's rate. So the sums are the raw
        // rows' sums. Before a retention cutoff (migrations/0022) only whole months count.
        let split = split_months(&[(from, to)]);
        let edges = shorter_edges(&split);
        let sql = format!(
            "with z as (select base_currency as base,
                               coalesce(zixly_raw_data_from(raw_retention_months, time_zone), '-infinity'::date) as raw_from
                          from tenants where id = $1),
                  c as (select id, client_id, client_name, industry from client_kpis
                         where tenant_id = $1 and ($4::text is null or client_name ilike $4)),
                  wm as (select m.client_kpi_id as cid, m.month, m.currency, m.revenue, m.expenses, m.row_count as n
                           from financial_months m
                          where m.tenant_id = $1 and m.month = any($5::date[])),
                  -- The complemented edges: month, edge, complement.
                  ce as (select * from unnest($8::date[], $9::date[], $10::date[], $11::date[], $12::date[])
                                    as ce(m, a, b, ca, cb)
                          where ce.m >= (select raw_from from z)),
                  cm as (select m.client_kpi_id as cid, m.month, m.currency, m.revenue, m.expenses, m.row_count as n,
                                ce.a, ce.b
                           from ce join financial_months m on m.tenant_id = $1 and m.month = ce.m),
                  raw as (select f.client_kpi_id as cid, f.record_date, f.currency, f.revenue, f.expenses
                            from unnest($6::date[], $7::date[]) as w(a, b)
                           cross join lateral (
                                 -- OFFSET 0 keeps each edge one index range scan of one partition.
                                 select f.client_kpi_id, f.record_date, f.currency, f.revenue, f.expenses
                                   from financials f
                                  where f.tenant_id = $1 and f.record_date between w.a and w.b
                                    and f.record_date between $2 and $3
                                    and f.record_date >= (select raw_from from z)
                                 offset 0) f
                          union all
                          select f.client_kpi_id, f.record_date, f.currency, f.revenue, f.expenses
                            from (select cid, month, month as a, (month + interval '1 month')::date - 1 as b, currency
                                    from wm
                                  union all
                                  select cid, month, a, b, currency from cm) x
                            join z on x.currency <> z.base and x.month >= z.raw_from
                           cross join lateral (
                                 select f.client_kpi_id, f.record_date, f.currency, f.revenue, f.expenses
                                   from financials f
                                  where f.tenant_id = $1 and f.client_kpi_id = x.cid
                                    and f.record_date between x.a and x.b
                                    and f.record_date between $2 and $3 and f.currency = x.currency
                                 offset 0) f),
                  -- The complements' base-currency days, to subtract from their months.
                  comp as (select f.client_kpi_id as cid, date_trunc('month', f.record_date)::date as m,
                                  sum(f.revenue) as r, sum(f.expenses) as e, count(*) as n
                             from ce cross join lateral (
                                   select f.client_kpi_id, f.record_date, f.revenue, f.expenses
                                     from financials f
                                    where f.tenant_id = $1 and f.record_date between ce.ca and ce.cb
                                      and f.record_date between $2::date - 31 and $3::date + 31
                                      and f.currency = (select base from z)
                                   offset 0) f
                            group by 1, 2),
                  g as (select raw.cid, date_trunc('month', raw.record_date)::date as m,
                               case when raw.currency = z.base then null else raw.record_date end as d,
                               raw.currency as cur, sum(raw.revenue) as r, sum(raw.expenses) as e, count(*) as n
                          from raw, z
                         group by 1, 2, 3, 4
                        union all
                        select x.cid, x.month, null, x.currency, x.revenue, x.expenses, x.n
                          from (select cid, month, currency, revenue, expenses, n from wm
                                union all
                                select cid, month, currency, revenue, expenses, n from cm) x
                          -- (A foreign month before a retention cutoff has no raw days left:
                          -- its total converts at its first day's rate, as in `daily_totals`.)
                          join z on x.currency = z.base or x.month < z.raw_from
                        union all
                        select comp.cid, comp.m, null, z.base, -comp.r, -comp.e, -comp.n from comp, z),
                  v as (select g.cid, g.m, g.n, g.r * k.f as r, g.e * k.f as e
                          from g, z, lateral (select {f} as f) k),
                  -- A month counts when it has rows in the range (a complemented edge may have none).
                  mo as (select cid, m, sum(r) as r, sum(e) as e from v group by 1, 2 having sum(n) > 0)
             select c.id, c.client_id, c.client_name, c.industry,
                    coalesce(array_agg(mo.m order by mo.m) filter (where mo.m is not null), '{{}}'),
                    coalesce(array_agg(round(coalesce(mo.r, 0), 2) order by mo.m) filter (where mo.m is not null), '{{}}'),
                    round(coalesce(sum(mo.r), 0), 2),
                    round(coalesce(sum(mo.e), 0), 2)
               from c left join mo on mo.cid = c.id
              group by c.id, c.client_id, c.client_name, c.industry
              order by lower(c.client_name), c.id",
            f = fx_factor("g.cur", "coalesce(g.d, g.m)"),
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summarising clients")?;
        let rows = self
            .client()
            .query(
                &stmt,
                &[
                    &self.tenant_id(),
                    &from,
                    &to,
                    &pattern,
                    &split.months,
                    &edges.direct_from,
                    &edges.direct_to,
                    &edges.months,
                    &edges.edge_from,
                    &edges.edge_to,
                    &edges.complement_from,
                    &edges.complement_to,
                ],
            )
            .await
            .ctx("summarising clients")?;
        Ok(rows
            .iter()
            .map(|r| {
                let months: Vec<NaiveDate> = r.get(4);
                let revenues: Vec<Decimal> = r.get(5);
                let (revenue, expenses): (Decimal, Decimal) = (r.get(6), r.get(7));
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
    pub id: uuid::Uuid,
    pub provider: String,
    pub status: String,
    pub last_sync_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    /// The unfinished run, if one is under way or waiting to resume.
    pub progress: Option<crate::checkpoints::SyncProgress>,
    /// A provider budget stopped the run; it resumes then.
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    pub pause_reason: Option<String>,
    /// The latest finished run, with the whole run's counts.
    pub last_run: Option<crate::queries::sync_runs::LastSyncRun>,
}

impl TenantTx {
    /// The tenant's integrations, one per provider that was ever connected.
    pub async fn integration_overview(&self) -> DbResult<Vec<IntegrationStatus>> {
        let stmt = self
            .client()
            .prepare_cached(
                "select i.provider::text, i.status::text, i.last_sync_at, i.last_error, i.consecutive_failures, i.id,
                        i.paused_until, i.pause_reason,
                        c.integration_id is not null, c.stream, c.pages_read, c.items_read, c.items_total,
                        c.started_at, c.updated_at, lr.run
                   from integrations i
                   left join sync_checkpoints c on c.tenant_id = i.tenant_id and c.integration_id = i.id
                   left join lateral (
                        select jsonb_build_object('status', r.status, 'rows_read', r.rows_read,
                               'rows_inserted', r.rows_inserted, 'rows_updated', r.rows_updated,
                               'rows_unchanged', r.rows_unchanged, 'rows_rejected', r.rows_rejected,
                               'started_at', r.started_at, 'finished_at', r.finished_at) as run
                          from sync_runs r
                         where r.tenant_id = i.tenant_id and r.integration_id = i.id
                           and r.status <> 'running'
                         order by r.finished_at desc, r.id desc limit 1) lr on true
                  where i.tenant_id = $1 order by i.provider",
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
                id: r.get(5),
                paused_until: r.get(6),
                pause_reason: r.get(7),
                progress: r
                    .get::<_, bool>(8)
                    .then(|| crate::checkpoints::SyncProgress {
                        stream: r.get(9),
                        pages_read: r.get(10),
                        items_read: r.get(11),
                        items_total: r.get(12),
                        started_at: r.get(13),
                        updated_at: r.get(14),
                    }),
                last_run: r
                    .get::<_, Option<serde_json::Value>>(15)
                    .and_then(|v| serde_json::from_value(v).ok()),
            })
            .collect())
    }
}
