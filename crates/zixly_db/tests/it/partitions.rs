//! Monthly partitions of the time series (issue 14 item 1, migrations/0014_partitions.sql):
//! created by the real loader for any month it meets and ahead by the scheduler's job, refused
//! by name to the application and BI roles, and the in-place conversion of a populated database.

use futures_util::stream;
use tokio_postgres::error::SqlState;
use uuid::Uuid;
use zixly_db::bi_roles::{self, BiRoleName};
use zixly_db::connect::with_credentials;
use zixly_db::loader::{self, LoadOptions, LoadReport, LoadStatus, Loadable};
use zixly_domain::ingest::{CsvRows, CustomMetricRow, FinancialRow, LeadEventRow};
use zixly_testkit::TestDb;

const TABLES: [&str; 3] = ["financials", "lead_events", "custom_metrics"];

/// Loads `csv` through the CSV parser and the loader, as `zixly_app`; the load must succeed.
/// (Shared by the rollup tests.)
pub(crate) async fn import<T: Loadable>(
    app: &zixly_db::AppDb,
    tenant: Uuid,
    csv: &str,
) -> LoadReport {
    let ctx = loader::ingest_context(app, tenant, "csv").await.unwrap();
    let rows: Vec<_> = CsvRows::<_, T>::new(csv.as_bytes(), ctx)
        .expect("valid header")
        .collect();
    let report = loader::load(
        app,
        tenant,
        &LoadOptions::new("csv"),
        stream::iter(rows),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.status, LoadStatus::Succeeded, "{:?}", report.errors);
    report
}

/// (table, partition) of every stored row, as the superuser sees them.
async fn placement(db: &TestDb) -> Vec<String> {
    let su = db.superuser().await;
    let mut out = Vec::new();
    for t in TABLES {
        for r in su
            .query(
                &format!(
                    "select tableoid::regclass::text, count(*) from {t} group by 1 order by 1"
                ),
                &[],
            )
            .await
            .unwrap()
        {
            out.push(format!("{}:{}", r.get::<_, String>(0), r.get::<_, i64>(1)));
        }
    }
    out
}

async fn defaults_are_empty(db: &TestDb) {
    let su = db.superuser().await;
    for t in TABLES {
        let n: i64 = su
            .query_one(&format!("select count(*) from {t}_default"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{t}_default must catch nothing");
    }
}

#[tokio::test]
async fn the_loader_creates_the_month_of_any_date_and_the_default_stays_empty() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    import::<FinancialRow>(
        &db.app,
        tenant,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         C1,One,1998-03-15,100,40,10\n\
         C1,One,2099-12-31,5,1,0\n\
         C1,One,1998-03-16,7,2,0\n",
    )
    .await;
    // 1999-01-01 00:30 in Sydney is 1998-12-31 13:30 UTC: the months are UTC's, like the bounds.
    import::<LeadEventRow>(
        &db.app,
        tenant,
        "client_id,client_name,event_date,lead_id,stage,value,status\n\
         C1,One,1999-01-01 00:30,L1,won,1000,won\n",
    )
    .await;
    import::<CustomMetricRow>(
        &db.app,
        tenant,
        "metric_name,client_id,metric_value,unit,record_date\n\
         nps,C1,40,score,2001-07-01T12:00:00Z\n",
    )
    .await;
    assert_eq!(
        placement(&db).await,
        [
            "financials_p1998_03:2",
            "financials_p2099_12:1",
            "lead_events_p1998_12:1",
            "custom_metrics_p2001_07:1"
        ]
    );
    defaults_are_empty(&db).await;
    // A re-load of the same file finds its partitions and changes nothing.
    let again = import::<FinancialRow>(
        &db.app,
        tenant,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         C1,One,1998-03-15,100,40,10\n",
    )
    .await;
    assert_eq!((again.inserted, again.unchanged), (0, 1));
}

#[tokio::test]
async fn two_loads_meeting_the_same_new_month_create_it_once() {
    let db = TestDb::new().await;
    let (a, b) = (db.tenant("A").await, db.tenant("B").await);
    let csv = "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
               C1,One,1997-05-02,1,0,0\n\
               C1,One,1996-02-02,1,0,0\n";
    let (ra, rb) = tokio::join!(
        import::<FinancialRow>(&db.app, a, csv),
        import::<FinancialRow>(&db.app, b, csv)
    );
    assert_eq!((ra.inserted, rb.inserted), (2, 2));
    let su = db.superuser().await;
    let parts: Vec<String> = su
        .query(
            "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
              where i.inhparent = 'financials'::regclass and c.relname in ('financials_p1997_05', 'financials_p1996_02')
              order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(parts, ["financials_p1996_02", "financials_p1997_05"]);
    defaults_are_empty(&db).await;
}

#[tokio::test]
async fn a_row_written_to_the_default_moves_when_its_month_is_created() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let su = db.superuser().await;
    su.batch_execute(&format!(
        "insert into client_kpis (tenant_id, client_id, client_name) values ('{tenant}', 'C1', 'One');
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
              select tenant_id, id, date '1990-06-01', 1, 0, 1, 0 from client_kpis;"
    ))
    .await
    .unwrap();
    assert_eq!(placement(&db).await, ["financials_default:1"]);
    import::<FinancialRow>(
        &db.app,
        tenant,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         C1,One,1990-06-02,1,0,0\n",
    )
    .await;
    assert_eq!(placement(&db).await, ["financials_p1990_06:2"]);
}

#[tokio::test]
async fn the_scheduler_drains_rows_out_of_the_defaults_and_the_bench_seed_writes_none_there() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let su = db.superuser().await;
    // Rows of every table inserted outside the loader, in months without a partition.
    su.batch_execute(&format!(
        "insert into client_kpis (tenant_id, client_id, client_name) values ('{tenant}', 'C1', 'One');
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
              select tenant_id, id, d, 1, 0, 1, 0 from client_kpis, (values (date '1991-03-01'), (date '1991-04-30')) v(d);
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status)
              select tenant_id, id, timestamptz '1991-05-31 23:30:00+00', 'L1', 'lead', 'active' from client_kpis;
         insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, record_date)
              select tenant_id, id, 'm', 1, timestamptz '1991-06-01 00:10:00+02' from client_kpis;"
    ))
    .await
    .unwrap();
    assert_eq!(
        placement(&db).await,
        [
            "financials_default:2",
            "lead_events_default:1",
            "custom_metrics_default:1"
        ]
    );
    // The month of a timestamptz is its UTC month: 1991-06-01 00:10+02 is in May.
    assert_eq!(db.system.drain_default_partitions().await.unwrap(), 4);
    assert_eq!(
        placement(&db).await,
        [
            "financials_p1991_03:1",
            "financials_p1991_04:1",
            "lead_events_p1991_05:1",
            "custom_metrics_p1991_05:1"
        ]
    );
    assert_eq!(db.system.drain_default_partitions().await.unwrap(), 0);

    // The bench seed, after creating its months the way `zixly bench api|alerts` do.
    let end: chrono::NaiveDate = "1993-02-14".parse().unwrap();
    db.system
        .create_month_partitions(end - chrono::Days::new(60), end + chrono::Days::new(10))
        .await
        .unwrap();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let seeded = tx.seed_synthetic_series(2, 60, end).await.unwrap();
    tx.commit().await.unwrap();
    assert!(seeded.financials > 0 && seeded.lead_events > 0 && seeded.custom_metrics > 0);
    defaults_are_empty(&db).await;
}

#[tokio::test]
async fn the_scheduler_job_creates_the_coming_months_once() {
    let db = TestDb::new().await;
    db.system.create_partitions_ahead(5).await.unwrap();
    assert_eq!(db.system.create_partitions_ahead(5).await.unwrap(), 0);
    let su = db.superuser().await;
    for t in TABLES {
        let missing: Vec<String> = su
            .query(
                &format!(
                    "select to_char(m, 'YYYY_MM') from generate_series(
                            date_trunc('month', now() at time zone 'UTC'),
                            date_trunc('month', now() at time zone 'UTC') + interval '5 months',
                            interval '1 month') m
                      where to_regclass('{t}_p' || to_char(m, 'YYYY_MM')) is null"
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            missing.is_empty(),
            "{t}: months without a partition: {missing:?}"
        );
    }
}

/// Every partition of the three tables: RLS enabled and forced, the parent's policies, and no
/// grant to anyone but its owner.
async fn partitions_are_locked_down(su: &tokio_postgres::Client) {
    let rows = su
        .query(
            "select c.relname::text, p.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                    coalesce((select array_agg(format('%s|%s|%s|%s|%s', x.policyname, x.permissive, x.cmd, x.qual, x.with_check) order by 1)
                                from pg_policies x where x.schemaname = 'public' and x.tablename = c.relname), '{}'),
                    coalesce((select array_agg(format('%s|%s|%s|%s|%s', x.policyname, x.permissive, x.cmd, x.qual, x.with_check) order by 1)
                                from pg_policies x where x.schemaname = 'public' and x.tablename = p.relname), '{}'),
                    has_table_privilege('zixly_app', c.oid, 'select,insert,update,delete'),
                    has_table_privilege('zixly_readonly', c.oid, 'select'),
                    pg_get_userbyid(c.relowner)::text
               from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
              where p.relname in ('financials', 'lead_events', 'custom_metrics')",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 3 * 5, "partitions found: {}", rows.len());
    for r in rows {
        let (part, parent): (String, String) = (r.get(0), r.get(1));
        assert!(
            r.get::<_, bool>(2) && r.get::<_, bool>(3),
            "{part}: RLS enabled and forced"
        );
        let (own, theirs): (Vec<String>, Vec<String>) = (r.get(4), r.get(5));
        assert!(!own.is_empty(), "{part}: policies");
        assert_eq!(own, theirs, "{part}: the policies of {parent}");
        assert!(!r.get::<_, bool>(6), "{part}: no grant to zixly_app");
        assert!(!r.get::<_, bool>(7), "{part}: no grant to zixly_readonly");
        assert_eq!(r.get::<_, String>(8), "zixly_owner", "{part}: owner");
    }
}

/// Selecting a partition by name is refused; through the parent, `client` sees its tenant only.
async fn named_partitions_are_refused(client: &tokio_postgres::Client, own: Uuid, own_rows: i64) {
    for part in [
        "financials_p2024_03",
        "financials_default",
        "lead_events_default",
    ] {
        let err = client
            .query(&format!("select * from {part}"), &[])
            .await
            .expect_err(part);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{part}: {err}"
        );
    }
    let row = client
        .query_one(
            "select count(*), count(*) filter (where tenant_id <> $1) from financials",
            &[&own],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (own_rows, 0));
}

/// Two tenants, two financial rows each in March 2024; returns them.
async fn two_tenants_with_rows(db: &TestDb) -> (Uuid, Uuid) {
    let (a, b) = (db.tenant("A").await, db.tenant("B").await);
    for t in [a, b] {
        import::<FinancialRow>(
            &db.app,
            t,
            "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
             C1,One,2024-03-01,1,0,0\n\
             C1,One,2024-03-02,1,0,0\n",
        )
        .await;
    }
    (a, b)
}

/// A `zixly_app` session scoped to `tenant` (session-wide, so that a refused statement does not
/// abort the scope for the next one).
async fn app_as_tenant(db: &TestDb, tenant: Uuid) -> tokio_postgres::Client {
    let app = TestDb::connect(&db.app_url).await;
    app.batch_execute(&format!(
        "select set_config('zixly.tenant_id', '{tenant}', false)"
    ))
    .await
    .unwrap();
    app
}

#[tokio::test]
async fn partitions_named_directly_are_refused_to_the_app_and_to_bi_logins() {
    let db = TestDb::new().await;
    let (a, _b) = two_tenants_with_rows(&db).await;
    let su = db.superuser().await;
    partitions_are_locked_down(&su).await;

    named_partitions_are_refused(&app_as_tenant(&db, a).await, a, 2).await;

    let role = format!("bi_{}_p", &db.name[2..18]);
    let password = "bi-login-partition-test";
    bi_roles::create(
        &db.superuser_url,
        &BiRoleName::parse(&role).unwrap(),
        a,
        password,
        bi_roles::DEFAULT_CONNECTION_LIMIT,
    )
    .await
    .unwrap();
    let bi = TestDb::connect(&with_credentials(&db.superuser_url, &role, password).unwrap()).await;
    named_partitions_are_refused(&bi, a, 2).await;
    drop(bi);
    bi_roles::drop(&db.superuser_url, &role).await.unwrap();
}

/// (table, rows, digest of every column of every row).
async fn fingerprint(su: &tokio_postgres::Client) -> Vec<(&'static str, i64, String)> {
    let mut out = Vec::new();
    for t in TABLES {
        let r = su
            .query_one(
                &format!("select count(*), md5(string_agg(row_to_json(x)::text, ',' order by x.id)) from {t} x"),
                &[],
            )
            .await
            .unwrap();
        out.push((t, r.get::<_, i64>(0), r.get::<_, String>(1)));
    }
    out
}

/// Rows in every table at migration 0013, in many months; the migration to 0014 keeps every row
/// (compared column by column), isolates tenants, and loads still work.
#[tokio::test]
async fn the_migration_converts_a_populated_database_in_place() {
    let db = TestDb::at_version(13).await;
    let (a, b) = (db.tenant("A").await, db.tenant("B").await);
    let su = db.superuser().await;
    for (t, clients) in [(a, 3), (b, 2)] {
        su.batch_execute(&format!(
            "insert into client_kpis (tenant_id, client_id, client_name)
                  select '{t}', 'C' || i, 'Client ' || i from generate_series(1, {clients}) i;
             insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow,
                                     currency, source_system, external_id, metadata)
                  select tenant_id, id, d::date, 100.25, 40, 60.25, -3, 'USD', 'xero', 'INV-' || d::date, '{{\"k\": 1}}'
                    from client_kpis, generate_series(date '2023-11-20', date '2024-02-10', interval '1 day') d
                   where tenant_id = '{t}';
             insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, status)
                  select tenant_id, id, d, 'L' || extract(epoch from d), 'won', 10, 'won'
                    from client_kpis, generate_series(timestamptz '2019-12-31 23:00:00+00', timestamptz '2020-03-01 00:00:00+00', interval '7 hours') d
                   where tenant_id = '{t}';
             insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date)
                  select tenant_id, id, 'nps', 42.5, 'score', d
                    from client_kpis, generate_series(timestamptz '2022-01-01 00:00:00+00', timestamptz '2022-04-30 00:00:00+00', interval '1 day') d
                   where tenant_id = '{t}';"
        ))
        .await
        .unwrap();
    }
    let before = fingerprint(&su).await;
    assert!(before.iter().all(|(_, n, _)| *n > 100), "{before:?}");

    assert_eq!(
        zixly_db::migrate::run_to(&db.owner_url, 14).await.unwrap(),
        [14]
    );
    let su = db.superuser().await;
    assert_eq!(fingerprint(&su).await, before, "every row, every column");
    for t in TABLES {
        let kind: i8 = su
            .query_one(
                &format!("select relkind::\"char\" from pg_class where oid = '{t}'::regclass"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(kind as u8, b'p', "{t} is partitioned");
    }
    let months: i64 = su
        .query_one(
            "select count(*) from pg_inherits where inhparent = 'financials'::regclass
               and inhrelid::regclass::text in ('financials_p2023_11', 'financials_p2023_12', 'financials_p2024_01', 'financials_p2024_02')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(months, 4);
    defaults_are_empty(&db).await;
    partitions_are_locked_down(&su).await;

    // RLS still isolates: tenant B's financial rows only.
    let b_rows: i64 = su
        .query_one(
            "select count(*) from financials where tenant_id = $1",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    let app = app_as_tenant(&db, b).await;
    let row = app
        .query_one(
            "select count(*), count(*) filter (where tenant_id <> $1) from financials",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (b_rows, 0));
    let err = app
        .query("select * from financials_p2024_01", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    drop(app);

    // Loads still work: an update of a converted row, a new old month, a client's deletion
    // cascades. (This binary's loader needs the whole schema: the later migrations first.)
    zixly_db::migrate::run(&db.owner_url).await.unwrap();
    let report = import::<FinancialRow>(
        &db.app,
        a,
        "client_id,client_name,record_date,revenue,expenses,cash_flow,currency,source_system,external_id\n\
         C1,Client 1,2024-01-05,1,0,0,AUD,xero,INV-2024-01-05\n\
         C1,Client 1,1998-07-01,1,0,0,AUD,xero,\n",
    )
    .await;
    assert_eq!((report.inserted, report.updated), (1, 1));
    su.execute(
        "delete from client_kpis where tenant_id = $1 and client_id = 'C2'",
        &[&a],
    )
    .await
    .unwrap();
    let left: i64 = su
        .query_one(
            "select count(*) from financials f where tenant_id = $1
               and not exists (select 1 from client_kpis c where c.tenant_id = f.tenant_id and c.id = f.client_kpi_id)",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the foreign key cascades");
    defaults_are_empty(&db).await;
}

/// A month partitioned under another name (as Citus's `create_time_partitions` names them) is
/// that month's partition: the loader writes into it and creates nothing that would overlap.
#[tokio::test]
async fn a_month_partitioned_under_another_name_counts() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    db.superuser()
        .await
        .batch_execute(
            "set timezone = 'Australia/Sydney';
             create table financials_2031m01 partition of financials for values from ('2031-01-01') to ('2031-02-01');
             create table lead_events_2031m01 partition of lead_events
                 for values from ('2031-01-01 00:00:00+00') to ('2031-02-01 00:00:00+00');",
        )
        .await
        .unwrap();
    import::<FinancialRow>(
        &db.app,
        tenant,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         C1,One,2031-01-15,1,0,0\n",
    )
    .await;
    import::<LeadEventRow>(
        &db.app,
        tenant,
        "client_id,client_name,event_date,lead_id,stage,value,status\n\
         C1,One,2031-01-15T00:00:00Z,L1,won,1,won\n",
    )
    .await;
    assert_eq!(
        placement(&db).await,
        ["financials_2031m01:1", "lead_events_2031m01:1"]
    );
}
