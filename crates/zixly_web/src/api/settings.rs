//! Workspace settings: `GET /settings/retention` (any role) and `PUT /settings/retention`
//! (ADMIN): how long raw daily financials are kept. The rules are
//! [`crate::actions::settings`]; this module parses JSON and shapes the answer.

use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zixly_db::retention::Retention;

use crate::actions::settings as actions;
use crate::auth::{Admin, Auth, Viewer};
use crate::error::{ApiJson, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_retention, put_retention))
}

/// The workspace's raw-data retention.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetentionView {
    /// Whole months of raw daily financials kept before the current month; `null` keeps them
    /// forever (the default).
    pub raw_retention_months: Option<i32>,
    /// The first day with day-level financials (the first of a month, in the tenant's time
    /// zone). Figures before it are served from monthly rollups only: whole months are exact,
    /// days and partial months are not available, and loads skip rows dated before it
    /// (`before_retention` in their result). `null` without retention.
    pub raw_data_from: Option<NaiveDate>,
    /// What retention applies to: raw financials only (lead events and custom metrics are kept
    /// whole).
    pub applies_to: Vec<String>,
}

impl From<Retention> for RetentionView {
    fn from(r: Retention) -> Self {
        RetentionView {
            raw_retention_months: r.months,
            raw_data_from: r.raw_data_from,
            applies_to: vec!["financials".into()],
        }
    }
}

/// A new retention period.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// 1 to 1200 whole months, or `null` to keep raw data forever.
    #[schema(minimum = 1, maximum = 1200)]
    pub raw_retention_months: Option<i64>,
}

/// Read the raw-data retention
#[utoipa::path(get, path = "/settings/retention", tag = "settings",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = RetentionView), (status = 401, body = ErrorBody)))]
async fn get_retention(auth: Auth<Viewer>) -> ApiResult<Json<RetentionView>> {
    Ok(Json(actions::retention(&auth).await?.into()))
}

/// Set the raw-data retention
///
/// Older raw rows are deleted by the worker's next retention run (every few hours), in batches,
/// with the monthly rollups kept; the run is audit-logged as `tenant.retention_applied`. A
/// longer period (or `null`) cannot bring back rows already deleted.
#[utoipa::path(put, path = "/settings/retention", tag = "settings", request_body = RetentionBody,
    security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"])),
    responses((status = 200, body = RetentionView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_retention(
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<RetentionBody>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(
        actions::set_retention(&auth, body.raw_retention_months)
            .await?
            .into(),
    ))
}
