//! The caller's own account (`GET /me`, `POST /me/password`) and personal API tokens
//! (`/me/tokens`: create — the token is shown once —, list, revoke).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::auth::TokenInfo;
use zixly_db::queries::users::UserRow;

use crate::actions::account;
use crate::api::Page;
use crate::auth::{Auth, Viewer};
use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me))
        .routes(routes!(change_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    /// `ADMIN`, `EDITOR` or `VIEWER`.
    pub role: String,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    pub fn new(tenant_id: Uuid, u: UserRow) -> Self {
        UserView {
            id: u.id,
            tenant_id,
            email: u.email,
            display_name: u.display_name,
            role: u.role.as_str().to_string(),
            deactivated_at: u.deactivated_at,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// The authenticated user
#[utoipa::path(get, path = "/me", tag = "me",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn get_me(auth: Auth<Viewer>) -> ApiResult<Json<UserView>> {
    let tx = auth.begin().await?;
    let user = tx.get_user(auth.user_id()).await?;
    tx.commit().await?;
    Ok(Json(UserView::new(auth.tenant_id(), user)))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change the caller's password
///
/// Needs the current password. Throttled like login, on the same keys (the caller's email, with
/// and without the client address, and the address): a wrong current password counts as a failed
/// login, and while they are locked the answer is 429. Revokes every other session and API token
/// of the caller, and every outstanding password-reset link; the credential used for this request
/// stays valid.
#[utoipa::path(post, path = "/me/password", tag = "me",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed"), (status = 401, body = ErrorBody),
              (status = 422, description = "Wrong current password or new one too short", body = ErrorBody),
              (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    account::change_password(&state, &auth, req.current_password, req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A personal API token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    /// What the token is for, e.g. "nightly export".
    pub name: String,
    /// Lifetime in days, 1 to 365 (default 90).
    pub expires_in_days: Option<u32>,
}

/// A new token: `token` is shown only in this response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

/// List the caller's personal API tokens
#[utoipa::path(get, path = "/me/tokens", tag = "me",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = Page<TokenView>), (status = 401, body = ErrorBody)))]
async fn list_tokens(auth: Auth<Viewer>) -> ApiResult<Json<Page<TokenView>>> {
    let tokens = account::list_tokens(&auth).await?;
    Ok(Json(Page::all(
        tokens.into_iter().map(TokenView::from).collect(),
    )))
}

/// Create a personal API token
///
/// The token acts with the caller's role (as it is at each request). Use it as
/// `Authorization: Bearer <token>`.
#[utoipa::path(post, path = "/me/tokens", tag = "me",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    auth: Auth<Viewer>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let created = account::create_token(&auth, &req.name, req.expires_in_days).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: created.token,
            info: created.info.into(),
        }),
    ))
}

/// Revoke one of the caller's personal API tokens
#[utoipa::path(delete, path = "/me/tokens/{id}", tag = "me",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(auth: Auth<Viewer>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    account::revoke_token(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
