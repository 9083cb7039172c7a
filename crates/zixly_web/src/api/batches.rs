//! Batch upserts of one client's series (EDITOR+): `POST /clients/{id}/financials`,
//! `/lead-events`, `/metrics`.
//!
//! Body `{"rows": [{...}, ...]}`. A row has the fields of the dataset's CSV columns except the
//! client's (`client_id`, `client_name`, `industry`): those come from the client in the path.
//! Values are strings (money as decimal strings, `"15000.00"`, dates `YYYY-MM-DD`); a JSON number
//! is read as its decimal text and `null` as absent. Rows without `source_system` get `api`.
//!
//! The rows go through the same loader and rules as a CSV import (`zixly_db::loader`): row
//! validation, duplicate keys inside the batch (every row of a duplicated key is rejected),
//! exchange rates, one upsert that leaves identical rows alone.
//!
//! - **Rows are numbered from 1** in the order of `rows`: errors name them as
//!   `{"row": n, "field": "revenue", "reason": ...}` (`field` absent for whole-row problems such
//!   as a duplicate key), and the loader's messages say "row" where a file import says "line".
//! - **Atomic by default**: one invalid row and nothing is written: 422 `validation_failed` with
//!   every problem in `error.details` and the load's result beside it ([`LoadFailure`]).
//!   `?skip_invalid=true` loads the valid rows: 200 with status `partial` and the errors listed.
//! - The answer is a [`LoadResult`]: `status`, `inserted`, `updated`, `unchanged`, `rejected`,
//!   `errors`, `errors_not_listed`, `sync_run_id` (the `sync_runs` row of the load).
//! - Audit: one `<dataset>.upsert` row per request, whatever the outcome, appended by the loader
//!   in the transaction that records the load's `sync_runs` row — for a successful load, the
//!   transaction that wrote the rows (`LoadOptions::audit`).
//! - Another tenant's client id (or an unknown one) answers 404 before the body is looked at.
//!
//! The client is looked up in one transaction and the loader (which owns its transaction)
//! writes by the client's `client_id` in another: a client deleted in between is created again
//! by the load (named after the looked-up client), and for financials, whose rows carry the
//! client's name, a rename in between is undone.

use axum::extract::State;
use axum::response::Response;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::loader::{self, Input, LoadOptions, Loadable};
use zixly_domain::ingest::{
    CustomMetricRow, FinancialRow, IngestRow, LeadEventRow, RowError, ValidRow,
};

use crate::api::imports::{answer, LoadFailure, LoadResult, SkipInvalidParam};
use crate::auth::{Auth, Editor};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_financials))
        .routes(routes!(upsert_lead_events))
        .routes(routes!(upsert_metrics))
}

/// A batch body. Rows stay JSON objects until the loader's parser reads them, so that every row
/// gets its own errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowBatch {
    /// Absent = empty (answered 422 after the client check, so that an unknown client is 404
    /// whatever the body).
    #[serde(default)]
    pub rows: Vec<serde_json::Map<String, Value>>,
}

/// One financial row (documentation of the body; the fields of the CSV layout).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FinancialInput {
    /// `YYYY-MM-DD`.
    record_date: String,
    /// Decimal string, at most 2 places, e.g. `"15000.00"`.
    revenue: String,
    expenses: String,
    /// Must equal `revenue - expenses`; derived when absent.
    net_profit: Option<String>,
    cash_flow: String,
    /// ISO 4217; default: the tenant's base currency.
    currency: Option<String>,
    /// Default `api`; part of the dedup key (client, date, source).
    source_system: Option<String>,
    external_id: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FinancialBatch {
    /// Numbered from 1 in errors (`row`).
    rows: Vec<FinancialInput>,
}

/// One lead event.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LeadEventInput {
    /// RFC 3339, or a naive time / date read in the tenant's time zone.
    event_date: String,
    lead_id: String,
    stage: String,
    /// Decimal string, at most 2 places.
    value: Option<String>,
    /// `active`, `won`, `lost` or `stale`.
    status: String,
    currency: Option<String>,
    /// Default `api`; part of the dedup key (client, source, lead, stage, instant).
    source_system: Option<String>,
    external_id: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LeadEventBatch {
    /// Numbered from 1 in errors (`row`).
    rows: Vec<LeadEventInput>,
}

/// One custom metric value.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MetricInput {
    metric_name: String,
    /// Decimal string, at most 4 places.
    metric_value: String,
    unit: Option<String>,
    /// RFC 3339, or a naive time / date read in the tenant's time zone.
    record_date: String,
    /// Default `api`; part of the dedup key (client, metric, instant, source).
    source_system: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MetricBatch {
    /// Numbered from 1 in errors (`row`).
    rows: Vec<MetricInput>,
}

/// Client columns: taken from the path's client, refused in a row.
const CLIENT_FIELDS: &[&str] = &["client_id", "client_name", "industry"];

/// Most rows in one batch (the body limit usually comes first).
pub const MAX_ROWS: usize = 10_000;

/// The loader's input for one JSON row (`line` = the row's 1-based position).
fn parse_row<T: IngestRow>(
    object: &serde_json::Map<String, Value>,
    line: u64,
    client: &[(&str, &str)],
    ctx: &zixly_domain::ingest::IngestContext,
) -> Input<T> {
    let mut errors = Vec::new();
    let mut texts: Vec<(&str, String)> = Vec::with_capacity(object.len());
    for (key, value) in object {
        if CLIENT_FIELDS.contains(&key.as_str()) {
            errors.push(RowError::new(
                line,
                Some(key),
                "comes from the client in the path; leave it out",
            ));
            continue;
        }
        if !T::COLUMNS.iter().any(|c| c.name == key) {
            let accepted: Vec<&str> = T::COLUMNS
                .iter()
                .map(|c| c.name)
                .filter(|n| !CLIENT_FIELDS.contains(n))
                .collect();
            errors.push(RowError::new(
                line,
                Some(key),
                format!("unknown field (accepted: {})", accepted.join(", ")),
            ));
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(s) => texts.push((key, s.clone())),
            Value::Number(n) => texts.push((key, n.to_string())),
            _ => errors.push(RowError::new(
                line,
                Some(key),
                "must be a string (or a number)",
            )),
        }
    }
    if !errors.is_empty() {
        return Input::Invalid(errors);
    }
    let mut fields: Vec<(&str, &str)> = client.to_vec();
    fields.extend(texts.iter().map(|(k, v)| (*k, v.as_str())));
    Input::from(T::parse_named(&fields, line, ctx).map(|row| ValidRow { line, row }))
}

/// A loader error as a batch detail: `row` and `field`; "line" in the loader's own messages
/// (duplicate keys) means row here.
fn row_detail(e: &RowError) -> ErrorDetail {
    ErrorDetail {
        row: (e.line > 0).then_some(e.line),
        field: e.column.clone(),
        reason: e.reason.replace("also on line ", "also on row "),
        ..Default::default()
    }
}

async fn upsert<T: Loadable>(
    auth: Auth<Editor>,
    state: AppState,
    id: Uuid,
    skip_invalid: bool,
    batch: RowBatch,
) -> ApiResult<Response> {
    let tx = auth.begin().await?;
    let client = tx
        .get_client(id)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    tx.commit().await?;
    if batch.rows.is_empty() {
        return Err(ApiError::invalid_field(
            "rows",
            "must hold at least one row",
        ));
    }
    if batch.rows.len() > MAX_ROWS {
        return Err(ApiError::invalid_field(
            "rows",
            format!("at most {MAX_ROWS} rows per request; use POST /api/v1/imports for files"),
        ));
    }
    let tenant = auth.tenant_id();
    let ctx = loader::ingest_context(&state.db, tenant, "api").await?;
    // The name only where the layout requires it (financials): elsewhere the client keeps its
    // own values whatever happens to it meanwhile.
    let mut client_fields = vec![("client_id", client.client_id.as_str())];
    if T::COLUMNS
        .iter()
        .any(|c| c.name == "client_name" && c.required)
    {
        client_fields.push(("client_name", client.client_name.as_str()));
    }
    let inputs: Vec<Input<T>> = batch
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| parse_row::<T>(row, i as u64 + 1, &client_fields, &ctx))
        .collect();
    let options = LoadOptions {
        skip_invalid,
        triggered_by: Some(auth.user_id()),
        audit: Some(auth.audit(
            &format!("{}.upsert", T::DATASET.as_str()),
            "client",
            Some(id.to_string()),
            json!({"client_id": client.client_id, "rows": batch.rows.len(), "skip_invalid": skip_invalid}),
        )),
        ..LoadOptions::new("api")
    };
    let mut kinds = crate::imports::ErrorKinds::default();
    let report = loader::load::<T, _, _>(
        &state.db,
        tenant,
        &options,
        stream::iter(inputs),
        Some(&mut kinds),
    )
    .await?;
    Ok(answer(&report, &kinds, row_detail))
}

/// Upsert financial rows of a client
///
/// Same loader and rules as a CSV import. Atomic unless `skip_invalid=true`; rows are numbered
/// from 1 in errors.
#[utoipa::path(post, path = "/clients/{id}/financials", tag = "series", request_body = FinancialBatch,
    params(("id" = Uuid, Path, description = "Zixly client id"), SkipInvalidParam),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = LoadResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = LoadFailure, description = "Nothing written")))]
async fn upsert_financials(
    auth: Auth<Editor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SkipInvalidParam>,
    ApiJson(batch): ApiJson<RowBatch>,
) -> ApiResult<Response> {
    upsert::<FinancialRow>(auth, state, id, q.skip_invalid.unwrap_or(false), batch).await
}

/// Upsert lead events of a client
///
/// Same loader and rules as a CSV import. Atomic unless `skip_invalid=true`; rows are numbered
/// from 1 in errors.
#[utoipa::path(post, path = "/clients/{id}/lead-events", tag = "series", request_body = LeadEventBatch,
    params(("id" = Uuid, Path, description = "Zixly client id"), SkipInvalidParam),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = LoadResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = LoadFailure, description = "Nothing written")))]
async fn upsert_lead_events(
    auth: Auth<Editor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SkipInvalidParam>,
    ApiJson(batch): ApiJson<RowBatch>,
) -> ApiResult<Response> {
    upsert::<LeadEventRow>(auth, state, id, q.skip_invalid.unwrap_or(false), batch).await
}

/// Upsert custom metric values of a client
///
/// Same loader and rules as a CSV import. Atomic unless `skip_invalid=true`; rows are numbered
/// from 1 in errors.
#[utoipa::path(post, path = "/clients/{id}/metrics", tag = "series", request_body = MetricBatch,
    params(("id" = Uuid, Path, description = "Zixly client id"), SkipInvalidParam),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = LoadResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = LoadFailure, description = "Nothing written")))]
async fn upsert_metrics(
    auth: Auth<Editor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SkipInvalidParam>,
    ApiJson(batch): ApiJson<RowBatch>,
) -> ApiResult<Response> {
    upsert::<CustomMetricRow>(auth, state, id, q.skip_invalid.unwrap_or(false), batch).await
}
