//! The caller's own account: change the password, create and revoke personal API tokens. Called
//! by `api/me.rs` (`/me/password`, `/me/tokens`) and the account page (`pages/account.rs`).

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;
use zixly_db::queries::auth::{NewToken, TokenInfo, TokenKind};
use zixly_domain::password::verify_password;

use crate::api::auth::{check_new_password, hash_new_password, LoginThrottle};
use crate::auth::{issue_secret, Auth, SecretKind, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};
use crate::AppState;

/// The longest token name, in characters.
pub(crate) const MAX_TOKEN_NAME_CHARS: usize = 100;
/// A token's lifetime when none is asked for, and the longest one, in days.
pub(crate) const DEFAULT_TOKEN_DAYS: u32 = 90;
pub(crate) const MAX_TOKEN_DAYS: u32 = 365;

/// Changes the caller's password after checking the current one (422 on `current_password` when
/// it does not match, on `new_password` when the policy refuses it; 429 while throttled — a wrong
/// current password counts as a failed login, on the same keys). Revokes every other session and
/// API token of the caller and every outstanding reset link; the credential of this request stays
/// valid. Audited as `user.password_change`.
pub(crate) async fn change_password(
    state: &AppState,
    auth: &Auth<Viewer>,
    current_password: String,
    new_password: String,
) -> ApiResult<()> {
    // Cheap checks first: a new password that cannot be accepted spends no argon2 work.
    check_new_password("new_password", &new_password)?;
    let throttle = LoginThrottle::new(&auth.principal().email, auth.ctx().client_addr);
    throttle.check(state).await?;
    let current = {
        let tx = auth.begin().await?;
        let current = tx.user_password_hash(auth.user_id()).await?;
        tx.commit().await?;
        current.unwrap_or_default()
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&current_password, &current))
        .await
        .unwrap_or(false);
    if !ok {
        let lock = throttle.fail(state).await?;
        tracing::info!(locked_for_secs = lock, "wrong current password");
        return Err(ApiError::invalid_field(
            "current_password",
            "does not match",
        ));
    }
    throttle.succeed(state).await?;
    let hash = hash_new_password("new_password", new_password).await?;
    let tx = auth.begin().await?;
    tx.set_user_password(auth.user_id(), &hash).await?;
    let revoked = tx
        .revoke_user_tokens(auth.user_id(), Some(auth.principal().token_id))
        .await?;
    tx.append_audit(&auth.audit(
        "user.password_change",
        "user",
        Some(auth.user_id().to_string()),
        json!({"tokens_revoked": revoked}),
    ))
    .await?;
    tx.commit().await?;
    auth.forget_user_tokens(auth.tenant_id(), auth.user_id());
    Ok(())
}

/// The caller's personal API tokens (never their secrets).
pub(crate) async fn list_tokens(auth: &Auth<Viewer>) -> ApiResult<Vec<TokenInfo>> {
    let tx = auth.begin().await?;
    let tokens = tx.list_personal_tokens(auth.user_id()).await?;
    tx.commit().await?;
    Ok(tokens)
}

/// A created token: the secret exists only here, to be shown once.
pub(crate) struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

/// Creates a personal API token acting with the caller's role. `name` is trimmed, 1 to
/// [`MAX_TOKEN_NAME_CHARS`] characters; `expires_in_days` 1 to [`MAX_TOKEN_DAYS`] (default
/// [`DEFAULT_TOKEN_DAYS`]); both problems are reported at once (422). Audited as `token.create`.
pub(crate) async fn create_token(
    auth: &Auth<Viewer>,
    name: &str,
    expires_in_days: Option<u32>,
) -> ApiResult<CreatedToken> {
    let name = name.trim();
    let mut problems = Vec::new();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        problems.push(ErrorDetail::field(
            "name",
            format!("must be 1 to {MAX_TOKEN_NAME_CHARS} characters"),
        ));
    }
    let days = expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        problems.push(ErrorDetail::field(
            "expires_in_days",
            format!("must be between 1 and {MAX_TOKEN_DAYS}"),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let secret = issue_secret(SecretKind::Personal, auth.tenant_id());
    let expires_at: DateTime<Utc> = Utc::now() + chrono::Duration::days(i64::from(days));
    let tx = auth.begin().await?;
    let id = tx
        .insert_auth_token(&NewToken {
            user_id: auth.user_id(),
            kind: TokenKind::Personal,
            name: Some(name),
            token_hash: &secret.hash,
            expires_at,
            created_addr: auth.ctx().client_addr,
        })
        .await?;
    tx.append_audit(&auth.audit(
        "token.create",
        "token",
        Some(id.to_string()),
        json!({"name": name, "expires_at": expires_at}),
    ))
    .await?;
    let info = tx
        .list_personal_tokens(auth.user_id())
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(ApiError::internal)?;
    tx.commit().await?;
    Ok(CreatedToken {
        token: secret.token,
        info,
    })
}

/// Revokes one of the caller's personal tokens (404 when it is not theirs or not there).
/// Audited as `token.revoke`.
pub(crate) async fn revoke_token(auth: &Auth<Viewer>, id: Uuid) -> ApiResult<TokenInfo> {
    let tx = auth.begin().await?;
    let token = tx.revoke_personal_token(auth.user_id(), id).await?;
    tx.append_audit(&auth.audit(
        "token.revoke",
        "token",
        Some(id.to_string()),
        json!({"name": token.name}),
    ))
    .await?;
    tx.commit().await?;
    auth.forget_token(auth.tenant_id(), id);
    Ok(token)
}
