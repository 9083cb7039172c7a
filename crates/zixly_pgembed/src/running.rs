//! [`RunningCluster`], the handle `start` returns: the use count (a shared `flock` on
//! `DIR/zixly.users.lock` per handle), [`RunningCluster::stop`] (the responsible handle stops the
//! server when nobody else uses it, or hands it over to the last user), and the best-effort
//! shutdown when a handle is dropped without `stop`.

use std::time::Instant;

use nix::fcntl::Flock;
use nix::sys::signal::Signal;

use crate::locks::{lock_exclusive, lock_shared, others_using};
use crate::owner::OwnerRecord;
use crate::procs;
use crate::shutdown::{terminate, wait_for_leftovers};
use crate::{EmbeddedCluster, PgEmbedError};

/// Handle returned by [`EmbeddedCluster::start`].
#[derive(Debug)]
pub struct RunningCluster {
    cluster: EmbeddedCluster,
    pub(crate) pid: i32,
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
    pub(crate) fn new(
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
