//! Sending requests and classifying answers.
//!
//! | answer | class |
//! |---|---|
//! | 429 (any provider), 403 with MYOB's `RateLimitError` | `RateLimited` (`Retry-After` seconds, default 60) |
//! | 401 | `Unauthorized` (the caller refreshes once, then gives up) |
//! | 5xx, timeouts, connection errors | `Transient` |
//! | other 4xx, unparseable bodies | `Permanent` |

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{ConnectorError, ConnectorResult};

/// Default wait when a 429 carries no usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// At most this much of an error body is quoted (error bodies of these APIs carry no secrets, but
/// they can be large).
const BODY_EXCERPT: usize = 200;

fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(BODY_EXCERPT).collect();
    if body.chars().count() > BODY_EXCERPT {
        s.push('…');
    }
    s
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// How far before the provider's clock at the start of a read the next incremental read begins:
/// providers' servers disagree a little about the time, and re-reading is harmless (upserts).
pub const CURSOR_SAFETY: Duration = Duration::from_secs(60);

/// The answer's `Date` header (the provider's clock), RFC 7231 `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn server_date(headers: &reqwest::header::HeaderMap) -> Option<chrono::DateTime<chrono::Utc>> {
    let v = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The cursor for the next incremental read of a read that started at `started` (provider
/// clock): [`CURSOR_SAFETY`] earlier, and never behind the cursor this read began from.
pub fn next_cursor(
    started: chrono::DateTime<chrono::Utc>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> chrono::DateTime<chrono::Utc> {
    let at = started - chrono::Duration::from_std(CURSOR_SAFETY).expect("small");
    since.map_or(at, |s| at.max(s))
}

/// Classifies a transport error (no status): timeouts and connection failures are transient.
pub fn transport_error(e: reqwest::Error) -> ConnectorError {
    // reqwest's Display includes the URL; our URLs carry no secrets (tokens go in headers/bodies).
    if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::Transient(format!("{}", e.without_url()))
    } else {
        ConnectorError::Permanent(format!("{}", e.without_url()))
    }
}

/// Classifies a non-success answer.
pub fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ConnectorError {
    let code = status.as_u16();
    if code == 429 {
        return ConnectorError::RateLimited {
            retry_after: retry_after(headers),
        };
    }
    if code == 403 && body.contains("RateLimitError") {
        return ConnectorError::RateLimited {
            retry_after: retry_after(headers),
        };
    }
    if code == 401 {
        return ConnectorError::Unauthorized(format!("HTTP 401: {}", excerpt(body)));
    }
    if status.is_server_error() || code == 408 {
        return ConnectorError::Transient(format!("HTTP {code}: {}", excerpt(body)));
    }
    ConnectorError::Permanent(format!("HTTP {code}: {}", excerpt(body)))
}

/// Sends `request` and parses a successful JSON answer; classifies anything else.
pub async fn send_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> ConnectorResult<T> {
    let (status, headers, body) = send_raw(request).await?;
    if !status.is_success() {
        return Err(classify(status, &headers, &body));
    }
    serde_json::from_str(&body)
        .map_err(|e| ConnectorError::Permanent(format!("unexpected response shape: {e}")))
}

/// Sends and returns status, headers and body text (for callers that handle 304 and the like).
pub async fn send_raw(
    request: reqwest::RequestBuilder,
) -> ConnectorResult<(reqwest::StatusCode, reqwest::header::HeaderMap, String)> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport_error)?;
    Ok((status, headers, body))
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn classification() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, ""),
            ConnectorError::RateLimited {
                retry_after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), ""),
            ConnectorError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        let myob =
            r#"{"Name":"RateLimitError","Message":"API key has exceeded the daily rate limit"}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, myob),
            ConnectorError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &h, "{}"),
            ConnectorError::Permanent(_)
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &h, "{}"),
            ConnectorError::Unauthorized(_)
        ));
        assert!(matches!(
            classify(StatusCode::GATEWAY_TIMEOUT, &h, ""),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &h, ""),
            ConnectorError::Permanent(_)
        ));
        let long = "x".repeat(1000);
        let ConnectorError::Permanent(m) = classify(StatusCode::BAD_REQUEST, &h, &long) else {
            panic!()
        };
        assert!(m.len() < 300);
    }
}
