//! `zixly import` reports exact copies of a row as ignored, with the page's and the API's words.

use std::process::Command;

use zixly_testkit::TestDb;

#[tokio::test]
async fn exact_copies_are_loaded_once_and_named_in_the_summary() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fin.csv");
    std::fs::write(
        &file,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         C1,One,2024-03-01,10,4,1\nC1,One,2024-03-01,10,4,1\nC2,Two,2024-03-01,5,5,0\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zixly"))
        .args(["import", "financials", "--tenant", &tenant, path])
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.path().join("unused"))
        .env("ZIXLY_LOG", "warn")
        .output()
        .expect("running zixly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "{path}: loaded (financials: 3 rows read, 1 duplicate row ignored, 2 inserted, 0 updated, 0 unchanged, 0 rejected;"
        )),
        "{stdout}"
    );
}
