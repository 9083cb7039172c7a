//! `zixly bench api` end to end on a tiny dataset: the `--json` contract and that every request
//! of every pattern succeeded, through the real server and load generator.

use std::process::Command;

use zixly_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_zixly");

#[tokio::test]
async fn bench_api_seeds_drives_http_and_sql_and_prints_the_json_contract() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "bench",
            "api",
            "--tenants",
            "2",
            "--clients",
            "2",
            "--years",
            "1",
            "--seconds",
            "1",
            "--concurrency",
            "2",
            "--json",
        ])
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.path().join("unused"))
        .env("ZIXLY_LOG", "warn")
        .output()
        .expect("running zixly bench api");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for field in [
        "api_rps",
        "sql_rps",
        "api_p50_ms",
        "api_p99_ms",
        "peak_rss_mb",
        "seed_s",
        "database_mb",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} missing or not positive in {report}"
        );
    }
    let patterns = report["patterns"].as_object().expect("per-pattern figures");
    let names: Vec<&str> = patterns.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in [
        "range_90d",
        "funnel",
        "funnel_tenant",
        "metric",
        "profitability",
        "overview_12m",
    ] {
        let p = &patterns[name];
        assert_eq!(p["api_errors"], 0, "{name}: {p}");
        assert_eq!(p["sql_errors"], 0, "{name}: {p}");
        assert!(p["api_rps"].as_f64().unwrap() > 0.0, "{name}: {p}");
        assert!(p["sql_rps"].as_f64().unwrap() > 0.0, "{name}: {p}");
    }
    // The seed went through RLS into the bench tenants: 2 × 2 clients × 365 days.
    let rows: i64 = db
        .superuser()
        .await
        .query_one(
            "select count(*) from financials f join tenants t on t.id = f.tenant_id
              where t.name like 'bench-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2 * 2 * 365);
    // ... into monthly partitions: none in a default, which no read can prune.
    let in_defaults: i64 = db
        .superuser()
        .await
        .query_one(
            "select (select count(*) from financials_default) + (select count(*) from lead_events_default)
                    + (select count(*) from custom_metrics_default)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_defaults, 0);
}
