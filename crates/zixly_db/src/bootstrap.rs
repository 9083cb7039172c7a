//! Cluster-level set-up, run with a superuser (the embedded cluster, tests) or a role with
//! CREATEROLE and CREATEDB (some managed services). Idempotent; serialised by an advisory lock so
//! concurrent starts cannot race.

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
/// `zixly_app` (LOGIN, NOBYPASSRLS) and `zixly_readonly` (LOGIN, NOBYPASSRLS) when missing, and
/// (re)sets their passwords when given.
pub async fn ensure_roles(admin_url: &str, passwords: Option<&RolePasswords>) -> DbResult<()> {
    let client = connect_one(admin_url, "connecting to bootstrap roles").await?;
    client
        .execute("select pg_advisory_lock(hashtext('zixly_bootstrap'))", &[])
        .await
        .ctx("locking bootstrap")?;
    let specs: [(&str, &str, Option<&String>); 3] = [
        (
            roles::OWNER,
            "login bypassrls nosuperuser nocreaterole",
            passwords.map(|p| &p.owner),
        ),
        (
            roles::APP,
            "login nobypassrls nosuperuser nocreaterole nocreatedb",
            passwords.map(|p| &p.app),
        ),
        (
            roles::READONLY,
            "login nobypassrls nosuperuser nocreaterole nocreatedb",
            passwords.map(|p| &p.readonly),
        ),
    ];
    for (role, attributes, password) in specs {
        let exists = client
            .query_opt("select 1 from pg_roles where rolname = $1", &[&role])
            .await
            .ctx("looking up roles")?
            .is_some();
        let verb = if exists { "alter" } else { "create" };
        let sql: String = client
            .query_one(
                &format!("select format('{verb} role %I {attributes}' || coalesce(' password ' || quote_literal($2::text), ''), $1::text)"),
                &[&role, &password.map(|p| p.as_str())],
            )
            .await
            .ctx("preparing role statement")?
            .get(0);
        client
            .batch_execute(&sql)
            .await
            .ctx("creating or updating roles")?;
    }
    // The owner must be able to grant to the others and to SET ROLE in tests.
    client
        .execute(
            "select pg_advisory_unlock(hashtext('zixly_bootstrap'))",
            &[],
        )
        .await
        .ctx("unlocking bootstrap")?;
    Ok(())
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

/// Sets a role's password (external databases where the operator chose it).
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
    client
        .batch_execute(&sql)
        .await
        .ctx("setting role password")?;
    Ok(())
}
