//! Users and invitations of the tenant (ADMIN only): list, get, change role or name, deactivate
//! (soft) and reactivate, delete, issue a password-reset link; invite, list and revoke invitations.
//!
//! Links (invitations, resets) are sent by mail when a mailer is configured; otherwise — or when
//! sending fails — the response carries the link for the ADMIN to pass on (`delivery: "link"`).
//! The tenant always keeps at least one active ADMIN: demoting, deactivating or deleting the last
//! one answers 409 `last_admin`.
//!
//! Invite, update, deactivate and reactivate are [`crate::actions::users`], which the team page
//! calls too; these handlers parse the JSON and shape the answer.

use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::auth::Invitation;
use zixly_domain::{EmailAddress, Role};

use crate::actions::users::{self as actions, Delivery, UserChange};
use crate::api::me::UserView;
use crate::api::{Page, PageParams};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(reset_user_password))
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
}

/// List users
#[utoipa::path(get, path = "/users", tag = "users", params(PageParams),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Page<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    auth: Auth<Admin>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<UserView>>> {
    let tx = auth.begin().await?;
    let rows = tx
        .list_users(page.after_uuid()?, page.fetch_limit())
        .await?;
    tx.commit().await?;
    let views = rows
        .into_iter()
        .map(|u| UserView::new(auth.tenant_id(), u))
        .collect();
    Ok(Json(Page::from_rows(views, page.limit(), |u| {
        u.id.to_string()
    })))
}

/// Get a user
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn get_user(auth: Auth<Admin>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<UserView>> {
    let tx = auth.begin().await?;
    let user = tx.get_user(id).await?;
    tx.commit().await?;
    Ok(Json(UserView::new(auth.tenant_id(), user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `ADMIN`, `EDITOR` or `VIEWER`.
    pub role: Option<String>,
    /// An empty string clears the name.
    pub display_name: Option<String>,
}

fn parse_role(field: &str, value: &str) -> ApiResult<Role> {
    value
        .parse()
        .map_err(|_| ApiError::invalid_field(field, "must be ADMIN, EDITOR or VIEWER"))
}

/// Change a user's role or display name
#[utoipa::path(patch, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody),
              (status = 409, description = "Would remove the last ADMIN", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_user(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    let role = req
        .role
        .as_deref()
        .map(|r| parse_role("role", r))
        .transpose()?;
    let change = UserChange {
        role,
        display_name: req.display_name.as_deref(),
    };
    let after = actions::update_user(&auth, id, change).await?;
    Ok(Json(UserView::new(auth.tenant_id(), after)))
}

/// Deactivate a user (soft; revokes their sessions and tokens)
#[utoipa::path(post, path = "/users/{id}/deactivate", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody),
              (status = 409, description = "Would remove the last ADMIN", body = ErrorBody)))]
async fn deactivate_user(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserView>> {
    let after = actions::deactivate(&auth, id).await?;
    Ok(Json(UserView::new(auth.tenant_id(), after)))
}

/// Reactivate a deactivated user
#[utoipa::path(post, path = "/users/{id}/reactivate", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn reactivate_user(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserView>> {
    let after = actions::reactivate(&auth, id).await?;
    Ok(Json(UserView::new(auth.tenant_id(), after)))
}

/// Delete a user
///
/// Removes the account with its sessions, tokens and reset links. Audit rows keep the user's id
/// and email label. Prefer deactivation to keep the account's history attached.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
              (status = 409, description = "Would remove the last ADMIN", body = ErrorBody)))]
async fn delete_user(auth: Auth<Admin>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    let tx = auth.begin().await?;
    let before = tx.get_user(id).await?;
    if before.role == Role::Admin && before.deactivated_at.is_none() {
        actions::keep_an_admin(&tx, id).await?;
    }
    let deleted = tx.delete_user(id).await?;
    tx.append_audit(&auth.audit(
        "user.delete",
        "user",
        Some(id.to_string()),
        json!({"email": deleted.email, "role": deleted.role.as_str()}),
    ))
    .await?;
    tx.commit().await?;
    auth.forget_user_tokens(auth.tenant_id(), id);
    Ok(StatusCode::NO_CONTENT)
}

/// How a link reached (or must reach) its recipient.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkDelivery {
    /// `email` (sent by mail; `link` is absent) or `link` (no mail configured, or sending
    /// failed: pass `link` on to the recipient).
    pub delivery: String,
    /// The one-time link, only when `delivery` is `link`. Shown once.
    pub link: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl LinkDelivery {
    fn new(delivery: Delivery, expires_at: DateTime<Utc>) -> Self {
        LinkDelivery {
            delivery: delivery.as_str().into(),
            link: match delivery {
                Delivery::Email => None,
                Delivery::Link(link) => Some(link),
            },
            expires_at,
        }
    }
}

/// Issue a password-reset link for a user
#[utoipa::path(post, path = "/users/{id}/password-reset", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 201, body = LinkDelivery), (status = 404, body = ErrorBody)))]
async fn reset_user_password(
    auth: Auth<Admin>,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<LinkDelivery>)> {
    let issued = actions::issue_reset_link(&state, &auth, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkDelivery::new(issued.delivery, issued.expires_at)),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        InvitationView {
            id: i.id,
            email: i.email,
            role: i.role.as_str().into(),
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateInvitationRequest {
    pub email: String,
    /// `ADMIN`, `EDITOR` or `VIEWER`.
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedInvitation {
    pub invitation: InvitationView,
    #[serde(flatten)]
    pub delivery: LinkDelivery,
}

/// List pending invitations
#[utoipa::path(get, path = "/invitations", tag = "users",
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Page<InvitationView>), (status = 403, body = ErrorBody)))]
async fn list_invitations(auth: Auth<Admin>) -> ApiResult<Json<Page<InvitationView>>> {
    let tx = auth.begin().await?;
    let rows = tx.list_pending_invitations().await?;
    tx.commit().await?;
    Ok(Json(Page::all(
        rows.into_iter().map(InvitationView::from).collect(),
    )))
}

/// Invite someone by email with a role
///
/// Creates a single-use link that expires (default 7 days) and lets the invitee set a password
/// (`POST /auth/accept-invitation`). Re-inviting an email replaces its pending invitation.
#[utoipa::path(post, path = "/invitations", tag = "users",
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    request_body = CreateInvitationRequest,
    responses((status = 201, body = CreatedInvitation), (status = 409, description = "Already a user", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_invitation(
    auth: Auth<Admin>,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let email = EmailAddress::parse(&req.email);
    let mut problems = Vec::new();
    if email.is_err() {
        problems.push(ErrorDetail::field("email", "must be an email address"));
    }
    let role = req.role.parse::<Role>();
    if role.is_err() {
        problems.push(ErrorDetail::field(
            "role",
            "must be ADMIN, EDITOR or VIEWER",
        ));
    }
    let (Ok(email), Ok(role)) = (email, role) else {
        return Err(ApiError::validation(problems));
    };
    let invited = actions::invite(&state, &auth, &email, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation: invited.invitation.into(),
            delivery: LinkDelivery::new(invited.delivery, invited.expires_at),
        }),
    ))
}

/// Revoke a pending invitation
#[utoipa::path(delete, path = "/invitations/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "Invitation id")),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
async fn revoke_invitation(auth: Auth<Admin>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    actions::revoke_invitation(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
