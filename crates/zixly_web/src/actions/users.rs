//! The user-management actions of `api/users.rs` and the team page (`pages/team.rs`).
//!
//! The tenant always keeps at least one active ADMIN: demoting, deactivating or deleting the last
//! one is refused with 409 `last_admin` ([`keep_an_admin`], under a lock of the active ADMINs so
//! two concurrent changes cannot both pass). Links (invitations, resets) go out by mail when a
//! mailer is configured; otherwise — or when sending fails — the caller gets the link to pass on
//! ([`Delivery::Link`]).

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;
use zixly_db::queries::auth::Invitation;
use zixly_db::queries::users::UserRow;
use zixly_db::TenantTx;
use zixly_domain::{EmailAddress, Role};

use crate::api::auth::{deliver, issue_password_reset, reset_mail_body};
use crate::auth::{issue_secret, Admin, Auth, SecretKind};
use crate::error::{ApiError, ApiResult, ErrorDetail};
use crate::AppState;

/// The longest display name, in characters.
pub(crate) const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// How a link reached (or must reach) its recipient.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Sent by mail.
    Email,
    /// Not sent (no mailer, or sending failed): the one-time link, to be shown once.
    Link(String),
}

impl Delivery {
    /// `email` or `link`, as the API and the audit rows name it.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Delivery::Email => "email",
            Delivery::Link(_) => "link",
        }
    }
}

/// Sends `body` to `to` when a mailer is configured and answers how the link went out.
pub(crate) async fn deliver_link(
    state: &AppState,
    to: &str,
    subject: &str,
    body: &str,
    link: String,
) -> Delivery {
    if state.mailer.is_some() && deliver(state, to, subject, body).await.is_ok() {
        Delivery::Email
    } else {
        Delivery::Link(link)
    }
}

/// Refuses a change that would leave the tenant without an active ADMIN: `user_id` is the
/// active ADMIN about to be demoted, deactivated or deleted.
pub(crate) async fn keep_an_admin(tx: &TenantTx, user_id: Uuid) -> ApiResult<()> {
    let admins = tx.lock_active_admins().await?;
    if admins == [user_id] {
        return Err(ApiError::conflict(
            "last_admin",
            "the tenant must keep at least one active ADMIN",
        ));
    }
    Ok(())
}

/// Whether changing `before` away from an active ADMIN needs [`keep_an_admin`].
fn is_active_admin(before: &UserRow) -> bool {
    before.role == Role::Admin && before.deactivated_at.is_none()
}

/// A created invitation and how its link went out.
#[derive(Debug)]
pub(crate) struct Invited {
    pub invitation: Invitation,
    pub delivery: Delivery,
    pub expires_at: DateTime<Utc>,
}

/// Invites `email` with `role`: a single-use link valid `invitation_ttl`, replacing a pending
/// invitation of the same email; 409 `conflict` (detail on `email`) when the email already has
/// an account. Audited as `user.invite`; the mail is sent after the commit.
pub(crate) async fn invite(
    state: &AppState,
    auth: &Auth<Admin>,
    email: &EmailAddress,
    role: Role,
) -> ApiResult<Invited> {
    let email = email.as_str();
    let tx = auth.begin().await?;
    if tx.user_email_exists(email).await? {
        return Err(
            ApiError::conflict("conflict", "a user with this email already exists").with_details(
                vec![ErrorDetail::field(
                    "email",
                    "a user with this email already exists",
                )],
            ),
        );
    }
    let secret = issue_secret(SecretKind::Invitation, auth.tenant_id());
    let expires_at = Utc::now() + state.config.invitation_ttl;
    let invitation = tx
        .insert_invitation(email, role, &secret.hash, Some(auth.user_id()), expires_at)
        .await?;
    tx.append_audit(&auth.audit(
        "user.invite",
        "invitation",
        Some(invitation.id.to_string()),
        json!({"email": email, "role": role.as_str(), "expires_at": expires_at}),
    ))
    .await?;
    tx.commit().await?;
    let url = state
        .config
        .link(&format!("accept-invitation#token={}", secret.token));
    let body = format!(
        "{} invited you to Zixly as {}.\n\nSet your password here (valid until {}):\n{url}\n",
        auth.principal().email,
        role.as_str(),
        expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    let delivery = deliver_link(state, email, "You are invited to Zixly", &body, url).await;
    Ok(Invited {
        invitation,
        delivery,
        expires_at,
    })
}

/// What [`update_user`] changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub(crate) struct UserChange<'a> {
    pub role: Option<Role>,
    /// An empty string clears the name.
    pub display_name: Option<&'a str>,
}

/// Changes a user's role or display name (422 on `display_name` over
/// [`MAX_DISPLAY_NAME_CHARS`]; 409 `last_admin`). Audited as `user.update` with the fields that
/// changed (`{"role": {"from", "to"}}`, `{"display_name": {"from", "to"}}`); the user's cached
/// tokens are forgotten so a new role applies at once.
pub(crate) async fn update_user(
    auth: &Auth<Admin>,
    id: Uuid,
    change: UserChange<'_>,
) -> ApiResult<UserRow> {
    if let Some(name) = change.display_name {
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(ApiError::invalid_field(
                "display_name",
                format!("must be at most {MAX_DISPLAY_NAME_CHARS} characters"),
            ));
        }
    }
    let tx = auth.begin().await?;
    let before = tx.get_user(id).await?;
    if is_active_admin(&before) && change.role.is_some_and(|r| r != Role::Admin) {
        keep_an_admin(&tx, id).await?;
    }
    let after = tx.update_user(id, change.role, change.display_name).await?;
    let mut changes = serde_json::Map::new();
    if before.role != after.role {
        changes.insert(
            "role".into(),
            json!({"from": before.role.as_str(), "to": after.role.as_str()}),
        );
    }
    if before.display_name != after.display_name {
        changes.insert(
            "display_name".into(),
            json!({"from": before.display_name, "to": after.display_name}),
        );
    }
    tx.append_audit(&auth.audit(
        "user.update",
        "user",
        Some(id.to_string()),
        serde_json::Value::Object(changes),
    ))
    .await?;
    tx.commit().await?;
    auth.forget_user_tokens(auth.tenant_id(), id);
    Ok(after)
}

/// Deactivates a user (soft): revokes their sessions and tokens at once (409 `last_admin`).
/// Audited as `user.deactivate` with `tokens_revoked`.
pub(crate) async fn deactivate(auth: &Auth<Admin>, id: Uuid) -> ApiResult<UserRow> {
    let tx = auth.begin().await?;
    let before = tx.get_user(id).await?;
    if is_active_admin(&before) {
        keep_an_admin(&tx, id).await?;
    }
    let after = tx.set_user_deactivated(id, true).await?;
    let revoked = tx.revoke_user_tokens(id, None).await?;
    tx.append_audit(&auth.audit(
        "user.deactivate",
        "user",
        Some(id.to_string()),
        json!({"tokens_revoked": revoked}),
    ))
    .await?;
    tx.commit().await?;
    auth.forget_user_tokens(auth.tenant_id(), id);
    Ok(after)
}

/// Reactivates a deactivated user (they sign in again with their password; their old tokens stay
/// revoked). Audited as `user.reactivate`.
pub(crate) async fn reactivate(auth: &Auth<Admin>, id: Uuid) -> ApiResult<UserRow> {
    let tx = auth.begin().await?;
    let after = tx.set_user_deactivated(id, false).await?;
    tx.append_audit(&auth.audit("user.reactivate", "user", Some(id.to_string()), json!({})))
        .await?;
    tx.commit().await?;
    Ok(after)
}

/// A password-reset link issued by an ADMIN for one of the tenant's users.
#[derive(Debug)]
pub(crate) struct ResetIssued {
    /// The user's email (the page names them; the API does not repeat it).
    pub email: String,
    pub delivery: Delivery,
    pub expires_at: DateTime<Utc>,
}

/// Issues a password-reset link for user `id` (404 when not in the tenant) and mails it, or
/// hands it back when there is no mailer. Audited as `user.password_reset_issue` after delivery
/// (its own transaction: the link exists either way) so the row records how the link went out.
pub(crate) async fn issue_reset_link(
    state: &AppState,
    auth: &Auth<Admin>,
    id: Uuid,
) -> ApiResult<ResetIssued> {
    let tx = auth.begin().await?;
    let user = tx.get_user(id).await?;
    let link = issue_password_reset(state, &tx, id, Some(auth.user_id())).await?;
    tx.commit().await?;
    let body = reset_mail_body(&link.url, link.expires_at);
    let delivery = deliver_link(
        state,
        &user.email,
        "Reset your Zixly password",
        &body,
        link.url,
    )
    .await;
    let tx = auth.begin().await?;
    tx.append_audit(&auth.audit(
        "user.password_reset_issue",
        "user",
        Some(id.to_string()),
        json!({"delivery": delivery.as_str()}),
    ))
    .await?;
    tx.commit().await?;
    Ok(ResetIssued {
        email: user.email,
        delivery,
        expires_at: link.expires_at,
    })
}

/// Revokes a pending invitation (404 when there is none with this id). Audited as
/// `invitation.revoke`.
pub(crate) async fn revoke_invitation(auth: &Auth<Admin>, id: Uuid) -> ApiResult<Invitation> {
    let tx = auth.begin().await?;
    let invitation = tx.revoke_invitation(id).await?;
    tx.append_audit(&auth.audit(
        "invitation.revoke",
        "invitation",
        Some(id.to_string()),
        json!({"email": invitation.email}),
    ))
    .await?;
    tx.commit().await?;
    Ok(invitation)
}
