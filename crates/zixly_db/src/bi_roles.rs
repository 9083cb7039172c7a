//! Direct-SQL logins for BI tools, confined to one tenant by who they are.
//!
//! A BI login is a PostgreSQL role with LOGIN that inherits `zixly_readonly` (SELECT on business
//! data only) and has a row in `bi_logins` (role OID → tenant), which only `zixly_owner` writes.
//! The RLS policy function `zixly_current_tenant()` reads that mapping for every role other than
//! `zixly_app`, keyed by `session_user`, so no setting the login controls can re-point it
//! (migrations/0008_bi_logins.sql has the whole argument).
//!
//! Role DDL is cluster-wide and needs a superuser or CREATEROLE: these functions take the admin
//! URL (`DATABASE_URL`, or the embedded cluster's superuser), not a pool. Creating the role and its
//! mapping is one transaction (role DDL is transactional in PostgreSQL), so a failure leaves
//! neither. The password is sent as a SCRAM-SHA-256 verifier computed here, so the plaintext never
//! reaches the server's statement log.

use std::fmt;

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::bootstrap::connect_one;
use crate::error::{Ctx, DbError, DbResult};
use crate::roles;

/// Connections a BI login may hold at once unless told otherwise: a dashboard tool needs a few, and
/// a bound keeps one tenant's BI tool from exhausting the server's `max_connections`.
pub const DEFAULT_CONNECTION_LIMIT: i32 = 5;

/// A validated BI login role name: a plain lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most
/// 63 bytes, PostgreSQL's limit), so it never needs quoting in a BI tool's connection dialog, and
/// not in the namespaces of PostgreSQL (`pg_`) or Zixly's own roles (`zixly_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiRoleName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BI role name `{name}`: {reason}")]
pub struct InvalidBiRoleName {
    name: String,
    reason: &'static str,
}

impl BiRoleName {
    pub fn parse(name: &str) -> Result<Self, InvalidBiRoleName> {
        let invalid = |reason| {
            Err(InvalidBiRoleName {
                name: name.chars().take(80).collect(),
                reason,
            })
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return invalid("must not be empty"),
            Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
                return invalid("must start with a lower-case letter or `_`")
            }
            _ => {}
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return invalid("may contain only lower-case letters, digits and `_`");
        }
        if name.len() > 63 {
            return invalid("must be at most 63 characters");
        }
        if name.starts_with("pg_") || name.starts_with("zixly_") {
            return invalid("must not start with `pg_` or `zixly_` (reserved)");
        }
        Ok(BiRoleName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BiRoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One BI login as `zixly bi-role list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BiLogin {
    pub name: String,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub connection_limit: i32,
    /// False when the role was dropped or renamed outside Zixly: the mapping then matches no
    /// session (it is keyed by OID) and `zixly bi-role drop` removes it.
    pub role_exists: bool,
    pub created_at: DateTime<Utc>,
}

/// Why a BI login could not be created or dropped, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum BiRoleError {
    #[error("a role named `{0}` already exists in the cluster (choose another name, or `zixly bi-role drop {0}` if it is an old BI login)")]
    RoleExists(String),
    #[error("no tenant with id {0} (see `zixly tenant list`)")]
    NoTenant(Uuid),
    #[error("no BI login named `{0}` (see `zixly bi-role list`); roles that are not BI logins are never dropped")]
    NotABiLogin(String),
    #[error("{0}: the database URL must be a superuser or a role with CREATEROLE that may grant zixly_readonly and act as zixly_owner")]
    NotPermitted(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn classify(e: DbError, name: &str, tenant: Option<Uuid>) -> BiRoleError {
    match e.sql_state() {
        Some(s) if *s == SqlState::DUPLICATE_OBJECT => BiRoleError::RoleExists(name.to_string()),
        Some(s) if *s == SqlState::FOREIGN_KEY_VIOLATION && tenant.is_some() => {
            BiRoleError::NoTenant(tenant.unwrap_or_default())
        }
        Some(s) if *s == SqlState::INSUFFICIENT_PRIVILEGE => {
            BiRoleError::NotPermitted(e.to_string())
        }
        _ => BiRoleError::Db(e),
    }
}

/// Creates login role `name` in `zixly_readonly`, mapped to `tenant`.
pub async fn create(
    admin_url: &str,
    name: &BiRoleName,
    tenant: Uuid,
    password: &str,
    connection_limit: i32,
) -> Result<(), BiRoleError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let mut client = connect_one(admin_url, "connecting to create a BI login").await?;
    let tx = client
        .transaction()
        .await
        .ctx("beginning the BI login transaction")?;
    // The tenant first: a clear error, and no role created for nothing.
    let tenant_found = tx
        .query_opt("select 1 from tenants where id = $1", &[&tenant])
        .await
        .ctx("looking the tenant up");
    match tenant_found {
        Ok(None) => return Err(BiRoleError::NoTenant(tenant)),
        Ok(Some(_)) => {}
        Err(e) => return Err(classify(e, name.as_str(), Some(tenant))),
    }
    // Identifiers and literals quoted by the server (format %I / %L), not by hand.
    let ddl: String = tx
        .query_one(
            "select format('create role %I login password %L connection limit %s
                            nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit
                            in role %I', $1::text, $2::text, $3::int, $4::text)",
            &[
                &name.as_str(),
                &verifier,
                &connection_limit,
                &roles::READONLY,
            ],
        )
        .await
        .ctx("preparing create role")?
        .get(0);
    tx.batch_execute(&ddl)
        .await
        .ctx("creating the BI login role")
        .map_err(|e| classify(e, name.as_str(), Some(tenant)))?;
    tx.execute(
        "insert into bi_logins (role_oid, role_name, tenant_id)
         select r.oid, r.rolname, $2 from pg_roles r where r.rolname = $1",
        &[&name.as_str(), &tenant],
    )
    .await
    .ctx("mapping the BI login to its tenant")
    .map_err(|e| classify(e, name.as_str(), Some(tenant)))?;
    tx.commit()
        .await
        .ctx("committing the BI login")
        .map_err(|e| classify(e, name.as_str(), Some(tenant)))?;
    Ok(())
}

/// Every BI login, with its tenant; also mappings whose role is gone.
pub async fn list(admin_url: &str) -> DbResult<Vec<BiLogin>> {
    let client = connect_one(admin_url, "connecting to list BI logins").await?;
    let rows = client
        .query(
            "select /* cross-tenant */ coalesce(r.rolname, b.role_name)::text, b.tenant_id, t.name,
                    coalesce(r.rolconnlimit, 0), r.oid is not null, b.created_at
               from bi_logins b
               join tenants t on t.id = b.tenant_id
               left join pg_roles r on r.oid = b.role_oid
              order by t.name, 1",
            &[],
        )
        .await
        .ctx("listing BI logins")?;
    Ok(rows
        .iter()
        .map(|r| BiLogin {
            name: r.get(0),
            tenant_id: r.get(1),
            tenant_name: r.get(2),
            connection_limit: r.get(3),
            role_exists: r.get(4),
            created_at: r.get(5),
        })
        .collect())
}

/// Drops BI login `name` (role and mapping, in one transaction) and ends its open sessions.
/// Refuses any role that is not a mapped BI login.
pub async fn drop(admin_url: &str, name: &str) -> Result<(), BiRoleError> {
    let mut client = connect_one(admin_url, "connecting to drop a BI login").await?;
    let tx = client
        .transaction()
        .await
        .ctx("beginning the BI login transaction")?;
    let unmapped = tx
        .query(
            "delete /* cross-tenant */ from bi_logins b
              where b.role_oid = (select oid from pg_roles where rolname = $1)
                 or (b.role_name = $1 and not exists (select 1 from pg_roles r where r.oid = b.role_oid))
             returning (select oid from pg_roles where rolname = $1)",
            &[&name],
        )
        .await
        .ctx("unmapping the BI login")
        .map_err(|e| classify(e, name, None))?;
    let Some(first) = unmapped.first() else {
        return Err(BiRoleError::NotABiLogin(name.to_string()));
    };
    let role_oid: Option<u32> = first.get(0);
    if role_oid.is_some() {
        let ddl: String = tx
            .query_one("select format('drop role %I', $1::text)", &[&name])
            .await
            .ctx("preparing drop role")?
            .get(0);
        tx.batch_execute(&ddl)
            .await
            .ctx("dropping the BI login role")
            .map_err(|e| classify(e, name, None))?;
    }
    tx.commit()
        .await
        .ctx("committing the BI login drop")
        .map_err(|e| classify(e, name, None))?;
    // A dropped role's open sessions would otherwise live on (PostgreSQL does not end them).
    // Best effort: a non-superuser admin may not signal them, and the role is gone either way.
    // By OID: a dropped role's sessions no longer have a user name in pg_stat_activity.
    let Some(role_oid) = role_oid else {
        return Ok(());
    };
    if let Err(e) = client
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where usesysid = $1",
            &[&role_oid],
        )
        .await
    {
        tracing::warn!(error = %e, role = name, "could not end the dropped BI login's sessions");
    }
    Ok(())
}
