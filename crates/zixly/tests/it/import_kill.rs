//! Issue 9 item 6 as an operator meets it: `zixly import` SIGKILLed in the middle of a large load
//! leaves its `sync_runs` row, which the next process that starts up (`zixly worker` here; `up`
//! and `serve` run the same sweep) marks `interrupted` — while another import that is still
//! loading is left alone and then succeeds. Before the fix the killed import left no row at all.
//!
//! The inputs are FIFOs fed by writer threads, so "in the middle of the load" is a fact, not a
//! race with the machine's speed: the killed import's writer generates rows without end (the
//! "large file"); the healthy one's writer holds its FIFO open until the test lets it finish.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use zixly_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_zixly");
const DEADLINE: Duration = Duration::from_secs(60);
const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";

fn zixly(db: &TestDb, dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.join("unused"))
        .env("ZIXLY_LOG", "warn")
        .env_remove("ZIXLY_ENCRYPTION_KEY");
    cmd
}

/// A child that is SIGKILLed and reaped when dropped (a failing test leaves nothing behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn import(db: &TestDb, dir: &Path, tenant: &str, fifo: &Path) -> Proc {
    let child = zixly(db, dir)
        .args(["import", "financials", "--tenant", tenant])
        .arg(fifo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

fn fifo(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    path
}

/// Status of the run of `file`, if it has one.
async fn status(db: &TestDb, file: &Path) -> Option<String> {
    db.superuser()
        .await
        .query_opt(
            "select status::text from sync_runs where file_name = $1",
            &[&file.display().to_string()],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_import_is_marked_interrupted_at_start_up_and_a_live_one_is_not() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();

    // The import to kill: rows without end, as fast as it takes them.
    let endless = fifo(dir.path(), "endless.csv");
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (path, written) = (endless.clone(), written.clone());
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
            out.write_all(HEADER.as_bytes()).unwrap();
            for i in 0u64.. {
                // Fails (EPIPE) once the reader is dead.
                if writeln!(out, "C{},Client {},2024-03-01,10,4,1", i % 5000, i % 5000).is_err() {
                    return;
                }
                written.store(i, Ordering::Relaxed);
            }
        })
    };
    let mut killed = import(&db, dir.path(), &tenant, &endless);

    // The import that stays healthy: a few rows, then it waits for the rest of its input.
    let held = fifo(dir.path(), "held.csv");
    let (finish, finished) = mpsc::channel::<()>();
    let held_writer = {
        let path = held.clone();
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(path).unwrap();
            out.write_all(HEADER.as_bytes()).unwrap();
            for i in 0..10 {
                writeln!(out, "H{i},Held {i},2024-03-01,10,4,1").unwrap();
            }
            out.flush().unwrap();
            let _ = finished.recv();
            writeln!(out, "H10,Held 10,2024-03-01,10,4,1").unwrap();
        })
    };
    let mut healthy = import(&db, dir.path(), &tenant, &held);

    wait_for("both imports to record their runs", async || {
        status(&db, &endless).await.as_deref() == Some("running")
            && status(&db, &held).await.as_deref() == Some("running")
    })
    .await;
    // Well into its COPY: 200,000 rows are more than any pipe or channel buffers.
    wait_for("the import to read 200,000 rows", async || {
        written.load(Ordering::Relaxed) > 200_000
    })
    .await;
    killed.0.kill().unwrap(); // SIGKILL
    killed.0.wait().unwrap();
    writer.join().unwrap();
    assert_eq!(
        status(&db, &endless).await.as_deref(),
        Some("running"),
        "the killed import's row is there, unfinished"
    );
    // Its database session ends once the server sees the socket close (promptly, but not
    // synchronously with the kill).
    let su = db.superuser().await;
    wait_for("the killed import's session to end", async || {
        su.query_one(
            "select count(*) from pg_stat_activity
              where pid = (select owner_pid from sync_runs where file_name = $1)",
            &[&endless.display().to_string()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == 0
    })
    .await;

    // The next process to start sweeps: the dead run is interrupted, the live one untouched.
    let mut worker = Proc(
        zixly(&db, dir.path())
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(worker.0.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        lines.any(|l| l.is_ok_and(|l| l.starts_with("Zixly worker running")))
    });
    assert!(ready.await.unwrap(), "the worker did not start");
    assert_eq!(status(&db, &endless).await.as_deref(), Some("interrupted"));
    assert_eq!(
        status(&db, &held).await.as_deref(),
        Some("running"),
        "a live import is never marked"
    );
    let row = su
        .query_one(
            "select finished_at is not null, errors -> 0 ->> 'reason', rows_inserted
               from sync_runs where file_name = $1",
            &[&endless.display().to_string()],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, String>(1).starts_with("interrupted:"));
    assert_eq!(row.get::<_, i64>(2), 0);
    let loaded: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(loaded, 0, "nothing of the killed import was written");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(worker.0.wait().unwrap().success());

    // The live import was not disturbed: it finishes and succeeds.
    finish.send(()).unwrap();
    held_writer.join().unwrap();
    let exit = tokio::task::spawn_blocking(move || healthy.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit}");
    assert_eq!(status(&db, &held).await.as_deref(), Some("succeeded"));
    let loaded: i64 = su
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(loaded, 11);
}
