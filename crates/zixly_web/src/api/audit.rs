//! `GET /audit-logs` (ADMIN): the tenant's audit log, newest first, cursor-paginated.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::audit::{AuditFilter, AuditRow};

use crate::api::{Page, PageParams};
use crate::auth::{Admin, Auth};
use crate::error::{ApiQuery, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditLogView {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub summary: serde_json::Value,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl From<AuditRow> for AuditLogView {
    fn from(r: AuditRow) -> Self {
        AuditLogView {
            id: r.id,
            occurred_at: r.occurred_at,
            actor_user_id: r.actor_user_id,
            actor_label: r.actor_label,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            summary: r.summary,
            request_id: r.request_id,
            client_addr: r.client_addr.map(|a| a.to_string()),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Only this action, e.g. `user.update`.
    pub action: Option<String>,
    /// Only this entity type, e.g. `user`.
    pub entity_type: Option<String>,
    /// Only this entity id.
    pub entity_id: Option<String>,
    /// Only rows by this user.
    pub actor_user_id: Option<Uuid>,
    /// Only actions of this kind (the part before the dot), e.g. `user` for `user.invite`,
    /// `user.update`, ….
    pub kind: Option<String>,
}

/// The audit log, newest first
#[utoipa::path(get, path = "/audit-logs", tag = "audit", params(AuditQuery),
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = Page<AuditLogView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit_logs(
    auth: Auth<Admin>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditLogView>>> {
    let page = PageParams {
        cursor: q.cursor,
        limit: q.limit,
    };
    let filter = AuditFilter {
        action: q.action,
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        actor_user_id: q.actor_user_id,
        kind: q.kind,
    };
    let tx = auth.begin().await?;
    let rows = tx
        .list_audit_logs(&filter, page.after_uuid()?, page.fetch_limit())
        .await?;
    tx.commit().await?;
    let views = rows.into_iter().map(AuditLogView::from).collect();
    Ok(Json(Page::from_rows(
        views,
        page.limit(),
        |r: &AuditLogView| r.id.to_string(),
    )))
}
