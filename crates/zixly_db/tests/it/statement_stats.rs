//! `pg_stat_statements` for operators (`zixly db top`): the test cluster preloads it like the
//! embedded one, so the statistics are on and a statement shows up with its counts.

use zixly_db::statement_stats;
use zixly_testkit::TestDb;

#[tokio::test]
async fn the_slowest_statements_are_listed_with_their_counts_and_can_be_reset() {
    let db = TestDb::new().await;
    if std::env::var("ZIXLY_TEST_DATABASE_URL").is_ok() {
        // Another server: whether it preloads the module is its operator's choice.
        eprintln!("skipped: ZIXLY_TEST_DATABASE_URL is set");
        return;
    }
    assert!(
        statement_stats::enable(&db.superuser_url).await.unwrap(),
        "the embedded test cluster preloads pg_stat_statements"
    );
    statement_stats::reset(&db.superuser_url).await.unwrap();
    // Operators' data, not tenants': the app and BI logins cannot read it.
    for url in [&db.app_url, &db.readonly_url] {
        let err = TestDb::connect(url)
            .await
            .batch_execute("select * from pg_stat_statements")
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        );
    }
    let client = db.superuser().await;
    for n in 0..3 {
        client
            .query("select pg_sleep(0.02), $1::int as zixly_top_probe", &[&n])
            .await
            .unwrap();
    }
    let top = statement_stats::top(&db.superuser_url, 50).await.unwrap();
    let probe = top
        .iter()
        .find(|s| s.query.contains("zixly_top_probe"))
        .unwrap_or_else(|| panic!("the probe is listed: {top:?}"));
    assert_eq!(probe.calls, 3, "one normalised statement, three calls");
    assert!(probe.total_ms >= 60.0, "3 × 20 ms asleep: {probe:?}");
    assert!(
        top.windows(2).all(|w| w[0].total_ms >= w[1].total_ms),
        "largest total first"
    );
    statement_stats::reset(&db.superuser_url).await.unwrap();
    let after = statement_stats::top(&db.superuser_url, 50).await.unwrap();
    assert!(!after.iter().any(|s| s.query.contains("zixly_top_probe")));
}
