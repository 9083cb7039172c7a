//! The monthly rollups (migrations/0015_rollups.sql) against the raw rows they summarise.
//!
//! A property test applies random sequences of loads (through the loader: inserts and updates of
//! existing keys), updates that move rows to other days, months and currencies, deletions of
//! days and deletions of whole clients (their cascade), all as `zixly_app` under RLS, and checks
//! after every step that `financial_months` (0015) and `financial_tenant_days` (0019) equal the
//! aggregates recomputed from `financials` to the cent, and that the readers on them — the
//! profitability report and a client's month buckets (whole months from the rollups), the
//! overview's tenant days, client summaries and data span — equal the same figures summed from
//! raw rows, over a random range.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_db::queries::reports::ProfitabilityQuery;
use zixly_domain::ingest::FinancialRow;
use zixly_domain::period::{Bucket, BucketWindow, DateRange};
use zixly_testkit::TestDb;

const CLIENTS: u8 = 3;
const DAYS: u16 = 150;

fn base_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
}

fn day(offset: i64) -> NaiveDate {
    if offset >= 0 {
        base_day() + Days::new(offset as u64)
    } else {
        base_day() - Days::new(offset.unsigned_abs())
    }
}

#[derive(Debug, Clone)]
struct Row {
    client: u8,
    day: u16,
    source: u8,
    revenue: i64,
    expenses: i64,
    cash_flow: i64,
    usd: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// Through the loader; keys already stored are updated.
    Load(Vec<Row>),
    /// `update … set record_date = record_date + shift` over a client's days.
    Move {
        client: u8,
        from: u16,
        len: u16,
        shift: i16,
    },
    /// Flips the currency (AUD ↔ USD) and changes the revenue of a client's days.
    Recurrency {
        client: u8,
        from: u16,
        len: u16,
    },
    /// An update that touches no summed column.
    Touch {
        client: u8,
    },
    DeleteDays {
        client: u8,
        from: u16,
        len: u16,
    },
    DeleteClient(u8),
}

fn cents(c: i64) -> String {
    Decimal::new(c, 2).to_string()
}

fn row() -> impl Strategy<Value = Row> {
    (
        0..CLIENTS,
        0..DAYS,
        0u8..2,
        -50_000i64..500_000,
        0i64..300_000,
        -100_000i64..100_000,
        any::<bool>(),
    )
        .prop_map(
            |(client, day, source, revenue, expenses, cash_flow, usd)| Row {
                client,
                day,
                source,
                revenue,
                expenses,
                cash_flow,
                usd,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(row(), 1..40).prop_map(Op::Load),
        1 => (0..CLIENTS, 0..DAYS, 1u16..60, -45i16..45)
            .prop_map(|(client, from, len, shift)| Op::Move { client, from, len, shift }),
        1 => (0..CLIENTS, 0..DAYS, 1u16..60).prop_map(|(client, from, len)| Op::Recurrency { client, from, len }),
        1 => (0..CLIENTS).prop_map(|client| Op::Touch { client }),
        1 => (0..CLIENTS, 0..DAYS, 1u16..40).prop_map(|(client, from, len)| Op::DeleteDays { client, from, len }),
        1 => (0..CLIENTS).prop_map(Op::DeleteClient),
    ]
}

/// A range inside (or around) the data, from a day to a length.
fn range() -> impl Strategy<Value = (i64, u64)> {
    (-40i64..(DAYS as i64 + 40), 0u64..200)
}

async fn load(db: &TestDb, tenant: Uuid, rows: &[Row]) {
    // One row per stored key (client, day, source): a file may not give one key two values.
    let mut by_key = BTreeMap::new();
    for r in rows {
        by_key.insert((r.client, r.day, r.source), r.clone());
    }
    let mut csv = String::from(
        "client_id,client_name,record_date,revenue,expenses,net_profit,cash_flow,currency,source_system\n",
    );
    for r in by_key.values() {
        csv.push_str(&format!(
            "C{c},Client {c},{d},{rev},{exp},,{cf},{cur},{src}\n",
            c = r.client,
            d = day(i64::from(r.day)),
            rev = cents(r.revenue),
            exp = cents(r.expenses),
            cf = cents(r.cash_flow),
            cur = if r.usd { "USD" } else { "AUD" },
            src = ["csv", "xero"][usize::from(r.source)],
        ));
    }
    crate::partitions::import::<FinancialRow>(&db.app, tenant, &csv).await;
}

async fn apply(db: &TestDb, tenant: Uuid, op: &Op) {
    let client_filter = |c: u8| {
        format!("client_kpi_id = (select id from client_kpis where tenant_id = '{tenant}' and client_id = 'C{c}')")
    };
    let days = |from: u16, len: u16| {
        format!(
            "record_date between '{}' and '{}'",
            day(i64::from(from)),
            day(i64::from(from) + i64::from(len) - 1)
        )
    };
    let sql = match op {
        Op::Load(rows) => return load(db, tenant, rows).await,
        Op::Move {
            client,
            from,
            len,
            shift,
        } => {
            // Moving onto a day the same source already has would break the natural key; those
            // rows stay (the statement must succeed to say anything about the rollups).
            format!(
                "update financials f set record_date = f.record_date + {shift}
                  where tenant_id = '{tenant}' and {} and {}
                    and not exists (select 1 from financials o
                                     where o.tenant_id = f.tenant_id and o.client_kpi_id = f.client_kpi_id
                                       and o.source_system = f.source_system
                                       and o.record_date = f.record_date + {shift})",
                client_filter(*client),
                days(*from, *len)
            )
        }
        Op::Recurrency { client, from, len } => format!(
            "update financials set currency = case when currency = 'AUD' then 'USD' else 'AUD' end,
                    revenue = revenue + 1.01, net_profit = net_profit + 1.01
              where tenant_id = '{tenant}' and {} and {}",
            client_filter(*client),
            days(*from, *len)
        ),
        Op::Touch { client } => format!(
            "update financials set external_id = coalesce(external_id, '') || 'x'
              where tenant_id = '{tenant}' and {}",
            client_filter(*client)
        ),
        Op::DeleteDays { client, from, len } => format!(
            "delete from financials where tenant_id = '{tenant}' and {} and {}",
            client_filter(*client),
            days(*from, *len)
        ),
        Op::DeleteClient(c) => {
            return crate::rollups::delete_client(db, tenant, &format!("C{c}")).await;
        }
    };
    crate::rollups::execute_as_app(db, tenant, &sql).await;
}

/// Deletes the client with external id `client_id` (if there is one) as the app does, its data
/// cascading through the rollup triggers. (Shared with the funnel rollups' test.)
pub(crate) async fn delete_client(db: &TestDb, tenant: Uuid, client_id: &str) {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let id = tx
        .raw_strings(&format!(
            "select id::text from client_kpis where tenant_id = '{tenant}' and client_id = '{client_id}'"
        ))
        .await
        .unwrap();
    if let Some(Some(id)) = id.first() {
        tx.delete_client(id.parse().unwrap()).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Runs one hand-written statement as `zixly_app` in the tenant, and commits.
pub(crate) async fn execute_as_app(db: &TestDb, tenant: Uuid, sql: &str) {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    tx.raw_execute(sql).await.unwrap();
    tx.commit().await.unwrap();
}

/// The first (text) column of every row `sql` answers.
async fn first_column(client: &tokio_postgres::Client, sql: String) -> Vec<String> {
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// The rollups as stored, and as recomputed from the raw rows (read as the superuser, so neither
/// side depends on the app's RLS or on the report code).
async fn rollups_and_raw(db: &TestDb, tenant: Uuid) -> (Vec<String>, Vec<String>) {
    let su = db.superuser().await;
    let read = |sql: String| first_column(&su, sql);
    let stored = read(format!(
        "select concat_ws('|', client_kpi_id, month, currency, revenue, expenses, cash_flow, row_count)
           from financial_months where tenant_id = '{tenant}'
          order by client_kpi_id, month, currency"
    ))
    .await;
    let raw = read(format!(
        "select concat_ws('|', client_kpi_id, date_trunc('month', record_date)::date, currency,
                          sum(revenue), sum(expenses), sum(cash_flow), count(*))
           from financials where tenant_id = '{tenant}'
          group by client_kpi_id, date_trunc('month', record_date)::date, currency
          order by client_kpi_id, date_trunc('month', record_date)::date, currency"
    ))
    .await;
    let stored_days = read(format!(
        "select concat_ws('|', 'day', day, currency, revenue, expenses, cash_flow, row_count)
           from financial_tenant_days where tenant_id = '{tenant}'
          order by day, currency"
    ))
    .await;
    let raw_days = read(format!(
        "select concat_ws('|', 'day', record_date, currency, sum(revenue), sum(expenses), sum(cash_flow), count(*))
           from financials where tenant_id = '{tenant}'
          group by record_date, currency
          order by record_date, currency"
    ))
    .await;
    (
        stored.into_iter().chain(stored_days).collect(),
        raw.into_iter().chain(raw_days).collect(),
    )
}

/// The overview's financial reads over `[from, to]` — tenant-wide days (from the tenant's day
/// rollups), each client's summary (whole months from the month rollups) and the data span —
/// and the same recomputed from raw rows (USD at the exact 1.2, as in [`report_and_raw`]).
async fn overview_and_raw(
    db: &TestDb,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> (Vec<String>, Vec<String>) {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let (days, unconverted) = tx.daily_totals(from, to, None).await.unwrap();
    let clients = tx.client_summaries(from, to, None).await.unwrap();
    let spans = tx.data_spans().await.unwrap();
    tx.commit().await.unwrap();
    let mut got = vec![format!("unconverted {unconverted}")];
    got.extend(days.iter().map(|d| {
        format!(
            "day|{}|{}|{}|{}|{}",
            d.date, d.revenue, d.expenses, d.net_profit, d.cash_flow
        )
    }));
    got.extend(clients.iter().map(|c| {
        let months: Vec<String> = c
            .monthly_revenue
            .iter()
            .map(|(m, r)| format!("{m}:{r}"))
            .collect();
        format!(
            "client|{}|{}|{}|{}|{}",
            c.client_id,
            months.join(","),
            c.revenue,
            c.expenses,
            c.net_profit
        )
    }));
    got.push(format!(
        "span|{:?}",
        spans.financials.map(|s| (s.from(), s.to()))
    ));

    let su = db.superuser().await;
    let k = "case when f.currency = 'USD' then 1.2 else 1 end";
    let in_range =
        format!("f.tenant_id = '{tenant}' and f.record_date between '{from}' and '{to}'");
    let read = |sql: String| first_column(&su, sql);
    let mut expected = vec!["unconverted 0".to_string()];
    expected.extend(
        read(format!(
            "select concat_ws('|', 'day', f.record_date, round(sum(f.revenue * {k}), 2),
                              round(sum(f.expenses * {k}), 2),
                              round(sum(f.revenue * {k}), 2) - round(sum(f.expenses * {k}), 2),
                              round(sum(f.cash_flow * {k}), 2))
               from financials f where {in_range}
              group by f.record_date order by f.record_date"
        ))
        .await,
    );
    expected.extend(
        read(format!(
            "select concat_ws('|', 'client', c.client_id,
                     coalesce((select string_agg(m || ':' || r, ',' order by m)
                                 from (select date_trunc('month', f.record_date)::date as m,
                                              round(sum(f.revenue * {k}), 2) as r
                                         from financials f where {in_range} and f.client_kpi_id = c.id
                                        group by 1) x), ''),
                     t.r, t.e, t.r - t.e)
               from client_kpis c
              cross join lateral (select round(coalesce(sum(f.revenue * {k}), 0), 2) as r,
                                         round(coalesce(sum(f.expenses * {k}), 0), 2) as e
                                    from financials f where {in_range} and f.client_kpi_id = c.id) t
              where c.tenant_id = '{tenant}'
              order by lower(c.client_name), c.id"
        ))
        .await,
    );
    let span: Vec<(Option<NaiveDate>, Option<NaiveDate>)> = su
        .query(
            "select min(record_date), max(record_date) from financials where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    expected.push(format!(
        "span|{:?}",
        match span[0] {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        }
    ));
    (got, expected)
}

/// Per client: (records, revenue, expenses, cash flow) of the report's current and previous
/// periods, and the same summed from raw rows (USD at the fixed 1.5 / 1.25 = 1.2 of the test's
/// rates: exact, so both sides round the same full-precision sums).
async fn report_and_raw(
    db: &TestDb,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> (Vec<String>, Vec<String>) {
    let range = DateRange::new(from, to).unwrap();
    let previous = range.previous();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let report = tx
        .profitability(&ProfitabilityQuery {
            range,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let fig = |p: &Option<zixly_db::queries::reports::PeriodFigures>| match p {
        Some(p) if p.records > 0 => {
            format!("{}|{}|{}|{}", p.records, p.revenue, p.expenses, p.cash_flow)
        }
        Some(_) => "-".to_string(),
        None => "missing rate".to_string(),
    };
    let got = report
        .rows
        .iter()
        .map(|r| format!("{}|{}|{}", r.client_id, fig(&r.current), fig(&r.previous)))
        .collect();
    let su = db.superuser().await;
    let period = |a: NaiveDate, b: NaiveDate| {
        format!(
            "(select case when count(f.*) = 0 then '-' else concat_ws('|', count(f.*),
                        round(sum(f.revenue * case when f.currency = 'USD' then 1.2 else 1 end), 2),
                        round(sum(f.expenses * case when f.currency = 'USD' then 1.2 else 1 end), 2),
                        round(sum(f.cash_flow * case when f.currency = 'USD' then 1.2 else 1 end), 2)) end
                from financials f where f.tenant_id = c.tenant_id and f.client_kpi_id = c.id
                 and f.record_date between '{a}' and '{b}')"
        )
    };
    let expected = su
        .query(
            &format!(
                "select concat_ws('|', c.client_id, {}, {}) from client_kpis c
                  where c.tenant_id = '{tenant}' order by lower(c.client_name), c.id",
                period(range.from(), range.to()),
                period(previous.from(), previous.to())
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    (got, expected)
}

/// One client's monthly buckets from the API's reader (rollups for whole months) and from raw rows.
async fn buckets_and_raw(
    db: &TestDb,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> (Vec<String>, Vec<String>) {
    let su = db.superuser().await;
    let clients: Vec<Uuid> = su
        .query(
            "select id from client_kpis where tenant_id = $1 order by client_id",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let window = BucketWindow {
        from,
        to,
        next: None,
    };
    let mut got = Vec::new();
    for &c in &clients {
        for b in tx
            .financial_buckets(c, Bucket::Month, &window)
            .await
            .unwrap()
        {
            got.push(format!(
                "{c}|{}|{}|{}|{}|{}|{}|{}",
                b.bucket_start,
                b.currency,
                b.rows,
                b.revenue,
                b.expenses,
                b.net_profit,
                b.cash_flow
            ));
        }
    }
    tx.commit().await.unwrap();
    let expected = su
        .query(
            "select concat_ws('|', client_kpi_id, date_trunc('month', record_date)::date, currency,
                              count(*), sum(revenue), sum(expenses), sum(net_profit), sum(cash_flow))
               from financials where tenant_id = $1 and record_date between $2 and $3
              group by client_kpi_id, date_trunc('month', record_date)::date, currency
              order by (select client_id from client_kpis k where k.id = client_kpi_id),
                       date_trunc('month', record_date)::date, currency",
            &[&tenant, &from, &to],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    (got, expected)
}

#[test]
fn rollups_equal_the_raw_rows_after_every_write() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new());
    rt.block_on(async {
        let su = db.superuser().await;
        su.batch_execute(
            "insert into fx_rates (rate_date, base_currency, quote_currency, rate)
             select d::date, 'EUR', q, r
               from generate_series('2023-10-01'::date, '2024-09-30'::date, '1 day') d,
                    (values ('AUD', 1.5), ('USD', 1.25)) as x(q, r)",
        )
        .await
        .unwrap();
    });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(
            &(
                prop::collection::vec(op(), 1..14),
                prop::collection::vec(range(), 1..14),
            ),
            |(ops, ranges)| {
                let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rt.block_on(async {
                    let tenant = db.tenant(&format!("Rollups {case}")).await;
                    for (i, op) in ops.iter().enumerate() {
                        apply(&db, tenant, op).await;
                        let (stored, raw) = rollups_and_raw(&db, tenant).await;
                        prop_assert_eq!(stored, raw, "after step {} ({:?})", i, op);
                        let (start, len) = ranges[i % ranges.len()];
                        let from = day(start);
                        let to = from + Days::new(len);
                        let (report, expected) = report_and_raw(&db, tenant, from, to).await;
                        prop_assert_eq!(
                            report,
                            expected,
                            "report {}..{} after step {}",
                            from,
                            to,
                            i
                        );
                        let (buckets, expected) = buckets_and_raw(&db, tenant, from, to).await;
                        prop_assert_eq!(
                            buckets,
                            expected,
                            "month buckets {}..{} after step {}",
                            from,
                            to,
                            i
                        );
                        let (overview, expected) = overview_and_raw(&db, tenant, from, to).await;
                        prop_assert_eq!(
                            overview,
                            expected,
                            "overview {}..{} after step {}",
                            from,
                            to,
                            i
                        );
                    }
                    Ok(())
                })
            },
        )
        .unwrap();
}

/// The backfill of migration 0015 over rows written before it: the same rollups as the triggers.
#[tokio::test]
async fn the_migration_backfills_rollups_of_existing_rows() {
    let db = TestDb::at_version(14).await;
    let su = db.superuser().await;
    su.batch_execute(
        "insert into tenants (id, name) values ('00000000-0000-0000-0000-0000000000a1', 'Before');
         insert into client_kpis (tenant_id, id, client_id, client_name)
              values ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000c1', 'C', 'C');
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency)
         select '00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000c1',
                d::date, 10.05, 3.01, 7.04, 1, case when extract(day from d) < 10 then 'USD' else 'AUD' end
           from generate_series('2025-01-20'::date, '2025-03-05'::date, '1 day') d;",
    )
    .await
    .unwrap();
    // From 0015 on (later migrations follow it).
    let applied = zixly_db::migrate::run(&db.owner_url).await.unwrap();
    assert_eq!(applied.first(), Some(&15), "{applied:?}");
    let rows: Vec<String> = su
        .query(
            "select concat_ws('|', month, currency, revenue, expenses, cash_flow, row_count)
               from financial_months order by month, currency",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [
            "2025-01-01|AUD|120.60|36.12|12.00|12",
            "2025-02-01|AUD|190.95|57.19|19.00|19",
            "2025-02-01|USD|90.45|27.09|9.00|9",
            "2025-03-01|USD|50.25|15.05|5.00|5",
        ]
    );
    // 0019's per-tenant days: the same rows per day.
    let days = su
        .query_one(
            "select count(*), sum(row_count)::bigint, sum(revenue)::text, min(day)::text, max(day)::text
               from financial_tenant_days",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            days.get::<_, i64>(0),
            days.get::<_, i64>(1),
            days.get::<_, String>(2),
            days.get::<_, String>(3),
            days.get::<_, String>(4)
        ),
        (
            45,
            45,
            "452.25".to_string(),
            "2025-01-20".to_string(),
            "2025-03-05".to_string()
        )
    );
}

/// Two transactions of `tenant` writing through `insert(client, day)`, each in two statements
/// over days 1 and 2 in opposite orders: the first writes client 0's day 1, waits until the
/// second has started (client 1's day 2, then day 1), then writes day 2 and commits. Without a
/// per-tenant lock taken before any row is written, the rollups' per-tenant day rows make this a
/// deadlock. (Shared with the funnel rollups' test.)
pub(crate) async fn two_writers_in_opposite_orders(
    db: &TestDb,
    tenant: Uuid,
    insert: impl Fn(u8, u32) -> String,
) {
    let first = db.app.begin_tenant(tenant).await.unwrap();
    first.raw_execute(&insert(0, 1)).await.unwrap();
    let second = async {
        let tx = db.app.begin_tenant(tenant).await.unwrap();
        tx.raw_execute(&insert(1, 2)).await.unwrap();
        tx.raw_execute(&insert(1, 1)).await.unwrap();
        tx.commit().await.unwrap();
    };
    let first_goes_on = async {
        // Give the second transaction time to reach the lock before the first goes on.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        first.raw_execute(&insert(0, 2)).await.unwrap();
        first.commit().await.unwrap();
    };
    tokio::join!(second, first_goes_on);
}

/// Two transactions writing financials of two clients of one tenant, each in two statements over
/// the same two days in opposite orders. The tenant's day rows (0019) are shared by its clients,
/// so without the tenant's lock (taken before any row is written) the second statements would
/// wait on each other's day rows: a deadlock, and one load lost. With it, the second transaction
/// waits at its first statement until the first commits, and the rollups add up.
#[tokio::test]
async fn two_writers_of_one_tenants_financials_run_one_after_the_other() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Two financial writers").await;
    load(
        &db,
        tenant,
        &[0, 1].map(|client| Row {
            client,
            day: 0,
            source: 0,
            revenue: 100,
            expenses: 0,
            cash_flow: 0,
            usd: false,
        }),
    )
    .await;
    let insert = |client: u8, d: i64| {
        format!(
            "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit,
                                     cash_flow, currency, source_system)
             select tenant_id, id, '{}', 10, 1, 9, 0, 'AUD', 'hand'
               from client_kpis where tenant_id = '{tenant}' and client_id = 'C{client}'",
            day(d)
        )
    };
    two_writers_in_opposite_orders(&db, tenant, |client, d| insert(client, i64::from(d))).await;
    let (stored, raw) = rollups_and_raw(&db, tenant).await;
    assert_eq!(stored, raw);
    assert_eq!(
        stored.iter().filter(|r| r.starts_with("day|")).count(),
        3,
        "{stored:?}"
    );
}
