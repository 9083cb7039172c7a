//! `/audit` (ADMIN): the tenant's audit log, newest first, 100 a page, filtered by kind (the part
//! of the action before the dot) or by one exact action. Rows are shown for people: the time in
//! the tenant's zone, the actor (a CLI change as "name (command line)"), a subject named by what
//! the row's summary says (an email, a client, a file) rather than an id, and the details as
//! `field: value` pairs (`role: VIEWER → EDITOR`) rather than JSON.

use axum::extract::Query;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;
use zixly_db::queries::audit::{AuditFilter, AuditRow};

use super::html::{self, page_layout, Nav};
use super::time::local;
use super::{page, PageError, PageUser};
use crate::auth::Admin;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub before: Option<Uuid>,
    pub action: Option<String>,
    pub kind: Option<String>,
}

/// The kinds of change the filter offers: the action prefix and its label.
const KINDS: &[(&str, &str)] = &[
    ("auth", "Sign-ins"),
    ("user", "People"),
    ("invitation", "Invitations"),
    ("token", "API tokens"),
    ("client", "Clients"),
    ("import", "Imports"),
    ("integration", "Integrations"),
    ("metric", "Metric catalogue"),
    ("tenant", "Tenant"),
    ("bi_role", "BI logins"),
    ("notification_channel", "Notification channels"),
];

pub async fn audit(
    user: PageUser<Admin>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    const PAGE: i64 = 100;
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    let action = clean(&q.action);
    // Only the offered kinds: anything else would silently match nothing.
    let kind = clean(&q.kind).filter(|k| KINDS.iter().any(|(code, _)| code == k));
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let rows = tx
        .list_audit_logs(
            &AuditFilter {
                action: action.clone(),
                kind: kind.clone(),
                ..Default::default()
            },
            q.before,
            PAGE,
        )
        .await?;
    tx.commit().await?;
    let older = if rows.len() as i64 == PAGE {
        rows.last().map(|last| {
            let mut href = format!("/audit?before={}", last.id);
            if let Some(a) = &action {
                href.push_str(&format!("&action={}", html::q(a)));
            }
            if let Some(k) = &kind {
                href.push_str(&format!("&kind={}", html::q(k)));
            }
            href
        })
    } else {
        None
    };
    let zone = tenant.time_zone.as_str();
    let body = html! {
        (html::head("Audit log", "Every change, who made it and when — on the web, through the API or from the command line. Newest first.", html! {}))
        form class="card row" method="get" action="/audit" {
            div class="field" {
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" { "All kinds" }
                    @for (code, label) in KINDS {
                        option value=(code) selected[kind.as_deref() == Some(*code)] { (label) }
                    }
                }
            }
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
                        th scope="col" { "When (" (zone) ")" }
                        th scope="col" { "Who" }
                        th scope="col" { "Action" }
                        th scope="col" { "Subject" }
                        th scope="col" class="hide-sm" { "Details" }
                    } }
                    tbody {
                        @if rows.is_empty() {
                            tr { td colspan="5" class="empty" { "No entries." } }
                        }
                        @for r in &rows {
                            tr data-action=(r.action) {
                                td class="small nowrap" { (local(r.occurred_at, zone)) }
                                td { (actor(&r.actor_label)) }
                                td { code { (r.action) } }
                                td class="small" title=(r.entity_id.as_deref().unwrap_or("")) { (subject(r)) }
                                td class="hide-sm small muted audit-details" data-details { (details(&r.summary)) }
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

/// `cli:anna` → "anna (command line)"; a person's email as it is.
fn actor(label: &str) -> Markup {
    match label.strip_prefix("cli:") {
        Some(os_user) => html! { (os_user) " " span class="muted small" { "(command line)" } },
        None => html! { (label) },
    }
}

/// What the row is about, in words: the summary's email, name, file or provider when it has one
/// ("user ann@example.com", "client Harbour Bridge"), else the entity type and a short id.
fn subject(r: &AuditRow) -> Markup {
    let s = &r.summary;
    let text = |k: &str| s.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let named = text("email")
        .or_else(|| text("client_name"))
        .or_else(|| text("name"))
        .or_else(|| text("file_name"))
        .or_else(|| text("provider"));
    let kind = r.entity_type.replace('_', " ");
    match (named, r.entity_id.as_deref()) {
        (Some(name), _) => html! { (kind) " " b { (name) } },
        (None, Some(id)) => html! { (kind) " " code { (truncate(id, 12)) } },
        (None, None) => html! { (kind) },
    }
}

/// The summary as `field: value` pairs; `{"from", "to"}` objects as `from → to`.
fn details(summary: &Value) -> Markup {
    let Some(map) = summary.as_object() else {
        return html! { (truncate(&summary.to_string(), 160)) };
    };
    html! {
        @for (i, (k, v)) in map.iter().enumerate() {
            @if i > 0 { "; " }
            span class="nowrap" { (k.replace('_', " ")) ": " (truncate(&value_text(v), 80)) }
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("from") && o.contains_key("to") => {
            format!("{} → {}", value_text(&o["from"]), value_text(&o["to"]))
        }
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", value_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
    }
}

/// The first `max` characters of `s`, with an ellipsis when something was cut.
fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_as_words_not_json() {
        let html = details(&json!({
            "role": {"from": "VIEWER", "to": "EDITOR"},
            "skip_invalid": false,
            "file_name": "<script>x</script>.csv",
            "expires_at": null,
        }))
        .into_string();
        assert!(html.contains("role: VIEWER → EDITOR"), "{html}");
        assert!(html.contains("skip invalid: no"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "escaped: {html}");
        assert!(html.contains("expires at: —"), "{html}");
        assert!(!html.contains('{'), "no JSON braces: {html}");
    }

    #[test]
    fn a_cli_actor_is_named_as_such() {
        assert_eq!(
            actor("cli:anna").into_string(),
            r#"anna <span class="muted small">(command line)</span>"#
        );
        assert_eq!(actor("ann@example.com").into_string(), "ann@example.com");
    }
}
