//! Alert rules and alerts: `GET/POST /alert-rules`, `GET/PUT/PATCH/DELETE /alert-rules/{id}`,
//! `POST /alert-rules/{id}/snooze`, `GET /alerts`, `GET /alerts/{id}` (with its history).
//! VIEWERs read, EDITORs and ADMINs write. The rules are in [`crate::actions::alerts`]; this
//! module parses JSON and shapes the answer. Values are decimal strings; a ratio KPI's (margin,
//! win rate) are fractions, as for goals.

use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zixly_db::queries::alerts::{AlertRule, AlertTransition, AlertView};
use zixly_domain::alerts::state::AlertState;
use zixly_domain::alerts::Scope;

use crate::actions::alerts::{self as actions, RuleInput};
use crate::api::goals::decimal_text;
use crate::api::Page;
use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, replace_rule, patch_rule, delete_rule))
        .routes(routes!(snooze_rule))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKindName {
    /// The KPI of the latest complete bucket above/below `value`.
    Threshold,
    /// The change against the previous bucket or the same bucket last year.
    Change,
    /// The KPI outside the band its history predicts.
    Anomaly,
    /// The goal `goal_id` off track or missed.
    Goal,
    /// No new data for `stale_days`, or a connection in error.
    Stale,
}

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStateName {
    Ok,
    Pending,
    Firing,
    Resolved,
    NoData,
}

impl From<AlertState> for AlertStateName {
    fn from(s: AlertState) -> Self {
        match s {
            AlertState::Ok => AlertStateName::Ok,
            AlertState::Pending => AlertStateName::Pending,
            AlertState::Firing => AlertStateName::Firing,
            AlertState::Resolved => AlertStateName::Resolved,
            AlertState::NoData => AlertStateName::NoData,
        }
    }
}

fn kind_name(k: zixly_domain::alerts::RuleKind) -> RuleKindName {
    use zixly_domain::alerts::RuleKind as K;
    match k {
        K::Threshold => RuleKindName::Threshold,
        K::Change => RuleKindName::Change,
        K::Anomaly => RuleKindName::Anomaly,
        K::Goal => RuleKindName::Goal,
        K::Stale => RuleKindName::Stale,
    }
}

fn text(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

/// A rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertRuleView {
    pub id: Uuid,
    pub name: String,
    pub kind: RuleKindName,
    /// `null` for stale rules.
    pub kpi: Option<String>,
    /// The one client watched; `null` for a tenant-wide rule, a set or every client.
    pub client_id: Option<Uuid>,
    /// The clients watched one by one (`client_id` is the first when there is one).
    pub client_ids: Vec<Uuid>,
    /// Every client of the tenant, one by one.
    pub each_client: bool,
    /// `day`, `week` or `month`.
    pub bucket: String,
    /// `above` or `below`.
    pub condition: Option<String>,
    pub value: Option<String>,
    /// Change rules: `percent` or `absolute`.
    pub change_mode: Option<String>,
    /// Change rules: `previous` or `last_year`.
    pub compare_to: Option<String>,
    pub goal_id: Option<Uuid>,
    pub stale_days: Option<i32>,
    /// A stale rule on one integration (`GET /integrations`): judged by its syncs; `null` for
    /// every other rule.
    pub integration_id: Option<Uuid>,
    /// How long a crossing must last before it fires (0: at once).
    pub pending_seconds: i64,
    /// `null`: notify once per firing; else again every so many seconds while it fires.
    pub repeat_seconds: Option<i64>,
    /// While in the future, state changes notify nothing.
    pub snoozed_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub channel_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&AlertRule> for AlertRuleView {
    fn from(r: &AlertRule) -> Self {
        let s = &r.spec;
        AlertRuleView {
            id: r.id,
            name: s.name.clone(),
            kind: kind_name(s.kind),
            kpi: s.kpi.clone(),
            client_id: (s.scope == Scope::Clients && s.client_ids.len() == 1)
                .then(|| s.client_ids[0]),
            client_ids: s.client_ids.clone(),
            each_client: s.scope == Scope::EachClient,
            bucket: s.bucket.as_str().to_owned(),
            condition: s.condition.map(|c| c.as_str().to_owned()),
            value: s.value.map(text),
            change_mode: s.change_mode.map(|c| c.as_str().to_owned()),
            compare_to: s.compare_to.map(|c| c.as_str().to_owned()),
            goal_id: s.goal_id,
            stale_days: s.stale_days,
            integration_id: s.integration_id,
            pending_seconds: s.pending_for,
            repeat_seconds: s.repeat_every,
            snoozed_until: r.snoozed_until,
            enabled: s.enabled,
            channel_ids: s.channel_ids.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A rule to create (or, with `PUT`, the whole new rule).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    pub name: String,
    #[schema(value_type = RuleKindName)]
    pub kind: String,
    /// A built-in KPI (`revenue`, `expenses`, `net_profit`, `margin`, `cash_flow`,
    /// `open_pipeline`, `win_rate`) or a custom metric's name; needed by threshold, change and
    /// anomaly rules.
    pub kpi: Option<String>,
    /// One client; `null` or absent (and no `client_ids`, no `each_client`): the tenant's total.
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// A set of clients, each judged on its own.
    pub client_ids: Option<Vec<Uuid>>,
    /// Judge every client of the tenant on its own.
    #[serde(default)]
    pub each_client: bool,
    /// `day`, `week` or `month` (default).
    pub bucket: Option<String>,
    /// `above` or `below`: for a change rule a rise or a fall; for an anomaly rule only that
    /// side (both without it).
    pub condition: Option<String>,
    /// Decimal string (or number): the threshold, or the change's size (a magnitude).
    #[schema(value_type = Option<String>)]
    pub value: Option<Value>,
    /// `percent` (default) or `absolute`.
    pub change_mode: Option<String>,
    /// `previous` (default) or `last_year`.
    pub compare_to: Option<String>,
    pub goal_id: Option<Uuid>,
    /// Stale rules: how many days without new data make the data stale (1 to 365).
    pub stale_days: Option<i64>,
    /// Stale rules: watch this integration (`GET /integrations`) — the last sync of it that
    /// wrote rows, and whether it is in `ERROR` — rather than all data. Tenant-wide only.
    pub integration_id: Option<Uuid>,
    /// Seconds a crossing must last before it fires (default 0: fire on the first evaluation).
    pub pending_seconds: Option<i64>,
    /// Notify again every so many seconds while firing (at least 300; absent: once).
    pub repeat_seconds: Option<i64>,
    pub enabled: Option<bool>,
    /// Notification channels (`GET /notification-channels`); in-app notifications go to the
    /// tenant's users whatever the channels.
    #[serde(default)]
    pub channel_ids: Vec<Uuid>,
}

/// Changes to a rule: absent fields stay (the result is validated as a whole rule).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRulePatch {
    pub name: Option<String>,
    pub kpi: Option<String>,
    pub bucket: Option<String>,
    pub condition: Option<String>,
    #[schema(value_type = Option<String>)]
    pub value: Option<Value>,
    pub change_mode: Option<String>,
    pub compare_to: Option<String>,
    pub stale_days: Option<i64>,
    pub pending_seconds: Option<i64>,
    pub repeat_seconds: Option<i64>,
    pub enabled: Option<bool>,
    pub channel_ids: Option<Vec<Uuid>>,
}

/// Snooze a rule until a time; `null` wakes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeInput {
    pub until: Option<DateTime<Utc>>,
}

/// An alert: one (rule, client, bucket) with its state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertOut {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub kind: RuleKindName,
    pub kpi: Option<String>,
    /// `null`: the tenant's total.
    pub client_id: Option<Uuid>,
    pub client_name: Option<String>,
    /// The judged bucket's first day (a goal rule's: its period's; a stale rule's: 2000-01-01).
    pub bucket_start: NaiveDate,
    pub state: AlertStateName,
    /// The figure judged (a change rule's: the change).
    pub value: Option<String>,
    pub threshold: Option<String>,
    /// Anomaly rules: the band the history predicts.
    pub expected_low: Option<String>,
    pub expected_high: Option<String>,
    /// What was compared, and why it came out so (`reason`).
    #[schema(value_type = Object)]
    pub detail: Value,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub evaluated_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&AlertView> for AlertOut {
    fn from(a: &AlertView) -> Self {
        AlertOut {
            id: a.id,
            rule_id: a.rule_id,
            rule_name: a.rule_name.clone(),
            kind: kind_name(a.kind),
            kpi: a
                .detail
                .get("kpi")
                .and_then(Value::as_str)
                .map(str::to_owned),
            client_id: a.client_id,
            client_name: a.client_name.clone(),
            bucket_start: a.bucket_start,
            state: a.state.into(),
            value: a.value.map(text),
            threshold: a.threshold.map(text),
            expected_low: a.expected_low.map(text),
            expected_high: a.expected_high.map(text),
            detail: a.detail.clone(),
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
            evaluated_at: a.evaluated_at,
            updated_at: a.updated_at,
        }
    }
}

/// One change of an alert's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertTransitionOut {
    pub id: Uuid,
    pub from_state: Option<AlertStateName>,
    pub to_state: AlertStateName,
    pub value: Option<String>,
    /// Whether this change was notified (never while snoozed, never twice).
    pub notify: bool,
    pub occurred_at: DateTime<Utc>,
}

impl From<&AlertTransition> for AlertTransitionOut {
    fn from(t: &AlertTransition) -> Self {
        AlertTransitionOut {
            id: t.id,
            from_state: t.from_state.map(Into::into),
            to_state: t.to_state.into(),
            value: t.value.map(text),
            notify: t.notify,
            occurred_at: t.occurred_at,
        }
    }
}

/// An alert with its history, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertWithHistory {
    #[serde(flatten)]
    pub alert: AlertOut,
    pub history: Vec<AlertTransitionOut>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// Only alerts in this state (`ok`, `pending`, `firing`, `resolved`, `no_data`).
    pub state: Option<String>,
    /// Only this rule's alerts.
    pub rule_id: Option<Uuid>,
    /// At most this many (1 to 500, default 100), most recently changed first.
    pub limit: Option<i64>,
}

fn input_of<'a>(b: &'a AlertRuleInput, value: Option<&'a str>) -> RuleInput<'a> {
    RuleInput {
        name: &b.name,
        kind: &b.kind,
        kpi: b.kpi.as_deref(),
        client_id: b.client_id,
        client_ids: b.client_ids.clone(),
        each_client: b.each_client,
        bucket: b.bucket.as_deref(),
        condition: b.condition.as_deref(),
        value,
        change_mode: b.change_mode.as_deref(),
        compare_to: b.compare_to.as_deref(),
        goal_id: b.goal_id,
        stale_days: b.stale_days,
        integration_id: b.integration_id,
        pending_seconds: b.pending_seconds,
        repeat_seconds: b.repeat_seconds,
        enabled: b.enabled,
        channel_ids: b.channel_ids.clone(),
    }
}

/// List alert rules
#[utoipa::path(get, path = "/alert-rules", tag = "alerts",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = Page<AlertRuleView>), (status = 401, body = ErrorBody)))]
async fn list_rules(auth: Auth<Viewer>) -> ApiResult<Json<Page<AlertRuleView>>> {
    let rules = actions::list_rules(&auth).await?;
    Ok(Json(Page::all(rules.iter().map(Into::into).collect())))
}

/// Create an alert rule
///
/// A threshold rule compares the latest complete bucket; a rule without a pending period fires
/// on the first evaluation that crosses it. The rule is evaluated right away (as a job) and
/// after every import or sync that changes the tenant's data.
#[utoipa::path(post, path = "/alert-rules", tag = "alerts", request_body = AlertRuleInput,
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 201, body = AlertRuleView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_rule(
    auth: Auth<Editor>,
    ApiJson(body): ApiJson<AlertRuleInput>,
) -> ApiResult<(StatusCode, Json<AlertRuleView>)> {
    let value = body
        .value
        .as_ref()
        .map(|v| decimal_text("value", v))
        .transpose()?;
    let rule = actions::create_rule(&auth, &input_of(&body, value.as_deref())).await?;
    Ok((StatusCode::CREATED, Json((&rule).into())))
}

/// Get an alert rule
#[utoipa::path(get, path = "/alert-rules/{id}", tag = "alerts",
    params(("id" = Uuid, Path, description = "Rule id")),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = AlertRuleView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_rule(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AlertRuleView>> {
    Ok(Json((&actions::get_rule(&auth, id).await?).into()))
}

/// Replace an alert rule
#[utoipa::path(put, path = "/alert-rules/{id}", tag = "alerts", request_body = AlertRuleInput,
    params(("id" = Uuid, Path, description = "Rule id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = AlertRuleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn replace_rule(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AlertRuleInput>,
) -> ApiResult<Json<AlertRuleView>> {
    let value = body
        .value
        .as_ref()
        .map(|v| decimal_text("value", v))
        .transpose()?;
    let rule = actions::update_rule(&auth, id, &input_of(&body, value.as_deref())).await?;
    Ok(Json((&rule).into()))
}

/// Change an alert rule
///
/// Absent fields stay; the kind and the scope are what the rule is about (another kind or scope
/// is another rule: its alerts' history would mean nothing).
#[utoipa::path(patch, path = "/alert-rules/{id}", tag = "alerts", request_body = AlertRulePatch,
    params(("id" = Uuid, Path, description = "Rule id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = AlertRuleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_rule(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(p): ApiJson<AlertRulePatch>,
) -> ApiResult<Json<AlertRuleView>> {
    let current = AlertRuleView::from(&actions::get_rule(&auth.weaken(), id).await?);
    let value = match &p.value {
        Some(v) => Some(decimal_text("value", v)?),
        None => current.value.clone(),
    };
    let merged = AlertRuleInput {
        name: p.name.unwrap_or(current.name),
        kind: serde_json::to_value(current.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        kpi: p.kpi.or(current.kpi),
        client_id: None,
        client_ids: (!current.client_ids.is_empty()).then_some(current.client_ids),
        each_client: current.each_client,
        bucket: p.bucket.or(Some(current.bucket)),
        condition: p.condition.or(current.condition),
        value: None,
        change_mode: p.change_mode.or(current.change_mode),
        compare_to: p.compare_to.or(current.compare_to),
        goal_id: current.goal_id,
        stale_days: p.stale_days.or(current.stale_days.map(i64::from)),
        integration_id: current.integration_id,
        pending_seconds: p.pending_seconds.or(Some(current.pending_seconds)),
        repeat_seconds: p.repeat_seconds.or(current.repeat_seconds),
        enabled: p.enabled.or(Some(current.enabled)),
        channel_ids: p.channel_ids.unwrap_or(current.channel_ids),
    };
    let rule = actions::update_rule(&auth, id, &input_of(&merged, value.as_deref())).await?;
    Ok(Json((&rule).into()))
}

/// Delete an alert rule (with its alerts and their history)
#[utoipa::path(delete, path = "/alert-rules/{id}", tag = "alerts",
    params(("id" = Uuid, Path, description = "Rule id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_rule(auth: Auth<Editor>, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    actions::delete_rule(&auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Snooze an alert rule
///
/// Until `until` the rule's alerts still change state (the page shows them) but notify nothing;
/// `null` wakes the rule.
#[utoipa::path(post, path = "/alert-rules/{id}/snooze", tag = "alerts", request_body = SnoozeInput,
    params(("id" = Uuid, Path, description = "Rule id")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = AlertRuleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn snooze_rule(
    auth: Auth<Editor>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SnoozeInput>,
) -> ApiResult<Json<AlertRuleView>> {
    let rule = actions::snooze_rule(&auth, id, body.until).await?;
    Ok(Json((&rule).into()))
}

/// List alerts
///
/// Firings (and every other alert state) of the tenant's rules, most recently changed first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertListParams),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = Page<AlertOut>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_alerts(
    auth: Auth<Viewer>,
    ApiQuery(q): ApiQuery<AlertListParams>,
) -> ApiResult<Json<Page<AlertOut>>> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<AlertState>().map_err(|_| {
            ApiError::invalid_field("state", "expected ok, pending, firing, resolved or no_data")
        })?),
    };
    if let Some(l) = q.limit {
        if !(1..=actions::MAX_ALERTS).contains(&l) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("between 1 and {}", actions::MAX_ALERTS),
            ));
        }
    }
    let alerts = actions::list_alerts(&auth, state, q.rule_id, q.limit).await?;
    Ok(Json(Page::all(alerts.iter().map(Into::into).collect())))
}

/// Get an alert with its history
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts",
    params(("id" = Uuid, Path, description = "Alert id")),
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = AlertWithHistory), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_alert(
    auth: Auth<Viewer>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AlertWithHistory>> {
    let (alert, history) = actions::get_alert(&auth, id).await?;
    Ok(Json(AlertWithHistory {
        alert: (&alert).into(),
        history: history.iter().map(Into::into).collect(),
    }))
}
