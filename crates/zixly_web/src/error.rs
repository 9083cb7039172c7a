//! The one error type of the HTTP layer and the one JSON shape every error answers with:
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "the request is invalid",
//!            "details": [{"field": "email", "reason": "must be an email address"}]}}
//! ```
//!
//! Policy (what a client may learn):
//! - `code` is a stable, machine-readable snake_case string; `message` is for people.
//! - Validation errors (422) carry one detail per problem with `field` (JSON field or query
//!   parameter), or `line`/`column` for imported files, and a `reason`.
//! - Database errors are classified: not found → 404, unique violation → 409, check violation →
//!   422, foreign-key violation → 422. Everything else is logged with its full chain and answered
//!   500 `internal` with no detail: no SQL, constraint internals, stack or connection strings ever
//!   reach a response. Constraint names are mapped to fields through [`constraint_detail`].
//! - Another tenant's ids are indistinguishable from unknown ids (RLS hides them): 404, never 403.
//!   403 means "you are authenticated but your role is too low", which reveals nothing about data.
//! - Secrets (passwords, tokens, hashes) never appear in an error.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;
use zixly_db::DbError;

/// One problem in a request. Exactly one locator is usually set.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// JSON field or query parameter, dotted for nesting (`owner.email`); with `row`, the field
    /// of that row (`revenue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based position of a row in a batch body's `rows` array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// 1-based line of an uploaded file (header = line 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Column name of an uploaded file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

impl ErrorDetail {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ErrorDetail {
            field: Some(field.into()),
            reason: reason.into(),
            ..Default::default()
        }
    }

    pub fn line(line: u64, column: Option<String>, reason: impl Into<String>) -> Self {
        ErrorDetail {
            line: Some(line),
            column,
            reason: reason.into(),
            ..Default::default()
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`, `unauthenticated`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

/// An error answer. Build it with the constructors; `?` converts [`DbError`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<ErrorDetail>,
    retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: secs` (at least 1).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.details = details;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400: the request cannot be understood (malformed JSON, bad token format...).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422 with one detail per invalid field.
    pub fn validation(details: Vec<ErrorDetail>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request is invalid",
        )
        .with_details(details)
    }

    /// 422 for a single field.
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> Self {
        Self::validation(vec![ErrorDetail::field(field, reason)])
    }

    /// 401: no credentials, or credentials that are unknown, expired or revoked.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication required: a valid bearer token or session",
        )
    }

    /// 403: authenticated, but the role is too low for this route.
    pub fn forbidden(required: zixly_domain::Role) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this action requires the {required} role"),
        )
    }

    /// 404 for `what` (also for ids of another tenant: no existence leak).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many attempts; retry later",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 500 without detail; log the cause before calling this (the `From<DbError>` does).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the logs",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry later",
        )
    }

    /// The JSON body, for callers that need it outside a response (tests, docs).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code.to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

/// Field and reason for a named constraint, so that a violation reads as a validation error on
/// the right field. Extend this table when a migration adds a constraint users can trip.
pub fn constraint_detail(constraint: &str) -> Option<(&'static str, &'static str)> {
    Some(match constraint {
        "users_tenant_email_key" => ("email", "a user with this email already exists"),
        "users_email_lowercase" | "invitations_email_lowercase" => {
            ("email", "must be an email address")
        }
        "invitations_pending_email_key" => ("email", "an invitation for this email is pending"),
        "auth_tokens_personal_named" => ("name", "must not be blank"),
        "client_kpis_client_id_key" => ("client_id", "a client with this client_id already exists"),
        "client_kpis_client_id_not_blank" => ("client_id", "must not be blank"),
        "client_kpis_currency_iso4217"
        | "financials_currency_iso4217"
        | "lead_events_currency_iso4217" => ("currency", "must be an ISO 4217 code"),
        "financials_net_profit_derived" => ("net_profit", "must equal revenue - expenses"),
        "custom_metrics_name_not_blank" => ("metric_name", "must not be blank"),
        "integrations_provider_key" => ("provider", "this provider is already connected"),
        _ => return None,
    })
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match &e {
            DbError::NotFound(what) => ApiError::not_found(what),
            DbError::UniqueViolation { constraint, .. } => {
                let details = constraint_detail(constraint)
                    .map(|(f, r)| vec![ErrorDetail::field(f, r)])
                    .unwrap_or_default();
                ApiError::conflict("conflict", "a conflicting record already exists")
                    .with_details(details)
            }
            DbError::CheckViolation { constraint, .. } => {
                let detail = constraint_detail(constraint)
                    .map(|(f, r)| ErrorDetail::field(f, r))
                    .unwrap_or_else(|| ErrorDetail {
                        reason: "a value is out of range".into(),
                        ..Default::default()
                    });
                ApiError::validation(vec![detail])
            }
            _ if e.is_unavailable() => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::unavailable()
            }
            // 22021 character_not_in_repertoire (a NUL in text), 22P05 untranslatable_character
            // (`\u0000` in jsonb): input the boundary checks (`input_guard`) should have refused.
            _ if matches!(e.sql_state().map(|s| s.code()), Some("22021" | "22P05")) => {
                tracing::warn!(error = %e, "text the database cannot store got past the input checks");
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    crate::input_guard::CODE,
                    "a text value contains a character the database cannot store (NUL, U+0000)",
                )
            }
            // 23503 foreign_key_violation
            _ if e.sql_state().map(|s| s.code()) == Some("23503") => {
                ApiError::validation(vec![ErrorDetail {
                    reason: "refers to a record that does not exist".into(),
                    ..Default::default()
                }])
            }
            _ => {
                tracing::error!(error = %e, error.debug = ?e, "database error");
                ApiError::internal()
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let status = self.status;
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"zixly\""),
            );
        }
        // Tells the error-shape middleware this body already has the shape.
        response.extensions_mut().insert(ShapedError);
        response
    }
}

/// Marker on responses whose body is already an [`ErrorBody`].
#[derive(Clone, Copy)]
pub(crate) struct ShapedError;

fn rejection_detail(text: String) -> String {
    // serde messages name the field and the expectation; keep them, they hold no secrets.
    text.trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .to_string()
}

/// `Json<T>` that answers malformed bodies with the API error shape. Before deserializing, the
/// body goes through [`crate::input_guard::check_json_body`]: a body that is not a JSON object is
/// 422 (serde would read a struct from an array), a NUL in any string 400 naming its path.
pub struct ApiJson<T>(pub T);

/// `Content-Type` is `application/json` or `application/<x>+json` (parameters ignored), as
/// `axum::Json` requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with `Content-Type: application/json`",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                ))
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "cannot read the body: {}",
                    e.body_text()
                )))
            }
        };
        crate::input_guard::check_json_body(&bytes)?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::validation(vec![ErrorDetail {
                reason: rejection_detail(e.body_text()),
                ..Default::default()
            }])),
            Err(e) => Err(ApiError::bad_request(format!(
                "malformed JSON body: {}",
                rejection_detail(e.body_text())
            ))),
        }
    }
}

/// `Query<T>` with the API error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::validation(vec![ErrorDetail {
                    reason: e
                        .body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                        .to_string(),
                    ..Default::default()
                }]))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `Path<T>` with the API error shape. A malformed id answers 404 (it cannot name a record).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::not_found("resource"))
            }
            Err(e) => {
                tracing::error!(error = %e.body_text(), "path extraction failed");
                Err(ApiError::internal())
            }
        }
    }
}
