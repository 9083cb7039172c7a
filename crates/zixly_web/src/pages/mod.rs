//! Server-rendered pages: the dashboard people use in a browser.
//!
//! - Authentication is the API's: the session cookie set by the login form, checked by the same
//!   [`Auth`] extractor with the same capability types. [`PageUser<C>`] wraps it so that a page
//!   answers like a page: no session → redirect to `/login`, role too low → a 403 page, an unknown
//!   or another tenant's id → the 404 page (RLS makes the two indistinguishable).
//! - Every form carries a CSRF token (`_csrf`) bound to the session: the first 32 hex digits of
//!   SHA-256(`"zixly-csrf:" + session token`). A handler that changes anything checks it
//!   ([`PageUser::check_csrf`]) before touching the database; the login form, which has no session
//!   yet, uses a double-submit cookie instead. This is on top of `SameSite=Lax` and the API's
//!   `Origin`/`Sec-Fetch-Site` check.
//! - Data comes from the same `zixly_db` query methods as the API, in a `TenantTx`; charts get
//!   their data embedded in the page as JSON (one request per page, no client-side fetching).
//! - Role-aware: controls a role may not use are not rendered, and the handlers behind them demand
//!   the capability anyway.

mod account;
mod alerts;
mod assets;
mod audit;
mod auth_pages;
mod chart;
mod client_edit;
mod clients;
mod flash;
mod goals;
mod html;
mod imports;
mod integrations;
mod internal;
mod metric_report;
mod metrics;
mod notifications;
mod overview;
pub(crate) mod range;
mod redirect;
mod reports;
mod settings;
mod team;
mod time;

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use zixly_db::queries::dashboard::TenantProfile;
use zixly_db::{DbError, TenantTx};

use crate::auth::{session_cookie, sha256, Auth, Capability, RequestCtx, Viewer};
use crate::error::ApiError;
use crate::AppState;

pub use assets::shipped_js_css_bytes;
use html::{page_layout, Nav, Who};
pub use overview::{overview_reads, OverviewReads};
pub use range::{today_in, RangeParams};
pub(crate) use redirect::local_target;

/// The pages' routes (merged into the application router); their error pages carry the
/// navigation ([`with_navigation`]).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/assets/{file}", get(assets::serve))
        .route(
            "/login",
            get(auth_pages::login_form).post(auth_pages::login_submit),
        )
        .route("/logout", post(auth_pages::logout))
        .route(
            "/accept-invitation",
            get(auth_pages::accept_form).post(auth_pages::accept_submit),
        )
        .route(
            "/password-reset",
            get(auth_pages::request_reset_form).post(auth_pages::request_reset_submit),
        )
        .route(
            "/reset-password",
            get(auth_pages::reset_form).post(auth_pages::reset_submit),
        )
        .route("/", get(overview::page_handler))
        .route("/clients", get(clients::list))
        .route(
            "/clients/new",
            get(client_edit::new_form).post(client_edit::create),
        )
        .route("/clients/{id}", get(clients::detail))
        .route("/clients/{id}/rename", post(client_edit::rename))
        .route(
            "/clients/{id}/delete",
            get(client_edit::confirm_delete).post(client_edit::delete),
        )
        .route("/reports", get(reports::page_handler))
        .route(
            "/reports/profitability.csv",
            get(reports::profitability_csv),
        )
        .route(
            IMPORTS_ROUTE,
            get(imports::page_get)
                .post(imports::page_post)
                // The upload action counts the file against `import_body_limit` itself.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/imports/template/{dataset}", get(imports::template))
        .route("/imports/runs/{id}", get(imports::run_page))
        .route("/integrations", get(integrations::integrations))
        .route(
            "/integrations/{provider}/{action}",
            post(integrations::integration_action),
        )
        .route("/reports/metrics", get(metric_report::page_handler))
        .route("/catalogue", get(metrics::catalogue))
        .route("/alerts", get(alerts::alerts_page))
        .route("/alerts/{id}", get(alerts::alert_page))
        .route("/alerts/rules", post(alerts::create))
        .route("/alerts/rules/{id}/snooze", post(alerts::snooze))
        .route("/alerts/rules/{id}/delete", post(alerts::delete))
        .route("/goals", get(goals::goals_page).post(goals::create))
        .route("/goals/budgets", post(goals::import_budgets))
        .route("/goals/{id}", post(goals::save))
        .route("/goals/{id}/archive", post(goals::archive))
        .route("/catalogue/{name}", post(metrics::save))
        .route("/account", get(account::account))
        .route("/account/password", post(account::change_password))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/team", get(team::team))
        .route("/team/invite", post(team::invite))
        .route("/team/{id}/role", post(team::change_role))
        .route("/team/{id}/deactivate", post(team::deactivate))
        .route("/team/{id}/reactivate", post(team::reactivate))
        .route("/team/{id}/password-reset", post(team::password_reset))
        .route(
            "/team/invitations/{id}/revoke",
            post(team::revoke_invitation),
        )
        .route("/audit", get(audit::audit))
        .route("/notifications", get(notifications::list))
        .route("/notifications/read-all", post(notifications::read_all))
        .route("/notifications/{id}/read", post(notifications::read_one))
        .route(
            settings::DATA_SETTINGS,
            get(settings::data_page).post(settings::save),
        )
        .route(
            "/settings/notifications",
            get(notifications::channels).post(notifications::add_channel),
        )
        .route(
            "/settings/notifications/{id}/test",
            post(notifications::test_channel),
        )
        .route(
            "/settings/notifications/{id}/delete",
            post(notifications::delete_channel),
        )
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            with_navigation,
        ))
}

/// The imports page (the request middleware gives its posts `import_timeout`).
pub const IMPORTS_ROUTE: &str = "/imports";

// ---------------------------------------------------------------------------------------------
// The page extractor

/// The signed-in user of a page, with at least capability `C`.
pub struct PageUser<C: Capability> {
    pub auth: Auth<C>,
    /// The CSRF token of this session (empty for bearer-token requests, which cannot post forms).
    pub csrf: String,
    /// Unread in-app notifications, for the top bar (read once per request by the extractor).
    pub unread: i64,
    _c: PhantomData<C>,
}

/// The CSRF token bound to a session token.
pub(crate) fn csrf_for_session(session_token: &str) -> String {
    let mut input = b"zixly-csrf:".to_vec();
    input.extend_from_slice(session_token.as_bytes());
    hex::encode(&sha256(&input)[..16])
}

/// Compares without an early exit (the token is not a password, but there is no reason to leak).
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl<C: Capability> PageUser<C> {
    /// The same user with a weaker capability (to render a page any role may see).
    pub fn weaken<D: Capability>(&self) -> PageUser<D>
    where
        C: crate::auth::Includes<D>,
    {
        PageUser {
            auth: self.auth.weaken(),
            csrf: self.csrf.clone(),
            unread: self.unread,
            _c: PhantomData,
        }
    }

    /// `Err(403 page)` unless `submitted` is this session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        if same_token(&self.csrf, submitted) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    pub async fn begin(&self) -> Result<TenantTx, PageError> {
        Ok(self.auth.begin().await?)
    }

    /// The top-bar data of the page.
    pub fn who<'a>(&'a self, tenant: &'a TenantProfile) -> Who<'a> {
        let p = self.auth.principal();
        Who {
            email: &p.email,
            role: p.role,
            tenant_name: &tenant.name,
            csrf: &self.csrf,
            unread: self.unread,
        }
    }
}

impl<C: Capability> FromRequestParts<AppState> for PageUser<C> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Auth::<C>::from_request_parts(parts, state).await {
            Ok(auth) => {
                let csrf = session_cookie(&parts.headers)
                    .map(|t| csrf_for_session(&t))
                    .unwrap_or_default();
                let unread = unread_count(&auth).await;
                Ok(PageUser {
                    auth,
                    csrf,
                    unread,
                    _c: PhantomData,
                })
            }
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                // The same check as the login form's: a request path such as `//evil/x` must not
                // become a `next` that leaves the site.
                let next = local_target(parts.uri.path_and_query().map(|p| p.as_str()));
                let target = if parts.method == axum::http::Method::GET && next != "/" {
                    format!("/login?next={}", html::q(&next))
                } else {
                    "/login".to_string()
                };
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(PageError::Api(e).into_response()),
        }
    }
}

/// The top bar's unread count; 0 when it cannot be read (the page itself then reports the
/// database problem, or renders without the count rather than failing for it).
async fn unread_count<C: Capability>(auth: &Auth<C>) -> i64 {
    crate::actions::notifications::unread(auth)
        .await
        .unwrap_or(0)
}

/// A `303 See Other` to `to` (after a form post).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// A form whose only field is the CSRF token (buttons that post an action).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    pub csrf: String,
}

// ---------------------------------------------------------------------------------------------
// Errors as pages

/// What can go wrong while rendering a page; each answers with an HTML page of its status.
#[derive(Debug)]
pub enum PageError {
    NotFound,
    Csrf,
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        if e.status() == StatusCode::NOT_FOUND {
            PageError::NotFound
        } else {
            PageError::Api(e)
        }
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        PageError::from(ApiError::from(e))
    }
}

pub type PageResult = Result<Response, PageError>;

/// Content Security Policy of the pages: scripts and styles from this server only (the chart
/// data is JSON in a non-executable `<script type="application/json">`); inline `style`
/// attributes are allowed for bar widths.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                            connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Marks a page response as final: the API's error-shaping middleware leaves its HTML alone, and
/// it carries the pages' CSP (the API's default forbids every script and style) and referrer
/// policy.
pub fn finish(mut r: Response) -> Response {
    r.extensions_mut().insert(crate::error::ShapedError);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(PAGE_CSP),
    );
    // `no-referrer` (the API's default) makes browsers send `Origin: null` with form posts, which
    // the same-site check of cookie-authenticated writes rightly refuses. `same-origin` still
    // sends no referrer to other sites.
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    r
}

/// What an error page says. The response carries it so that [`with_navigation`] can draw the
/// page again with the signed-in user's navigation: the code that fails (an extractor, a
/// handler's `?`) knows the error but not always who is looking.
#[derive(Debug, Clone)]
struct ErrorPage {
    title: String,
    message: String,
}

fn error_body(status: StatusCode, title: &str, message: &str) -> Markup {
    maud::html! {
        div class="error-page" {
            p class="code" { (status.as_u16()) }
            h1 { (title) }
            p class="muted" { (message) }
            p { a class="button" href="/" { "Back to the overview" } }
        }
    }
}

/// An error page of `status`. Drawn bare here (there may be no signed-in user to show);
/// [`with_navigation`] adds the top bar when the request came from one.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut r = finish(
        (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            Html(page_layout(
                title,
                Nav::None,
                None,
                error_body(status, title, message),
            )),
        )
            .into_response(),
    );
    r.extensions_mut().insert(ErrorPage {
        title: title.to_owned(),
        message: message.to_owned(),
    });
    r
}

/// The section of the navigation a path belongs to (marked current on its error pages).
fn nav_of(path: &str) -> Nav {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "" => Nav::Overview,
        "clients" => Nav::Clients,
        "reports" => Nav::Reports,
        "goals" => Nav::Goals,
        "alerts" => Nav::Alerts,
        "imports" => Nav::Imports,
        "integrations" => Nav::Integrations,
        "team" => Nav::Team,
        "audit" => Nav::Audit,
        _ => Nav::None,
    }
}

/// Middleware of the page routes (and the browsers' fallback): an error page answered to a
/// signed-in browser gets the layout with its navigation, so a 404, 403 or 409 is not a dead end.
/// The caller is authenticated again from the request's cookie (a cached token lookup) and the
/// tenant's name read for the top bar; when either fails the bare page stands.
pub(crate) async fn with_navigation(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers().clone();
    let ctx = request.extensions().get::<RequestCtx>().cloned();
    let nav = nav_of(request.uri().path());
    let response = next.run(request).await;
    let Some(info) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    // Only to identify the caller: a GET, so that the write checks of a POST do not apply twice.
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.headers = headers;
    if let Some(ctx) = ctx {
        parts.extensions.insert(ctx);
    }
    let Ok(auth) = Auth::<Viewer>::from_request_parts(&mut parts, &state).await else {
        return response;
    };
    let unread = unread_count(&auth).await;
    let tenant = match auth.begin().await {
        Ok(tx) => match tx.tenant_profile().await {
            Ok(t) => {
                let _ = tx.commit().await;
                t
            }
            Err(_) => return response,
        },
        Err(_) => return response,
    };
    let csrf = session_cookie(&parts.headers)
        .map(|t| csrf_for_session(&t))
        .unwrap_or_default();
    let principal = auth.principal();
    let who = Who {
        email: &principal.email,
        role: principal.role,
        tenant_name: &tenant.name,
        csrf: &csrf,
        unread,
    };
    let status = response.status();
    let (mut head, _) = response.into_parts();
    head.headers.remove(header::CONTENT_LENGTH);
    let html = page_layout(
        &info.title,
        nav,
        Some(&who),
        error_body(status, &info.title, &info.message),
    );
    Response::from_parts(head, axum::body::Body::from(html))
}

/// What answers a path no route has: a browser asking for a page (a GET accepting HTML, outside
/// `/api/`) gets the 404 page; everything else the API's JSON 404.
pub(crate) async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let is_api = uri.path() == "/api" || uri.path().starts_with("/api/");
    if wants_html && !is_api && (method == Method::GET || method == Method::HEAD) {
        PageError::NotFound.into_response()
    } else {
        ApiError::not_found("route").into_response()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here, or it belongs to an account you cannot see.",
            ),
            PageError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from a current page of your session. Go back, reload the page and try again.",
            ),
            PageError::Api(e) => {
                let status = e.status();
                if status == StatusCode::UNAUTHORIZED {
                    return Redirect::to("/login").into_response();
                }
                let (title, message) = match status {
                    StatusCode::FORBIDDEN => ("Not allowed", "Your role does not allow this. Ask an administrator."),
                    StatusCode::TOO_MANY_REQUESTS => ("Too many attempts", "Wait a little and try again."),
                    StatusCode::CONFLICT => ("Not possible right now", ""),
                    StatusCode::PAYLOAD_TOO_LARGE => ("File too large", ""),
                    s if s.is_client_error() => ("Request not understood", ""),
                    _ => ("Something went wrong", "The error was logged. Try again in a moment."),
                };
                let body = e.body();
                let message = if status.is_client_error() {
                    let m = body.error.message;
                    let mut c = m.chars();
                    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str() + ".").unwrap_or_else(|| message.to_string())
                } else {
                    message.to_string()
                };
                error_page(status, title, &message)
            }
        }
    }
}

/// An HTML 200 response that no cache keeps (pages show tenant data).
/// `1 lead`, `2 leads`, `0 leads`: a count with its noun in the right number.
pub(crate) fn counted(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

pub fn page(html: String) -> Response {
    finish(([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_compared_fully() {
        let a = csrf_for_session("zxs_aaa");
        assert_eq!(a.len(), 32);
        assert_ne!(a, csrf_for_session("zxs_aab"));
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &a[..31]));
        assert!(!same_token("", ""));
    }
}
