//! One client's time series: `/clients/{id}/financials`, `/lead-events`, `/metrics`.
//!
//! Reads take `from` and `to` (ISO dates, both included; default: the 90 days ending today, UTC)
//! and optionally `bucket=day|week|month` to aggregate (weeks start on Monday; days are the
//! tenant's time zone for the timestamped series). Raw rows page by keyset on the series' natural
//! order; bucketed reads page by date windows of at most `limit` buckets. Money is a decimal
//! string (`"15000.00"`) and is summed per currency (reports convert currencies).

use std::future::Future;

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Days, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::clients::Page as DbPage;
use zixly_db::queries::series::{
    bucket_window, Bucket, BucketWindow, DateRange, FinancialBucket, FinancialCursor, FinancialRow,
    InstantCursor, LeadEventBucket, LeadEventRow, MetricBucket, MetricRow, SeriesQuery,
};
use zixly_db::{DbResult, TenantTx};

use crate::api::clients::{decode_cursor, encode_cursor};
use crate::api::csv::{self, CsvRow, FormatParam};
use crate::api::json_out;
use crate::api::json_out::WriteJson;
use crate::api::{Page, PageParams};
use crate::auth::{Auth, Viewer};
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

mod views;
pub use views::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_financials))
        .routes(routes!(read_lead_events))
        .routes(routes!(read_metrics))
}

/// Range and aggregation of a series read or report.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day, `YYYY-MM-DD` (default: 89 days before `to`).
    pub from: Option<String>,
    /// Last day, included, `YYYY-MM-DD` (default: today, UTC).
    pub to: Option<String>,
    /// Aggregate per `day`, `week` (Monday) or `month`; omit for raw rows.
    pub bucket: Option<String>,
}

fn parse_date(field: &str, v: &str, errors: &mut Vec<ErrorDetail>) -> Option<NaiveDate> {
    match zixly_domain::period::parse_iso_date(v) {
        Some(d) => Some(d),
        None => {
            errors.push(ErrorDetail::field(field, "must be a date YYYY-MM-DD"));
            None
        }
    }
}

impl RangeParams {
    /// The validated range; `default_days` when `from` is absent.
    pub fn range(&self, errors: &mut Vec<ErrorDetail>) -> Option<DateRange> {
        let to = match &self.to {
            Some(t) => parse_date("to", t, errors),
            None => Some(Utc::now().date_naive()),
        };
        let from = match &self.from {
            Some(f) => parse_date("from", f, errors),
            None => to.map(|t| t - Days::new(89)),
        };
        let (from, to) = (from?, to?);
        match DateRange::new(from, to) {
            Ok(r) if r.days() <= 366 * 100 => Some(r),
            Ok(_) => {
                errors.push(ErrorDetail::field(
                    "from",
                    "the range may span at most 100 years",
                ));
                None
            }
            Err(e) => {
                errors.push(ErrorDetail::field("from", e.to_string()));
                None
            }
        }
    }

    /// The range and optional bucket, or one 422 listing every invalid parameter.
    pub fn validated(&self) -> ApiResult<(DateRange, Option<Bucket>)> {
        let mut errors = Vec::new();
        let (range, bucket) = (self.range(&mut errors), self.bucket(&mut errors));
        match range.filter(|_| errors.is_empty()) {
            Some(range) => Ok((range, bucket)),
            None => Err(ApiError::validation(errors)),
        }
    }

    pub fn bucket(&self, errors: &mut Vec<ErrorDetail>) -> Option<Bucket> {
        let b = self.bucket.as_deref()?;
        match b.parse::<Bucket>() {
            Ok(b) => Some(b),
            Err(e) => {
                errors.push(ErrorDetail::field("bucket", e.to_string()));
                None
            }
        }
    }
}

/// The window of a bucketed read from its cursor (the first day of the window).
pub(crate) fn window(
    range: DateRange,
    bucket: Bucket,
    page: &PageParams,
    max: u32,
) -> ApiResult<BucketWindow> {
    let after: Option<NaiveDate> = decode_cursor(page.cursor.as_deref())?;
    bucket_window(range, bucket, after, max)
        .ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor of this range"))
}

/// Decimals (`rust_decimal::Decimal` from the database) as their exact text, e.g. `"15000.00"`.
pub(crate) fn money(d: impl std::fmt::Display) -> String {
    d.to_string()
}

const CSV_PAGE: u32 = 1000;

// ---------------------------------------------------------------------------------------------
// One read for every series

/// One kind of series: its two reads (raw rows, buckets), their views and CSV rows. The three
/// routes are [`read`] over the three kinds.
trait SeriesKind {
    /// The CSV file name.
    const NAME: &'static str;
    /// What narrows a read besides client and range: nothing, or a metric name.
    type Filter: Send + Sync + 'static;
    type Cursor: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Row: CsvRow + Send + Sync + 'static;
    type View: From<Self::Row> + WriteJson;
    type Bucket: CsvRow + Send + Sync + 'static;
    type BucketView: From<Self::Bucket> + Serialize;

    fn rows<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        filter: &'a Self::Filter,
        q: &'a SeriesQuery<Self::Cursor>,
    ) -> impl Future<Output = DbResult<DbPage<Self::Row, Self::Cursor>>> + Send + 'a;

    fn buckets<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        filter: &'a Self::Filter,
        bucket: Bucket,
        window: &'a BucketWindow,
    ) -> impl Future<Output = DbResult<Vec<Self::Bucket>>> + Send + 'a;
}

struct Financials;
impl SeriesKind for Financials {
    const NAME: &'static str = "financials";
    type Filter = ();
    type Cursor = FinancialCursor;
    type Row = FinancialRow;
    type View = FinancialView;
    type Bucket = FinancialBucket;
    type BucketView = FinancialBucketView;
    fn rows<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        _: &'a (),
        q: &'a SeriesQuery<FinancialCursor>,
    ) -> impl Future<Output = DbResult<DbPage<FinancialRow, FinancialCursor>>> + Send + 'a {
        tx.financials(client, q)
    }
    fn buckets<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        _: &'a (),
        bucket: Bucket,
        window: &'a BucketWindow,
    ) -> impl Future<Output = DbResult<Vec<FinancialBucket>>> + Send + 'a {
        tx.financial_buckets(client, bucket, window)
    }
}

struct LeadEvents;
impl SeriesKind for LeadEvents {
    const NAME: &'static str = "lead-events";
    type Filter = ();
    type Cursor = InstantCursor;
    type Row = LeadEventRow;
    type View = LeadEventView;
    type Bucket = LeadEventBucket;
    type BucketView = LeadEventBucketView;
    fn rows<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        _: &'a (),
        q: &'a SeriesQuery<InstantCursor>,
    ) -> impl Future<Output = DbResult<DbPage<LeadEventRow, InstantCursor>>> + Send + 'a {
        tx.lead_events(client, q)
    }
    fn buckets<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        _: &'a (),
        bucket: Bucket,
        window: &'a BucketWindow,
    ) -> impl Future<Output = DbResult<Vec<LeadEventBucket>>> + Send + 'a {
        tx.lead_event_buckets(client, bucket, window)
    }
}

struct Metrics;
impl SeriesKind for Metrics {
    const NAME: &'static str = "metrics";
    /// The metric name; `None` for every metric of the client.
    type Filter = Option<String>;
    type Cursor = InstantCursor;
    type Row = MetricRow;
    type View = MetricView;
    type Bucket = MetricBucket;
    type BucketView = MetricBucketView;
    fn rows<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        name: &'a Option<String>,
        q: &'a SeriesQuery<InstantCursor>,
    ) -> impl Future<Output = DbResult<DbPage<MetricRow, InstantCursor>>> + Send + 'a {
        tx.custom_metrics(client, name.as_deref(), q)
    }
    fn buckets<'a>(
        tx: &'a TenantTx,
        client: Uuid,
        name: &'a Option<String>,
        bucket: Bucket,
        window: &'a BucketWindow,
    ) -> impl Future<Output = DbResult<Vec<MetricBucket>>> + Send + 'a {
        tx.custom_metric_buckets(client, name.as_deref(), bucket, window)
    }
}

/// The read of every series: raw rows as a JSON page (the hand-written writer) or a streamed CSV
/// from the cursor to the end; buckets of one window as JSON, or of the whole range as CSV.
async fn read<K: SeriesKind>(
    auth: Auth<Viewer>,
    client: Uuid,
    filter: K::Filter,
    range: RangeParams,
    page: PageParams,
    format: FormatParam,
) -> ApiResult<Response> {
    let (r, bucket) = range.validated()?;
    let tx = auth.begin().await?;
    let csv_out = format.is_csv();
    let Some(b) = bucket else {
        let after: Option<K::Cursor> = decode_cursor(page.cursor.as_deref())?;
        if !csv_out {
            let q = SeriesQuery {
                range: r,
                after,
                limit: page.limit() as u32,
            };
            let p = K::rows(&tx, client, &filter, &q).await?;
            tx.commit().await?;
            let page = Page {
                data: p.items.into_iter().map(K::View::from).collect(),
                next_cursor: p.next.as_ref().map(encode_cursor),
            };
            return Ok(json_out::page_response(&page));
        }
        let mut q = SeriesQuery {
            range: r,
            after,
            limit: CSV_PAGE,
        };
        let first = K::rows(&tx, client, &filter, &q).await?;
        return Ok(csv::stream_rows::<K::Row, _, _>(
            K::NAME,
            move |mut sink| async move {
                let mut p = first;
                loop {
                    for row in &p.items {
                        if !sink.write(row).await {
                            return Ok(sink);
                        }
                    }
                    let Some(next) = p.next else { break };
                    q.after = Some(next);
                    p = K::rows(&tx, client, &filter, &q).await?;
                }
                tx.commit().await?;
                Ok(sink)
            },
        ));
    };
    let max = if csv_out {
        u32::MAX
    } else {
        page.limit() as u32
    };
    let w = window(r, b, &page, max)?;
    let rows = K::buckets(&tx, client, &filter, b, &w).await?;
    tx.commit().await?;
    if csv_out {
        return Ok(csv::stream_rows::<K::Bucket, _, _>(
            K::NAME,
            move |mut sink| async move {
                for x in &rows {
                    if !sink.write(x).await {
                        break;
                    }
                }
                Ok(sink)
            },
        ));
    }
    // The same bytes as the untagged `*Series::Buckets` of the schema.
    let page = Page {
        data: rows.into_iter().map(K::BucketView::from).collect(),
        next_cursor: w.next.as_ref().map(encode_cursor),
    };
    Ok(Json(page).into_response())
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Financial rows of a client
#[utoipa::path(get, path = "/clients/{id}/financials", tag = "series",
    params(("id" = Uuid, Path, description = "Zixly client id"), RangeParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = FinancialSeries), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn read_financials(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(range): ApiQuery<RangeParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    read::<Financials>(auth, id, (), range, page, format).await
}

/// Lead events of a client
#[utoipa::path(get, path = "/clients/{id}/lead-events", tag = "series",
    params(("id" = Uuid, Path, description = "Zixly client id"), RangeParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = LeadEventSeries), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn read_lead_events(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(range): ApiQuery<RangeParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    read::<LeadEvents>(auth, id, (), range, page, format).await
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricNameParam {
    /// Metric name, e.g. `project_delivery_days`; omit for every metric of the client.
    pub name: Option<String>,
}

/// Custom metric values of a client
#[utoipa::path(get, path = "/clients/{id}/metrics", tag = "series",
    params(("id" = Uuid, Path, description = "Zixly client id"), MetricNameParam, RangeParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = MetricSeries), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn read_metrics(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(name): ApiQuery<MetricNameParam>,
    ApiQuery(range): ApiQuery<RangeParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    let name: Option<String> = name
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    read::<Metrics>(auth, id, name, range, page, format).await
}
