//! Error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding, initialising, starting or
/// stopping the embedded cluster. Messages are written for the person running
/// `zixly`: they say what happened and, where possible, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PgEmbedError {
    /// No usable PostgreSQL server installation (>= 15) was found. The message
    /// lists what was searched and how to install PostgreSQL.
    #[error("{0}")]
    NotFound(String),

    /// An I/O operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A system call through `nix` failed; `context` says which.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::errno::Errno,
    },

    /// The unprivileged user PostgreSQL runs as (when zixly runs as root)
    /// cannot enter a parent directory of the data directory.
    #[error(
        "PostgreSQL refuses to run as root, so zixly runs it as the unprivileged user \
         '{user}' (uid {uid}); that user cannot enter the directory {dir} \
         (mode {mode:o}, owner uid {owner}), which contains the data directory {data_dir}. \
         Either choose a data directory that user can reach (for example under /var/lib/zixly \
         or /srv/zixly), or make the directory traversable with `chmod o+x {dir}`."
    )]
    NotTraversable {
        dir: PathBuf,
        data_dir: PathBuf,
        user: String,
        uid: u32,
        mode: u32,
        owner: u32,
    },

    /// `initdb` failed; `output` holds what it printed.
    #[error("initdb failed ({status}) for {data_dir}:\n{output}")]
    InitDb {
        data_dir: PathBuf,
        status: String,
        output: String,
    },

    /// PostgreSQL did not come up; `log_tail` is the end of DIR/log/postgresql.log.
    #[error("PostgreSQL failed to start for {data_dir}: {reason}\n--- last lines of {log_file} ---\n{log_tail}")]
    Startup {
        data_dir: PathBuf,
        reason: String,
        log_file: PathBuf,
        log_tail: String,
    },

    /// The data directory is in a state zixly cannot (or should not) repair
    /// automatically, or the options are unusable.
    #[error("{0}")]
    Invalid(String),
}

impl PgEmbedError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PgEmbedError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sys(context: impl Into<String>, source: nix::errno::Errno) -> Self {
        PgEmbedError::Sys {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for attaching context to I/O errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, PgEmbedError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, PgEmbedError> {
        self.map_err(|e| PgEmbedError::io(context(), e))
    }
}
