//! Tenant isolation, tested as `zixly_app` (and `zixly_readonly`) — never as a superuser, which
//! would bypass RLS and test nothing.

use tokio_postgres::error::SqlState;
use uuid::Uuid;
use zixly_db::{DbError, TenantTx};
use zixly_testkit::TestDb;

/// Every tenant-scoped table, with how many rows [`seed`] puts in each per tenant.
const TABLES: &[(&str, i64)] = &[
    ("users", 1),
    ("client_kpis", 1),
    ("financials", 2),
    ("lead_events", 1),
    ("custom_metrics", 1),
    ("metric_definitions", 1),
    ("integrations", 1),
    ("sync_runs", 1),
    ("audit_logs", 1),
];

/// Inserts one small graph of rows into every tenant table, through RLS, for the tx's tenant.
async fn seed(tx: &TenantTx, label: &str) {
    tx.raw_batch(&format!(
        "insert into users (tenant_id, email, role) values (zixly_current_tenant(), '{label}@example.com', 'ADMIN');
         insert into client_kpis (tenant_id, client_id, client_name) values (zixly_current_tenant(), 'C-{label}', 'Client {label}');
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
              select tenant_id, id, d, 100.00, 40.00, 60.00, 10.00 from client_kpis, (values (date '2025-01-01'), (date '2025-01-02')) v(d);
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, status)
              select tenant_id, id, '2025-01-01T10:00:00Z', 'L1', 'qualified', 500.00, 'active' from client_kpis;
         insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, record_date)
              select tenant_id, id, 'nps', 42.5, '2025-01-01T00:00:00Z' from client_kpis;
         insert into metric_definitions (tenant_id, name, display_name)
              values (zixly_current_tenant(), 'nps', 'NPS {label}');
         insert into integrations (tenant_id, provider) values (zixly_current_tenant(), 'XERO');
         insert into sync_runs (tenant_id, source, dataset) values (zixly_current_tenant(), 'csv', 'financials');
         insert into audit_logs (tenant_id, actor_label, action, entity_type) values (zixly_current_tenant(), 'test', 'seed', 'fixture');"
    ))
    .await
    .expect("seeding through RLS");
}

struct TwoTenants {
    db: TestDb,
    a: Uuid,
    b: Uuid,
}

async fn two_tenants() -> TwoTenants {
    let db = TestDb::new().await;
    let a = db.tenant("Tenant A").await;
    let b = db.tenant("Tenant B").await;
    for (tenant, label) in [(a, "a"), (b, "b")] {
        let tx = db.app.begin_tenant(tenant).await.unwrap();
        seed(&tx, label).await;
        tx.commit().await.unwrap();
    }
    TwoTenants { db, a, b }
}

fn expect_rls_violation(result: Result<u64, DbError>, what: &str) {
    match result {
        Err(e) => assert_eq!(
            e.sql_state(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{what}: {e}"
        ),
        Ok(n) => panic!("{what}: expected a row-level security violation, affected {n} rows"),
    }
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_rows_in_every_table_even_without_where() {
    let t = two_tenants().await;
    let tx = t.db.app.begin_tenant(t.b).await.unwrap();
    for (table, per_tenant) in TABLES {
        let ids = tx
            .raw_strings(&format!("select tenant_id::text from {table}"))
            .await
            .unwrap();
        assert_eq!(
            ids.len() as i64,
            *per_tenant,
            "{table}: B should see exactly its own rows"
        );
        assert!(
            ids.iter()
                .all(|id| id.as_deref() == Some(t.b.to_string().as_str())),
            "{table}: B saw {ids:?}"
        );
    }
    let tenants = tx
        .raw_strings("select id::text from tenants")
        .await
        .unwrap();
    assert_eq!(
        tenants,
        vec![Some(t.b.to_string())],
        "tenants: only its own"
    );
    // Sanity: the rows of A really exist (seen by a superuser).
    let su = t.db.superuser().await;
    let total: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 4);
}

#[tokio::test]
async fn writing_into_another_tenant_fails_and_their_rows_cannot_be_changed() {
    let t = two_tenants().await;
    let a = t.a;
    let inserts = [
        format!("insert into users (tenant_id, email) values ('{a}', 'x@example.com')"),
        format!("insert into client_kpis (tenant_id, client_id, client_name) values ('{a}', 'X', 'X')"),
        format!("insert into integrations (tenant_id, provider) values ('{a}', 'HUBSPOT')"),
        format!("insert into sync_runs (tenant_id, source, dataset) values ('{a}', 'csv', 'financials')"),
        format!("insert into audit_logs (tenant_id, actor_label, action, entity_type) values ('{a}', 'x', 'x', 'x')"),
    ];
    for sql in &inserts {
        let tx = t.db.app.begin_tenant(t.b).await.unwrap();
        expect_rls_violation(tx.raw_execute(sql).await, sql);
    }
    // Child rows pointing at A's client: the FK includes tenant_id, and WITH CHECK rejects A's id.
    let tx = t.db.app.begin_tenant(t.a).await.unwrap();
    let a_client = tx
        .raw_strings("select id::text from client_kpis")
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    drop(tx);
    for sql in [
        format!("insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow) values ('{a}', '{a_client}', '2025-02-01', 1, 1, 0, 0)"),
        format!("insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status) values ('{a}', '{a_client}', now(), 'L', 's', 'active')"),
        format!("insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, record_date) values ('{a}', '{a_client}', 'm', 1, now())"),
    ] {
        let tx = t.db.app.begin_tenant(t.b).await.unwrap();
        expect_rls_violation(tx.raw_execute(&sql).await, &sql);
    }
    // Moving own rows into A fails; A's rows are invisible to UPDATE and DELETE.
    let tx = t.db.app.begin_tenant(t.b).await.unwrap();
    expect_rls_violation(
        tx.raw_execute(&format!("update client_kpis set tenant_id = '{a}'"))
            .await,
        "update into A",
    );
    drop(tx);
    for (table, _) in TABLES.iter().filter(|(t, _)| *t != "audit_logs") {
        let tx = t.db.app.begin_tenant(t.b).await.unwrap();
        let updated = tx
            .raw_execute(&format!(
                "update {table} set tenant_id = tenant_id where tenant_id = '{a}'"
            ))
            .await
            .unwrap();
        let deleted = tx
            .raw_execute(&format!("delete from {table} where tenant_id = '{a}'"))
            .await
            .unwrap();
        assert_eq!((updated, deleted), (0, 0), "{table}: B touched A's rows");
        tx.commit().await.unwrap();
    }
    let su = t.db.superuser().await;
    let a_rows: i64 = su
        .query_one(
            "select count(*) from financials where tenant_id = $1",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(a_rows, 2, "A's rows must be intact");
}

#[tokio::test]
async fn without_the_setting_nothing_is_visible_or_writable() {
    let t = two_tenants().await;
    let client = TestDb::connect(&t.db.app_url).await;
    for (table, _) in TABLES {
        let n: i64 = client
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} visible without zixly.tenant_id");
    }
    let err = client
        .execute(
            "insert into client_kpis (tenant_id, client_id, client_name) values ($1, 'X', 'X')",
            &[&t.a],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    // The empty string, which is what a transaction-local setting reads back as afterwards.
    client
        .batch_execute("set zixly.tenant_id = ''")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_setting_does_not_survive_into_the_next_transaction_on_a_connection() {
    let t = two_tenants().await;
    let client = TestDb::connect(&t.db.app_url).await;
    client
        .batch_execute(&format!(
            "begin; select set_config('zixly.tenant_id', '{}', true);",
            t.a
        ))
        .await
        .unwrap();
    let inside: i64 = client
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    client.batch_execute("commit").await.unwrap();
    let after: i64 = client
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    let setting: String = client
        .query_one("select current_setting('zixly.tenant_id', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((inside, after, setting.as_str()), (2, 0, ""));
}

#[tokio::test]
async fn pooled_connections_are_rescoped_per_transaction_and_never_reused_mid_transaction() {
    let t = two_tenants().await;
    // One connection in the pool: every TenantTx below reuses it.
    let app = zixly_db::AppDb::connect(&t.db.app_url, 1).await.unwrap();
    let tx = app.begin_tenant(t.a).await.unwrap();
    assert_eq!(
        tx.raw_strings("select client_id from client_kpis")
            .await
            .unwrap(),
        vec![Some("C-a".into())]
    );
    tx.commit().await.unwrap();
    let tx = app.begin_tenant(t.b).await.unwrap();
    assert_eq!(
        tx.raw_strings("select client_id from client_kpis")
            .await
            .unwrap(),
        vec![Some("C-b".into())]
    );
    // Abandoned without commit: the write must be rolled back, not left for the next user.
    tx.raw_batch("insert into client_kpis (tenant_id, client_id, client_name) values (zixly_current_tenant(), 'C-lost', 'x')")
        .await
        .unwrap();
    drop(tx);
    let tx = app.begin_tenant(t.b).await.unwrap();
    let clients = tx
        .raw_strings("select client_id from client_kpis order by 1")
        .await
        .unwrap();
    assert_eq!(clients, vec![Some("C-b".into())]);
}

#[tokio::test]
async fn readonly_role_is_not_re_pointed_by_the_setting_and_cannot_write() {
    let t = two_tenants().await;
    let client = TestDb::connect(&t.db.readonly_url).await;
    let n: i64 = client
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no setting, no rows");
    // The setting is trusted only from zixly_app: zixly_readonly (like any BI login) is confined
    // by the bi_logins mapping, and has none (see bi_logins.rs).
    client
        .batch_execute(&format!("set zixly.tenant_id = '{}'", t.a))
        .await
        .unwrap();
    let n: i64 = client
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a setting chosen by the session selects nothing");
    let err = client
        .execute("delete from financials", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
}

#[tokio::test]
async fn audit_logs_are_append_only_for_the_app() {
    let t = two_tenants().await;
    for sql in [
        "update audit_logs set action = 'tampered'",
        "delete from audit_logs",
    ] {
        let tx = t.db.app.begin_tenant(t.a).await.unwrap();
        let err = tx.raw_execute(sql).await.unwrap_err();
        assert_eq!(
            err.sql_state(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    // Even the owner cannot rewrite history.
    let su = t.db.superuser().await;
    let err = su
        .execute("update audit_logs set action = 'tampered'", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleting_a_tenant_cascades_to_everything_it_owns_and_nothing_else() {
    let t = two_tenants().await;
    assert!(t.db.system.delete_tenant(t.a).await.unwrap());
    assert!(
        !t.db.system.delete_tenant(t.a).await.unwrap(),
        "second delete finds nothing"
    );
    let su = t.db.superuser().await;
    for (table, per_tenant) in TABLES {
        let a: i64 = su
            .query_one(
                &format!("select count(*) from {table} where tenant_id = $1"),
                &[&t.a],
            )
            .await
            .unwrap()
            .get(0);
        let b: i64 = su
            .query_one(
                &format!("select count(*) from {table} where tenant_id = $1"),
                &[&t.b],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!((a, b), (0, *per_tenant), "{table}");
    }
}

#[tokio::test]
async fn deleting_a_client_cascades_to_its_time_series() {
    let t = two_tenants().await;
    let tx = t.db.app.begin_tenant(t.a).await.unwrap();
    assert_eq!(tx.raw_execute("delete from client_kpis").await.unwrap(), 1);
    for table in ["financials", "lead_events", "custom_metrics"] {
        let rows = tx
            .raw_strings(&format!("select id::text from {table}"))
            .await
            .unwrap();
        assert!(rows.is_empty(), "{table} kept rows of a deleted client");
    }
    tx.commit().await.unwrap();
    let tx = t.db.app.begin_tenant(t.b).await.unwrap();
    assert_eq!(
        tx.raw_strings("select id::text from financials")
            .await
            .unwrap()
            .len(),
        2,
        "B untouched"
    );
}

/// The partitioned table's key that a unique violation broke: PostgreSQL names the partition's
/// own index (migrations/0014_partitions.sql), whose constraint has the parent's as its parent.
async fn parent_key(db: &TestDb, err: &DbError) -> Option<String> {
    let DbError::UniqueViolation { constraint, .. } = err else {
        return None;
    };
    db.superuser()
        .await
        .query_opt(
            "select p.conname::text from pg_constraint c join pg_constraint p on p.oid = c.conparentid
              where c.conname = $1 and c.connamespace = 'public'::regnamespace",
            &[constraint],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn dedup_keys_hold_when_the_source_is_not_given() {
    let t = two_tenants().await;
    let tx = t.db.app.begin_tenant(t.a).await.unwrap();
    // Same client and date, no source_system: the default makes it the same key as the seed row.
    let err = tx
        .raw_execute(
            "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
             select tenant_id, id, date '2025-01-01', 1, 1, 0, 0 from client_kpis",
        )
        .await
        .unwrap_err();
    assert_eq!(
        parent_key(&t.db, &err).await.as_deref(),
        Some("financials_dedup_key"),
        "{err}"
    );
    drop(tx);
    let tx = t.db.app.begin_tenant(t.a).await.unwrap();
    let err = tx
        .raw_execute(
            "insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status)
             select tenant_id, id, '2025-01-01T10:00:00Z', 'L1', 'qualified', 'won' from client_kpis",
        )
        .await
        .unwrap_err();
    assert_eq!(
        parent_key(&t.db, &err).await.as_deref(),
        Some("lead_events_natural_key"),
        "{err}"
    );
    drop(tx);
    let tx = t.db.app.begin_tenant(t.a).await.unwrap();
    let err = tx
        .raw_execute(
            "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
             select tenant_id, id, date '2025-03-01', 10, 4, 5, 0 from client_kpis",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::CheckViolation { ref constraint, .. } if constraint == "financials_net_profit_derived"),
        "{err}"
    );
}
