//! Integration tests for `zixly_pgembed`: they run real PostgreSQL clusters in
//! temporary directories under /tmp (short paths: Unix socket paths are limited
//! to ~100 bytes).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zixly_pgembed::{
    find_postgres_bindir, find_postgres_bindir_in, ClusterOptions, EmbeddedCluster, PgEmbedError,
};

const HELPER_ENV: &str = "ZIXLY_PGEMBED_HELPER_DIR";

/// A temporary DIR that kills whatever PostgreSQL is left in it when dropped
/// (so a failing test does not leak servers).
struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    fn new() -> Self {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("zpg")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cluster(&self) -> EmbeddedCluster {
        EmbeddedCluster::new(ClusterOptions {
            data_dir: self.path().to_path_buf(),
            tcp_port: None,
            for_tests: true,
        })
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        for pid in processes_in(&self.path().join("pg")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// kill -9 of `pid` (a postmaster the test means to lose).
fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn bindir() -> PathBuf {
    find_postgres_bindir().unwrap().0
}

/// `psql "<url>" -Atc "<sql>"`, returning trimmed stdout; panics on failure.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(bindir().join("psql"))
        .arg(url)
        .arg("-X")
        .arg("-Atc")
        .arg(sql)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// Live processes whose working directory is `pg_dir` (every PostgreSQL
/// process chdirs into its data directory).
fn processes_in(pg_dir: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::canonicalize(pg_dir) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == target)
                && pid_alive(*pid)
        })
        .collect()
}

fn postmaster_pid(cluster: &EmbeddedCluster) -> Option<i32> {
    let text = std::fs::read_to_string(cluster.data_dir().join("pg/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn assert_fully_stopped(cluster: &EmbeddedCluster, pid: i32) {
    assert!(!pid_alive(pid), "postmaster {pid} still alive");
    assert!(
        !cluster.data_dir().join("pg/postmaster.pid").exists(),
        "postmaster.pid left behind"
    );
    assert_eq!(processes_in(&cluster.pg_data_dir()), Vec::<i32>::new());
}

async fn wait_dead(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn discovery_finds_installed_server() {
    let (dir, major) = find_postgres_bindir().unwrap();
    assert!(major >= 15, "major {major}");
    for prog in ["postgres", "initdb", "pg_isready"] {
        assert!(dir.join(prog).is_file(), "{prog} in {}", dir.display());
    }
    if Path::new("/usr/lib/postgresql/15/bin/postgres").exists()
        && !Path::new("/usr/lib/postgresql/16").exists()
        && std::env::var_os("ZIXLY_PG_BINDIR").is_none()
    {
        assert_eq!(major, 15);
    }
}

#[test]
fn discovery_without_binaries_explains_what_to_install() {
    let empty = TestDir::new();
    let err = find_postgres_bindir_in(&[
        empty.path().to_path_buf(),
        PathBuf::from("/nonexistent/bin"),
    ])
    .unwrap_err();
    assert!(matches!(err, PgEmbedError::NotFound(_)));
    let msg = err.to_string();
    for needle in [
        "apt-get install -y postgresql",
        "dnf install postgresql-server",
        "brew install postgresql@16",
        "/nonexistent/bin",
        "ZIXLY_PG_BINDIR",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
}

#[test]
fn discovery_rejects_too_old_server() {
    let fake = TestDir::new();
    for prog in ["postgres", "initdb", "pg_isready"] {
        let p = fake.path().join(prog);
        std::fs::write(&p, "#!/bin/sh\necho 'postgres (PostgreSQL) 13.9'\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = find_postgres_bindir_in(&[fake.path().to_path_buf()]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("too old"), "{msg}");
    assert!(msg.contains("(PostgreSQL 13)"), "{msg}");

    // A real one later in the list wins over the old one.
    let (dir, major) = find_postgres_bindir_in(&[fake.path().to_path_buf(), bindir()]).unwrap();
    assert_eq!(dir, bindir());
    assert!(major >= 15);
}

#[tokio::test]
async fn first_start_reuse_and_clean_stop() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    assert!(!cluster.is_initialized());

    let t0 = Instant::now();
    let running = cluster.start().await.unwrap();
    let first_start = t0.elapsed();
    eprintln!("first start (initdb included): {first_start:?}");
    assert!(running.started_here());
    assert!(!running.adopted());
    assert!(running.owns_server());
    assert!(cluster.is_initialized());
    assert_eq!(postmaster_pid(&cluster), Some(running.pid() as i32));
    assert!(first_start < Duration::from_secs(30), "{first_start:?}");

    // Password file: 0600, owned by the invoking user, strong.
    let meta = std::fs::metadata(cluster.password_file()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::Uid::effective().as_raw());
    let pw = cluster.superuser_password().unwrap();
    assert!(pw.len() >= 32);
    // The temporary initdb pwfile is gone.
    let leftovers: Vec<_> = std::fs::read_dir(cluster.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pwfile") || n.ends_with(".initdb"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let url = cluster.superuser_url("postgres").unwrap();
    assert!(url.starts_with("postgresql://postgres:"), "{url}");
    assert!(url.contains("%2Frun:5432/postgres"), "{url}");
    assert_eq!(psql(&url, "select 1"), "1");
    assert_eq!(psql(&url, "show server_encoding"), "UTF8");
    assert_eq!(psql(&url, "show listen_addresses"), "");
    assert_eq!(psql(&url, "show fsync"), "off");
    // Password auth is really enforced.
    let bad = cluster.url_for("postgres", "wrong", "postgres");
    let out = Command::new(bindir().join("psql"))
        .arg(&bad)
        .arg("-Atc")
        .arg("select 1")
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A second handle on the same DIR reuses the running server.
    let other = dir.cluster();
    let t1 = Instant::now();
    let second = other.start().await.unwrap();
    eprintln!("reuse: {:?}", t1.elapsed());
    assert!(!second.started_here());
    assert!(!second.adopted());
    assert_eq!(second.pid(), running.pid());
    assert_eq!(other.superuser_url("postgres").unwrap(), url);
    assert_eq!(psql(&url, "select 2"), "2");
    // Stopping the non-owning handle leaves the server alone.
    second.stop().await.unwrap();
    assert_eq!(psql(&url, "select 3"), "3");

    let pid = running.pid() as i32;
    running.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);

    // Restart of an initialised cluster is fast.
    let t2 = Instant::now();
    let again = cluster.start().await.unwrap();
    let restart = t2.elapsed();
    eprintln!("restart to ready: {restart:?}");
    assert!(again.started_here());
    assert!(restart < Duration::from_secs(10), "{restart:?}");
    assert_eq!(psql(&url, "select 4"), "4");
    let pid = again.pid() as i32;
    again.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);
}

#[tokio::test]
async fn url_is_accepted_by_tokio_postgres() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let url = cluster.superuser_url("postgres").unwrap();

    let config: tokio_postgres::Config = url.parse().unwrap();
    assert_eq!(
        config.get_hosts(),
        &[tokio_postgres::config::Host::Unix(cluster.socket_dir())]
    );
    assert_eq!(config.get_ports(), &[5432]);
    assert_eq!(config.get_user(), Some("postgres"));
    assert_eq!(config.get_dbname(), Some("postgres"));

    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(connection);
    let row = client.query_one("select 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(client);
    let _ = conn.await;

    running.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_starts_start_one_server() {
    let dir = TestDir::new();
    let (a, b) = (dir.cluster(), dir.cluster());
    let (ra, rb) = tokio::join!(a.start(), b.start());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.pid(), rb.pid());
    assert!(
        ra.started_here() ^ rb.started_here(),
        "exactly one may start it"
    );
    let pid = ra.pid() as i32;
    let (owner, other) = if ra.started_here() {
        (ra, rb)
    } else {
        (rb, ra)
    };
    other.stop().await.unwrap();
    owner.stop().await.unwrap();
    assert_fully_stopped(&a, pid);
}

/// Several starters on the same not-yet-existing DIR at once (as nextest's first test processes
/// on a fresh machine): all succeed and exactly one initialises and starts the server.
/// CI once lost this race: a racer's `chmod 0700` of the DIR it had just seen missing removed
/// the `o+x` that the lock holder had given the PostgreSQL user, and the holder's `initdb`
/// failed with EACCES. That window is microseconds wide, so this test does not reliably
/// reproduce it; `create_dir` now never changes an existing DIR.
#[test]
fn concurrent_first_starts_of_a_missing_dir_all_succeed() {
    const RACERS: usize = 6;
    let dir = TestDir::new();
    std::fs::remove_dir(dir.path()).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|_| {
            let cluster = dir.cluster();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                barrier.wait();
                let running = rt.block_on(cluster.start()).unwrap();
                (rt, running)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let pids: std::collections::BTreeSet<u32> = results.iter().map(|(_, r)| r.pid()).collect();
    assert_eq!(pids.len(), 1, "one server for all: {pids:?}");
    let starters = results.iter().filter(|(_, r)| r.started_here()).count();
    assert_eq!(starters, 1, "exactly one may start it");
    let mode = std::fs::metadata(dir.path()).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o077 & !0o001, 0, "DIR stays private, mode {mode:o}");

    let pid = *pids.iter().next().unwrap() as i32;
    let (owners, others): (Vec<_>, Vec<_>) =
        results.into_iter().partition(|(_, r)| r.started_here());
    for (rt, running) in others.into_iter().chain(owners) {
        rt.block_on(running.stop()).unwrap();
    }
    assert_fully_stopped(&dir.cluster(), pid);
}

/// The process that started the server stops using it while another still does (a short CLI
/// command that started the cluster, and a `zixly up` that began meanwhile): the server keeps
/// running for the other, and the last user stops it.
#[tokio::test]
async fn the_last_user_stops_a_server_its_owner_left_to_others() {
    let dir = TestDir::new();
    let (a, b) = (dir.cluster(), dir.cluster());
    let owner = a.start().await.unwrap();
    assert!(owner.started_here());
    let user = b.start().await.unwrap();
    assert!(!user.started_here());
    let pid = owner.pid() as i32;

    owner.stop().await.unwrap();
    assert!(pid_alive(pid), "stopped under a user");
    let url = b.superuser_url("postgres").unwrap();
    assert_eq!(psql(&url, "select 1"), "1");

    user.stop().await.unwrap();
    assert_fully_stopped(&b, pid);
}

/// A handed-over server is adopted by the next start, which then stops it as its own.
#[tokio::test]
async fn a_handed_over_server_is_adopted_by_the_next_start() {
    let dir = TestDir::new();
    let owner = dir.cluster().start().await.unwrap();
    let user = dir.cluster().start().await.unwrap();
    let pid = owner.pid() as i32;
    owner.stop().await.unwrap();

    let next = dir.cluster().start().await.unwrap();
    assert!(next.adopted(), "anyone's to adopt");
    assert_eq!(next.pid() as i32, pid);
    // The earlier user leaves it to the adopter, who stops it last.
    user.stop().await.unwrap();
    assert!(pid_alive(pid));
    next.stop().await.unwrap();
    assert_fully_stopped(&dir.cluster(), pid);
}

#[tokio::test]
async fn recovers_after_postmaster_sigkill() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let url = cluster.superuser_url("postgres").unwrap();
    // for_tests turns synchronous_commit off; this commit must reach the WAL
    // (the OS page cache survives a process kill, so fsync=off is irrelevant).
    psql(
        &url,
        "set synchronous_commit = on; create table t(x int); insert into t values (7)",
    );
    let pid = running.pid() as i32;
    sigkill(pid);
    drop(running); // reaps the dead child
    wait_dead(pid).await;
    assert!(cluster.data_dir().join("pg/postmaster.pid").exists());

    let t0 = Instant::now();
    let again = cluster.start().await.unwrap();
    eprintln!("start after SIGKILL: {:?}", t0.elapsed());
    assert!(again.started_here());
    assert_ne!(again.pid() as i32, pid);
    assert_eq!(psql(&url, "select x from t"), "7");
    let pid = again.pid() as i32;
    again.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);
}

#[tokio::test]
async fn stale_postmaster_pid_is_handled() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let pid_file = cluster.data_dir().join("pg/postmaster.pid");
    let contents = std::fs::read_to_string(&pid_file).unwrap();
    let pid = running.pid() as i32;
    running.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);

    let replace_pid = |new_pid: i32| {
        let rest = contents.split_once('\n').unwrap().1;
        std::fs::write(&pid_file, format!("{new_pid}\n{rest}")).unwrap();
    };

    // 1. A pid that is dead.
    let mut exited = Command::new("true").spawn().unwrap();
    let dead_pid = exited.id() as i32;
    exited.wait().unwrap();
    replace_pid(dead_pid);
    let r = cluster.start().await.unwrap();
    assert!(r.started_here());
    assert_eq!(
        psql(&cluster.superuser_url("postgres").unwrap(), "select 1"),
        "1"
    );
    let pid = r.pid() as i32;
    r.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);

    // 2. A pid reused by an unrelated live process (this test process).
    replace_pid(std::process::id() as i32);
    let r = cluster.start().await.unwrap();
    assert!(r.started_here());
    assert_eq!(
        psql(&cluster.superuser_url("postgres").unwrap(), "select 1"),
        "1"
    );
    let pid = r.pid() as i32;
    r.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);
}

#[tokio::test]
async fn forgotten_handle_in_live_process_is_reused_not_adopted() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let pid = running.pid() as i32;
    // Our process is alive and (as far as anyone can tell) still responsible.
    std::mem::forget(running);
    let second = dir.cluster().start().await.unwrap();
    assert!(!second.started_here());
    assert!(!second.adopted());
    assert_eq!(second.pid() as i32, pid);
    second.stop().await.unwrap();
    assert!(pid_alive(pid), "a reusing handle must not stop the server");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_dead(pid).await;
}

/// Not a test on its own: started by `killed_parent_postmaster_is_adopted` as a
/// separate process that starts a cluster, reports it and waits to be SIGKILLed.
#[tokio::test]
#[ignore = "helper process for killed_parent_postmaster_is_adopted"]
async fn helper_hold_cluster() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let cluster = EmbeddedCluster::new(ClusterOptions {
        data_dir: PathBuf::from(&dir),
        tcp_port: None,
        for_tests: true,
    });
    let running = cluster.start().await.unwrap();
    std::fs::write(
        Path::new(&dir).join("helper.ready"),
        running.pid().to_string(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn killed_parent_postmaster_is_adopted() {
    let dir = TestDir::new();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_hold_cluster", "--ignored", "--nocapture"])
        .env(HELPER_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = dir.path().join("helper.ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Not just "exists": `fs::write` creates the file before it writes the pid.
    while std::fs::read_to_string(&ready).map_or(true, |t| t.trim().is_empty()) {
        if let Some(status) = helper.try_wait().unwrap() {
            panic!("helper exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "helper did not start the cluster"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let postmaster: i32 = std::fs::read_to_string(&ready)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    helper.kill().unwrap(); // SIGKILL: no cleanup runs in the helper
    helper.wait().unwrap();
    assert!(
        pid_alive(postmaster),
        "postmaster should outlive its parent"
    );

    let cluster = dir.cluster();
    let adopted = cluster.start().await.unwrap();
    assert!(!adopted.started_here());
    assert!(adopted.adopted());
    assert!(adopted.owns_server());
    assert_eq!(adopted.pid() as i32, postmaster);
    assert_eq!(
        psql(&cluster.superuser_url("postgres").unwrap(), "select 1"),
        "1"
    );

    // A further handle now sees a live owner (us) and only reuses it.
    let reuse = dir.cluster().start().await.unwrap();
    assert!(!reuse.started_here() && !reuse.adopted());
    reuse.stop().await.unwrap();

    adopted.stop().await.unwrap();
    wait_dead(postmaster).await;
    assert_fully_stopped(&cluster, postmaster);
}

#[tokio::test]
async fn root_reports_untraversable_parent() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: nothing to check");
        return;
    }
    let parent = TestDir::new(); // tempfile creates it 0700, owned by root
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let cluster = EmbeddedCluster::new(ClusterOptions {
        data_dir: parent.path().join("d"),
        tcp_port: None,
        for_tests: true,
    });
    let err = cluster.start().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PgEmbedError::NotTraversable { .. }), "{msg}");
    assert!(
        msg.contains(&parent.path().display().to_string()),
        "names the directory: {msg}"
    );
    assert!(msg.contains("chmod o+x"), "{msg}");
}

#[tokio::test]
async fn root_runs_postgres_as_unprivileged_user() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: nothing to check");
        return;
    }
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", running.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uid: u32 = uid_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(uid, 0, "postgres must not run as root");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(groups.trim(), "Groups:", "supplementary groups are cleared");
    assert_eq!(std::fs::metadata(cluster.pg_data_dir()).unwrap().uid(), uid);
    assert_eq!(std::fs::metadata(cluster.socket_dir()).unwrap().uid(), uid);
    // The password file stays with the invoking user.
    assert_eq!(std::fs::metadata(cluster.password_file()).unwrap().uid(), 0);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn durable_defaults_and_tcp_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TestDir::new();
    let cluster = EmbeddedCluster::new(ClusterOptions {
        data_dir: dir.path().to_path_buf(),
        tcp_port: Some(port),
        for_tests: false,
    });
    assert_eq!(cluster.port(), port);
    let t0 = Instant::now();
    let running = cluster.start().await.unwrap();
    eprintln!("first durable start (initdb with sync): {:?}", t0.elapsed());
    assert!(cluster.socket_path().ends_with(format!(".s.PGSQL.{port}")));
    let url = cluster.superuser_url("postgres").unwrap();
    assert!(url.contains(&format!(":{port}/postgres")), "{url}");
    assert_eq!(psql(&url, "show fsync"), "on");
    assert_eq!(psql(&url, "show synchronous_commit"), "on");
    assert_eq!(psql(&url, "show full_page_writes"), "on");
    assert_eq!(psql(&url, "show password_encryption"), "scram-sha-256");
    let pw = cluster.superuser_password().unwrap();
    let tcp = format!("postgresql://postgres:{pw}@127.0.0.1:{port}/postgres");
    assert_eq!(psql(&tcp, "select 1"), "1");
    let pid = running.pid() as i32;
    running.stop().await.unwrap();
    assert_fully_stopped(&cluster, pid);
}

/// Waits until `rx` has counted `n` restarts.
async fn restarts_reach(rx: &mut tokio::sync::watch::Receiver<u64>, n: u64) {
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|c| *c >= n))
        .await
        .expect("no restart within 30 s")
        .unwrap();
}

#[tokio::test]
async fn supervisor_restarts_a_killed_postmaster_and_stops_it_once() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let url = cluster.superuser_url("postgres").unwrap();
    psql(
        &url,
        "set synchronous_commit = on; create table t(x int); insert into t values (7)",
    );
    let first = running.pid() as i32;
    let supervisor = zixly_pgembed::Supervisor::spawn(running);
    let mut restarts = supervisor.restarts();

    for round in 1..=2 {
        let pid = postmaster_pid(&cluster).unwrap();
        sigkill(pid);
        restarts_reach(&mut restarts, round).await;
        let new = postmaster_pid(&cluster).unwrap();
        assert_ne!(new, pid, "round {round}: a new postmaster");
        assert!(pid_alive(new));
        assert_eq!(psql(&url, "select x from t"), "7", "data survives");
    }
    let last = postmaster_pid(&cluster).unwrap();
    assert_ne!(last, first);

    // A clean stop: stopped once, not restarted.
    supervisor.stop().await.unwrap();
    assert_fully_stopped(&cluster, last);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(processes_in(&cluster.pg_data_dir()), Vec::<i32>::new());
    assert_eq!(*restarts.borrow(), 2);
}

#[tokio::test]
async fn a_supervisor_that_stood_down_does_not_restart() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let pid = running.pid() as i32;
    let supervisor = zixly_pgembed::Supervisor::spawn(running);
    // Shutdown began, then PostgreSQL went away (e.g. the whole process group was signalled).
    supervisor.stand_down_handle().stand_down();
    sigkill(pid);
    wait_dead(pid).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        processes_in(&cluster.pg_data_dir())
            .into_iter()
            .filter(|p| *p != pid)
            .count(),
        0,
        "nothing restarted"
    );
    supervisor.stop().await.unwrap();
    assert_eq!(processes_in(&cluster.pg_data_dir()), Vec::<i32>::new());
}

#[tokio::test]
async fn a_supervisor_reuses_a_server_another_process_started_meanwhile() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let pid = running.pid() as i32;
    let supervisor = zixly_pgembed::Supervisor::spawn(running);
    let mut restarts = supervisor.restarts();
    sigkill(pid);
    wait_dead(pid).await;
    // Another zixly process (a CLI command, say) starts the cluster before the supervisor's first
    // attempt (0.5 s): the supervisor must use that server, not start a second one.
    let other = dir.cluster().start().await.unwrap();
    assert!(other.started_here());
    restarts_reach(&mut restarts, 1).await;
    assert_eq!(postmaster_pid(&cluster), Some(other.pid() as i32));
    let postgres = processes_in(&cluster.pg_data_dir());
    assert!(postgres.contains(&(other.pid() as i32)));
    // Stopping the supervisor leaves the server to the process that started it...
    supervisor.stop().await.unwrap();
    assert!(pid_alive(other.pid() as i32));
    let url = cluster.superuser_url("postgres").unwrap();
    assert_eq!(psql(&url, "select 1"), "1");
    // ...which stops it.
    let last = other.pid() as i32;
    other.stop().await.unwrap();
    assert_fully_stopped(&cluster, last);
}

#[tokio::test]
async fn a_supervisor_does_not_recreate_a_vanished_data_directory() {
    let dir = TestDir::new();
    let cluster = dir.cluster();
    let running = cluster.start().await.unwrap();
    let pid = running.pid() as i32;
    let supervisor = zixly_pgembed::Supervisor::spawn(running);
    let mut restarts = supervisor.restarts();
    sigkill(pid);
    // The data goes away with the server (a mistaken `rm`, an unmounted volume).
    let aside = dir.path().join("pg.aside");
    std::fs::rename(cluster.pg_data_dir(), &aside).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !cluster.is_initialized(),
        "no new, empty cluster in place of the data"
    );
    assert_eq!(*restarts.borrow(), 0);
    // Restored: the next attempt starts it.
    std::fs::rename(&aside, cluster.pg_data_dir()).unwrap();
    restarts_reach(&mut restarts, 1).await;
    let url = cluster.superuser_url("postgres").unwrap();
    assert_eq!(psql(&url, "select 1"), "1");
    let last = postmaster_pid(&cluster).unwrap();
    supervisor.stop().await.unwrap();
    assert_fully_stopped(&cluster, last);
}
