//! Role bootstrap racing across databases (advisory locks are per database; roles are not).

use zixly_db::bootstrap;
use zixly_db::connect::with_database;
use zixly_db::roles;
use zixly_testkit::{test_role_passwords, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_bootstrap_from_different_databases_at_once_never_fails() {
    // The CI failure this reproduces: `zixly import` with DATABASE_URL=<test db> ran
    // `ensure_roles` while another test process ran it through the `postgres` database; the
    // advisory lock did not serialise them and one ALTER ROLE failed with
    // "tuple concurrently updated".
    let db = TestDb::new().await;
    let in_test_db = db.superuser_url.clone();
    let in_postgres_db = with_database(&db.superuser_url, "postgres").unwrap();
    let passwords = test_role_passwords();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let url = if i % 2 == 0 {
            in_test_db.clone()
        } else {
            in_postgres_db.clone()
        };
        let passwords = passwords.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                match i % 3 {
                    0 => bootstrap::ensure_roles(&url, Some(&passwords)).await?,
                    1 => bootstrap::set_password(&url, roles::APP, &passwords.app).await?,
                    _ => bootstrap::ensure_roles(&url, None).await?,
                }
            }
            Ok::<_, zixly_db::DbError>(())
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("role bootstrap must not fail under concurrency");
    }
    // The roles still work with the test passwords, with their attributes intact.
    let app = TestDb::connect(&db.app_url).await;
    let row = app
        .query_one(
            "select rolbypassrls, rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1));
}
