//! Connection settings and pools.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::error::{Ctx, DbError, DbResult};
use crate::TenantTx;

/// Where to connect, per role. `admin` is a superuser or the schema owner: it bootstraps roles,
/// runs migrations and backs the cross-tenant [`crate::SystemDb`]. `app` must be `zixly_app`.
#[derive(Clone)]
pub struct DbUrls {
    pub admin: String,
    pub app: String,
}

impl std::fmt::Debug for DbUrls {
    // URLs hold passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbUrls").finish_non_exhaustive()
    }
}

/// Replaces user and password of a libpq URL (keeps host, port, database and query).
pub fn with_credentials(url: &str, user: &str, password: &str) -> DbResult<String> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
    parsed
        .set_username(user)
        .map_err(|_| DbError::Config("database URL cannot carry a user name".into()))?;
    parsed
        .set_password(Some(password))
        .map_err(|_| DbError::Config("database URL cannot carry a password".into()))?;
    Ok(parsed.to_string())
}

/// Replaces the database name of a libpq URL.
pub fn with_database(url: &str, dbname: &str) -> DbResult<String> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
    parsed.set_path(&format!("/{dbname}"));
    Ok(parsed.to_string())
}

/// Where a URL points, without its credentials: what a person types into a BI tool's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTarget {
    /// A host name, an IP address, or (for a Unix socket) the socket's directory.
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub unix_socket: bool,
}

/// The first host, port and database of a libpq URL (credentials are not returned).
pub fn connect_target(url: &str) -> DbResult<ConnectTarget> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
    let (host, unix_socket) = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => (h.clone(), false),
        Some(tokio_postgres::config::Host::Unix(p)) => (p.display().to_string(), true),
        None => ("localhost".to_string(), false),
    };
    Ok(ConnectTarget {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        dbname: config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_string(),
        unix_socket,
    })
}

pub(crate) fn build_pool(url: &str, max_size: usize, application_name: &str) -> DbResult<Pool> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
    config.application_name(application_name);
    config.connect_timeout(Duration::from_secs(10));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // `Fast` checks `Client::is_closed()` when a pooled connection is taken: one whose
            // server went away (PostgreSQL restarted, backend terminated) is discarded and a new
            // one is opened, so the pool recovers by itself once the database is back. Together
            // with the timeouts below, a request never waits on a dead database for more than
            // ~10 s before it fails with "database unavailable" (503).
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| DbError::Config(format!("cannot build connection pool: {e}")))
}

/// The application's pool, connected as `zixly_app`. The only way to query through it is a
/// [`TenantTx`], so every statement runs under a tenant's RLS context.
#[derive(Clone)]
pub struct AppDb {
    pool: Pool,
}

impl AppDb {
    /// Connects and checks that the role really is subject to RLS: a superuser or BYPASSRLS role
    /// would silently see every tenant, so we refuse to start with one.
    pub async fn connect(url: &str, max_size: usize) -> DbResult<Self> {
        let pool = build_pool(url, max_size, "zixly-app")?;
        let db = AppDb { pool };
        db.assert_subject_to_rls().await?;
        Ok(db)
    }

    async fn assert_subject_to_rls(&self) -> DbResult<()> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "select current_user::text, rolsuper, rolbypassrls from pg_roles where rolname = current_user",
                &[],
            )
            .await
            .ctx("checking the application role")?;
        let (user, is_super, bypass): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if is_super || bypass {
            return Err(DbError::Config(format!(
                "the application connects as `{user}`, which bypasses row-level security; connect as `{}` instead",
                crate::roles::APP
            )));
        }
        Ok(())
    }

    /// Starts a transaction scoped to `tenant_id`. `BEGIN` and the transaction-local setting go in
    /// one round trip.
    pub async fn begin_tenant(&self, tenant_id: Uuid) -> DbResult<TenantTx> {
        let client = self.pool.get().await?;
        TenantTx::begin(client, tenant_id).await
    }

    /// A pooled connection outside any tenant transaction, for the few statements that run before
    /// the tenant is known: only calls of SECURITY DEFINER functions granted to `zixly_app`
    /// (login candidates, login throttling; see `queries/auth.rs`). Crate-private on purpose.
    pub(crate) async fn pre_tenant_client(&self) -> DbResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Readiness: the database answers and its schema version is the one this binary ships.
    pub async fn check_ready(&self) -> DbResult<()> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "select coalesce(max(version), 0) from schema_migrations",
                &[],
            )
            .await
            .ctx("reading the schema version")?;
        let applied: i32 = row.get(0);
        let expected = crate::migrate::latest_version();
        if applied != expected {
            return Err(DbError::Config(format!(
                "schema version is {applied}, this binary expects {expected}: run `zixly migrate`"
            )));
        }
        Ok(())
    }

    /// Closes the pool: idle connections end cleanly now, busy ones when returned. Call before
    /// stopping the database server so shutdown does not log every pooled connection as lost.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Pool usage for metrics: (connections open, connections idle, max size).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.max_size)
    }
}
