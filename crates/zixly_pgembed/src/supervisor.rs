//! Keeps the embedded PostgreSQL running for a long-lived process (`zixly up`).
//!
//! [`Supervisor::spawn`] takes the [`RunningCluster`] and watches its postmaster (our child:
//! `try_wait`, which also tells the exit status or signal; an adopted or reused server: its pid).
//! When the postmaster exits without having been asked to, the supervisor logs it at ERROR with
//! the reason and starts the cluster again through [`EmbeddedCluster::start`], with exponential
//! backoff ([`FIRST_DELAY`] doubling up to [`MAX_DELAY`], each failed attempt logged at ERROR with
//! its number and error), until it succeeds or the process stands down.
//!
//! Restarting through `start` keeps the rules of the data directory: it runs under
//! `DIR/zixly.lock`, so when two processes supervise the same cluster (a `zixly up` that reused
//! another's server) exactly one starts a postmaster and the other reuses it; a server that another
//! live zixly process started meanwhile is reused, never replaced; stale `postmaster.pid` and
//! leftover backends of the dead server are handled there. A process that merely reused the
//! server waits [`REUSER_HEAD_START`] longer before trying, so the owner normally restarts it.
//! The dead handle is forgotten without signalling its pid (which may be reused by then).
//!
//! Shutdown: [`StandDown::stand_down`] (called as soon as a shutdown signal arrives) ends all
//! restarting; [`Supervisor::stop`] then stops PostgreSQL once, as [`RunningCluster::stop`] does.
//! A restart already running when the signal arrives is finished first (cancelling it halfway
//! could orphan a freshly spawned postmaster), then stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{PgEmbedError, RunningCluster};

/// How often the postmaster is checked.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Wait before the first restart attempt (the dead server's backends exit meanwhile).
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Cap of the backoff between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Extra wait of a process that did not start the server: its owner restarts it first.
pub const REUSER_HEAD_START: Duration = Duration::from_secs(2);

/// Delay before restart attempt `attempt` (1-based): 0.5 s, 1 s, 2 s, ... capped at 30 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY)
}

/// Watches and restarts one cluster; see the module docs.
pub struct Supervisor {
    stand_down: StandDown,
    task: tokio::task::JoinHandle<Option<RunningCluster>>,
    restarts: watch::Receiver<u64>,
}

/// Ends restarting (cheap to clone; for the shutdown path).
#[derive(Clone)]
pub struct StandDown(Arc<watch::Sender<bool>>);

impl StandDown {
    /// From now on a postmaster that exits is not started again.
    pub fn stand_down(&self) {
        self.0.send_replace(true);
    }
}

impl Supervisor {
    /// Starts watching `running` on the current tokio runtime.
    pub fn spawn(running: RunningCluster) -> Supervisor {
        let (stand_down, stood_down) = watch::channel(false);
        let (restarted, restarts) = watch::channel(0u64);
        let task = tokio::spawn(supervise(running, stood_down, restarted));
        Supervisor {
            stand_down: StandDown(Arc::new(stand_down)),
            task,
            restarts,
        }
    }

    /// A handle that ends restarting.
    pub fn stand_down_handle(&self) -> StandDown {
        self.stand_down.clone()
    }

    /// Counts successful restarts: changes after each one (e.g. to clean up after the crash).
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarts.clone()
    }

    /// Stands down, then stops PostgreSQL as [`RunningCluster::stop`] does (when it runs and this
    /// process is the one to stop it).
    pub async fn stop(self) -> Result<(), PgEmbedError> {
        self.stand_down.stand_down();
        match self.task.await {
            Ok(Some(running)) => running.stop().await,
            Ok(None) => Ok(()),
            Err(e) => Err(PgEmbedError::Invalid(format!(
                "the PostgreSQL supervisor task failed: {e}"
            ))),
        }
    }
}

async fn supervise(
    mut running: RunningCluster,
    mut stood_down: watch::Receiver<bool>,
    restarted: watch::Sender<u64>,
) -> Option<RunningCluster> {
    let cluster = running.cluster().clone();
    loop {
        let how = loop {
            if *stood_down.borrow() {
                return Some(running);
            }
            if let Some(how) = running.exited() {
                break how;
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                changed = stood_down.changed() => if changed.is_err() {
                    // The Supervisor was dropped without `stop`: stop supervising; dropping the
                    // handle then asks PostgreSQL to shut down (see `RunningCluster`'s Drop).
                    return Some(running);
                }
            }
        };
        if *stood_down.borrow() {
            // Shutting down anyway: do not start what we are about to stop.
            running.forget();
            return None;
        }
        let (pid, owner) = (running.pid(), running.owns_server());
        running.forget();
        tracing::error!(
            pid,
            reason = %how,
            "PostgreSQL exited unexpectedly; restarting it (the server keeps running; requests \
             answer 503 until the database is back)"
        );
        let mut attempt = 0u32;
        running = loop {
            attempt += 1;
            let mut delay = backoff(attempt);
            if !owner {
                delay += REUSER_HEAD_START;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stood_down.wait_for(|down| *down) => return None,
            }
            if !cluster.is_initialized() {
                // `start` would initdb an empty cluster (and a new superuser password) in place
                // of the data that vanished: that is for a person to decide, not a restart.
                tracing::error!(
                    attempt,
                    dir = %cluster.pg_data_dir().display(),
                    "not restarting PostgreSQL: its data directory is gone or incomplete; restore \
                     it, or stop zixly and start it again to create a new, empty one"
                );
                continue;
            }
            // Not raced against the stand-down signal: see the module docs.
            match cluster.start().await {
                Ok(new) => {
                    tracing::warn!(
                        pid = new.pid(),
                        attempt,
                        started_here = new.started_here(),
                        "PostgreSQL restarted"
                    );
                    break new;
                }
                Err(e) => tracing::error!(
                    attempt,
                    error = %e,
                    next_attempt_in_s = backoff(attempt + 1).as_secs_f64(),
                    "restarting PostgreSQL failed"
                ),
            }
        };
        restarted.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let secs: Vec<f64> = (1..=9).map(|a| backoff(a).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }
}
