//! `zixly up` lifecycle against the real binary and a real embedded PostgreSQL: first start,
//! restart, recovery after SIGKILL, clean stop with nothing left behind; and the CLI commands that
//! reuse a running cluster.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zixly");

fn data_dir() -> tempfile::TempDir {
    // Short path: the PostgreSQL socket lives inside it.
    tempfile::Builder::new()
        .prefix("zx-up-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn zixly(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env("ZIXLY_DATA_DIR", dir)
        .env("ZIXLY_LOG", "warn");
    cmd
}

struct Server {
    child: Child,
    addr: String,
    stdout: String,
}

/// Starts `zixly up` on an ephemeral port and waits for its "ready" line.
fn start(dir: &Path) -> Server {
    spawn_until_ready(zixly(dir).args(["up", "--listen", "127.0.0.1:0"]))
}

/// Spawns a server command and waits for its "ready" line.
fn spawn_until_ready(cmd: &mut Command) -> Server {
    spawn_until_ready_with(cmd, Stdio::inherit())
}

/// [`spawn_until_ready`] with the server's log (stderr) going to `stderr`.
fn spawn_until_ready_with(cmd: &mut Command, stderr: Stdio) -> Server {
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = String::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            // Exited or hung: make sure nothing is left running, then fail with what it printed.
            let _ = child.kill();
            let status = child.wait();
            panic!("zixly did not become ready ({status:?}); output so far:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.strip_prefix("Zixly is ready at http://") {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            return Server {
                child,
                addr,
                stdout: seen,
            };
        }
    }
}

/// Minimal HTTP/1.1 GET returning (status, body): no client library needed for two probes.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "zixly did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn postmaster_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("pg/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // Signal 0 probes existence; a zombie would still answer, so also check /proc state.
    let exists = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(false);
    exists && !zombie
}

/// No postgres process may still serve this data dir.
fn assert_no_postgres_left(dir: &Path) {
    let data: PathBuf = dir.join("pg");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("postgres") && cmdline.contains(data.to_str().unwrap()) && alive(pid) {
            panic!(
                "postgres process {pid} still running for {}: {cmdline}",
                data.display()
            );
        }
    }
}

fn stop(mut server: Server, dir: &Path) {
    signal(server.child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = wait_exit(&mut server.child);
    assert!(status.success(), "zixly up exited with {status}");
    assert_no_postgres_left(dir);
}

#[test]
fn first_start_restart_and_clean_stop() {
    let dir = data_dir();
    let server = start(dir.path());
    assert!(
        server.stdout.contains("admin@example.com"),
        "first start prints the demo login:\n{}",
        server.stdout
    );
    assert_eq!(get(&server.addr, "/healthz").0, 200);
    let (status, body) = get(&server.addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(p)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(mode("superuser.password"), 0o600);
    assert_eq!(mode("roles.json"), 0o600);
    stop(server, dir.path());

    // Restart reuses the cluster and the data: no second demo tenant.
    let server = start(dir.path());
    assert!(
        !server.stdout.contains("Demo tenant"),
        "restart must not create the demo again:\n{}",
        server.stdout
    );
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    stop(server, dir.path());
}

#[test]
fn recovers_after_sigkill_of_zixly_and_of_postgres() {
    let dir = data_dir();
    // zixly killed: its postmaster is orphaned; the next start adopts it and stops it at the end.
    let mut server = start(dir.path());
    let orphan = postmaster_pid(dir.path()).expect("postmaster.pid");
    signal(server.child.id(), nix::sys::signal::Signal::SIGKILL);
    wait_exit(&mut server.child);
    let server = start(dir.path());
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    stop(server, dir.path());
    assert!(!alive(orphan), "the adopted postmaster must be stopped too");

    // Both killed: stale postmaster.pid, crash recovery on next start.
    let mut server = start(dir.path());
    let pg = postmaster_pid(dir.path()).unwrap();
    signal(server.child.id(), nix::sys::signal::Signal::SIGKILL);
    wait_exit(&mut server.child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pg),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pg) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = start(dir.path());
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    stop(server, dir.path());
}

/// Issue 9 item 5: PostgreSQL SIGKILLed under a running `zixly up`. Before the supervisor, `/readyz`
/// stayed 503 forever (nothing restarted the postmaster). Now `up` restarts it, the pools
/// reconnect, a session created before the crash still authenticates, the log says what happened,
/// and Ctrl-C/SIGTERM afterwards stops the new postmaster once, with no restart.
#[tokio::test]
async fn postgres_killed_under_up_is_restarted_and_the_api_recovers() {
    let dir = data_dir();
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = spawn_until_ready_with(
        zixly(dir.path())
            .env("ZIXLY_LOG", "info")
            .args(["up", "--listen", "127.0.0.1:0"]),
        Stdio::from(log),
    );
    // A failing assertion must not leave `zixly up` (and its PostgreSQL) running.
    struct TermOnPanic(u32);
    impl Drop for TermOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.0 as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
    let _guard = TermOnPanic(server.child.id());
    let password = server
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .expect("the demo login is printed")
        .trim()
        .to_string();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("a session token")
        .to_string();
    let me = |http: reqwest::Client| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            http.get(format!("{base}/api/v1/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(http.clone()).await, 200);

    // An import into this server's cluster, in the middle of its load (it reads a FIFO held open),
    // killed together with PostgreSQL: nobody is left to finish its run.
    let tenant = server
        .stdout
        .lines()
        .find_map(|l| l.split_once("\"Demo Agency\" (")?.1.split(')').next())
        .expect("the demo tenant's id is printed")
        .to_string();
    let url = run_ok(zixly(dir.path()).args(["db", "url"]))
        .trim()
        .to_string();
    let fifo = dir.path().join("held.csv");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let feeder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(fifo).unwrap();
            f.write_all(b"client_id,client_name,record_date,revenue,expenses,cash_flow\nX1,One,2024-03-01,1,1,0\n")
                .unwrap();
            let _ = released.recv();
        })
    };
    let mut import = zixly(dir.path())
        .args(["import", "financials", "--tenant", &tenant])
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run_status = |url: String, file: String| async move {
        let client = zixly_testkit::TestDb::connect(&url).await;
        client
            .query_opt(
                "select status::text from sync_runs where file_name = $1",
                &[&file],
            )
            .await
            .unwrap()
            .map(|r| r.get::<_, String>(0))
    };
    let file = fifo.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while run_status(url.clone(), file.clone()).await.as_deref() != Some("running") {
        assert!(
            Instant::now() < deadline,
            "the import did not start its run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    import.kill().unwrap();
    import.wait().unwrap();
    drop(release);
    feeder.join().unwrap();

    let old = postmaster_pid(dir.path()).expect("postmaster.pid");
    signal(old as u32, nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    let addr = server.addr.clone();
    let readyz = move || {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || get(&addr, "/readyz").0)
                .await
                .unwrap()
        }
    };
    // Not ready while PostgreSQL is down (a backend that has not yet noticed may answer once).
    loop {
        if readyz().await == 503 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "/readyz never answered 503 after the postmaster was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&server.addr, "/healthz").0,
        200,
        "the process stays up meanwhile"
    );
    let during = me(http.clone()).await;
    assert!(
        matches!(during, 503 | 200),
        "an API request while the database is down answers 503 (or 200 once it is back), not {during}"
    );
    // Ready again within a bounded time, without restarting zixly.
    loop {
        if readyz().await == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "/readyz not 200 again within 30 s of the postmaster's death; log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("ready again {:?} after the SIGKILL", killed.elapsed());
    // The restart ended every session: the import's run is marked right away (not at the
    // rescuer's next round, a minute after start-up).
    let ready_at = Instant::now();
    loop {
        let status = run_status(url.clone(), file.clone()).await;
        if status.as_deref() == Some("interrupted") {
            break;
        }
        assert!(
            ready_at.elapsed() < Duration::from_secs(10),
            "the killed import's run is {status:?}, not interrupted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = postmaster_pid(dir.path()).expect("a new postmaster.pid");
    assert_ne!(new, old);
    assert!(alive(new));
    assert_eq!(
        me(http.clone()).await,
        200,
        "the session of before the crash authenticates again"
    );

    let mut server = server;
    signal(server.child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(wait_exit(&mut server.child).success());
    assert_no_postgres_left(dir.path());
    assert!(
        !alive(new),
        "the restarted postmaster is stopped on shutdown"
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("PostgreSQL exited unexpectedly") && text.contains("SIGKILL"),
        "the log names the crash and its signal:\n{text}"
    );
    assert_eq!(
        text.matches("PostgreSQL restarted").count(),
        1,
        "one restart, none during shutdown:\n{text}"
    );
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_commands_start_the_cluster_when_needed_and_reuse_a_running_one() {
    let dir = data_dir();
    // Only `zixly up` creates the database; once created and stopped, commands start it.
    stop(start(dir.path()), dir.path());
    // Not running: `tenant create` starts the cluster, migrates, and stops what it started.
    let out = run_ok(zixly(dir.path()).args([
        "tenant",
        "create",
        "--name",
        "Acme Advisory",
        "--base-currency",
        "NZD",
    ]));
    let tenant = out.lines().last().unwrap().trim().to_string();
    uuid::Uuid::parse_str(&tenant).expect("last line is the tenant id alone");
    assert_no_postgres_left(dir.path());

    // Running: commands reuse it and leave it running.
    let server = start(dir.path());
    let out = run_ok(zixly(dir.path()).args([
        "user",
        "add",
        "--tenant",
        &tenant,
        "--email",
        "Ops@Acme.example",
        "--role",
        "EDITOR",
    ]));
    assert!(
        out.contains("ops@acme.example") && out.contains("Password (shown once): "),
        "{out}"
    );
    let mut add = zixly(dir.path());
    add.args([
        "user",
        "add",
        "--tenant",
        &tenant,
        "--email",
        "bi@acme.example",
        "--role",
        "viewer",
        "--password-stdin",
    ]);
    add.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-enough-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("shown once"));

    let list = run_ok(zixly(dir.path()).args(["tenant", "list", "--json"]));
    let tenants: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    let acme = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tenant.as_str())
        .expect("tenant listed");
    assert_eq!(
        (acme["base_currency"].as_str(), acme["users"].as_i64()),
        (Some("NZD"), Some(2))
    );
    assert_eq!(
        get(&server.addr, "/readyz").0,
        200,
        "the server is unaffected by the CLI"
    );

    let url = run_ok(zixly(dir.path()).args(["db", "url"]));
    assert!(url.trim().starts_with("postgresql://postgres:"), "{url}");

    // Refusals name what is wrong.
    let out = zixly(dir.path())
        .args(["tenant", "delete", &tenant])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let out = zixly(dir.path())
        .args([
            "user", "add", "--tenant", &tenant, "--email", "x@y.z", "--role", "OWNER",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad role is a usage error");
    let out = zixly(dir.path())
        .args(["tenant", "create", "--name", "X", "--base-currency", "ABC"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISO 4217"));

    run_ok(zixly(dir.path()).args(["tenant", "delete", &tenant, "--yes"]));
    let list = run_ok(zixly(dir.path()).args(["tenant", "list", "--json"]));
    assert!(!list.contains(&tenant));
    stop(server, dir.path());
}

#[tokio::test]
async fn serve_runs_against_an_external_database_as_zixly_app() {
    let db = zixly_testkit::TestDb::new().await;
    let dir = data_dir();
    // Without DATABASE_URL, `serve` explains what it needs.
    let out = zixly(dir.path()).args(["serve"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With DATABASE_URL but no way to connect as zixly_app, it refuses rather than run as the owner.
    let out = zixly(dir.path())
        .env("DATABASE_URL", &db.superuser_url)
        .env_remove("ZIXLY_APP_PASSWORD")
        .env_remove("ZIXLY_APP_DATABASE_URL")
        .args(["serve"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ZIXLY_APP_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Pointing the app URL at a superuser is refused: it would bypass row-level security.
    let out = zixly(dir.path())
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.superuser_url)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bypasses row-level security"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = spawn_until_ready(
        zixly(dir.path())
            .env("DATABASE_URL", &db.superuser_url)
            .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
            .args(["serve", "--listen", "127.0.0.1:0"]),
    );
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || get(&addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        !dir.path().join("pg").exists(),
        "serve must not create an embedded cluster"
    );
    let mut child = server.child;
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(wait_exit(&mut child).success());
}

/// Every command but `zixly up` refuses a data directory without a database, instead of
/// creating a new, empty one in place of the real one (a mistyped `--data-dir`).
#[test]
fn commands_other_than_up_refuse_a_data_directory_without_a_database() {
    let dir = data_dir();
    let missing = dir.path().join("typo");
    for (at, what) in [
        (&missing, "does not exist"),
        (&dir.path().to_path_buf(), "holds no Zixly database"),
    ] {
        for args in [
            &["tenant", "list"][..],
            &["migrate"],
            &["db", "url"],
            &[
                "user",
                "add",
                "--tenant",
                "00000000-0000-0000-0000-000000000000",
                "--email",
                "a@b.co",
                "--role",
                "ADMIN",
            ],
        ] {
            let out = zixly(at).args(args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("the data directory {} {what}", at.display()))
                    && stderr.contains("run `zixly up` first"),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(!missing.exists(), "nothing was created");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the empty directory stays empty"
    );
}

/// Log lines carry no ANSI colour codes when stderr is not a terminal, and PostgreSQL's
/// NOTICEs (a second `migrate` meets "already exists, skipping") do not reach it.
#[test]
fn logs_are_plain_text_off_a_terminal_and_carry_no_postgres_notices() {
    let dir = data_dir();
    stop(start(dir.path()), dir.path());
    let out = zixly(dir.path())
        .env("ZIXLY_LOG", "info")
        .args(["migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("INFO"), "info lines are logged: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape codes off a terminal: {stderr:?}"
    );
    assert!(!stderr.contains("NOTICE"), "{stderr}");
    assert_no_postgres_left(dir.path());
}
