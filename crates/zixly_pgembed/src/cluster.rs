//! What a cluster is before it runs: [`ClusterOptions`], the [`EmbeddedCluster`] handle on one
//! data directory, the paths inside it (see the crate docs for the layout) and the connection
//! URLs built from them. Starting is in `start`, the rest of the lifecycle in its own modules.

use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{PgEmbedError, DEFAULT_PORT, SUPERUSER};

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
    pub(crate) data_dir: PathBuf,
    pub(crate) tcp_port: Option<u16>,
    pub(crate) for_tests: bool,
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

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.data_dir.join("zixly.lock")
    }

    pub(crate) fn owner_path(&self) -> PathBuf {
        self.data_dir.join("zixly.owner.json")
    }

    pub(crate) fn users_lock_path(&self) -> PathBuf {
        self.data_dir.join("zixly.users.lock")
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &str) -> EmbeddedCluster {
        EmbeddedCluster::new(ClusterOptions::new(dir))
    }

    #[test]
    pub(crate) fn paths_and_port() {
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
    pub(crate) fn url_encodes_socket_and_credentials() {
        let c = cluster("/tmp/z x");
        assert_eq!(
            c.url_for("app user", "p@ss:w/rd", "my db"),
            "postgresql://app%20user:p%40ss%3Aw%2Frd@%2Ftmp%2Fz%20x%2Frun:5432/my%20db"
        );
    }
}
