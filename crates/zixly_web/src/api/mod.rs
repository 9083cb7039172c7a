//! The REST API under `/api/v1`.
//!
//! # Adding a resource
//! One module per resource (`api/clients.rs`, `api/reports.rs`, ...), each exposing
//! `pub fn router() -> OpenApiRouter<AppState>`, merged in [`router`] below. In the module:
//!
//! ```ignore
//! use axum::Json;
//! use utoipa_axum::{router::OpenApiRouter, routes};
//! use crate::api::{Page, PageParams};
//! use crate::auth::{Auth, Editor, Viewer};
//! use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
//!
//! pub fn router() -> OpenApiRouter<AppState> {
//!     OpenApiRouter::new()
//!         // One `routes!` per path: the handlers of the same path, different methods.
//!         .routes(routes!(list_clients, create_client))
//!         .routes(routes!(get_client, update_client, delete_client))
//! }
//!
//! /// List clients
//! #[utoipa::path(get, path = "/clients", tag = "clients", params(PageParams),
//!     security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
//!     responses((status = 200, body = Page<ClientView>), (status = 401, body = ErrorBody)))]
//! async fn list_clients(auth: Auth<Viewer>, ApiQuery(page): ApiQuery<PageParams>) -> ApiResult<Json<Page<ClientView>>> {
//!     let tx = auth.begin().await?;                       // RLS transaction of the caller's tenant
//!     let rows = tx.list_clients(page.after_uuid()?, page.fetch_limit()).await?;
//!     tx.commit().await?;
//!     Ok(Json(Page::from_rows(rows.into_iter().map(ClientView::from).collect(), page.limit(), |c| c.id.to_string())))
//! }
//!
//! async fn update_client(auth: Auth<Editor>, ApiPath(id): ApiPath<Uuid>, ApiJson(body): ApiJson<ClientPatch>) -> ApiResult<..> {
//!     let tx = auth.begin().await?;
//!     let updated = tx.update_client(id, ..).await?;       // DbError::NotFound -> 404 (also for other tenants' ids)
//!     tx.append_audit(&auth.audit("client.update", "client", Some(id.to_string()), json!({"changed": ..}))).await?;
//!     tx.commit().await?;                                  // the write and its audit row commit together
//!     ..
//! }
//! ```
//!
//! Rules:
//! - Paths in `#[utoipa::path]` are relative to `/api/v1` and use axum's `{param}` syntax.
//! - Roles: the handler's first argument is `Auth<Viewer|Editor|Admin>` (see [`crate::auth`]);
//!   document the same role in `security(("bearer" = ["ROLE"]), ("cookie" = ["ROLE"]))`, and add
//!   the route to `ROUTES` in `crates/zixly_web/tests/it/routes.rs` (the role × route matrix and
//!   the OpenAPI check read it).
//! - Bodies through [`ApiJson`](crate::error::ApiJson), queries through
//!   [`ApiQuery`](crate::error::ApiQuery), paths through [`ApiPath`](crate::error::ApiPath), so
//!   that even rejections have the error shape. Return [`ApiResult`](crate::error::ApiResult).
//! - Every write appends an audit row in its transaction (`auth.audit(..)`).
//! - Lists answer [`Page`] with keyset pagination on the UUIDv7 id ([`PageParams`]); no OFFSET.
//! - Larger bodies (CSV imports): add `.layer(axum::extract::DefaultBodyLimit::max(N))` to that
//!   route's router; the default is `WebConfig::body_limit`.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod batches;
pub mod clients;
pub mod csv;
pub mod goals;
pub mod imports;
pub mod integrations;
pub(crate) mod json_out;
pub(crate) mod json_time;
pub mod me;
pub mod metrics;
pub mod notifications;
pub mod reports;
pub mod series;
pub mod settings;
pub mod users;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Every `/api/v1` route (paths relative to `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(clients::router())
        .merge(series::router())
        .merge(batches::router())
        .merge(imports::router())
        .merge(integrations::router())
        .merge(reports::router())
        .merge(metrics::router())
        .merge(notifications::router())
        .merge(goals::router())
        .merge(alerts::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(settings::router())
}

/// Default and maximum page sizes.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// Keyset pagination parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `next_cursor` of the previous page; omit for the first page. Opaque to clients.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl PageParams {
    /// The page size to return.
    pub fn limit(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE) as usize
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit() as i64 + 1
    }

    /// The cursor as the UUID it encodes (cursors of id-ordered lists are the last id).
    pub fn after_uuid(&self) -> ApiResult<Option<Uuid>> {
        match self
            .cursor
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            None => Ok(None),
            Some(c) => Uuid::try_parse(c).map(Some).map_err(|_| {
                ApiError::invalid_field("cursor", "not a cursor returned by this list")
            }),
        }
    }
}

/// A page of a list: `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// From rows fetched with [`PageParams::fetch_limit`]: keeps `limit` rows and derives the
    /// cursor from the last kept row when more rows exist.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }

    /// A complete, unpaginated list.
    pub fn all(rows: Vec<T>) -> Self {
        Page {
            data: rows,
            next_cursor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_keep_limit_rows_and_point_past_the_last() {
        let p = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
        let params = PageParams {
            cursor: Some("nope".into()),
            limit: Some(10_000),
        };
        assert_eq!(params.limit(), MAX_PAGE_SIZE as usize);
        assert!(params.after_uuid().is_err());
    }
}
