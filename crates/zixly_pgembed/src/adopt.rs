//! A postmaster already serving the data directory (`DIR/pg/postmaster.pid` names a live process
//! of this data dir): reuse it when the zixly process recorded as its owner is alive, adopt it when
//! that process is gone (or handed it over), restart it when it runs with other settings and nobody
//! uses it; clear a stale or reused-pid `postmaster.pid` so a fresh start can proceed.

use std::path::Path;
use std::time::Instant;

use crate::locks::others_using;
use crate::owner::OwnerRecord;
use crate::procs::{self, PidFile};
use crate::shutdown::{terminate, wait_for_leftovers};
use crate::start::READY_TIMEOUT;
use crate::{EmbeddedCluster, PgEmbedError, RunningCluster, POLL};

impl EmbeddedCluster {
    /// Is this data directory already served by a live postmaster? Then reuse or
    /// adopt it. `Ok(None)`: start one.
    pub(crate) async fn try_existing(
        &self,
        bindir: &Path,
    ) -> Result<Option<RunningCluster>, PgEmbedError> {
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

    pub(crate) fn settings_match(&self, pf: &PidFile) -> bool {
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
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}
