//! `/account` (every signed-in user): their own password and personal API tokens. The changes
//! are [`crate::actions::account`], the same actions as `POST /api/v1/me/password` and
//! `/api/v1/me/tokens`.
//!
//! Form problems are answered directly (422 with the page and the message by the field), not by a
//! redirect, so what was typed into other fields stays; a new token is shown once, on the page
//! answering its creation, and never again.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;
use zixly_db::queries::auth::TokenInfo;

use super::flash::{FlashQuery, Notice};
use super::html::{self, csrf_input, flash_box, page_layout, Nav};
use super::internal::capitalise;
use super::time::{local, local_date};
use super::{page, CsrfForm, PageError, PageUser};
use crate::actions::account::{self as actions, DEFAULT_TOKEN_DAYS, MAX_TOKEN_NAME_CHARS};
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::input_guard::Form;
use crate::AppState;

const NOTICES: &[Notice] = &[
    Notice::ok(
        "password_changed",
        "Your password was changed. Your other sessions and API tokens were signed out.",
    ),
    Notice::ok(
        "token_revoked",
        "The token was revoked; it no longer works.",
    ),
    Notice::err("token_gone", "That token no longer exists."),
];

fn notice(code: &str) -> &'static Notice {
    NOTICES
        .iter()
        .find(|n| n.code == code)
        .expect("a code of NOTICES")
}

/// The lifetimes offered for a new token, in days.
const TOKEN_DAYS: &[u32] = &[7, 30, 90, 180, 365];

/// What the page shows above its cards.
enum Message {
    None,
    Flash(&'static Notice),
    Error(String),
    NewToken { name: String, token: String },
}

pub async fn account(
    user: PageUser<Viewer>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let message = q.pick(NOTICES).map_or(Message::None, Message::Flash);
    render(&user, StatusCode::OK, message).await
}

async fn render(
    user: &PageUser<Viewer>,
    status: StatusCode,
    message: Message,
) -> Result<Response, PageError> {
    let tokens = actions::list_tokens(&user.auth).await?;
    let tx = user.begin().await?;
    let tenant = tx.tenant_profile().await?;
    tx.commit().await?;
    let body = account_body(user, &tenant.time_zone, &tokens, message);
    let mut response = page(page_layout(
        "Your account",
        Nav::Account,
        Some(&user.who(&tenant)),
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

fn account_body(
    user: &PageUser<Viewer>,
    time_zone: &str,
    tokens: &[TokenInfo],
    message: Message,
) -> Markup {
    let p = user.auth.principal();
    let csrf = csrf_input(&user.csrf);
    html! {
        (html::head("Your account", &format!("{} · {}", p.email, p.role), html! {}))
        @match message {
            Message::None => {},
            Message::Flash(n) => (n.render(None, None)),
            Message::Error(text) => (flash_box("err", &text)),
            Message::NewToken { name, token } => {
                div class="flash ok" role="status" {
                    "Token " b { (name) } " created. Copy it now: it is not shown again." br;
                    code data-new-token style="word-break:break-all" { (token) }
                    p class="hint" { "Send it as " code { "Authorization: Bearer <token>" } "; it acts with your role." }
                }
            },
        }
        section class="card" aria-labelledby="pw-title" {
            h2 id="pw-title" { "Change your password" }
            form method="post" action="/account/password" {
                (csrf)
                // A hidden username lets password managers file the new password correctly.
                input type="email" name="username" value=(p.email) autocomplete="username" hidden;
                div class="field" {
                    label for="current-password" { "Current password" }
                    input type="password" id="current-password" name="current_password" required autocomplete="current-password";
                }
                div class="field" {
                    label for="new-password" { "New password" }
                    input type="password" id="new-password" name="new_password" required minlength="10" autocomplete="new-password";
                }
                div class="field" {
                    label for="confirm-password" { "New password again" }
                    input type="password" id="confirm-password" name="confirm_password" required minlength="10" autocomplete="new-password";
                }
                div { button type="submit" { "Change password" } }
            }
            p class="hint" {
                "At least 10 characters. Changing it signs you out everywhere else and revokes your personal API tokens."
            }
        }
        section class="card" aria-labelledby="tokens-title" {
            h2 id="tokens-title" { "Personal API tokens" }
            p class="hint" { "For scripts and BI tools calling the REST API (" a href="/api/docs" { "API reference" } ") as you." }
            @if tokens.is_empty() {
                p class="muted" data-empty="tokens" { "You have no API tokens." }
            } @else {
                div class="table-wrap" {
                    table data-table="tokens" {
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" class="hide-sm" { "Created" }
                            th scope="col" { "Expires" }
                            th scope="col" class="hide-sm" { "Last used" }
                            th scope="col" { span class="sr-only" { "Actions" } }
                        } }
                        tbody {
                            @for t in tokens {
                                @let name = t.name.as_deref().unwrap_or("(unnamed)");
                                tr {
                                    td { b { (name) } }
                                    td class="hide-sm muted" { (local_date(t.created_at, time_zone)) }
                                    td { (local_date(t.expires_at, time_zone)) }
                                    td class="hide-sm muted" {
                                        @match t.last_used_at { Some(at) => (local(at, time_zone)), None => "never" }
                                    }
                                    td {
                                        form method="post" action={ "/account/tokens/" (t.id) "/revoke" } class="inline"
                                            data-confirm={ "Revoke the token " (name) "? Anything using it stops working." } {
                                            (csrf)
                                            button type="submit" class="danger small" aria-label={ "Revoke " (name) } { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form class="row" method="post" action="/account/tokens" style="margin-top:1rem" {
                (csrf)
                div class="field" style="flex:1;min-width:200px" {
                    label for="token-name" { "What the token is for" }
                    input type="text" id="token-name" name="name" required maxlength=(MAX_TOKEN_NAME_CHARS) placeholder="nightly export" autocomplete="off";
                }
                div class="field" {
                    label for="token-days" { "Valid for" }
                    select id="token-days" name="expires_in_days" {
                        @for d in TOKEN_DAYS {
                            option value=(d) selected[*d == DEFAULT_TOKEN_DAYS] { (d) " days" }
                        }
                    }
                }
                button type="submit" { "Create token" }
            }
        }
    }
}

/// The message of a refused action: each field's reason as a sentence (`New password: must be
/// at least 10 characters.`), or the error's own message.
pub(super) fn problem_text(e: &ApiError) -> String {
    let body = e.body().error;
    if body.details.is_empty() {
        return capitalise(&body.message) + ".";
    }
    body.details
        .iter()
        .map(|d| match d.field.as_deref() {
            Some(f) => format!("{}: {}.", capitalise(&f.replace('_', " ")), d.reason),
            None => capitalise(&d.reason) + ".",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A refusal the form can explain (invalid input, throttled) goes back to the page with its
/// message; anything else is an error page.
async fn refused(user: &PageUser<Viewer>, e: ApiError) -> Result<Response, PageError> {
    match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::TOO_MANY_REQUESTS => {
            render(user, e.status(), Message::Error(problem_text(&e))).await
        }
        _ => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /account/password`: [`actions::change_password`], as `POST /api/v1/me/password`.
pub async fn change_password(
    State(state): State<AppState>,
    user: PageUser<Viewer>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    if f.new_password != f.confirm_password {
        let text = "The two new passwords differ: type the same one twice.".to_string();
        return render(
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            Message::Error(text),
        )
        .await;
    }
    match actions::change_password(&state, &user.auth, f.current_password, f.new_password).await {
        Ok(()) => Ok(notice("password_changed").redirect("/account", None)),
        Err(e) => refused(&user, e).await,
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /account/tokens`: [`actions::create_token`], as `POST /api/v1/me/tokens`. Answers with
/// the page showing the token once (no redirect: the secret must not go into a URL).
pub async fn create_token(
    user: PageUser<Viewer>,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let days = match f.expires_in_days.trim() {
        "" => None,
        // Out of range or not a number: the action names the field.
        d => Some(d.parse::<u32>().unwrap_or(0)),
    };
    match actions::create_token(&user.auth, &f.name, days).await {
        Ok(created) => {
            let message = Message::NewToken {
                name: created.info.name.unwrap_or_default(),
                token: created.token,
            };
            let mut response = render(&user, StatusCode::OK, message).await?;
            // The answer holds a secret: never keep it in a cache or the back-forward history.
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(e) => refused(&user, e).await,
    }
}

/// `POST /account/tokens/{id}/revoke`: [`actions::revoke_token`], as `DELETE /api/v1/me/tokens/{id}`.
pub async fn revoke_token(
    user: PageUser<Viewer>,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    match actions::revoke_token(&user.auth, id).await {
        Ok(_) => Ok(notice("token_revoked").redirect("/account", None)),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            Ok(notice("token_gone").redirect("/account", None))
        }
        Err(e) => refused(&user, e).await,
    }
}
