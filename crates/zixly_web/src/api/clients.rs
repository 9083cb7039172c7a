//! Clients: `/clients` list/search, get, create, update, delete (writes need EDITOR).
//!
//! Lists page by keyset on (name, id) or (id) — `sort=name|created` — with an opaque cursor; no
//! OFFSET. `search` matches a substring of the name, case-insensitively. Deleting a client deletes
//! its financials, lead events and metrics with it (the audit row records how many). The writes
//! are [`crate::actions::clients`], which the client pages call too.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::clients::{Client, ClientCursor, ClientQuery, ClientSort};

use crate::actions::clients::{self as actions, ClientChange, ClientInput};
use crate::api::csv::{self, CsvRow, FormatParam};
use crate::api::{Page, PageParams};
use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, update_client, delete_client))
}

/// Encodes a database cursor as an opaque string (hex of its JSON).
pub(crate) fn encode_cursor<T: Serialize>(c: &T) -> String {
    hex::encode(serde_json::to_vec(c).expect("cursors serialize"))
}

/// Decodes a cursor made by [`encode_cursor`]; anything else is a 422 on `cursor`.
pub(crate) fn decode_cursor<T: DeserializeOwned>(s: Option<&str>) -> ApiResult<Option<T>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => hex::decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor returned by this list")),
    }
}

/// A client as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    /// Zixly's id (used in `/clients/{id}` paths).
    pub id: Uuid,
    /// The identifier in the source system (CSV `client_id`, Xero ContactID...), unique per tenant.
    pub client_id: String,
    pub client_name: String,
    pub industry: Option<String>,
    /// ISO 4217 code of the client's usual currency.
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        ClientView {
            id: c.id,
            client_id: c.client_id,
            client_name: c.client_name,
            industry: c.industry,
            currency: c.currency,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl CsvRow for Client {
    const HEADER: &'static [&'static str] = &[
        "id",
        "client_id",
        "client_name",
        "industry",
        "currency",
        "created_at",
        "updated_at",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.client_id.clone(),
            self.client_name.clone(),
            self.industry.clone().unwrap_or_default(),
            self.currency.clone().unwrap_or_default(),
            self.created_at.to_rfc3339(),
            self.updated_at.to_rfc3339(),
        ]
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortParam {
    #[default]
    Name,
    Created,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientListParams {
    /// Case-insensitive substring of the client name (`%` and `_` are literal).
    pub search: Option<String>,
    /// `name` (default, case-insensitive) or `created`.
    pub sort: Option<SortParam>,
}

/// List and search clients
#[utoipa::path(get, path = "/clients", tag = "clients",
    params(ClientListParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses(
        (status = 200, body = Page<ClientView>, description = "A page of clients (or all of them from `cursor` on, as CSV)"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_clients(
    auth: Auth<Viewer>,
    ApiQuery(params): ApiQuery<ClientListParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    let sort = match params.sort.unwrap_or_default() {
        SortParam::Name => ClientSort::Name,
        SortParam::Created => ClientSort::Created,
    };
    let after: Option<ClientCursor> = decode_cursor(page.cursor.as_deref())?;
    if after.as_ref().is_some_and(|c| c.sort != sort) {
        return Err(ApiError::invalid_field(
            "cursor",
            "this cursor belongs to another sort order",
        ));
    }
    let mut q = ClientQuery {
        search: params.search,
        sort,
        after,
        limit: page.limit() as u32,
    };
    let tx = auth.begin().await?;
    if format.is_csv() {
        q.limit = 1000;
        return Ok(csv::stream_rows::<Client, _, _>(
            "clients",
            move |mut sink| async move {
                loop {
                    let p = tx.list_clients(&q).await?;
                    for c in &p.items {
                        if !sink.write(c).await {
                            return Ok(sink);
                        }
                    }
                    match p.next {
                        Some(next) => q.after = Some(next),
                        None => break,
                    }
                }
                tx.commit().await?;
                Ok(sink)
            },
        ));
    }
    let p = tx.list_clients(&q).await?;
    tx.commit().await?;
    Ok(Json(Page {
        data: p.items.into_iter().map(ClientView::from).collect(),
        next_cursor: p.next.as_ref().map(encode_cursor),
    })
    .into_response())
}

/// A new client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    /// The identifier in the source system; unique per tenant.
    pub client_id: String,
    pub client_name: String,
    pub industry: Option<String>,
    /// ISO 4217 code, e.g. `AUD`.
    pub currency: Option<String>,
}

/// Absent stays `None`; `null` becomes `Some(None)`.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a client: absent fields stay as they are; `null` clears `industry` or `currency`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub currency: Option<Option<String>>,
}

/// Create a client
#[utoipa::path(post, path = "/clients", tag = "clients", request_body = ClientCreate,
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 201, body = ClientView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`client_id` is taken"), (status = 422, body = ErrorBody)))]
async fn create_client(
    auth: Auth<Editor>,
    ApiJson(body): ApiJson<ClientCreate>,
) -> ApiResult<(StatusCode, Json<ClientView>)> {
    let input = ClientInput {
        client_id: &body.client_id,
        client_name: &body.client_name,
        industry: body.industry.as_deref(),
        currency: body.currency.as_deref(),
    };
    let client = actions::create(&auth, &input).await?;
    Ok((StatusCode::CREATED, Json(client.into())))
}

/// Get a client
#[utoipa::path(get, path = "/clients/{id}", tag = "clients", params(("id" = Uuid, Path, description = "Zixly client id")),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_client(auth: Auth<Viewer>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<ClientView>> {
    let tx = auth.begin().await?;
    let client = tx
        .get_client(id)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    tx.commit().await?;
    Ok(Json(client.into()))
}

/// Update a client
#[utoipa::path(patch, path = "/clients/{id}", tag = "clients", request_body = ClientPatch,
    params(("id" = Uuid, Path, description = "Zixly client id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_client(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ClientPatch>,
) -> ApiResult<Json<ClientView>> {
    let change = ClientChange {
        client_id: body.client_id.as_deref(),
        client_name: body.client_name.as_deref(),
        industry: body.industry.as_ref().map(Option::as_deref),
        currency: body.currency.as_ref().map(Option::as_deref),
    };
    Ok(Json(actions::update(&auth, id, &change).await?.into()))
}

/// Delete a client and its data
#[utoipa::path(delete, path = "/clients/{id}", tag = "clients", params(("id" = Uuid, Path, description = "Zixly client id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 204, description = "Deleted, with its financials, lead events and metrics"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_client(auth: Auth<Editor>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    actions::delete(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
