//! The two `flock`s of the data directory: `DIR/zixly.lock` (exclusive, held while a process starts
//! or stops the server, so those steps are serialised across processes) and `DIR/zixly.users.lock`
//! (shared, one per handle using the server; a stopper tests it exclusively to see whether anyone
//! else still uses it).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::IoContext;
use crate::PgEmbedError;

const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn open_lock_file(path: &Path) -> Result<std::fs::File, PgEmbedError> {
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
pub(crate) fn lock_shared(path: &Path) -> Result<Flock<std::fs::File>, PgEmbedError> {
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
pub(crate) fn others_using(path: &Path) -> Result<bool, PgEmbedError> {
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
pub(crate) async fn lock_exclusive(path: &Path) -> Result<Flock<std::fs::File>, PgEmbedError> {
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
