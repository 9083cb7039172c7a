//! `zixly_web` — the HTTP layer (axum). The only crate that knows HTTP, JSON and HTML.
//!
//! Architecture invariant: handlers receive an [`AppState`] holding an [`zixly_db::AppDb`] and
//! nothing that can bypass row-level security; every tenant query runs in a `TenantTx` opened for
//! the authenticated user's tenant ([`auth::Auth::begin`]).
//!
//! Layout:
//! - [`error`]: [`error::ApiError`], the one error shape, and the `ApiJson`/`ApiQuery`/`ApiPath`
//!   extractors whose rejections use it.
//! - [`input_guard`]: a NUL (U+0000) in any input is refused with 400 where requests are read.
//! - [`auth`]: credentials, the `Auth<Viewer|Editor|Admin>` capability extractors, the request
//!   context, the token cache.
//! - [`middleware`]: request id, client address, timeout, error shaping, security headers, metrics.
//! - [`api`]: the `/api/v1` resources, one module per resource (see its docs for how to add one).
//! - [`openapi`]: the generated OpenAPI 3.1 document and the offline docs page.
//! - [`metrics`]: Prometheus exposition. [`mail`]: optional outgoing mail (SMTP).
//! - `actions`: business actions the API and the pages both perform (users: invite, role change,
//!   deactivate, reactivate), one implementation each.
//! - `imports`: the CSV import action of the API and the page (spool, idle timeout, caps).

pub(crate) mod actions;
pub mod api;
pub mod auth;
pub mod error;
pub(crate) mod imports;
pub mod input_guard;
/// Outgoing mail lives in `zixly_alerts` (alert e-mails are sent by the worker, which has no web
/// crate); re-exported so the invitation and reset paths keep their `crate::mail` path.
pub use zixly_alerts::mail;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zixly_db::AppDb;

use crate::auth::TokenCache;
use crate::error::ApiError;
use crate::mail::Mailer;
use crate::metrics::Metrics;

/// Failed-login throttling limits (see `migrations/0002_auth.sql`).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per account (email as typed) from one client address within the window before
    /// that account is locked for that address (the tight limit).
    pub account_address_limit: i32,
    /// Failures per account from all addresses together before it is locked everywhere: a much
    /// higher ceiling, so that one attacking address cannot lock the real user out.
    pub account_limit: i32,
    /// Failures per client address within the window before it is locked.
    pub address_limit: i32,
    pub window: Duration,
    /// First lock; doubles with each further failure, at most one hour.
    pub lock: Duration,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where users reach Zixly (links in invitations and resets; `https` turns on Secure cookies
    /// and HSTS).
    pub public_url: url::Url,
    /// Set the session cookie's `Secure` attribute (default: public URL is https).
    pub cookie_secure: bool,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a reverse proxy only).
    pub trust_forwarded_for: bool,
    pub session_ttl: Duration,
    pub invitation_ttl: Duration,
    pub password_reset_ttl: Duration,
    /// How long a validated token is trusted without asking the database (see [`auth`]).
    pub token_cache_ttl: Duration,
    pub request_timeout: Duration,
    /// Default maximum request body, in bytes.
    pub body_limit: usize,
    /// Maximum size of the file of a CSV upload (`POST /api/v1/imports` and the `/imports`
    /// page), in bytes (default 256 MiB). The file is spooled to a temporary file, so this bounds
    /// time and disk, not memory.
    pub import_body_limit: usize,
    /// Longest wait for the next piece of an upload's body before 408 `upload_stalled` (default
    /// 30 s).
    pub import_idle_timeout: Duration,
    /// Imports (API and page) one tenant may run at once (default 2); over it: 429.
    pub imports_per_tenant: usize,
    /// Imports the server parses and loads at once, all tenants together (default 4).
    pub imports_total: usize,
    /// Time limit of a CSV upload (`POST /api/v1/imports`) instead of `request_timeout`
    /// (default 15 minutes).
    pub import_timeout: Duration,
    pub throttle: ThrottleConfig,
    /// The bearer token `/metrics` requires (`ZIXLY_METRICS_TOKEN`). Without one the public
    /// listener does not serve `/metrics` (404): use [`serve_metrics`] on a separate address
    /// (`ZIXLY_METRICS_LISTEN`) or set a token. Request counts and pool state are operational
    /// detail an anonymous caller need not see.
    pub metrics_token: Option<zixly_crypto::SecretString>,
}

impl WebConfig {
    pub fn new(public_url: &str) -> Result<Self, url::ParseError> {
        let public_url = url::Url::parse(public_url)?;
        Ok(WebConfig {
            cookie_secure: public_url.scheme() == "https",
            public_url,
            trust_forwarded_for: false,
            session_ttl: Duration::from_secs(12 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            password_reset_ttl: Duration::from_secs(3600),
            token_cache_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_limit: 1024 * 1024,
            import_body_limit: 256 * 1024 * 1024,
            import_timeout: Duration::from_secs(15 * 60),
            import_idle_timeout: Duration::from_secs(30),
            imports_per_tenant: 2,
            imports_total: 4,
            throttle: ThrottleConfig {
                account_address_limit: 5,
                account_limit: 100,
                address_limit: 50,
                window: Duration::from_secs(15 * 60),
                lock: Duration::from_secs(60),
            },
            metrics_token: None,
        })
    }

    /// `public_url` joined with `path_and_fragment` (e.g. `accept-invitation#token=...`).
    pub fn link(&self, path_and_fragment: &str) -> String {
        format!(
            "{}/{}",
            self.public_url.as_str().trim_end_matches('/'),
            path_and_fragment.trim_start_matches('/')
        )
    }
}

/// Shared, cheaply cloneable state of every request.
#[derive(Clone)]
pub struct AppState {
    pub db: AppDb,
    pub config: Arc<WebConfig>,
    /// Outgoing mail; `None` = links are shown to the ADMIN instead (see [`mail`]).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Keyring, provider configurations and HTTP client for the integration routes; `None` (no
    /// encryption key configured) = those routes answer 503 (see [`api::integrations`]).
    pub integrations: Option<zixly_sync::engine::SyncEngine>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) token_cache: Arc<TokenCache>,
    /// Import slots per tenant and in all (see `imports`).
    pub(crate) imports: Arc<imports::ImportSlots>,
    /// Uploads kept after "Check file" for "Load this file" (see `imports::CheckedUploads`).
    pub(crate) checked_uploads: Arc<imports::CheckedUploads>,
}

impl AppState {
    pub fn new(db: AppDb, config: WebConfig) -> Self {
        AppState {
            db,
            metrics: Arc::new(Metrics::default()),
            token_cache: Arc::new(TokenCache::new(config.token_cache_ttl)),
            imports: Arc::new(imports::ImportSlots::new(
                config.imports_per_tenant,
                config.imports_total,
                imports::RUN_SLOT_WAIT,
            )),
            checked_uploads: Arc::default(),
            config: Arc::new(config),
            mailer: None,
            integrations: None,
        }
    }

    pub fn with_integrations(mut self, engine: zixly_sync::engine::SyncEngine) -> Self {
        self.integrations = Some(engine);
        self
    }

    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Password hashes login has verified so far (`zixly_password_verifications_total`).
    pub fn password_verifications(&self) -> u64 {
        self.metrics.password_verifications()
    }
}

/// The documented routes: operations routes and `/api/v1`.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::BaseDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_endpoint))
        .nest("/api/v1", api::router())
}

/// The OpenAPI document of every documented route (what `GET /api/openapi.json` serves).
pub fn openapi_document() -> serde_json::Value {
    openapi::complete(documented_routes().split_for_parts().1)
}

pub fn router(state: AppState) -> Router {
    let (documented, openapi) = documented_routes().split_for_parts();
    let openapi = openapi::complete(openapi);
    let openapi_json: Arc<str> = Arc::from(openapi.to_string());
    documented
        // Undocumented on purpose: the document itself and its viewer.
        .route(
            "/api/openapi.json",
            get(move || {
                let body = openapi_json.clone();
                async move {
                    let mut r = body.to_string().into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
            }),
        )
        .route("/api/docs", get(openapi::docs_page))
        .route("/api/docs/docs.js", get(openapi::docs_script))
        .route("/api/docs/docs.css", get(openapi::docs_style))
        // The pages' router holds the fallback: HTML 404 for browsers, the API's JSON otherwise.
        .merge(pages::router(&state))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_layer,
        ))
        .with_state(state)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process is up", body = serde_json::Value)))]
async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the database answers and the schema is at this binary's version.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = serde_json::Value),
              (status = 503, description = "Not ready", body = serde_json::Value)))]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.check_ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": e.to_string()})),
            )
                .into_response();
            // The body is the readiness report, not an API error: leave it as it is.
            r.extensions_mut().insert(error::ShapedError);
            r
        }
    }
}

/// Prometheus metrics (text exposition format 0.0.4)
///
/// Needs `Authorization: Bearer <ZIXLY_METRICS_TOKEN>`; without a configured token this listener
/// does not serve it (404; see `ZIXLY_METRICS_LISTEN` for a separate metrics address).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, description = "Missing or wrong metrics token", body = error::ErrorBody),
              (status = 404, description = "No metrics token configured: not served here", body = error::ErrorBody)))]
async fn metrics_endpoint(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(token) = &state.config.metrics_token else {
        return ApiError::not_found("route").into_response();
    };
    if !metrics_token_matches(&headers, token) {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the metrics token is required (Authorization: Bearer ...)",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    metrics_text(&state)
}

/// Compares hashes of the presented and the configured token in constant time (the token's length
/// is not revealed either).
fn metrics_token_matches(
    headers: &axum::http::HeaderMap,
    token: &zixly_crypto::SecretString,
) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (
        auth::sha256(given.trim().as_bytes()),
        auth::sha256(token.expose().as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn metrics_text(state: &AppState) -> Response {
    let text = state.metrics.render(state.db.pool_status());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The router of the separate metrics listener: `/metrics` and nothing else. Its address is the
/// access control (`ZIXLY_METRICS_LISTEN`, e.g. a loopback or private address for the scraper);
/// a configured token is required here too.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(state): State<AppState>, headers: axum::http::HeaderMap| async move {
                    match &state.config.metrics_token {
                        Some(t) if !metrics_token_matches(&headers, t) => {
                            StatusCode::UNAUTHORIZED.into_response()
                        }
                        _ => metrics_text(&state),
                    }
                },
            ),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// Serves [`metrics_router`] until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
