//! `/audit` (ADMIN): the tenant's audit log, newest first, filtered by action, 100 a page.

use std::fmt::Write as _;

use axum::extract::Query;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::audit::AuditFilter;

use super::html::{self, esc, layout, Nav};
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
    let mut body = html::page_head(
        "Audit log",
        "Every change, who made it and when. Newest first.",
        "",
    );
    let _ = write!(
        body,
        r#"<form class="card row" method="get" action="/audit"><div class="field" style="flex:1;min-width:200px"><label for="action">Action</label><input type="text" id="action" name="action" value="{}" placeholder="e.g. user.invite"></div><button type="submit" class="secondary">Filter</button></form>"#,
        esc(action.as_deref().unwrap_or(""))
    );
    body.push_str(r#"<section class="card" aria-label="Audit entries"><div class="table-wrap"><table data-table="audit"><thead><tr><th scope="col">When (UTC)</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col" class="hide-sm">Subject</th><th scope="col" class="hide-sm">Details</th></tr></thead><tbody>"#);
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="5" class="empty">No entries.</td></tr>"#);
    }
    for r in &rows {
        let summary = r.summary.to_string();
        let summary = if summary.chars().count() > 160 {
            format!("{}…", summary.chars().take(160).collect::<String>())
        } else {
            summary
        };
        // Ids are long: the first 8 characters are shown, the whole id is the cell's title.
        let id = r.entity_id.as_deref().unwrap_or("");
        let short_id: String = id.chars().take(8).collect();
        let short_id = if short_id.len() < id.len() {
            format!("{short_id}…")
        } else {
            short_id
        };
        let _ = write!(
            body,
            r#"<tr><td class="small nowrap">{}</td><td>{}</td><td><code>{}</code></td><td class="hide-sm small nowrap" title="{}">{} <code>{}</code></td><td class="hide-sm small muted audit-details"><code title="{}">{}</code></td></tr>"#,
            r.occurred_at.format("%Y-%m-%d %H:%M:%S"),
            esc(&r.actor_label),
            esc(&r.action),
            esc(id),
            esc(&r.entity_type),
            esc(&short_id),
            esc(&summary),
            esc(&summary)
        );
    }
    body.push_str("</tbody></table></div>");
    if rows.len() as i64 == PAGE {
        if let Some(last) = rows.last() {
            let a = action
                .as_deref()
                .map(|a| format!("&action={}", html::q(a)))
                .unwrap_or_default();
            let _ = write!(
                body,
                r#"<p><a class="button secondary" href="/audit?before={}{a}">Older entries</a></p>"#,
                last.id
            );
        }
    }
    body.push_str("</section>");
    Ok(page(layout(
        "Audit log",
        Nav::Audit,
        Some(&user.who(&tenant)),
        &body,
    )))
}
