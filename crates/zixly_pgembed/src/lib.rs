//! The embedded PostgreSQL cluster that `zixly up` (and every other `zixly`
//! command that needs the database) runs.
//!
//! # Layout of the data directory `DIR`
//!
//! | path                       | what                                                   | owner            |
//! |----------------------------|--------------------------------------------------------|------------------|
//! | `DIR/pg`                   | the PostgreSQL data directory (`PGDATA`)               | PostgreSQL user  |
//! | `DIR/run`                  | Unix socket directory (`.s.PGSQL.<port>`), mode 0700   | PostgreSQL user  |
//! | `DIR/log/postgresql.log`   | server log (stdout/stderr of the postmaster), `initdb.log` | invoking user |
//! | `DIR/superuser.password`   | generated password of the `postgres` superuser, 0600   | invoking user    |
//! | `DIR/zixly.lock`           | advisory `flock`, held only while starting/stopping    | invoking user    |
//! | `DIR/zixly.owner.json`     | which zixly process is responsible for the postmaster  | invoking user    |
//! | `DIR/zixly.users.lock`     | shared `flock` held by every process using the server  | invoking user    |
//!
//! # Lifecycle
//!
//! [`EmbeddedCluster::start`] takes the `DIR/zixly.lock` flock (so concurrent
//! `zixly` processes serialise their start/stop steps), then:
//!
//! 1. **Discovery** — [`find_postgres_bindir`] picks the newest installed server
//!    (>= 15); an existing cluster is run by the major version that created it.
//!    When nothing is installed the error says what to install.
//! 2. **initdb** (first start only) — into `DIR/pg.initdb`, renamed to `DIR/pg`
//!    when complete, so a crash during initdb never leaves a half-made cluster.
//!    UTF-8, scram-sha-256 for local and host auth, superuser `postgres` with a
//!    generated 32-character password (kept in `DIR/superuser.password`, handed
//!    to initdb through a short-lived `--pwfile` that is deleted afterwards).
//! 3. **Reuse / adoption** — if `DIR/pg/postmaster.pid` names a live postmaster
//!    of *this* data directory (on Linux verified through `/proc/PID/cwd`, since
//!    every PostgreSQL process `chdir`s into its data dir) and it accepts
//!    connections, no second server is started. If the zixly process recorded in
//!    `DIR/zixly.owner.json` is still alive (e.g. `zixly up` in another shell),
//!    the cluster is merely *reused*: [`RunningCluster::stop`] will not stop it.
//!    If that process is gone (it was SIGKILLed and left the postmaster
//!    orphaned), the postmaster is *adopted*: we record ourselves as the owner
//!    and stop it like our own.
//! 4. **Start** — otherwise `postgres -D DIR/pg` is spawned directly as our child
//!    (not through `pg_ctl`, so we own its lifetime and see when it dies), in its
//!    own process group (a terminal Ctrl-C reaches zixly, which then stops the
//!    database in order), listening only on `DIR/run` (`listen_addresses=''`)
//!    unless a TCP port was asked for (then on `localhost` too). A stale
//!    `postmaster.pid` from a killed server is handled by PostgreSQL itself; we
//!    first wait for (and if need be kill) leftover backends of that server so
//!    that its shared memory is released, and retry if it was not yet. Readiness
//!    is polled with `pg_isready` on the socket.
//!
//! 5. **Use count** — every [`RunningCluster`] holds a shared `flock` on
//!    `DIR/zixly.users.lock` until it is stopped or dropped. The responsible
//!    process stops the server only when no other process holds one; otherwise
//!    it marks the server *handed over* in `DIR/zixly.owner.json` and leaves it
//!    running, and the last user stops it (a new start adopts it). So a short
//!    command that started the cluster never stops it under a `zixly up` that
//!    began meanwhile.
//!
//! [`RunningCluster::stop`] sends SIGINT (fast shutdown), waits, falls back to
//! SIGQUIT (immediate shutdown) and finally SIGKILL, and waits until no process
//! of the cluster is left. Dropping a [`RunningCluster`] that owns the server
//! without calling `stop` sends SIGINT as a best effort (nothing waits for it);
//! a process killed outright leaves the postmaster running, to be adopted by
//! the next start.
//!
//! # Running as root
//!
//! PostgreSQL refuses to run as root. When zixly runs as root (containers, CI)
//! `initdb` and `postgres` run as the `postgres` system user (or `nobody`),
//! via `CommandExt::{uid,gid}` (std also clears supplementary groups). `DIR/pg`
//! and `DIR/run` are chowned to that user; `DIR` itself gets `o+x` (search only)
//! if needed, and every parent directory of `DIR` must already be traversable by
//! that user — if not, start fails naming the directory and the fix.
//!
//! # Connection URLs
//!
//! [`EmbeddedCluster::superuser_url`] / [`EmbeddedCluster::url_for`] produce
//! `postgresql://USER:PASSWORD@%2Fabs%2Fpath%2Frun:5432/DBNAME`: the socket
//! directory, percent-encoded, is the host. Both libpq (`psql`) and
//! `tokio_postgres::Config::from_str` (0.7) accept this form: tokio-postgres
//! percent-decodes the host and treats a value starting with `/` as a Unix
//! socket directory (its docs show `postgresql://user:password@%2Fvar%2Frun%2Fpostgresql/mydb`);
//! the integration tests check both.

mod discovery;
mod error;
mod perms;
mod procs;
mod supervisor;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use discovery::{
    default_bindir_candidates, find_postgres_bindir, find_postgres_bindir_in, MIN_MAJOR,
};
pub use error::PgEmbedError;
pub use supervisor::{StandDown, Supervisor};

use error::IoContext;
use perms::RunAs;
use procs::PidFile;

/// Name of the superuser role created by initdb.
pub const SUPERUSER: &str = "postgres";
/// Port used in the socket name when no TCP port is configured.
pub const DEFAULT_PORT: u16 = 5432;

/// `sun_path` is 108 bytes on Linux and 104 on macOS, including the NUL.
const SOCKET_PATH_MAX: usize = 103;
const LOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// Generous: after a crash PostgreSQL replays WAL before accepting connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const FAST_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
const START_ATTEMPTS: u32 = 3;
const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// Characters left alone in URL components: RFC 3986 "unreserved".
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Options for [`EmbeddedCluster::new`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `DIR`: holds the data directory, socket, logs and password file. Made
    /// absolute (against the current directory) by [`EmbeddedCluster::new`].
    pub data_dir: PathBuf,
    /// Also listen on `localhost:PORT` over TCP (and use PORT in the socket
    /// name). `None`: Unix socket only, named with port 5432.
    pub tcp_port: Option<u16>,
    /// Trade durability for speed (tests only): `fsync=off`,
    /// `synchronous_commit=off`, `full_page_writes=off`, `initdb --no-sync`.
    pub for_tests: bool,
}

impl ClusterOptions {
    /// Unix socket only, durable settings.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            data_dir: data_dir.into(),
            tcp_port: None,
            for_tests: false,
        }
    }
}

/// Handle on the cluster living in one data directory. Cheap; does nothing
/// until [`start`](Self::start).
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    data_dir: PathBuf,
    tcp_port: Option<u16>,
    for_tests: bool,
}

impl EmbeddedCluster {
    pub fn new(opts: ClusterOptions) -> Self {
        let data_dir = std::path::absolute(&opts.data_dir).unwrap_or(opts.data_dir);
        EmbeddedCluster {
            data_dir,
            tcp_port: opts.tcp_port,
            for_tests: opts.for_tests,
        }
    }

    /// `DIR` (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `DIR/pg`, the PostgreSQL data directory.
    pub fn pg_data_dir(&self) -> PathBuf {
        self.data_dir.join("pg")
    }

    /// `DIR/run` (absolute), where the Unix socket lives.
    pub fn socket_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// `DIR/run/.s.PGSQL.<port>`.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir().join(format!(".s.PGSQL.{}", self.port()))
    }

    /// The port number in the socket name (and the TCP port, if enabled).
    pub fn port(&self) -> u16 {
        self.tcp_port.unwrap_or(DEFAULT_PORT)
    }

    /// `DIR/log/postgresql.log`.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("log").join("postgresql.log")
    }

    /// `DIR/superuser.password` (mode 0600).
    pub fn password_file(&self) -> PathBuf {
        self.data_dir.join("superuser.password")
    }

    fn lock_path(&self) -> PathBuf {
        self.data_dir.join("zixly.lock")
    }

    fn owner_path(&self) -> PathBuf {
        self.data_dir.join("zixly.owner.json")
    }

    fn users_lock_path(&self) -> PathBuf {
        self.data_dir.join("zixly.users.lock")
    }

    fn pid_file(&self) -> PathBuf {
        self.pg_data_dir().join("postmaster.pid")
    }

    /// True once initdb has completed for `DIR/pg`.
    pub fn is_initialized(&self) -> bool {
        self.pg_data_dir().join("PG_VERSION").is_file()
    }

    /// The generated superuser password.
    pub fn superuser_password(&self) -> Result<String, PgEmbedError> {
        let path = self.password_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && self.is_initialized() {
                PgEmbedError::Invalid(format!(
                    "{} is missing, but the cluster in {} exists; without it zixly cannot log \
                     in as the superuser. Restore the file, or remove {} to start over with an \
                     empty database.",
                    path.display(),
                    self.pg_data_dir().display(),
                    self.data_dir.display()
                ))
            } else {
                PgEmbedError::io(format!("read {}", path.display()), e)
            }
        })?;
        Ok(text.trim().to_string())
    }

    /// `postgresql://postgres:<pw>@%2Fabs%2FDIR%2Frun:<port>/<dbname>`.
    pub fn superuser_url(&self, dbname: &str) -> Result<String, PgEmbedError> {
        Ok(self.url_for(SUPERUSER, &self.superuser_password()?, dbname))
    }

    /// A URL for any role over the same Unix socket (see the crate docs for the form).
    pub fn url_for(&self, user: &str, password: &str, dbname: &str) -> String {
        let enc = |s: &str| utf8_percent_encode(s, COMPONENT).to_string();
        let host = utf8_percent_encode(&self.socket_dir().to_string_lossy(), COMPONENT).to_string();
        format!(
            "postgresql://{}:{}@{}:{}/{}",
            enc(user),
            enc(password),
            host,
            self.port(),
            enc(dbname)
        )
    }

    /// Initialises if needed, adopts or reuses a live postmaster, or starts one.
    pub async fn start(&self) -> Result<RunningCluster, PgEmbedError> {
        let t0 = Instant::now();
        self.check_socket_path()?;
        let run_as = RunAs::detect()?;
        self.create_dir()?;
        let _lock = lock_exclusive(&self.lock_path()).await?;
        self.prepare_dir(&run_as)?;

        let bindir = if self.is_initialized() {
            let major = self.cluster_major()?;
            discovery::find_bindir_for_major(major)?
        } else {
            let (bindir, major) = find_postgres_bindir()?;
            tracing::info!(dir = %self.data_dir.display(), bindir = %bindir.display(), major, "initialising PostgreSQL cluster");
            self.initdb(&bindir, &run_as).await?;
            tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "initdb done");
            bindir
        };
        // Fails early with a clear message if the password file is gone.
        self.superuser_password()?;
        self.prepare_runtime_dirs(&run_as)?;

        if let Some(running) = self.try_existing(&bindir).await? {
            return Ok(running);
        }
        let running = self.spawn_and_wait(&bindir, &run_as).await?;
        tracing::info!(
            pid = running.pid,
            socket = %self.socket_dir().display(),
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "PostgreSQL is ready"
        );
        Ok(running)
    }

    fn check_socket_path(&self) -> Result<(), PgEmbedError> {
        let len = self.socket_path().as_os_str().len();
        if len > SOCKET_PATH_MAX {
            return Err(PgEmbedError::Invalid(format!(
                "the data directory path {} is too long: the PostgreSQL socket {} would be {len} \
                 bytes, but Unix socket paths are limited to {SOCKET_PATH_MAX}. Use a shorter \
                 data directory path.",
                self.data_dir.display(),
                self.socket_path().display()
            )));
        }
        Ok(())
    }

    fn cluster_major(&self) -> Result<u32, PgEmbedError> {
        let path = self.pg_data_dir().join("PG_VERSION");
        let text = std::fs::read_to_string(&path).ctx(|| format!("read {}", path.display()))?;
        text.trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| {
                PgEmbedError::Invalid(format!("unexpected content in {}", path.display()))
            })
    }

    /// Creates DIR (private to the invoking user) if it does not exist yet.
    /// Creates DIR (0700) when missing. Runs before the lock (the lock file lives in DIR), so
    /// several processes may race here on a first start: DIR is created with its mode in one
    /// `mkdir` and an existing DIR is never touched. (A check-then-`chmod` once reset the `o+x`
    /// that the lock holder had just added for the PostgreSQL user, and its `initdb` failed.)
    fn create_dir(&self) -> Result<(), PgEmbedError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = &self.data_dir;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(e).ctx(|| format!("create {}", dir.display())),
        }
    }

    /// Creates DIR/log and makes DIR reachable for the PostgreSQL user (under the lock).
    fn prepare_dir(&self, run_as: &RunAs) -> Result<(), PgEmbedError> {
        let dir = &self.data_dir;
        let canonical = std::fs::canonicalize(dir).ctx(|| format!("resolve {}", dir.display()))?;
        run_as.ensure_reachable(&canonical)?;
        let log_dir = dir.join("log");
        if !log_dir.exists() {
            std::fs::create_dir(&log_dir).ctx(|| format!("create {}", log_dir.display()))?;
            std::fs::set_permissions(&log_dir, std::fs::Permissions::from_mode(0o700))
                .ctx(|| format!("chmod {}", log_dir.display()))?;
        }
        Ok(())
    }

    /// Ownership and modes PostgreSQL insists on, and the socket directory.
    fn prepare_runtime_dirs(&self, run_as: &RunAs) -> Result<(), PgEmbedError> {
        let pg = self.pg_data_dir();
        run_as.adopt_tree(&pg)?;
        let mode = std::fs::metadata(&pg)
            .ctx(|| format!("stat {}", pg.display()))?
            .mode()
            & 0o777;
        if mode != 0o700 && mode != 0o750 {
            std::fs::set_permissions(&pg, std::fs::Permissions::from_mode(0o700))
                .ctx(|| format!("chmod 0700 {}", pg.display()))?;
        }
        let run = self.socket_dir();
        if !run.exists() {
            std::fs::create_dir(&run).ctx(|| format!("create {}", run.display()))?;
        }
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod 0700 {}", run.display()))?;
        run_as.chown(&run)?;
        Ok(())
    }

    async fn initdb(&self, bindir: &Path, run_as: &RunAs) -> Result<(), PgEmbedError> {
        let tmp = self.data_dir.join("pg.initdb");
        if tmp.exists() {
            tracing::info!(dir = %tmp.display(), "removing leftovers of an interrupted initdb");
            std::fs::remove_dir_all(&tmp).ctx(|| format!("remove {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", tmp.display()))?;
        run_as.chown(&tmp)?;

        let password = generate_password(32);
        let pw_path = self.password_file();
        let pw_tmp = self.data_dir.join("superuser.password.tmp");
        write_private_file(&pw_tmp, password.as_bytes())?;
        std::fs::rename(&pw_tmp, &pw_path).ctx(|| format!("write {}", pw_path.display()))?;

        // The PostgreSQL user must read this one; it lives only while initdb runs.
        let pwfile = self
            .data_dir
            .join(format!(".initdb-pwfile-{}", generate_password(12)));
        write_private_file(&pwfile, format!("{password}\n").as_bytes())?;
        let result = async {
            run_as.chown(&pwfile)?;
            let mut cmd = tokio::process::Command::new(bindir.join("initdb"));
            cmd.arg("-D")
                .arg(&tmp)
                .arg("--username")
                .arg(SUPERUSER)
                .arg("--pwfile")
                .arg(&pwfile)
                .arg("--encoding=UTF8")
                .arg(format!("--locale={}", initdb_locale()))
                .arg("--auth-local=scram-sha-256")
                .arg("--auth-host=scram-sha-256");
            if self.for_tests {
                cmd.arg("--no-sync");
            }
            cmd.current_dir(&self.data_dir)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            run_as.apply_tokio(&mut cmd);
            cmd.output()
                .await
                .ctx(|| format!("run {}", bindir.join("initdb").display()))
        }
        .await;
        let _ = std::fs::remove_file(&pwfile);
        let output = result?;

        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let _ = std::fs::write(self.data_dir.join("log").join("initdb.log"), &text);
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(PgEmbedError::InitDb {
                data_dir: self.pg_data_dir(),
                status: output.status.to_string(),
                output: text,
            });
        }
        let pg = self.pg_data_dir();
        std::fs::rename(&tmp, &pg)
            .ctx(|| format!("rename {} to {}", tmp.display(), pg.display()))?;
        Ok(())
    }

    /// Is this data directory already served by a live postmaster? Then reuse or
    /// adopt it. `Ok(None)`: start one.
    async fn try_existing(&self, bindir: &Path) -> Result<Option<RunningCluster>, PgEmbedError> {
        let pg = self.pg_data_dir();
        let Some(pf) = PidFile::read(&self.pid_file()) else {
            return Ok(None);
        };
        if !procs::pid_alive(pf.pid) {
            tracing::info!(
                pid = pf.pid,
                "found a stale postmaster.pid (server not running); starting afresh"
            );
            wait_for_leftovers(&pg).await;
            // PostgreSQL itself probes the pid with kill(pid, 0), which succeeds for a zombie:
            // a killed postmaster that nobody has reaped yet (common under a container init that
            // reaps slowly or never) would block the start. Its children are gone (waited for
            // above), so the stale lock files (data dir and socket) are safe to remove.
            let _ = std::fs::remove_file(self.pid_file());
            let socket_lock = format!("{}.lock", self.socket_path().display());
            let _ = std::fs::remove_file(socket_lock);
            return Ok(None);
        }
        if procs::runs_in_dir(pf.pid, &pg) == Some(false) {
            tracing::info!(
                pid = pf.pid,
                "postmaster.pid names a process that is not our PostgreSQL (pid reused); removing it"
            );
            let _ = std::fs::remove_file(self.pid_file());
            wait_for_leftovers(&pg).await;
            return Ok(None);
        }

        // A live postmaster of this data directory: wait until it accepts
        // connections (it may be starting up or recovering) or goes away.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !procs::pid_alive(pf.pid) {
                wait_for_leftovers(&pg).await;
                return Ok(None);
            }
            if self.accepting(bindir).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(self.startup_error(
                    format!(
                        "a PostgreSQL server (pid {}) is running for this data directory but does \
                         not accept connections on {}; stop it (`kill -INT {}`) and retry",
                        pf.pid,
                        self.socket_path().display(),
                        pf.pid
                    ),
                    0,
                ));
            }
            tokio::time::sleep(POLL).await;
        }

        let owner = OwnerRecord::read(&self.owner_path());
        // A handed-over server (its owner stopped while others still used it) is anyone's to
        // adopt, like one whose owner died.
        let owner_alive = owner
            .as_ref()
            .is_some_and(|o| o.postmaster_pid == pf.pid && !o.handed_over && o.is_alive());
        let current = PidFile::read(&self.pid_file()).unwrap_or(pf.clone());
        if !self.settings_match(&current) {
            if owner_alive {
                return Err(PgEmbedError::Invalid(format!(
                    "{} is already served by PostgreSQL (pid {}, port {:?}, socket dir {:?}) \
                     which another zixly process (pid {}) is using, with other settings than \
                     requested (port {}, tcp {}). Stop that process first or use the same settings.",
                    self.data_dir.display(),
                    pf.pid,
                    current.port,
                    current.socket_dir,
                    owner.map(|o| o.owner_pid).unwrap_or_default(),
                    self.port(),
                    self.tcp_port.is_some()
                )));
            }
            if others_using(&self.users_lock_path())? {
                return Err(PgEmbedError::Invalid(format!(
                    "{} is served by PostgreSQL (pid {}) with other settings than requested \
                     (port {}, tcp {}), and other zixly processes still use it. Stop them first \
                     or use the same settings.",
                    self.data_dir.display(),
                    pf.pid,
                    self.port(),
                    self.tcp_port.is_some()
                )));
            }
            tracing::info!(
                pid = pf.pid,
                "an orphaned PostgreSQL runs with other settings; stopping it to restart"
            );
            terminate(pf.pid, None).await?;
            wait_for_leftovers(&pg).await;
            return Ok(None);
        }

        if owner_alive {
            tracing::info!(
                pid = pf.pid,
                owner = owner.map(|o| o.owner_pid).unwrap_or_default(),
                "reusing PostgreSQL started by another zixly process"
            );
            Ok(Some(RunningCluster::new(
                self.clone(),
                pf.pid,
                None,
                false,
                false,
            )?))
        } else {
            tracing::info!(
                pid = pf.pid,
                "adopting orphaned PostgreSQL (the zixly process that started it is gone)"
            );
            OwnerRecord::mine(pf.pid).write(&self.owner_path())?;
            Ok(Some(RunningCluster::new(
                self.clone(),
                pf.pid,
                None,
                false,
                true,
            )?))
        }
    }

    fn settings_match(&self, pf: &PidFile) -> bool {
        let port_ok = pf.port.is_none_or(|p| p == self.port());
        let socket_ok = pf
            .socket_dir
            .as_ref()
            .is_none_or(|s| same_path(s, &self.socket_dir()));
        let listen = std::fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|t| t.lines().nth(5).map(|l| l.trim().to_string()))
            .unwrap_or_default();
        let tcp_ok = listen.is_empty() == self.tcp_port.is_none();
        port_ok && socket_ok && tcp_ok
    }

    async fn spawn_and_wait(
        &self,
        bindir: &Path,
        run_as: &RunAs,
    ) -> Result<RunningCluster, PgEmbedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let log_offset = self.open_log()?.metadata().map(|m| m.len()).unwrap_or(0);
            let mut child = self
                .postgres_command(bindir, run_as)?
                .spawn()
                .ctx(|| format!("start {}", bindir.join("postgres").display()))?;
            let pid = child.id() as i32;
            tracing::info!(pid, attempt, dir = %self.pg_data_dir().display(), "starting PostgreSQL");

            let deadline = Instant::now() + READY_TIMEOUT;
            let exited = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) => {}
                    Err(e) => return Err(PgEmbedError::io("wait for postgres", e)),
                }
                if self.accepting(bindir).await {
                    break None;
                }
                if Instant::now() > deadline {
                    terminate(pid, Some(&mut child)).await?;
                    return Err(self.startup_error(
                        format!(
                            "not accepting connections after {}s",
                            READY_TIMEOUT.as_secs()
                        ),
                        log_offset,
                    ));
                }
                tokio::time::sleep(POLL).await;
            };
            match exited {
                None => {
                    OwnerRecord::mine(pid).write(&self.owner_path())?;
                    return RunningCluster::new(self.clone(), pid, Some(child), true, false);
                }
                Some(status) => {
                    let err = self.startup_error(format!("postgres exited ({status})"), log_offset);
                    let retryable = match &err {
                        PgEmbedError::Startup { log_tail, .. } => {
                            log_tail.contains("pre-existing shared memory block")
                                || log_tail.contains("lock file")
                        }
                        _ => false,
                    };
                    if retryable && attempt < START_ATTEMPTS {
                        tracing::info!("an old PostgreSQL of this data directory is still winding down; retrying");
                        wait_for_leftovers(&self.pg_data_dir()).await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    fn postgres_command(
        &self,
        bindir: &Path,
        run_as: &RunAs,
    ) -> Result<std::process::Command, PgEmbedError> {
        let log = self.open_log()?;
        let log2 = log
            .try_clone()
            .ctx(|| format!("open {}", self.log_file().display()))?;
        let mut cmd = std::process::Command::new(bindir.join("postgres"));
        cmd.arg("-D")
            .arg(self.pg_data_dir())
            .arg("-p")
            .arg(self.port().to_string())
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                quote_list_item(&self.socket_dir().to_string_lossy())
            ))
            .arg("-c")
            .arg(match self.tcp_port {
                Some(_) => "listen_addresses=localhost",
                None => "listen_addresses=",
            })
            .arg("-c")
            .arg("logging_collector=off");
        if self.for_tests {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ] {
                cmd.arg("-c").arg(setting);
            }
        }
        cmd.current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        run_as.apply_std(&mut cmd);
        Ok(cmd)
    }

    fn open_log(&self) -> Result<std::fs::File, PgEmbedError> {
        let path = self.log_file();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            let _ = std::fs::rename(&path, path.with_extension("log.1"));
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))
    }

    /// `pg_isready` on our socket: true when the server accepts connections.
    async fn accepting(&self, bindir: &Path) -> bool {
        if !self.socket_path().exists() {
            return false;
        }
        tokio::process::Command::new(bindir.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port().to_string())
            .arg("-U")
            .arg(SUPERUSER)
            .arg("-d")
            .arg("postgres")
            .arg("-t")
            .arg("3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    fn startup_error(&self, reason: String, log_offset: u64) -> PgEmbedError {
        PgEmbedError::Startup {
            data_dir: self.pg_data_dir(),
            reason,
            log_file: self.log_file(),
            log_tail: log_tail(&self.log_file(), log_offset, 30),
        }
    }
}

/// Handle returned by [`EmbeddedCluster::start`].
#[derive(Debug)]
pub struct RunningCluster {
    cluster: EmbeddedCluster,
    pid: i32,
    child: Option<std::process::Child>,
    started_here: bool,
    adopted: bool,
    stopped: bool,
    /// Shared `flock` on `DIR/zixly.users.lock` while this handle uses the server: the process
    /// responsible for stopping it stops it only when no other handle holds one.
    in_use: Option<Flock<std::fs::File>>,
}

impl RunningCluster {
    /// Called under `DIR/zixly.lock`, so no stopper is checking the users lock meanwhile.
    fn new(
        cluster: EmbeddedCluster,
        pid: i32,
        child: Option<std::process::Child>,
        started_here: bool,
        adopted: bool,
    ) -> Result<Self, PgEmbedError> {
        let in_use = Some(lock_shared(&cluster.users_lock_path())?);
        Ok(RunningCluster {
            cluster,
            pid,
            child,
            started_here,
            adopted,
            stopped: false,
            in_use,
        })
    }

    /// Whether this handle is the one to stop the server once nobody else uses it: we started
    /// or adopted it, or its owner handed it over (stopped while others used it) or died.
    fn responsible(&self) -> bool {
        if self.owns_server() {
            return true;
        }
        OwnerRecord::read(&self.cluster.owner_path())
            .is_some_and(|o| o.postmaster_pid == self.pid && (o.handed_over || !o.is_alive()))
    }

    /// Leaves the server running for its other users; the last of them stops it.
    fn hand_over(&self) -> Result<(), PgEmbedError> {
        tracing::info!(
            pid = self.pid,
            "leaving PostgreSQL running: other zixly processes still use it (the last one stops it)"
        );
        OwnerRecord {
            handed_over: true,
            ..OwnerRecord::mine(self.pid)
        }
        .write(&self.cluster.owner_path())
    }

    /// True when this call spawned the postmaster. False when a live server
    /// already served the data directory (reused or adopted).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// True when the server was an orphan (its zixly process had died) that we
    /// took over: [`stop`](Self::stop) stops it.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Whether [`stop`](Self::stop) will actually stop the server.
    pub fn owns_server(&self) -> bool {
        self.started_here || self.adopted
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The cluster this handle belongs to (for URLs and paths).
    pub fn cluster(&self) -> &EmbeddedCluster {
        &self.cluster
    }

    /// `Some(how)` once the postmaster has exited (`how`: its exit status or signal when it is
    /// our child, else that the process is gone); `None` while it runs. Never blocks; reaps our
    /// child when it has exited.
    pub fn exited(&mut self) -> Option<String> {
        if let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status.to_string()),
                Ok(None) => return None,
                Err(_) => {}
            }
        }
        let gone = !procs::pid_alive(self.pid)
            || procs::runs_in_dir(self.pid, &self.cluster.pg_data_dir()) == Some(false);
        gone.then(|| String::from("the process is gone"))
    }

    /// Gives up a handle whose postmaster has exited: nothing to stop, and its pid must never be
    /// signalled again (it may belong to another process by now). Releases the use count.
    pub(crate) fn forget(mut self) {
        self.stopped = true;
        drop(self.in_use.take());
    }

    /// Ends this handle's use of the server, and stops PostgreSQL if this handle is responsible
    /// for it (see [`owns_server`](Self::owns_server)) and no other zixly process still uses it.
    /// When others do, the server keeps running and the last of them stops it. A no-op for a
    /// server another live zixly process is responsible for.
    pub async fn stop(mut self) -> Result<(), PgEmbedError> {
        self.stopped = true;
        let _lock = lock_exclusive(&self.cluster.lock_path()).await?;
        drop(self.in_use.take());
        if let Some(how) = self.exited() {
            // Died under us (the supervisor of `zixly up` may already have started another one,
            // which is not ours to stop, nor are its processes "leftovers").
            tracing::debug!(pid = self.pid, %how, "PostgreSQL already exited; nothing to stop");
            return Ok(());
        }
        if !self.responsible() {
            tracing::debug!(
                pid = self.pid,
                "leaving PostgreSQL running: another zixly process owns it"
            );
            return Ok(());
        }
        if others_using(&self.cluster.users_lock_path())? {
            return self.hand_over();
        }
        tracing::info!(pid = self.pid, "stopping PostgreSQL");
        let t0 = Instant::now();
        terminate(self.pid, self.child.as_mut()).await?;
        wait_for_leftovers(&self.cluster.pg_data_dir()).await;
        let owner_path = self.cluster.owner_path();
        if OwnerRecord::read(&owner_path).is_some_and(|o| o.postmaster_pid == self.pid) {
            let _ = std::fs::remove_file(&owner_path);
        }
        tracing::info!(
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "PostgreSQL stopped"
        );
        Ok(())
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        drop(self.in_use.take());
        if self.exited().is_some() {
            return; // reaped; its pid may be reused: never signal it
        }
        if !self.responsible() {
            return;
        }
        // Best effort without `DIR/zixly.lock` (no waiting in drop).
        if others_using(&self.cluster.users_lock_path()).unwrap_or(true) {
            let _ = self.hand_over();
            return;
        }
        tracing::warn!(
            pid = self.pid,
            "RunningCluster dropped without stop(); asking PostgreSQL to shut down"
        );
        let _ = procs::signal(self.pid, Signal::SIGINT);
        if let Some(mut child) = self.child.take() {
            // Reap it when it exits so it does not linger as a zombie.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// Who is responsible for the running postmaster (`DIR/zixly.owner.json`).
#[derive(Debug, Serialize, Deserialize)]
struct OwnerRecord {
    owner_pid: i32,
    owner_start: Option<u64>,
    postmaster_pid: i32,
    /// The owner stopped using the server while other zixly processes still did: whichever of
    /// them is last stops it (and a new start adopts it).
    #[serde(default)]
    handed_over: bool,
}

impl OwnerRecord {
    fn mine(postmaster_pid: i32) -> Self {
        let owner_pid = std::process::id() as i32;
        OwnerRecord {
            owner_pid,
            owner_start: procs::process_start_time(owner_pid),
            postmaster_pid,
            handed_over: false,
        }
    }

    fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn write(&self, path: &Path) -> Result<(), PgEmbedError> {
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(self).expect("owner record serialises");
        std::fs::write(&tmp, json).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).ctx(|| format!("write {}", path.display()))
    }

    fn is_alive(&self) -> bool {
        procs::pid_alive(self.owner_pid)
            && (self.owner_start.is_none()
                || procs::process_start_time(self.owner_pid) == self.owner_start)
    }
}

fn open_lock_file(path: &Path) -> Result<std::fs::File, PgEmbedError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("open {}", path.display()))
}

/// Marks one use of the running server (`DIR/zixly.users.lock`, shared). Only a stopper holding
/// `DIR/zixly.lock` ever takes it exclusively, and only for an instant, so this does not wait.
fn lock_shared(path: &Path) -> Result<Flock<std::fs::File>, PgEmbedError> {
    let mut file = open_lock_file(path)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) | Err((f, nix::errno::Errno::EINTR))
                if Instant::now() < deadline =>
            {
                file = f;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, e)) => return Err(PgEmbedError::sys(format!("flock {}", path.display()), e)),
        }
    }
}

/// Whether another handle (in any process) still uses the server: its shared lock is held.
fn others_using(path: &Path) -> Result<bool, PgEmbedError> {
    let file = open_lock_file(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            drop(lock);
            Ok(false)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(PgEmbedError::sys(format!("flock {}", path.display()), e)),
    }
}

/// Takes the advisory lock without blocking the async runtime.
async fn lock_exclusive(path: &Path) -> Result<Flock<std::fs::File>, PgEmbedError> {
    let mut file = open_lock_file(path)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut logged = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) | Err((f, nix::errno::Errno::EINTR)) => {
                file = f;
            }
            Err((_, e)) => return Err(PgEmbedError::sys(format!("flock {}", path.display()), e)),
        }
        if !logged {
            tracing::info!(lock = %path.display(), "waiting for another zixly process to finish starting/stopping the database");
            logged = true;
        }
        if Instant::now() > deadline {
            return Err(PgEmbedError::Invalid(format!(
                "timed out after {}s waiting for {}: another zixly process is stuck starting or \
                 stopping the database",
                LOCK_TIMEOUT.as_secs(),
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL; waits for exit.
async fn terminate(
    pid: i32,
    mut child: Option<&mut std::process::Child>,
) -> Result<(), PgEmbedError> {
    let steps = [
        (Signal::SIGINT, FAST_SHUTDOWN_TIMEOUT),
        (Signal::SIGQUIT, IMMEDIATE_SHUTDOWN_TIMEOUT),
        (Signal::SIGKILL, IMMEDIATE_SHUTDOWN_TIMEOUT),
    ];
    for (sig, timeout) in steps {
        if sig != Signal::SIGINT {
            tracing::warn!(pid, signal = %sig, "PostgreSQL did not stop in time; escalating");
        }
        procs::signal(pid, sig).map_err(|e| PgEmbedError::sys(format!("kill -{sig} {pid}"), e))?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let gone = match child.as_mut() {
                Some(c) => match c.try_wait() {
                    Ok(Some(_)) => true,
                    Ok(None) => false,
                    Err(_) => !procs::pid_alive(pid),
                },
                None => !procs::pid_alive(pid),
            };
            if gone {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Err(PgEmbedError::Invalid(format!(
        "PostgreSQL (pid {pid}) did not exit even after SIGKILL"
    )))
}

/// Waits until no process works in `pg_dir` any more (backends of a postmaster
/// that died hold its shared memory for a moment); kills stragglers after a
/// timeout. Linux only; elsewhere the start retry covers it.
async fn wait_for_leftovers(pg_dir: &Path) {
    let deadline = Instant::now() + LEFTOVER_TIMEOUT;
    loop {
        let left = procs::processes_in_dir(pg_dir);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            tracing::warn!(?left, "killing leftover PostgreSQL processes");
            for pid in &left {
                let _ = procs::signal(*pid, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Quotes an entry of a PostgreSQL comma-separated directory list if needed.
fn quote_list_item(s: &str) -> String {
    if s.contains([',', ' ', '\t', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn generate_password(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Creates or truncates `path` with mode 0600 and writes `data`.
fn write_private_file(path: &Path, data: &[u8]) -> Result<(), PgEmbedError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("create {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod {}", path.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .ctx(|| format!("write {}", path.display()))
}

/// `C.UTF-8` where the system has it (better ctype for non-ASCII text), else `C`.
fn initdb_locale() -> &'static str {
    static LOCALE: OnceLock<&'static str> = OnceLock::new();
    LOCALE.get_or_init(|| {
        let has_c_utf8 = std::process::Command::new("locale")
            .arg("-a")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| matches!(l.trim().to_ascii_lowercase().as_str(), "c.utf8" | "c.utf-8"))
            })
            .unwrap_or(false);
        if has_c_utf8 {
            "C.UTF-8"
        } else {
            "C"
        }
    })
}

/// The last `lines` lines written to `path` at or after byte `offset`.
fn log_tail(path: &Path, offset: u64, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = offset.max(len.saturating_sub(64 * 1024));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::from("(log unreadable)");
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &str) -> EmbeddedCluster {
        EmbeddedCluster::new(ClusterOptions::new(dir))
    }

    #[test]
    fn paths_and_port() {
        let c = cluster("/tmp/zx");
        assert_eq!(c.socket_dir(), PathBuf::from("/tmp/zx/run"));
        assert_eq!(c.port(), 5432);
        assert_eq!(c.socket_path(), PathBuf::from("/tmp/zx/run/.s.PGSQL.5432"));
        let c = EmbeddedCluster::new(ClusterOptions {
            data_dir: "/tmp/zx".into(),
            tcp_port: Some(6543),
            for_tests: false,
        });
        assert_eq!(c.port(), 6543);
        assert!(cluster("rel/dir").data_dir().is_absolute());
    }

    #[test]
    fn url_encodes_socket_and_credentials() {
        let c = cluster("/tmp/z x");
        assert_eq!(
            c.url_for("app user", "p@ss:w/rd", "my db"),
            "postgresql://app%20user:p%40ss%3Aw%2Frd@%2Ftmp%2Fz%20x%2Frun:5432/my%20db"
        );
    }

    #[test]
    fn socket_path_length_is_checked() {
        let long = format!("/tmp/{}", "x".repeat(100));
        assert!(matches!(
            cluster(&long).check_socket_path(),
            Err(PgEmbedError::Invalid(_))
        ));
        assert!(cluster("/tmp/short").check_socket_path().is_ok());
    }

    #[test]
    fn passwords_are_strong() {
        let a = generate_password(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password(32));
    }

    #[test]
    fn list_quoting() {
        assert_eq!(quote_list_item("/tmp/a/run"), "/tmp/a/run");
        assert_eq!(quote_list_item("/tmp/a b/run"), "\"/tmp/a b/run\"");
    }

    #[test]
    fn log_tail_reads_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.log");
        std::fs::write(&p, "old\nnew1\nnew2\n").unwrap();
        assert_eq!(log_tail(&p, 4, 10), "new1\nnew2");
        assert_eq!(log_tail(&p, 0, 1), "new2");
    }
}
