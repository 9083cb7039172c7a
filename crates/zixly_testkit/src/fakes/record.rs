//! Request recording shared by every fake: [`super::serve`] wraps each fake's router in
//! [`layer`], so every request a fake answers (method, path, query pairs, headers, form or JSON
//! body, and the JSON answer) is kept in a list keyed by the fake's base URL. Contract tests read
//! it with [`recorded`] and hand it to `crate::contracts::check_requests` / `check_responses`.
//!
//! Bounded on purpose (benchmarks serve hundreds of thousands of requests): at most
//! [`MAX_REQUESTS`] requests are kept per fake, and response bodies only while their total stays
//! under [`MAX_BODY_BYTES`]; what is dropped is counted, so a test can tell it saw only part.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

/// Requests kept per fake; later ones are only counted in [`Recording::dropped`].
pub const MAX_REQUESTS: usize = 20_000;
/// Response bytes kept per fake; later bodies are recorded as `None`.
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest request or response body the recorder buffers (the fakes' answers are far smaller).
const MAX_BUFFER: usize = 256 << 20;

/// One request a fake answered.
#[derive(Debug, Clone, Default)]
pub struct RecordedRequest {
    pub method: String,
    /// Path only, percent-encoded as sent (`/crm/v3/objects/deals`).
    pub path: String,
    /// Query pairs, decoded, in order (a repeated name appears several times).
    pub query: Vec<(String, String)>,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Decoded pairs of an `application/x-www-form-urlencoded` body (OAuth token requests).
    pub form: Vec<(String, String)>,
    /// A JSON request body (HubSpot search).
    pub json_body: Option<Value>,
    pub status: u16,
    /// The JSON answer, when the fake answered JSON and the byte budget allowed keeping it.
    pub response: Option<Value>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_values(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The OAuth scopes this request asks for: the `scope` query parameter (authorize) or form
    /// field (token), split on spaces, `+` and commas; `None` when there is no `scope`.
    pub fn scopes(&self) -> Option<Vec<String>> {
        let raw = self
            .query
            .iter()
            .chain(self.form.iter())
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v)?;
        Some(
            raw.split([' ', '+', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }
}

/// Everything one fake recorded.
#[derive(Debug, Default)]
pub struct Recording {
    pub requests: Vec<RecordedRequest>,
    /// Requests answered but not kept (past [`MAX_REQUESTS`]).
    pub dropped: u64,
    body_bytes: usize,
}

type Shared = Arc<Mutex<Recording>>;

static REGISTRY: LazyLock<Mutex<HashMap<String, Shared>>> = LazyLock::new(Default::default);

/// A new, empty recording registered under the fake's base URL.
pub(crate) fn register(base_url: &str) -> Shared {
    let rec = Shared::default();
    REGISTRY
        .lock()
        .unwrap()
        .insert(base_url.to_string(), rec.clone());
    rec
}

/// The requests the fake serving `base_url` has answered so far, oldest first.
pub fn recorded(base_url: &str) -> Vec<RecordedRequest> {
    recording(base_url).lock().unwrap().requests.clone()
}

/// How many requests the fake answered without keeping them (see [`MAX_REQUESTS`]).
pub fn dropped(base_url: &str) -> u64 {
    recording(base_url).lock().unwrap().dropped
}

/// Forgets what the fake serving `base_url` recorded (e.g. after a test's setup calls).
pub fn clear_recorded(base_url: &str) {
    let rec = recording(base_url);
    let mut r = rec.lock().unwrap();
    r.requests.clear();
    r.dropped = 0;
    r.body_bytes = 0;
}

fn recording(base_url: &str) -> Shared {
    REGISTRY
        .lock()
        .unwrap()
        .get(base_url.trim_end_matches('/'))
        .cloned()
        .unwrap_or_else(|| panic!("no fake is serving {base_url}"))
}

fn pairs(encoded: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn is_content_type(headers: &axum::http::HeaderMap, wanted: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(wanted))
}

/// The middleware: buffers the request body (to read a form or JSON body), passes the request
/// on unchanged, then buffers a JSON answer to keep a parsed copy.
pub(crate) async fn layer(State(rec): State<Shared>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BUFFER).await {
        Ok(b) => b,
        Err(e) => {
            return Response::builder()
                .status(413)
                .body(Body::from(format!("fake recorder: request body: {e}")))
                .unwrap()
        }
    };
    let mut entry = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(pairs).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        ..Default::default()
    };
    if is_content_type(&parts.headers, "application/x-www-form-urlencoded") {
        entry.form = pairs(&String::from_utf8_lossy(&bytes));
    } else if is_content_type(&parts.headers, "application/json") {
        entry.json_body = serde_json::from_slice(&bytes).ok();
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    entry.status = response.status().as_u16();
    let json = is_content_type(response.headers(), "application/json");
    let keep = {
        let r = rec.lock().unwrap();
        r.requests.len() < MAX_REQUESTS && r.body_bytes < MAX_BODY_BYTES
    };
    let response = if json && keep {
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BUFFER).await {
            Ok(b) => b,
            Err(e) => {
                return Response::builder()
                    .status(500)
                    .body(Body::from(format!("fake recorder: response body: {e}")))
                    .unwrap()
            }
        };
        entry.response = serde_json::from_slice(&bytes).ok();
        rec.lock().unwrap().body_bytes += bytes.len();
        Response::from_parts(parts, Body::from(bytes))
    } else {
        response
    };
    let mut r = rec.lock().unwrap();
    if r.requests.len() < MAX_REQUESTS {
        r.requests.push(entry);
    } else {
        r.dropped += 1;
    }
    response
}
