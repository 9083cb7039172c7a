//! Which database a command talks to.
//!
//! - `DATABASE_URL` set: an external PostgreSQL 15+. That URL must be a superuser or the schema
//!   owner (`zixly_owner`): it bootstraps roles when it may, runs migrations and backs the
//!   cross-tenant path. Requests connect as `zixly_app` through `ZIXLY_APP_DATABASE_URL`, or through
//!   `DATABASE_URL` with the user replaced by `zixly_app` and the password `ZIXLY_APP_PASSWORD`.
//! - Otherwise: the embedded cluster in `--data-dir`, started when it is not running (and stopped
//!   again by [`Database::close`] when this process started it). Role passwords are generated on
//!   first use and kept in `DIR/roles.json` (mode 0600).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use zixly_db::bootstrap::{self, RolePasswords};
use zixly_db::connect::with_credentials;
use zixly_db::{roles, AppDb, SystemDb};
use zixly_pgembed::{ClusterOptions, EmbeddedCluster, RunningCluster, StandDown, Supervisor};

/// A command line that parses but asks for something impossible (`--rows 0`, `--rejects` the
/// input file): exit status 2 like clap's own usage errors (README, "Exit codes").
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a [`UsageError`].
macro_rules! usage_error {
    ($($t:tt)*) => {
        return Err($crate::env::UsageError(format!($($t)*)).into())
    };
}
pub(crate) use usage_error;

/// Options shared by every command.
pub struct Global {
    pub data_dir: PathBuf,
    /// The command may create the embedded cluster when `data_dir` has none (`zixly up` only):
    /// every other command refuses, so that a mistyped `--data-dir` is an error rather than a
    /// new, empty database that silently takes the place of the real one.
    pub may_create: bool,
}

/// The name of the application database inside the embedded cluster.
pub const EMBEDDED_DB: &str = "zixly";

pub struct Database {
    pub app: AppDb,
    pub system: SystemDb,
    /// A superuser (embedded) or `DATABASE_URL` (external): role DDL such as `zixly bi-role`.
    /// Holds a password: never printed.
    pub admin_url: String,
    embedded: Option<Embedded>,
}

/// The embedded cluster this process uses: as started, or under a [`Supervisor`] that restarts
/// it when it dies (`zixly up`).
enum Embedded {
    Plain(RunningCluster),
    Supervised(Supervisor),
}

/// What a supervised server needs to know of its supervisor.
pub struct Supervision {
    /// Call when shutdown begins: a PostgreSQL that exits from then on is not restarted.
    pub stand_down: StandDown,
    /// Changes after each restart of PostgreSQL.
    pub restarts: tokio::sync::watch::Receiver<u64>,
}

pub fn external_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

pub fn embedded_cluster(global: &Global) -> Result<EmbeddedCluster> {
    let data_dir = absolute(&global.data_dir)?;
    Ok(EmbeddedCluster::new(ClusterOptions {
        data_dir,
        tcp_port: None,
        for_tests: false,
    }))
}

/// The error of a command other than `zixly up` pointed at a directory without a database.
pub fn no_database(cluster: &EmbeddedCluster) -> String {
    let dir = cluster.data_dir();
    let what = if dir.exists() {
        "holds no Zixly database"
    } else {
        "does not exist"
    };
    format!(
        "the data directory {} {what}: run `zixly up` first to create the database there, \
         point --data-dir (or ZIXLY_DATA_DIR) at the directory `zixly up` uses, or set \
         DATABASE_URL for an external PostgreSQL",
        dir.display()
    )
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

/// Reads `DIR/roles.json`, creating it with fresh passwords (mode 0600) when missing.
fn role_passwords(data_dir: &Path) -> Result<RolePasswords> {
    let path = data_dir.join("roles.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid; delete it to regenerate", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let passwords = RolePasswords::generate();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            serde_json::to_writer_pretty(&mut file, &passwords)?;
            Ok(passwords)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Turns on `pg_stat_statements` where the server has it loaded (`zixly db top`); never fails a
/// start: statistics are for operators, not for serving.
async fn enable_statement_stats(superuser_url: &str) {
    match zixly_db::statement_stats::enable(superuser_url).await {
        Ok(true) => {}
        Ok(false) => tracing::debug!(
            "pg_stat_statements is not in shared_preload_libraries: `zixly db top` is off"
        ),
        Err(e) => tracing::debug!(error = %e, "could not enable pg_stat_statements"),
    }
}

impl Database {
    /// Connects (starting the embedded cluster when needed) and applies pending migrations.
    pub async fn open(global: &Global, app_pool_size: usize) -> Result<Database> {
        match external_url() {
            Some(admin_url) => {
                if let Err(e) = bootstrap::ensure_roles(&admin_url, None).await {
                    tracing::warn!(error = %e, "could not create roles with DATABASE_URL; assuming they exist");
                }
                let applied = zixly_db::migrate::run(&admin_url)
                    .await
                    .context("applying migrations")?;
                log_applied(&applied);
                enable_statement_stats(&admin_url).await;
                let app_url = match (std::env::var("ZIXLY_APP_DATABASE_URL"), std::env::var("ZIXLY_APP_PASSWORD")) {
                    (Ok(url), _) => url,
                    (Err(_), Ok(pw)) => {
                        bootstrap::set_password(&admin_url, roles::APP, &pw).await.ok();
                        with_credentials(&admin_url, roles::APP, &pw)?
                    }
                    _ => bail!(
                        "with DATABASE_URL set, also set ZIXLY_APP_PASSWORD (the password for role zixly_app) \
                         or ZIXLY_APP_DATABASE_URL: requests never run as the owner"
                    ),
                };
                let app = AppDb::connect(&app_url, app_pool_size)
                    .await
                    .context("connecting as zixly_app")?;
                let system = SystemDb::connect(&admin_url, 4)?;
                Ok(Database {
                    app,
                    system,
                    admin_url,
                    embedded: None,
                })
            }
            None => {
                let cluster = embedded_cluster(global)?;
                if !global.may_create && !cluster.is_initialized() {
                    bail!(no_database(&cluster));
                }
                let running = cluster
                    .start()
                    .await
                    .context("starting the embedded PostgreSQL")?;
                match Self::open_embedded(&cluster, app_pool_size).await {
                    Ok((app, system, admin_url)) => Ok(Database {
                        app,
                        system,
                        admin_url,
                        embedded: Some(Embedded::Plain(running)),
                    }),
                    Err(e) => {
                        // Leave nothing behind when we cannot go on.
                        if let Err(stop_err) = running.stop().await {
                            tracing::warn!(error = %stop_err, "stopping PostgreSQL after a failed start");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    async fn open_embedded(
        cluster: &EmbeddedCluster,
        app_pool_size: usize,
    ) -> Result<(AppDb, SystemDb, String)> {
        let passwords = role_passwords(cluster.data_dir())?;
        let maintenance_url = cluster.superuser_url("postgres")?;
        bootstrap::ensure_roles(&maintenance_url, Some(&passwords))
            .await
            .context("creating database roles")?;
        bootstrap::ensure_database(&maintenance_url, EMBEDDED_DB)
            .await
            .context("creating the database")?;
        let applied = zixly_db::migrate::run(&cluster.superuser_url(EMBEDDED_DB)?)
            .await
            .context("applying migrations")?;
        log_applied(&applied);
        enable_statement_stats(&cluster.superuser_url(EMBEDDED_DB)?).await;
        let app = AppDb::connect(
            &cluster.url_for(roles::APP, &passwords.app, EMBEDDED_DB),
            app_pool_size,
        )
        .await
        .context("connecting as zixly_app")?;
        let system = SystemDb::connect(
            &cluster.url_for(roles::OWNER, &passwords.owner, EMBEDDED_DB),
            4,
        )?;
        Ok((app, system, cluster.superuser_url(EMBEDDED_DB)?))
    }

    /// Puts the embedded cluster under a supervisor that restarts PostgreSQL when it dies
    /// (`zixly up`; see `zixly_pgembed::Supervisor`). `None` with an external database. The pools
    /// reconnect by themselves: a closed connection is discarded when it is next taken.
    pub fn supervise(&mut self) -> Option<Supervision> {
        let supervisor = match self.embedded.take()? {
            Embedded::Plain(running) => Supervisor::spawn(running),
            Embedded::Supervised(supervisor) => supervisor,
        };
        let supervision = Supervision {
            stand_down: supervisor.stand_down_handle(),
            restarts: supervisor.restarts(),
        };
        self.embedded = Some(Embedded::Supervised(supervisor));
        Some(supervision)
    }

    /// Stops the embedded cluster if this process started it.
    pub async fn close(self) -> Result<()> {
        self.app.close();
        self.system.close();
        let stopped = match self.embedded {
            Some(Embedded::Plain(running)) => running.stop().await,
            Some(Embedded::Supervised(supervisor)) => supervisor.stop().await,
            None => Ok(()),
        };
        stopped.context("stopping the embedded PostgreSQL")
    }
}

fn log_applied(applied: &[i32]) {
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "database migrated");
    }
}

/// Who runs this command, for audit rows: `cli:<OS user>` (`$USER`, else `$LOGNAME`, else the
/// numeric uid). A CLI change is recorded in the tenant's audit log like a web change, so an
/// ADMIN sees who added a user or imported a file from a shell.
pub fn cli_actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = std::env::var("USER")
        .ok()
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{user}")
}

/// An audit row of a CLI change (actor [`cli_actor`], no user id, no request).
pub fn cli_audit(
    action: &str,
    entity_type: &str,
    entity_id: Option<String>,
    summary: serde_json::Value,
) -> zixly_db::queries::audit::AuditEntry {
    zixly_db::queries::audit::AuditEntry {
        actor_user_id: None,
        actor_label: cli_actor(),
        action: action.to_string(),
        entity_type: entity_type.to_string(),
        entity_id,
        summary,
        request_id: None,
        client_addr: None,
    }
}
