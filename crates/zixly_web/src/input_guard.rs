//! Input the database cannot store, refused where requests are read: a NUL character (U+0000).
//!
//! PostgreSQL `text` and `jsonb` cannot hold U+0000, so a NUL that reaches a query fails there
//! (SQLSTATE 22021 / 22P05) — as a 500 unless something stops it first. It is stopped at the
//! boundary, once for every kind of input:
//!
//! - the URI (path parameters and query string) of every request, API and pages alike, in the
//!   request middleware ([`uri_nul`]);
//! - JSON bodies in [`ApiJson`](crate::error::ApiJson) ([`check_json_body`], which also refuses
//!   bodies that are not a JSON object: every JSON body of this API is one);
//! - form bodies of the pages in [`Form`], which the pages use instead of `axum::Form`;
//! - CSV files in the domain's row parser (`zixly_domain::ingest`: a line error on the column).
//!
//! Each answers 400 `invalid_character` naming the field. `From<DbError> for ApiError` maps the
//! two SQLSTATEs to the same 400 as a last defence for a path this list missed.
//!
//! The checks cost one scan of bytes that are read anyway (`%00` in a URI or form body, `\u0000`
//! in JSON); only an input that contains the pattern is decoded to find the field.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorDetail};

/// The code of the answer (400).
pub const CODE: &str = "invalid_character";

/// 400 naming the `field` (JSON path, query or path parameter, form field) holding a NUL.
pub fn nul_error(field: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        CODE,
        format!("`{field}` contains a NUL character (U+0000), which text cannot hold"),
    )
    .with_details(vec![ErrorDetail::field(
        field,
        "contains a NUL character (U+0000)",
    )])
}

/// A field name for an error message: a NUL in a key is shown as `\0`, never sent back raw.
fn printable(s: &str) -> String {
    s.replace('\0', "\\0")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first key (or, for a NUL in a key, that key) of `application/x-www-form-urlencoded`
/// text — a query string or a form body — whose name or value decodes to a NUL.
pub fn urlencoded_nul_field(raw: &[u8]) -> Option<String> {
    if !contains(raw, b"%00") {
        return None;
    }
    url::form_urlencoded::parse(raw)
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| printable(&k))
}

/// Checks the path parameters and the query string of a request (the middleware calls it before
/// the handler runs, so that no extractor ever sees a NUL).
pub async fn uri_nul(parts: &mut axum::http::request::Parts) -> Option<ApiError> {
    if contains(parts.uri.path().as_bytes(), b"%00") {
        // Path parameters are percent-decoded by the router; name the one that holds the NUL.
        let field = match RawPathParams::from_request_parts(parts, &()).await {
            Ok(params) => params
                .iter()
                .find(|(_, v)| v.contains('\0'))
                .map(|(k, _)| k.to_string()),
            Err(_) => None,
        };
        // A NUL in a literal segment matches no route; say so rather than 404 a client that
        // sent a NUL.
        return Some(nul_error(field.as_deref().unwrap_or("path")));
    }
    let query = parts.uri.query()?;
    urlencoded_nul_field(query.as_bytes()).map(|f| nul_error(&f))
}

/// Where in a JSON value the first string (or key) with a NUL is, as a path like
/// `rows[2].revenue`.
fn json_nul_path(v: &Value, path: &mut String) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if json_nul_path(item, path) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&printable(k));
                if k.contains('\0') || json_nul_path(item, path) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        _ => false,
    }
}

/// What a JSON body's first byte says it is, when not an object.
fn non_object_kind(body: &[u8]) -> Option<&'static str> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    Some(match first {
        b'{' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => return None, // not JSON at all: the parser's syntax error says where
    })
}

/// Checks a JSON body before it is deserialized: a well-formed body that is not an object is 422
/// (serde would otherwise read a struct from an array, positionally); a string holding a NUL is
/// 400 naming its path. Malformed JSON passes through to the parser, which reports where.
pub fn check_json_body(body: &[u8]) -> Result<(), ApiError> {
    if let Some(kind) = non_object_kind(body) {
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            return Err(ApiError::validation(vec![ErrorDetail {
                reason: format!("the body must be a JSON object, not {kind}"),
                ..Default::default()
            }]));
        }
        return Ok(());
    }
    // `\u0000` is the only way to write a NUL in JSON (a raw control byte is a syntax error).
    if !contains(body, b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let mut path = String::new();
    if json_nul_path(&value, &mut path) {
        return Err(nul_error(if path.is_empty() { "body" } else { &path }));
    }
    Ok(()) // an escaped backslash followed by `u0000`: no NUL
}

/// `axum::Form` for the pages, refusing a NUL in any field (400 naming it) before deserializing.
/// Other rejections are axum's own.
pub struct Form<T>(pub T);

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // GET and HEAD forms are the query string, which the middleware already checked.
        if req.method() == Method::GET || req.method() == Method::HEAD || !is_form(req.headers()) {
            return axum::Form::<T>::from_request(req, state)
                .await
                .map(|axum::Form(v)| Form(v))
                .map_err(IntoResponse::into_response);
        }
        let method = req.method().clone();
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| e.into_response())?;
        if let Some(field) = urlencoded_nul_field(&bytes) {
            return Err(nul_error(&field).into_response());
        }
        let mut again = Request::new(Body::from(bytes));
        *again.method_mut() = method;
        if let Some(ct) = content_type {
            again.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        axum::Form::<T>::from_request(again, state)
            .await
            .map(|axum::Form(v)| Form(v))
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nuls_are_found_with_their_path() {
        let err =
            check_json_body(br#"{"rows": [{"a": "x"}, {"revenue": "1\u0000"}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.body().error.details[0].field.as_deref(),
            Some("rows[1].revenue")
        );
        let err = check_json_body(br#"{"settings": {"k\u0000": 1}}"#).unwrap_err();
        assert_eq!(
            err.body().error.details[0].field.as_deref(),
            Some("settings.k\\0")
        );
        // An escaped backslash before `u0000` is no NUL.
        assert!(check_json_body(br#"{"a": "\\u0000"}"#).is_ok());
        assert!(check_json_body(br#"{"a": "plain"}"#).is_ok());
        // Malformed JSON is the parser's to report.
        assert!(check_json_body(b"{\"a\": \"\\u0000").is_ok());
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        for body in [
            &b"[]"[..],
            b" [\"a@b\", \"pw\"]",
            b"\"x\"",
            b"1",
            b"-1",
            b"true",
            b"null",
        ] {
            let err = check_json_body(body).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
        }
        // Not JSON: left to the parser (400 with its position).
        assert!(check_json_body(b"[oops").is_ok());
        assert!(check_json_body(b"").is_ok());
    }

    #[test]
    fn urlencoded_nuls_name_their_key() {
        assert_eq!(
            urlencoded_nul_field(b"a=1&email=x%00y").as_deref(),
            Some("email")
        );
        assert_eq!(urlencoded_nul_field(b"k%00=1").as_deref(), Some("k\\0"));
        assert_eq!(urlencoded_nul_field(b"a=%2500"), None);
        assert_eq!(urlencoded_nul_field(b"a=1"), None);
    }
}
