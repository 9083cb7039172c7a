//! The alert actions of `api/alerts.rs` and the Alerts page (`pages/alerts.rs`): alert rules
//! (list, create, change, snooze, delete) and their alerts (list with state, one with its
//! history). EDITORs and ADMINs manage rules (`Auth<Editor>`), VIEWERs read rules and alerts.
//!
//! Input arrives as text so every rejection names its field (`value: not a decimal number`),
//! whichever front end sent it. What each kind needs:
//!
//! | kind | needs | optional |
//! |---|---|---|
//! | `threshold` | `kpi`, `condition`, `value` | |
//! | `change` | `kpi`, `condition` (`above` = a rise, `below` = a fall), `value` (a magnitude) | `change_mode` (`percent`), `compare_to` (`previous`) |
//! | `anomaly` | `kpi` | `condition` (only rises / only falls; both without it) |
//! | `goal` | `goal_id` | |
//! | `stale` | `stale_days` | `integration_id` (that integration's syncs, tenant-wide); `kpi` is not used |
//!
//! Scope: `client_id` one client, `client_ids` a set, `each_client` every client separately,
//! none of them the tenant's total. Ratio KPIs (margin, win rate) compare fractions (`0.2` =
//! 20 %), like goals; a percent change is in percent (`20` = 20 %).
//!
//! Every write appends its audit row and asks for an evaluation (`alert_evaluate`, in the same
//! transaction), so a new rule is judged at once rather than at the next schedule.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;
use zixly_db::queries::alerts::{AlertRule, AlertTransition, AlertView, RuleSpec};
use zixly_db::TenantTx;
use zixly_domain::alerts::state::AlertState;
use zixly_domain::alerts::{ChangeMode, CompareTo, Condition, RuleKind, Scope};
use zixly_domain::period::Bucket;

use crate::actions::goals::{is_ratio, known_kpi, parse_target, unknown_kpi};
use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};

/// The longest rule name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The longest pending period and the longest repeat interval: 30 days.
pub(crate) const MAX_INTERVAL_SECONDS: i64 = 30 * 24 * 3600;
/// Repeats closer than this would flood a channel.
pub(crate) const MIN_REPEAT_SECONDS: i64 = 300;
/// The most clients one rule lists, and the most channels.
pub(crate) const MAX_LISTED: usize = 500;
/// The most alerts one list returns.
pub(crate) const MAX_ALERTS: i64 = 500;

/// A rule as a front end received it (every field as text or absent).
#[derive(Debug, Default, Clone)]
pub(crate) struct RuleInput<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub kpi: Option<&'a str>,
    pub client_id: Option<Uuid>,
    pub client_ids: Option<Vec<Uuid>>,
    pub each_client: bool,
    pub bucket: Option<&'a str>,
    pub condition: Option<&'a str>,
    pub value: Option<&'a str>,
    pub change_mode: Option<&'a str>,
    pub compare_to: Option<&'a str>,
    pub goal_id: Option<Uuid>,
    pub stale_days: Option<i64>,
    pub integration_id: Option<Uuid>,
    pub pending_seconds: Option<i64>,
    pub repeat_seconds: Option<i64>,
    pub enabled: Option<bool>,
    pub channel_ids: Vec<Uuid>,
}

fn parse_enum<T: std::str::FromStr>(
    field: &str,
    text: Option<&str>,
    required: bool,
    errors: &mut Vec<ErrorDetail>,
) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => {
            if required {
                errors.push(ErrorDetail::field(field, "required for this kind of rule"));
            }
            None
        }
        Some(t) => match t.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(ErrorDetail::field(field, e.to_string()));
                None
            }
        },
    }
}

fn parse_bucket(text: Option<&str>, errors: &mut Vec<ErrorDetail>) -> Bucket {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Bucket::Month,
        Some(t) => match t.parse::<Bucket>() {
            Ok(b) => b,
            Err(_) => {
                errors.push(ErrorDetail::field(
                    "bucket",
                    format!(
                        "unknown bucket `{}`: expected day, week or month",
                        t.chars().take(40).collect::<String>()
                    ),
                ));
                Bucket::Month
            }
        },
    }
}

fn interval(field: &str, v: Option<i64>, min: i64, errors: &mut Vec<ErrorDetail>) -> Option<i64> {
    let v = v?;
    if v < min || v > MAX_INTERVAL_SECONDS {
        errors.push(ErrorDetail::field(
            field,
            format!("must be between {min} and {MAX_INTERVAL_SECONDS} seconds"),
        ));
        return None;
    }
    Some(v)
}

/// Validates `input` into a rule: 422 naming every bad field (unknown KPI, client, goal or
/// channel among them).
async fn validate(tx: &TenantTx, input: &RuleInput<'_>) -> ApiResult<RuleSpec> {
    let mut errors = Vec::new();
    let name = input.name.trim();
    if name.is_empty() {
        errors.push(ErrorDetail::field("name", "must not be blank"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(ErrorDetail::field(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let kind: Option<RuleKind> = parse_enum("kind", Some(input.kind), true, &mut errors);
    if input.kind.trim().is_empty() {
        errors.retain(|e| e.field.as_deref() != Some("kind"));
        errors.push(ErrorDetail::field(
            "kind",
            "required: threshold, change, anomaly, goal or stale",
        ));
    }
    let bucket = parse_bucket(input.bucket, &mut errors);
    let needs_kpi = matches!(
        kind,
        Some(RuleKind::Threshold | RuleKind::Change | RuleKind::Anomaly)
    );
    let mut kpi = input
        .kpi
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if needs_kpi {
        match kpi.as_deref() {
            None => errors.push(ErrorDetail::field("kpi", "required for this kind of rule")),
            Some(k) if !known_kpi(tx, k).await? => errors.push(unknown_kpi(k)),
            Some(_) => {}
        }
    }
    let condition: Option<Condition> = parse_enum(
        "condition",
        input.condition,
        matches!(kind, Some(RuleKind::Threshold | RuleKind::Change)),
        &mut errors,
    );
    let (mut change_mode, mut compare_to) = (None, None);
    let mut value = None;
    match kind {
        Some(RuleKind::Threshold) => {
            value = match input.value {
                None => {
                    errors.push(ErrorDetail::field("value", "required for a threshold rule"));
                    None
                }
                Some(v) => parse_target(
                    "value",
                    v,
                    kpi.as_deref().is_some_and(is_ratio),
                    &mut errors,
                ),
            };
        }
        Some(RuleKind::Change) => {
            change_mode =
                parse_enum::<ChangeMode>("change_mode", input.change_mode, false, &mut errors)
                    .or(Some(ChangeMode::Percent));
            compare_to =
                parse_enum::<CompareTo>("compare_to", input.compare_to, false, &mut errors)
                    .or(Some(CompareTo::Previous));
            value = match input.value {
                None => {
                    errors.push(ErrorDetail::field("value", "required for a change rule"));
                    None
                }
                Some(v) => parse_target("value", v, false, &mut errors),
            };
            if value.is_some_and(|v: Decimal| v.is_sign_negative()) {
                errors.push(ErrorDetail::field(
                    "value",
                    "a change's size is a magnitude (`below` 20 = a fall of more than 20)",
                ));
            }
        }
        _ => {}
    }
    let mut goal_id = None;
    if kind == Some(RuleKind::Goal) {
        match input.goal_id {
            None => errors.push(ErrorDetail::field("goal_id", "required for a goal rule")),
            Some(g) => match tx.goal(g).await? {
                None => errors.push(ErrorDetail::field("goal_id", "no such goal")),
                Some(goal) => {
                    goal_id = Some(g);
                    kpi = Some(goal.kpi);
                }
            },
        }
    }
    let mut stale_days = None;
    if kind == Some(RuleKind::Stale) {
        match input.stale_days {
            None => errors.push(ErrorDetail::field(
                "stale_days",
                "required for a stale rule",
            )),
            Some(d) if !(1..=365).contains(&d) => errors.push(ErrorDetail::field(
                "stale_days",
                "must be between 1 and 365",
            )),
            Some(d) => stale_days = Some(d as i32),
        }
    }
    let mut integration_id = None;
    if let Some(i) = input.integration_id {
        if kind != Some(RuleKind::Stale) {
            errors.push(ErrorDetail::field(
                "integration_id",
                "only a stale rule watches an integration",
            ));
        } else if tx.integration(i).await?.is_none() {
            errors.push(ErrorDetail::field("integration_id", "no such integration"));
        } else {
            integration_id = Some(i);
        }
    }
    // Scope.
    let listed: Vec<Uuid> = match (&input.client_ids, input.client_id) {
        (Some(ids), None) => ids.clone(),
        (None, Some(id)) => vec![id],
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            errors.push(ErrorDetail::field(
                "client_ids",
                "give either client_id or client_ids",
            ));
            Vec::new()
        }
    };
    let scope = if input.each_client {
        if !listed.is_empty() {
            errors.push(ErrorDetail::field(
                "each_client",
                "each_client applies to every client: do not list clients too",
            ));
        }
        Scope::EachClient
    } else if listed.is_empty() {
        Scope::Tenant
    } else {
        Scope::Clients
    };
    if listed.len() > MAX_LISTED {
        errors.push(ErrorDetail::field(
            "client_ids",
            format!("at most {MAX_LISTED} clients"),
        ));
    } else if !listed.is_empty() {
        for c in tx.unknown_clients(&listed).await? {
            errors.push(ErrorDetail::field(
                "client_ids",
                format!("no such client {c}"),
            ));
        }
    }
    if input.integration_id.is_some() && scope != Scope::Tenant {
        errors.push(ErrorDetail::field(
            "integration_id",
            "an integration feeds many clients: a rule on it is tenant-wide, leave the clients out",
        ));
    }
    if kind == Some(RuleKind::Goal) && scope != Scope::Tenant {
        errors.push(ErrorDetail::field(
            "client_id",
            "a goal rule watches its goal's client: leave the scope out",
        ));
    }
    let pending_for =
        interval("pending_seconds", input.pending_seconds, 0, &mut errors).unwrap_or(0);
    let repeat_every = interval(
        "repeat_seconds",
        input.repeat_seconds,
        MIN_REPEAT_SECONDS,
        &mut errors,
    );
    let mut channel_ids = input.channel_ids.clone();
    channel_ids.sort();
    channel_ids.dedup();
    if channel_ids.len() > MAX_LISTED {
        errors.push(ErrorDetail::field(
            "channel_ids",
            format!("at most {MAX_LISTED} channels"),
        ));
    } else {
        for c in tx.unknown_channels(&channel_ids).await? {
            errors.push(ErrorDetail::field(
                "channel_ids",
                format!("no such notification channel {c}"),
            ));
        }
    }
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    Ok(RuleSpec {
        name: name.to_owned(),
        kind,
        kpi: if kind == RuleKind::Stale { None } else { kpi },
        scope,
        client_ids: listed,
        bucket,
        condition,
        value,
        change_mode,
        compare_to,
        goal_id,
        stale_days,
        integration_id,
        pending_for,
        repeat_every,
        enabled: input.enabled.unwrap_or(true),
        channel_ids,
    })
}

fn rule_summary(r: &AlertRule) -> serde_json::Value {
    let s = &r.spec;
    json!({
        "name": s.name, "kind": s.kind.as_str(), "kpi": s.kpi, "scope": s.scope.as_str(),
        "client_ids": s.client_ids, "bucket": s.bucket.as_str(),
        "condition": s.condition.map(Condition::as_str), "value": s.value.map(|v| v.to_string()),
        "change_mode": s.change_mode.map(ChangeMode::as_str),
        "compare_to": s.compare_to.map(CompareTo::as_str), "goal_id": s.goal_id,
        "stale_days": s.stale_days, "integration_id": s.integration_id,
        "pending_seconds": s.pending_for,
        "repeat_seconds": s.repeat_every, "enabled": s.enabled, "channel_ids": s.channel_ids,
    })
}

/// Every rule of the tenant, oldest first.
pub(crate) async fn list_rules(auth: &Auth<Viewer>) -> ApiResult<Vec<AlertRule>> {
    let tx = auth.begin().await?;
    let rules = tx.alert_rules(false).await?;
    tx.commit().await?;
    Ok(rules)
}

pub(crate) async fn get_rule(auth: &Auth<Viewer>, id: Uuid) -> ApiResult<AlertRule> {
    let tx = auth.begin().await?;
    let rule = tx
        .alert_rule(id)
        .await?
        .ok_or_else(|| ApiError::not_found("alert rule"))?;
    tx.commit().await?;
    Ok(rule)
}

/// Creates a rule (422 naming each bad field) and asks for its first evaluation.
pub(crate) async fn create_rule(
    auth: &Auth<Editor>,
    input: &RuleInput<'_>,
) -> ApiResult<AlertRule> {
    let tx = auth.begin().await?;
    let spec = validate(&tx, input).await?;
    let rule = tx.create_alert_rule(&spec, Some(auth.user_id())).await?;
    tx.append_audit(&auth.audit(
        "alert_rule.create",
        "alert_rule",
        Some(rule.id.to_string()),
        rule_summary(&rule),
    ))
    .await?;
    tx.enqueue_job(&zixly_db::queries::alerts::evaluate_job())
        .await?;
    tx.commit().await?;
    Ok(rule)
}

/// Replaces what a rule says (the whole rule, as a create). The audit row lists each changed
/// field with its old and new value.
pub(crate) async fn update_rule(
    auth: &Auth<Editor>,
    id: Uuid,
    input: &RuleInput<'_>,
) -> ApiResult<AlertRule> {
    let tx = auth.begin().await?;
    let before = tx
        .alert_rule(id)
        .await?
        .ok_or_else(|| ApiError::not_found("alert rule"))?;
    let spec = validate(&tx, input).await?;
    let after = tx
        .update_alert_rule(id, &spec)
        .await?
        .ok_or_else(|| ApiError::not_found("alert rule"))?;
    let (old, new) = (rule_summary(&before), rule_summary(&after));
    let mut changed = serde_json::Map::new();
    if let (Some(o), Some(n)) = (old.as_object(), new.as_object()) {
        for (k, v) in n {
            if o.get(k) != Some(v) {
                changed.insert(k.clone(), json!({"from": o.get(k), "to": v}));
            }
        }
    }
    tx.append_audit(&auth.audit(
        "alert_rule.update",
        "alert_rule",
        Some(id.to_string()),
        json!({ "changed": changed }),
    ))
    .await?;
    tx.enqueue_job(&zixly_db::queries::alerts::evaluate_job())
        .await?;
    tx.commit().await?;
    Ok(after)
}

/// Snoozes a rule until `until` (`None` wakes it): while snoozed its alerts change state but
/// notify nothing. `until` must lie in the future and within a year.
pub(crate) async fn snooze_rule(
    auth: &Auth<Editor>,
    id: Uuid,
    until: Option<DateTime<Utc>>,
) -> ApiResult<AlertRule> {
    if let Some(u) = until {
        let now = Utc::now();
        if u <= now {
            return Err(ApiError::invalid_field("until", "must be in the future"));
        }
        if u > now + chrono::Duration::days(366) {
            return Err(ApiError::invalid_field("until", "at most a year ahead"));
        }
    }
    let tx = auth.begin().await?;
    let rule = tx
        .snooze_alert_rule(id, until)
        .await?
        .ok_or_else(|| ApiError::not_found("alert rule"))?;
    tx.append_audit(&auth.audit(
        if until.is_some() {
            "alert_rule.snooze"
        } else {
            "alert_rule.unsnooze"
        },
        "alert_rule",
        Some(id.to_string()),
        json!({ "name": rule.spec.name, "until": until }),
    ))
    .await?;
    tx.commit().await?;
    Ok(rule)
}

/// Deletes a rule with its alerts and their history.
pub(crate) async fn delete_rule(auth: &Auth<Editor>, id: Uuid) -> ApiResult<()> {
    let tx = auth.begin().await?;
    let rule = tx
        .delete_alert_rule(id)
        .await?
        .ok_or_else(|| ApiError::not_found("alert rule"))?;
    tx.append_audit(&auth.audit(
        "alert_rule.delete",
        "alert_rule",
        Some(id.to_string()),
        rule_summary(&rule),
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Alerts, most recently changed first (`state`: only those in it).
pub(crate) async fn list_alerts(
    auth: &Auth<Viewer>,
    state: Option<AlertState>,
    rule_id: Option<Uuid>,
    limit: Option<i64>,
) -> ApiResult<Vec<AlertView>> {
    let tx = auth.begin().await?;
    let alerts = tx
        .list_alerts(state, rule_id, limit.unwrap_or(100).clamp(1, MAX_ALERTS))
        .await?;
    tx.commit().await?;
    Ok(alerts)
}

/// One alert with its history (oldest first).
pub(crate) async fn get_alert(
    auth: &Auth<Viewer>,
    id: Uuid,
) -> ApiResult<(AlertView, Vec<AlertTransition>)> {
    let tx = auth.begin().await?;
    let alert = tx
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::not_found("alert"))?;
    let history = tx.alert_transitions(id).await?;
    tx.commit().await?;
    Ok((alert, history))
}
