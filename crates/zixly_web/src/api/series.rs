//! One client's time series: `/clients/{id}/financials`, `/lead-events`, `/metrics`.
//!
//! Reads take `from` and `to` (ISO dates, both included; default: the 90 days ending today, UTC)
//! and optionally `bucket=day|week|month` to aggregate (weeks start on Monday; days are the
//! tenant's time zone for the timestamped series). Raw rows page by keyset on the series' natural
//! order; bucketed reads page by date windows of at most `limit` buckets. Money is a decimal
//! string (`"15000.00"`) and is summed per currency (reports convert currencies).

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::series::{
    bucket_window, Bucket, BucketWindow, DateRange, FinancialBucket, FinancialCursor, FinancialRow,
    InstantCursor, LeadEventBucket, LeadEventRow, MetricBucket, MetricRow, SeriesQuery,
};

use crate::api::clients::{decode_cursor, encode_cursor};
use crate::api::csv::{self, FormatParam};
use crate::api::{json_out, json_time};
use crate::api::{Page, PageParams};
use crate::auth::{Auth, Viewer};
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

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
    match NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
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

// ---------------------------------------------------------------------------------------------
// Views

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinancialView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::date")]
    pub record_date: NaiveDate,
    /// Decimal string, e.g. `"15000.00"`.
    #[schema(value_type = String)]
    pub revenue: Decimal,
    #[schema(value_type = String)]
    pub expenses: Decimal,
    #[schema(value_type = String)]
    pub net_profit: Decimal,
    #[schema(value_type = String)]
    pub cash_flow: Decimal,
    pub currency: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl From<FinancialRow> for FinancialView {
    fn from(r: FinancialRow) -> Self {
        FinancialView {
            id: r.id,
            record_date: r.record_date,
            revenue: r.revenue,
            expenses: r.expenses,
            net_profit: r.net_profit,
            cash_flow: r.cash_flow,
            currency: r.currency,
            source_system: r.source_system,
            external_id: r.external_id,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinancialBucketView {
    /// First day of the bucket (the range's first day for a clipped first bucket is still the
    /// bucket's own first day).
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub currency: String,
    /// Rows summed.
    pub rows: i64,
    #[schema(value_type = String)]
    pub revenue: Decimal,
    #[schema(value_type = String)]
    pub expenses: Decimal,
    #[schema(value_type = String)]
    pub net_profit: Decimal,
    #[schema(value_type = String)]
    pub cash_flow: Decimal,
}

impl From<FinancialBucket> for FinancialBucketView {
    fn from(b: FinancialBucket) -> Self {
        FinancialBucketView {
            bucket_start: b.bucket_start,
            currency: b.currency,
            rows: b.rows,
            revenue: b.revenue,
            expenses: b.expenses,
            net_profit: b.net_profit,
            cash_flow: b.cash_flow,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadEventView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::utc")]
    pub event_date: DateTime<Utc>,
    pub lead_id: String,
    pub stage: String,
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
    pub currency: String,
    /// `active`, `won`, `lost` or `stale`.
    pub status: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl From<LeadEventRow> for LeadEventView {
    fn from(r: LeadEventRow) -> Self {
        LeadEventView {
            id: r.id,
            event_date: r.event_date,
            lead_id: r.lead_id,
            stage: r.stage,
            value: r.value,
            currency: r.currency,
            status: r.status,
            source_system: r.source_system,
            external_id: r.external_id,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadEventBucketView {
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub stage: String,
    pub status: String,
    pub currency: String,
    pub events: i64,
    /// Distinct leads.
    pub leads: i64,
    #[schema(value_type = String)]
    pub value: Decimal,
}

impl From<LeadEventBucket> for LeadEventBucketView {
    fn from(b: LeadEventBucket) -> Self {
        LeadEventBucketView {
            bucket_start: b.bucket_start,
            stage: b.stage,
            status: b.status,
            currency: b.currency,
            events: b.events,
            leads: b.leads,
            value: b.value,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricView {
    pub id: Uuid,
    pub metric_name: String,
    /// Decimal string with up to 4 places.
    #[schema(value_type = String)]
    pub metric_value: Decimal,
    pub unit: Option<String>,
    #[serde(serialize_with = "json_time::utc")]
    pub record_date: DateTime<Utc>,
    pub source_system: String,
    pub metadata: Option<serde_json::Value>,
}

impl From<MetricRow> for MetricView {
    fn from(r: MetricRow) -> Self {
        MetricView {
            id: r.id,
            metric_name: r.metric_name,
            metric_value: r.metric_value,
            unit: r.unit,
            record_date: r.record_date,
            source_system: r.source_system,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricBucketView {
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub metric_name: String,
    pub unit: Option<String>,
    pub count: i64,
    #[schema(value_type = String)]
    pub sum: Decimal,
    #[schema(value_type = String)]
    pub avg: Decimal,
    #[schema(value_type = String)]
    pub min: Decimal,
    #[schema(value_type = String)]
    pub max: Decimal,
}

impl From<MetricBucket> for MetricBucketView {
    fn from(b: MetricBucket) -> Self {
        MetricBucketView {
            bucket_start: b.bucket_start,
            metric_name: b.metric_name,
            unit: b.unit,
            count: b.count,
            sum: b.sum,
            avg: b.avg,
            min: b.min,
            max: b.max,
        }
    }
}

/// Raw rows, or buckets when `bucket` is given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FinancialSeries {
    Rows(Page<FinancialView>),
    Buckets(Page<FinancialBucketView>),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LeadEventSeries {
    Rows(Page<LeadEventView>),
    Buckets(Page<LeadEventBucketView>),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetricSeries {
    Rows(Page<MetricView>),
    Buckets(Page<MetricBucketView>),
}

const CSV_PAGE: u32 = 1000;

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn json_text(v: &Option<serde_json::Value>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
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
    let (r, bucket) = range.validated()?;
    let tx = auth.begin().await?;
    match (bucket, format.is_csv()) {
        (None, false) => {
            let after: Option<FinancialCursor> = decode_cursor(page.cursor.as_deref())?;
            let p = tx
                .financials(
                    id,
                    &SeriesQuery {
                        range: r,
                        after,
                        limit: page.limit() as u32,
                    },
                )
                .await?;
            tx.commit().await?;
            let page = Page {
                data: p.items.into_iter().map(FinancialView::from).collect(),
                next_cursor: p.next.as_ref().map(encode_cursor),
            };
            Ok(json_out::page_response(&page))
        }
        (None, true) => {
            let mut q = SeriesQuery {
                range: r,
                after: decode_cursor(page.cursor.as_deref())?,
                limit: CSV_PAGE,
            };
            let first = tx.financials(id, &q).await?;
            let header = [
                "id",
                "record_date",
                "revenue",
                "expenses",
                "net_profit",
                "cash_flow",
                "currency",
                "source_system",
                "external_id",
                "metadata",
            ];
            Ok(csv::stream(
                "financials",
                &header,
                move |mut sink| async move {
                    let mut p = first;
                    loop {
                        for f in &p.items {
                            let cells = [
                                f.id.to_string(),
                                f.record_date.to_string(),
                                f.revenue.to_string(),
                                f.expenses.to_string(),
                                f.net_profit.to_string(),
                                f.cash_flow.to_string(),
                                f.currency.clone(),
                                f.source_system.clone(),
                                opt(&f.external_id),
                                json_text(&f.metadata),
                            ];
                            if !sink.row(&cells).await {
                                return Ok(sink);
                            }
                        }
                        let Some(next) = p.next else { break };
                        q.after = Some(next);
                        p = tx.financials(id, &q).await?;
                    }
                    tx.commit().await?;
                    Ok(sink)
                },
            ))
        }
        (Some(b), csv_out) => {
            let w = window(
                r,
                b,
                &page,
                if csv_out {
                    u32::MAX
                } else {
                    page.limit() as u32
                },
            )?;
            let rows = tx.financial_buckets(id, b, &w).await?;
            tx.commit().await?;
            if csv_out {
                let header = [
                    "bucket_start",
                    "currency",
                    "rows",
                    "revenue",
                    "expenses",
                    "net_profit",
                    "cash_flow",
                ];
                return Ok(csv::stream(
                    "financials",
                    &header,
                    move |mut sink| async move {
                        for x in rows {
                            let cells = [
                                x.bucket_start.to_string(),
                                x.currency,
                                x.rows.to_string(),
                                x.revenue.to_string(),
                                x.expenses.to_string(),
                                x.net_profit.to_string(),
                                x.cash_flow.to_string(),
                            ];
                            if !sink.row(&cells).await {
                                break;
                            }
                        }
                        Ok(sink)
                    },
                ));
            }
            let page = Page {
                data: rows.into_iter().map(FinancialBucketView::from).collect(),
                next_cursor: w.next.as_ref().map(encode_cursor),
            };
            Ok(Json(FinancialSeries::Buckets(page)).into_response())
        }
    }
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
    let (r, bucket) = range.validated()?;
    let tx = auth.begin().await?;
    match (bucket, format.is_csv()) {
        (None, false) => {
            let after: Option<InstantCursor> = decode_cursor(page.cursor.as_deref())?;
            let p = tx
                .lead_events(
                    id,
                    &SeriesQuery {
                        range: r,
                        after,
                        limit: page.limit() as u32,
                    },
                )
                .await?;
            tx.commit().await?;
            let page = Page {
                data: p.items.into_iter().map(LeadEventView::from).collect(),
                next_cursor: p.next.as_ref().map(encode_cursor),
            };
            Ok(json_out::page_response(&page))
        }
        (None, true) => {
            let mut q = SeriesQuery {
                range: r,
                after: decode_cursor(page.cursor.as_deref())?,
                limit: CSV_PAGE,
            };
            let first = tx.lead_events(id, &q).await?;
            let header = [
                "id",
                "event_date",
                "lead_id",
                "stage",
                "value",
                "currency",
                "status",
                "source_system",
                "external_id",
                "metadata",
            ];
            Ok(csv::stream(
                "lead-events",
                &header,
                move |mut sink| async move {
                    let mut p = first;
                    loop {
                        for e in &p.items {
                            let cells = [
                                e.id.to_string(),
                                e.event_date.to_rfc3339(),
                                e.lead_id.clone(),
                                e.stage.clone(),
                                e.value.map(|v| v.to_string()).unwrap_or_default(),
                                e.currency.clone(),
                                e.status.clone(),
                                e.source_system.clone(),
                                opt(&e.external_id),
                                json_text(&e.metadata),
                            ];
                            if !sink.row(&cells).await {
                                return Ok(sink);
                            }
                        }
                        let Some(next) = p.next else { break };
                        q.after = Some(next);
                        p = tx.lead_events(id, &q).await?;
                    }
                    tx.commit().await?;
                    Ok(sink)
                },
            ))
        }
        (Some(b), csv_out) => {
            let w = window(
                r,
                b,
                &page,
                if csv_out {
                    u32::MAX
                } else {
                    page.limit() as u32
                },
            )?;
            let rows = tx.lead_event_buckets(id, b, &w).await?;
            tx.commit().await?;
            if csv_out {
                let header = [
                    "bucket_start",
                    "stage",
                    "status",
                    "currency",
                    "events",
                    "leads",
                    "value",
                ];
                return Ok(csv::stream(
                    "lead-events",
                    &header,
                    move |mut sink| async move {
                        for x in rows {
                            let cells = [
                                x.bucket_start.to_string(),
                                x.stage,
                                x.status,
                                x.currency,
                                x.events.to_string(),
                                x.leads.to_string(),
                                x.value.to_string(),
                            ];
                            if !sink.row(&cells).await {
                                break;
                            }
                        }
                        Ok(sink)
                    },
                ));
            }
            let page = Page {
                data: rows.into_iter().map(LeadEventBucketView::from).collect(),
                next_cursor: w.next.as_ref().map(encode_cursor),
            };
            Ok(Json(LeadEventSeries::Buckets(page)).into_response())
        }
    }
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
    let (r, bucket) = range.validated()?;
    let name: Option<String> = name
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let tx = auth.begin().await?;
    match (bucket, format.is_csv()) {
        (None, false) => {
            let after: Option<InstantCursor> = decode_cursor(page.cursor.as_deref())?;
            let p = tx
                .custom_metrics(
                    id,
                    name.as_deref(),
                    &SeriesQuery {
                        range: r,
                        after,
                        limit: page.limit() as u32,
                    },
                )
                .await?;
            tx.commit().await?;
            let page = Page {
                data: p.items.into_iter().map(MetricView::from).collect(),
                next_cursor: p.next.as_ref().map(encode_cursor),
            };
            Ok(json_out::page_response(&page))
        }
        (None, true) => {
            let mut q = SeriesQuery {
                range: r,
                after: decode_cursor(page.cursor.as_deref())?,
                limit: CSV_PAGE,
            };
            let first = tx.custom_metrics(id, name.as_deref(), &q).await?;
            let header = [
                "id",
                "metric_name",
                "metric_value",
                "unit",
                "record_date",
                "source_system",
                "metadata",
            ];
            Ok(csv::stream(
                "metrics",
                &header,
                move |mut sink| async move {
                    let mut p = first;
                    loop {
                        for m in &p.items {
                            let cells = [
                                m.id.to_string(),
                                m.metric_name.clone(),
                                m.metric_value.to_string(),
                                opt(&m.unit),
                                m.record_date.to_rfc3339(),
                                m.source_system.clone(),
                                json_text(&m.metadata),
                            ];
                            if !sink.row(&cells).await {
                                return Ok(sink);
                            }
                        }
                        let Some(next) = p.next else { break };
                        q.after = Some(next);
                        p = tx.custom_metrics(id, name.as_deref(), &q).await?;
                    }
                    tx.commit().await?;
                    Ok(sink)
                },
            ))
        }
        (Some(b), csv_out) => {
            let w = window(
                r,
                b,
                &page,
                if csv_out {
                    u32::MAX
                } else {
                    page.limit() as u32
                },
            )?;
            let rows = tx.custom_metric_buckets(id, name.as_deref(), b, &w).await?;
            tx.commit().await?;
            if csv_out {
                let header = [
                    "bucket_start",
                    "metric_name",
                    "unit",
                    "count",
                    "sum",
                    "avg",
                    "min",
                    "max",
                ];
                return Ok(csv::stream(
                    "metrics",
                    &header,
                    move |mut sink| async move {
                        for x in rows {
                            let cells = [
                                x.bucket_start.to_string(),
                                x.metric_name,
                                x.unit.unwrap_or_default(),
                                x.count.to_string(),
                                x.sum.to_string(),
                                x.avg.to_string(),
                                x.min.to_string(),
                                x.max.to_string(),
                            ];
                            if !sink.row(&cells).await {
                                break;
                            }
                        }
                        Ok(sink)
                    },
                ));
            }
            let page = Page {
                data: rows.into_iter().map(MetricBucketView::from).collect(),
                next_cursor: w.next.as_ref().map(encode_cursor),
            };
            Ok(Json(MetricSeries::Buckets(page)).into_response())
        }
    }
}
