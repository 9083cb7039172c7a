//! BI logins, attacked as the BI login itself: every way of re-pointing the tenant it controls
//! reads nothing of another tenant, secret tables are refused, and the catalog does not reveal
//! another tenant's id. (Issue 9, item 1: the old recipe, `ALTER ROLE ... SET zixly.tenant_id`,
//! failed all three.)

use std::str::FromStr;

use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use uuid::Uuid;
use zixly_db::bi_roles::{self, BiRoleError, BiRoleName};
use zixly_db::connect::with_credentials;
use zixly_testkit::TestDb;

const PASSWORD: &str = "bi-login-test-password";

/// Business tables a BI login may read, with the rows [`seed`] puts in each per tenant.
const READABLE: &[(&str, i64)] = &[
    ("client_kpis", 1),
    ("financials", 2),
    // Both rows are in one month: one rollup row (migrations/0015).
    ("financial_months", 1),
    // Two days: two per-tenant day rows (migrations/0019).
    ("financial_tenant_days", 2),
    ("lead_events", 1),
    // One lead in one stage (migrations/0016).
    ("lead_stage_firsts", 1),
    ("lead_funnel_stages", 1),
    ("lead_funnel_totals", 1),
    ("lead_funnel_clients", 1),
    // One active event: its state, and its span's start on one day (migrations/0018).
    ("lead_states", 1),
    ("lead_pipeline_days", 1),
    ("custom_metrics", 1),
    ("metric_definitions", 1),
];

/// Tables a BI login must not read at all: auth state, secrets, operational internals.
const REFUSED: &[&str] = &[
    "users",
    "auth_tokens",
    "invitations",
    "password_resets",
    "oauth_states",
    "integrations",
    "sync_runs",
    "sync_contributions",
    "sync_dirty_days",
    "jobs",
    "audit_logs",
    "login_throttle",
    "bi_logins",
    "notification_providers",
    "notifications",
    "notification_deliveries",
    "notification_dispatch_log",
    "alert_rule_channels",
];

struct Fixture {
    db: TestDb,
    a: Uuid,
    b: Uuid,
    /// A BI login mapped to tenant A.
    role: String,
}

impl Fixture {
    fn url(&self) -> String {
        with_credentials(&self.db.superuser_url, &self.role, PASSWORD).unwrap()
    }

    async fn bi(&self) -> tokio_postgres::Client {
        TestDb::connect(&self.url()).await
    }

    async fn drop_role(&self) {
        bi_roles::drop(&self.db.superuser_url, &self.role)
            .await
            .ok();
    }
}

/// Roles are cluster-wide and tests share a cluster: a name unique to this test's database.
fn role_name(db: &TestDb, suffix: &str) -> String {
    format!("bi_{}_{suffix}", &db.name[2..18])
}

async fn seed(db: &TestDb, tenant: Uuid, label: &str) {
    let su = db.superuser().await;
    su.batch_execute(&format!(
        "insert into users (tenant_id, email, role, password_hash) values ('{tenant}', '{label}@example.com', 'ADMIN', 'argon2-secret-{label}');
         insert into client_kpis (tenant_id, client_id, client_name) values ('{tenant}', 'C-{label}', 'Client {label}');
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
              select tenant_id, id, d, 100.00, 40.00, 60.00, 10.00 from client_kpis, (values (date '2025-01-01'), (date '2025-01-02')) v(d)
               where tenant_id = '{tenant}';
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, status)
              select tenant_id, id, '2025-01-01T10:00:00Z', 'L1', 'qualified', 500.00, 'active' from client_kpis where tenant_id = '{tenant}';
         insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, record_date)
              select tenant_id, id, 'nps', 42.5, '2025-01-01T00:00:00Z' from client_kpis where tenant_id = '{tenant}';
         insert into metric_definitions (tenant_id, name, display_name) values ('{tenant}', 'nps', 'NPS {label}');"
    ))
    .await
    .expect("seeding as superuser");
}

async fn fixture() -> Fixture {
    let db = TestDb::new().await;
    let a = db.tenant("Tenant A").await;
    let b = db.tenant("Tenant B").await;
    seed(&db, a, "a").await;
    seed(&db, b, "b").await;
    let role = role_name(&db, "a");
    bi_roles::create(
        &db.superuser_url,
        &BiRoleName::parse(&role).unwrap(),
        a,
        PASSWORD,
        bi_roles::DEFAULT_CONNECTION_LIMIT,
    )
    .await
    .expect("creating the BI login");
    Fixture { db, a, b, role }
}

/// Every readable table as `client` sees it: (table, rows, rows of tenants other than `own`).
async fn census(client: &tokio_postgres::Client, own: Uuid) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for (table, _) in READABLE {
        let row = client
            .query_one(
                &format!("select count(*), count(*) filter (where tenant_id <> $1) from {table}"),
                &[&own],
            )
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        out.push((table.to_string(), row.get(0), row.get(1)));
    }
    let row = client
        .query_one(
            "select count(*), count(*) filter (where id <> $1) from tenants",
            &[&own],
        )
        .await
        .unwrap();
    out.push(("tenants".into(), row.get(0), row.get(1)));
    out
}

fn expected_own_census() -> Vec<(String, i64, i64)> {
    READABLE
        .iter()
        .map(|(t, n)| (t.to_string(), *n, 0))
        .chain(std::iter::once(("tenants".to_string(), 1, 0)))
        .collect()
}

#[tokio::test]
async fn a_bi_login_sees_exactly_its_own_tenant() {
    let f = fixture().await;
    let bi = f.bi().await;
    assert_eq!(census(&bi, f.a).await, expected_own_census());
    // It reads, never writes.
    let err = bi
        .execute("update financials set revenue = 0", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    drop(bi);
    f.drop_role().await;
}

#[tokio::test]
async fn every_way_of_re_pointing_the_tenant_reads_nothing_of_another_tenant() {
    let f = fixture().await;
    let b = f.b;
    let bi = f.bi().await;
    let attempts = [
        format!("set zixly.tenant_id = '{b}'"),
        format!("set session zixly.tenant_id = '{b}'"),
        format!("select set_config('zixly.tenant_id', '{b}', false)"),
        format!("begin; select set_config('zixly.tenant_id', '{b}', true)"),
        format!("reset all; begin; set local zixly.tenant_id = '{b}'"),
        // SET ROLE changes current_user (to a role with no mapping), not session_user.
        format!("set role zixly_readonly; set zixly.tenant_id = '{b}'"),
        // A temporary table cannot shadow the mapping (the definer function's search_path puts
        // public first; pg_temp is never searched for the function itself).
        format!(
            "create temp table bi_logins (role_oid oid, role_name name, tenant_id uuid, created_at timestamptz);
             insert into bi_logins select oid, rolname, '{b}', now() from pg_roles where rolname = current_user;
             set search_path = pg_temp, public"
        ),
    ];
    for attempt in &attempts {
        bi.batch_execute(attempt)
            .await
            .unwrap_or_else(|e| panic!("{attempt}: {e}"));
        let seen = census(&bi, f.a).await;
        assert!(
            seen.iter().all(|(_, _, others)| *others == 0),
            "after `{attempt}` the BI login read another tenant: {seen:?}"
        );
        // Still sees its own tenant, or (SET ROLE) nothing at all.
        assert!(
            seen == expected_own_census() || seen.iter().all(|(_, n, _)| *n == 0),
            "after `{attempt}`: {seen:?}"
        );
        bi.batch_execute("rollback; reset role; reset all; set search_path to default")
            .await
            .ok();
    }
    // Privileged re-pointing is refused outright.
    for refused in [
        "set role zixly_app".to_string(),
        "set role zixly_owner".to_string(),
        format!("set session authorization {}", "zixly_app"),
        format!("alter role {} bypassrls", f.role),
        format!(
            "insert into public.bi_logins (role_oid, role_name, tenant_id) values (1, 'x', '{b}')"
        ),
    ] {
        let err = bi.batch_execute(&refused).await.expect_err(&refused);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{refused}: {err}"
        );
    }
    // A login may set its own session defaults (PostgreSQL allows that to ordinary roles): the
    // next session still sees only its own tenant.
    let _ = bi
        .batch_execute(&format!(
            "alter role {} set zixly.tenant_id = '{b}'",
            f.role
        ))
        .await;
    drop(bi);
    let next = f.bi().await;
    assert_eq!(census(&next, f.a).await, expected_own_census());
    drop(next);

    // PGOPTIONS / startup options: the setting arrives with the connection.
    let mut config = tokio_postgres::Config::from_str(&f.url()).unwrap();
    config.options(format!("-c zixly.tenant_id={b}"));
    let (client, connection) = config.connect(NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    assert_eq!(census(&client, f.a).await, expected_own_census());
    drop(client);
    task.await.ok();
    f.drop_role().await;
}

#[tokio::test]
async fn secret_tables_are_refused_to_bi_logins_and_to_zixly_readonly() {
    let f = fixture().await;
    let bi = f.bi().await;
    let readonly = TestDb::connect(&f.db.readonly_url).await;
    for client in [&bi, &readonly] {
        for table in REFUSED {
            let sql = format!("select * from {table} limit 1");
            let err = client.batch_execute(&sql).await.expect_err(&sql);
            assert_eq!(
                err.code(),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE),
                "{sql}: {err}"
            );
        }
        // Column-level: not even the harmless-looking columns of users.
        let err = client
            .batch_execute("select email from users")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    }
    // The catalog agrees: zixly_readonly may select exactly the business tables.
    let su = f.db.superuser().await;
    let granted: Vec<String> = su
        .query(
            "select c.relname::text from pg_class c
              where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
                and (has_table_privilege('zixly_readonly', c.oid, 'select')
                     or has_any_column_privilege('zixly_readonly', c.oid, 'select'))
              order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        granted,
        [
            // Goals and alert history are business data (migrations/0013); channels, deliveries
            // and notifications, which hold receivers' addresses and secrets, are not.
            "alert_rules",
            "alert_transitions",
            "alerts",
            "client_kpis",
            "custom_metrics",
            "financial_months",
            // The per-tenant day rollups (migrations/0019).
            "financial_tenant_days",
            "financials",
            "fx_rates",
            "goal_targets",
            "goals",
            // The pipeline's rollups (migrations/0018) and the funnel's (0016), business data
            // like the events.
            "lead_closing_ends",
            "lead_events",
            "lead_funnel_clients",
            "lead_funnel_pairs",
            "lead_funnel_stages",
            "lead_funnel_totals",
            "lead_pipeline_days",
            "lead_stage_firsts",
            "lead_states",
            "metric_definitions",
            "schema_migrations",
            "tenants"
        ],
        "a new table readable by BI logins must be business data: add it here deliberately"
    );
    drop(bi);
    f.drop_role().await;
}

#[tokio::test]
async fn no_catalog_view_reveals_another_tenants_id_to_a_bi_login() {
    let f = fixture().await;
    let su = f.db.superuser().await;
    // Statistics exist for tenant_id (most common values would be the tenant ids)...
    su.batch_execute("analyze").await.unwrap();
    // ...and a request of tenant B is in flight, its tenant id in its statement text.
    let app = TestDb::connect(&f.db.app_url).await;
    app.batch_execute(&format!(
        "begin; select set_config('zixly.tenant_id', '{}', true)",
        f.b
    ))
    .await
    .unwrap();
    let bi = f.bi().await;
    let needle = f.b.to_string();
    for view in [
        "pg_roles",
        "pg_db_role_setting",
        "pg_stats",
        "pg_stats_ext",
        "pg_stat_activity",
        "pg_policies",
        "pg_settings",
        "pg_proc",
        "pg_views",
        "pg_matviews",
        "pg_description",
    ] {
        let text: Option<String> = bi
            .query_one(
                &format!("select string_agg(v::text, ',') from {view} v"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"))
            .get(0);
        assert!(
            !text.unwrap_or_default().contains(&needle),
            "{view} shows tenant B's id to a BI login of tenant A"
        );
    }
    // The check above would see a leak: the superuser finds B's id in pg_stats.
    let su_stats: Option<String> = su
        .query_one("select string_agg(v::text, ',') from pg_stats v", &[])
        .await
        .unwrap()
        .get(0);
    assert!(su_stats.unwrap_or_default().contains(&needle));
    app.batch_execute("rollback").await.unwrap();
    drop(bi);
    f.drop_role().await;
}

#[tokio::test]
async fn zixly_readonly_and_unmapped_logins_see_nothing_whatever_they_set() {
    let f = fixture().await;
    let readonly = TestDb::connect(&f.db.readonly_url).await;
    readonly
        .batch_execute(&format!("set zixly.tenant_id = '{}'", f.a))
        .await
        .unwrap();
    assert!(census(&readonly, f.a).await.iter().all(|(_, n, _)| *n == 0));
    // A login made by hand in zixly_readonly, the old README recipe: no mapping, nothing.
    let su = f.db.superuser().await;
    let manual = role_name(&f.db, "manual");
    su.batch_execute(&format!(
        "create role {manual} login password '{PASSWORD}' in role zixly_readonly;
         alter role {manual} set zixly.tenant_id = '{}'",
        f.a
    ))
    .await
    .unwrap();
    let url = with_credentials(&f.db.superuser_url, &manual, PASSWORD).unwrap();
    let client = TestDb::connect(&url).await;
    assert!(census(&client, f.a).await.iter().all(|(_, n, _)| *n == 0));
    drop(client);
    su.batch_execute(&format!("drop role {manual}"))
        .await
        .unwrap();
    f.drop_role().await;
}

#[tokio::test]
async fn create_list_and_drop_keep_role_and_mapping_together() {
    let f = fixture().await;
    let url = &f.db.superuser_url;
    let listed = bi_roles::list(url).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, f.role);
    assert_eq!(listed[0].tenant_id, f.a);
    assert_eq!(listed[0].tenant_name, "Tenant A");
    assert_eq!(
        listed[0].connection_limit,
        bi_roles::DEFAULT_CONNECTION_LIMIT
    );
    assert!(listed[0].role_exists);
    let name = BiRoleName::parse(&f.role).unwrap();

    // The same name again: refused, the first login untouched.
    let err = bi_roles::create(url, &name, f.b, PASSWORD, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, BiRoleError::RoleExists(_)), "{err}");
    assert_eq!(census(&f.bi().await, f.a).await, expected_own_census());

    // An unknown tenant: refused, and no role left behind.
    let other = BiRoleName::parse(&role_name(&f.db, "x")).unwrap();
    let err = bi_roles::create(url, &other, Uuid::now_v7(), PASSWORD, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, BiRoleError::NoTenant(_)), "{err}");
    let su = f.db.superuser().await;
    let exists = |name: String| {
        let su = &su;
        async move {
            su.query_one("select count(*) from pg_roles where rolname = $1", &[&name])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(exists(other.to_string()).await, 0);

    // Dropping anything that is not a BI login is refused.
    for not_bi in ["zixly_app", "zixly_owner", "postgres", "nobody_here"] {
        let err = bi_roles::drop(url, not_bi).await.unwrap_err();
        assert!(
            matches!(err, BiRoleError::NotABiLogin(_)),
            "{not_bi}: {err}"
        );
    }
    assert_eq!(exists("zixly_app".into()).await, 1);

    // Drop: role and mapping go together; an open session is ended.
    let open = f.bi().await;
    bi_roles::drop(url, &f.role).await.unwrap();
    assert_eq!(exists(f.role.clone()).await, 0);
    assert!(bi_roles::list(url).await.unwrap().is_empty());
    assert!(
        open.query_one("select 1", &[]).await.is_err(),
        "session ended"
    );
    let again = bi_roles::drop(url, &f.role).await.unwrap_err();
    assert!(matches!(again, BiRoleError::NotABiLogin(_)));
}

#[tokio::test]
async fn deleting_the_tenant_leaves_its_bi_login_seeing_nothing() {
    let f = fixture().await;
    assert!(f.db.system.delete_tenant(f.a).await.unwrap());
    let bi = f.bi().await;
    assert!(census(&bi, f.a).await.iter().all(|(_, n, _)| *n == 0));
    drop(bi);
    // The role itself is still there (role DDL needs more than the owner): drop removes it.
    let su = f.db.superuser().await;
    su.batch_execute(&format!("drop role {}", f.role))
        .await
        .unwrap();
}

#[tokio::test]
async fn role_names_are_plain_unreserved_identifiers() {
    for ok in ["bi_acme", "_x", "b1", &"a".repeat(63)] {
        assert!(BiRoleName::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Bi",
        "1bi",
        "bi-acme",
        "bi acme",
        "bi\"x",
        "pg_monitor",
        "zixly_app",
        &"a".repeat(64),
        "bí",
    ] {
        let err = BiRoleName::parse(bad).unwrap_err();
        assert!(err.to_string().starts_with("BI role name"), "{bad}: {err}");
    }
}
