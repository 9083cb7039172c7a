//! Cluster-level set-up, run with a superuser (the embedded cluster, tests) or a role with
//! CREATEROLE and CREATEDB (some managed services). Idempotent. Sessions in the same database are
//! serialised by an advisory lock; role changes racing in from another database are retried.

use std::str::FromStr;

use tokio_postgres::{Client, NoTls};

use crate::error::{Ctx, DbError, DbResult};
use crate::roles;

/// Passwords for the three login roles. `Debug` is redacted.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct RolePasswords {
    pub owner: String,
    pub app: String,
    pub readonly: String,
}

impl std::fmt::Debug for RolePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolePasswords { .. }")
    }
}

impl RolePasswords {
    /// Fresh random passwords (32 alphanumerics ≈ 190 bits each).
    pub fn generate() -> Self {
        RolePasswords {
            owner: random_password(),
            app: random_password(),
            readonly: random_password(),
        }
    }
}

pub fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

pub(crate) async fn connect_one(url: &str, context: &'static str) -> DbResult<Client> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::Config(format!("invalid database URL: {e}")))?;
    let (client, connection) = config.connect(NoTls).await.ctx(context)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "admin connection closed");
        }
    });
    Ok(client)
}

/// Creates `zixly_owner` (LOGIN, BYPASSRLS: it owns the schema and backs the cross-tenant path),
/// `zixly_app` (LOGIN, NOBYPASSRLS) and `zixly_readonly` (LOGIN, NOBYPASSRLS) when missing, fixes
/// their attributes when they drifted, and (re)sets their passwords when given. A role that is
/// already as wanted is not written at all.
pub async fn ensure_roles(admin_url: &str, passwords: Option<&RolePasswords>) -> DbResult<()> {
    let client = connect_one(admin_url, "connecting to bootstrap roles").await?;
    client
        .execute("select pg_advisory_lock(hashtext('zixly_bootstrap'))", &[])
        .await
        .ctx("locking bootstrap")?;
    let specs: [(&str, RoleAttributes, Option<&String>); 3] = [
        (
            roles::OWNER,
            RoleAttributes {
                bypass_rls: true,
                no_create_db: false,
            },
            passwords.map(|p| &p.owner),
        ),
        (
            roles::APP,
            RoleAttributes {
                bypass_rls: false,
                no_create_db: true,
            },
            passwords.map(|p| &p.app),
        ),
        (
            roles::READONLY,
            RoleAttributes {
                bypass_rls: false,
                no_create_db: true,
            },
            passwords.map(|p| &p.readonly),
        ),
    ];
    for (role, attributes, password) in specs {
        ensure_role(&client, role, attributes, password.map(String::as_str)).await?;
    }
    client
        .execute(
            "select pg_advisory_unlock(hashtext('zixly_bootstrap'))",
            &[],
        )
        .await
        .ctx("unlocking bootstrap")?;
    Ok(())
}

/// The attributes Zixly's login roles must have (all are LOGIN NOSUPERUSER NOCREATEROLE).
#[derive(Clone, Copy)]
struct RoleAttributes {
    bypass_rls: bool,
    /// NOCREATEDB is enforced; otherwise CREATEDB is left as the operator set it.
    no_create_db: bool,
}

impl RoleAttributes {
    fn sql(self) -> String {
        let mut sql = String::from("login nosuperuser nocreaterole");
        sql.push_str(if self.bypass_rls {
            " bypassrls"
        } else {
            " nobypassrls"
        });
        if self.no_create_db {
            sql.push_str(" nocreatedb");
        }
        sql
    }
}

/// How many times a role statement is retried when another session changed the same role at the
/// same moment (see [`is_concurrent_role_change`]).
const ROLE_DDL_ATTEMPTS: u32 = 16;

/// Creates or alters one role. The advisory lock in [`ensure_roles`] only serialises sessions
/// connected to the same database (advisory locks are per database), while roles are
/// cluster-wide: a `zixly` process bootstrapping through `DATABASE_URL=.../otherdb` can change the
/// same role concurrently. PostgreSQL takes no lock for `ALTER ROLE`, so the loser gets "tuple
/// concurrently updated" (or "role already exists" for two `CREATE ROLE`s); both are retried after
/// looking again.
async fn ensure_role(
    client: &Client,
    role: &str,
    wanted: RoleAttributes,
    password: Option<&str>,
) -> DbResult<()> {
    for attempt in 1..=ROLE_DDL_ATTEMPTS {
        let current = client
            .query_opt(
                "select rolcanlogin, rolsuper, rolcreaterole, rolbypassrls, rolcreatedb \
                 from pg_roles where rolname = $1",
                &[&role],
            )
            .await
            .ctx("looking up roles")?;
        let verb = match &current {
            None => "create",
            Some(row) => {
                let as_wanted = row.get::<_, bool>(0)
                    && !row.get::<_, bool>(1)
                    && !row.get::<_, bool>(2)
                    && row.get::<_, bool>(3) == wanted.bypass_rls
                    && !(wanted.no_create_db && row.get::<_, bool>(4));
                if as_wanted && password.is_none() {
                    return Ok(());
                }
                "alter"
            }
        };
        let sql: String = client
            .query_one(
                &format!(
                    "select format('{verb} role %I {}' || coalesce(' password ' || quote_literal($2::text), ''), $1::text)",
                    wanted.sql()
                ),
                &[&role, &password],
            )
            .await
            .ctx("preparing role statement")?
            .get(0);
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ROLE_DDL_ATTEMPTS && is_concurrent_role_change(&e) => {
                tracing::debug!(role, attempt, "role changed concurrently; retrying");
                tokio::time::sleep(retry_delay(attempt)).await;
            }
            Err(e) => return Err(e).ctx("creating or updating roles"),
        }
    }
    unreachable!("the last attempt returns")
}

/// A random pause that grows with `attempt` (up to 20 ms × attempt): random so that two sessions
/// that collided do not retry in lockstep and collide again.
fn retry_delay(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let max_ms = 20 * u64::from(attempt);
    std::time::Duration::from_millis(rand::thread_rng().gen_range(max_ms / 4..=max_ms))
}

/// A role statement lost a race with another session changing the same `pg_authid` row.
fn is_concurrent_role_change(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::DUPLICATE_OBJECT
            || *db.code() == SqlState::UNIQUE_VIOLATION
            || (*db.code() == SqlState::INTERNAL_ERROR
                && db.message() == "tuple concurrently updated")
    })
}

/// Creates database `dbname` owned by `zixly_owner` when missing.
pub async fn ensure_database(admin_url: &str, dbname: &str) -> DbResult<()> {
    let client = connect_one(admin_url, "connecting to create the database").await?;
    client
        .execute("select pg_advisory_lock(hashtext('zixly_bootstrap'))", &[])
        .await
        .ctx("locking bootstrap")?;
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&dbname])
        .await
        .ctx("looking up databases")?
        .is_some();
    if !exists {
        let sql: String = client
            .query_one("select format('create database %I owner %I encoding ''UTF8''', $1::text, $2::text)", &[&dbname, &roles::OWNER])
            .await
            .ctx("preparing create database")?
            .get(0);
        client
            .batch_execute(&sql)
            .await
            .ctx("creating the database")?;
        tracing::info!(database = dbname, "created database");
    }
    client
        .execute(
            "select pg_advisory_unlock(hashtext('zixly_bootstrap'))",
            &[],
        )
        .await
        .ctx("unlocking bootstrap")?;
    Ok(())
}

/// Sets a role's password (external databases where the operator chose it). Retried like
/// [`ensure_role`] when another session changes the role at the same moment.
pub async fn set_password(admin_url: &str, role: &str, password: &str) -> DbResult<()> {
    let client = connect_one(admin_url, "connecting to set a role password").await?;
    let sql: String = client
        .query_one(
            "select format('alter role %I password %L', $1::text, $2::text)",
            &[&role, &password],
        )
        .await
        .ctx("preparing alter role")?
        .get(0);
    for attempt in 1..=ROLE_DDL_ATTEMPTS {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ROLE_DDL_ATTEMPTS && is_concurrent_role_change(&e) => {
                tokio::time::sleep(retry_delay(attempt)).await;
            }
            Err(e) => return Err(e).ctx("setting role password"),
        }
    }
    unreachable!("the last attempt returns")
}
