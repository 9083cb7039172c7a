//! `/goals`: every goal with its progress (value so far against what is expected by today and
//! the target, a status badge, the past periods), and for EDITORs the forms that create, change
//! and archive goals and upload a budget CSV. VIEWERs see the same page without forms. Each form
//! calls the action behind the API route that does the same (`crate::actions::goals`).
//! [`compact`] is the goals card of the overview and client pages.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate};
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;
use zixly_domain::goals::{Evaluation, GoalKind, GoalPeriod, GoalStatus, Pacing};
use zixly_domain::metrics::BUILTIN_KPIS;
use zixly_domain::Role;

use super::account::problem_text;
use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{page, PageError, PageUser};
use crate::actions::goals::{self as actions, GoalChange, GoalInput, GoalWithProgress};
use crate::auth::{Editor, Viewer};
use crate::error::ApiError;
use crate::input_guard::Form;
use crate::{imports, AppState};

const NOTICES: &[Notice] = &[
    Notice::ok("created", "The goal was created."),
    Notice::ok("saved", "The goal was saved."),
    Notice::ok("archived", "The goal was archived."),
    Notice::ok("imported", "The budget was imported."),
];

/// The largest budget file the page takes (a budget is a few lines per goal and period).
const BUDGET_FILE_LIMIT: usize = 1024 * 1024;

fn status_label(s: Option<GoalStatus>) -> (&'static str, &'static str) {
    match s {
        Some(GoalStatus::OnTrack) => ("on_track", "On track"),
        Some(GoalStatus::AtRisk) => ("at_risk", "At risk"),
        Some(GoalStatus::OffTrack) => ("off_track", "Off track"),
        Some(GoalStatus::Achieved) => ("achieved", "Achieved"),
        Some(GoalStatus::Missed) => ("missed", "Missed"),
        None => ("none", "No data yet"),
    }
}

fn kind_label(k: GoalKind) -> &'static str {
    match k {
        GoalKind::Reach => "Reach",
        GoalKind::StayAbove => "Stay above",
        GoalKind::StayBelow => "Stay below",
    }
}

fn period_label(p: &GoalPeriod, start: NaiveDate) -> String {
    match p {
        GoalPeriod::Month => start.format("%b %Y").to_string(),
        GoalPeriod::Quarter => format!("Q{} {}", start.month0() / 3 + 1, start.year()),
        GoalPeriod::Year => start.year().to_string(),
        GoalPeriod::Fixed(r) => format!("{} – {}", html::date(r.from()), html::date(r.to())),
    }
}

fn recurrence(p: &GoalPeriod) -> &'static str {
    match p {
        GoalPeriod::Month => "Monthly",
        GoalPeriod::Quarter => "Quarterly",
        GoalPeriod::Year => "Yearly",
        GoalPeriod::Fixed(_) => "One period",
    }
}

/// How a goal's figures read: money in the base currency, a ratio as a percentage, a custom
/// metric as a number.
struct Figures {
    symbol: String,
}

impl Figures {
    fn show(&self, g: &GoalWithProgress, d: Decimal) -> String {
        if g.is_ratio {
            html::percent(d)
        } else if zixly_domain::metrics::builtin(&g.goal.kpi).is_some() {
            html::money_short(d, &self.symbol)
        } else {
            number(d)
        }
    }
}

/// A custom metric's value: two decimals at most, thousands grouped, a real minus sign.
fn number(d: Decimal) -> String {
    let r = d.round_dp(2).normalize();
    let a = r.abs();
    let int = a.trunc();
    let frac = (a - int).to_string();
    let whole =
        html::count(i64::try_from(int.mantissa() / 10i128.pow(int.scale())).unwrap_or(i64::MAX));
    let sign = if r.is_sign_negative() && !r.is_zero() {
        "−"
    } else {
        ""
    };
    format!("{sign}{whole}{}", frac.strip_prefix('0').unwrap_or(""))
}

/// Where `d` falls on a bar whose right end is `scale`, in percent (0 to 100).
fn pos(d: Decimal, scale: Decimal) -> String {
    if scale <= Decimal::ZERO {
        return "0".into();
    }
    let p = (d.max(Decimal::ZERO) / scale * Decimal::ONE_HUNDRED).min(Decimal::ONE_HUNDRED);
    p.round_dp(1).to_string()
}

/// The progress bar: the value so far filled, a tick where the pace says it should be by today,
/// the target at its end (or further left when the value is past it). A person reads "filled
/// beyond the tick" as ahead of pace — for a `stay_below` goal being past the tick is bad, so the
/// colour follows the status, not the length.
fn bar(e: &Evaluation, status_class: &str) -> Markup {
    let actual = e.actual.unwrap_or(Decimal::ZERO);
    let scale = e
        .target
        .max(actual)
        .max(e.expected_to_date.unwrap_or(Decimal::ZERO));
    html! {
        div class={ "goal-bar " (status_class) } aria-hidden="true" {
            span class="fill" style={ "width:" (pos(actual, scale)) "%" } {}
            @if let Some(x) = e.expected_to_date {
                @if e.pacing != Pacing::ToDate {
                    span class="expected" style={ "left:" (pos(x, scale)) "%" } title="Expected by today" {}
                }
            }
            span class="target" style={ "left:" (pos(e.target, scale)) "%" } title="Target" {}
        }
    }
}

fn goal_title(g: &GoalWithProgress, client_name: Option<&str>) -> String {
    let who = client_name.unwrap_or("All clients");
    match &g.goal.name {
        Some(n) => n.clone(),
        None => format!("{} · {}", g.kpi_display_name, who),
    }
}

/// The figures line under a bar: so far, expected by today, target, projected.
fn figures_line(g: &GoalWithProgress, f: &Figures) -> Markup {
    let e = &g.progress.current;
    html! {
        p class="goal-figures small" {
            span { "So far " b { (e.actual.map_or("—".to_owned(), |a| f.show(g, a))) } }
            @if let Some(x) = e.expected_to_date {
                @if e.pacing != Pacing::ToDate {
                    span { "Expected by today " b { (f.show(g, x)) } }
                }
            }
            span { "Target " b { (f.show(g, e.target)) } }
            @if let Some(p) = e.projected {
                @if e.pacing != Pacing::ToDate {
                    span { "Projected " b { (f.show(g, p)) } }
                }
            }
        }
    }
}

/// How the expected value was found, and how to read the bar (which is hidden from screen
/// readers: the figures line says the same in words).
fn pacing_note(e: &Evaluation) -> &'static str {
    match e.pacing {
        Pacing::Seasonal => "Paced by last year's shape of the same period. The dark tick is what is expected by today, the thin line the target.",
        Pacing::Linear => "Paced evenly over the period (no data for this period last year). The dark tick is what is expected by today, the thin line the target.",
        Pacing::ToDate => "Compared as it stands today (a ratio or a level); the thin line is the target.",
    }
}

/// The compact goals card of the overview and client pages (shown when there are goals): one
/// line per goal with its bar.
pub(crate) fn compact(goals: &[GoalWithProgress], base_currency: &str) -> Markup {
    let f = Figures {
        symbol: html::currency_symbol(base_currency),
    };
    html! {
        section class="card goals-compact" aria-labelledby="goals-compact-title" {
            div class="card-head" {
                h2 id="goals-compact-title" { "Goals" }
                a class="small" href="/goals" { "All goals" }
            }
            @for g in goals {
                @let e = &g.progress.current;
                @let (class, label) = status_label(e.status);
                div class="goal-line" data-goal=(g.goal.id) {
                    div class="goal-line-head" {
                        span { b { (g.goal.name.clone().unwrap_or_else(|| g.kpi_display_name.clone())) } " " span class="muted small" { (period_label(&g.goal.period, e.period.from())) } }
                        span class={ "status " (class) } { (label) }
                    }
                    (bar(e, class))
                    (figures_line(g, &f))
                }
            }
        }
    }
}

pub async fn goals_page(
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
    kpi: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
}

async fn render(
    user: &PageUser<Viewer>,
    status: StatusCode,
    message: Option<Markup>,
    typed: Option<&CreateForm>,
) -> Result<Response, PageError> {
    let goals = actions::list(&user.auth, None, None).await?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let clients = tx.client_directory().await?;
    let custom = tx.metric_definitions().await?;
    tx.commit().await?;
    let editor = user.auth.role().includes(Role::Editor);
    let csrf = csrf_input(&user.csrf);
    let f = Figures {
        symbol: html::currency_symbol(&tenant.base_currency),
    };
    let client_name = |id: Option<Uuid>| {
        id.and_then(|id| clients.iter().find(|c| c.0 == id).map(|c| c.2.as_str()))
    };
    let blank = CreateForm::default();
    let typed = typed.unwrap_or(&blank);
    let body = html! {
        (html::head("Goals", "Targets per month, quarter or year on any KPI, paced by last year's shape when there is one.", html! {}))
        @if let Some(m) = message { (m) }
        @if !editor {
            p class="hint" { "You can read goals; EDITORs and ADMINs set and change them." }
        }
        @if goals.is_empty() {
            section class="card" { p class="empty" { "No goals yet." @if editor { " Create the first one below." } } }
        }
        @for g in &goals {
            @let e = &g.progress.current;
            @let (class, label) = status_label(e.status);
            @let client = client_name(g.goal.client_id);
            section class="card goal" data-goal=(g.goal.id) aria-labelledby={ "goal-" (g.goal.id) } {
                div class="card-head" {
                    div {
                        h2 id={ "goal-" (g.goal.id) } { (goal_title(g, client)) }
                        p class="muted small" {
                            (kind_label(g.goal.kind)) " " (g.kpi_display_name)
                            " · " (client.unwrap_or("All clients"))
                            " · " (recurrence(&g.goal.period)) " · " (period_label(&g.goal.period, e.period.from()))
                            " · day " (e.elapsed_days) " of " (e.total_days)
                        }
                    }
                    span class={ "status " (class) } data-status=(class) { (label) }
                }
                (bar(e, class))
                (figures_line(g, &f))
                p class="muted small" { (pacing_note(e)) }
                @if !g.progress.history.is_empty() {
                    div class="goal-history" {
                        h3 class="small" { "Past periods" }
                        ol class="history" {
                            @for h in &g.progress.history {
                                @let (hc, hl) = status_label(h.status);
                                li class={ "status " (hc) } title={ (hl) ": " (h.actual.map_or("no data".to_owned(), |a| f.show(g, a))) " of " (f.show(g, h.target)) } {
                                    (period_label(&g.goal.period, h.period.from())) " "
                                    span class="sr-only" { (hl) }
                                    span aria-hidden="true" { (match h.status { Some(GoalStatus::Achieved) => "✓", Some(GoalStatus::Missed) => "✗", _ => "–" }) }
                                }
                            }
                        }
                    }
                }
                @if editor {
                    details class="goal-edit" {
                        summary { "Change or archive" }
                        form class="row" method="post" action={ "/goals/" (g.goal.id) } {
                            (csrf)
                            div class="field" style="flex:1;min-width:160px" {
                                label for={ "name-" (g.goal.id) } { "Name" }
                                input type="text" id={ "name-" (g.goal.id) } name="name" maxlength="200"
                                    value=(g.goal.name.as_deref().unwrap_or(""));
                            }
                            div class="field" {
                                label for={ "kind-" (g.goal.id) } { "Kind" }
                                select id={ "kind-" (g.goal.id) } name="kind" {
                                    @for k in GoalKind::ALL {
                                        option value=(k.as_str()) selected[k == g.goal.kind] { (kind_label(k)) }
                                    }
                                }
                            }
                            div class="field" style="width:9rem" {
                                label for={ "target-" (g.goal.id) } { "Target" }
                                input type="text" inputmode="decimal" id={ "target-" (g.goal.id) } name="target" required
                                    value=(g.goal.target);
                            }
                            button type="submit" { "Save" }
                        }
                        form method="post" action={ "/goals/" (g.goal.id) "/archive" } {
                            (csrf)
                            button type="submit" class="danger" aria-label={ "Archive " (goal_title(g, client)) } { "Archive" }
                        }
                    }
                }
            }
        }
        @if editor {
            section class="card" aria-labelledby="new-goal-title" {
                h2 id="new-goal-title" { "New goal" }
                form class="row" method="post" action="/goals" {
                    (csrf)
                    div class="field" style="flex:1;min-width:160px" {
                        label for="goal-name" { "Name (optional)" }
                        input type="text" id="goal-name" name="name" maxlength="200" value=(typed.name);
                    }
                    div class="field" {
                        label for="goal-kpi" { "KPI" }
                        select id="goal-kpi" name="kpi" required {
                            @for k in BUILTIN_KPIS {
                                option value=(k.name) selected[typed.kpi == k.name] { (k.display_name) }
                            }
                            @for d in &custom {
                                option value=(d.name) selected[typed.kpi == d.name] { (d.display_name) }
                            }
                        }
                    }
                    div class="field" {
                        label for="goal-client" { "Client" }
                        select id="goal-client" name="client_id" {
                            option value="" { "All clients" }
                            @for (id, _, name) in &clients {
                                option value=(id) selected[typed.client_id == id.to_string()] { (name) }
                            }
                        }
                    }
                    div class="field" {
                        label for="goal-period" { "Period" }
                        select id="goal-period" name="period" {
                            @for (v, l) in [("month", "Every month"), ("quarter", "Every quarter"), ("year", "Every year"), ("fixed", "One period (dates below)")] {
                                option value=(v) selected[typed.period == v] { (l) }
                            }
                        }
                    }
                    div class="field" {
                        label for="goal-kind" { "Kind" }
                        select id="goal-kind" name="kind" {
                            @for k in GoalKind::ALL {
                                option value=(k.as_str()) selected[typed.kind == k.as_str()] { (kind_label(k)) }
                            }
                        }
                    }
                    div class="field" style="width:9rem" {
                        label for="goal-target" { "Target" }
                        input type="text" inputmode="decimal" id="goal-target" name="target" required placeholder="e.g. 50000" value=(typed.target);
                    }
                    div class="field" {
                        label for="goal-from" { "From (one period)" }
                        input type="date" id="goal-from" name="from" value=(typed.from);
                    }
                    div class="field" {
                        label for="goal-to" { "To (one period)" }
                        input type="date" id="goal-to" name="to" value=(typed.to);
                    }
                    button type="submit" { "Create goal" }
                }
                p class="hint small" { "Amounts in " (tenant.base_currency) ". Margin and win rate targets are fractions: 0.3 for 30 %. “Stay below” suits costs: under the target is good." }
            }
            section class="card" aria-labelledby="budget-title" {
                h2 id="budget-title" { "Import a budget" }
                p class="hint small" {
                    "A CSV with the header " code { "kpi,client_id,period_start,target" } " sets the targets of the goals on those KPIs and clients ("
                    code { "client_id" } " as in imports, empty for an all-clients goal); " code { "period_start,target" } " sets the chosen goal's. "
                    code { "period_start" } " is a period's first day (2026-01-01). Nothing is written if any line is wrong."
                }
                form class="row" method="post" action="/goals/budgets" enctype="multipart/form-data" {
                    (csrf)
                    div class="field" {
                        label for="budget-goal" { "Goal (for a period_start,target file)" }
                        select id="budget-goal" name="goal_id" {
                            option value="" { "— named in the file —" }
                            @for g in &goals {
                                option value=(g.goal.id) { (goal_title(g, client_name(g.goal.client_id))) }
                            }
                        }
                    }
                    div class="field" {
                        label for="budget-file" { "CSV file" }
                        input type="file" id="budget-file" name="file" accept=".csv,text/csv" required;
                    }
                    button type="submit" { "Import budget" }
                }
            }
        }
    };
    let mut response = page(page_layout(
        "Goals",
        Nav::Goals,
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
    let body = e.body().error;
    let text = if body.details.iter().any(|d| d.line.is_some()) {
        body.details
            .iter()
            .map(|d| match (d.line, d.column.as_deref()) {
                (Some(l), Some(c)) => format!("Line {l}, {c}: {}.", d.reason),
                (Some(l), None) => format!("Line {l}: {}.", d.reason),
                _ => format!("{}.", d.reason),
            })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        problem_text(&e)
    };
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

/// `POST /goals` (EDITOR): [`actions::create`], as `POST /api/v1/goals`.
pub async fn create(
    user: PageUser<Editor>,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let client_id = match optional(&f.client_id).map(Uuid::try_parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            let e = ApiError::invalid_field("client_id", "not a client of this list");
            return refused(&user, e, Some(&f)).await;
        }
    };
    let fixed = f.period == "fixed";
    let input = GoalInput {
        name: optional(&f.name),
        kpi: &f.kpi,
        client_id,
        period: &f.period,
        // The date fields are always on the form; only a fixed period reads them.
        from: if fixed { Some(&f.from) } else { None },
        to: if fixed { Some(&f.to) } else { None },
        kind: &f.kind,
        target: &f.target,
    };
    match actions::create(&user.auth, &input).await {
        Ok(_) => Ok(NOTICES[0].redirect("/goals", None)),
        Err(e) => refused(&user, e, Some(&f)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
}

/// `POST /goals/{id}` (EDITOR): [`actions::update`] of name (empty clears it), kind and target,
/// as `PATCH /api/v1/goals/{id}`.
pub async fn save(
    user: PageUser<Editor>,
    Path(id): Path<Uuid>,
    Form(f): Form<ChangeForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let change = GoalChange {
        name: Some(optional(&f.name)),
        kind: Some(&f.kind),
        target: Some(&f.target),
        ..Default::default()
    };
    match actions::update(&user.auth, id, &change).await {
        Ok(_) => Ok(NOTICES[1].redirect("/goals", None)),
        Err(e) => refused(&user, e, None).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /goals/{id}/archive` (EDITOR): [`actions::archive`], as `DELETE /api/v1/goals/{id}`.
pub async fn archive(
    user: PageUser<Editor>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    actions::archive(&user.auth, id).await?;
    Ok(NOTICES[2].redirect("/goals", None))
}

/// `POST /goals/budgets` (EDITOR, multipart: `_csrf`, `goal_id`, `file`):
/// [`actions::import_budgets`], as `POST /api/v1/goals/budgets`. The CSRF field comes first in
/// the form, and nothing of the file is read before it is checked.
pub async fn import_budgets(
    user: PageUser<Editor>,
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let mut multipart = imports::open_multipart(multipart)?;
    let idle = state.config.import_idle_timeout;
    let mut csrf_checked = false;
    let mut goal: Option<Uuid> = None;
    let mut file: Option<Vec<u8>> = None;
    while let Some(field) = imports::next_field(&mut multipart, idle).await? {
        match field.name().unwrap_or_default() {
            "_csrf" => {
                user.check_csrf(&imports::text_field(field, "_csrf", idle).await?)?;
                csrf_checked = true;
            }
            "goal_id" => {
                let v = imports::text_field(field, "goal_id", idle).await?;
                goal = match optional(&v).map(Uuid::try_parse) {
                    None => None,
                    Some(Ok(id)) => Some(id),
                    Some(Err(_)) => {
                        let e = ApiError::invalid_field("goal_id", "not a goal of this list");
                        return refused(&user, e, None).await;
                    }
                };
            }
            "file" if file.is_none() => {
                if !csrf_checked {
                    return Err(PageError::Csrf);
                }
                let spooled = imports::spool(field, BUDGET_FILE_LIMIT, idle).await?;
                let mut bytes = Vec::with_capacity(spooled.len as usize);
                std::io::Read::read_to_end(
                    &mut spooled.reader().map_err(|_| ApiError::internal())?,
                    &mut bytes,
                )
                .map_err(|_| ApiError::internal())?;
                file = Some(bytes);
            }
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(PageError::Csrf);
    }
    let bytes = file.unwrap_or_default();
    let result = match crate::api::goals::budget_text(&bytes) {
        Ok(text) => actions::import_budgets(&user.auth, goal, text).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(NOTICES[3].redirect("/goals", None)),
        Err(e) => refused(&user, e, None).await,
    }
}
