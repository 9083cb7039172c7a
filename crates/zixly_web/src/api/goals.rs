//! Goals: `GET/POST /goals`, `GET/PATCH/DELETE /goals/{id}`, `PUT /goals/{id}/targets`,
//! `GET /goals/{id}/history`, `POST /goals/budgets` (a CSV of budgets). VIEWERs read, EDITORs
//! and ADMINs write. The rules are in [`crate::actions::goals`]; this module parses JSON and
//! shapes the answer. Amounts and targets are decimal strings; a ratio's (margin, win rate) are
//! fractions (`"0.300"` = 30.0 %).

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::goals::{Goal, GoalTarget};
use zixly_domain::goals::{Evaluation, GoalKind, GoalPeriod, GoalStatus, Pacing};

use crate::actions::goals::{self as actions, GoalChange, GoalInput, GoalWithProgress};
use crate::api::Page;
use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody, ErrorDetail};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_goals, create_goal))
        .routes(routes!(get_goal, update_goal, delete_goal))
        .routes(routes!(put_goal_targets))
        .routes(routes!(goal_history))
        .routes(routes!(import_budgets))
}

/// How a goal's periods repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GoalPeriodName {
    Month,
    Quarter,
    Year,
    /// One period, `from` to `to`.
    Fixed,
}

/// `reach`: get to the target by the period's end; `stay_above` / `stay_below`: end the period
/// at or above / at or under it (a cost budget is `stay_below`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GoalKindName {
    Reach,
    StayAbove,
    StayBelow,
}

/// A period's status: `on_track`, `at_risk` (projected within 10 % of the target on the wrong
/// side), `off_track`; after the period (or once a `reach` sum gets there) `achieved` or `missed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatusName {
    OnTrack,
    AtRisk,
    OffTrack,
    Achieved,
    Missed,
}

/// How `expected_to_date` was computed: last year's shape of the same period (`seasonal`),
/// elapsed days (`linear`), or the target itself for a ratio or level (`to_date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PacingName {
    Seasonal,
    Linear,
    ToDate,
}

impl From<GoalKind> for GoalKindName {
    fn from(k: GoalKind) -> Self {
        match k {
            GoalKind::Reach => GoalKindName::Reach,
            GoalKind::StayAbove => GoalKindName::StayAbove,
            GoalKind::StayBelow => GoalKindName::StayBelow,
        }
    }
}

impl From<GoalStatus> for GoalStatusName {
    fn from(s: GoalStatus) -> Self {
        match s {
            GoalStatus::OnTrack => GoalStatusName::OnTrack,
            GoalStatus::AtRisk => GoalStatusName::AtRisk,
            GoalStatus::OffTrack => GoalStatusName::OffTrack,
            GoalStatus::Achieved => GoalStatusName::Achieved,
            GoalStatus::Missed => GoalStatusName::Missed,
        }
    }
}

impl From<Pacing> for PacingName {
    fn from(p: Pacing) -> Self {
        match p {
            Pacing::Seasonal => PacingName::Seasonal,
            Pacing::Linear => PacingName::Linear,
            Pacing::ToDate => PacingName::ToDate,
        }
    }
}

fn text(d: Decimal) -> String {
    d.to_string()
}

/// One period of a goal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GoalPeriodView {
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// The period's target (its override, else the goal's constant).
    pub target: String,
    /// The KPI so far (or over the whole past period); `null` without any record.
    pub actual: Option<String>,
    pub expected_to_date: Option<String>,
    /// Projected end-of-period value; `null` without data or before the period starts.
    pub projected: Option<String>,
    /// `null` without data ("no data yet" is not "missed") or before the period starts.
    pub status: Option<GoalStatusName>,
    pub pacing: PacingName,
    pub elapsed_days: u64,
    pub total_days: u64,
}

impl From<&Evaluation> for GoalPeriodView {
    fn from(e: &Evaluation) -> Self {
        GoalPeriodView {
            period_start: e.period.from(),
            period_end: e.period.to(),
            target: text(e.target),
            actual: e.actual.map(text),
            expected_to_date: e.expected_to_date.map(text),
            projected: e.projected.map(text),
            status: e.status.map(Into::into),
            pacing: e.pacing.into(),
            elapsed_days: e.elapsed_days,
            total_days: e.total_days,
        }
    }
}

/// A per-period target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GoalTargetView {
    /// The period's first day.
    pub period_start: NaiveDate,
    pub target: String,
}

impl From<&GoalTarget> for GoalTargetView {
    fn from(t: &GoalTarget) -> Self {
        GoalTargetView {
            period_start: t.period_start,
            target: text(t.target),
        }
    }
}

/// A goal with its current period's progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GoalView {
    pub id: Uuid,
    pub name: Option<String>,
    /// A built-in KPI (`revenue`, `expenses`, `net_profit`, `margin`, `cash_flow`,
    /// `open_pipeline`, `win_rate`) or a custom metric's name.
    pub kpi: String,
    pub kpi_display_name: String,
    /// `null`: the whole tenant.
    pub client_id: Option<Uuid>,
    pub period: GoalPeriodName,
    /// Only for a fixed period.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub kind: GoalKindName,
    /// The constant target (per-period overrides in `targets`).
    pub target: String,
    pub targets: Vec<GoalTargetView>,
    /// The current period's status (`current.status`).
    pub status: Option<GoalStatusName>,
    /// The current period's expected value by today (`current.expected_to_date`).
    pub expected_to_date: Option<String>,
    /// The current period's projected end value (`current.projected`).
    pub projected: Option<String>,
    /// The current period's value so far (`current.actual`).
    pub actual: Option<String>,
    pub current: GoalPeriodView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn period_fields(p: &GoalPeriod) -> (GoalPeriodName, Option<NaiveDate>, Option<NaiveDate>) {
    match p {
        GoalPeriod::Month => (GoalPeriodName::Month, None, None),
        GoalPeriod::Quarter => (GoalPeriodName::Quarter, None, None),
        GoalPeriod::Year => (GoalPeriodName::Year, None, None),
        GoalPeriod::Fixed(r) => (GoalPeriodName::Fixed, Some(r.from()), Some(r.to())),
    }
}

impl From<&GoalWithProgress> for GoalView {
    fn from(g: &GoalWithProgress) -> Self {
        let Goal {
            id,
            name,
            kpi,
            client_id,
            period,
            kind,
            target,
            created_at,
            updated_at,
            ..
        } = &g.goal;
        let (period, from, to) = period_fields(period);
        let current = GoalPeriodView::from(&g.progress.current);
        GoalView {
            id: *id,
            name: name.clone(),
            kpi: kpi.clone(),
            kpi_display_name: g.kpi_display_name.clone(),
            client_id: *client_id,
            period,
            from,
            to,
            kind: (*kind).into(),
            target: text(*target),
            targets: g.targets.iter().map(Into::into).collect(),
            status: current.status,
            expected_to_date: current.expected_to_date.clone(),
            projected: current.projected.clone(),
            actual: current.actual.clone(),
            current,
            created_at: *created_at,
            updated_at: *updated_at,
        }
    }
}

/// A decimal given as a JSON string or number, as text for the action (which names the field
/// when it is not a decimal).
pub(crate) fn decimal_text(field: &str, v: &Value) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ApiError::invalid_field(
            field,
            "must be a decimal string (or a number)",
        )),
    }
}

/// A new goal.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalCreate {
    pub name: Option<String>,
    /// A built-in KPI or a custom metric's name (`GET /metric-definitions`).
    pub kpi: String,
    /// `null` or absent: the whole tenant.
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// `month`, `quarter`, `year` or `fixed` (validated by the action, so an unknown one is a
    /// 422 naming `period`).
    #[schema(value_type = GoalPeriodName)]
    pub period: String,
    /// Required for `period: fixed` (`YYYY-MM-DD`), refused otherwise.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `reach`, `stay_above` or `stay_below`.
    #[schema(value_type = GoalKindName)]
    pub kind: String,
    /// Decimal string (or number), at most 4 places; a fraction for margin and win rate.
    #[schema(value_type = String)]
    pub target: Value,
}

fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a goal: absent fields stay; `null` clears `name`. The KPI and client are fixed.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[schema(value_type = Option<GoalPeriodName>)]
    pub period: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    #[schema(value_type = Option<GoalKindName>)]
    pub kind: Option<String>,
    #[schema(value_type = Option<String>)]
    pub target: Option<Value>,
}

/// One per-period target of a `PUT`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalTargetInput {
    /// The period's first day, `YYYY-MM-DD`.
    pub period_start: String,
    #[schema(value_type = String)]
    pub target: Value,
}

/// The whole list of per-period targets (an empty list removes every override).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalTargetsPut {
    pub targets: Vec<GoalTargetInput>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GoalListParams {
    /// Only this client's goals.
    pub client_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Past periods, 0 to 36 (default: 12 months, 8 quarters or 3 years).
    pub periods: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetParams {
    /// The goal of a `period_start,target` file.
    pub goal_id: Option<Uuid>,
}

/// A goal's past periods, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GoalHistory {
    pub goal_id: Uuid,
    pub periods: Vec<GoalPeriodView>,
}

/// What a budget import wrote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BudgetImportResult {
    /// Budget lines read (without the header).
    pub lines: usize,
    /// Goals whose targets were written.
    pub goals: usize,
}

/// List goals
///
/// Every live goal with its current period: `status`, `expected_to_date`, `projected` and
/// `actual` (also in `current`, with the period, target and pacing), as of today in the tenant's
/// time zone.
#[utoipa::path(get, path = "/goals", tag = "goals", params(GoalListParams),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = Page<GoalView>), (status = 401, body = ErrorBody)))]
async fn list_goals(
    auth: Auth<Viewer>,
    ApiQuery(q): ApiQuery<GoalListParams>,
) -> ApiResult<Json<Page<GoalView>>> {
    let goals = actions::list(&auth, q.client_id, Some(0)).await?;
    Ok(Json(Page::all(goals.iter().map(Into::into).collect())))
}

/// Create a goal
#[utoipa::path(post, path = "/goals", tag = "goals", request_body = GoalCreate,
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 201, body = GoalView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_goal(
    auth: Auth<Editor>,
    ApiJson(body): ApiJson<GoalCreate>,
) -> ApiResult<(StatusCode, Json<GoalView>)> {
    let target = decimal_text("target", &body.target)?;
    let input = GoalInput {
        name: body.name.as_deref(),
        kpi: &body.kpi,
        client_id: body.client_id,
        period: &body.period,
        from: body.from.as_deref(),
        to: body.to.as_deref(),
        kind: &body.kind,
        target: &target,
    };
    let goal = actions::create(&auth, &input).await?;
    let view = actions::get(&auth.weaken(), goal.id, Some(0)).await?;
    Ok((StatusCode::CREATED, Json((&view).into())))
}

/// Get a goal
#[utoipa::path(get, path = "/goals/{id}", tag = "goals",
    params(("id" = Uuid, Path, description = "Goal id")),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = GoalView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_goal(auth: Auth<Viewer>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<GoalView>> {
    let goal = actions::get(&auth, id, Some(0)).await?;
    Ok(Json((&goal).into()))
}

/// Change a goal
#[utoipa::path(patch, path = "/goals/{id}", tag = "goals", request_body = GoalPatch,
    params(("id" = Uuid, Path, description = "Goal id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = GoalView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_goal(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<GoalPatch>,
) -> ApiResult<Json<GoalView>> {
    let target = body
        .target
        .as_ref()
        .map(|t| decimal_text("target", t))
        .transpose()?;
    let change = GoalChange {
        name: body.name.as_ref().map(Option::as_deref),
        period: body.period.as_deref(),
        from: body.from.as_deref(),
        to: body.to.as_deref(),
        kind: body.kind.as_deref(),
        target: target.as_deref(),
    };
    actions::update(&auth, id, &change).await?;
    let view = actions::get(&auth.weaken(), id, Some(0)).await?;
    Ok(Json((&view).into()))
}

/// Archive (delete) a goal
#[utoipa::path(delete, path = "/goals/{id}", tag = "goals",
    params(("id" = Uuid, Path, description = "Goal id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 204, description = "Archived: gone from every list and read"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_goal(auth: Auth<Editor>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    actions::archive(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a goal's per-period targets
///
/// Each `period_start` must be the first day of one of the goal's periods; periods not listed
/// fall back to the goal's constant target.
#[utoipa::path(put, path = "/goals/{id}/targets", tag = "goals", request_body = GoalTargetsPut,
    params(("id" = Uuid, Path, description = "Goal id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = Vec<GoalTargetView>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_goal_targets(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<GoalTargetsPut>,
) -> ApiResult<Json<Vec<GoalTargetView>>> {
    let mut texts = Vec::with_capacity(body.targets.len());
    for (i, t) in body.targets.iter().enumerate() {
        texts.push((
            t.period_start.as_str(),
            decimal_text(&format!("targets[{i}].target"), &t.target)?,
        ));
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(s, t)| (*s, t.as_str())).collect();
    let rows = actions::set_targets(&auth, id, &pairs).await?;
    Ok(Json(rows.iter().map(Into::into).collect()))
}

/// A goal's past periods
///
/// Each whole past period with its target, final value and `achieved`/`missed` (no status
/// without data), oldest first.
#[utoipa::path(get, path = "/goals/{id}/history", tag = "goals", params(("id" = Uuid, Path, description = "Goal id"), HistoryParams),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = GoalHistory), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn goal_history(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> ApiResult<Json<GoalHistory>> {
    let periods = match q.periods {
        Some(n) if n as usize > actions::MAX_HISTORY => {
            return Err(ApiError::invalid_field(
                "periods",
                format!("at most {}", actions::MAX_HISTORY),
            ))
        }
        other => other.map(|n| n as usize),
    };
    let goal = actions::get(&auth, id, periods).await?;
    Ok(Json(GoalHistory {
        goal_id: id,
        periods: goal.progress.history.iter().map(Into::into).collect(),
    }))
}

/// Import a CSV of budgets
///
/// The body is the CSV text (UTF-8). Header `kpi,client_id,period_start,target` sets targets of
/// the goals on those KPIs and clients (`client_id` is the client's identifier in its source,
/// as in imports; empty for a tenant-wide goal); header `period_start,target` sets one goal's,
/// named by `goal_id`. All or nothing: errors name their line and column.
#[utoipa::path(post, path = "/goals/budgets", tag = "goals", params(BudgetParams),
    request_body(content = String, content_type = "text/csv"),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = BudgetImportResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_budgets(
    auth: Auth<Editor>,
    ApiQuery(q): ApiQuery<BudgetParams>,
    body: Bytes,
) -> ApiResult<Json<BudgetImportResult>> {
    let text = budget_text(&body)?;
    let report = actions::import_budgets(&auth, q.goal_id, text).await?;
    Ok(Json(BudgetImportResult {
        lines: report.lines,
        goals: report.goals,
    }))
}

/// The uploaded bytes as text: UTF-8 (a BOM is skipped) without NUL, which no text column holds.
pub(crate) fn budget_text(body: &[u8]) -> ApiResult<&str> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::validation(vec![ErrorDetail {
            reason: format!("the file is not UTF-8 text (byte {})", e.valid_up_to()),
            ..Default::default()
        }])
    })?;
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() as u64 + 1;
        return Err(ApiError::validation(vec![ErrorDetail::line(
            line,
            None,
            "contains a NUL character",
        )]));
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}
