//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations as the
//! routes are registered (`utoipa_axum::routes!`), so a route cannot be served without being
//! documented. Served at `GET /api/openapi.json`; `GET /api/docs` is a small self-contained page
//! (no CDN, works offline) that renders it.
//!
//! Roles are documented as OpenAPI 3.1 security-requirement "role names": a route needing ADMIN
//! declares `security(("bearer" = ["ADMIN"]), ("cookie" = ["ADMIN"]))`. Public routes declare
//! `security(())`. The integration tests check the document against the route table.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zixly API",
        description = "Multi-tenant business KPIs. Authenticate with `Authorization: Bearer <token>` (a personal API \
token or the token returned by login) or the session cookie set by login. Errors share one shape: \
`{\"error\": {\"code\", \"message\", \"details\": [{\"field\"|\"line\", \"reason\"}]}}`. Lists answer \
`{\"data\": [...], \"next_cursor\": ...}`; pass `next_cursor` back as `cursor` for the next page.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorObject, crate::error::ErrorDetail)),
    tags(
        (name = "auth", description = "Login, logout, invitations and password resets"),
        (name = "me", description = "The caller's own account and personal API tokens"),
        (name = "users", description = "Users of the tenant (ADMIN)"),
        (name = "audit", description = "The audit log (ADMIN)"),
        (name = "integrations", description = "Provider connections over OAuth2, settings, manual syncs (ADMIN)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct BaseDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token (from login) or a personal API token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The session cookie set by login (browsers)",
            ))),
        );
    }
}

pub(crate) async fn docs_page() -> Response {
    let mut r = DOCS_HTML.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

pub(crate) async fn docs_script() -> Response {
    let mut r = DOCS_JS.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

pub(crate) async fn docs_style() -> Response {
    let mut r = DOCS_CSS.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

const DOCS_HTML: &str = include_str!("docs/index.html");
const DOCS_JS: &str = include_str!("docs/docs.js");
const DOCS_CSS: &str = include_str!("docs/docs.css");
