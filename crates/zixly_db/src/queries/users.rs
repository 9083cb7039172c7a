//! Users of the current tenant.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;
use zixly_domain::{EmailAddress, Role};

use crate::error::{Ctx, DbError, DbResult};
use crate::queries::auth::role_of;
use crate::TenantTx;

/// A user as the API shows it (no password hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str =
    "id, email, display_name, role, deactivated_at, last_login_at, created_at, updated_at";

fn user_row(r: &Row) -> DbResult<UserRow> {
    Ok(UserRow {
        id: r.get(0),
        email: r.get(1),
        display_name: r.get(2),
        role: role_of(r, 3)?,
        deactivated_at: r.get(4),
        last_login_at: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    })
}

impl TenantTx {
    /// Adds a user to the current tenant. `email` is stored lower-cased.
    pub async fn insert_user(
        &self,
        email: &str,
        role: Role,
        password_hash: Option<&str>,
    ) -> DbResult<Uuid> {
        self.create_user(email, None, role, password_hash).await
    }

    /// Adds a user with a display name. `email` is stored lower-cased.
    pub async fn create_user(
        &self,
        email: &str,
        display_name: Option<&str>,
        role: Role,
        password_hash: Option<&str>,
    ) -> DbResult<Uuid> {
        let id = Uuid::now_v7();
        let display_name = display_name.map(str::trim).filter(|s| !s.is_empty());
        self.client()
            .execute(
                "insert into users (tenant_id, id, email, display_name, role, password_hash)
                 values ($6, $1, $2, $3, $4, $5)",
                &[
                    &id,
                    &EmailAddress::normalise(email),
                    &display_name,
                    &role,
                    &password_hash,
                    &self.tenant_id(),
                ],
            )
            .await
            .ctx("adding user")?;
        Ok(id)
    }

    /// One user of the current tenant; `NotFound` for an unknown id or another tenant's.
    pub async fn get_user(&self, id: Uuid) -> DbResult<UserRow> {
        let row = self
            .client()
            .query_opt(
                &format!("select {USER_COLUMNS} from users where tenant_id = $2 and id = $1"),
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("reading a user")?;
        row.as_ref()
            .map(user_row)
            .transpose()?
            .ok_or(DbError::NotFound("user"))
    }

    /// Whether a user with this email exists in the current tenant.
    pub async fn user_email_exists(&self, email: &str) -> DbResult<bool> {
        let row = self
            .client()
            .query_opt(
                "select 1 from users where tenant_id = $2 and email = $1",
                &[&EmailAddress::normalise(email), &self.tenant_id()],
            )
            .await
            .ctx("looking up a user by email")?;
        Ok(row.is_some())
    }

    /// A page of users ordered by id (UUIDv7: creation order), after the id `after` (keyset).
    pub async fn list_users(&self, after: Option<Uuid>, limit: i64) -> DbResult<Vec<UserRow>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {USER_COLUMNS} from users
                      where tenant_id = $3 and ($1::uuid is null or id > $1)
                      order by id limit $2"
                ),
                &[&after, &limit, &self.tenant_id()],
            )
            .await
            .ctx("listing users")?;
        rows.iter().map(user_row).collect()
    }

    /// Active ADMINs of the tenant, locked until the end of the transaction so that two
    /// concurrent demotions cannot both see "another admin remains".
    pub async fn lock_active_admins(&self) -> DbResult<Vec<Uuid>> {
        let rows = self
            .client()
            .query(
                "select id from users
                  where tenant_id = $1 and role = 'ADMIN' and deactivated_at is null
                  order by id for update",
                &[&self.tenant_id()],
            )
            .await
            .ctx("locking admins")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Changes role and/or display name (`Some("")` clears the name). `NotFound` if no such user.
    pub async fn update_user(
        &self,
        id: Uuid,
        role: Option<Role>,
        display_name: Option<&str>,
    ) -> DbResult<UserRow> {
        let name = display_name.map(str::trim);
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update users
                        set role = coalesce($2, role),
                            display_name = case when $3::bool then nullif($4::text, '') else display_name end
                      where tenant_id = $5 and id = $1
                      returning {USER_COLUMNS}"
                ),
                &[&id, &role, &name.is_some(), &name, &self.tenant_id()],
            )
            .await
            .ctx("updating a user")?;
        row.as_ref()
            .map(user_row)
            .transpose()?
            .ok_or(DbError::NotFound("user"))
    }

    /// Soft-deactivates (`true`) or reactivates (`false`) a user. `NotFound` if no such user.
    pub async fn set_user_deactivated(&self, id: Uuid, deactivated: bool) -> DbResult<UserRow> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update users
                        set deactivated_at = case when $2 then coalesce(deactivated_at, now()) else null end
                      where tenant_id = $3 and id = $1
                      returning {USER_COLUMNS}"
                ),
                &[&id, &deactivated, &self.tenant_id()],
            )
            .await
            .ctx("deactivating a user")?;
        row.as_ref()
            .map(user_row)
            .transpose()?
            .ok_or(DbError::NotFound("user"))
    }

    /// Deletes a user (their tokens and reset links go by cascade; audit rows keep the id).
    pub async fn delete_user(&self, id: Uuid) -> DbResult<UserRow> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "delete from users where tenant_id = $2 and id = $1 returning {USER_COLUMNS}"
                ),
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("deleting a user")?;
        row.as_ref()
            .map(user_row)
            .transpose()?
            .ok_or(DbError::NotFound("user"))
    }

    /// Replaces a user's password hash.
    pub async fn set_user_password(&self, id: Uuid, password_hash: &str) -> DbResult<()> {
        let n = self
            .client()
            .execute(
                "update users set password_hash = $2 where tenant_id = $3 and id = $1",
                &[&id, &password_hash, &self.tenant_id()],
            )
            .await
            .ctx("setting a password")?;
        if n == 0 {
            return Err(DbError::NotFound("user"));
        }
        Ok(())
    }

    /// The stored password hash of a user (for re-authentication before a password change).
    pub async fn user_password_hash(&self, id: Uuid) -> DbResult<Option<String>> {
        let row = self
            .client()
            .query_opt(
                "select password_hash from users where tenant_id = $2 and id = $1",
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("reading a password hash")?;
        row.map(|r| r.get(0)).ok_or(DbError::NotFound("user"))
    }

    /// Stamps `last_login_at`.
    pub async fn record_login(&self, id: Uuid) -> DbResult<()> {
        self.client()
            .execute(
                "update users set last_login_at = now() where tenant_id = $2 and id = $1",
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("recording a login")?;
        Ok(())
    }
}
