//! Issue 9 item 6: a load leaves its `sync_runs` row however it ends. The row is `running` from
//! before the first input row; a load that never finishes (its future dropped: a cancelled
//! request, a killed process) is marked `interrupted` by the sweep once its session is gone; a
//! healthy load that is still running is never marked; a database failure mid-load is `failed`.
//! Before the fix no row existed until a load had finished, so these tests found nothing.

use std::time::{Duration, Instant};

use futures_util::stream;
use tokio::sync::mpsc;
use uuid::Uuid;
use zixly_db::loader::{self, Input, LoadOptions, LoadReport, LoadStatus};
use zixly_db::DbResult;
use zixly_domain::ingest::{CsvRows, FinancialRow};
use zixly_testkit::TestDb;

const DEADLINE: Duration = Duration::from_secs(20);

/// Valid financial rows for clients `C0..Cn`, as the loader's input.
async fn rows(db: &TestDb, tenant: Uuid, n: usize) -> Vec<Input<FinancialRow>> {
    let ctx = loader::ingest_context(&db.app, tenant, "csv")
        .await
        .unwrap();
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    for i in 0..n {
        csv.push_str(&format!("C{i},Client {i},2024-03-01,10,4,1\n"));
    }
    CsvRows::<_, FinancialRow>::new(csv.as_bytes(), ctx)
        .unwrap()
        .map(Input::from)
        .collect()
}

/// A load fed through a channel, running in its own task: it stays in the middle of its COPY
/// until the sender is dropped.
fn held_load(
    db: &TestDb,
    tenant: Uuid,
    file: &str,
) -> (
    mpsc::Sender<Input<FinancialRow>>,
    tokio::task::JoinHandle<DbResult<LoadReport>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let input = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let app = db.app.clone();
    let options = LoadOptions {
        file_name: Some(file.into()),
        ..LoadOptions::new("csv")
    };
    let task = tokio::spawn(async move {
        loader::load::<FinancialRow, _, _>(&app, tenant, &options, input, None).await
    });
    (tx, task)
}

/// (status, finished, first error) of the run of `file`, once it exists.
async fn run_of(db: &TestDb, file: &str) -> (String, bool, Option<String>) {
    let su = db.superuser().await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let row = su
            .query_opt(
                "select status::text, finished_at is not null, errors -> 0 ->> 'reason'
                   from sync_runs where file_name = $1",
                &[&file],
            )
            .await
            .unwrap();
        if let Some(r) = row {
            return (r.get(0), r.get(1), r.get(2));
        }
        assert!(
            Instant::now() < deadline,
            "no sync_runs row for {file} while its load runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sweeps until `file`'s run is marked (its session's end reaches the server asynchronously).
async fn sweep_until_interrupted(db: &TestDb, file: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        db.system.interrupt_orphaned_sync_runs().await.unwrap();
        if run_of(db, file).await.0 == "interrupted" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{file} was not marked interrupted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dropped_load_is_marked_interrupted_and_a_live_one_is_not() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let input = rows(&db, tenant, 3).await;
    let mut input = input.into_iter();

    // Two loads in the middle of their COPY.
    let (live_tx, live) = held_load(&db, tenant, "live.csv");
    let (dead_tx, dead) = held_load(&db, tenant, "dead.csv");
    live_tx.send(input.next().unwrap()).await.unwrap();
    dead_tx
        .send(rows(&db, tenant, 1).await.remove(0))
        .await
        .unwrap();
    assert_eq!(
        run_of(&db, "live.csv").await,
        ("running".into(), false, None)
    );
    assert_eq!(
        run_of(&db, "dead.csv").await,
        ("running".into(), false, None)
    );

    // Both sessions alive: the sweep marks nothing, however often it runs.
    for _ in 0..3 {
        let marked = db.system.interrupt_orphaned_sync_runs().await.unwrap();
        assert!(marked.is_empty(), "{marked:?}");
    }

    // The second load's future is dropped mid-COPY (as when a request is cancelled): its
    // connection closes, and with it the session that owned the run.
    dead.abort();
    assert!(dead.await.unwrap_err().is_cancelled());
    sweep_until_interrupted(&db, "dead.csv").await;
    let (status, finished, reason) = run_of(&db, "dead.csv").await;
    assert_eq!((status.as_str(), finished), ("interrupted", true));
    assert!(reason.unwrap().starts_with("interrupted:"));
    assert_eq!(
        run_of(&db, "live.csv").await.0,
        "running",
        "the live load is untouched"
    );

    // The live load goes on and finishes normally.
    for row in input {
        live_tx.send(row).await.unwrap();
    }
    drop(live_tx);
    let report = live.await.unwrap().unwrap();
    assert_eq!(report.status, LoadStatus::Succeeded);
    assert_eq!(report.inserted, 3);
    assert_eq!(
        run_of(&db, "live.csv").await,
        ("succeeded".into(), true, None)
    );

    let su = db.superuser().await;
    let stored: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3, "only the finished load wrote rows");
    // The finished load gave its run lock back with its connection (which went back to the pool).
    let locks: i64 = su
        .query_one(
            "select count(*) from pg_locks where locktype = 'advisory' and database = \
             (select oid from pg_database where datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "no run lock left behind");
    // A finished run is never rewritten by a later sweep.
    db.system.interrupt_orphaned_sync_runs().await.unwrap();
    assert_eq!(run_of(&db, "live.csv").await.0, "succeeded");
}

#[tokio::test]
async fn a_database_failure_mid_load_leaves_a_failed_run() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let mut input = rows(&db, tenant, 2).await.into_iter();
    let (tx, load) = held_load(&db, tenant, "cut.csv");
    tx.send(input.next().unwrap()).await.unwrap();
    assert_eq!(run_of(&db, "cut.csv").await.0, "running");

    // The server ends the loading session (as a crash of its backend would).
    let su = db.superuser().await;
    let killed: bool = su
        .query_one(
            "select pg_terminate_backend(owner_pid) from sync_runs where file_name = 'cut.csv'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    for row in input {
        let _ = tx.send(row).await;
    }
    drop(tx);
    assert!(
        load.await.unwrap().is_err(),
        "the load reports the database error"
    );
    let (status, finished, reason) = run_of(&db, "cut.csv").await;
    assert_eq!((status.as_str(), finished), ("failed", true));
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .starts_with("database error"),
        "{reason:?}"
    );
    let stored: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn an_atomic_failure_finishes_its_run_on_the_owning_connection() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let ctx = loader::ingest_context(&db.app, tenant, "csv")
        .await
        .unwrap();
    let csv = "client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,One,2024-03-01,10,4,1\nC2,Two,2024-02-30,1,1,0\n";
    let input: Vec<Input<FinancialRow>> = CsvRows::<_, FinancialRow>::new(csv.as_bytes(), ctx)
        .unwrap()
        .map(Input::from)
        .collect();
    let options = LoadOptions {
        file_name: Some("bad.csv".into()),
        ..LoadOptions::new("csv")
    };
    let report = loader::load(&db.app, tenant, &options, stream::iter(input), None)
        .await
        .unwrap();
    assert_eq!(report.status, LoadStatus::Failed);
    let (status, finished, _) = run_of(&db, "bad.csv").await;
    assert_eq!((status.as_str(), finished), ("failed", true));
    let su = db.superuser().await;
    let row = su
        .query_one(
            "select id, error_count, rows_read from sync_runs where file_name = 'bad.csv'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), report.sync_run_id);
    assert_eq!(
        (row.get::<_, i64>(1), row.get::<_, i64>(2)),
        (1, 2),
        "one error, two rows read"
    );
    let locks: i64 = su
        .query_one(
            "select count(*) from pg_locks where locktype = 'advisory' and database = \
             (select oid from pg_database where datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "the run lock was released");
}
