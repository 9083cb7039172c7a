//! Retention of raw daily financials (issue 14 item 3, migrations/0022_retention.sql): the
//! scheduled deletion removes a tenant's raw rows (and day rollups) before its cutoff in
//! batches and keeps the monthly rollups; only the owner can keep rollups; loads skip rows
//! before the cutoff; a client's or tenant's deletion takes its kept months; partitions no tenant
//! needs are dropped; the overview's reads answer whole months from the kept rollups.

use chrono::{Datelike, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_domain::ingest::FinancialRow;
use zixly_testkit::TestDb;

use crate::partitions::import;

/// Monthly rows for `clients` over the last `months` months (before the current one): on the
/// 3rd, 15th and 27th, revenue `100 + client + month` cents-exact, expenses a third of it.
fn history_csv(clients: usize, months: u32) -> (String, usize) {
    let this_month = Utc::now().date_naive().with_day(1).unwrap();
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    let mut lines = 0;
    for m in 1..=months {
        let first = this_month - Months::new(m);
        for c in 0..clients {
            for d in [3, 15, 27] {
                let day = first.with_day(d).unwrap();
                let revenue = format!("{}.{:02}", 100 + c as u32 + m, d);
                csv.push_str(&format!(
                    "c{c},Client {c},{day},{revenue},{},{}\n",
                    (c as u32 + m) * 11 % 97,
                    m % 13
                ));
                lines += 1;
            }
        }
    }
    (csv, lines)
}

fn far_future() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()
}

async fn strings(db: &TestDb, sql: &str) -> Vec<String> {
    let su = db.superuser().await;
    su.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// The month rollups of `tenant` before (`<`) or from (`>=`) `cutoff`, as text.
async fn months(db: &TestDb, tenant: Uuid, op: &str, cutoff: NaiveDate) -> Vec<String> {
    strings(
        db,
        &format!(
            "select concat_ws('|', client_kpi_id, month, currency, revenue, expenses, cash_flow, row_count)
               from financial_months where tenant_id = '{tenant}' and month {op} '{cutoff}'
              order by client_kpi_id, month, currency"
        ),
    )
    .await
}

/// The same recomputed from the raw rows.
async fn raw_months(db: &TestDb, tenant: Uuid, op: &str, cutoff: NaiveDate) -> Vec<String> {
    strings(
        db,
        &format!(
            "select concat_ws('|', client_kpi_id, date_trunc('month', record_date)::date, currency,
                              sum(revenue), sum(expenses), sum(cash_flow), count(*))
               from financials where tenant_id = '{tenant}' and record_date {op} '{cutoff}'
              group by client_kpi_id, date_trunc('month', record_date)::date, currency
              order by client_kpi_id, date_trunc('month', record_date)::date, currency"
        ),
    )
    .await
}

async fn client_id(db: &TestDb, tenant: Uuid, external: &str) -> Uuid {
    strings(
        db,
        &format!("select id::text from client_kpis where tenant_id = '{tenant}' and client_id = '{external}'"),
    )
    .await[0]
    .parse()
    .unwrap()
}

async fn set_retention(db: &TestDb, tenant: Uuid, months: Option<i32>) -> NaiveDate {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let r = tx.set_retention(months).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(r.months, months);
    r.raw_data_from.unwrap_or(NaiveDate::MIN)
}

/// Revenue over `[from, to]` tenant-wide (or of `client`) as the overview reads it.
async fn revenue(
    db: &TestDb,
    tenant: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    client: Option<Uuid>,
) -> Decimal {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let (days, unconverted) = tx.daily_totals(from, to, client).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(unconverted, 0);
    days.iter().map(|d| d.revenue).sum()
}

#[tokio::test]
async fn retention_deletes_old_raw_rows_in_batches_and_keeps_the_months() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let other = db.tenant("Other").await;
    let (csv, lines) = history_csv(3, 14);
    import::<FinancialRow>(&db.app, tenant, &csv).await;
    import::<FinancialRow>(&db.app, other, &csv).await;

    let today = Utc::now().date_naive();
    let first = today.with_day(1).unwrap() - Months::new(14);
    let before_total = revenue(&db, tenant, first, today, None).await;
    let client = client_id(&db, tenant, "c1").await;
    let before_client = revenue(&db, tenant, first, today, Some(client)).await;
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let spans_before = tx.data_spans().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        spans_before.financials.unwrap().from(),
        first.with_day(3).unwrap()
    );

    // Nothing happens to a tenant without retention.
    assert!(db.system.apply_retention(10).await.unwrap().is_empty());

    let cutoff = set_retention(&db, tenant, Some(6)).await;
    assert_eq!(cutoff.day(), 1, "the cutoff is the first of a month");
    // Before the run has deleted anything, the months before the cutoff count once.
    assert_eq!(revenue(&db, tenant, first, today, None).await, before_total);
    assert_eq!(
        revenue(&db, tenant, first, today, Some(client)).await,
        before_client
    );
    let kept_before = months(&db, tenant, "<", cutoff).await;
    let old_rows = count(
        &db,
        &format!("select count(*) from financials where tenant_id = '{tenant}' and record_date < '{cutoff}'"),
    )
    .await;
    assert!(old_rows > 0 && (old_rows as usize) < lines);
    let recent_before = months(&db, tenant, ">=", cutoff).await;

    let runs = db.system.apply_retention(7).await.unwrap();
    assert_eq!(runs.len(), 1, "only the tenant with a retention period");
    let run = &runs[0];
    assert_eq!((run.tenant_id, run.raw_data_from), (tenant, cutoff));
    assert_eq!(run.deleted, old_rows as u64);
    // Batches of 7: the last one is the first to find fewer than 7 rows.
    assert_eq!(run.batches as i64, old_rows / 7 + 1);

    // Raw rows and day rollups before the cutoff are gone; the months are kept as they were.
    let remaining = |table: &str, column: &str| {
        format!(
            "select count(*) from {table} where tenant_id = '{tenant}' and {column} < '{cutoff}'"
        )
    };
    assert_eq!(count(&db, &remaining("financials", "record_date")).await, 0);
    assert_eq!(
        count(&db, &remaining("financial_tenant_days", "day")).await,
        0
    );
    assert_eq!(months(&db, tenant, "<", cutoff).await, kept_before);
    // From the cutoff on nothing changed, and every rollup still equals the raw rows.
    assert_eq!(months(&db, tenant, ">=", cutoff).await, recent_before);
    assert_eq!(recent_before, raw_months(&db, tenant, ">=", cutoff).await);
    assert_eq!(
        strings(&db, &format!(
            "select concat_ws('|', day, currency, revenue, expenses, cash_flow, row_count)
               from financial_tenant_days where tenant_id = '{tenant}' order by day, currency")).await,
        strings(&db, &format!(
            "select concat_ws('|', record_date, currency, sum(revenue), sum(expenses), sum(cash_flow), count(*))
               from financials where tenant_id = '{tenant}' group by record_date, currency
              order by record_date, currency")).await,
    );
    // The other tenant keeps everything.
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from financials where tenant_id = '{other}'")
        )
        .await,
        lines as i64
    );

    // Whole months are still reported, tenant-wide and per client, to the cent.
    assert_eq!(revenue(&db, tenant, first, today, None).await, before_total);
    assert_eq!(
        revenue(&db, tenant, first, today, Some(client)).await,
        before_client
    );
    // The Clients page's summaries too (whole months from the rollups).
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let summaries = tx.client_summaries(first, today, None).await.unwrap();
    tx.commit().await.unwrap();
    let c1 = summaries.iter().find(|c| c.id == client).unwrap();
    assert_eq!(c1.revenue, before_client);
    assert_eq!(c1.monthly_revenue.len(), 14);
    // The data span starts with the first kept month.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let spans = tx.data_spans().await.unwrap();
    let profile = tx.tenant_profile().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(spans.financials.unwrap().from(), first);
    assert_eq!(
        spans.financials.unwrap().to(),
        spans_before.financials.unwrap().to()
    );
    assert_eq!(profile.raw_data_from, Some(cutoff));

    // Audited once, by the system.
    let audit = strings(
        &db,
        &format!(
            "select concat_ws('|', actor_label, summary->>'deleted_rows', summary->>'deleted_before')
               from audit_logs where tenant_id = '{tenant}' and action = 'tenant.retention_applied'"
        ),
    )
    .await;
    assert_eq!(audit, vec![format!("system:retention|{old_rows}|{cutoff}")]);

    // A second run finds nothing and audits nothing.
    let again = db.system.apply_retention(7).await.unwrap();
    assert_eq!((again[0].deleted, again[0].batches), (0, 1));
    assert_eq!(
        count(&db, &format!(
            "select count(*) from audit_logs where tenant_id = '{tenant}' and action = 'tenant.retention_applied'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn only_the_owner_can_keep_the_rollups_of_a_deletion() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let (csv, _) = history_csv(2, 3);
    import::<FinancialRow>(&db.app, tenant, &csv).await;
    let all = far_future();
    // The app sets the switch and deletes: the month rollups follow the deletion all the same.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    tx.raw_batch(&format!(
        "set local zixly.keep_rollups = 'on';
         delete from financials where tenant_id = '{tenant}' and extract(day from record_date) = 15"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        months(&db, tenant, "<", all).await,
        raw_months(&db, tenant, "<", all).await
    );
    // Without the switch the owner's deletions follow too (the switch, not the role, keeps).
    let owner = TestDb::connect(&db.owner_url).await;
    owner
        .batch_execute(&format!(
            "delete from financials where tenant_id = '{tenant}' and extract(day from record_date) = 3"
        ))
        .await
        .unwrap();
    assert_eq!(
        months(&db, tenant, "<", all).await,
        raw_months(&db, tenant, "<", all).await
    );
    // With it, the owner's deletion keeps the months.
    let kept = months(&db, tenant, "<", all).await;
    owner
        .batch_execute(&format!(
            "begin; set local zixly.keep_rollups = 'on';
             delete from financials where tenant_id = '{tenant}'; commit"
        ))
        .await
        .unwrap();
    assert_eq!(months(&db, tenant, "<", all).await, kept);
    assert!(raw_months(&db, tenant, "<", all).await.is_empty());
}

#[tokio::test]
async fn after_retention_loads_skip_old_rows_and_deletions_take_the_kept_months() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let (csv, lines) = history_csv(2, 10);
    import::<FinancialRow>(&db.app, tenant, &csv).await;
    let cutoff = set_retention(&db, tenant, Some(4)).await;
    db.system.apply_retention(1000).await.unwrap();
    let kept = months(&db, tenant, "<", far_future()).await;

    // A re-sync of the whole history: the old rows are counted, not stored (their months hold
    // them already); the recent ones are unchanged.
    let report = import::<FinancialRow>(&db.app, tenant, &csv).await;
    let old_lines = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(2).unwrap() < cutoff.to_string().as_str())
        .count() as u64;
    assert!(old_lines > 0);
    assert_eq!(report.before_retention, old_lines);
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 0, lines as u64 - old_lines)
    );
    assert_eq!(months(&db, tenant, "<", far_future()).await, kept);

    // A client's deletion takes its kept months with it; the other client's stay.
    crate::rollups::delete_client(&db, tenant, "c0").await;
    let c1 = client_id(&db, tenant, "c1").await;
    let left = strings(
        &db,
        &format!("select distinct client_kpi_id::text from financial_months where tenant_id = '{tenant}'"),
    )
    .await;
    assert_eq!(left, vec![c1.to_string()]);

    // And a tenant's deletion every month of it.
    assert!(db.system.delete_tenant(tenant).await.unwrap());
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from financial_months where tenant_id = '{tenant}'")
        )
        .await,
        0
    );
}

#[tokio::test]
async fn partitions_before_every_tenants_cutoff_are_dropped_once_empty() {
    let db = TestDb::new().await;
    let a = db.tenant("A").await;
    let b = db.tenant("B").await;
    let (csv, _) = history_csv(1, 12);
    import::<FinancialRow>(&db.app, a, &csv).await;
    import::<FinancialRow>(&db.app, b, &csv).await;
    let partitions = || {
        strings(
            &db,
            "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
              where i.inhparent = 'financials'::regclass order by 1",
        )
    };
    let all = partitions().await;

    // One tenant keeps everything: nothing is dropped, whatever the other deleted.
    set_retention(&db, a, Some(3)).await;
    db.system.apply_retention(1000).await.unwrap();
    assert!(db
        .system
        .drop_retained_partitions()
        .await
        .unwrap()
        .is_empty());

    // Both with retention: the months before the earlier cutoff go (b keeps 6 months).
    let cutoff_b = set_retention(&db, b, Some(6)).await;
    db.system.apply_retention(1000).await.unwrap();
    let dropped = db.system.drop_retained_partitions().await.unwrap();
    let expected: Vec<String> = all
        .iter()
        .filter(|p| {
            p.strip_prefix("financials_p").is_some_and(|ym| {
                NaiveDate::parse_from_str(&format!("{ym}_01"), "%Y_%m_%d")
                    .is_ok_and(|m| m < cutoff_b)
            })
        })
        .cloned()
        .collect();
    assert!(expected.len() >= 5, "{all:?}");
    assert_eq!(dropped, expected);
    assert_eq!(
        partitions().await,
        all.iter()
            .filter(|p| !expected.contains(p))
            .cloned()
            .collect::<Vec<_>>()
    );
    // Reports still read the kept months of both tenants; loads of old dates still work (the
    // month gets its partition again, and the row is skipped as before the cutoff).
    let report = import::<FinancialRow>(
        &db.app,
        b,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\nc0,Client 0,1998-03-04,1.00,0,0\n",
    )
    .await;
    assert_eq!((report.inserted, report.before_retention), (0, 1));
    assert_eq!(
        count(&db, &format!("select count(*) from financial_months where tenant_id = '{b}' and month < '{cutoff_b}'")).await,
        12 - 6
    );
}

/// A foreign-currency month before the cutoff: the profitability report, the alerts' batched
/// buckets and the overview's day totals count it the same way before the retention run (raw rows
/// still there) and after it (only the month kept): whole, in the period holding its first day,
/// converted at that day's rate. Before this, the report and the alerts read such a month's raw
/// days, so it dropped out once the run had deleted them.
#[tokio::test]
async fn a_foreign_month_before_the_cutoff_counts_the_same_before_and_after_the_run() {
    use zixly_db::queries::reports::ProfitabilityQuery;
    use zixly_domain::period::{Bucket, DateRange};

    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let a = Uuid::now_v7();
    // 14 months back: AUD on the 3rd and 15th, USD on the 10th; rates EUR->AUD 1.5 and
    // EUR->USD 1.2 on every month's first day (USD->AUD 1.25 exactly).
    db.superuser()
        .await
        .batch_execute(&format!(
            "insert into client_kpis (tenant_id, id, client_id, client_name) values ('{tenant}', '{a}', 'A', 'Alpha');
             insert into fx_rates (rate_date, base_currency, quote_currency, rate)
             select (date_trunc('month', current_date) - m * interval '1 month')::date, 'EUR', q, r
               from generate_series(0, 16) m, (values ('AUD', 1.5), ('USD', 1.2)) v(q, r);
             insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit,
                                     cash_flow, currency, source_system)
             select '{tenant}', '{a}', (date_trunc('month', current_date) - m * interval '1 month')::date + d - 1,
                    100 + m + d / 100.0, 10 + m, 90 + d / 100.0 - 0, 1, cur, 'csv'
               from generate_series(1, 14) m, (values (3, 'AUD'), (15, 'AUD'), (10, 'USD')) v(d, cur);"
        ))
        .await
        .unwrap();
    let this_month = Utc::now().date_naive().with_day(1).unwrap();
    let cutoff = set_retention(&db, tenant, Some(6)).await;
    // A range before the cutoff that starts inside a month: from the 5th of the 11th month back
    // to the end of the 9th (the 11th counts in the period before, which holds its first day).
    let from = (this_month - Months::new(11)).with_day(5).unwrap();
    let to = this_month - Months::new(8) - chrono::Days::new(1);
    assert!(to < cutoff, "{to} {cutoff}");
    let range = DateRange::new(from, to).unwrap();

    let read = || async {
        let tx = db.app.begin_tenant(tenant).await.unwrap();
        let report = tx
            .profitability(&ProfitabilityQuery {
                range,
                after: None,
                limit: 10,
            })
            .await
            .unwrap();
        let (days, unconverted) = tx.daily_totals(from, to, None).await.unwrap();
        assert_eq!(unconverted, 0);
        let month_from = this_month - Months::new(14);
        let buckets = tx
            .client_financial_buckets(Bucket::Month, month_from, to)
            .await
            .unwrap()
            .series("revenue", a, Bucket::Month, month_from, to)
            .unwrap();
        let series = tx
            .kpi_series("revenue", Some(a), Bucket::Month, month_from, to)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(buckets, series, "the alerts' batched read is kpi_series'");
        let current = report.rows[0].current.clone().expect("every rate present");
        let overview: Decimal = days.iter().map(|d| d.revenue).sum();
        (current, report.rows[0].previous.clone(), overview, buckets)
    };
    let before = read().await;
    // Months 10 and 9 back, each 2 AUD days and 1 USD day at 1.25.
    let expected: Decimal = [10u32, 9]
        .iter()
        .map(|&m| {
            let m = Decimal::from(m);
            let day = |d: i64| Decimal::from(100) + m + Decimal::new(d, 2);
            day(3) + day(15) + day(10) * Decimal::new(125, 2)
        })
        .sum();
    assert_eq!(before.0.revenue, expected);
    // The overview rounds each day's (here: each kept month's) converted sum to cents.
    let per_entry: Decimal = [10u32, 9]
        .iter()
        .map(|&m| {
            let m = Decimal::from(m);
            let day = |d: i64| Decimal::from(100) + m + Decimal::new(d, 2);
            (day(3) + day(15) + day(10) * Decimal::new(125, 2))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        })
        .sum();
    assert_eq!(
        before.2, per_entry,
        "the overview's sum over the same range"
    );
    assert_eq!(before.0.records, 6);

    assert!(!db.system.apply_retention(5).await.unwrap().is_empty());
    assert_eq!(
        count(&db, &format!("select count(*) from financials where tenant_id = '{tenant}' and record_date < '{cutoff}'")).await,
        0
    );
    let after = read().await;
    assert_eq!(
        after, before,
        "the same figures once only the months are kept"
    );
}
