//! Authentication state: sessions and personal API tokens, invitations, password resets, and the
//! pre-tenant calls login needs (candidates by email, throttling).
//!
//! Tokens are handled here only as SHA-256 hashes (`&[u8]`, 32 bytes): the clear token never
//! reaches this crate. Token rows are looked up inside the tenant transaction of the tenant the
//! token names (see `migrations/0002_auth.sql` for why the tenant travels in the token).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;
use zixly_domain::{EmailAddress, Role};

use crate::error::{Ctx, DbError, DbResult};
use crate::{AppDb, TenantTx};

/// The `user_role` column `idx` (decoded by `Role`'s derived `FromSql`, which accepts exactly
/// the enum's three labels).
pub(crate) fn role_of(row: &Row, idx: usize) -> DbResult<Role> {
    row.try_get(idx)
        .map_err(|e| DbError::Config(format!("unexpected role in the database: {e}")))
}

/// One account matching a login email, in some tenant. `Debug` hides the hash.
#[derive(Clone)]
pub struct LoginCandidate {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub password_hash: Option<String>,
    pub role: Role,
    pub deactivated: bool,
}

impl std::fmt::Debug for LoginCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("deactivated", &self.deactivated)
            .finish_non_exhaustive()
    }
}

/// Pre-tenant calls. Each is one call of a SECURITY DEFINER function; nothing else can run on
/// this path.
impl AppDb {
    /// Every account with this email, across tenants (emails are unique per tenant only).
    pub async fn login_candidates(&self, email: &str) -> DbResult<Vec<LoginCandidate>> {
        let client = self.pre_tenant_client().await?;
        let rows = client
            .query(
                "select tenant_id, user_id, password_hash, role, deactivated from zixly_login_candidates($1)",
                &[&email],
            )
            .await
            .ctx("looking up login candidates")?;
        rows.iter()
            .map(|r| {
                Ok(LoginCandidate {
                    tenant_id: r.get(0),
                    user_id: r.get(1),
                    password_hash: r.get(2),
                    role: role_of(r, 3)?,
                    deactivated: r.get(4),
                })
            })
            .collect()
    }

    /// Seconds until every key in `keys` allows another login attempt (0 = now).
    pub async fn login_throttle_wait(&self, keys: &[[u8; 32]]) -> DbResult<u32> {
        let client = self.pre_tenant_client().await?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let wait: i32 = client
            .query_one("select zixly_login_throttle_wait($1)", &[&keys])
            .await
            .ctx("reading login throttling")?
            .get(0);
        Ok(wait.max(0) as u32)
    }

    /// Records a failed attempt for `key`; returns the lock in seconds it now carries (0 = none).
    pub async fn login_throttle_fail(
        &self,
        key: &[u8; 32],
        limit: i32,
        window_secs: i32,
        lock_secs: i32,
    ) -> DbResult<u32> {
        let client = self.pre_tenant_client().await?;
        let lock: i32 = client
            .query_one(
                "select zixly_login_throttle_fail($1, $2, $3, $4)",
                &[&key.as_slice(), &limit, &window_secs, &lock_secs],
            )
            .await
            .ctx("recording a failed login")?
            .get(0);
        Ok(lock.max(0) as u32)
    }

    /// Forgets the failures recorded for `key`.
    pub async fn login_throttle_clear(&self, key: &[u8; 32]) -> DbResult<()> {
        let client = self.pre_tenant_client().await?;
        client
            .execute("select zixly_login_throttle_clear($1)", &[&key.as_slice()])
            .await
            .ctx("clearing login throttling")?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A browser or API session created by logging in.
    Session,
    /// A named personal API token for scripts.
    Personal,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Personal => "personal",
        }
    }

    fn parse(s: &str) -> DbResult<Self> {
        match s {
            "session" => Ok(TokenKind::Session),
            "personal" => Ok(TokenKind::Personal),
            other => Err(DbError::Config(format!("unexpected token kind `{other}`"))),
        }
    }
}

pub struct NewToken<'a> {
    pub user_id: Uuid,
    pub kind: TokenKind,
    pub name: Option<&'a str>,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub created_addr: Option<IpAddr>,
}

/// Who a valid token authenticates (the user's *current* role and state, not the ones at issue).
#[derive(Debug, Clone)]
pub struct TokenPrincipal {
    pub token_id: Uuid,
    pub kind: TokenKind,
    pub user_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// A token as listed to its owner (never the hash).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: TokenKind,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn token_info(r: &Row) -> DbResult<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0),
        kind: TokenKind::parse(r.get(1))?,
        name: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    })
}

const TOKEN_COLUMNS: &str = "id, kind, name, created_at, expires_at, last_used_at, revoked_at";

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const INVITATION_COLUMNS: &str =
    "id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

fn invitation(r: &Row) -> DbResult<Invitation> {
    Ok(Invitation {
        id: r.get(0),
        email: r.get(1),
        role: role_of(r, 2)?,
        invited_by: r.get(3),
        created_at: r.get(4),
        expires_at: r.get(5),
        accepted_at: r.get(6),
        revoked_at: r.get(7),
    })
}

impl TenantTx {
    pub async fn insert_auth_token(&self, t: &NewToken<'_>) -> DbResult<Uuid> {
        let id = Uuid::now_v7();
        self.client()
            .execute(
                "insert into auth_tokens (tenant_id, id, user_id, kind, name, token_hash, expires_at, created_addr)
                 values ($8, $1, $2, $3, $4, $5, $6, $7)",
                &[&id, &t.user_id, &t.kind.as_str(), &t.name.map(str::trim), &t.token_hash, &t.expires_at, &t.created_addr, &self.tenant_id()],
            )
            .await
            .ctx("creating a token")?;
        Ok(id)
    }

    /// The principal of a live token (not revoked, not expired, user not deactivated). Refreshes
    /// `last_used_at` when it is older than `touch_after_secs` (one write per token per interval,
    /// not one per request).
    pub async fn authenticate_token(
        &self,
        token_hash: &[u8],
        touch_after_secs: i32,
    ) -> DbResult<Option<TokenPrincipal>> {
        let row = self
            .client()
            .query_opt(
                "with hit as (
                     select t.id, t.kind, t.user_id, u.email, u.display_name, u.role, t.expires_at,
                            t.last_used_at
                       from auth_tokens t
                       join users u on u.tenant_id = t.tenant_id and u.id = t.user_id
                      where t.tenant_id = $3 and t.token_hash = $1
                        and t.revoked_at is null and t.expires_at > now() and u.deactivated_at is null
                 ), touched as (
                     update auth_tokens t set last_used_at = now()
                       from hit
                      where t.tenant_id = $3 and t.id = hit.id
                        and (hit.last_used_at is null
                             or hit.last_used_at < now() - make_interval(secs => $2::int))
                 )
                 select id, kind, user_id, email, display_name, role, expires_at from hit",
                &[&token_hash, &touch_after_secs, &self.tenant_id()],
            )
            .await
            .ctx("authenticating a token")?;
        row.map(|r| {
            Ok(TokenPrincipal {
                token_id: r.get(0),
                kind: TokenKind::parse(r.get(1))?,
                user_id: r.get(2),
                email: r.get(3),
                display_name: r.get(4),
                role: role_of(&r, 5)?,
                expires_at: r.get(6),
            })
        })
        .transpose()
    }

    /// A user's live personal tokens, newest first.
    pub async fn list_personal_tokens(&self, user_id: Uuid) -> DbResult<Vec<TokenInfo>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {TOKEN_COLUMNS} from auth_tokens
                      where tenant_id = $2 and user_id = $1 and kind = 'personal'
                        and revoked_at is null and expires_at > now()
                      order by id desc"
                ),
                &[&user_id, &self.tenant_id()],
            )
            .await
            .ctx("listing tokens")?;
        rows.iter().map(token_info).collect()
    }

    /// Revokes one of `user_id`'s personal tokens. `NotFound` when it is not theirs or already gone.
    pub async fn revoke_personal_token(
        &self,
        user_id: Uuid,
        token_id: Uuid,
    ) -> DbResult<TokenInfo> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update auth_tokens set revoked_at = now()
                      where tenant_id = $3 and id = $1 and user_id = $2 and kind = 'personal'
                        and revoked_at is null
                      returning {TOKEN_COLUMNS}"
                ),
                &[&token_id, &user_id, &self.tenant_id()],
            )
            .await
            .ctx("revoking a token")?;
        row.as_ref()
            .map(token_info)
            .transpose()?
            .ok_or(DbError::NotFound("token"))
    }

    /// Revokes the token with this hash (logout). Returns whether a live token was revoked.
    pub async fn revoke_token_by_hash(&self, token_hash: &[u8]) -> DbResult<bool> {
        let n = self
            .client()
            .execute(
                "update auth_tokens set revoked_at = now()
                  where tenant_id = $2 and token_hash = $1 and revoked_at is null",
                &[&token_hash, &self.tenant_id()],
            )
            .await
            .ctx("revoking a token")?;
        Ok(n > 0)
    }

    /// Revokes every live token of a user (deactivation, password change), optionally keeping one.
    pub async fn revoke_user_tokens(&self, user_id: Uuid, keep: Option<Uuid>) -> DbResult<u64> {
        self.client()
            .execute(
                "update auth_tokens set revoked_at = now()
                  where tenant_id = $3 and user_id = $1 and revoked_at is null
                    and ($2::uuid is null or id <> $2)",
                &[&user_id, &keep, &self.tenant_id()],
            )
            .await
            .ctx("revoking a user's tokens")
    }

    /// Creates an invitation, revoking any pending one for the same email first.
    pub async fn insert_invitation(
        &self,
        email: &str,
        role: Role,
        token_hash: &[u8],
        invited_by: Option<Uuid>,
        expires_at: DateTime<Utc>,
    ) -> DbResult<Invitation> {
        let email = EmailAddress::normalise(email);
        self.client()
            .execute(
                "update invitations set revoked_at = now()
                  where tenant_id = $2 and email = $1 and accepted_at is null and revoked_at is null",
                &[&email, &self.tenant_id()],
            )
            .await
            .ctx("replacing a pending invitation")?;
        let row = self
            .client()
            .query_one(
                &format!(
                    "insert into invitations (tenant_id, id, email, role, token_hash, invited_by, expires_at)
                     values ($7, $1, $2, $3, $4, $5, $6)
                     returning {INVITATION_COLUMNS}"
                ),
                &[&Uuid::now_v7(), &email, &role, &token_hash, &invited_by, &expires_at, &self.tenant_id()],
            )
            .await
            .ctx("creating an invitation")?;
        invitation(&row)
    }

    /// Pending (not accepted, not revoked, not expired) invitations, newest first.
    pub async fn list_pending_invitations(&self) -> DbResult<Vec<Invitation>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {INVITATION_COLUMNS} from invitations
                      where tenant_id = $1 and accepted_at is null and revoked_at is null
                        and expires_at > now()
                      order by id desc"
                ),
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing invitations")?;
        rows.iter().map(invitation).collect()
    }

    /// Revokes a pending invitation. `NotFound` when there is no such pending invitation.
    pub async fn revoke_invitation(&self, id: Uuid) -> DbResult<Invitation> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update invitations set revoked_at = now()
                      where tenant_id = $2 and id = $1 and accepted_at is null and revoked_at is null
                      returning {INVITATION_COLUMNS}"
                ),
                &[&id, &self.tenant_id()],
            )
            .await
            .ctx("revoking an invitation")?;
        row.as_ref()
            .map(invitation)
            .transpose()?
            .ok_or(DbError::NotFound("invitation"))
    }

    /// Marks the invitation with this hash accepted, if it is pending and unexpired, and returns it.
    /// Single use: a second call (or a concurrent one) finds nothing.
    pub async fn claim_invitation(&self, token_hash: &[u8]) -> DbResult<Option<Invitation>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update invitations set accepted_at = now()
                      where tenant_id = $2 and token_hash = $1
                        and accepted_at is null and revoked_at is null and expires_at > now()
                      returning {INVITATION_COLUMNS}"
                ),
                &[&token_hash, &self.tenant_id()],
            )
            .await
            .ctx("accepting an invitation")?;
        row.as_ref().map(invitation).transpose()
    }

    /// Records which user an accepted invitation created.
    pub async fn set_invitation_user(&self, invitation_id: Uuid, user_id: Uuid) -> DbResult<()> {
        self.client()
            .execute(
                "update invitations set accepted_user_id = $2 where tenant_id = $3 and id = $1",
                &[&invitation_id, &user_id, &self.tenant_id()],
            )
            .await
            .ctx("recording an invitation's user")?;
        Ok(())
    }

    /// Creates a password-reset link for a user, replacing their unused one if any: at most one
    /// outstanding link per user (`password_resets_outstanding_key`, migrations/0010), so an
    /// older link stops working the moment a newer one is issued, and two issued at once leave
    /// one (the second waits on the index, then replaces the first).
    pub async fn insert_password_reset(
        &self,
        user_id: Uuid,
        token_hash: &[u8],
        requested_by: Option<Uuid>,
        expires_at: DateTime<Utc>,
    ) -> DbResult<Uuid> {
        let row = self
            .client()
            .query_one(
                "insert into password_resets (tenant_id, id, user_id, token_hash, requested_by, expires_at)
                 values ($6, $1, $2, $3, $4, $5)
                 on conflict (tenant_id, user_id) where used_at is null do update
                    set id = excluded.id, token_hash = excluded.token_hash,
                        requested_by = excluded.requested_by, created_at = excluded.created_at,
                        expires_at = excluded.expires_at
                 returning id",
                &[&Uuid::now_v7(), &user_id, &token_hash, &requested_by, &expires_at, &self.tenant_id()],
            )
            .await
            .ctx("creating a password reset")?;
        Ok(row.get(0))
    }

    /// Uses the reset link with this hash if it is unused, unexpired and its user active; returns
    /// the user. Single use; setting the password afterwards removes any other unused link of the
    /// user (trigger `password_resets_forget_on_password_change`, migrations/0010).
    pub async fn claim_password_reset(&self, token_hash: &[u8]) -> DbResult<Option<Uuid>> {
        let row = self
            .client()
            .query_opt(
                "update password_resets r set used_at = now()
                   from users u
                  where r.tenant_id = $2 and r.token_hash = $1
                    and r.used_at is null and r.expires_at > now()
                    and u.tenant_id = r.tenant_id and u.id = r.user_id and u.deactivated_at is null
                  returning r.user_id",
                &[&token_hash, &self.tenant_id()],
            )
            .await
            .ctx("using a password reset")?;
        Ok(row.map(|r| r.get(0)))
    }
}
