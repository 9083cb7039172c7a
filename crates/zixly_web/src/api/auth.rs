//! Public authentication routes: login, logout, accepting an invitation, password reset.
//!
//! Login (`POST /auth/login`):
//! 1. throttling first ([`LoginThrottle`]): if the account-and-address key, the account key or the
//!    client-address key is locked, answer 429 with `Retry-After` — before any lookup, so the
//!    answer is the same for known and unknown emails;
//! 2. `zixly_login_candidates(email)` returns the accounts with that email in every tenant; the
//!    password is verified (argon2id, on the blocking pool) against each candidate, and dummy
//!    hashes make up the difference to [`VERIFICATIONS_PER_LOGIN`]: an unknown email, a
//!    deactivated account, and an email in one tenant or in two all cost the same work;
//! 3. a failure counts against all three keys and answers 401 `invalid_credentials` (same message
//!    for unknown email, wrong password and deactivated account);
//! 4. success creates a session token (body + HttpOnly cookie), stamps `last_login_at` and
//!    appends an `auth.login` audit row. If the same email and password match in several tenants,
//!    the client must name one with `tenant_id` (409 `tenant_required` lists the choices).

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::auth::{LoginCandidate, NewToken, TokenKind};
use zixly_db::TenantTx;
use zixly_domain::password::{check_password, hash_password, verify_password, PasswordError};
use zixly_domain::EmailAddress;

use crate::api::me::UserView;
use crate::auth::{
    clear_session_cookie_header, issue_secret, parse_secret, session_cookie_header, sha256,
    MaybeAuth, RequestCtx, SecretKind,
};
use crate::error::{ApiError, ApiJson, ApiResult, ErrorBody, ErrorDetail};
use crate::mail::Email;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(accept_invitation))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Only needed when the same email and password exist in several tenants.
    pub tenant_id: Option<Uuid>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A new session: the token (also set as the session cookie) and the user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    /// Bearer token for `Authorization: Bearer ...`; the same value is in the session cookie.
    pub token: String,
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

/// Log in with email and password
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; also sets the session cookie", body = SessionResponse),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 409, description = "The credentials match in several tenants: pass `tenant_id`", body = ErrorBody),
        (status = 422, description = "Missing fields", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ctx: RequestCtx,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let email = EmailAddress::normalise(&req.email);
    let mut missing = Vec::new();
    if email.is_empty() {
        missing.push(ErrorDetail::field("email", "required"));
    }
    if req.password.is_empty() {
        missing.push(ErrorDetail::field("password", "required"));
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    let throttle = LoginThrottle::new(&email, ctx.client_addr);
    throttle.check(&state).await?;

    let candidates: Vec<LoginCandidate> = state
        .db
        .login_candidates(&email)
        .await?
        .into_iter()
        .filter(|c| req.tenant_id.is_none_or(|t| t == c.tenant_id))
        .collect();
    let password = req.password;
    let (matches, verified) =
        tokio::task::spawn_blocking(move || verify_candidates(&password, candidates))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password verification task failed");
                ApiError::internal()
            })?;
    state.metrics.count_password_verifications(verified);

    let user = match matches.as_slice() {
        [] => {
            let lock = throttle.fail(&state).await?;
            tracing::info!(locked_for_secs = lock, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "email or password is incorrect",
            ));
        }
        [one] => one.clone(),
        several => {
            let tenants: Vec<ErrorDetail> = several
                .iter()
                .map(|c| {
                    ErrorDetail::field(
                        "tenant_id",
                        format!("credentials match in tenant {}", c.tenant_id),
                    )
                })
                .collect();
            return Err(ApiError::conflict(
                "tenant_required",
                "these credentials match several tenants: pass tenant_id",
            )
            .with_details(tenants));
        }
    };
    throttle.succeed(&state).await?;

    let tx = state.db.begin_tenant(user.tenant_id).await?;
    tx.record_login(user.user_id).await?;
    let session = create_session(&state, &tx, &ctx, user.user_id).await?;
    let row = tx.get_user(user.user_id).await?;
    tx.append_audit(&ctx.audit(
        Some((user.user_id, &row.email)),
        "auth.login",
        "user",
        Some(user.user_id.to_string()),
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok(session_response(
        &state,
        session,
        UserView::new(user.tenant_id, row),
        StatusCode::OK,
    ))
}

/// Password verifications per login attempt, whatever the number of candidates (up to this
/// many): an email in one tenant, in two or in none costs the same argon2 work, so the time of
/// the answer does not tell how many tenants know it. Three covers a person in up to three
/// tenants; beyond that every candidate is still verified (the time then shows "more than
/// three", never which tenants). Each login costs three verifications' CPU: the throttle bounds
/// how often one client can ask for it.
pub const VERIFICATIONS_PER_LOGIN: usize = 3;

/// The candidates whose password matches, and how many hashes were verified. A deactivated or
/// password-less candidate is verified against the dummy hash (it can never match), and dummy
/// verifications pad the work to [`VERIFICATIONS_PER_LOGIN`].
fn verify_candidates(
    password: &str,
    candidates: Vec<LoginCandidate>,
) -> (Vec<LoginCandidate>, usize) {
    let mut verified = 0;
    let mut matches = Vec::new();
    for c in candidates {
        let usable = c.password_hash.as_deref().filter(|_| !c.deactivated);
        let ok = verify_password(password, usable.unwrap_or_else(|| dummy_hash()));
        verified += 1;
        if ok && usable.is_some() {
            matches.push(c);
        }
    }
    while verified < VERIFICATIONS_PER_LOGIN {
        let _ = verify_password(password, dummy_hash());
        verified += 1;
    }
    (matches, verified)
}

/// Failed-attempt throttling of one account from one client address (see
/// `migrations/0002_auth.sql`). Three keys, after GitLab and Devise:
/// - account + address: the tight limit (`account_address_limit`), so one client guessing one
///   account is stopped quickly;
/// - account: a much higher ceiling (`account_limit`) across all addresses, so an attacker at one
///   address cannot lock the real user out from another, while a distributed guess still trips;
/// - address: across accounts (`address_limit`), so one client cannot spray many accounts.
///
/// Used by login and by `POST /me/password` (a wrong current password is a failed attempt on the
/// same keys: a stolen session cannot guess the password faster than the login form can).
pub(crate) struct LoginThrottle {
    account: [u8; 32],
    account_address: [u8; 32],
    address: Option<[u8; 32]>,
}

impl LoginThrottle {
    /// `email` as typed (trimmed, lowercased): unknown emails are throttled like known ones, so a
    /// 429 reveals nothing. Keys are SHA-256: no email or address is stored in clear.
    pub(crate) fn new(email: &str, addr: Option<std::net::IpAddr>) -> Self {
        let addr_part = addr.map_or_else(|| "-".to_string(), |a| a.to_string());
        LoginThrottle {
            account: sha256(format!("account:{email}").as_bytes()),
            // The length prefix keeps `email` and address apart whatever the email contains.
            account_address: sha256(
                format!("account-addr:{}:{email}:{addr_part}", email.len()).as_bytes(),
            ),
            address: addr.map(|a| sha256(format!("addr:{a}").as_bytes())),
        }
    }

    /// 429 with `Retry-After` while any of the keys is locked.
    pub(crate) async fn check(&self, state: &AppState) -> ApiResult<()> {
        let keys: Vec<[u8; 32]> = [self.account_address, self.account]
            .into_iter()
            .chain(self.address)
            .collect();
        let wait = state.db.login_throttle_wait(&keys).await?;
        if wait > 0 {
            return Err(ApiError::too_many_requests(u64::from(wait)));
        }
        Ok(())
    }

    /// Records a failed attempt on every key; returns the longest lock it now carries (seconds).
    pub(crate) async fn fail(&self, state: &AppState) -> ApiResult<u32> {
        let t = &state.config.throttle;
        let secs = |d: std::time::Duration| d.as_secs().min(i32::MAX as u64) as i32;
        let (window, lock) = (secs(t.window), secs(t.lock));
        let mut keys = vec![
            (self.account_address, t.account_address_limit),
            (self.account, t.account_limit),
        ];
        keys.extend(self.address.map(|k| (k, t.address_limit)));
        let mut longest = 0;
        for (key, limit) in keys {
            longest = longest.max(
                state
                    .db
                    .login_throttle_fail(&key, limit, window, lock)
                    .await?,
            );
        }
        Ok(longest)
    }

    /// After a success: forgets the account's failures, from this address and in total. The
    /// address key is kept (one valid account must not reset an attacker's address budget), and
    /// so are the account-and-address keys of *other* addresses (an attacker's stays locked).
    pub(crate) async fn succeed(&self, state: &AppState) -> ApiResult<()> {
        state.db.login_throttle_clear(&self.account_address).await?;
        state.db.login_throttle_clear(&self.account).await?;
        Ok(())
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dummy password for timing").expect("hashing a constant"))
}

pub(crate) struct NewSession {
    token: String,
    expires_at: DateTime<Utc>,
}

pub(crate) async fn create_session(
    state: &AppState,
    tx: &TenantTx,
    ctx: &RequestCtx,
    user_id: Uuid,
) -> ApiResult<NewSession> {
    let secret = issue_secret(SecretKind::Session, tx.tenant_id());
    let expires_at = Utc::now() + state.config.session_ttl;
    tx.insert_auth_token(&NewToken {
        user_id,
        kind: TokenKind::Session,
        name: None,
        token_hash: &secret.hash,
        expires_at,
        created_addr: ctx.client_addr,
    })
    .await?;
    Ok(NewSession {
        token: secret.token,
        expires_at,
    })
}

fn session_response(
    state: &AppState,
    session: NewSession,
    user: UserView,
    status: StatusCode,
) -> Response {
    let cookie = session_cookie_header(
        &session.token,
        state.config.session_ttl,
        state.config.cookie_secure,
    );
    let body = SessionResponse {
        token: session.token,
        token_type: "Bearer".into(),
        expires_at: session.expires_at,
        user,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Log out: revoke the session or token used and clear the cookie
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()),
    responses((status = 204, description = "Logged out (also when the credential was already invalid)")))]
async fn logout(State(state): State<AppState>, MaybeAuth(auth): MaybeAuth) -> ApiResult<Response> {
    if let Some(auth) = auth {
        let tx = auth.begin().await?;
        if tx.revoke_token_by_hash(auth.token_hash()).await? {
            tx.append_audit(&auth.audit(
                "auth.logout",
                "user",
                Some(auth.user_id().to_string()),
                json!({}),
            ))
            .await?;
        }
        tx.commit().await?;
        state.token_cache.forget_hash(auth.token_hash());
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        clear_session_cookie_header(state.config.cookie_secure),
    );
    Ok(response)
}

/// Validates a new password; the 422 names `field`.
pub(crate) fn check_new_password(field: &str, password: &str) -> ApiResult<()> {
    check_password(password).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

/// Hashes on the blocking pool (argon2 takes tens of milliseconds).
pub(crate) async fn hash_new_password(field: &'static str, password: String) -> ApiResult<String> {
    check_new_password(field, &password)?;
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e @ (PasswordError::TooShort | PasswordError::TooLong))) => {
            Err(ApiError::invalid_field(field, e.to_string()))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "password hashing failed");
            Err(ApiError::internal())
        }
        Err(e) => {
            tracing::error!(error = %e, "password hashing task failed");
            Err(ApiError::internal())
        }
    }
}

fn invalid_link() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_token",
        "this link is invalid, expired or already used",
    )
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation link.
    pub token: String,
    pub password: String,
    pub display_name: Option<String>,
}

/// Accept an invitation: set a password and log in
#[utoipa::path(post, path = "/auth/accept-invitation", tag = "auth", security(()),
    request_body = AcceptInvitationRequest,
    responses(
        (status = 201, description = "Account created and logged in; sets the session cookie", body = SessionResponse),
        (status = 400, description = "Invalid, expired or used link", body = ErrorBody),
        (status = 409, description = "A user with this email already exists", body = ErrorBody),
        (status = 422, description = "Password too short", body = ErrorBody),
    ))]
async fn accept_invitation(
    State(state): State<AppState>,
    ctx: RequestCtx,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<Response> {
    let parsed = parse_secret(&req.token)
        .filter(|p| p.kind == SecretKind::Invitation)
        .ok_or_else(invalid_link)?;
    // Hash before claiming so that a rejected password does not use up the link.
    let hash = hash_new_password("password", req.password).await?;
    let tx = state.db.begin_tenant(parsed.tenant_id).await?;
    let invitation = tx
        .claim_invitation(&parsed.hash)
        .await?
        .ok_or_else(invalid_link)?;
    if tx.user_email_exists(&invitation.email).await? {
        return Err(
            ApiError::conflict("conflict", "a user with this email already exists").with_details(
                vec![ErrorDetail::field(
                    "email",
                    "a user with this email already exists",
                )],
            ),
        );
    }
    let user_id = tx
        .create_user(
            &invitation.email,
            req.display_name.as_deref(),
            invitation.role,
            Some(&hash),
        )
        .await?;
    tx.set_invitation_user(invitation.id, user_id).await?;
    tx.record_login(user_id).await?;
    let session = create_session(&state, &tx, &ctx, user_id).await?;
    tx.append_audit(&ctx.audit(
        Some((user_id, &invitation.email)),
        "invitation.accept",
        "user",
        Some(user_id.to_string()),
        json!({"invitation_id": invitation.id, "role": invitation.role.as_str()}),
    ))
    .await?;
    let row = tx.get_user(user_id).await?;
    tx.commit().await?;
    Ok(session_response(
        &state,
        session,
        UserView::new(parsed.tenant_id, row),
        StatusCode::CREATED,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResponse {
    pub status: String,
}

/// Request a password-reset link by mail
///
/// Always answers 202 with the same body, whether or not the email exists. When mail is
/// configured, each active account with this email gets a link; otherwise nothing is sent and an
/// ADMIN can issue a link (`POST /users/{id}/password-reset`).
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", security(()),
    request_body = PasswordResetRequest,
    responses((status = 202, description = "Accepted", body = AcceptedResponse)))]
async fn request_password_reset(
    State(state): State<AppState>,
    ctx: RequestCtx,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> ApiResult<Response> {
    let email = EmailAddress::normalise(&req.email);
    if email.is_empty() {
        return Err(ApiError::invalid_field("email", "required"));
    }
    if state.mailer.is_none() {
        tracing::info!(
            "password reset requested, but mail is not configured: an ADMIN must issue the link"
        );
    } else {
        // In the background: the answer must not take longer when the email exists.
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = send_self_service_resets(&state, &ctx, &email).await {
                tracing::warn!(error = %e, "password reset mail failed");
            }
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedResponse {
            status: "accepted".into(),
        }),
    )
        .into_response())
}

async fn send_self_service_resets(
    state: &AppState,
    ctx: &RequestCtx,
    email: &str,
) -> ApiResult<()> {
    for candidate in state.db.login_candidates(email).await? {
        if candidate.deactivated {
            continue;
        }
        let tx = state.db.begin_tenant(candidate.tenant_id).await?;
        let link = issue_password_reset(state, &tx, candidate.user_id, None).await?;
        tx.append_audit(&ctx.audit(
            None,
            "user.password_reset_request",
            "user",
            Some(candidate.user_id.to_string()),
            json!({"delivery": "email"}),
        ))
        .await?;
        tx.commit().await?;
        deliver(
            state,
            email,
            "Reset your Zixly password",
            &reset_mail_body(&link.url, link.expires_at),
        )
        .await?;
    }
    Ok(())
}

pub(crate) struct IssuedLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Creates a reset link for `user_id` in the transaction's tenant.
pub(crate) async fn issue_password_reset(
    state: &AppState,
    tx: &TenantTx,
    user_id: Uuid,
    requested_by: Option<Uuid>,
) -> ApiResult<IssuedLink> {
    let secret = issue_secret(SecretKind::PasswordReset, tx.tenant_id());
    let expires_at = Utc::now() + state.config.password_reset_ttl;
    tx.insert_password_reset(user_id, &secret.hash, requested_by, expires_at)
        .await?;
    Ok(IssuedLink {
        url: state
            .config
            .link(&format!("reset-password#token={}", secret.token)),
        expires_at,
    })
}

pub(crate) fn reset_mail_body(url: &str, expires_at: DateTime<Utc>) -> String {
    format!(
        "Someone asked to reset the password of your Zixly account.\n\nSet a new password here (valid until {}):\n{url}\n\nIf it was not you, ignore this mail.\n",
        expires_at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Sends one mail through the configured mailer.
pub(crate) async fn deliver(
    state: &AppState,
    to: &str,
    subject: &str,
    body: &str,
) -> ApiResult<()> {
    let Some(mailer) = &state.mailer else {
        return Err(ApiError::internal());
    };
    mailer
        .send(Email {
            to: to.to_string(),
            subject: subject.to_string(),
            body: body.to_string(),
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "mail not sent");
            ApiError::unavailable()
        })
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmPasswordResetRequest {
    /// The token from the reset link.
    pub token: String,
    pub password: String,
}

/// Set a new password with a reset link
///
/// Single use. Signs the user out everywhere (all sessions and API tokens are revoked).
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", security(()),
    request_body = ConfirmPasswordResetRequest,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "Invalid, expired or used link", body = ErrorBody),
        (status = 422, description = "Password too short", body = ErrorBody),
    ))]
async fn confirm_password_reset(
    State(state): State<AppState>,
    ctx: RequestCtx,
    ApiJson(req): ApiJson<ConfirmPasswordResetRequest>,
) -> ApiResult<StatusCode> {
    let parsed = parse_secret(&req.token)
        .filter(|p| p.kind == SecretKind::PasswordReset)
        .ok_or_else(invalid_link)?;
    let hash = hash_new_password("password", req.password).await?;
    let tx = state.db.begin_tenant(parsed.tenant_id).await?;
    let user_id = tx
        .claim_password_reset(&parsed.hash)
        .await?
        .ok_or_else(invalid_link)?;
    tx.set_user_password(user_id, &hash).await?;
    let revoked = tx.revoke_user_tokens(user_id, None).await?;
    let user = tx.get_user(user_id).await?;
    tx.append_audit(&ctx.audit(
        Some((user_id, &user.email)),
        "user.password_reset",
        "user",
        Some(user_id.to_string()),
        json!({"tokens_revoked": revoked}),
    ))
    .await?;
    tx.commit().await?;
    state.token_cache.forget_user(parsed.tenant_id, user_id);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(hash: Option<&str>, deactivated: bool) -> LoginCandidate {
        LoginCandidate {
            tenant_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            password_hash: hash.map(str::to_string),
            role: zixly_domain::Role::Viewer,
            deactivated,
        }
    }

    #[test]
    fn login_work_is_padded_to_the_constant_and_grows_only_beyond_it() {
        let right = "the right password";
        let hash = hash_password(right).unwrap();
        let h = Some(hash.as_str());
        // No candidate, one, two (one deactivated: verified against the dummy, never a match).
        for (candidates, matches) in [
            (vec![], 0),
            (vec![candidate(h, false)], 1),
            (vec![candidate(h, false), candidate(h, true)], 1),
            (vec![candidate(None, false), candidate(h, false)], 1),
        ] {
            let (found, verified) = verify_candidates(right, candidates);
            assert_eq!(verified, VERIFICATIONS_PER_LOGIN);
            assert_eq!(found.len(), matches);
        }
        // More candidates than the constant: each is still verified (documented limit).
        let many = vec![candidate(None, true); VERIFICATIONS_PER_LOGIN + 1];
        let (found, verified) = verify_candidates(right, many);
        assert_eq!((found.len(), verified), (0, VERIFICATIONS_PER_LOGIN + 1));
    }
}
