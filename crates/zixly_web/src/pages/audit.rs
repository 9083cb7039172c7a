//! `/audit` (ADMIN): the tenant's audit log, newest first, filtered by action, 100 a page.

use axum::extract::Query;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::audit::AuditFilter;

use super::html::{self, page_layout, Nav};
use super::{page, PageError, PageUser};
use crate::auth::Admin;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub before: Option<Uuid>,
    pub action: Option<String>,
}

pub async fn audit(
    user: PageUser<Admin>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    const PAGE: i64 = 100;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let action = q
        .action
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let rows = tx
        .list_audit_logs(
            &AuditFilter {
                action: action.clone(),
                ..Default::default()
            },
            q.before,
            PAGE,
        )
        .await?;
    tx.commit().await?;
    let older = if rows.len() as i64 == PAGE {
        rows.last().map(|last| {
            let a = action
                .as_deref()
                .map(|a| format!("&action={}", html::q(a)))
                .unwrap_or_default();
            format!("/audit?before={}{a}", last.id)
        })
    } else {
        None
    };
    let body = maud::html! {
        (html::head("Audit log", "Every change, who made it and when. Newest first.", maud::html! {}))
        form class="card row" method="get" action="/audit" {
            div class="field" style="flex:1;min-width:200px" {
                label for="action" { "Action" }
                input type="text" id="action" name="action" value=(action.as_deref().unwrap_or("")) placeholder="e.g. user.invite";
            }
            button type="submit" class="secondary" { "Filter" }
        }
        section class="card" aria-label="Audit entries" {
            div class="table-wrap" {
                table data-table="audit" {
                    thead { tr {
                        th scope="col" { "When (UTC)" }
                        th scope="col" { "Who" }
                        th scope="col" { "Action" }
                        th scope="col" class="hide-sm" { "Subject" }
                        th scope="col" class="hide-sm" { "Details" }
                    } }
                    tbody {
                        @if rows.is_empty() {
                            tr { td colspan="5" class="empty" { "No entries." } }
                        }
                        @for r in &rows {
                            @let summary = truncate(&r.summary.to_string(), 160);
                            // Ids are long: the first 8 characters are shown, the whole id is the
                            // cell's title.
                            @let id = r.entity_id.as_deref().unwrap_or("");
                            tr {
                                td class="small nowrap" { (r.occurred_at.format("%Y-%m-%d %H:%M:%S")) }
                                td { (r.actor_label) }
                                td { code { (r.action) } }
                                td class="hide-sm small nowrap" title=(id) {
                                    (r.entity_type) " " code { (truncate(id, 8)) }
                                }
                                td class="hide-sm small muted audit-details" {
                                    code title=(summary) { (summary) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = older {
                p { a class="button secondary" href=(href) { "Older entries" } }
            }
        }
    };
    Ok(page(page_layout(
        "Audit log",
        Nav::Audit,
        Some(&user.who(&tenant)),
        body,
    )))
}

/// The first `max` characters of `s`, with an ellipsis when something was cut.
fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
