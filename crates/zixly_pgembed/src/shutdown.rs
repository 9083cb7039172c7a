//! Stopping a postmaster: SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL, each
//! with a timeout; and waiting for (at last killing) leftover backends of a server that is gone, so
//! its shared memory is released before the next start.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::procs;
use crate::{PgEmbedError, POLL};

const FAST_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL; waits for exit.
pub(crate) async fn terminate(
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
pub(crate) async fn wait_for_leftovers(pg_dir: &Path) {
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
