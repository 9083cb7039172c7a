//! `/team` (ADMIN): the people of the tenant and their pending invitations; invite, change role,
//! deactivate, reactivate. The changes are [`crate::actions::users`], the API's own actions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zixly_domain::{EmailAddress, Role};

use maud::{html, Markup};

use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::internal::capitalise;
use super::{page, see_other, CsrfForm, PageError, PageUser};
use crate::actions::users::{self as actions, Delivery, UserChange};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::input_guard::Form;
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    pub ok: Option<String>,
    pub err: Option<String>,
}

/// The role picker; `label` is its accessible name when no `<label for>` names it.
fn role_select(id: &str, name: &str, selected: Role, label: Option<&str>) -> Markup {
    html! {
        select id=(id) name=(name) aria-label=[label] {
            @for r in [Role::Viewer, Role::Editor, Role::Admin] {
                option value=(r) selected[r == selected] { (r) }
            }
        }
    }
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
    let active = users.iter().filter(|u| u.deactivated_at.is_none()).count();
    let csrf = csrf_input(&user.csrf);
    let body = html! {
        (html::head(
            "Team",
            &format!("{active} people can sign in to {}", tenant.name),
            html! {},
        ))
        @if let Some((k, m)) = message { (flash_box(k, m)) }
        @if let Some((email, url)) = link {
            div class="flash ok" role="status" {
                "Invitation created for " b { (email) }
                ". Send them this link (valid for 7 days, usable once):" br;
                code data-invitation-link style="word-break:break-all" { (url) }
            }
        }
        section class="card" aria-labelledby="inv-title" {
            h2 id="inv-title" { "Invite someone" }
            form class="row" method="post" action="/team/invite" {
                (csrf)
                div class="field" style="flex:1;min-width:220px" {
                    label for="invite-email" { "Email to invite" }
                    input type="email" id="invite-email" name="email" required autocomplete="off";
                }
                div class="field" {
                    label for="invite-role" { "Role" }
                    (role_select("invite-role", "role", Role::Viewer, None))
                }
                button type="submit" { "Send invitation" }
            }
            p class="hint" {
                "VIEWERs read dashboards; EDITORs also import data; ADMINs manage people and integrations."
            }
        }
        section class="card" aria-labelledby="people-title" {
            h2 id="people-title" { "People" }
            div class="table-wrap" {
                table data-table="users" {
                    thead { tr {
                        th scope="col" { "Person" }
                        th scope="col" { "Role" }
                        th scope="col" class="hide-sm" { "Last login" }
                        th scope="col" { "Status" }
                        th scope="col" { span class="sr-only" { "Actions" } }
                    } }
                    tbody {
                        @for u in users {
                            @let name = u.display_name.as_deref().unwrap_or("");
                            @let is_me = u.id == me;
                            tr {
                                td {
                                    b { (u.email) }
                                    @if !name.is_empty() { div class="muted small" { (name) } }
                                }
                                td {
                                    @if is_me {
                                        (u.role) " " span class="muted small" { "(you)" }
                                    } @else {
                                        form class="row" method="post" action={ "/team/" (u.id) "/role" } style="gap:.4rem;flex-wrap:nowrap" {
                                            (csrf)
                                            (role_select(
                                                &format!("role-{}", u.id),
                                                "role",
                                                u.role,
                                                Some(&format!("Role of {}", u.email)),
                                            ))
                                            button type="submit" class="secondary small" { "Change" }
                                        }
                                    }
                                }
                                td class="hide-sm muted" {
                                    @match u.last_login_at {
                                        Some(t) => (t.format("%-d %b %Y %H:%M UTC")),
                                        None => "never",
                                    }
                                }
                                @match (u.deactivated_at, is_me) {
                                    (Some(_), _) => {
                                        td { span class="status DISABLED" { "Deactivated" } }
                                        td {
                                            form method="post" action={ "/team/" (u.id) "/reactivate" } class="inline" {
                                                (csrf)
                                                button type="submit" class="secondary small" { "Reactivate" }
                                            }
                                        }
                                    }
                                    (None, true) => {
                                        td { span class="status ACTIVE" { "Active" } }
                                        td {}
                                    }
                                    (None, false) => {
                                        td { span class="status ACTIVE" { "Active" } }
                                        td {
                                            form method="post" action={ "/team/" (u.id) "/deactivate" } class="inline"
                                                data-confirm={ "Deactivate " (u.email) "? They are signed out at once." } {
                                                (csrf)
                                                button type="submit" class="danger small" { "Deactivate" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !invitations.is_empty() {
            section class="card" aria-labelledby="pending-title" {
                h2 id="pending-title" { "Pending invitations" }
                ul class="rank" {
                    @for i in invitations {
                        li {
                            span { (i.email) " " span class="badge" { (i.role) } }
                            span class="muted small" { "expires " (i.expires_at.format("%-d %b %Y")) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(page_layout(
        "Team",
        Nav::Team,
        Some(&user.who(tenant)),
        body,
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
