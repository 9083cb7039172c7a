//! Catalog checks: the schema rules that make tenant isolation and Citus distribution hold are
//! verified against `pg_catalog`, so a future migration that forgets one fails here.

use zixly_testkit::TestDb;

/// Tables that carry `tenant_id` (read from the catalog, not hard-coded, so new tables are covered).
pub(crate) async fn tenant_tables(client: &tokio_postgres::Client) -> Vec<String> {
    let rows = client
        .query(
            "select c.relname::text from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
              where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_and_a_tenant_policy() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let tables = tenant_tables(&client).await;
    for expected in [
        "users",
        "client_kpis",
        "financials",
        "lead_events",
        "custom_metrics",
        "integrations",
        "sync_runs",
        "audit_logs",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} should have tenant_id; found {tables:?}"
        );
    }
    for table in tables.iter().chain(std::iter::once(&"tenants".to_string())) {
        let row = client
            .query_one(
                "select c.relrowsecurity, c.relforcerowsecurity,
                        (select count(*) from pg_policies p where p.tablename = c.relname and p.schemaname = 'public'
                            and p.qual like '%zixly_current_tenant()%' and p.with_check like '%zixly_current_tenant()%'
                            and p.cmd = 'ALL' and p.permissive = 'PERMISSIVE')
                   from pg_class c where c.relname = $1 and c.relnamespace = 'public'::regnamespace",
                &[table],
            )
            .await
            .unwrap();
        let (enabled, forced, policies): (bool, bool, i64) = (row.get(0), row.get(1), row.get(2));
        assert!(enabled, "{table}: row level security not enabled");
        assert!(forced, "{table}: row level security not forced");
        assert_eq!(
            policies, 1,
            "{table}: expected one policy on zixly_current_tenant() with USING and WITH CHECK"
        );
    }
}

#[tokio::test]
async fn every_unique_index_and_primary_key_of_a_tenant_table_leads_with_tenant_id() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let rows = client
        .query(
            "select c.relname::text, i.relname::text, a.attname::text
               from pg_index x
               join pg_class c on c.oid = x.indrelid
               join pg_class i on i.oid = x.indexrelid
               left join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]
              where c.relnamespace = 'public'::regnamespace and x.indisunique
                -- The documented exception: BI logins are identity data looked up by role
                -- (a reference table on Citus; migrations/0008).
                and i.relname <> 'bi_logins_pkey'
                and exists (select 1 from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows.len() >= 8,
        "expected unique indexes on tenant tables, got {}",
        rows.len()
    );
    for r in rows {
        let (table, index, first): (String, String, Option<String>) =
            (r.get(0), r.get(1), r.get(2));
        assert_eq!(
            first.as_deref(),
            Some("tenant_id"),
            "{table}.{index} must lead with tenant_id"
        );
    }
}

#[tokio::test]
async fn every_non_unique_index_of_a_tenant_table_leads_with_tenant_id() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    // The documented exceptions: login looks an email up across tenants, and the job queue's
    // workers claim and rescue jobs across tenants (migrations/0007).
    let rows = client
        .query(
            "select c.relname::text, i.relname::text, coalesce(a.attname::text, '<expression>')
               from pg_index x
               join pg_class c on c.oid = x.indrelid
               join pg_class i on i.oid = x.indexrelid
               left join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]
              where c.relnamespace = 'public'::regnamespace and not x.indisunique
                and i.relname not in ('users_email_idx', 'jobs_claim_idx', 'jobs_running_heartbeat_idx')
                and exists (select 1 from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let (table, index, first): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(
            first, "tenant_id",
            "{table}.{index} must lead with tenant_id"
        );
    }
}

#[tokio::test]
async fn every_foreign_key_between_tenant_tables_includes_tenant_id_on_both_sides() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let rows = client
        .query(
            "select con.conname::text,
                    exists (select 1 from unnest(con.conkey) k join pg_attribute a
                              on a.attrelid = con.conrelid and a.attnum = k where a.attname = 'tenant_id'),
                    exists (select 1 from unnest(con.confkey) k join pg_attribute a
                              on a.attrelid = con.confrelid and a.attnum = k where a.attname = 'tenant_id'),
                    con.confrelid::regclass::text
               from pg_constraint con
              where con.contype = 'f' and con.connamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 8, "expected foreign keys, got {}", rows.len());
    for r in rows {
        let (name, local, remote, target): (String, bool, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(local, "{name}: foreign key must include tenant_id");
        // References to `tenants` use its `id`, which *is* the tenant id.
        assert!(
            remote || target == "tenants",
            "{name}: referenced key must include tenant_id"
        );
    }
}

#[tokio::test]
async fn application_roles_are_least_privilege() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    for role in ["zixly_app", "zixly_readonly"] {
        let row = client
            .query_one("select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = $1", &[&role])
            .await
            .unwrap();
        for i in 0..4 {
            assert!(
                !row.get::<_, bool>(i),
                "{role} has a privileged attribute (column {i})"
            );
        }
        let owned: i64 = client
            .query_one("select count(*) from pg_class where relowner = (select oid from pg_roles where rolname = $1)", &[&role])
            .await
            .unwrap()
            .get(0);
        assert_eq!(owned, 0, "{role} must not own any relation");
        let can_create: bool = client
            .query_one(
                "select has_schema_privilege($1, 'public', 'CREATE')",
                &[&role],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!can_create, "{role} must not create objects");
    }
    // zixly_readonly: SELECT only, everywhere.
    let writable: Vec<String> = client
        .query(
            "select table_name::text from information_schema.role_table_grants
              where grantee = 'zixly_readonly' and privilege_type <> 'SELECT'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        writable.is_empty(),
        "zixly_readonly may write to {writable:?}"
    );
    // audit_logs: append-only for the application.
    for privilege in ["UPDATE", "DELETE", "TRUNCATE"] {
        let has: bool = client
            .query_one(
                "select has_table_privilege('zixly_app', 'audit_logs', $1)",
                &[&privilege],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!has, "zixly_app must not have {privilege} on audit_logs");
    }
    // Every table the app may touch is owned by zixly_owner.
    let foreign_owned: Vec<String> = client
        .query(
            "select relname::text from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r','p')
                and pg_get_userbyid(relowner) <> 'zixly_owner'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        foreign_owned.is_empty(),
        "tables not owned by zixly_owner: {foreign_owned:?}"
    );
}

#[tokio::test]
async fn money_is_numeric_and_no_column_is_floating_point() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let floats: Vec<String> = client
        .query(
            "select table_name || '.' || column_name from information_schema.columns
              where table_schema = 'public' and data_type in ('real', 'double precision')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(floats.is_empty(), "floating-point columns: {floats:?}");
    for (table, column, precision, scale) in [
        ("financials", "revenue", 12, 2),
        ("financials", "expenses", 12, 2),
        ("financials", "net_profit", 12, 2),
        ("financials", "cash_flow", 12, 2),
        ("lead_events", "value", 12, 2),
        ("custom_metrics", "metric_value", 12, 4),
    ] {
        let row = client
            .query_one(
                "select data_type::text, numeric_precision, numeric_scale from information_schema.columns
                  where table_schema = 'public' and table_name = $1 and column_name = $2",
                &[&table, &column],
            )
            .await
            .unwrap();
        let (ty, p, s): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            (ty.as_str(), p, s),
            ("numeric", precision, scale),
            "{table}.{column}"
        );
    }
}

#[tokio::test]
async fn migrations_are_recorded_and_rerunning_them_is_a_no_op() {
    let db = TestDb::new().await;
    let applied = zixly_db::migrate::run(&db.superuser_url).await.unwrap();
    assert!(
        applied.is_empty(),
        "template was already migrated, got {applied:?}"
    );
    db.app.check_ready().await.unwrap();
    let client = db.superuser().await;
    let max: i32 = client
        .query_one("select max(version) from schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, zixly_db::migrate::latest_version());
}

#[tokio::test]
async fn an_applied_migration_whose_contents_changed_is_refused() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    // As if the file of version 3 had been edited after this database applied it.
    client
        .execute(
            "update schema_migrations set checksum = repeat('0', 64) where version = 3",
            &[],
        )
        .await
        .unwrap();
    let err = zixly_db::migrate::run(&db.superuser_url)
        .await
        .expect_err("a changed applied migration must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("already applied with different contents"),
        "{msg}"
    );
    assert!(msg.contains('3') && msg.contains("ingest"), "{msg}");
}

#[tokio::test]
async fn server_side_ids_are_uuid_v7_and_time_ordered() {
    let db = TestDb::new().await;
    let client = db.superuser().await;
    let rows = client
        .query("select zixly_uuid_v7() from generate_series(1, 50)", &[])
        .await
        .unwrap();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    for id in &ids {
        assert_eq!(id.get_version_num(), 7, "{id}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
    }
    // Same-millisecond ids are random within the ms; across ms boundaries they must not go back.
    let stamps: Vec<u64> = ids
        .iter()
        .map(|id| id.get_timestamp().unwrap().to_unix().0)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn app_pool_refuses_a_role_that_bypasses_rls() {
    let db = TestDb::new().await;
    let err = match zixly_db::AppDb::connect(&db.superuser_url, 1).await {
        Ok(_) => panic!("connecting the app pool as a superuser must fail"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("bypasses row-level security"),
        "{err}"
    );
}
