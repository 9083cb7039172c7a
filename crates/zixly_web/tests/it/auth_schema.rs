//! The database side of authentication, checked as the roles that use it: only the SECURITY
//! DEFINER functions reach cross-tenant data and throttling state, and only for `zixly_app`.

use zixly_testkit::TestDb;

#[tokio::test]
async fn pre_tenant_state_is_reachable_only_through_the_definer_functions() {
    let db = TestDb::new().await;
    let app = TestDb::connect(&db.app_url).await;
    let readonly = TestDb::connect(&db.readonly_url).await;
    for sql in ["select * from login_throttle", "delete from login_throttle"] {
        let err = app.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{sql}: {err}");
    }
    // Without a tenant the app sees no users, but login candidates are found across tenants.
    let t = db.tenant("T").await;
    let tx = db.app.begin_tenant(t).await.unwrap();
    tx.insert_user("who@x.example", zixly_domain::Role::Viewer, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let direct: i64 = app
        .query_one("select count(*) from users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(direct, 0);
    let found: i64 = app
        .query_one(
            "select count(*) from zixly_login_candidates(' WHO@x.example')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);
    for sql in [
        "select * from zixly_login_candidates('who@x.example')",
        "select zixly_login_throttle_wait(array[]::bytea[])",
        "select zixly_login_throttle_clear('\\x00'::bytea)",
    ] {
        let err = readonly.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("42501"),
            "readonly: {sql}: {err}"
        );
    }
    // Every SECURITY DEFINER function pins its search_path and is not executable by PUBLIC.
    let su = db.superuser().await;
    let rows = su
        .query(
            "select p.proname::text, coalesce(array_to_string(p.proconfig, ','), ''),
                    has_function_privilege('public', p.oid, 'execute')
               from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prosecdef",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 4, "expected the auth definer functions");
    for r in rows {
        let (name, config, public): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        assert!(
            config.contains("search_path=public, pg_temp")
                || config.contains("search_path=public,pg_temp"),
            "{name}: {config}"
        );
        assert!(!public, "{name} is executable by PUBLIC");
    }
}
