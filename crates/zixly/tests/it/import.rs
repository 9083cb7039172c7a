//! `zixly import` and `zixly fx import` as a user runs them: exit codes, error lines, summary.

use std::path::Path;
use std::process::{Command, Output};

use zixly_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_zixly");

fn zixly(db: &TestDb, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.join("unused"))
        .env("ZIXLY_LOG", "warn")
        .output()
        .expect("running zixly")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn import_loads_reports_and_is_idempotent() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fin.csv");
    std::fs::write(&file, "client_id,client_name,record_date,revenue,expenses,cash_flow\r\nC1,One,2024-03-01,10,4,1\r\nC2,Two,2024-03-01,5,5,0\r\n").unwrap();
    let path = file.to_str().unwrap();

    let out = zixly(
        &db,
        dir.path(),
        &["import", "financials", "--tenant", &tenant, path],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{path}: loaded (financials: 2 rows read, 2 inserted, 0 updated, 0 unchanged, 0 rejected; 2 new clients;")),
        "{stdout}"
    );

    let out = zixly(
        &db,
        dir.path(),
        &["import", "financials", "--tenant", &tenant, path],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("2 rows read, 0 inserted, 0 updated, 2 unchanged"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(&db, "select count(*) from financials").await, 2);
    assert_eq!(
        count(
            &db,
            "select count(*) from sync_runs where status = 'succeeded'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn invalid_rows_fail_atomically_or_are_skipped_into_a_rejects_file() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.csv");
    std::fs::write(
        &file,
        "lead_id,client_id,event_date,stage,status,value\n\
         L1,C1,2024-03-01T10:00:00Z,new,active,100\n\
         L2,C1,2024-03-01T10:00:00Z,new,open,100\n\
         L3,C1,2024-02-30,new,won,\"1,000\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let out = zixly(
        &db,
        dir.path(),
        &["import", "lead-events", "--tenant", &tenant, path],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "{path}:3: column status: `open` is not a lead status"
        )),
        "{stderr}"
    );
    assert_eq!(
        errors[1],
        format!("{path}:4: column event_date: `2024-02-30` is not a real date")
    );
    assert!(
        errors[2].starts_with(&format!(
            "{path}:4: column value: `1,000` is not a plain decimal"
        )),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("nothing written: 2 rows rejected with 3 errors"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(&db, "select count(*) from lead_events").await, 0);

    let rejects = dir.path().join("rejects.csv");
    let out = zixly(
        &db,
        dir.path(),
        &[
            "import",
            "lead-events",
            "--tenant",
            &tenant,
            path,
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected rows mean a non-zero exit even when the rest loaded"
    );
    assert!(
        text(&out.stdout).contains("loaded without the 2 rejected rows"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(&db, "select count(*) from lead_events").await, 1);
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "lead_id,client_id,event_date,stage,status,value,line,error\n\
         L2,C1,2024-03-01T10:00:00Z,new,open,100,3,\"column status: `open` is not a lead status (active, won, lost or stale)\"\n\
         L3,C1,2024-02-30,new,won,\"1,000\",4,\"column event_date: `2024-02-30` is not a real date; column value: `1,000` is not a plain decimal number like 1234.56 (no thousands separators; use `.` as the decimal point)\"\n"
    );
    let statuses: String = db
        .superuser()
        .await
        .query_one(
            "select string_agg(status::text, ',' order by started_at) from sync_runs",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(statuses, "failed,partial");
}

#[tokio::test]
async fn header_and_argument_errors_are_explained() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.csv");
    std::fs::write(
        &file,
        "client_id,metric_name,metric_value,record_date,colour\nC1,nps,1,2024-03-01,red\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let out = zixly(
        &db,
        dir.path(),
        &["import", "custom-metrics", "--tenant", &tenant, path],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "{path}:1: header: unknown column `colour` for custom_metrics"
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from sync_runs where status = 'failed'"
        )
        .await,
        1
    );

    // Usage errors are exit code 2; an unknown tenant is an error naming it.
    let out = zixly(&db, dir.path(), &["import", "custom-metrics", path]);
    assert_eq!(out.status.code(), Some(2));
    let nobody = uuid::Uuid::nil().to_string();
    let out = zixly(
        &db,
        dir.path(),
        &["import", "custom-metrics", "--tenant", &nobody, path],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("no tenant with id {nobody}")),
        "{}",
        text(&out.stderr)
    );
    let out = zixly(
        &db,
        dir.path(),
        &[
            "import",
            "custom-metrics",
            "--tenant",
            &tenant,
            "/nonexistent.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent.csv"));
}

#[tokio::test]
async fn fx_import_enables_foreign_currency_rows() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let fin = dir.path().join("usd.csv");
    std::fs::write(&fin, "client_id,client_name,record_date,revenue,expenses,cash_flow,currency\nC1,One,2024-03-04,10,4,1,USD\n").unwrap();
    let fin = fin.to_str().unwrap();
    let out = zixly(
        &db,
        dir.path(),
        &["import", "financials", "--tenant", &tenant, fin],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(":2: column currency: no exchange rate from USD to AUD"),
        "{}",
        text(&out.stderr)
    );

    let rates = dir.path().join("eurofxref-hist.csv");
    std::fs::write(
        &rates,
        "Date,USD,JPY,AUD,CYP,\n2024-03-01,1.0830,162.51,1.6612,N/A,\n",
    )
    .unwrap();
    let out = zixly(&db, dir.path(), &["fx", "import", rates.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 rates (ECB reference-rate layout): 3 inserted, 0 updated, 0 unchanged; skipped retired currencies CYP"), "{}", text(&out.stdout));

    let out = zixly(
        &db,
        dir.path(),
        &["import", "financials", "--tenant", &tenant, fin],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        count(
            &db,
            "select count(*) from financials where currency = 'USD'"
        )
        .await,
        1
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,currency,rate\n2024-03-01,USD,-1\n").unwrap();
    let out = zixly(&db, dir.path(), &["fx", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.csv:2: column rate:"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn hostile_files_fail_with_bounded_errors() {
    // The CLI reads files through the same CSV reader and loader as uploads.
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let header = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";

    // An unclosed quote on line 3, then 2 MiB: one error at the record-size limit.
    let mut csv = format!("{header}Q-1,Q,2024-01-01,1,1,0\nQ-2,\"Q,2024-01-02,1,1,0\n");
    while csv.len() < 2 * 1024 * 1024 {
        csv.push_str("Q-3,Q,2024-01-03,1,1,0\n");
    }
    let file = dir.path().join("quote.csv");
    std::fs::write(&file, &csv).unwrap();
    let path = file.to_str().unwrap();
    let out = zixly(
        &db,
        dir.path(),
        &["import", "financials", "--tenant", &tenant, path],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:3: line 3: record longer than 1048576 bytes (unclosed quote at line 3?)"
        )),
        "{stderr}"
    );
    assert!(stderr.len() < 4096, "{stderr}");

    // Huge values: every printed error is short.
    let value = "7".repeat(500_000);
    let mut csv = header.to_string();
    for day in 1..=20 {
        csv.push_str(&format!("H-1,H,2024-01-{day:02},{value},1,0\n"));
    }
    let file = dir.path().join("huge.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = zixly(
        &db,
        dir.path(),
        &[
            "import",
            "financials",
            "--tenant",
            &tenant,
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 20, "{stderr}");
    assert!(stderr.lines().all(|l| l.len() < 400), "{stderr}");
    assert!(
        stderr.contains("(500000 characters) is out of range"),
        "{stderr}"
    );
    let stored: i64 = db
        .superuser()
        .await
        .query_one(
            "select coalesce(sum(length(errors::text)), 0)::int8 from sync_runs",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored < 64 * 1024, "sync_runs.errors holds {stored} bytes");
    assert_eq!(count(&db, "select count(*) from financials").await, 0);
}
