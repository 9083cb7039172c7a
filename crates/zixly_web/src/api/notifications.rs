//! Notification channels (`/notification-channels`, ADMIN) and the caller's in-app notifications
//! (`/notifications`, every role, each user only their own). The writes are
//! [`crate::actions::notifications`]; delivery is `zixly_alerts::deliver`'s job.
//!
//! A channel is `{"kind": "webhook"|"slack"|"email", "name", "url"|"address", "secret"}`. No
//! answer ever carries a stored secret or a Slack URL: a webhook's signing secret appears once,
//! in the creation answer (`secret`), and is generated when the request gives none.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::notifications::{Channel, DispatchLogRow, Notification};

use crate::actions::notifications::{self as actions, ChannelInput};
use crate::api::PageParams;
use crate::auth::{Admin, Auth, Viewer};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(update_channel, delete_channel))
        .routes(routes!(test_channel))
        .routes(routes!(channel_log))
        .routes(routes!(list_notifications))
        .routes(routes!(read_notification))
        .routes(routes!(read_all_notifications))
}

/// A channel as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    pub name: String,
    /// The webhook URL, the Slack URL's host only (the URL is a credential), or the address.
    pub target: String,
    pub active: bool,
    /// Last successful delivery.
    pub verified_at: Option<DateTime<Utc>>,
    /// The last attempt's error, cleared by a success.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        ChannelView {
            id: c.id,
            kind: c.kind,
            name: c.name,
            target: c.target,
            active: c.is_active,
            verified_at: c.verified_at,
            last_error: c.last_error,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedChannelView {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// A webhook's Standard Webhooks signing secret (`whsec_…`), shown only here.
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelBody {
    pub kind: String,
    pub name: String,
    /// Webhook and Slack channels: the receiver (https, a public address).
    pub url: Option<String>,
    /// E-mail channels: the recipient.
    pub address: Option<String>,
    /// Webhooks: a `whsec_` + base64 secret; generated when absent.
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub data: Vec<ChannelView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// The test delivery (its id is the webhook-id the receiver sees).
    pub delivery_id: Uuid,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DispatchLogView {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub channel_id: Uuid,
    pub channel: String,
    /// The event type (`alert.firing`, `alert.resolved`, `alert.test`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `sent` or `failed`.
    pub status: String,
    pub attempt: i32,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    /// At most 1 KiB of the receiver's answer.
    pub response: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<DispatchLogRow> for DispatchLogView {
    fn from(r: DispatchLogRow) -> Self {
        DispatchLogView {
            id: r.id,
            delivery_id: r.delivery_id,
            channel_id: r.channel_id,
            channel: r.channel,
            kind: r.kind,
            status: r.status,
            attempt: r.attempt,
            duration_ms: r.duration_ms,
            response_status: r.response_status,
            response: r.response,
            error: r.error,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DispatchLog {
    pub data: Vec<DispatchLogView>,
}

/// An in-app notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// The page showing the figure (a client's page, or the alerts page).
    pub link: Option<String>,
    pub read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind,
            message: n.message,
            link: n.link,
            read: n.read_at.is_some(),
            read_at: n.read_at,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub data: Vec<NotificationView>,
    pub next_cursor: Option<String>,
    /// The caller's unread notifications, all pages together.
    pub unread: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadAll {
    /// How many were unread.
    pub marked: u64,
}

/// List notification channels
#[utoipa::path(get, path = "/notification-channels", tag = "notifications",
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_channels(auth: Auth<Admin>) -> ApiResult<Json<ChannelList>> {
    let data = actions::list(&auth).await?;
    Ok(Json(ChannelList {
        data: data.into_iter().map(ChannelView::from).collect(),
    }))
}

/// Add a notification channel
#[utoipa::path(post, path = "/notification-channels", tag = "notifications", request_body = NewChannelBody,
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 201, body = CreatedChannelView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`channel_name_taken`"), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`encryption_unavailable`: no key to store the secret")))]
async fn create_channel(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<NewChannelBody>,
) -> ApiResult<(StatusCode, Json<CreatedChannelView>)> {
    let keyring = state.integrations.as_ref().map(|e| e.keyring().as_ref());
    let created = actions::create(
        &auth,
        keyring,
        &ChannelInput {
            kind: &body.kind,
            name: &body.name,
            url: body.url.as_deref(),
            address: body.address.as_deref(),
            secret: body.secret.as_deref(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannelView {
            channel: created.channel.into(),
            secret: created.secret.map(|s| s.expose().to_string()),
        }),
    ))
}

/// Rename or (de)activate a notification channel
#[utoipa::path(patch, path = "/notification-channels/{id}", tag = "notifications", request_body = ChannelPatch,
    params(("id" = Uuid, Path)),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = ChannelView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_channel(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChannelPatch>,
) -> ApiResult<Json<ChannelView>> {
    let c = actions::update(&auth, id, body.name.as_deref(), body.active).await?;
    Ok(Json(c.into()))
}

/// Delete a notification channel
#[utoipa::path(delete, path = "/notification-channels/{id}", tag = "notifications",
    params(("id" = Uuid, Path)),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_channel(auth: Auth<Admin>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    actions::delete(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test notification through a channel
#[utoipa::path(post, path = "/notification-channels/{id}/test", tag = "notifications",
    params(("id" = Uuid, Path)),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 202, body = TestQueued, description = "Queued; the dispatch log shows the attempt"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn test_channel(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let delivery_id = actions::send_test(&auth, id).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { delivery_id })))
}

/// A channel's delivery attempts, newest first (at most 200)
#[utoipa::path(get, path = "/notification-channels/{id}/log", tag = "notifications",
    params(("id" = Uuid, Path)),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = DispatchLog), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn channel_log(
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<DispatchLog>> {
    let tx = auth.begin().await?;
    if tx.channel(id).await?.is_none() {
        return Err(crate::error::ApiError::not_found("notification channel"));
    }
    let rows = tx.dispatch_log(Some(id), 200).await?;
    tx.commit().await?;
    Ok(Json(DispatchLog {
        data: rows.into_iter().map(DispatchLogView::from).collect(),
    }))
}

/// The caller's notifications, newest first
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(PageParams),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = NotificationPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_notifications(
    auth: Auth<Viewer>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<NotificationPage>> {
    let (mut rows, unread) = actions::mine(&auth, page.after_uuid()?, page.fetch_limit()).await?;
    let next_cursor = if rows.len() > page.limit() {
        rows.truncate(page.limit());
        rows.last().map(|n| n.id.to_string())
    } else {
        None
    };
    Ok(Json(NotificationPage {
        data: rows.into_iter().map(NotificationView::from).collect(),
        next_cursor,
        unread,
    }))
}

/// Mark one of the caller's notifications read
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications",
    params(("id" = Uuid, Path)),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn read_notification(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    actions::mark_read(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark all the caller's notifications read
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = ReadAll), (status = 401, body = ErrorBody)))]
async fn read_all_notifications(auth: Auth<Viewer>) -> ApiResult<Json<ReadAll>> {
    let marked = actions::mark_all_read(&auth).await?;
    Ok(Json(ReadAll { marked }))
}
