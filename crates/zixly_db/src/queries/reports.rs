//! Reports: profitability per client, the sales funnel of one client, one metric over time.
//!
//! ## Currency
//! Amounts keep their original currency in storage; reports convert them into the tenant's base
//! currency (`tenants.base_currency`) with the dated rates of `fx_rates`, where a row says
//! "1 `base_currency` = `rate` `quote_currency` on `rate_date`" (the ECB layout: base EUR). A
//! conversion from X to B on day D uses, in this order, a direct rate X→B, the inverse of B→X, or
//! the cross rate through EUR: `rate(EUR→B) / rate(EUR→X)`. Each rate is the one of day D or,
//! failing that, the latest one before D within [`FX_LOOKBACK_DAYS`] days (reference rates are not
//! published on weekends and holidays). This is the ingestion loader's policy (`zixly_fx_rate` in
//! migrations/0003_ingest.sql), so a row the loader accepted converts here too. Amounts are converted at full precision per day and rounded to cents once, at the
//! end (half away from zero); `net_profit` is then `revenue - expenses` of the rounded figures, so
//! the identity the schema enforces per row also holds in the report.
//!
//! A missing rate is never taken as 1: the figures that would need it are `None` and the report
//! lists the missing (currency, date) pairs.
//!
//! SQL does the filtering and summing (per client, currency and day for foreign currencies, so a
//! 90-day report moves at most 90 rows per client and currency); Rust does the conversion.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Days, NaiveDate};
use futures_util::future::try_join;
use rust_decimal::{Decimal, RoundingStrategy};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::queries::clients::{Client, ClientCursor, ClientSort};
use crate::queries::rollups::split_months;
use crate::queries::series::{Bucket, BucketWindow, DateRange};
use crate::TenantTx;

use zixly_domain::fx::PIVOT;
pub use zixly_domain::fx::{FxTable, FX_LOOKBACK_DAYS};

/// A conversion that had no rate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct MissingRate {
    pub currency: String,
    pub date: NaiveDate,
}

fn cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

/// The one rounding of a ratio (`zixly_domain::figures`): what the API, the CSV and the pages show.
fn ratio(num: Decimal, den: Decimal) -> Option<Decimal> {
    zixly_domain::figures::ratio(num, den)
}

// ---------------------------------------------------------------------------------------------
// Profitability

/// One client's figures for one period, in the base currency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeriodFigures {
    /// Number of financial rows summed.
    pub records: i64,
    pub revenue: Decimal,
    pub expenses: Decimal,
    /// `revenue - expenses`.
    pub net_profit: Decimal,
    /// `net_profit / revenue`, a fraction rounded once to 3 places (0.1 %, `zixly_domain::figures`); `None` when revenue is zero.
    pub margin: Option<Decimal>,
    pub cash_flow: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProfitabilityRow {
    pub client_kpi_id: Uuid,
    /// The external identifier (`client_kpis.client_id`).
    pub client_id: String,
    pub client_name: String,
    /// `None` when a rate needed for this period is missing (see `missing_rates`).
    pub current: Option<PeriodFigures>,
    pub previous: Option<PeriodFigures>,
    pub missing_rates: Vec<MissingRate>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfitabilityReport {
    pub base_currency: String,
    pub period: DateRange,
    pub previous_period: DateRange,
    pub rows: Vec<ProfitabilityRow>,
    /// Present when more clients follow (clients are paged by name, then id).
    pub next: Option<ClientCursor>,
    /// Every missing (currency, date) of this page, sorted.
    pub missing_rates: Vec<MissingRate>,
}

#[derive(Default)]
struct Acc {
    records: i64,
    revenue: Decimal,
    expenses: Decimal,
    cash_flow: Decimal,
    missing: BTreeSet<MissingRate>,
}

impl Acc {
    fn add(
        &mut self,
        factor: Option<Decimal>,
        currency: &str,
        date: Option<NaiveDate>,
        sums: [Decimal; 3],
        n: i64,
    ) {
        self.records += n;
        match factor {
            Some(f) => {
                self.revenue += sums[0] * f;
                self.expenses += sums[1] * f;
                self.cash_flow += sums[2] * f;
            }
            None => {
                self.missing.insert(MissingRate {
                    currency: currency.to_string(),
                    date: date.expect("foreign rows carry a date"),
                });
            }
        }
    }

    fn figures(&self) -> Option<PeriodFigures> {
        if !self.missing.is_empty() {
            return None;
        }
        let (revenue, expenses) = (cents(self.revenue), cents(self.expenses));
        let net_profit = revenue - expenses;
        Some(PeriodFigures {
            records: self.records,
            revenue,
            expenses,
            net_profit,
            margin: ratio(net_profit, revenue),
            cash_flow: cents(self.cash_flow),
        })
    }
}

/// A sum of one client's rows for one period: a whole month from the rollups (base currency, or a
/// foreign currency before a retention cutoff, `date` then the month's first day) or raw days
/// (`date` set for a foreign currency, which converts at that day's rate).
struct ProfitPart {
    /// Index into the page's clients.
    client: usize,
    currency: String,
    date: Option<NaiveDate>,
    is_current: bool,
    sums: [Decimal; 3],
    rows: i64,
}

#[derive(Debug, Clone)]
pub struct ProfitabilityQuery {
    pub range: DateRange,
    pub after: Option<ClientCursor>,
    /// Clients per page (at least 1).
    pub limit: u32,
}

// ---------------------------------------------------------------------------------------------
// Funnel

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FunnelStatus {
    pub status: String,
    pub events: i64,
    /// Sum of the events' values in the base currency; `None` when a rate is missing.
    pub value: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FunnelStage {
    pub stage: String,
    /// 1-based position in the funnel.
    pub position: u32,
    /// Distinct leads with an event at this stage.
    pub leads: i64,
    pub events: i64,
    pub value: Option<Decimal>,
    /// Share of the previous stage's leads that also reached this stage (3 places, `zixly_domain::figures`); `None` for the
    /// first stage or when the previous stage has no lead.
    pub conversion_from_previous: Option<Decimal>,
    pub statuses: Vec<FunnelStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FunnelReport {
    pub base_currency: String,
    /// `None` for the tenant-wide funnel.
    pub client: Option<Client>,
    pub range: Option<DateRange>,
    pub stages: Vec<FunnelStage>,
    pub missing_rates: Vec<MissingRate>,
}

#[derive(Debug, Clone, Default)]
pub struct FunnelQuery {
    /// Days (tenant's time zone) of the events; `None` for all time.
    pub range: Option<DateRange>,
    /// The stage order; stages found in the data but not listed follow, in their natural order.
    /// Without it, stages are ordered by where they fall in the leads' histories on average (the
    /// mean rank of a stage among each lead's stages ordered by first entry), then by name.
    pub stages: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// Metric report

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricReportRow {
    pub bucket_start: NaiveDate,
    /// From the metric's definition, as in [`crate::queries::series::MetricBucket`].
    pub display_name: String,
    pub unit: Option<String>,
    pub aggregation: zixly_domain::metrics::Aggregation,
    /// The aggregate the definition names over every client's values of the bucket (`last`: the
    /// value at the latest `record_date` of the bucket, whichever client recorded it).
    pub value: Decimal,
    /// Clients with at least one value in the bucket.
    pub clients: i64,
    pub count: i64,
    pub sum: Decimal,
    pub avg: Decimal,
    pub min: Decimal,
    pub max: Decimal,
}

impl TenantTx {
    /// The tenant's reporting currency.
    pub async fn tenant_base_currency(&self) -> DbResult<String> {
        let stmt = self
            .client()
            .prepare_cached("select base_currency::text from tenants where id = $1")
            .await
            .ctx("reading base currency")?;
        let row = self
            .client()
            .query_opt(&stmt, &[&self.tenant_id()])
            .await
            .ctx("reading base currency")?;
        row.map(|r| r.get(0)).ok_or(DbError::NotFound("tenant"))
    }

    /// The tenant's reporting currency and its retention cutoff (the first day whose raw rows
    /// are kept, migrations/0022; `None`: kept forever).
    async fn tenant_currency_and_raw_from(&self) -> DbResult<(String, Option<NaiveDate>)> {
        let stmt = self
            .client()
            .prepare_cached(
                "select base_currency::text, zixly_raw_data_from(raw_retention_months, time_zone)
                   from tenants where id = $1",
            )
            .await
            .ctx("reading base currency")?;
        let row = self
            .client()
            .query_opt(&stmt, &[&self.tenant_id()])
            .await
            .ctx("reading base currency")?;
        row.map(|r| (r.get(0), r.get(1)))
            .ok_or(DbError::NotFound("tenant"))
    }

    /// Rates needed to convert `currencies` into one another over `[from - lookback, to]`.
    pub async fn fx_table(
        &self,
        currencies: &BTreeSet<String>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> DbResult<FxTable> {
        let quotes: Vec<String> = currencies.iter().cloned().collect();
        let mut bases = quotes.clone();
        if !bases.iter().any(|c| c == PIVOT) {
            bases.push(PIVOT.into());
        }
        // Both sides constrained: the primary key (base, quote, rate_date) serves the lookup.
        let stmt = self
            .client()
            .prepare_cached(
                "select rate_date, base_currency::text, quote_currency::text, rate from fx_rates
                  where base_currency = any($1::char(3)[]) and quote_currency = any($2::char(3)[])
                    and rate_date between $3 and $4",
            )
            .await
            .ctx("reading exchange rates")?;
        let rows = self
            .client()
            .query(
                &stmt,
                &[&bases, &quotes, &(from - Days::new(FX_LOOKBACK_DAYS)), &to],
            )
            .await
            .ctx("reading exchange rates")?;
        Ok(FxTable::from_rows(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
        ))
    }

    /// Revenue, expenses, net profit, margin and cash flow per client over `q.range` and over the
    /// period before it ([`DateRange::previous`]: as many whole months before for whole months,
    /// else as many days), in the tenant's base currency. Every client of the page is listed, with
    /// zeros when it has no data in a period.
    pub async fn profitability(&self, q: &ProfitabilityQuery) -> DbResult<ProfitabilityReport> {
        let (base, raw_from) = self.tenant_currency_and_raw_from().await?;
        let previous = q.range.previous();
        let limit = i64::from(q.limit.max(1));
        let after = q.after.as_ref().filter(|c| c.sort == ClientSort::Name);
        let (after_key, after_id) = (after.map(|c| c.key.as_str()), after.map(|c| c.id));
        // Each period split on its own: a month straddling the two periods is read raw. Before a
        // retention cutoff only months are kept: a month counts whole in the period that holds
        // its first day, its foreign amounts converted at that day's rate (as `daily_totals`
        // does, so the overview, goals and this report agree), and no day before the cutoff is
        // read raw, whether or not the retention run has deleted it yet.
        let split = split_months(&[
            (previous.from(), previous.to()),
            (q.range.from(), q.range.to()),
        ])
        .with_raw_data_from(raw_from);
        let kept_only = |month: NaiveDate| raw_from.is_some_and(|cutoff| month < cutoff);
        // Two statements, so that neither plans the raw table's every partition per call. The
        // first reads the page of clients and their whole months from the rollups; the second,
        // only when there is something raw to read (days outside whole months, or a whole month
        // with foreign amounts, which converts per day), reads exactly those (client, days)
        // ranges, each an index range scan of one partition pruned at run time.
        let stmt = self
            .client()
            .prepare_cached(
                "with c as (
                     select id, client_id, client_name, lower(client_name) as k
                       from client_kpis
                      where tenant_id = $1
                        and ($2::text is null or (lower(client_name), id) > ($2::text, $3::uuid))
                      order by lower(client_name), id
                      limit $4)
                 select c.id, c.client_id, c.client_name, c.k, m.currency::text, m.month, m.month >= $5,
                        m.revenue, m.expenses, m.cash_flow, m.row_count
                   from c
                   left join financial_months m
                     on m.tenant_id = $1 and m.client_kpi_id = c.id and m.month = any($6::date[])
                  order by c.k, c.id",
            )
            .await
            .ctx("computing profitability")?;
        let month_rows = self
            .client()
            .query(
                &stmt,
                &[
                    &self.tenant_id(),
                    &after_key,
                    &after_id,
                    &(limit + 1),
                    &q.range.from(),
                    &split.months,
                ],
            )
            .await
            .ctx("computing profitability")?;

        // Clients in order, each with its two accumulators; the parts to convert and add.
        let mut clients: Vec<(Uuid, String, String, String, Acc, Acc)> = Vec::new();
        let mut parts: Vec<ProfitPart> = Vec::new();
        // The raw ranges to read: (client, currency or every one, first day, last day).
        let mut raw: (
            Vec<Uuid>,
            Vec<Option<String>>,
            Vec<NaiveDate>,
            Vec<NaiveDate>,
        ) = Default::default();
        for r in &month_rows {
            let id: Uuid = r.get(0);
            if clients.last().is_none_or(|c| c.0 != id) {
                clients.push((
                    id,
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    Acc::default(),
                    Acc::default(),
                ));
                // The client after the page (read only to know that one follows) needs no raw rows.
                let in_page = clients.len() as i64 <= limit;
                for (a, b) in split
                    .edges_from
                    .iter()
                    .zip(&split.edges_to)
                    .filter(|_| in_page)
                {
                    raw.0.push(id);
                    raw.1.push(None);
                    raw.2.push(*a);
                    raw.3.push(*b);
                }
            }
            let Some(cur) = r.get::<_, Option<String>>(4) else {
                continue;
            };
            let month: NaiveDate = r.get(5);
            if cur != base && !kept_only(month) {
                if clients.len() as i64 > limit {
                    continue;
                }
                raw.0.push(id);
                raw.1.push(Some(cur));
                raw.2.push(month);
                raw.3.push(month + chrono::Months::new(1) - Days::new(1));
                continue;
            }
            parts.push(ProfitPart {
                client: clients.len() - 1,
                date: (cur != base).then_some(month),
                currency: cur,
                is_current: r.get(6),
                sums: [r.get(7), r.get(8), r.get(9)],
                rows: r.get(10),
            });
        }
        if !raw.0.is_empty() {
            let stmt = self
                .client()
                .prepare_cached(
                    "select r.c, f.currency::text, case when f.currency = $3::char(3) then null else f.record_date end,
                            f.record_date >= $2, sum(f.revenue), sum(f.expenses), sum(f.cash_flow), count(*)
                       from unnest($4::uuid[], $5::text[], $6::date[], $7::date[]) as r(c, cur, a, b)
                      cross join lateral (
                            -- OFFSET 0 keeps this a per-range scan: flattened, the planner joins
                            -- the client's every row to the ranges instead.
                            select f.currency, f.record_date, f.revenue, f.expenses, f.cash_flow
                              from financials f
                             where f.tenant_id = $1 and f.client_kpi_id = r.c
                               and f.record_date between r.a and r.b
                               and f.record_date between $8 and $9
                               and (r.cur is null or f.currency = r.cur::char(3))
                            offset 0) f
                      group by 1, 2, 3, 4",
                )
                .await
                .ctx("computing profitability")?;
            let rows = self
                .client()
                .query(
                    &stmt,
                    &[
                        &self.tenant_id(),
                        &q.range.from(),
                        &base,
                        &raw.0,
                        &raw.1,
                        &raw.2,
                        &raw.3,
                        &previous.from(),
                        &q.range.to(),
                    ],
                )
                .await
                .ctx("computing profitability")?;
            let index: HashMap<Uuid, usize> =
                clients.iter().enumerate().map(|(i, c)| (c.0, i)).collect();
            for r in &rows {
                parts.push(ProfitPart {
                    client: index[&r.get::<_, Uuid>(0)],
                    currency: r.get(1),
                    date: r.get(2),
                    is_current: r.get(3),
                    sums: [r.get(4), r.get(5), r.get(6)],
                    rows: r.get(7),
                });
            }
        }

        let currencies: BTreeSet<String> = parts.iter().map(|p| p.currency.clone()).collect();
        let fx = if currencies.iter().any(|c| *c != base) {
            let mut currencies = currencies;
            currencies.insert(base.clone());
            self.fx_table(&currencies, previous.from(), q.range.to())
                .await?
        } else {
            FxTable::default()
        };
        for part in parts {
            let factor = match part.date {
                None => Some(Decimal::ONE),
                Some(d) => fx.factor(&part.currency, &base, d),
            };
            let entry = &mut clients[part.client];
            let acc = if part.is_current {
                &mut entry.4
            } else {
                &mut entry.5
            };
            acc.add(factor, &part.currency, part.date, part.sums, part.rows);
        }
        let more = clients.len() as i64 > limit;
        clients.truncate(limit as usize);
        let next = if more {
            clients.last().map(|c| ClientCursor {
                sort: ClientSort::Name,
                key: c.3.clone(),
                id: c.0,
            })
        } else {
            None
        };
        let mut all_missing = BTreeSet::new();
        let rows = clients
            .into_iter()
            .map(|(id, client_id, client_name, _, cur, prev)| {
                let missing: BTreeSet<MissingRate> =
                    cur.missing.union(&prev.missing).cloned().collect();
                all_missing.extend(missing.iter().cloned());
                ProfitabilityRow {
                    client_kpi_id: id,
                    client_id,
                    client_name,
                    current: cur.figures(),
                    previous: prev.figures(),
                    missing_rates: missing.into_iter().collect(),
                }
            })
            .collect();
        Ok(ProfitabilityReport {
            base_currency: base,
            period: q.range,
            previous_period: previous,
            rows,
            next,
            missing_rates: all_missing.into_iter().collect(),
        })
    }

    /// Events counted and valued by stage and status for one client (`Some`) or all the tenant's
    /// clients (`None`: a lead is a lead of one client, so the same lead id under two clients is
    /// two leads), with the stage order and the conversion between consecutive stages.
    /// `NotFound("client")` for an unknown client.
    pub async fn funnel(&self, client: Option<Uuid>, q: &FunnelQuery) -> DbResult<FunnelReport> {
        let client_row = match client {
            Some(id) => Some(
                self.get_client(id)
                    .await?
                    .ok_or(DbError::NotFound("client"))?,
            ),
            None => None,
        };
        let base = self.tenant_base_currency().await?;
        let (by_status, stage_rows) = match q.range {
            Some(range) => self.funnel_raw(client, range, &base).await?,
            None => self.funnel_rollups(client, &base).await?,
        };

        let mut currencies: BTreeSet<String> = BTreeSet::from([base.clone()]);
        let mut dates: Option<(NaiveDate, NaiveDate)> = None;
        for r in &by_status {
            if let Some(d) = r.get::<_, Option<NaiveDate>>(3) {
                currencies.insert(r.get(2));
                dates = Some(dates.map_or((d, d), |(a, b)| (a.min(d), b.max(d))));
            }
        }
        let fx = match dates {
            Some((a, b)) => self.fx_table(&currencies, a, b).await?,
            None => FxTable::default(),
        };

        // (stage, status) → (events, value sum, missing)
        let mut cells: BTreeMap<(String, String), (i64, Decimal, BTreeSet<MissingRate>)> =
            BTreeMap::new();
        for r in &by_status {
            let (stage, status, cur): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let date: Option<NaiveDate> = r.get(3);
            let (n, sum): (i64, Option<Decimal>) = (r.get(4), r.get(5));
            let cell = cells
                .entry((stage, status))
                .or_insert_with(|| (0, Decimal::ZERO, BTreeSet::new()));
            cell.0 += n;
            if let Some(sum) = sum {
                let factor = match date {
                    None => Some(Decimal::ONE),
                    Some(d) => fx.factor(&cur, &base, d),
                };
                match factor {
                    Some(f) => cell.1 += sum * f,
                    None => {
                        cell.2.insert(MissingRate {
                            currency: cur,
                            date: date.expect("foreign rows carry a date"),
                        });
                    }
                }
            }
        }

        let mut leads: HashMap<String, (i64, f64)> = HashMap::new();
        let mut pairs: HashMap<(String, String), i64> = HashMap::new();
        for r in &stage_rows {
            let (a, b, n): (String, Option<String>, i64) = (r.get(0), r.get(1), r.get(2));
            match b {
                None => {
                    leads.insert(a, (n, r.get::<_, Option<f64>>(3).unwrap_or(0.0)));
                }
                Some(b) => {
                    pairs.insert((a, b), n);
                }
            }
        }

        // Stage order: the requested one, then the natural one.
        let mut natural: Vec<(&String, f64)> =
            leads.iter().map(|(s, (_, pos))| (s, *pos)).collect();
        natural.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        let mut order: Vec<String> = Vec::new();
        for s in q.stages.iter().flatten() {
            let s = s.trim();
            if !s.is_empty() && !order.iter().any(|o| o == s) {
                order.push(s.to_string());
            }
        }
        for (s, _) in natural {
            if !order.contains(s) {
                order.push(s.clone());
            }
        }

        let mut all_missing = BTreeSet::new();
        let mut stages = Vec::with_capacity(order.len());
        for (i, stage) in order.iter().enumerate() {
            let mut statuses = Vec::new();
            let (mut events, mut value, mut missing) = (0i64, Decimal::ZERO, false);
            for ((_, status), (n, sum, miss)) in cells
                .range((stage.clone(), String::new())..)
                .take_while(|((s, _), _)| s == stage)
            {
                events += n;
                value += *sum;
                missing |= !miss.is_empty();
                all_missing.extend(miss.iter().cloned());
                statuses.push(FunnelStatus {
                    status: status.clone(),
                    events: *n,
                    value: miss.is_empty().then(|| cents(*sum)),
                });
            }
            let stage_leads = leads.get(stage).map_or(0, |l| l.0);
            let conversion_from_previous = if i == 0 {
                None
            } else {
                let prev = &order[i - 1];
                let prev_leads = leads.get(prev).map_or(0, |l| l.0);
                let both = pairs
                    .get(&(prev.clone(), stage.clone()))
                    .copied()
                    .unwrap_or(0);
                ratio(Decimal::from(both), Decimal::from(prev_leads))
            };
            stages.push(FunnelStage {
                stage: stage.clone(),
                position: i as u32 + 1,
                leads: stage_leads,
                events,
                value: (!missing).then(|| cents(value)),
                conversion_from_previous,
                statuses,
            });
        }
        Ok(FunnelReport {
            base_currency: base,
            client: client_row,
            range: q.range,
            stages,
            missing_rates: all_missing.into_iter().collect(),
        })
    }

    /// The funnel's two row sets from raw events over `range`: (stage, status, currency, the day of
    /// a foreign-currency group, events, value sum) and (stage, other stage or null, leads, mean
    /// rank or null). A range read prunes to the range's partitions; a lead's first entry within
    /// a range is not a sum of months, so no rollup answers it.
    async fn funnel_raw(
        &self,
        client: Option<Uuid>,
        range: DateRange,
        base: &str,
    ) -> DbResult<(Vec<Row>, Vec<Row>)> {
        let tz = "(select time_zone from tenants where id = $1)";
        let of_client = client_filter(client);
        let range_sql = format!(
            "event_date >= ($3::date::timestamp at time zone {tz})
             and event_date < (($4::date + 1)::timestamp at time zone {tz})"
        );
        let by_status_sql = format!(
            "select stage, status::text, currency::text,
                    case when currency = $5::char(3) then null else (event_date at time zone {tz})::date end,
                    count(*), sum(value)
               from lead_events
              where tenant_id = $1 {of_client} and {range_sql}
              group by 1, 2, 3, 4"
        );
        let stages_sql = format!(
            "with ev as (
                 select client_kpi_id, lead_id, stage, min(event_date) as first_at
                   from lead_events
                  where tenant_id = $1 {of_client} and {range_sql}
                  group by 1, 2, 3),
             rk as (select client_kpi_id, lead_id, stage,
                           rank() over (partition by client_kpi_id, lead_id order by first_at) as r
                      from ev)
             select stage, null::text, count(*), avg(r)::float8 from rk group by stage
             union all
             select a.stage, b.stage, count(*), null
               from rk a join rk b
                 on a.client_kpi_id = b.client_kpi_id and a.lead_id = b.lead_id and a.stage <> b.stage
              group by a.stage, b.stage"
        );
        let tenant = self.tenant_id();
        let (from, to) = (range.from(), range.to());
        let p1: [&(dyn ToSql + Sync); 5] = [&tenant, &client, &from, &to, &base];
        let p2: [&(dyn ToSql + Sync); 4] = [&tenant, &client, &from, &to];
        // Both statements are sent before either answer is awaited (pipelined on one connection).
        let (s1, s2) = try_join(
            self.client().prepare_cached(&by_status_sql),
            self.client().prepare_cached(&stages_sql),
        )
        .await
        .ctx("computing funnel")?;
        try_join(self.client().query(&s1, &p1), self.client().query(&s2, &p2))
            .await
            .ctx("computing funnel")
    }

    /// The all-time funnel's row sets (as [`Self::funnel_raw`]'s) from the funnel rollups
    /// (migrations/0016_funnel_rollups.sql): a few rows per stage, whatever the history. Raw
    /// events are read only for values in a currency other than the base, which are converted at
    /// each event's day; their status groups come from raw rows instead of the totals.
    async fn funnel_rollups(
        &self,
        client: Option<Uuid>,
        base: &str,
    ) -> DbResult<(Vec<Row>, Vec<Row>)> {
        let tenant = self.tenant_id();
        let of_client = client_filter(client);
        let totals_sql = &format!(
            "select stage, status::text, currency::text, null::date, sum(events)::bigint,
                    case when sum(valued) > 0 then sum(value) end,
                    currency <> $3::char(3) and sum(valued) > 0
               from lead_funnel_totals
              where tenant_id = $1 {of_client}
              group by stage, status, currency"
        );
        // The mean rank as `avg()` computes it (numeric division), so that stages tie exactly
        // when the raw reader's would.
        let stages_sql = &format!(
            "select stage, null::text, sum(leads)::bigint, (sum(rank_sum)::numeric / sum(leads))::float8
               from lead_funnel_stages
              where tenant_id = $1 {of_client}
              group by stage
             union all
             select stage, other_stage, sum(leads)::bigint, null
               from lead_funnel_pairs
              where tenant_id = $1 {of_client}
              group by stage, other_stage"
        );
        let (s1, s2) = try_join(
            self.client().prepare_cached(totals_sql),
            self.client().prepare_cached(stages_sql),
        )
        .await
        .ctx("computing funnel")?;
        let p1: [&(dyn ToSql + Sync); 3] = [&tenant, &client, &base];
        let p2: [&(dyn ToSql + Sync); 2] = [&tenant, &client];
        let (totals, stage_rows) =
            try_join(self.client().query(&s1, &p1), self.client().query(&s2, &p2))
                .await
                .ctx("computing funnel")?;
        let (foreign, mut by_status): (Vec<Row>, Vec<Row>) =
            totals.into_iter().partition(|r| r.get::<_, bool>(6));
        if !foreign.is_empty() {
            let column = |i: usize| foreign.iter().map(|r| r.get(i)).collect::<Vec<String>>();
            let (stages, statuses, currencies) = (column(0), column(1), column(2));
            let tz = "(select time_zone from tenants where id = $1)";
            let sql = format!(
                "select e.stage, e.status::text, e.currency::text, (e.event_date at time zone {tz})::date,
                        count(*), sum(e.value)
                   from lead_events e
                   join unnest($3::text[], $4::text[], $5::text[]) as k(stage, status, currency)
                     on e.stage = k.stage and e.status::text = k.status and e.currency = k.currency::char(3)
                  where e.tenant_id = $1 {of_client}
                  group by 1, 2, 3, 4"
            );
            let raw = self
                .client()
                .query(&sql, &[&tenant, &client, &stages, &statuses, &currencies])
                .await
                .ctx("computing funnel")?;
            by_status.extend(raw);
        }
        Ok((by_status, stage_rows))
    }

    /// One metric over all the tenant's clients, aggregated per bucket over `window`.
    pub async fn metric_report(
        &self,
        name: &str,
        bucket: Bucket,
        window: &BucketWindow,
    ) -> DbResult<Vec<MetricReportRow>> {
        let tz = "(select time_zone from tenants where id = $1)";
        let defined = crate::queries::metrics::DEFINED;
        let sql = format!(
            "with a as (
                 select date_trunc($5::text, record_date at time zone {tz})::date as b,
                        $4::text as metric_name, min(unit) as unit,
                        count(distinct client_kpi_id) as clients, count(*) as n,
                        sum(metric_value) as sum, round(avg(metric_value), 4) as avg,
                        min(metric_value) as min, max(metric_value) as max,
                        (array_agg(metric_value order by record_date desc, id desc))[1] as last
                   from custom_metrics
                  where tenant_id = $1 and metric_name = $4
                    and record_date >= ($2::date::timestamp at time zone {tz})
                    and record_date < (($3::date + 1)::timestamp at time zone {tz})
                  group by 1)
             select a.b, {defined}, a.clients, a.n, a.sum, a.avg, a.min, a.max
               from a left join metric_definitions d on d.tenant_id = $1 and d.name = a.metric_name
              order by 1"
        );
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("computing metric report")?;
        let rows = self
            .client()
            .query(
                &stmt,
                &[
                    &self.tenant_id(),
                    &window.from,
                    &window.to,
                    &name,
                    &bucket.as_str(),
                ],
            )
            .await
            .ctx("computing metric report")?;
        rows.iter()
            .map(|r| {
                Ok(MetricReportRow {
                    bucket_start: r.get(0),
                    display_name: r.get(1),
                    unit: r.get(2),
                    aggregation: crate::queries::metrics::aggregation(r, 3)?,
                    value: r.get(4),
                    clients: r.get(5),
                    count: r.get(6),
                    sum: r.get(7),
                    avg: r.get(8),
                    min: r.get(9),
                    max: r.get(10),
                })
            })
            .collect()
    }
}

/// The `$2` client filter of the funnel's statements: one text per case rather than
/// `($2 is null or client_kpi_id = $2)`, so that each cached generic plan uses its index well.
/// Both bind `$2` (`None` binds null), so the parameters are the same either way.
fn client_filter(client: Option<Uuid>) -> &'static str {
    if client.is_some() {
        "and client_kpi_id = $2"
    } else {
        "and $2::uuid is null"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn figures_round_once_and_keep_the_net_profit_identity() {
        let mut acc = Acc::default();
        acc.add(
            Some(dec("1.005")),
            "USD",
            Some(d("2025-01-01")),
            [dec("10.00"), dec("3.00"), dec("0")],
            2,
        );
        let f = acc.figures().unwrap();
        assert_eq!(f.revenue.to_string(), "10.05");
        assert_eq!(f.expenses.to_string(), "3.02");
        assert_eq!(f.net_profit.to_string(), "7.03");
        assert_eq!(f.cash_flow.to_string(), "0.00");
        assert_eq!(
            f.margin.unwrap().to_string(),
            "0.700",
            "7.03 / 10.05, rounded once"
        );
        acc.add(
            None,
            "GBP",
            Some(d("2025-01-02")),
            [dec("1"), dec("1"), dec("1")],
            1,
        );
        assert!(acc.figures().is_none());
        assert_eq!(Acc::default().figures().unwrap().margin, None);
    }
}
