//! [`EmbeddedCluster::start`]: the steps in order (socket path check, data dir, the start lock,
//! discovery, `initdb` on a first start, reuse or adoption of a live postmaster, else spawning
//! `postgres` as our child and polling it until it accepts connections, retrying while an old
//! server of the same data directory winds down), and the server log those steps read.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::error::IoContext;
use crate::locks::lock_exclusive;
use crate::owner::OwnerRecord;
use crate::perms::RunAs;
use crate::shutdown::{terminate, wait_for_leftovers};
use crate::{discovery, find_postgres_bindir, EmbeddedCluster, PgEmbedError, RunningCluster};
use crate::{POLL, SUPERUSER};

/// `sun_path` is 108 bytes on Linux and 104 on macOS, including the NUL.
const SOCKET_PATH_MAX: usize = 103;
/// Generous: after a crash PostgreSQL replays WAL before accepting connections.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: u32 = 3;
const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

impl EmbeddedCluster {
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

    pub(crate) fn check_socket_path(&self) -> Result<(), PgEmbedError> {
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

    pub(crate) fn cluster_major(&self) -> Result<u32, PgEmbedError> {
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

    /// Creates DIR (0700) when missing. Runs before the lock (the lock file lives in DIR), so
    /// several processes may race here on a first start: DIR is created with its mode in one
    /// `mkdir` and an existing DIR is never touched. (A check-then-`chmod` once reset the `o+x`
    /// that the lock holder had just added for the PostgreSQL user, and its `initdb` failed.)
    pub(crate) fn create_dir(&self) -> Result<(), PgEmbedError> {
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
    pub(crate) fn prepare_dir(&self, run_as: &RunAs) -> Result<(), PgEmbedError> {
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
    pub(crate) fn prepare_runtime_dirs(&self, run_as: &RunAs) -> Result<(), PgEmbedError> {
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

    pub(crate) async fn spawn_and_wait(
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

    pub(crate) fn postgres_command(
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
        if has_statement_stats(bindir) {
            // Operators' view of the slowest statements (`zixly db top`); the module must be
            // preloaded at start, so it is asked for only when this server has it.
            cmd.arg("-c")
                .arg("shared_preload_libraries=pg_stat_statements");
        }
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

    pub(crate) fn open_log(&self) -> Result<std::fs::File, PgEmbedError> {
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
    pub(crate) async fn accepting(&self, bindir: &Path) -> bool {
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

    pub(crate) fn startup_error(&self, reason: String, log_offset: u64) -> PgEmbedError {
        PgEmbedError::Startup {
            data_dir: self.pg_data_dir(),
            reason,
            log_file: self.log_file(),
            log_tail: log_tail(&self.log_file(), log_offset, 30),
        }
    }
}

/// Quotes an entry of a PostgreSQL comma-separated directory list if needed.
pub(crate) fn quote_list_item(s: &str) -> String {
    if s.contains([',', ' ', '\t', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The last `lines` lines written to `path` at or after byte `offset`.
pub(crate) fn log_tail(path: &Path, offset: u64, lines: usize) -> String {
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

/// Whether the server of `bindir` ships `pg_stat_statements` (Debian's `lib/` beside `bin/`, or
/// the `lib/postgresql/` of a source or Homebrew install).
fn has_statement_stats(bindir: &Path) -> bool {
    let Some(prefix) = bindir.parent() else {
        return false;
    };
    ["lib", "lib/postgresql", "lib64", "lib64/postgresql"]
        .iter()
        .any(|dir| prefix.join(dir).join("pg_stat_statements.so").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterOptions;

    fn cluster(dir: &str) -> EmbeddedCluster {
        EmbeddedCluster::new(ClusterOptions::new(dir))
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
