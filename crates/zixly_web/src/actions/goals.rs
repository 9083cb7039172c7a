//! The goal actions of `api/goals.rs` and the Goals page (`pages/goals.rs`): list goals with
//! their progress, create, change, archive, set per-period targets, import a CSV of budgets.
//! EDITORs and ADMINs manage goals (`Auth<Editor>`), VIEWERs read them (`Auth<Viewer>`).
//!
//! Input arrives as text so that every rejection names its field (`target: not a decimal
//! number`) or, for a budget file, its line and column, whichever front end sent it; each write
//! appends its audit row in its transaction. Progress is computed by
//! `zixly_db`'s `TenantTx::goal_progress` (the KPI reader plus `zixly_domain::goals::evaluate`)
//! as of today in the tenant's time zone.
//!
//! ## Budget CSV
//! Two layouts, told apart by the header (column order free, names exact):
//! - `period_start,target`: targets of one goal (the caller names it);
//! - `kpi,client_id,period_start,target`: targets of the live goal on that KPI for that client
//!   (`client_id` as in imports, the client's identifier in its source system; empty for a
//!   tenant-wide goal). A line matching no goal, or several (say a monthly and a quarterly goal
//!   on the same KPI), is an error naming it.
//!
//! `period_start` must be the first day of one of the goal's periods (a month's 1st, a quarter's
//! first day, 1 January; a fixed goal's `from`). The import is all or nothing: any error answers
//! 422 listing every line's problem and writes nothing; a period given twice is an error too.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;
use zixly_db::queries::goals::{Goal, GoalChanges, GoalProgress, GoalTarget, NewGoal};
use zixly_db::TenantTx;
use zixly_domain::goals::{GoalKind, GoalPeriod};
use zixly_domain::metrics::{builtin, BUILTIN_KPIS};
use zixly_domain::period::DateRange;

use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};
use crate::pages::range::today_in;

/// The longest goal name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The most past periods one history read returns.
pub(crate) const MAX_HISTORY: usize = 36;
/// The most lines of a budget file (ten years of months for 100 goals).
pub(crate) const MAX_BUDGET_LINES: usize = 12_000;
/// A target's magnitude must stay under 10¹⁶ to fit `numeric(20,4)`.
fn max_target() -> Decimal {
    Decimal::new(10_i64.pow(16), 0)
}

/// A goal with its per-period targets and its progress as of today.
#[derive(Debug, Clone)]
pub(crate) struct GoalWithProgress {
    pub goal: Goal,
    pub targets: Vec<GoalTarget>,
    pub progress: GoalProgress,
    /// Display name of the goal's KPI (a custom metric's definition, else its name).
    pub kpi_display_name: String,
    /// Whether the KPI is a ratio shown as a percentage (margin, win rate).
    pub is_ratio: bool,
}

/// A new goal as a front end received it.
#[derive(Debug, Default)]
pub(crate) struct GoalInput<'a> {
    pub name: Option<&'a str>,
    pub kpi: &'a str,
    pub client_id: Option<Uuid>,
    pub period: &'a str,
    /// Only for `period = fixed`, `YYYY-MM-DD`.
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub kind: &'a str,
    pub target: &'a str,
}

/// A change as a front end received it: `None` leaves a field alone; `name: Some(None)` clears it.
#[derive(Debug, Default)]
pub(crate) struct GoalChange<'a> {
    pub name: Option<Option<&'a str>>,
    pub period: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub target: Option<&'a str>,
}

/// How many past periods a goal's history shows by default: a year of months, two years of
/// quarters, three years.
pub(crate) fn default_history(period: &GoalPeriod) -> usize {
    match period {
        GoalPeriod::Month => 12,
        GoalPeriod::Quarter => 8,
        GoalPeriod::Year => 3,
        GoalPeriod::Fixed(_) => 0,
    }
}

pub(crate) fn is_ratio(kpi: &str) -> bool {
    builtin(kpi).is_some_and(|k| k.aggregation.is_none())
}

/// A decimal target: at most 4 places (the column's), within ±10¹⁶; a ratio KPI's target is a
/// fraction of at most 1 (`0.3` = 30 %), so that "30" meaning 30 % is caught.
pub(crate) fn parse_target(
    field: &str,
    text: &str,
    ratio: bool,
    errors: &mut Vec<ErrorDetail>,
) -> Option<Decimal> {
    let t = text.trim();
    let Ok(v) = t.parse::<Decimal>() else {
        errors.push(ErrorDetail::field(field, "not a decimal number"));
        return None;
    };
    if v.normalize().scale() > 4 {
        errors.push(ErrorDetail::field(field, "at most 4 decimal places"));
        return None;
    }
    if v.abs() >= max_target() {
        errors.push(ErrorDetail::field(field, "too large"));
        return None;
    }
    if ratio && v > Decimal::ONE {
        errors.push(ErrorDetail::field(
            field,
            "a ratio's target is a fraction: 0.3 for 30 %",
        ));
        return None;
    }
    Some(v.normalize())
}

fn parse_date(field: &str, text: Option<&str>, errors: &mut Vec<ErrorDetail>) -> Option<NaiveDate> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        errors.push(ErrorDetail::field(field, "required for a fixed period"));
        return None;
    };
    match zixly_domain::period::parse_iso_date(t) {
        Some(d) => Some(d),
        None => {
            errors.push(ErrorDetail::field(field, "not a date (YYYY-MM-DD)"));
            None
        }
    }
}

fn parse_period(
    period: &str,
    from: Option<&str>,
    to: Option<&str>,
    errors: &mut Vec<ErrorDetail>,
) -> Option<GoalPeriod> {
    let period = period.trim();
    if period == "fixed" {
        let (f, t) = (
            parse_date("from", from, errors),
            parse_date("to", to, errors),
        );
        let (f, t) = f.zip(t)?;
        return match DateRange::new(f, t) {
            Ok(r) if r.days() <= 3 * 366 => Some(GoalPeriod::Fixed(r)),
            Ok(_) => {
                errors.push(ErrorDetail::field(
                    "to",
                    "a fixed period is at most 3 years",
                ));
                None
            }
            Err(_) => {
                errors.push(ErrorDetail::field("to", "must not be before `from`"));
                None
            }
        };
    }
    if from.is_some() || to.is_some() {
        errors.push(ErrorDetail::field(
            "from",
            "only a fixed period has `from` and `to`",
        ));
    }
    match GoalPeriod::parse_recurring(period) {
        Ok(p) => Some(p),
        Err(_) => {
            errors.push(ErrorDetail::field(
                "period",
                format!("unknown period `{period}`: expected month, quarter, year or fixed"),
            ));
            None
        }
    }
}

fn parse_kind(kind: &str, errors: &mut Vec<ErrorDetail>) -> Option<GoalKind> {
    match kind.trim().parse::<GoalKind>() {
        Ok(k) => Some(k),
        Err(e) => {
            errors.push(ErrorDetail::field("kind", e.to_string()));
            None
        }
    }
}

fn parse_name(name: Option<&str>, errors: &mut Vec<ErrorDetail>) -> Option<String> {
    let n = name.map(str::trim).filter(|n| !n.is_empty())?;
    if n.chars().count() > MAX_NAME_CHARS {
        errors.push(ErrorDetail::field(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Some(n.to_owned())
}

/// Whether `kpi` is in the tenant's catalogue: a built-in KPI or a custom metric it has seen.
pub(crate) async fn known_kpi(tx: &TenantTx, kpi: &str) -> ApiResult<bool> {
    Ok(builtin(kpi).is_some() || tx.metric_definition(kpi).await?.is_some())
}

pub(crate) fn unknown_kpi(kpi: &str) -> ErrorDetail {
    let names: Vec<&str> = BUILTIN_KPIS.iter().map(|k| k.name).collect();
    ErrorDetail::field(
        "kpi",
        format!(
            "unknown KPI `{}`: expected one of {} or a custom metric's name",
            kpi.chars().take(80).collect::<String>(),
            names.join(", ")
        ),
    )
}

pub(crate) async fn kpi_display_name(tx: &TenantTx, kpi: &str) -> ApiResult<String> {
    if let Some(k) = builtin(kpi) {
        return Ok(k.display_name.to_owned());
    }
    Ok(tx
        .metric_definition(kpi)
        .await?
        .map_or_else(|| kpi.to_owned(), |d| d.display_name))
}

/// Progress of each goal, in one transaction.
async fn with_progress(
    tx: &TenantTx,
    goals: Vec<Goal>,
    history: Option<usize>,
) -> ApiResult<Vec<GoalWithProgress>> {
    let profile = tx.tenant_profile().await?;
    let today = today_in(&profile.time_zone);
    let ids: Vec<Uuid> = goals.iter().map(|g| g.id).collect();
    let all_targets = tx.goal_targets(&ids).await?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(goals.len());
    for goal in goals {
        let targets: Vec<GoalTarget> = all_targets
            .iter()
            .filter(|t| t.goal_id == goal.id)
            .copied()
            .collect();
        let count = history
            .unwrap_or_else(|| default_history(&goal.period))
            .min(MAX_HISTORY);
        let progress = tx.goal_progress(&goal, &targets, today, count).await?;
        let kpi_display_name = match names.get(&goal.kpi) {
            Some(n) => n.clone(),
            None => {
                let n = kpi_display_name(tx, &goal.kpi).await?;
                names.insert(goal.kpi.clone(), n.clone());
                n
            }
        };
        out.push(GoalWithProgress {
            is_ratio: is_ratio(&goal.kpi),
            goal,
            targets,
            progress,
            kpi_display_name,
        });
    }
    Ok(out)
}

/// The tenant's live goals (only one client's with `client`) with their current progress; with
/// `history` past periods each (`None`: each goal's [`default_history`]).
pub(crate) async fn list(
    auth: &Auth<Viewer>,
    client: Option<Uuid>,
    history: Option<usize>,
) -> ApiResult<Vec<GoalWithProgress>> {
    let tx = auth.begin().await?;
    let goals = tx.list_goals(client).await?;
    let out = with_progress(&tx, goals, history).await?;
    tx.commit().await?;
    Ok(out)
}

/// One live goal with its progress and `history` past periods (`None`: [`default_history`]);
/// 404 if the tenant has none.
pub(crate) async fn get(
    auth: &Auth<Viewer>,
    id: Uuid,
    history: Option<usize>,
) -> ApiResult<GoalWithProgress> {
    let tx = auth.begin().await?;
    let goal = tx
        .goal(id)
        .await?
        .ok_or_else(|| ApiError::not_found("goal"))?;
    let mut out = with_progress(&tx, vec![goal], history).await?;
    tx.commit().await?;
    Ok(out.pop().expect("one goal in, one out"))
}

fn goal_summary(g: &Goal) -> serde_json::Value {
    let (from, to) = match g.period {
        GoalPeriod::Fixed(r) => (Some(r.from()), Some(r.to())),
        _ => (None, None),
    };
    json!({
        "name": g.name, "kpi": g.kpi, "client_id": g.client_id, "period": g.period.as_str(),
        "from": from, "to": to, "kind": g.kind.as_str(), "target": g.target.to_string(),
    })
}

/// Creates a goal: 422 naming each bad field (an unknown KPI or client among them).
pub(crate) async fn create(auth: &Auth<Editor>, input: &GoalInput<'_>) -> ApiResult<Goal> {
    let mut errors = Vec::new();
    let kpi = input.kpi.trim();
    if kpi.is_empty() {
        errors.push(ErrorDetail::field("kpi", "must not be blank"));
    }
    let name = parse_name(input.name, &mut errors);
    let period = parse_period(input.period, input.from, input.to, &mut errors);
    let kind = parse_kind(input.kind, &mut errors);
    let target = parse_target("target", input.target, is_ratio(kpi), &mut errors);
    let tx = auth.begin().await?;
    if !kpi.is_empty() && !known_kpi(&tx, kpi).await? {
        errors.push(unknown_kpi(kpi));
    }
    if let Some(c) = input.client_id {
        if !tx.client_exists(c).await? {
            errors.push(ErrorDetail::field("client_id", "no such client"));
        }
    }
    let (Some(period), Some(kind), Some(target), true) = (period, kind, target, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    let goal = tx
        .create_goal(&NewGoal {
            name,
            kpi: kpi.to_owned(),
            client_id: input.client_id,
            period,
            kind,
            target,
            created_by: Some(auth.user_id()),
        })
        .await?;
    tx.append_audit(&auth.audit(
        "goal.create",
        "goal",
        Some(goal.id.to_string()),
        goal_summary(&goal),
    ))
    .await?;
    tx.commit().await?;
    Ok(goal)
}

/// Changes a goal's name, period, kind or target (the KPI and client are what the goal is
/// about; another figure is another goal). 404 for no such live goal, 422 for a bad field or
/// nothing to change; the audit row lists each changed field with its old and new value.
pub(crate) async fn update(
    auth: &Auth<Editor>,
    id: Uuid,
    change: &GoalChange<'_>,
) -> ApiResult<Goal> {
    let mut errors = Vec::new();
    let tx = auth.begin().await?;
    let current = tx
        .goal(id)
        .await?
        .ok_or_else(|| ApiError::not_found("goal"))?;
    let changes = GoalChanges {
        name: change.name.map(|n| parse_name(n, &mut errors)),
        period: match (change.period, change.from, change.to) {
            (Some(p), f, t) => parse_period(p, f, t, &mut errors),
            (None, None, None) => None,
            // New dates of a fixed goal without repeating `period`.
            (None, f, t) => match current.period {
                GoalPeriod::Fixed(r) => {
                    let from = r.from().to_string();
                    let to = r.to().to_string();
                    parse_period("fixed", f.or(Some(&from)), t.or(Some(&to)), &mut errors)
                }
                _ => {
                    errors.push(ErrorDetail::field(
                        "from",
                        "only a fixed period has `from` and `to`",
                    ));
                    None
                }
            },
        },
        kind: change.kind.and_then(|k| parse_kind(k, &mut errors)),
        target: change
            .target
            .and_then(|t| parse_target("target", t, is_ratio(&current.kpi), &mut errors)),
    };
    if errors.is_empty() && changes.is_empty() {
        errors.push(ErrorDetail {
            reason: "nothing to change: give at least one of name, period, from, to, kind, target"
                .into(),
            ..Default::default()
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (before, after) = tx
        .update_goal(id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("goal"))?;
    // Per-period targets that start no period of the new recurrence would silently apply to
    // whatever period shares their first day (a January override becoming Q1's): drop them.
    let mut dropped = Vec::new();
    if before.period != after.period {
        let targets = tx.goal_targets(&[id]).await?;
        let (keep, drop): (Vec<GoalTarget>, Vec<GoalTarget>) = targets
            .into_iter()
            .partition(|t| is_period_start(&after.period, t.period_start));
        if !drop.is_empty() {
            let rows: Vec<(NaiveDate, Decimal)> =
                keep.iter().map(|t| (t.period_start, t.target)).collect();
            tx.set_goal_targets(id, &rows, true).await?;
            dropped = drop.iter().map(|t| t.period_start).collect();
        }
    }
    let (old, new) = (goal_summary(&before), goal_summary(&after));
    let mut changed = serde_json::Map::new();
    for field in ["name", "period", "from", "to", "kind", "target"] {
        if old[field] != new[field] {
            changed.insert(field.into(), json!({"from": old[field], "to": new[field]}));
        }
    }
    tx.append_audit(&auth.audit(
        "goal.update",
        "goal",
        Some(id.to_string()),
        json!({ "changed": changed, "targets_dropped": dropped }),
    ))
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Archives a goal: it leaves every list and read (404 afterwards); its row stays for the audit
/// trail.
pub(crate) async fn archive(auth: &Auth<Editor>, id: Uuid) -> ApiResult<()> {
    let tx = auth.begin().await?;
    let goal = tx
        .archive_goal(id)
        .await?
        .ok_or_else(|| ApiError::not_found("goal"))?;
    tx.append_audit(&auth.audit(
        "goal.archive",
        "goal",
        Some(id.to_string()),
        goal_summary(&goal),
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `start` is the first day of one of the goal's periods.
fn is_period_start(period: &GoalPeriod, start: NaiveDate) -> bool {
    period.period_of(start).from() == start
}

fn period_start_rule(period: &GoalPeriod) -> String {
    match period {
        GoalPeriod::Month => "the first day of a month".to_owned(),
        GoalPeriod::Quarter => "the first day of a quarter (Jan, Apr, Jul or Oct 1)".to_owned(),
        GoalPeriod::Year => "1 January of a year".to_owned(),
        GoalPeriod::Fixed(r) => format!("the fixed period's first day, {}", r.from()),
    }
}

/// Replaces a goal's per-period targets with `targets` (`(period_start, target)` as text; an
/// empty list removes every override). Errors name `targets[i].period_start` / `.target`.
pub(crate) async fn set_targets(
    auth: &Auth<Editor>,
    id: Uuid,
    targets: &[(&str, &str)],
) -> ApiResult<Vec<GoalTarget>> {
    let tx = auth.begin().await?;
    let goal = tx
        .goal(id)
        .await?
        .ok_or_else(|| ApiError::not_found("goal"))?;
    let mut errors = Vec::new();
    let mut parsed: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    let ratio = is_ratio(&goal.kpi);
    for (i, (start, target)) in targets.iter().enumerate() {
        let field = |f: &str| format!("targets[{i}].{f}");
        let start = match zixly_domain::period::parse_iso_date(start.trim()) {
            Some(s) if is_period_start(&goal.period, s) => Some(s),
            Some(_) => {
                errors.push(ErrorDetail::field(
                    field("period_start"),
                    format!("must be {}", period_start_rule(&goal.period)),
                ));
                None
            }
            None => {
                errors.push(ErrorDetail::field(
                    field("period_start"),
                    "not a date (YYYY-MM-DD)",
                ));
                None
            }
        };
        let value = parse_target(&field("target"), target, ratio, &mut errors);
        if let (Some(s), Some(v)) = (start, value) {
            if parsed.insert(s, v).is_some() {
                errors.push(ErrorDetail::field(field("period_start"), "given twice"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let rows: Vec<(NaiveDate, Decimal)> = parsed.into_iter().collect();
    tx.set_goal_targets(id, &rows, true).await?;
    tx.append_audit(&auth.audit(
        "goal.targets",
        "goal",
        Some(id.to_string()),
        json!({"targets": rows.iter().map(|(s, t)| json!({"period_start": s, "target": t.to_string()})).collect::<Vec<_>>()}),
    ))
    .await?;
    let out = tx.goal_targets(&[id]).await?;
    tx.commit().await?;
    Ok(out)
}

/// What a budget import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetImport {
    /// Lines read (without the header).
    pub lines: usize,
    /// Goals whose targets were written.
    pub goals: usize,
}

/// Imports a budget file (layouts in the module docs). `goal`: the goal of a `period_start,
/// target` file (422 on `goal_id` without one). Upserts: periods the file does not name keep
/// their targets.
pub(crate) async fn import_budgets(
    auth: &Auth<Editor>,
    goal: Option<Uuid>,
    csv_text: &str,
) -> ApiResult<BudgetImport> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::validation(vec![ErrorDetail::line(1, None, e.to_string())]))?
        .iter()
        .map(str::to_owned)
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(start_col), Some(target_col)) = (col("period_start"), col("target")) else {
        return Err(ApiError::validation(vec![ErrorDetail::line(
            1,
            None,
            "the header must name period_start and target (and kpi, client_id for several goals)",
        )]));
    };
    let keyed = match (col("kpi"), col("client_id")) {
        (Some(k), Some(c)) => Some((k, c)),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(vec![ErrorDetail::line(
                1,
                None,
                "kpi and client_id go together",
            )]))
        }
    };
    if keyed.is_none() && goal.is_none() {
        return Err(ApiError::validation(vec![ErrorDetail::field(
            "goal_id",
            "a file of period_start,target is one goal's: name the goal (or add kpi and client_id columns)",
        )]));
    }
    let tx = auth.begin().await?;
    let goals = tx.list_goals(None).await?;
    let clients: HashMap<String, Uuid> = tx
        .client_directory()
        .await?
        .into_iter()
        .map(|(id, code, _)| (code, id))
        .collect();
    let only = match goal {
        Some(id) => Some(
            goals
                .iter()
                .find(|g| g.id == id)
                .ok_or_else(|| ApiError::not_found("goal"))?,
        ),
        None => None,
    };
    let mut errors: Vec<ErrorDetail> = Vec::new();
    let mut writes: BTreeMap<Uuid, BTreeMap<NaiveDate, Decimal>> = BTreeMap::new();
    let mut lines = 0usize;
    for record in reader.records() {
        lines += 1;
        let line = lines as u64 + 1;
        if lines > MAX_BUDGET_LINES {
            errors.push(ErrorDetail::line(
                line,
                None,
                format!("at most {MAX_BUDGET_LINES} lines"),
            ));
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(ErrorDetail::line(line, None, e.to_string()));
                continue;
            }
        };
        let cell = |i: usize| record.get(i).unwrap_or("");
        let target_goal = match (only, keyed) {
            (Some(g), _) => Some(g),
            (None, Some((k, c))) => {
                let (kpi, code) = (cell(k), cell(c));
                let client = if code.is_empty() {
                    Some(None)
                } else {
                    clients.get(code).map(|id| Some(*id))
                };
                match client {
                    None => {
                        errors.push(ErrorDetail::line(
                            line,
                            Some("client_id".into()),
                            "no such client",
                        ));
                        None
                    }
                    Some(client) => {
                        let found: Vec<&Goal> = goals
                            .iter()
                            .filter(|g| g.kpi == kpi && g.client_id == client)
                            .collect();
                        match found.as_slice() {
                            [g] => Some(*g),
                            [] => {
                                errors.push(ErrorDetail::line(
                                    line,
                                    Some("kpi".into()),
                                    "no goal on this KPI for this client",
                                ));
                                None
                            }
                            _ => {
                                errors.push(ErrorDetail::line(
                                    line,
                                    Some("kpi".into()),
                                    "several goals on this KPI for this client: import into one goal",
                                ));
                                None
                            }
                        }
                    }
                }
            }
            (None, None) => unreachable!("checked above"),
        };
        let start = match zixly_domain::period::parse_iso_date(cell(start_col)) {
            Some(s) => Some(s),
            None => {
                errors.push(ErrorDetail::line(
                    line,
                    Some("period_start".into()),
                    "not a date (YYYY-MM-DD)",
                ));
                None
            }
        };
        let mut field_errors = Vec::new();
        let value = parse_target(
            "target",
            cell(target_col),
            target_goal.is_some_and(|g| is_ratio(&g.kpi)),
            &mut field_errors,
        );
        errors.extend(
            field_errors
                .into_iter()
                .map(|e| ErrorDetail::line(line, Some("target".into()), e.reason)),
        );
        let (Some(g), Some(start), Some(value)) = (target_goal, start, value) else {
            continue;
        };
        if !is_period_start(&g.period, start) {
            errors.push(ErrorDetail::line(
                line,
                Some("period_start".into()),
                format!("must be {}", period_start_rule(&g.period)),
            ));
            continue;
        }
        if writes
            .entry(g.id)
            .or_default()
            .insert(start, value)
            .is_some()
        {
            errors.push(ErrorDetail::line(
                line,
                Some("period_start".into()),
                "this goal's period is given twice",
            ));
        }
        if errors.len() >= 100 {
            break;
        }
    }
    if lines == 0 {
        errors.push(ErrorDetail::line(
            1,
            None,
            "no budget lines after the header",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    for (goal_id, targets) in &writes {
        let rows: Vec<(NaiveDate, Decimal)> = targets.iter().map(|(s, t)| (*s, *t)).collect();
        tx.set_goal_targets(*goal_id, &rows, false).await?;
    }
    let summary = BudgetImport {
        lines,
        goals: writes.len(),
    };
    tx.append_audit(&auth.audit(
        "goal.import_budgets",
        "goal",
        goal.map(|g| g.to_string()),
        json!({"lines": lines, "goals": writes.keys().map(Uuid::to_string).collect::<Vec<_>>()}),
    ))
    .await?;
    tx.commit().await?;
    Ok(summary)
}
