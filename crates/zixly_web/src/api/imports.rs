//! CSV upload: `POST /imports` (EDITOR+), `multipart/form-data` streamed into the loader.
//!
//! Form fields, in this order (browsers send a form's fields in document order):
//! - `dataset`: `financials`, `lead_events` or `custom_metrics`;
//! - `skip_invalid` (optional): `true` loads the valid lines even when some are invalid (also
//!   accepted as the query parameter `?skip_invalid=true`); default all or nothing;
//! - `file`: the CSV (header on line 1, columns by name; the layouts of `zixly import`).
//!
//! The file is never held in memory: it is spooled to a temporary file before any database
//! connection is taken, then parsed on a thread into the loader's `COPY`
//! (`zixly_db::loader::load_csv`), so memory stays flat (see `crate::imports`, which the
//! `/imports` page shares). The route has its own size limit (`WebConfig::import_body_limit`,
//! default 256 MiB; over it: 413, nothing written), idle limit (`import_idle_timeout`: no data for
//! that long is 408 `upload_stalled`) and time limit (`WebConfig::import_timeout`) instead of the
//! API defaults. A tenant runs at most `imports_per_tenant` imports at once and the server
//! `imports_total` (429 `too_many_imports` / `imports_busy` with `Retry-After`). A record
//! (line) longer than 1 MiB ends the file with `line L: record longer than 1048576 bytes
//! (unclosed quote at line K?)`.
//!
//! The answer is the per-line validation result ([`LoadResult`]): 200 when the rows are in the
//! database (`succeeded`, or `partial` with `skip_invalid`), 422 when nothing was written — then
//! the body is the error shape (`error.details` = the line errors) with the same result fields
//! beside it ([`LoadFailure`]). Lines are file lines (header = line 1). Rows without a
//! `source_system` get `csv`, as with `zixly import`, so the same file uploaded twice (or once
//! here and once through the CLI) is all `unchanged` the second time.
//!
//! Audit: one `import.csv` row per upload, whatever the outcome, written by the loader in the
//! transaction that records the load's `sync_runs` row (for a successful load the very
//! transaction that wrote the rows; see `LoadOptions::audit`).

use std::collections::BTreeMap;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::loader::{LoadOptions, LoadReport, LoadStatus, Loadable};
use zixly_domain::ingest::{CustomMetricRow, FinancialRow, LeadEventRow};

use crate::auth::{Auth, Editor};
use crate::error::{
    ApiError, ApiQuery, ApiResult, ErrorBody, ErrorDetail, ErrorObject, ShapedError,
};
use crate::imports::{self, ErrorKinds, Spooled};
use crate::AppState;

/// The matched route of the upload (the request middleware gives it `import_timeout`).
pub const ROUTE: &str = "/api/v1/imports";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_import))
        // The handler counts the file's bytes against `import_body_limit` itself (the limit is
        // configuration, not known when the router is built); other fields are capped small.
        .layer(DefaultBodyLimit::disable())
}

/// The outcome of a load, as the API reports it (CSV uploads and batch upserts).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoadResult {
    /// `succeeded` (every row is in the database), `partial` (the invalid rows were skipped) or
    /// `failed` (nothing written).
    pub status: String,
    pub inserted: u64,
    pub updated: u64,
    /// Rows identical to what was stored (not rewritten).
    pub unchanged: u64,
    /// Financial rows dated before the tenant's raw-data retention cutoff
    /// (`GET /settings/retention`): not stored, because their month is kept as a total already.
    pub before_retention: u64,
    /// Rows not loaded because of an error.
    pub rejected: u64,
    /// Rows dropped because an earlier line of the same upload is the very same row (a line
    /// copied twice): loaded once, neither rejected nor counted twice.
    pub duplicates_ignored: u64,
    /// The first 100 errors in line (row) order: `line`/`column` for uploads, `row`/`field` for
    /// batches.
    pub errors: Vec<ErrorDetail>,
    /// Errors beyond `errors`.
    pub errors_not_listed: u64,
    /// Every error (listed or not) counted by column; `(line)` for errors about a whole line or
    /// row.
    pub error_counts: BTreeMap<String, u64>,
    /// The `sync_runs` row that records this load.
    pub sync_run_id: Uuid,
}

/// A load that wrote nothing: the error shape, with the load's result beside it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoadFailure {
    pub error: ErrorObject,
    #[serde(flatten)]
    pub result: LoadResult,
}

/// The answer for a finished load: 200 with [`LoadResult`], or 422 with [`LoadFailure`] when
/// nothing was written. `detail` turns a loader error into the API's detail.
pub(crate) fn answer(
    report: &LoadReport,
    kinds: &ErrorKinds,
    detail: impl Fn(&zixly_domain::ingest::RowError) -> ErrorDetail,
) -> Response {
    let errors: Vec<ErrorDetail> = report.errors.iter().map(&detail).collect();
    let result = LoadResult {
        status: report.status.as_str().to_string(),
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        before_retention: report.before_retention,
        rejected: report.rejected,
        duplicates_ignored: report.duplicates_ignored,
        errors_not_listed: report.errors_not_listed(),
        error_counts: kinds.0.clone(),
        sync_run_id: report.sync_run_id,
        errors,
    };
    if report.status != LoadStatus::Failed {
        return Json(result).into_response();
    }
    let more = match result.errors_not_listed {
        0 => String::new(),
        n => format!(
            " ({n} more errors not listed; by column: {})",
            kinds.describe()
        ),
    };
    let message = match &report.aborted {
        Some(reason) => format!("nothing written: {reason}"),
        None => format!(
            "nothing written: {} rows rejected with {} errors{more}",
            report.rejected, report.error_count
        ),
    };
    let failure = LoadFailure {
        error: ErrorObject {
            code: "validation_failed".into(),
            message,
            details: result.errors.clone(),
        },
        result,
    };
    let mut response = (StatusCode::UNPROCESSABLE_ENTITY, Json(failure)).into_response();
    response.extensions_mut().insert(ShapedError);
    response
}

/// `?skip_invalid=true`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SkipInvalidParam {
    /// Load the valid rows even when some are invalid (default: all or nothing).
    pub skip_invalid: Option<bool>,
}

/// The dataset of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    Financials,
    LeadEvents,
    CustomMetrics,
}

impl DatasetName {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "financials" => DatasetName::Financials,
            "lead_events" => DatasetName::LeadEvents,
            "custom_metrics" => DatasetName::CustomMetrics,
            _ => return None,
        })
    }
}

/// The form of an upload (documentation only: the handler streams the parts).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// Must come before `file`.
    dataset: DatasetName,
    /// `true` to load the valid lines when some are invalid; before `file`.
    skip_invalid: Option<bool>,
    /// The CSV file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn parse_flag(name: &str, v: &str) -> ApiResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" | "" => Ok(false),
        _ => Err(ApiError::invalid_field(name, "must be true or false")),
    }
}

/// Upload a CSV file into a dataset
///
/// Streams the file through the same loader and rules as `zixly import` and answers the
/// per-line validation result. Atomic by default (any invalid line: nothing written, 422);
/// `skip_invalid` loads the valid lines (200, status `partial`).
#[utoipa::path(post, path = "/imports", tag = "imports",
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    params(SkipInvalidParam),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses(
        (status = 200, body = LoadResult, description = "Loaded: `succeeded`, or `partial` with `skip_invalid`"),
        (status = 400, body = ErrorBody, description = "Not a multipart body"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 408, body = ErrorBody, description = "`upload_stalled`: no data arrived for `import_idle_timeout`; nothing written"),
        (status = 413, body = ErrorBody, description = "The file is over `import_body_limit`; nothing written"),
        (status = 429, body = ErrorBody, description = "`too_many_imports` (this tenant's imports) or `imports_busy` (the server's); see `Retry-After`"),
        (status = 422, body = LoadFailure, description = "Nothing written: the line errors, or a form field is missing or invalid")))]
async fn upload_import(
    auth: Auth<Editor>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SkipInvalidParam>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut multipart = imports::open_multipart(multipart)?;
    // Before any byte of the body is read (see `crate::imports`).
    let slot = state.imports.tenant_slot(auth.tenant_id())?;
    let idle = state.config.import_idle_timeout;
    let mut dataset = None;
    let mut skip_invalid = query.skip_invalid.unwrap_or(false);
    while let Some(field) = imports::next_field(&mut multipart, idle).await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "dataset" => {
                let v = imports::text_field(field, "dataset", idle).await?;
                dataset = Some(DatasetName::parse(&v).ok_or_else(|| {
                    ApiError::invalid_field(
                        "dataset",
                        "must be financials, lead_events or custom_metrics",
                    )
                })?);
            }
            "skip_invalid" => {
                let v = imports::text_field(field, "skip_invalid", idle).await?;
                skip_invalid |= parse_flag("skip_invalid", &v)?;
            }
            "file" => {
                let Some(dataset) = dataset else {
                    return Err(ApiError::invalid_field(
                        "dataset",
                        "missing: send the `dataset` field before `file`",
                    ));
                };
                // Fields after the file are not read.
                let file = imports::spool(field, state.config.import_body_limit, idle).await?;
                let _run = slot.run_slot().await?;
                return match dataset {
                    DatasetName::Financials => {
                        import::<FinancialRow>(&auth, &state, skip_invalid, &file).await
                    }
                    DatasetName::LeadEvents => {
                        import::<LeadEventRow>(&auth, &state, skip_invalid, &file).await
                    }
                    DatasetName::CustomMetrics => {
                        import::<CustomMetricRow>(&auth, &state, skip_invalid, &file).await
                    }
                };
            }
            other => {
                return Err(ApiError::invalid_field(
                    other,
                    "unknown form field (expected dataset, skip_invalid, file)",
                ))
            }
        }
    }
    Err(ApiError::invalid_field(
        "file",
        "missing: send the CSV file as the `file` field",
    ))
}

/// The loader options of a CSV upload by `auth` (this route's and the `/imports` page's): source
/// `csv`, the uploader as the trigger, one `import.csv` audit row completed with the outcome.
pub(crate) fn upload_options<T: Loadable>(
    auth: &Auth<Editor>,
    file_name: Option<String>,
    skip_invalid: bool,
) -> LoadOptions {
    LoadOptions {
        file_name: file_name.clone(),
        skip_invalid,
        triggered_by: Some(auth.user_id()),
        audit: Some(auth.audit(
            "import.csv",
            "dataset",
            Some(T::DATASET.as_str().to_string()),
            json!({"file_name": file_name, "skip_invalid": skip_invalid}),
        )),
        ..LoadOptions::new("csv")
    }
}

async fn import<T: Loadable>(
    auth: &Auth<Editor>,
    state: &AppState,
    skip_invalid: bool,
    file: &Spooled,
) -> ApiResult<Response> {
    let (report, kinds) = imports::load_spooled::<T>(state, auth, file, skip_invalid).await?;
    Ok(answer(&report, &kinds, |e| {
        ErrorDetail::line(e.line, e.column.clone(), e.reason.clone())
    }))
}
