//! Page forms that change something hand the change to the REST API's own handler, in process:
//! the page checks its CSRF token, then calls `/api/v1/...` through the API router with the
//! caller's session cookie. Authentication, role checks, throttling, validation and audit are
//! therefore the API's, not a second copy of them — a page can show fewer controls, never allow
//! more.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::RequestCtx;
use crate::AppState;

/// What the API answered: status, the `Set-Cookie` headers to pass on, and the JSON body.
pub struct ApiAnswer {
    pub status: StatusCode,
    pub set_cookies: Vec<HeaderValue>,
    pub body: Value,
}

impl ApiAnswer {
    /// The error message of an error answer (`error.message`), or a generic one.
    pub fn message(&self) -> String {
        let msg = self
            .body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the request failed");
        let details: Vec<&str> = self
            .body
            .pointer("/error/details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("reason")?.as_str())
            .collect();
        if details.is_empty() {
            capitalise(msg)
        } else {
            format!("{}: {}", capitalise(msg), details.join("; "))
        }
    }

    /// Copies the API's cookies onto a page response.
    pub fn pass_cookies(&self, response: &mut Response) {
        for c in &self.set_cookies {
            response.headers_mut().append(header::SET_COOKIE, c.clone());
        }
    }
}

pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Calls `method path` of the API (`path` relative to `/api/v1`) with a JSON body, as the caller
/// whose cookies are in `headers`.
pub async fn call(
    state: &AppState,
    ctx: &RequestCtx,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> ApiAnswer {
    let (router, _) = crate::api::router().split_for_parts();
    let router = router.with_state(state.clone());
    let mut req = Request::builder().method(method).uri(path);
    if let Some(cookie) = headers.get(header::COOKIE) {
        req = req.header(header::COOKIE, cookie.clone());
    }
    if let Some(host) = headers.get(header::HOST) {
        req = req.header(header::HOST, host.clone());
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    let mut req = match req {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "building an internal API request");
            return ApiAnswer {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                set_cookies: vec![],
                body: Value::Null,
            };
        }
    };
    req.extensions_mut().insert(ctx.clone());
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    ApiAnswer {
        status,
        set_cookies,
        body,
    }
}
