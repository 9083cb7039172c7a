//! `/catalogue` (not `/metrics`: that path is Prometheus'): the metric catalogue. Everyone reads
//! it — the built-in KPIs (fixed by code) and the tenant's custom metrics, each with its display name, unit, aggregation and direction —; EDITORs
//! change a custom metric's definition in place. The change is [`crate::actions::metrics::update`],
//! the action behind `PATCH /api/v1/metric-definitions/{name}`.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use zixly_domain::metrics::{Aggregation, Direction};
use zixly_domain::Role;

use super::account::problem_text;
use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::{page, PageError, PageUser};
use crate::actions::metrics::{self as actions, CatalogueEntry, DefinitionChange};
use crate::auth::{Editor, Viewer};
use crate::input_guard::Form;

const NOTICES: &[Notice] = &[Notice::ok("saved", "The definition was saved.")];

fn aggregation_label(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Sum => "Sum (a flow: hours, sales)",
        Aggregation::Average => "Average (a score: NPS, satisfaction)",
        Aggregation::Last => "Last value (a level: head count, balance)",
        Aggregation::Min => "Lowest",
        Aggregation::Max => "Highest",
    }
}

/// The aggregation alone, for the built-in KPIs (whose examples would mislead: revenue is not hours).
fn aggregation_short(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Sum => "Sum",
        Aggregation::Average => "Average",
        Aggregation::Last => "Last value",
        Aggregation::Min => "Lowest",
        Aggregation::Max => "Highest",
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::UpIsGood => "Up is good",
        Direction::DownIsGood => "Down is good",
    }
}

pub async fn catalogue(
    user: PageUser<Viewer>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = q.pick(NOTICES).map(|n| n.render(None, None));
    render(&user, StatusCode::OK, message, None).await
}

async fn render(
    user: &PageUser<Viewer>,
    status: StatusCode,
    message: Option<Markup>,
    editing: Option<(&str, &ChangeForm)>,
) -> Result<Response, PageError> {
    let entries = actions::list(&user.auth).await?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let editor = user.auth.role().includes(Role::Editor);
    let csrf = csrf_input(&user.csrf);
    let (builtins, custom): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|e| matches!(e, CatalogueEntry::Builtin(_)));
    let body = html! {
        (html::head("Metric catalogue", "What each figure means, its unit, how it adds up over a week or a month, and which way is good.", html! {}))
        @if let Some(m) = message { (m) }
        section class="card" aria-labelledby="custom-title" {
            h2 id="custom-title" { "Custom metrics" }
            p class="hint" {
                "Created the first time an import, an API batch or a sync names a metric. "
                @if editor { "Change how each one is named and added up; charts and reports follow at once." }
                @else { "EDITORs can change their definitions." }
            }
            @if custom.is_empty() {
                p class="empty" { "No custom metrics yet: import a custom-metrics CSV to add some." }
            }
            @for entry in &custom {
                @if let CatalogueEntry::Custom(d) = entry {
                    @let typed = editing.filter(|(n, _)| *n == d.name).map(|(_, f)| f);
                    article class="metric" data-metric=(d.name) {
                        h3 { (d.display_name) " " code class="muted small" { (d.name) } }
                        @if editor {
                            form class="row" method="post" action={ "/catalogue/" (html::q(&d.name)) } {
                                (csrf)
                                div class="field" style="flex:1;min-width:180px" {
                                    label for={ "name-" (d.name) } { "Display name" }
                                    input type="text" id={ "name-" (d.name) } name="display_name" maxlength="200" required
                                        value=(typed.map_or(d.display_name.as_str(), |f| f.display_name.as_str()));
                                }
                                div class="field" style="width:8rem" {
                                    label for={ "unit-" (d.name) } { "Unit" }
                                    input type="text" id={ "unit-" (d.name) } name="unit" maxlength="32" placeholder="e.g. hours"
                                        value=(typed.map_or(d.unit.as_deref().unwrap_or(""), |f| f.unit.as_str()));
                                }
                                div class="field" {
                                    label for={ "agg-" (d.name) } { "Adds up as" }
                                    select id={ "agg-" (d.name) } name="aggregation" {
                                        @for a in Aggregation::ALL {
                                            option value=(a.as_str()) selected[a == d.aggregation] { (aggregation_label(a)) }
                                        }
                                    }
                                }
                                div class="field" {
                                    label for={ "dir-" (d.name) } { "Direction" }
                                    select id={ "dir-" (d.name) } name="direction" {
                                        @for x in [Direction::UpIsGood, Direction::DownIsGood] {
                                            option value=(x.as_str()) selected[x == d.direction] { (direction_label(x)) }
                                        }
                                    }
                                }
                                div class="field" style="flex-basis:100%" {
                                    label for={ "desc-" (d.name) } { "Description" }
                                    input type="text" id={ "desc-" (d.name) } name="description" maxlength="2000"
                                        value=(typed.map_or(d.description.as_deref().unwrap_or(""), |f| f.description.as_str()));
                                }
                                button type="submit" aria-label={ "Save " (d.display_name) } { "Save" }
                            }
                        } @else {
                            p class="small" {
                                (aggregation_label(d.aggregation)) " · " (direction_label(d.direction))
                                @if let Some(u) = &d.unit { " · in " (u) }
                            }
                            @if let Some(desc) = &d.description { p class="muted small" { (desc) } }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="builtin-title" {
            h2 id="builtin-title" { "Built-in KPIs" }
            p class="hint" { "Computed from financials and lead events; amounts in " (tenant.base_currency) ". Fixed by Zixly." }
            div class="table-wrap" {
                table data-table="builtin-kpis" {
                    thead { tr {
                        th scope="col" { "KPI" }
                        th scope="col" { "Adds up as" }
                        th scope="col" class="hide-sm" { "Direction" }
                        th scope="col" class="hide-sm" { "Meaning" }
                    } }
                    tbody {
                        @for entry in &builtins {
                            @if let CatalogueEntry::Builtin(k) = entry {
                                tr {
                                    td { b { (k.display_name) } }
                                    td { (k.aggregation.map_or("A ratio of sums", aggregation_short)) }
                                    td class="hide-sm" { (direction_label(k.direction)) }
                                    td class="hide-sm muted small" { (k.description) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = page(page_layout(
        "Metric catalogue",
        Nav::Metrics,
        Some(&user.who(&tenant)),
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    aggregation: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    description: String,
}

/// `POST /catalogue/{name}` (EDITOR): [`actions::update`], as `PATCH /api/v1/metric-definitions/{name}`
/// with every field; an empty unit or description clears it. A refusal is shown on the page with
/// the typed values kept.
pub async fn save(
    user: PageUser<Editor>,
    Path(name): Path<String>,
    Form(f): Form<ChangeForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let change = DefinitionChange {
        display_name: Some(&f.display_name),
        unit: Some(Some(&f.unit)),
        aggregation: Some(&f.aggregation),
        direction: Some(&f.direction),
        description: Some(Some(&f.description)),
    };
    match actions::update(&user.auth, &name, &change).await {
        Ok(_) => Ok(NOTICES[0].redirect("/catalogue", None)),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let viewer = user.weaken();
            render(
                &viewer,
                e.status(),
                Some(flash_box("err", &problem_text(&e))),
                Some((&name, &f)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
