//! `/alerts`: the alerts of the tenant's rules (firing first, then the latest changes, each with
//! its state, figure, threshold or expected band and why) and the rules themselves; for EDITORs
//! the forms that create, snooze, wake and delete rules. VIEWERs see the same page without
//! forms. Each form calls the action behind the API route that does the same
//! (`crate::actions::alerts`).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::alerts::{AlertRule, AlertView};
use zixly_domain::alerts::state::AlertState;
use zixly_domain::alerts::{ChangeMode, Condition, RuleKind, Scope};
use zixly_domain::display::{self, CustomMetricWords, Figures};
use zixly_domain::metrics::BUILTIN_KPIS;
use zixly_domain::period::Bucket;
use zixly_domain::Role;

use super::account::problem_text;
use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{page, time, PageError, PageUser};
use crate::actions::alerts::{self as actions, RuleInput};
use crate::auth::{Editor, Viewer};
use crate::error::ApiError;
use crate::input_guard::Form;

const NOTICES: &[Notice] = &[
    Notice::ok(
        "created",
        "The rule was created; it is evaluated now and after every import or sync.",
    ),
    Notice::ok(
        "snoozed",
        "The rule was snoozed: its alerts notify nobody until then.",
    ),
    Notice::ok("woken", "The rule is awake again."),
    Notice::ok("deleted", "The rule was deleted with its alerts."),
];

/// How many alerts the page lists.
const LISTED_ALERTS: i64 = 100;

fn state_label(s: AlertState) -> (&'static str, &'static str) {
    match s {
        AlertState::Firing => ("off_track", "Firing"),
        AlertState::Pending => ("at_risk", "Pending"),
        AlertState::Resolved => ("on_track", "Resolved"),
        AlertState::Ok => ("on_track", "OK"),
        AlertState::NoData => ("none", "No data"),
    }
}

fn kind_label(k: RuleKind) -> &'static str {
    match k {
        RuleKind::Threshold => "Threshold",
        RuleKind::Change => "Change",
        RuleKind::Anomaly => "Anomaly",
        RuleKind::Goal => "Goal status",
        RuleKind::Stale => "Stale data",
    }
}

fn bucket_word(b: Bucket) -> &'static str {
    match b {
        Bucket::Day => "day",
        Bucket::Week => "week",
        Bucket::Month => "month",
    }
}

/// One sentence saying what a rule watches: "Revenue per month of Acme Pty above $1,000".
fn rule_sentence(
    r: &AlertRule,
    f: &Figures,
    clients: &[(Uuid, String, String)],
    integrations: &[(Uuid, &'static str)],
) -> String {
    let s = &r.spec;
    let who = match s.scope {
        Scope::Tenant => "all clients together".to_owned(),
        Scope::EachClient => "each client".to_owned(),
        Scope::Clients => s
            .client_ids
            .iter()
            .map(|id| {
                clients
                    .iter()
                    .find(|c| c.0 == *id)
                    .map_or_else(|| "a deleted client".to_owned(), |c| c.2.clone())
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    let kpi = f.kpi_name(s.kpi.as_deref());
    let per = bucket_word(s.bucket);
    let value = s.value.unwrap_or_default();
    match s.kind {
        RuleKind::Threshold => format!(
            "{kpi} per {per} of {who} {} {}",
            if s.condition == Some(Condition::Below) {
                "below"
            } else {
                "above"
            },
            f.kpi(s.kpi.as_deref(), value)
        ),
        RuleKind::Change => {
            let size = if s.change_mode == Some(ChangeMode::Absolute) {
                f.kpi(s.kpi.as_deref(), value)
            } else {
                format!("{} %", display::number(value))
            };
            format!(
                "{kpi} per {per} of {who} {} by more than {size} against {}",
                if s.condition == Some(Condition::Below) {
                    "falls"
                } else {
                    "rises"
                },
                if s.compare_to.map(|c| c.as_str()) == Some("last_year") {
                    "the same period last year"
                } else {
                    "the previous one"
                }
            )
        }
        RuleKind::Anomaly => format!(
            "{kpi} per {per} of {who} outside the band its history predicts{}",
            match s.condition {
                Some(Condition::Above) => " (spikes only)",
                Some(Condition::Below) => " (drops only)",
                None => "",
            }
        ),
        RuleKind::Goal => format!("The goal on {kpi} goes off track or is missed"),
        RuleKind::Stale => match s.integration_id {
            Some(id) => {
                let name = integrations
                    .iter()
                    .find(|i| i.0 == id)
                    .map_or("the integration", |i| i.1);
                format!(
                    "No new data from {name} for {} days, or {name} in error",
                    s.stale_days.unwrap_or(1)
                )
            }
            None => format!(
                "No new data for {} days ({who}), or a connection in error",
                s.stale_days.unwrap_or(1)
            ),
        },
    }
}

fn alert_figures(a: &AlertView, f: &Figures) -> Markup {
    let kpi = a.detail.get("kpi").and_then(|k| k.as_str());
    let mode = a
        .detail
        .pointer("/comparison/change_mode")
        .and_then(|m| m.as_str())
        .and_then(|m| m.parse::<ChangeMode>().ok());
    let show = |d: Decimal| f.judged(a.kind, kpi, mode, d);
    html! {
        @if let Some(v) = a.value { strong { (show(v)) } } @else { span class="muted" { "no data" } }
        @if let (Some(lo), Some(hi)) = (a.expected_low, a.expected_high) {
            span class="muted" { " · expected " (f.kpi(kpi, lo)) " – " (f.kpi(kpi, hi)) }
        } @else if let Some(t) = a.threshold {
            span class="muted" { " · " @if a.kind == RuleKind::Goal { "target " } @else { "threshold " } (show(t)) }
        }
    }
}

fn bucket_label(a: &AlertView) -> String {
    match a.kind {
        RuleKind::Stale => "now".into(),
        _ => {
            let b = a
                .detail
                .get("bucket")
                .and_then(|b| b.as_str())
                .and_then(|b| b.parse::<Bucket>().ok())
                .unwrap_or(Bucket::Month);
            display::bucket_label(b, a.bucket_start)
        }
    }
}

/// The tenant's integrations by id, as people name their providers ("Xero").
async fn integration_names(
    tx: &zixly_db::TenantTx,
) -> Result<Vec<(Uuid, &'static str)>, PageError> {
    Ok(tx
        .integrations()
        .await?
        .into_iter()
        .filter_map(|i| {
            zixly_connectors::Provider::parse(&i.provider).map(|p| (i.id, p.display_name()))
        })
        .collect())
}

/// The tenant's custom metrics as the figures name them.
async fn custom_words(tx: &zixly_db::TenantTx) -> Result<Vec<CustomMetricWords>, PageError> {
    Ok(tx
        .metric_definitions()
        .await?
        .into_iter()
        .map(|d| CustomMetricWords {
            name: d.name,
            display_name: d.display_name,
            unit: d.unit,
        })
        .collect())
}

/// `GET /alerts/{id}`: one alert — its rule, subject, period, figure and why — with every change
/// of its state, when it happened, the figure then and whether it was notified (as
/// `GET /api/v1/alerts/{id}`).
pub async fn alert_page(
    user: PageUser<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound)?;
    let (a, history) = actions::get_alert(&user.auth, id).await?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let custom = custom_words(&tx).await?;
    tx.commit().await?;
    let f = Figures::new(&tenant.base_currency, custom);
    let kpi = a.detail.get("kpi").and_then(|k| k.as_str());
    let mode = a
        .detail
        .pointer("/comparison/change_mode")
        .and_then(|m| m.as_str())
        .and_then(|m| m.parse::<ChangeMode>().ok());
    let (class, label) = state_label(a.state);
    let subject = a
        .client_name
        .clone()
        .unwrap_or_else(|| "All clients".into());
    let title = format!("{} · {}", a.rule_name, subject);
    let body = html! {
        p class="small" { a href="/alerts" { "← All alerts" } }
        (html::head(&title, &format!("{} · {}", kind_label(a.kind), bucket_label(&a)), html! {
            span class={ "status " (class) } data-state=(a.state.as_str()) { (label) }
        }))
        section class="card" aria-labelledby="now-title" {
            h2 id="now-title" { "Latest evaluation" }
            p { (alert_figures(&a, &f)) }
            @if let Some(r) = a.detail.get("reason").and_then(|r| r.as_str()) { p { (r) } }
            p class="muted small" {
                "Evaluated " (time::local(a.evaluated_at, &tenant.time_zone))
                @if let Some(id) = a.client_id { " · " a href={ "/clients/" (id) } { "Open " (subject) } }
            }
        }
        section class="card" aria-labelledby="history-title" {
            h2 id="history-title" { "History" }
            @if history.is_empty() {
                p class="empty" { "No change of state yet." }
            } @else {
                div class="table-wrap" {
                    table class="stack" {
                        thead { tr { th { "When" } th { "Change" } th { "Figure" } th { "Notified" } } }
                        tbody {
                            @for t in history.iter().rev() {
                                tr data-transition=(t.id) {
                                    td data-label="When" class="small" { (time::local(t.occurred_at, &tenant.time_zone)) }
                                    td data-label="Change" {
                                        @if let Some(from) = t.from_state { (state_label(from).1) " → " }
                                        strong { (state_label(t.to_state).1) }
                                    }
                                    td data-label="Figure" {
                                        @if let Some(v) = t.value { (f.judged(a.kind, kpi, mode, v)) } @else { span class="muted" { "no data" } }
                                    }
                                    td data-label="Notified" { @if t.notify { "Yes" } @else { span class="muted" { "No" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(page_layout(
        &title,
        Nav::Alerts,
        Some(&user.who(&tenant)),
        body,
    )))
}

pub async fn alerts_page(
    user: PageUser<Viewer>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = q.pick(NOTICES).map(|n| n.render(None, None));
    render(&user, StatusCode::OK, message, None).await
}

/// The values a refused create form had, to show them again.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    kpi: String,
    /// A client's id, `""` for all clients together, `each` for each client, `some` for the
    /// clients ticked (`client_<id>=on`).
    #[serde(default)]
    client: String,
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    change_mode: String,
    #[serde(default)]
    compare_to: String,
    #[serde(default)]
    goal_id: String,
    #[serde(default)]
    stale_days: String,
    /// Stale rules: an integration's id, `""` for all data.
    #[serde(default)]
    integration: String,
    #[serde(default)]
    pending_minutes: String,
    /// Minutes between reminders while firing; `""`: notify once.
    #[serde(default)]
    repeat_minutes: String,
    /// The channel checkboxes (and the clients' ones, `client_<id>=on`), `channel_<id>=on` (a form's repeated names do not decode into
    /// a list with `serde_urlencoded`, so each box has its own name).
    #[serde(flatten)]
    checked: std::collections::HashMap<String, String>,
}

impl CreateForm {
    fn channels(&self) -> impl Iterator<Item = &str> {
        self.checked
            .keys()
            .filter_map(|k| k.strip_prefix("channel_"))
    }
    fn ticked_clients(&self) -> impl Iterator<Item = &str> {
        self.checked
            .keys()
            .filter_map(|k| k.strip_prefix("client_"))
    }
}

/// "every hour", "every 2 days", … for a reminder interval in seconds.
fn repeat_words(seconds: i64) -> String {
    let minutes = seconds / 60;
    let (n, unit) = match minutes {
        m if m % 10_080 == 0 => (m / 10_080, "week"),
        m if m % 1440 == 0 => (m / 1440, "day"),
        m if m % 60 == 0 => (m / 60, "hour"),
        m => (m, "minute"),
    };
    if n == 1 {
        format!("every {unit}")
    } else {
        format!("every {n} {unit}s")
    }
}

/// The "Notify again" choices: minutes between reminders while a rule keeps firing.
const REPEATS: [(&str, &str); 4] = [
    ("", "Once, when it starts firing"),
    ("60", "Every hour while firing"),
    ("1440", "Every day while firing"),
    ("10080", "Every week while firing"),
];

async fn render(
    user: &PageUser<Viewer>,
    status: StatusCode,
    message: Option<Markup>,
    typed: Option<&CreateForm>,
) -> Result<Response, PageError> {
    let rules = actions::list_rules(&user.auth).await?;
    let mut alerts = actions::list_alerts(&user.auth, None, None, Some(LISTED_ALERTS)).await?;
    // Firing first, then pending, then the rest; each by latest change.
    alerts.sort_by_key(|a| match a.state {
        AlertState::Firing => 0,
        AlertState::Pending => 1,
        _ => 2,
    });
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let clients = tx.client_directory().await?;
    let custom = custom_words(&tx).await?;
    let goals = tx.list_goals(None).await?;
    let integrations = integration_names(&tx).await?;
    let channels =
        if user.auth.role().includes(Role::Admin) || user.auth.role().includes(Role::Editor) {
            tx.list_channels().await?
        } else {
            Vec::new()
        };
    tx.commit().await?;
    let editor = user.auth.role().includes(Role::Editor);
    let csrf = csrf_input(&user.csrf);
    let f = Figures::new(&tenant.base_currency, custom.clone());
    let now = Utc::now();
    let blank = CreateForm::default();
    let typed = typed.unwrap_or(&blank);
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .count();
    let body = html! {
        (html::head("Alerts", "Rules that watch your figures after every import and sync, and what they found.", html! {}))
        @if let Some(m) = message { (m) }
        @if !editor {
            p class="hint" { "You can read rules and alerts; EDITORs and ADMINs set and change rules." }
        }
        section class="card" aria-labelledby="alerts-title" {
            div class="card-head" {
                h2 id="alerts-title" { "Latest alerts" }
                @if firing > 0 {
                    span class="status off_track" data-firing=(firing) { (firing) " firing" }
                } @else if !alerts.is_empty() {
                    span class="status on_track" { "Nothing firing" }
                }
            }
            @if alerts.is_empty() {
                p class="empty" { "No alerts yet: a rule's first alert appears when its figure crosses it (or has no data)." }
            } @else {
                div class="table-wrap" {
                    table class="alerts stack" {
                        thead { tr { th { "State" } th { "Rule" } th { "Client" } th { "Period" } th { "Figure" } th { "Since" } } }
                        tbody {
                            @for a in &alerts {
                                @let (class, label) = state_label(a.state);
                                tr data-alert=(a.id) data-state=(a.state.as_str()) {
                                    td data-label="State" { span class={ "status " (class) } { (label) } }
                                    td data-label="Rule" {
                                        a href={ "/alerts/" (a.id) } { (a.rule_name) }
                                        @if let Some(r) = a.detail.get("reason").and_then(|r| r.as_str()) {
                                            div class="muted small" { (r) }
                                        }
                                    }
                                    td data-label="Client" {
                                        @match (a.client_id, a.client_name.as_deref()) {
                                            (Some(id), Some(name)) => a href={ "/clients/" (id) } { (name) },
                                            _ => span class="muted" { "All clients" },
                                        }
                                    }
                                    td data-label="Period" { (bucket_label(a)) }
                                    td data-label="Figure" { (alert_figures(a, &f)) }
                                    td class="small" data-label="Since" {
                                        (time::local(match a.state {
                                            AlertState::Firing => a.fired_at.unwrap_or(a.updated_at),
                                            AlertState::Resolved => a.resolved_at.unwrap_or(a.updated_at),
                                            _ => a.updated_at,
                                        }, &tenant.time_zone))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="rules-title" {
            h2 id="rules-title" { "Rules" }
            @if rules.is_empty() {
                p class="empty" { "No rules yet." @if editor { " Create the first one below." } }
            }
            @for r in &rules {
                div class="rule" data-rule=(r.id) {
                    div class="card-head" {
                        div {
                            h3 { (r.spec.name) }
                            p class="muted small" {
                                (kind_label(r.spec.kind)) " · " (rule_sentence(r, &f, &clients, &integrations))
                                @if r.spec.pending_for > 0 { " · after " (r.spec.pending_for / 60) " min pending" }
                                @if let Some(every) = r.spec.repeat_every { " · reminds " (repeat_words(every)) }
                                " · " (r.spec.channel_ids.len()) " channel" @if r.spec.channel_ids.len() != 1 { "s" }
                                " + in-app"
                            }
                        }
                        @if let Some(until) = r.snoozed_until.filter(|u| *u > now) {
                            span class="status at_risk" { "Snoozed until " (time::local(until, &tenant.time_zone)) }
                        } @else if !r.spec.enabled {
                            span class="status none" { "Disabled" }
                        }
                    }
                    @if editor {
                        div class="row rule-actions" {
                            form class="row tight" method="post" action={ "/alerts/rules/" (r.id) "/snooze" } {
                                (csrf)
                                label class="sr-only" for={ "snooze-" (r.id) } { "Snooze " (r.spec.name) " for" }
                                select id={ "snooze-" (r.id) } name="hours" {
                                    option value="1" { "for 1 hour" }
                                    option value="24" selected { "for 1 day" }
                                    option value="168" { "for 1 week" }
                                    @if r.snoozed_until.is_some_and(|u| u > now) { option value="0" { "Wake now" } }
                                }
                                button type="submit" class="secondary" { "Snooze" }
                            }
                            form method="post" action={ "/alerts/rules/" (r.id) "/delete" }
                                data-confirm={ "Delete the rule “" (r.spec.name) "” and its alerts?" } {
                                (csrf)
                                button type="submit" class="danger" aria-label={ "Delete " (r.spec.name) } { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        @if editor {
            section class="card" aria-labelledby="new-rule-title" {
                h2 id="new-rule-title" { "New rule" }
                // Fields are grouped by what they decide; a field that only some kinds read says
                // so in `data-kinds`, and app.js hides it for the others (without script every
                // field shows, and the action ignores what the kind does not read).
                form class="rule-form" method="post" action="/alerts/rules" data-kind-form {
                    (csrf)
                    div class="row" {
                        div class="field grow" {
                            label for="rule-name" { "Name" }
                            input type="text" id="rule-name" name="name" maxlength="200" required value=(typed.name) placeholder="e.g. Revenue under budget";
                        }
                        div class="field" {
                            label for="rule-kind" { "Kind" }
                            select id="rule-kind" name="kind" data-kind-select {
                                @for k in RuleKind::ALL {
                                    option value=(k.as_str()) selected[typed.kind == k.as_str()] { (kind_label(*k)) }
                                }
                            }
                        }
                    }
                    fieldset class="group" {
                        legend { "What it watches" }
                        div class="row" {
                            div class="field" data-kinds="threshold change anomaly" {
                                label for="rule-kpi" { "KPI" }
                                select id="rule-kpi" name="kpi" {
                                    @for k in BUILTIN_KPIS {
                                        option value=(k.name) selected[typed.kpi == k.name] { (k.display_name) }
                                    }
                                    @for c in &custom {
                                        option value=(c.name) selected[typed.kpi == c.name] { (c.display_name) }
                                    }
                                }
                            }
                            div class="field" data-kinds="threshold change anomaly stale" {
                                label for="rule-client" { "Clients" }
                                select id="rule-client" name="client" {
                                    option value="" { "All clients together" }
                                    option value="each" selected[typed.client == "each"] { "Each client separately" }
                                    option value="some" selected[typed.client == "some"] { "Some clients, each separately (tick them)" }
                                    @for (id, _, name) in &clients {
                                        option value=(id) selected[typed.client == id.to_string()] { (name) }
                                    }
                                }
                            }
                            // Shown by app.css only while "Some clients" is chosen.
                            div class="field some-clients" data-kinds="threshold change anomaly stale" {
                                span class="label" { "Which clients" }
                                div class="checks" {
                                    @for (id, _, name) in &clients {
                                        label class="check" {
                                            input type="checkbox" name={ "client_" (id) } checked[typed.ticked_clients().any(|t| t == id.to_string())];
                                            (name)
                                        }
                                    }
                                }
                            }
                            div class="field" data-kinds="threshold change anomaly" {
                                label for="rule-bucket" { "Per" }
                                select id="rule-bucket" name="bucket" {
                                    @for (v, l) in [("month", "Month"), ("week", "Week"), ("day", "Day")] {
                                        option value=(v) selected[typed.bucket == v] { (l) }
                                    }
                                }
                            }
                            div class="field" data-kinds="goal" {
                                label for="rule-goal" { "Goal" }
                                select id="rule-goal" name="goal_id" {
                                    option value="" { "—" }
                                    @for g in &goals {
                                        option value=(g.id) selected[typed.goal_id == g.id.to_string()] {
                                            (g.name.clone().unwrap_or_else(|| format!("{} {}", f.kpi_name(Some(&g.kpi)), g.period.as_str())))
                                        }
                                    }
                                }
                            }
                        }
                    }
                    fieldset class="group" {
                        legend { "When it fires" }
                        div class="row" {
                            div class="field" data-kinds="threshold change anomaly" {
                                label for="rule-condition" { "Condition" }
                                select id="rule-condition" name="condition" {
                                    option value="above" selected[typed.condition == "above"] { "Above / rises" }
                                    option value="below" selected[typed.condition == "below"] { "Below / falls" }
                                    option value="" selected[typed.condition.is_empty() && typed.kind == "anomaly"] { "Either way (anomaly)" }
                                }
                            }
                            div class="field narrow" data-kinds="threshold change" {
                                label for="rule-value" { "Value" }
                                input type="text" inputmode="decimal" id="rule-value" name="value" value=(typed.value) placeholder="e.g. 10000";
                            }
                            div class="field" data-kinds="change" {
                                label for="rule-change" { "Change in" }
                                select id="rule-change" name="change_mode" {
                                    option value="percent" { "Percent" }
                                    option value="absolute" selected[typed.change_mode == "absolute"] { "Amount" }
                                }
                            }
                            div class="field" data-kinds="change" {
                                label for="rule-compare" { "Compared with" }
                                select id="rule-compare" name="compare_to" {
                                    option value="previous" { "The previous period" }
                                    option value="last_year" selected[typed.compare_to == "last_year"] { "Last year" }
                                }
                            }
                            div class="field" data-kinds="stale" {
                                label for="rule-integration" { "Data from" }
                                select id="rule-integration" name="integration" {
                                    option value="" { "Any import or integration" }
                                    @for (id, name) in &integrations {
                                        option value=(id) selected[typed.integration == id.to_string()] { (name) " only" }
                                    }
                                }
                            }
                            div class="field narrow" data-kinds="stale" {
                                label for="rule-stale" { "Days without new data" }
                                input type="number" min="1" max="365" id="rule-stale" name="stale_days" value=(typed.stale_days) placeholder="7";
                            }
                            div class="field narrow" {
                                label for="rule-pending" { "Pending (minutes)" }
                                input type="number" min="0" id="rule-pending" name="pending_minutes" value=(typed.pending_minutes) placeholder="0";
                            }
                            div class="field" {
                                label for="rule-repeat" { "How often to tell" }
                                select id="rule-repeat" name="repeat_minutes" {
                                    @for (minutes, label) in REPEATS {
                                        option value=(minutes) selected[typed.repeat_minutes == minutes] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if !channels.is_empty() {
                        fieldset class="group" {
                            legend { "Notify (besides in-app)" }
                            div class="row" {
                                @for c in &channels {
                                    label class="check" {
                                        input type="checkbox" name={ "channel_" (c.id) } checked[typed.channels().any(|t| t == c.id.to_string())];
                                        (c.name) " (" (c.kind) ")"
                                    }
                                }
                            }
                        }
                    }
                    div class="row" { button type="submit" { "Create rule" } }
                }
                p class="hint small" {
                    "Threshold: the latest complete " em { "per" } " period above or below the value. Change: a rise or fall of more than the value. "
                    "Anomaly: outside the band the KPI's history predicts (seasonal with two years of months). Goal: the chosen goal goes off track. "
                    "Stale: no new data for that many days (from one integration if you pick it, then for all clients together), or a connection in error. Amounts in " (tenant.base_currency) "; margin and win rate thresholds are fractions (0.2 for 20 %). "
                    "Every user also gets an in-app notification."
                    @if channels.is_empty() { " ADMINs add e-mail, Slack and webhook channels under Settings › Notifications." }
                }
            }
        }
    };
    let mut response = page(page_layout(
        "Alerts",
        Nav::Alerts,
        Some(&user.who(&tenant)),
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

/// A refusal the form can explain (422) goes back to the page with its message; anything else
/// is an error page.
async fn refused(
    user: &PageUser<Editor>,
    e: ApiError,
    typed: Option<&CreateForm>,
) -> Result<Response, PageError> {
    if e.status() != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(e.into());
    }
    let text = problem_text(&e);
    render(
        &user.weaken(),
        e.status(),
        Some(flash_box("err", &text)),
        typed,
    )
    .await
}

fn optional(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// `POST /alerts/rules` (EDITOR): [`actions::create_rule`], as `POST /api/v1/alert-rules`. The
/// form shows every field; only those of the chosen kind are passed on.
pub async fn create(
    user: PageUser<Editor>,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let kind = f.kind.parse::<RuleKind>().ok();
    let bad = |field: &str, why: &str| ApiError::invalid_field(field, why.to_owned());
    let mut client_ids = None;
    let (client_id, each_client) = match f.client.trim() {
        "" => (None, false),
        "each" => (None, true),
        "some" => {
            let mut ids = Vec::new();
            for c in f.ticked_clients() {
                match Uuid::try_parse(c) {
                    Ok(id) => ids.push(id),
                    Err(_) => {
                        return refused(
                            &user,
                            bad("client_ids", "not a client of this list"),
                            Some(&f),
                        )
                        .await
                    }
                }
            }
            if ids.is_empty() {
                return refused(
                    &user,
                    bad("client_ids", "tick at least one client"),
                    Some(&f),
                )
                .await;
            }
            ids.sort();
            client_ids = Some(ids);
            (None, false)
        }
        id => match Uuid::try_parse(id) {
            Ok(id) => (Some(id), false),
            Err(_) => {
                return refused(
                    &user,
                    bad("client_id", "not a client of this list"),
                    Some(&f),
                )
                .await
            }
        },
    };
    let goal_id = match optional(&f.goal_id).map(Uuid::try_parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return refused(&user, bad("goal_id", "not a goal of this list"), Some(&f)).await
        }
    };
    let stale_days = match optional(&f.stale_days).map(str::parse::<i64>) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return refused(&user, bad("stale_days", "not a whole number"), Some(&f)).await
        }
    };
    let pending = match optional(&f.pending_minutes).map(str::parse::<i64>) {
        None => None,
        Some(Ok(m)) => Some(m.saturating_mul(60)),
        Some(Err(_)) => {
            return refused(
                &user,
                bad("pending_seconds", "not a whole number of minutes"),
                Some(&f),
            )
            .await
        }
    };
    let repeat = match optional(&f.repeat_minutes).map(str::parse::<i64>) {
        None => None,
        Some(Ok(m)) => Some(m.saturating_mul(60)),
        Some(Err(_)) => {
            return refused(
                &user,
                bad("repeat_seconds", "not one of the choices"),
                Some(&f),
            )
            .await
        }
    };
    let integration_id = match optional(&f.integration).map(Uuid::try_parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return refused(
                &user,
                bad("integration_id", "not an integration of this list"),
                Some(&f),
            )
            .await
        }
    };
    let mut channel_ids = Vec::new();
    for c in f.channels() {
        match Uuid::try_parse(c) {
            Ok(id) => channel_ids.push(id),
            Err(_) => {
                return refused(
                    &user,
                    bad("channel_ids", "not a channel of this list"),
                    Some(&f),
                )
                .await
            }
        }
    }
    let uses = |k: &[RuleKind]| kind.is_some_and(|kind| k.contains(&kind));
    use RuleKind::*;
    let input = RuleInput {
        name: &f.name,
        kind: &f.kind,
        kpi: if uses(&[Threshold, Change, Anomaly]) {
            Some(&f.kpi)
        } else {
            None
        },
        client_id,
        client_ids,
        each_client,
        bucket: optional(&f.bucket),
        condition: if uses(&[Threshold, Change, Anomaly]) {
            optional(&f.condition)
        } else {
            None
        },
        value: if uses(&[Threshold, Change]) {
            Some(f.value.trim())
        } else {
            None
        },
        change_mode: if uses(&[Change]) {
            optional(&f.change_mode)
        } else {
            None
        },
        compare_to: if uses(&[Change]) {
            optional(&f.compare_to)
        } else {
            None
        },
        goal_id: if uses(&[Goal]) { goal_id } else { None },
        stale_days: if uses(&[Stale]) { stale_days } else { None },
        integration_id: if uses(&[Stale]) { integration_id } else { None },
        pending_seconds: pending,
        repeat_seconds: repeat,
        enabled: Some(true),
        channel_ids,
    };
    match actions::create_rule(&user.auth, &input).await {
        Ok(_) => Ok(NOTICES[0].redirect("/alerts", None)),
        Err(e) => refused(&user, e, Some(&f)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SnoozeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    hours: String,
}

/// `POST /alerts/rules/{id}/snooze` (EDITOR): [`actions::snooze_rule`] for the chosen hours (0
/// wakes it), as `POST /api/v1/alert-rules/{id}/snooze`.
pub async fn snooze(
    user: PageUser<Editor>,
    Path(id): Path<Uuid>,
    Form(f): Form<SnoozeForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let hours: i64 = match f.hours.trim().parse() {
        Ok(h) if (0..=24 * 366).contains(&h) => h,
        _ => {
            return refused(
                &user,
                ApiError::invalid_field("hours", "a number of hours"),
                None,
            )
            .await
        }
    };
    let until = (hours > 0).then(|| Utc::now() + Duration::hours(hours));
    match actions::snooze_rule(&user.auth, id, until).await {
        Ok(_) => Ok(NOTICES[if hours > 0 { 1 } else { 2 }].redirect("/alerts", None)),
        Err(e) => refused(&user, e, None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /alerts/rules/{id}/delete` (EDITOR): [`actions::delete_rule`], as
/// `DELETE /api/v1/alert-rules/{id}`.
pub async fn delete(
    user: PageUser<Editor>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    actions::delete_rule(&user.auth, id).await?;
    Ok(NOTICES[3].redirect("/alerts", None))
}
