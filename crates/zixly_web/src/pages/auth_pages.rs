//! `/login`, `/logout`, `/accept-invitation`, `/password-reset` and `/reset-password`.
//!
//! These forms are posted before there is a session, so their CSRF token is a double-submit one:
//! a random value in the `zixly_pre` cookie (HttpOnly, SameSite=Strict) that the form repeats in
//! `_csrf`. Another site can neither read the cookie nor make the browser send it cross-site.
//! The work itself is the API's (`/api/v1/auth/...`, see [`super::internal`]).

use crate::input_guard::Form;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use maud::{html, Markup};

use super::html::{csrf_input, flash_box, page_layout, Nav};
use super::redirect::local_target;
use super::{internal, same_token, PageError, PageUser};
use crate::auth::{MaybeAuth, RequestCtx, Viewer};
use crate::AppState;

const PRE_COOKIE: &str = "zixly_pre";

fn pre_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == PRE_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The pre-session token of this browser, and the `Set-Cookie` to send when it is new.
fn pre_token(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    if let Some(t) = pre_cookie(headers) {
        return (t, None);
    }
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let t = hex::encode(b);
    let cookie = format!(
        "{PRE_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400{}",
        if secure { "; Secure" } else { "" }
    );
    (t, HeaderValue::from_str(&cookie).ok())
}

fn pre_check(headers: &HeaderMap, submitted: &str) -> bool {
    pre_cookie(headers).is_some_and(|c| same_token(&c, submitted))
}

/// A centred card page for the signed-out forms.
fn auth_page(
    status: StatusCode,
    title: &str,
    inner: Markup,
    cookie: Option<HeaderValue>,
) -> Response {
    let body = html! {
        div class="auth" {
            div class="card" {
                a class="logo" href="/login" {
                    span class="logo-mark" aria-hidden="true" style="color:#fff" { "Z" }
                    "Zixly"
                }
                (inner)
            }
        }
    };
    let mut r = super::finish(
        (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            Html(page_layout(title, Nav::None, None, body)),
        )
            .into_response(),
    );
    if let Some(c) = cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
    pub reset: Option<String>,
    pub expired: Option<String>,
}

fn login_html(csrf: &str, email: &str, next: &str, message: Option<(&str, &str)>) -> Markup {
    html! {
        h1 { "Log in" }
        p class="muted" { "Welcome back. Sign in to your team's dashboard." }
        @if let Some((k, m)) = message { (flash_box(k, m)) }
        form method="post" action="/login" novalidate {
            (csrf_input(csrf))
            input type="hidden" name="next" value=(next);
            div class="field" {
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="username" required value=(email) autofocus;
            }
            div class="field" {
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
            }
            button type="submit" { "Log in" }
        }
        p class="small" style="margin-top:1rem" { a href="/password-reset" { "Forgot your password?" } }
    }
}

pub async fn login_form(
    State(state): State<AppState>,
    MaybeAuth(auth): MaybeAuth,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local_target(q.next.as_deref());
    if auth.is_some() {
        return Redirect::to(&next).into_response();
    }
    let (token, cookie) = pre_token(&headers, state.config.cookie_secure);
    let msg = if q.reset.is_some() {
        Some(("ok", "Your password was changed. Log in with the new one."))
    } else if q.expired.is_some() {
        Some(("info", "Your session has ended. Log in again."))
    } else {
        None
    };
    auth_page(
        StatusCode::OK,
        "Log in",
        login_html(&token, "", &next, msg),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_target(f.next.as_deref());
    let (token, cookie) = pre_token(&headers, state.config.cookie_secure);
    if !pre_check(&headers, &f.csrf) {
        let m = Some(("err", "This form had expired. Please try again."));
        return auth_page(
            StatusCode::FORBIDDEN,
            "Log in",
            login_html(&token, &f.email, &next, m),
            cookie,
        );
    }
    let answer = internal::call(
        &state,
        &ctx,
        &HeaderMap::new(),
        Method::POST,
        "/auth/login",
        Some(json!({"email": f.email, "password": f.password})),
    )
    .await;
    if answer.status == StatusCode::OK {
        let mut r = Redirect::to(&next).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        answer.pass_cookies(&mut r);
        return r;
    }
    let message = match answer.status {
        StatusCode::UNAUTHORIZED => "Email or password is wrong.".to_string(),
        StatusCode::TOO_MANY_REQUESTS => "Too many failed attempts. Wait a minute and try again.".to_string(),
        StatusCode::CONFLICT => "This email and password open several accounts; ask an administrator to tell them apart.".to_string(),
        StatusCode::UNPROCESSABLE_ENTITY => "Enter your email and password.".to_string(),
        _ => "Logging in failed. Try again in a moment.".to_string(),
    };
    auth_page(
        answer.status,
        "Log in",
        login_html(&token, &f.email, &next, Some(("err", &message))),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    user: PageUser<Viewer>,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    user.check_csrf(&f.csrf)?;
    let answer = internal::call(&state, &ctx, &headers, Method::POST, "/auth/logout", None).await;
    let mut r = Redirect::to("/login").into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    answer.pass_cookies(&mut r);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Invitations and password resets. The links carry the token in the fragment
// (`/accept-invitation#token=...`), which browsers never send to servers or in Referer; app.js
// copies it into the form's hidden `token` field.

fn token_form(
    action: &str,
    csrf: &str,
    title: &str,
    intro: &str,
    with_name: bool,
    message: Option<(&str, &str)>,
    token: &str,
) -> Markup {
    html! {
        h1 { (title) }
        p class="muted" { (intro) }
        @if let Some((k, m)) = message { (flash_box(k, m)) }
        form method="post" action=(action) {
            (csrf_input(csrf))
            input type="hidden" name="token" data-from-fragment="token" value=(token);
            @if with_name {
                div class="field" {
                    label for="display_name" { "Your name" }
                    input type="text" id="display_name" name="display_name" autocomplete="name";
                }
            }
            div class="field" {
                label for="password" { "New password" }
                input type="password" id="password" name="password" autocomplete="new-password" minlength="12" required;
                p class="hint" { "At least 12 characters." }
            }
            button type="submit" { (title) }
        }
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    display_name: Option<String>,
}

const ACCEPT_INTRO: &str = "Choose a password to join your team on Zixly.";

pub async fn accept_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    auth_page(
        StatusCode::OK,
        "Join your team",
        token_form(
            "/accept-invitation",
            &t,
            "Join your team",
            ACCEPT_INTRO,
            true,
            None,
            "",
        ),
        cookie,
    )
}

pub async fn accept_submit(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    let retry = |status, msg: &str| {
        auth_page(
            status,
            "Join your team",
            token_form(
                "/accept-invitation",
                &t,
                "Join your team",
                ACCEPT_INTRO,
                true,
                Some(("err", msg)),
                &f.token,
            ),
            cookie.clone(),
        )
    };
    if !pre_check(&headers, &f.csrf) {
        return retry(
            StatusCode::FORBIDDEN,
            "This form had expired. Please try again.",
        );
    }
    let body = json!({"token": f.token, "password": f.password, "display_name": f.display_name.as_deref().map(str::trim).filter(|s| !s.is_empty())});
    let answer = internal::call(
        &state,
        &ctx,
        &HeaderMap::new(),
        Method::POST,
        "/auth/accept-invitation",
        Some(body),
    )
    .await;
    if answer.status.is_success() {
        let mut r = Redirect::to("/").into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        answer.pass_cookies(&mut r);
        return r;
    }
    retry(answer.status, &answer.message())
}

const RESET_INTRO: &str = "Choose a new password for your account.";

pub async fn reset_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    auth_page(
        StatusCode::OK,
        "Set a new password",
        token_form(
            "/reset-password",
            &t,
            "Set a new password",
            RESET_INTRO,
            false,
            None,
            "",
        ),
        cookie,
    )
}

pub async fn reset_submit(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    if !pre_check(&headers, &f.csrf) {
        let html = token_form(
            "/reset-password",
            &t,
            "Set a new password",
            RESET_INTRO,
            false,
            Some(("err", "This form had expired. Please try again.")),
            &f.token,
        );
        return auth_page(StatusCode::FORBIDDEN, "Set a new password", html, cookie);
    }
    let body = json!({"token": f.token, "password": f.password});
    let answer = internal::call(
        &state,
        &ctx,
        &HeaderMap::new(),
        Method::POST,
        "/auth/password-reset/confirm",
        Some(body),
    )
    .await;
    if answer.status.is_success() {
        let mut r = Redirect::to("/login?reset=1").into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let html = token_form(
        "/reset-password",
        &t,
        "Set a new password",
        RESET_INTRO,
        false,
        Some(("err", &answer.message())),
        &f.token,
    );
    auth_page(answer.status, "Set a new password", html, cookie)
}

fn request_reset_html(csrf: &str, message: Option<(&str, &str)>) -> Markup {
    html! {
        h1 { "Reset your password" }
        p class="muted" {
            "Enter your email. If it belongs to an account, we send a link to set a new password. Without mail set up, ask an administrator for a link."
        }
        @if let Some((k, m)) = message { (flash_box(k, m)) }
        form method="post" action="/password-reset" {
            (csrf_input(csrf))
            div class="field" {
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="username" required;
            }
            button type="submit" { "Send reset link" }
        }
        p class="small" style="margin-top:1rem" { a href="/login" { "Back to log in" } }
    }
}

pub async fn request_reset_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    auth_page(
        StatusCode::OK,
        "Reset your password",
        request_reset_html(&t, None),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn request_reset_submit(
    State(state): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Response {
    let (t, cookie) = pre_token(&headers, state.config.cookie_secure);
    if !pre_check(&headers, &f.csrf) {
        return auth_page(
            StatusCode::FORBIDDEN,
            "Reset your password",
            request_reset_html(
                &t,
                Some(("err", "This form had expired. Please try again.")),
            ),
            cookie,
        );
    }
    let answer = internal::call(
        &state,
        &ctx,
        &HeaderMap::new(),
        Method::POST,
        "/auth/password-reset",
        Some(json!({"email": f.email})),
    )
    .await;
    let msg = if answer.status.is_success() {
        (
            "ok",
            "If this email belongs to an account, a reset link is on its way.".to_string(),
        )
    } else {
        ("err", answer.message())
    };
    auth_page(
        answer.status,
        "Reset your password",
        request_reset_html(&t, Some((msg.0, &msg.1))),
        cookie,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_session_token_must_match_its_cookie() {
        let mut h = HeaderMap::new();
        let (t, cookie) = pre_token(&h, false);
        assert!(cookie
            .unwrap()
            .to_str()
            .unwrap()
            .contains("SameSite=Strict"));
        assert!(!pre_check(&h, &t), "no cookie, no match");
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{PRE_COOKIE}={t}")).unwrap(),
        );
        assert!(pre_check(&h, &t));
        assert!(!pre_check(&h, "0123456789abcdef0123456789abcdef"));
        assert_eq!(pre_token(&h, false), (t, None));
    }
}
