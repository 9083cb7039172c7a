//! Issue 12 item 5: exact duplicate rows collapse, and a dry run ("Check file") makes every check
//! of a load without writing anything.

use futures_util::stream;
use uuid::Uuid;
use zixly_db::loader::{self, LoadOptions, LoadReport, LoadStatus, Loadable, RejectSink};
use zixly_domain::ingest::{CsvRows, CustomMetricRow, FinancialRow, LeadEventRow, RowError};
use zixly_testkit::TestDb;

const FIN_HEADER: &str =
    "client_id,client_name,record_date,revenue,expenses,net_profit,cash_flow,currency,source_system,external_id";

#[derive(Default)]
struct Seen {
    staged: Vec<u64>,
    rejected: Vec<u64>,
}
impl RejectSink for Seen {
    fn rejected(&mut self, line: u64, _errors: &[RowError]) {
        self.rejected.push(line);
    }
    fn staged(&mut self, line: u64) {
        self.staged.push(line);
    }
}

async fn run<T: Loadable>(
    db: &TestDb,
    tenant: Uuid,
    csv: &str,
    dry_run: bool,
    skip_invalid: bool,
) -> (LoadReport, Seen) {
    let ctx = loader::ingest_context(&db.app, tenant, "csv")
        .await
        .unwrap();
    let rows: Vec<_> = CsvRows::<_, T>::new(csv.as_bytes(), ctx)
        .expect("valid header")
        .collect();
    let options = LoadOptions {
        dry_run,
        skip_invalid,
        file_name: Some("input.csv".into()),
        ..LoadOptions::new("csv")
    };
    let mut seen = Seen::default();
    let report = loader::load(
        &db.app,
        tenant,
        &options,
        stream::iter(rows),
        Some(&mut seen),
    )
    .await
    .unwrap();
    (report, seen)
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
async fn exact_copies_of_a_row_load_once_and_are_counted() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C2,Two,2024-03-01,1,1,,1,,,\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-03-01,100,40,,10,,,\n"
    );
    let (report, seen) = run::<FinancialRow>(&db, tenant, &csv, false, false).await;
    assert_eq!(report.status, LoadStatus::Succeeded, "{:?}", report.errors);
    assert_eq!(
        (
            report.rows_read,
            report.duplicates_ignored,
            report.inserted,
            report.unchanged,
            report.rejected
        ),
        (4, 2, 2, 0, 0)
    );
    assert_eq!(
        report.duplicates_message().as_deref(),
        Some("2 duplicate rows ignored")
    );
    assert!(seen.rejected.is_empty());
    assert_eq!(count(&db, "select count(*) from financials").await, 2);
    // The run records what was loaded: unchanged is not inflated by the copies.
    assert_eq!(
        count(
            &db,
            "select rows_inserted * 100 + rows_unchanged * 10 + rows_rejected from sync_runs"
        )
        .await,
        200
    );

    // Again: the copies still collapse, and the one row is unchanged.
    let (report, _) = run::<FinancialRow>(&db, tenant, &csv, false, false).await;
    assert_eq!(
        (report.status, report.duplicates_ignored, report.unchanged),
        (LoadStatus::Succeeded, 2, 2)
    );
    assert_eq!(
        loader::duplicates_message(1).as_deref(),
        Some("1 duplicate row ignored")
    );
}

#[tokio::test]
async fn rows_of_one_key_that_differ_are_still_rejected_beside_copies() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    // Lines 2 and 3 are copies (one row); line 4 has the same key and another revenue.
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-03-01,101,40,,10,,,\n"
    );
    let (report, seen) = run::<FinancialRow>(&db, tenant, &csv, false, false).await;
    assert_eq!(report.status, LoadStatus::Failed);
    assert_eq!(report.duplicates_ignored, 1);
    assert_eq!(seen.rejected, [2, 4]);
    assert!(
        report.errors[0].reason.contains("also on line 4;"),
        "{}",
        report.errors[0].reason
    );
    assert_eq!(count(&db, "select count(*) from financials").await, 0);

    // The other datasets collapse their copies too.
    let leads = "client_id,event_date,lead_id,stage,value,status\n\
                 C1,2024-03-01T10:00:00Z,L1,won,10,won\n\
                 C1,2024-03-01T10:00:00Z,L1,won,10,won\n";
    let (report, _) = run::<LeadEventRow>(&db, tenant, leads, false, false).await;
    assert_eq!(
        (report.status, report.inserted, report.duplicates_ignored),
        (LoadStatus::Succeeded, 1, 1)
    );
    let metrics = "client_id,metric_name,metric_value,record_date\n\
                   C1,nps,42,2024-03-01\n\
                   C1,nps,42,2024-03-01\n\
                   C1,nps,43,2024-03-02\n";
    let (report, _) = run::<CustomMetricRow>(&db, tenant, metrics, false, false).await;
    assert_eq!(
        (report.status, report.inserted, report.duplicates_ignored),
        (LoadStatus::Succeeded, 2, 1)
    );
}

#[tokio::test]
async fn a_dry_run_makes_every_check_of_a_load_and_writes_nothing() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await; // base AUD, no exchange rates
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-03-01,1,1,,1,,,\n\
         C2,Two,2024-03-04,100,40,,10,USD,,\n\
         C3,Three,2024-03-04,12.345,40,,10,,,\n\
         C4,Four,2024-03-04,5,4,,1,,,\n\
         C4,Four,2024-03-04,5,4,,1,,,\n"
    );
    let (checked, seen) = run::<FinancialRow>(&db, tenant, &csv, true, false).await;
    let (loaded, _) = run::<FinancialRow>(&db, tenant, &csv, false, false).await;
    // Duplicate key (2, 3), missing rate (4), bad amount (5): the same errors as the load's.
    assert_eq!(checked.status, LoadStatus::Failed);
    assert_eq!(checked.errors, loaded.errors);
    assert_eq!(
        checked.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert_eq!(
        (
            checked.rows_read,
            checked.rejected,
            checked.error_count,
            checked.duplicates_ignored
        ),
        (
            loaded.rows_read,
            loaded.rejected,
            loaded.error_count,
            loaded.duplicates_ignored
        )
    );
    assert_eq!(checked.duplicates_ignored, 1);
    assert_eq!(seen.staged, [2, 3, 4, 6, 7]);
    assert_eq!(checked.sync_run_id, Uuid::nil());
    // Only the real load left a run; nothing was written by either.
    assert_eq!(count(&db, "select count(*) from sync_runs").await, 1);
    assert_eq!(count(&db, "select count(*) from financials").await, 0);
    assert_eq!(count(&db, "select count(*) from client_kpis").await, 0);

    // A clean file checks as `succeeded` and is still not written.
    let clean = format!("{FIN_HEADER}\nC1,One,2024-03-01,100,40,,10,,,\n");
    let (checked, _) = run::<FinancialRow>(&db, tenant, &clean, true, false).await;
    assert_eq!(
        (checked.status, checked.inserted, checked.error_count),
        (LoadStatus::Succeeded, 0, 0)
    );
    assert_eq!(count(&db, "select count(*) from financials").await, 0);
    assert_eq!(count(&db, "select count(*) from sync_runs").await, 1);
}
