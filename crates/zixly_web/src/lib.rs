//! `zixly_web` — the HTTP layer (axum). The only crate that knows HTTP, JSON and HTML.
//!
//! Architecture invariant: handlers receive an [`AppState`] holding an [`zixly_db::AppDb`] and
//! nothing that can bypass row-level security; every tenant query runs in a `TenantTx` opened for
//! the authenticated user's tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use zixly_db::AppDb;

/// Shared, cheaply cloneable state of every request.
#[derive(Clone)]
pub struct AppState {
    pub db: AppDb,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state)
}

/// Liveness: the process is up and serving HTTP.
async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the database answers and the schema is at this binary's version.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.check_ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": e.to_string()})))
                .into_response()
        }
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
