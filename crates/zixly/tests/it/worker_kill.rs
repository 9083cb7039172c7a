//! A real `zixly worker` process SIGKILLed in the middle of a Xero sync, then a new worker: the
//! rescuer puts the orphaned job back, it resumes at the checkpoint the dead worker committed
//! (no committed page is read again), and the tenant ends up with exactly the rows an
//! uninterrupted sync of the same provider data gives another tenant.
//!
//! Instead of waiting out a rescue delay, the test starts the new worker with
//! `ZIXLY_RESCUE_AFTER=30` (`--rescue-after`) and ages the dead attempt's `heartbeat_at` by 45 s
//! in the database, which is what the clock would have done; the new worker's own rescuer (which
//! runs as the worker starts) then finds it. With the default delay (120 s) a 45 s old heartbeat
//! is not rescued, so the test also proves the setting reaches the rescuer.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_crypto::generate_key;
use zixly_testkit::fakes::record::{clear_recorded, recorded};
use zixly_testkit::fakes::xero::{ms_date, FakeXero};
use zixly_testkit::TestDb;

use crate::sync_cli::{connected, zixly};

/// Generous bound of every wait: conditions are polled, this only turns a hang into a failure
/// (a sync takes about 2 s here, but several times that on a loaded machine).
const DEADLINE: Duration = Duration::from_secs(60);
/// Each API call of the slow fake while the first worker runs: a full sync is eleven calls, and
/// the worker is killed once its first document page is committed (the fifth call), so it has
/// several of these left to be caught mid-sync.
const SLOW_CALL: Duration = Duration::from_millis(400);

/// Runs `cmd` to its end off the runtime; panics with its output unless it succeeds.
async fn run_ok(mut cmd: Command) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A child process that is SIGKILLed and reaped when dropped (a failing test leaves none behind).
struct Worker {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(mut cmd: Command, log: std::path::PathBuf) -> Worker {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Worker {
            child: Some(child),
            log,
        }
    }

    /// SIGKILL (`Child::kill`) and reap; the exit status.
    fn kill(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap()
    }

    /// Panics (with the log) if the process has exited.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the worker exited ({status}): {}", self.log());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after [`DEADLINE`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of `$sql` with `$params`, each column as text (`tokio_postgres` is not a dependency
/// of this crate, so its client type cannot be named in a function signature).
macro_rules! rows {
    ($su:expr, $sql:expr $(, $param:expr)*) => {
        $su.query($sql, &[$(&$param),*])
            .await
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
}

/// Pages read by the tenant's unfinished run (no row: none committed, or the run settled).
const CHECKPOINT: &str =
    "select pages_read::text from sync_checkpoints where tenant_id = $1 and pages_read > 0";

/// The successful document-page requests the fake answered, in order: (path, If-Modified-Since,
/// page).
fn document_requests(fake: &FakeXero) -> Vec<(String, String, String)> {
    recorded(&fake.url)
        .iter()
        .filter(|r| r.status == 200 && r.query_values("IDs").is_empty())
        .filter(|r| {
            ["Invoices", "CreditNotes", "Payments", "BankTransactions"]
                .iter()
                .any(|d| r.path.ends_with(&format!("/{d}")))
        })
        .map(|r| {
            (
                r.path.clone(),
                r.header("if-modified-since").unwrap_or("").to_string(),
                r.query_values("page").first().unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

/// A job's state, attempt and errors.
const JOB: &str =
    "select state, attempt::text, errors::text from jobs where tenant_id = $1 and id = $2";

/// Every `financials` row of the tenant by the client's provider id: all columns but the tenant's
/// own ids and timestamps, sorted.
const FINANCIALS: &str = "select c.client_id, c.client_name, f.record_date::text, f.revenue::text,
        f.expenses::text, f.net_profit::text, f.cash_flow::text, f.currency::text, f.source_system,
        f.external_id, f.metadata::text
   from financials f join client_kpis c on c.tenant_id = f.tenant_id and c.id = f.client_kpi_id
  where f.tenant_id = $1
  order by 1, 3, 9";

/// Every client of the tenant (all columns but ids and timestamps), sorted.
const CLIENTS: &str = "select client_id, client_name, industry, currency::text from client_kpis
  where tenant_id = $1 order by 1";

/// Every stored per-document contribution of the tenant, sorted.
const CONTRIBUTIONS: &str = "select document_id, client_id, record_date::text, revenue::text,
        expenses::text, cash_flow::text
   from sync_contributions where tenant_id = $1 order by 1, 2, 3";

/// Status and integration of every `sync_runs` row of the tenant.
const SYNC_RUNS: &str = "select status::text, integration_id::text from sync_runs
  where tenant_id = $1 order by started_at";

/// (state, attempt, errors) of the one row of [`JOB`].
fn job(rows: Vec<Vec<Option<String>>>) -> (String, i32, Value) {
    let [row] = <[_; 1]>::try_from(rows).expect("one job");
    let text = |i: usize| row[i].clone().unwrap();
    (
        text(0),
        text(1).parse().unwrap(),
        serde_json::from_str(&text(2)).unwrap(),
    )
}

/// Equal row lists, or a failure showing the first differences (the lists are long).
fn assert_same(what: &str, got: &[Vec<Option<String>>], expected: &[Vec<Option<String>>]) {
    if got == expected {
        return;
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|r| !got.contains(r))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|r| !expected.contains(r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} rows, expected {}; first missing: {missing:?}; first unexpected: {extra:?}",
        got.len(),
        expected.len()
    );
}

/// A Xero organisation large enough that a full sync takes ten API calls at the fake's page size
/// of 1000 (connections, organisation, 2 pages of contacts, 3 of invoices, 2 of payments, 1 of
/// bank transactions): sales, tracked bills, voids, payments on both, deleted payments, spend and
/// receive money.
fn seed(fake: &FakeXero) {
    const CLIENTS: usize = 1100;
    let day0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let date = |i: usize| ms_date(day0 + chrono::Duration::days((i * 13 % 60) as i64));
    let amount = |i: usize| (i * 37 % 5000) as f64 / 4.0 + 1.0;
    let name = |c: usize| format!("Client {c:04}");
    for c in 0..CLIENTS {
        fake.upsert(
            "Contacts",
            "ContactID",
            json!({"ContactID": format!("c{c}"), "Name": name(c), "ContactStatus": "ACTIVE"}),
        );
    }
    fake.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "supplier", "Name": "Supplies Ltd", "ContactStatus": "ACTIVE"}),
    );
    let mut invoices = Vec::new();
    for i in 0..2100 {
        let status = if i % 17 == 0 { "VOIDED" } else { "AUTHORISED" };
        let doc = if i % 10 == 9 {
            json!({"InvoiceID": format!("i{i}"), "Type": "ACCPAY", "Status": status,
                   "Contact": {"ContactID": "supplier"}, "Date": date(i), "SubTotal": amount(i),
                   "LineAmountTypes": "Exclusive",
                   "LineItems": [
                       {"LineAmount": amount(i), "TaxAmount": 1.5,
                        "Tracking": [{"Name": "Client", "Option": name(i * 11 % 1000)}]},
                       {"LineAmount": 10.25, "TaxAmount": 0,
                        "Tracking": [{"Name": "Client", "Option": name(i * 3 % 1000)}]}]})
        } else {
            json!({"InvoiceID": format!("i{i}"), "Type": "ACCREC", "Status": status,
                   "Contact": {"ContactID": format!("c{}", i * 7 % 1000)}, "Date": date(i),
                   "SubTotal": amount(i)})
        };
        invoices.push(doc.clone());
        fake.upsert("Invoices", "InvoiceID", doc);
    }
    for p in 0..1100 {
        let invoice = &invoices[p * 2 % invoices.len()];
        let status = if p % 23 == 0 { "DELETED" } else { "AUTHORISED" };
        fake.upsert(
            "Payments",
            "PaymentID",
            json!({"PaymentID": format!("p{p}"), "Status": status, "Date": date(p + 5),
                   "Amount": amount(p) / 2.0,
                   "Invoice": {"InvoiceID": invoice["InvoiceID"], "Type": invoice["Type"],
                               "Contact": invoice["Contact"]}}),
        );
    }
    for b in 0..60 {
        let doc = if b % 2 == 0 {
            json!({"BankTransactionID": format!("b{b}"), "Type": "SPEND", "Status": "AUTHORISED",
                   "Contact": {"ContactID": "supplier"}, "Date": date(b + 2),
                   "LineAmountTypes": "Inclusive",
                   "LineItems": [{"LineAmount": amount(b), "TaxAmount": 2.0,
                                  "Tracking": [{"Name": "Client", "Option": name(b * 5 % 1000)}]}]})
        } else {
            json!({"BankTransactionID": format!("b{b}"), "Type": "RECEIVE",
                   "Status": if b % 7 == 0 { "VOIDED" } else { "AUTHORISED" },
                   "Contact": {"ContactID": format!("c{}", b * 9 % 1000)}, "Date": date(b + 3),
                   "LineAmountTypes": "NoTax", "LineItems": [{"LineAmount": amount(b)}]})
        };
        fake.upsert("BankTransactions", "BankTransactionID", doc);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sigkilled_mid_sync_is_rescued_by_the_next_and_converges_to_an_uninterrupted_sync()
{
    let db = TestDb::new().await;
    let fake = FakeXero::start().await;
    seed(&fake);
    let key = generate_key();
    let su = db.superuser().await;
    let logs = tempfile::tempdir().unwrap();

    // The reference: an uninterrupted full sync of the same data into another tenant. Done
    // before the other tenant is connected, so that this run's scheduler has nothing of it to
    // schedule.
    let (reference, _) = connected(&db, &fake, &key, "Reference").await;
    let before = fake.oauth.api_calls();
    let mut cmd = zixly(&db, &fake, &key);
    cmd.args(["sync", "xero", "--tenant", &reference.to_string(), "--wait"]);
    run_ok(cmd).await;
    let full_sync_calls = fake.oauth.api_calls() - before;
    assert!(
        full_sync_calls >= 10,
        "a full sync should take many API calls, took {full_sync_calls}"
    );
    let expected = rows!(su, FINANCIALS, reference);
    assert!(expected.len() > 1000, "{} financials rows", expected.len());

    // The tenant under test: a sync queued the way `zixly sync` without --wait (and the API's
    // "sync now") does, then a worker process that is killed between two API calls.
    let (tenant, integration) = connected(&db, &fake, &key, "Killed").await;
    let mut cmd = zixly(&db, &fake, &key);
    cmd.args(["sync", "xero", "--tenant", &tenant.to_string()]);
    let out = run_ok(cmd).await;
    let job_id: Uuid = out
        .split("(job ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no job id in: {out}"));
    assert_eq!(job(rows!(su, JOB, tenant, job_id)).0, "available");

    fake.oauth.set_api_delay(SLOW_CALL);
    clear_recorded(&fake.url);
    let before = fake.oauth.api_calls();
    let mut first = Worker::start(zixly(&db, &fake, &key), logs.path().join("first.log"));
    // Killed once its first document page is committed with the run's checkpoint.
    until("the first worker to commit a page", || {
        first.assert_alive();
        let su = &su;
        async move {
            let (state, _, _) = job(rows!(su, JOB, tenant, job_id));
            let pages = rows!(su, CHECKPOINT, tenant);
            (state == "running" && !pages.is_empty()).then_some(())
        }
    })
    .await;
    let status = first.kill();
    let checkpoint = rows!(su, CHECKPOINT, tenant);
    let committed_pages: usize = checkpoint[0][0].as_deref().unwrap().parse().unwrap();
    assert!(committed_pages >= 1, "{checkpoint:?}");
    let read_before_kill = document_requests(&fake);
    let served = fake.oauth.api_calls() - before;
    assert_eq!(status.signal(), Some(9), "{status}");
    assert!(
        served < full_sync_calls,
        "killed after {served} of {full_sync_calls} API calls: not mid-sync"
    );

    // The dead worker's attempt is still `running`; whatever it committed is not a finished run.
    let (state, attempt, errors) = job(rows!(su, JOB, tenant, job_id));
    assert_eq!((state.as_str(), attempt), ("running", 1), "{errors}");
    assert!(
        rows!(su, SYNC_RUNS, tenant)
            .iter()
            .all(|r| r[0].as_deref() != Some("succeeded")),
        "a killed run recorded success"
    );

    // More than the new worker's rescue delay (30 s) without a heartbeat, as the clock would have
    // it, but less than the default 120 s (see the module docs).
    let aged = su
        .execute(
            "update jobs set heartbeat_at = heartbeat_at - interval '45 seconds'
              where tenant_id = $1 and id = $2 and state = 'running'",
            &[&tenant, &job_id],
        )
        .await
        .unwrap();
    assert_eq!(aged, 1);

    // A new worker rescues the job and completes it.
    fake.oauth.set_api_delay(Duration::ZERO);
    let mut quick_rescue = zixly(&db, &fake, &key);
    quick_rescue.env("ZIXLY_RESCUE_AFTER", "30");
    let mut second = Worker::start(quick_rescue, logs.path().join("second.log"));
    let (state, attempt, errors) = until("the rescued job to finish", || {
        second.assert_alive();
        let su = &su;
        async move {
            let j = job(rows!(su, JOB, tenant, job_id));
            matches!(j.0.as_str(), "completed" | "discarded" | "cancelled").then_some(j)
        }
    })
    .await;
    second.assert_alive();
    let log = second.log();
    second.kill();
    assert_eq!(
        (state.as_str(), attempt),
        ("completed", 2),
        "errors: {errors}\nlog: {log}"
    );
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0]["error"], "worker stopped heartbeating (rescued)",
        "{errors:?}"
    );
    assert!(log.contains("rescued jobs of a dead worker"), "{log}");

    // The rescued attempt resumed at the checkpoint: no page committed before the kill was asked
    // for again (the page in flight when the worker died may be).
    let all = document_requests(&fake);
    let committed = &read_before_kill[..committed_pages];
    let resumed = &all[read_before_kill.len()..];
    for page in committed {
        assert!(
            !resumed.contains(page),
            "{page:?} was committed before the kill and read again: {all:#?}"
        );
    }
    assert_eq!(
        rows!(su, CHECKPOINT, tenant),
        Vec::<Vec<Option<String>>>::new(),
        "the settled run left its checkpoint"
    );

    // Converged: exactly the reference's rows, once each, from one successful run.
    let got = rows!(su, FINANCIALS, tenant);
    assert_same("financials", &got, &expected);
    assert_same(
        "clients",
        &rows!(su, CLIENTS, tenant),
        &rows!(su, CLIENTS, reference),
    );
    assert_same(
        "contributions",
        &rows!(su, CONTRIBUTIONS, tenant),
        &rows!(su, CONTRIBUTIONS, reference),
    );
    let dirty: i64 = su
        .query_one(
            "select count(*) from sync_dirty_days where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dirty, 0, "days left dirty");
    let duplicates: i64 = su
        .query_one(
            "select count(*) from (select 1 from financials where tenant_id = $1
                                    group by client_kpi_id, record_date, source_system
                                   having count(*) > 1) d",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(duplicates, 0);
    assert_eq!(
        rows!(su, SYNC_RUNS, tenant),
        vec![vec![
            Some("succeeded".to_string()),
            Some(integration.to_string())
        ]]
    );
    let (status, last_error): (String, Option<String>) = su
        .query_one(
            "select status::text, last_error from integrations where tenant_id = $1 and id = $2",
            &[&tenant, &integration],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), last_error), ("ACTIVE", None));
}
