//! `/team` (ADMIN): the people of the tenant and their pending invitations; invite, change role,
//! deactivate, reactivate. The changes are [`crate::actions::users`], the API's own actions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zixly_domain::{EmailAddress, Role};

use maud::{html, Markup};

use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::internal::capitalise;
use super::time::{local, local_date};
use super::{page, CsrfForm, PageError, PageUser};
use crate::actions::users::{self as actions, Delivery, UserChange};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::input_guard::Form;
use crate::AppState;

/// Every message the team page shows after a redirect ([`super::flash`]: codes, never text).
const NOTICES: &[Notice] = &[
    Notice::ok("invited", "Invitation sent to {email} by email."),
    Notice::ok("role_changed", "{email} is now {role}."),
    Notice::ok("deactivated", "{email} was deactivated."),
    Notice::ok("reactivated", "{email} was reactivated."),
    Notice::ok(
        "reset_mailed",
        "A password-reset link was mailed to {email}.",
    ),
    Notice::ok("invitation_revoked", "The invitation was revoked."),
    Notice::err(
        "last_admin",
        "The tenant must keep at least one active ADMIN.",
    ),
    Notice::err("already_user", "A user with this email already exists."),
    Notice::err("not_yourself", "You cannot deactivate yourself."),
    Notice::err("unknown_role", "Choose a role: ADMIN, EDITOR or VIEWER."),
    Notice::err("gone", "That person or invitation no longer exists."),
];

fn notice(code: &str) -> &'static Notice {
    NOTICES
        .iter()
        .find(|n| n.code == code)
        .expect("a code of NOTICES")
}

/// What the page shows above its cards: a flash from a redirect, an error of a form it answers
/// directly, or a one-time link that was not mailed.
enum Message<'a> {
    None,
    Flash(&'static Notice, Option<Uuid>),
    Error(String),
    Link {
        what: LinkKind,
        email: &'a str,
        url: &'a str,
    },
}

#[derive(Clone, Copy)]
enum LinkKind {
    Invitation,
    PasswordReset,
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
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = match q.pick(NOTICES) {
        Some(n) => Message::Flash(n, q.who),
        None => Message::None,
    };
    render_team(&user, StatusCode::OK, message).await
}

/// Reads the team and renders the page with `message`.
async fn render_team(
    user: &PageUser<Admin>,
    status: StatusCode,
    message: Message<'_>,
) -> Result<Response, PageError> {
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    let users = tx.list_users(None, 1000).await?;
    let invitations = tx.list_pending_invitations().await?;
    tx.commit().await?;
    let mut response = page(team_page(user, &tenant, &users, &invitations, message));
    *response.status_mut() = status;
    Ok(response)
}

fn team_page(
    user: &PageUser<Admin>,
    tenant: &zixly_db::queries::dashboard::TenantProfile,
    users: &[zixly_db::queries::users::UserRow],
    invitations: &[zixly_db::queries::auth::Invitation],
    message: Message<'_>,
) -> String {
    let me = user.auth.user_id();
    let active = users.iter().filter(|u| u.deactivated_at.is_none()).count();
    let csrf = csrf_input(&user.csrf);
    let body = html! {
        (html::head(
            "Team",
            &format!("{active} people can sign in to {}", tenant.name),
            html! {},
        ))
        @match message {
            Message::None => {},
            Message::Flash(notice, who) => {
                // The subject is looked up in this tenant's people and invitations, never
                // taken from the URL as text.
                @let person = who.and_then(|id| users.iter().find(|u| u.id == id));
                @let invited = who.and_then(|id| invitations.iter().find(|i| i.id == id));
                @let email = person.map(|u| u.email.as_str()).or(invited.map(|i| i.email.as_str()));
                @let role = person.map(|u| u.role.as_str());
                (notice.render(email, role))
            },
            Message::Error(text) => (flash_box("err", &text)),
            Message::Link { what: LinkKind::Invitation, email, url } => {
                div class="flash ok" role="status" {
                    "Invitation created for " b { (email) }
                    ". Send them this link (valid for 7 days, usable once):" br;
                    code data-invitation-link style="word-break:break-all" { (url) }
                }
            },
            Message::Link { what: LinkKind::PasswordReset, email, url } => {
                div class="flash ok" role="status" {
                    "Password-reset link for " b { (email) }
                    " (no mail server is configured). Send them this link (usable once; it stops working when they change their password):" br;
                    code data-reset-link style="word-break:break-all" { (url) }
                }
            },
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
                                        Some(t) => (local(t, &tenant.time_zone)),
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
                                        td style="white-space:nowrap" {
                                            form method="post" action={ "/team/" (u.id) "/password-reset" } class="inline" {
                                                (csrf)
                                                button type="submit" class="secondary small"
                                                    aria-label={ "Password-reset link for " (u.email) } { "Reset link" }
                                            }
                                            " "
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
                            span class="row" style="gap:.5rem;flex-wrap:nowrap" {
                                span class="muted small" { "expires " (local_date(i.expires_at, &tenant.time_zone)) }
                                form method="post" action={ "/team/invitations/" (i.id) "/revoke" } class="inline"
                                    data-confirm={ "Revoke the invitation of " (i.email) "? Its link stops working." } {
                                    (csrf)
                                    button type="submit" class="danger small"
                                        aria-label={ "Revoke the invitation of " (i.email) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page_layout("Team", Nav::Team, Some(&user.who(tenant)), body)
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

/// A refusal of a user action as the team page shows it. The API's refusals the page expects
/// (the last ADMIN, an existing account, an id that is gone) become their fixed notices; anything
/// else is an error page.
fn refused(e: ApiError) -> Result<Response, PageError> {
    let body = e.body();
    match (e.status(), body.error.code.as_str()) {
        (StatusCode::CONFLICT, "last_admin") => Ok(notice("last_admin").redirect("/team", None)),
        (StatusCode::CONFLICT, _) => Ok(notice("already_user").redirect("/team", None)),
        (StatusCode::NOT_FOUND, _) => Ok(notice("gone").redirect("/team", None)),
        _ => Err(e.into()),
    }
}

/// `the email address has no `@`` → `The email address has no `@`.`
fn sentence(s: &str) -> String {
    capitalise(s) + "."
}

/// `POST /team/invite`: [`actions::invite`], as `POST /api/v1/invitations`. The page shows the
/// link when it was not mailed. Invalid input is answered directly (422, the page with the
/// message), not through a redirect: the message names the problem with the typed address.
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
                problems.push(sentence(&e.to_string()));
            }
            if role.is_err() {
                problems.push(notice("unknown_role").text.to_string());
            }
            let message = Message::Error(problems.join(" "));
            return render_team(&user, StatusCode::UNPROCESSABLE_ENTITY, message).await;
        }
    };
    let invited = match actions::invite(&state, &user.auth, &email, role).await {
        Ok(invited) => invited,
        Err(e) => return refused(e),
    };
    match invited.delivery {
        Delivery::Email => Ok(notice("invited").redirect("/team", Some(invited.invitation.id))),
        Delivery::Link(url) => {
            let message = Message::Link {
                what: LinkKind::Invitation,
                email: email.as_str(),
                url: &url,
            };
            render_team(&user, StatusCode::OK, message).await
        }
    }
}

/// `POST /team/{id}/password-reset`: [`actions::issue_reset_link`], as
/// `POST /api/v1/users/{id}/password-reset`. Mailed when a mailer is configured, else shown once.
pub async fn password_reset(
    State(state): State<AppState>,
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let issued = match actions::issue_reset_link(&state, &user.auth, id).await {
        Ok(issued) => issued,
        Err(e) => return refused(e),
    };
    match issued.delivery {
        Delivery::Email => Ok(notice("reset_mailed").redirect("/team", Some(id))),
        Delivery::Link(url) => {
            let message = Message::Link {
                what: LinkKind::PasswordReset,
                email: &issued.email,
                url: &url,
            };
            render_team(&user, StatusCode::OK, message).await
        }
    }
}

/// `POST /team/invitations/{id}/revoke`: [`actions::revoke_invitation`], as
/// `DELETE /api/v1/invitations/{id}`.
pub async fn revoke_invitation(
    user: PageUser<Admin>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    match actions::revoke_invitation(&user.auth, id).await {
        Ok(_) => Ok(notice("invitation_revoked").redirect("/team", None)),
        Err(e) => refused(e),
    }
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
        return Ok(notice("unknown_role").redirect("/team", None));
    };
    let change = UserChange {
        role: Some(role),
        display_name: None,
    };
    let after = match actions::update_user(&user.auth, id, change).await {
        Ok(after) => after,
        Err(e) => return refused(e),
    };
    Ok(notice("role_changed").redirect("/team", Some(after.id)))
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
        return Ok(notice("not_yourself").redirect("/team", None));
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
    let code = if deactivate {
        "deactivated"
    } else {
        "reactivated"
    };
    Ok(notice(code).redirect("/team", Some(after.id)))
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
