//! Reports: `/reports/profitability`, `/reports/funnel`, `/reports/metrics` (VIEWER+).
//!
//! Money is in the tenant's base currency, converted with the dated rates of `fx_rates` (policy in
//! `zixly_db::queries::reports`). A figure that needs a missing rate is `null`, the row says
//! `fx_missing: true`, and `missing_rates` lists the (currency, date) pairs — a missing rate is
//! never taken as 1.

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::clients::ClientCursor;
use zixly_db::queries::reports::{
    FunnelQuery, FunnelStage, MetricReportRow, MissingRate, PeriodFigures, ProfitabilityQuery,
    ProfitabilityRow,
};
use zixly_db::queries::series::DateRange;

use crate::api::clients::{decode_cursor, encode_cursor};
use crate::api::csv::{self, CsvRow, FormatParam};
use crate::api::metrics::AggregationName;
use crate::api::series::{money, window, RangeParams};
use crate::api::PageParams;
use crate::auth::{Auth, Viewer};
use crate::error::{ApiError, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(profitability))
        .routes(routes!(funnel))
        .routes(routes!(metric_report))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MissingRateView {
    pub currency: String,
    pub date: NaiveDate,
}

fn missing_views(m: &[MissingRate]) -> Vec<MissingRateView> {
    m.iter()
        .map(|m| MissingRateView {
            currency: m.currency.clone(),
            date: m.date,
        })
        .collect()
}

/// One client's profitability. Money in the base currency as decimal strings; `null` where a rate
/// is missing. `margin` is `net_profit / revenue` as a fraction (`"0.250"` = 25.0 %, rounded once to the 0.1 % every page shows: `zixly_domain::figures`), `null` when
/// revenue is zero.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfitabilityRowView {
    /// The client's external identifier (`client_kpis.client_id`).
    pub client_id: String,
    pub client_name: String,
    /// Zixly's id of the client (for `/clients/{id}`).
    pub id: Uuid,
    pub revenue: Option<String>,
    pub expenses: Option<String>,
    pub net_profit: Option<String>,
    pub margin: Option<String>,
    pub cash_flow: Option<String>,
    /// Financial rows in the period.
    pub records: Option<i64>,
    pub previous_revenue: Option<String>,
    pub previous_expenses: Option<String>,
    pub previous_net_profit: Option<String>,
    pub previous_margin: Option<String>,
    pub previous_cash_flow: Option<String>,
    pub previous_records: Option<i64>,
    /// Whether a needed exchange rate is missing (see `missing_rates`).
    pub fx_missing: bool,
    pub missing_rates: Vec<MissingRateView>,
}

struct Flat {
    revenue: Option<String>,
    expenses: Option<String>,
    net_profit: Option<String>,
    margin: Option<String>,
    cash_flow: Option<String>,
    records: Option<i64>,
}

fn flat(f: &Option<PeriodFigures>) -> Flat {
    match f {
        None => Flat {
            revenue: None,
            expenses: None,
            net_profit: None,
            margin: None,
            cash_flow: None,
            records: None,
        },
        Some(f) => Flat {
            revenue: Some(money(f.revenue)),
            expenses: Some(money(f.expenses)),
            net_profit: Some(money(f.net_profit)),
            margin: f.margin.map(money),
            cash_flow: Some(money(f.cash_flow)),
            records: Some(f.records),
        },
    }
}

impl From<ProfitabilityRow> for ProfitabilityRowView {
    fn from(r: ProfitabilityRow) -> Self {
        let (c, p) = (flat(&r.current), flat(&r.previous));
        ProfitabilityRowView {
            client_id: r.client_id,
            client_name: r.client_name,
            id: r.client_kpi_id,
            revenue: c.revenue,
            expenses: c.expenses,
            net_profit: c.net_profit,
            margin: c.margin,
            cash_flow: c.cash_flow,
            records: c.records,
            previous_revenue: p.revenue,
            previous_expenses: p.expenses,
            previous_net_profit: p.net_profit,
            previous_margin: p.margin,
            previous_cash_flow: p.cash_flow,
            previous_records: p.records,
            fx_missing: !r.missing_rates.is_empty(),
            missing_rates: missing_views(&r.missing_rates),
        }
    }
}

impl CsvRow for ProfitabilityRowView {
    const HEADER: &'static [&'static str] = &[
        "client_id",
        "client_name",
        "revenue",
        "expenses",
        "net_profit",
        "margin",
        "cash_flow",
        "records",
        "previous_revenue",
        "previous_expenses",
        "previous_net_profit",
        "previous_margin",
        "previous_cash_flow",
        "previous_records",
        "fx_missing",
    ];
    fn cells(&self) -> Vec<String> {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let n = |s: &Option<i64>| s.map(|n| n.to_string()).unwrap_or_default();
        vec![
            self.client_id.clone(),
            self.client_name.clone(),
            o(&self.revenue),
            o(&self.expenses),
            o(&self.net_profit),
            o(&self.margin),
            o(&self.cash_flow),
            n(&self.records),
            o(&self.previous_revenue),
            o(&self.previous_expenses),
            o(&self.previous_net_profit),
            o(&self.previous_margin),
            o(&self.previous_cash_flow),
            n(&self.previous_records),
            self.fx_missing.to_string(),
        ]
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfitabilityReportView {
    pub data: Vec<ProfitabilityRowView>,
    /// Clients are paged by name; pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
    /// ISO 4217 code every amount is expressed in.
    pub base_currency: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The period just before `from` it is compared with: as many whole calendar months when
    /// `from`..`to` is whole months (a quarter's is the quarter before), else as many days.
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    /// Every (currency, date) without a rate on this page.
    pub missing_rates: Vec<MissingRateView>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// First day, `YYYY-MM-DD` (default: 89 days before `to`).
    pub from: Option<String>,
    /// Last day, included (default: today, UTC).
    pub to: Option<String>,
}

fn period(p: &PeriodParams) -> ApiResult<DateRange> {
    let params = RangeParams {
        from: p.from.clone(),
        to: p.to.clone(),
        bucket: None,
    };
    params.validated().map(|(range, _)| range)
}

/// Profitability per client, with the previous period
#[utoipa::path(get, path = "/reports/profitability", tag = "reports",
    params(PeriodParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = ProfitabilityReportView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn profitability(
    auth: Auth<Viewer>,
    ApiQuery(p): ApiQuery<PeriodParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    let range = period(&p)?;
    let after: Option<ClientCursor> = decode_cursor(page.cursor.as_deref())?;
    let tx = auth.begin().await?;
    if format.is_csv() {
        let mut q = ProfitabilityQuery {
            range,
            after,
            limit: 500,
        };
        let first = tx.profitability(&q).await?;
        return Ok(csv::stream_rows::<ProfitabilityRowView, _, _>(
            "profitability",
            move |mut sink| async move {
                let mut report = first;
                loop {
                    for row in report.rows {
                        if !sink.write(&ProfitabilityRowView::from(row)).await {
                            return Ok(sink);
                        }
                    }
                    let Some(next) = report.next else { break };
                    q.after = Some(next);
                    report = tx.profitability(&q).await?;
                }
                tx.commit().await?;
                Ok(sink)
            },
        ));
    }
    let report = tx
        .profitability(&ProfitabilityQuery {
            range,
            after,
            limit: page.limit() as u32,
        })
        .await?;
    tx.commit().await?;
    Ok(Json(ProfitabilityReportView {
        next_cursor: report.next.as_ref().map(encode_cursor),
        base_currency: report.base_currency,
        from: report.period.from(),
        to: report.period.to(),
        previous_from: report.previous_period.from(),
        previous_to: report.previous_period.to(),
        missing_rates: missing_views(&report.missing_rates),
        data: report
            .rows
            .into_iter()
            .map(ProfitabilityRowView::from)
            .collect(),
    })
    .into_response())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FunnelStatusView {
    /// `active`, `won`, `lost` or `stale`.
    pub status: String,
    pub events: i64,
    /// Sum of the events' values in the base currency; `null` when a rate is missing.
    pub value: Option<String>,
}

/// One stage of the funnel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FunnelStageView {
    pub stage: String,
    /// 1-based order in the funnel.
    pub position: u32,
    /// Distinct leads with an event at this stage.
    pub leads: i64,
    pub events: i64,
    pub value: Option<String>,
    /// Share of the previous stage's leads that also reached this stage (`"0.500"` = 50.0 %, 3 places);
    /// `null` for the first stage.
    pub conversion_from_previous: Option<String>,
    pub statuses: Vec<FunnelStatusView>,
}

impl From<FunnelStage> for FunnelStageView {
    fn from(s: FunnelStage) -> Self {
        FunnelStageView {
            stage: s.stage,
            position: s.position,
            leads: s.leads,
            events: s.events,
            value: s.value.map(money),
            conversion_from_previous: s.conversion_from_previous.map(money),
            statuses: s
                .statuses
                .into_iter()
                .map(|st| FunnelStatusView {
                    status: st.status,
                    events: st.events,
                    value: st.value.map(money),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunnelReportView {
    pub data: Vec<FunnelStageView>,
    /// Always `null`: a funnel is one page.
    pub next_cursor: Option<String>,
    /// The client's external identifier; `null` for the funnel of all clients.
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub base_currency: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub missing_rates: Vec<MissingRateView>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// The client: its external identifier (`client_id` as in the profitability report), or its
    /// Zixly id. Omitted: the funnel of all the tenant's clients together (a lead id under two
    /// clients is two leads).
    pub client_id: Option<String>,
    /// First day of the events (tenant's time zone); omit both `from` and `to` for all time.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Comma-separated stage order, e.g. `lead,qualified,proposal`; other stages follow in their
    /// natural order (where they fall in the leads' histories on average).
    pub stages: Option<String>,
}

/// Sales funnel of one client, or of all clients
#[utoipa::path(get, path = "/reports/funnel", tag = "reports",
    params(FunnelParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = FunnelReportView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn funnel(
    auth: Auth<Viewer>,
    ApiQuery(p): ApiQuery<FunnelParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    let range = if p.from.is_none() && p.to.is_none() {
        None
    } else {
        Some(period(&PeriodParams {
            from: p.from.clone(),
            to: p.to.clone(),
        })?)
    };
    let key = p.client_id.as_deref().map(str::trim);
    if key == Some("") {
        return Err(ApiError::validation(vec![ErrorDetail::field(
            "client_id",
            "must not be blank (omit it for all clients)",
        )]));
    }
    let stages = p.stages.as_ref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    let tx = auth.begin().await?;
    let client = match key {
        None => None,
        Some(key) => {
            let found = match tx.get_client_by_external_id(key).await? {
                Some(c) => Some(c),
                None => match Uuid::try_parse(key) {
                    Ok(id) => tx.get_client(id).await?,
                    Err(_) => None,
                },
            };
            Some(found.ok_or_else(|| ApiError::not_found("client"))?.id)
        }
    };
    let report = tx.funnel(client, &FunnelQuery { range, stages }).await?;
    tx.commit().await?;
    let view = FunnelReportView {
        next_cursor: None,
        client_id: report.client.as_ref().map(|c| c.client_id.clone()),
        client_name: report.client.as_ref().map(|c| c.client_name.clone()),
        base_currency: report.base_currency.clone(),
        from: report.range.map(|r| r.from()),
        to: report.range.map(|r| r.to()),
        missing_rates: missing_views(&report.missing_rates),
        data: report
            .stages
            .into_iter()
            .map(FunnelStageView::from)
            .collect(),
    };
    if format.is_csv() {
        return Ok(csv::stream_rows::<FunnelCsvLine, _, _>(
            "funnel",
            move |mut sink| async move {
                for stage in &view.data {
                    for status in &stage.statuses {
                        if !sink.write(&FunnelCsvLine { stage, status }).await {
                            return Ok(sink);
                        }
                    }
                }
                Ok(sink)
            },
        ));
    }
    Ok(Json(view).into_response())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricReportView {
    pub bucket_start: NaiveDate,
    /// From the metric's definition (`/metric-definitions`).
    pub display_name: String,
    /// The definition's unit, else the rows'.
    pub unit: Option<String>,
    /// The definition's aggregation, which `value` applies.
    pub aggregation: AggregationName,
    /// The bucket's figure over every client: `sum`, `avg`, `min` or `max` as the definition
    /// says, or for `last` the value at the bucket's latest instant (whichever client's).
    pub value: String,
    /// Clients with a value in the bucket.
    pub clients: i64,
    pub count: i64,
    pub sum: String,
    /// Rounded to 4 places.
    pub avg: String,
    pub min: String,
    pub max: String,
}

impl From<MetricReportRow> for MetricReportView {
    fn from(r: MetricReportRow) -> Self {
        MetricReportView {
            bucket_start: r.bucket_start,
            display_name: r.display_name,
            unit: r.unit,
            aggregation: r.aggregation.into(),
            value: money(r.value),
            clients: r.clients,
            count: r.count,
            sum: money(r.sum),
            avg: money(r.avg),
            min: money(r.min),
            max: money(r.max),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MetricReportPage {
    pub data: Vec<MetricReportView>,
    /// Pass as `cursor` for the next window of buckets.
    pub next_cursor: Option<String>,
    pub name: String,
    pub bucket: String,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricReportParams {
    /// Metric name.
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `day`, `week` or `month` (default `month`).
    pub bucket: Option<String>,
}

/// One metric over all clients, per bucket
#[utoipa::path(get, path = "/reports/metrics", tag = "reports",
    params(MetricReportParams, PageParams, FormatParam),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = MetricReportPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn metric_report(
    auth: Auth<Viewer>,
    ApiQuery(p): ApiQuery<MetricReportParams>,
    ApiQuery(page): ApiQuery<PageParams>,
    ApiQuery(format): ApiQuery<FormatParam>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let params = RangeParams {
        from: p.from.clone(),
        to: p.to.clone(),
        bucket: Some(p.bucket.clone().unwrap_or_else(|| "month".into())),
    };
    let (r, bucket) = (params.range(&mut errors), params.bucket(&mut errors));
    let name = p.name.trim().to_string();
    if name.is_empty() {
        errors.push(ErrorDetail::field("name", "required"));
    }
    let (Some(r), Some(bucket)) = (r, bucket) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let w = window(
        r,
        bucket,
        &page,
        if format.is_csv() {
            u32::MAX
        } else {
            page.limit() as u32
        },
    )?;
    let tx = auth.begin().await?;
    let rows = tx.metric_report(&name, bucket, &w).await?;
    tx.commit().await?;
    if format.is_csv() {
        return Ok(csv::stream_rows::<MetricReportRow, _, _>(
            "metrics-report",
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
    Ok(Json(MetricReportPage {
        data: rows.into_iter().map(MetricReportView::from).collect(),
        next_cursor: w.next.as_ref().map(encode_cursor),
        name,
        bucket: bucket.as_str().to_string(),
    })
    .into_response())
}

/// One line of the funnel's CSV: a stage and one of its statuses.
struct FunnelCsvLine<'a> {
    stage: &'a FunnelStageView,
    status: &'a FunnelStatusView,
}

impl CsvRow for FunnelCsvLine<'_> {
    const HEADER: &'static [&'static str] = &[
        "stage",
        "position",
        "stage_leads",
        "stage_events",
        "stage_value",
        "conversion_from_previous",
        "status",
        "events",
        "value",
    ];
    fn cells(&self) -> Vec<String> {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let (s, st) = (self.stage, self.status);
        vec![
            s.stage.clone(),
            s.position.to_string(),
            s.leads.to_string(),
            s.events.to_string(),
            o(&s.value),
            o(&s.conversion_from_previous),
            st.status.clone(),
            st.events.to_string(),
            o(&st.value),
        ]
    }
}

impl CsvRow for MetricReportRow {
    const HEADER: &'static [&'static str] = &[
        "bucket_start",
        "display_name",
        "unit",
        "aggregation",
        "value",
        "clients",
        "count",
        "sum",
        "avg",
        "min",
        "max",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.bucket_start.to_string(),
            self.display_name.clone(),
            self.unit.clone().unwrap_or_default(),
            self.aggregation.to_string(),
            self.value.to_string(),
            self.clients.to_string(),
            self.count.to_string(),
            self.sum.to_string(),
            self.avg.to_string(),
            self.min.to_string(),
            self.max.to_string(),
        ]
    }
}
