//! The one request middleware, wrapped around every route (order matters, so it is one function):
//!
//! 1. request id: the client's `x-request-id` if it is short and plain (so a proxy's id carries
//!    through), else a fresh UUIDv7; put in [`RequestCtx`], in the tracing span every log line of
//!    the request carries, and in the `x-request-id` response header;
//! 2. client address: the peer address, or with `trust_forwarded_for` the last `X-Forwarded-For`
//!    entry (the one our own reverse proxy appended; earlier entries are client-controlled);
//! 3. timeout: a handler that runs longer than `request_timeout` (`import_timeout` for CSV
//!    uploads, API and page) is dropped (its transaction rolls back when the `TenantTx` drops) and the client
//!    gets 503 `timeout`;
//! 4. error shape: any error response not built from `ApiError` (axum's 404/405/413 and extractor
//!    rejections) is rewritten into the JSON error shape, keeping its status and headers;
//! 5. security headers, and `Cache-Control: no-store` on API answers;
//! 6. metrics by method, matched route and status, and one debug-level access log line;
//! 7. before the handler: a NUL in the path or query answers 400 (`crate::input_guard`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::RequestCtx;
use crate::error::{ApiError, ShapedError};
use crate::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub(crate) async fn request_layer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id: Arc<str> = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(Uuid::now_v7().to_string()));
    let client_addr = client_addr(&req, state.config.trust_forwarded_for);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let route_label = route.as_deref().unwrap_or("unmatched").to_string();
    let method = req.method().clone();
    let is_api = req.uri().path().starts_with("/api/");
    req.extensions_mut().insert(RequestCtx {
        request_id: request_id.clone(),
        client_addr,
    });

    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route_label,
        tenant_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let timeout = if route.as_deref() == Some(crate::api::imports::ROUTE)
        || route.as_deref() == Some(crate::pages::IMPORTS_ROUTE)
    {
        state.config.import_timeout
    } else {
        state.config.request_timeout
    };
    // A NUL in a path parameter or the query string: 400 before any extractor or query sees it
    // (the database cannot store it; see `input_guard`).
    let (mut parts, body) = req.into_parts();
    let nul = crate::input_guard::uri_nul(&mut parts).await;
    let req = Request::from_parts(parts, body);
    let mut response = async move {
        if let Some(e) = nul {
            return e.into_response();
        }
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )
                .into_response()
            }
        }
    }
    .instrument(span.clone())
    .await;

    if response.status().is_client_error() || response.status().is_server_error() {
        response = shape_error(response).await;
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    security_headers(headers, state.config.cookie_secure, is_api);

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe(method.as_str(), &route_label, status, elapsed);
    span.in_scope(|| {
        tracing::debug!(
            status,
            latency_us = elapsed.as_micros() as u64,
            "request finished"
        )
    });
    response
}

/// Request ids we accept from clients: 1–64 characters of `[A-Za-z0-9._-]` (nothing that could
/// forge log lines or headers).
fn is_plain_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn client_addr(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn security_headers(headers: &mut HeaderMap, https: bool, is_api: bool) {
    let defaults: [(HeaderName, &'static str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if is_api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Rewrites an error response that did not come from [`ApiError`] into the API error shape.
///
/// Only bodiless and `text/plain` errors are rewritten (that is what axum's own rejections and
/// fallbacks produce); JSON, HTML (the pages) and other bodies are a handler's deliberate answer.
async fn shape_error(response: Response) -> Response {
    if response.extensions().get::<ShapedError>().is_some() {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty() && t.len() <= 300)
        .filter(|_| {
            // Only plain-text bodies are explanations worth keeping (axum's rejections).
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain"))
        });
    let status = parts.status;
    let (code, default_message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept this method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "the request is invalid"),
        s if s.is_server_error() => (
            "internal",
            "internal error; the request id identifies it in the logs",
        ),
        _ => ("bad_request", "the request is invalid"),
    };
    // Never pass a server error's body through: it might hold internals.
    let message = match text {
        Some(t) if !status.is_server_error() => t.trim().to_string(),
        _ => default_message.to_string(),
    };
    let shaped = ApiError::new(status, code, message).into_response();
    let (shaped_parts, shaped_body) = shaped.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in shaped_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.extensions.insert(ShapedError);
    Response::from_parts(parts, Body::new(shaped_body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_accepted() {
        assert!(is_plain_id("abc-123_x.y"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("a b"));
        assert!(!is_plain_id("a\nb"));
        assert!(!is_plain_id(&"a".repeat(65)));
    }
}
