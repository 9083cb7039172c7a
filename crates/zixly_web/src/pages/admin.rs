//! `/team` (ADMIN: invite, change role, deactivate, reactivate), `/audit` (ADMIN) and
//! `/integrations` (everyone sees the status; only ADMINs get the controls).

use std::fmt::Write as _;

use crate::input_guard::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::audit::AuditFilter;
use zixly_domain::{EmailAddress, Role};

use super::html::{self, csrf_field, esc, layout, Nav};
use super::internal::capitalise;
use super::{page, PageError, PageUser};
use crate::actions::users::{self as actions, Delivery, UserChange};
use crate::api::integrations::IntegrationCard;
use crate::auth::{Admin, Viewer};
use crate::error::ApiError;
use crate::AppState;

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    pub ok: Option<String>,
    pub err: Option<String>,
}

fn role_select(id: &str, name: &str, selected: Role, label: &str) -> String {
    let mut s = format!(r#"<select id="{id}" name="{name}" aria-label="{label}">"#);
    for r in [Role::Viewer, Role::Editor, Role::Admin] {
        let sel = if r == selected { " selected" } else { "" };
        let _ = write!(s, r#"<option value="{r}"{sel}>{r}</option>"#);
    }
    s.push_str("</select>");
    s
}

pub async fn team(
    user: PageUser<Admin>,
    Query(q): Query<TeamQuery>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let users = tx.list_users(None, 1000).await?;
    let invitations = tx.list_pending_invitations().await?;
    tx.commit().await?;
    render_team(
        &user,
        &tenant,
        &users,
        &invitations,
        q.ok.as_deref()
            .map(|m| ("ok", m))
            .or(q.err.as_deref().map(|m| ("err", m))),
        None,
    )
}

fn render_team(
    user: &PageUser<Admin>,
    tenant: &zixly_db::queries::dashboard::TenantProfile,
    users: &[zixly_db::queries::users::UserRow],
    invitations: &[zixly_db::queries::auth::Invitation],
    message: Option<(&str, &str)>,
    link: Option<(&str, &str)>,
) -> Result<Response, PageError> {
    let me = user.auth.user_id();
    let mut body = html::page_head(
        "Team",
        &format!(
            "{} people can sign in to {}",
            users.iter().filter(|u| u.deactivated_at.is_none()).count(),
            esc(&tenant.name)
        ),
        "",
    );
    if let Some((k, m)) = message {
        body.push_str(&html::flash(k, m));
    }
    if let Some((email, url)) = link {
        let _ = write!(
            body,
            r#"<div class="flash ok" role="status">Invitation created for <b>{}</b>. Send them this link (valid for 7 days, usable once):<br><code data-invitation-link style="word-break:break-all">{}</code></div>"#,
            esc(email),
            esc(url)
        );
    }
    let _ = write!(
        body,
        r#"<section class="card" aria-labelledby="inv-title"><h2 id="inv-title">Invite someone</h2>
<form class="row" method="post" action="/team/invite">{csrf}
<div class="field" style="flex:1;min-width:220px"><label for="invite-email">Email to invite</label><input type="email" id="invite-email" name="email" required autocomplete="off"></div>
<div class="field"><label for="invite-role">Role</label>{roles}</div>
<button type="submit">Send invitation</button></form>
<p class="hint">VIEWERs read dashboards; EDITORs also import data; ADMINs manage people and integrations.</p></section>"#,
        csrf = csrf_field(&user.csrf),
        roles = role_select("invite-role", "role", Role::Viewer, "Role")
            .replace(r#" aria-label="Role""#, ""),
    );
    body.push_str(r#"<section class="card" aria-labelledby="people-title"><h2 id="people-title">People</h2><div class="table-wrap"><table data-table="users"><thead><tr><th scope="col">Person</th><th scope="col">Role</th><th scope="col" class="hide-sm">Last login</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>"#);
    for u in users {
        let name = u.display_name.as_deref().unwrap_or("");
        let is_me = u.id == me;
        let role_cell = if is_me {
            format!(r#"{} <span class="muted small">(you)</span>"#, u.role)
        } else {
            format!(
                r#"<form class="row" method="post" action="/team/{id}/role" style="gap:.4rem;flex-wrap:nowrap">{csrf}{sel}<button type="submit" class="secondary small">Change</button></form>"#,
                id = u.id,
                csrf = csrf_field(&user.csrf),
                sel = role_select(
                    &format!("role-{}", u.id),
                    "role",
                    u.role,
                    &format!("Role of {}", u.email)
                ),
            )
        };
        let (status, action) = match (u.deactivated_at, is_me) {
            (Some(_), _) => (
                r#"<span class="status DISABLED">Deactivated</span>"#,
                format!(
                    r#"<form method="post" action="/team/{}/reactivate" class="inline">{}<button type="submit" class="secondary small">Reactivate</button></form>"#,
                    u.id,
                    csrf_field(&user.csrf)
                ),
            ),
            (None, true) => (
                r#"<span class="status ACTIVE">Active</span>"#,
                String::new(),
            ),
            (None, false) => (
                r#"<span class="status ACTIVE">Active</span>"#,
                format!(
                    r#"<form method="post" action="/team/{}/deactivate" class="inline" data-confirm="Deactivate {}? They are signed out at once.">{}<button type="submit" class="danger small">Deactivate</button></form>"#,
                    u.id,
                    esc(&u.email),
                    csrf_field(&user.csrf)
                ),
            ),
        };
        let _ = write!(
            body,
            r#"<tr><td><b>{email}</b>{name}</td><td>{role_cell}</td><td class="hide-sm muted">{last}</td><td>{status}</td><td>{action}</td></tr>"#,
            email = esc(&u.email),
            name = if name.is_empty() {
                String::new()
            } else {
                format!(r#"<div class="muted small">{}</div>"#, esc(name))
            },
            last = u
                .last_login_at
                .map(|t| t.format("%-d %b %Y %H:%M UTC").to_string())
                .unwrap_or_else(|| "never".into()),
        );
    }
    body.push_str("</tbody></table></div></section>");
    if !invitations.is_empty() {
        body.push_str(r#"<section class="card" aria-labelledby="pending-title"><h2 id="pending-title">Pending invitations</h2><ul class="rank">"#);
        for i in invitations {
            let _ = write!(
                body,
                r#"<li><span>{} <span class="badge">{}</span></span><span class="muted small">expires {}</span></li>"#,
                esc(&i.email),
                i.role,
                i.expires_at.format("%-d %b %Y")
            );
        }
        body.push_str("</ul></section>");
    }
    Ok(page(layout(
        "Team",
        Nav::Team,
        Some(&user.who(tenant)),
        &body,
    )))
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// A refusal of a user action as the team page shows it: the API's message, as a sentence.
/// Conflicts (the last ADMIN, an existing account) and invalid input go back to the page as an
/// error flash; anything else is an error page.
fn refused(e: ApiError) -> Result<Response, PageError> {
    if e.status() == StatusCode::CONFLICT || e.status() == StatusCode::UNPROCESSABLE_ENTITY {
        Ok(see_other(&format!("/team?err={}", html::q(&sentence(&e)))))
    } else {
        Err(e.into())
    }
}

/// `the tenant must keep …` → `The tenant must keep ….`
fn sentence(e: &ApiError) -> String {
    capitalise(&e.body().error.message) + "."
}

/// `POST /team/invite`: [`actions::invite`], as `POST /api/v1/invitations`. The page shows the
/// link when it was not mailed.
pub async fn invite(
    State(state): State<AppState>,
    user: PageUser<Admin>,
    Form(f): Form<InviteForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let email = EmailAddress::parse(&f.email);
    let role = f.role.parse::<Role>();
    let (email, role) = match (email, role) {
        (Ok(email), Ok(role)) => (email, role),
        (email, role) => {
            let mut problems = Vec::new();
            if let Err(e) = email {
                problems.push(capitalise(&e.to_string()));
            }
            if role.is_err() {
                problems.push("Choose a role: ADMIN, EDITOR or VIEWER".to_string());
            }
            let message = problems.join(". ") + ".";
            return Ok(see_other(&format!("/team?err={}", html::q(&message))));
        }
    };
    let invited = match actions::invite(&state, &user.auth, &email, role).await {
        Ok(invited) => invited,
        Err(e) => return refused(e),
    };
    let link = match invited.delivery {
        Delivery::Email => {
            return Ok(see_other(&format!(
                "/team?ok={}",
                html::q(&format!("Invitation sent to {email} by email."))
            )))
        }
        Delivery::Link(link) => link,
    };
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let users = tx.list_users(None, 1000).await?;
    let invitations = tx.list_pending_invitations().await?;
    tx.commit().await?;
    render_team(
        &user,
        &tenant,
        &users,
        &invitations,
        None,
        Some((email.as_str(), &link)),
    )
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// `POST /team/{id}/role`: [`actions::update_user`], as `PATCH /api/v1/users/{id}`.
pub async fn change_role(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<RoleForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let Ok(role) = f.role.parse::<Role>() else {
        return Ok(see_other("/team?err=Unknown+role."));
    };
    let change = UserChange {
        role: Some(role),
        display_name: None,
    };
    let after = match actions::update_user(&user.auth, id, change).await {
        Ok(after) => after,
        Err(e) => return refused(e),
    };
    Ok(see_other(&format!(
        "/team?ok={}",
        html::q(&format!("{} is now {}.", after.email, after.role))
    )))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /team/{id}/deactivate|reactivate`: [`actions::deactivate`] / [`actions::reactivate`], as
/// `POST /api/v1/users/{id}/deactivate|reactivate`. The page also refuses to deactivate the
/// signed-in ADMIN themself (it shows no such button): the API allows it while another active
/// ADMIN remains.
async fn set_active(
    user: PageUser<Admin>,
    id: Uuid,
    csrf: &str,
    deactivate: bool,
) -> Result<Response, PageError> {
    user.check_csrf(csrf)?;
    if deactivate && id == user.auth.user_id() {
        return Ok(see_other("/team?err=You+cannot+deactivate+yourself."));
    }
    let result = if deactivate {
        actions::deactivate(&user.auth, id).await
    } else {
        actions::reactivate(&user.auth, id).await
    };
    let after = match result {
        Ok(after) => after,
        Err(e) => return refused(e),
    };
    let verb = if deactivate {
        "deactivated"
    } else {
        "reactivated"
    };
    Ok(see_other(&format!(
        "/team?ok={}",
        html::q(&format!("{} was {verb}.", after.email))
    )))
}

pub async fn deactivate(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_active(user, id, &f.csrf, true).await
}

pub async fn reactivate(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_active(user, id, &f.csrf, false).await
}

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------

const PROVIDERS: &[(&str, &str, &str)] = &[
    (
        "XERO",
        "Xero",
        "Accounting: invoices, bills and payments become financials.",
    ),
    (
        "MYOB",
        "MYOB",
        "Accounting: sales and purchases become financials.",
    ),
    (
        "HUBSPOT",
        "HubSpot",
        "CRM: deals and their stages become lead events.",
    ),
    (
        "PIPEDRIVE",
        "Pipedrive",
        "CRM: deals and their stages become lead events.",
    ),
    (
        "ASANA",
        "Asana",
        "Projects: task counts and hours become custom metrics.",
    ),
];

/// `?connected=PROVIDER` after a completed OAuth flow (the API's callback redirects here).
#[derive(Deserialize, Default)]
pub struct IntegrationsQuery {
    connected: Option<String>,
}

pub async fn integrations(
    user: PageUser<Viewer>,
    Query(q): Query<IntegrationsQuery>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let rows = tx.integration_overview().await?;
    tx.commit().await?;
    let role = user.auth.role();
    let admin = role == Role::Admin;
    // Through the API's visibility rule: a VIEWER or EDITOR never sees what the API refuses them.
    let rows: Vec<IntegrationCard> = rows
        .into_iter()
        .map(|r| IntegrationCard::for_role(r, role))
        .collect();
    let mut body = html::page_head(
        "Integrations",
        "Connect the systems your clients' numbers live in. Zixly syncs them on a schedule.",
        "",
    );
    if !admin {
        body.push_str(&html::flash(
            "info",
            "Only ADMINs can connect or sync integrations.",
        ));
    }
    if let Some((_, name, _)) = q
        .connected
        .as_deref()
        .and_then(|c| PROVIDERS.iter().find(|p| p.0.eq_ignore_ascii_case(c)))
    {
        body.push_str(&html::flash(
            "ok",
            &format!("{name} is connected. The first sync has been scheduled."),
        ));
    }
    body.push_str(r#"<div class="grid two">"#);
    for (code, name, what) in PROVIDERS {
        let row = rows.iter().find(|r| r.provider == *code);
        let status = row.map(|r| r.status.as_str()).unwrap_or("none");
        let status_label = match status {
            "none" => "Not connected",
            "PENDING" => "Pending",
            "ACTIVE" => "Connected",
            "ERROR" => "Error",
            "DISABLED" => "Disabled",
            other => other,
        };
        let last_sync = row
            .and_then(|r| r.last_sync_at)
            .map(|t| format!("Last sync {}", t.format("%-d %b %Y %H:%M UTC")))
            .unwrap_or_else(|| "Never synced".into());
        let error = row
            .and_then(|r| r.last_error.as_deref())
            .map(|e| {
                format!(
                    r#"<p class="flash err small" style="margin:.5rem 0 0">{}</p>"#,
                    esc(e)
                )
            })
            .unwrap_or_default();
        let controls = if admin {
            if status == "ACTIVE" || status == "ERROR" {
                format!(
                    r#"<form method="post" action="/integrations/{code}/sync" class="inline">{csrf}<button type="submit" class="secondary small">Sync now</button></form> <form method="post" action="/integrations/{code}/disconnect" class="inline">{csrf}<button type="submit" class="secondary small">Disconnect</button></form>"#,
                    csrf = csrf_field(&user.csrf)
                )
            } else {
                format!(
                    r#"<form method="post" action="/integrations/{code}/connect" class="inline">{}<button type="submit" class="small">Connect {name}</button></form>"#,
                    csrf_field(&user.csrf)
                )
            }
        } else {
            String::new()
        };
        let _ = write!(
            body,
            r#"<section class="card" aria-labelledby="int-{code}" data-provider="{code}"><div class="card-head"><h2 id="int-{code}">{name}</h2><span class="status {status}">{status_label}</span></div><p class="muted small">{what}</p><p class="small">{last_sync}</p>{error}{controls}</section>"#
        );
    }
    body.push_str("</div>");
    Ok(page(layout(
        "Integrations",
        Nav::Integrations,
        Some(&user.who(&tenant)),
        &body,
    )))
}

/// `POST /integrations/{provider}/{connect|sync|disconnect}`: hands over to the API's integration
/// routes (connect is addressed by provider, sync and disconnect by the integration's id).
pub async fn integration_action(
    State(state): State<AppState>,
    ctx: crate::auth::RequestCtx,
    headers: axum::http::HeaderMap,
    user: PageUser<Admin>,
    Path((provider, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let provider = PROVIDERS
        .iter()
        .find(|p| p.0 == provider)
        .map(|p| p.0)
        .ok_or(PageError::NotFound)?;
    let path = match action.as_str() {
        "connect" => format!("/integrations/{}/connect", provider.to_lowercase()),
        "sync" | "disconnect" => {
            let tx = user.begin().await?;
            let rows = tx.integration_overview().await?;
            tx.commit().await?;
            let id = rows
                .iter()
                .find(|r| r.provider == provider)
                .map(|r| r.id)
                .ok_or(PageError::NotFound)?;
            format!("/integrations/{id}/{action}")
        }
        _ => return Err(PageError::NotFound),
    };
    let answer = super::internal::call(
        &state,
        &ctx,
        &headers,
        axum::http::Method::POST,
        &path,
        None,
    )
    .await;
    if let Some(url) = answer.body.get("authorize_url").and_then(|v| v.as_str()) {
        return Ok(see_other(url));
    }
    if answer.status.is_success() {
        return Ok(see_other("/integrations"));
    }
    if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::METHOD_NOT_ALLOWED {
        return Err(PageError::Api(crate::error::ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_available",
            "this connector is not available in this build",
        )));
    }
    Err(PageError::Api(crate::error::ApiError::new(
        answer.status,
        "integration_failed",
        answer.message(),
    )))
}
