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
    // Enums that `IntoParams` query structs refer to by `$ref`: registered here so that every
    // reference resolves (`complete` is checked by a test that resolves every `$ref`).
    components(schemas(crate::error::ErrorBody, crate::error::ErrorObject, crate::error::ErrorDetail,
        crate::api::csv::Format, crate::api::clients::SortParam)),
    tags(
        (name = "auth", description = "Login, logout, invitations and password resets"),
        (name = "me", description = "The caller's own account and personal API tokens"),
        (name = "users", description = "Users of the tenant (ADMIN)"),
        (name = "audit", description = "The audit log (ADMIN)"),
        (name = "integrations", description = "Provider connections over OAuth2, settings, manual syncs (ADMIN)"),
        (name = "metrics", description = "The metric catalogue: how each metric is named, measured and aggregated"),
        (name = "alerts", description = "Alert rules (threshold, change, anomaly, goal, stale) and their alerts with history"),
        (name = "settings", description = "Workspace settings: how long raw daily data is kept (retention)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct BaseDoc;

/// Completes the generated document with what every route shares, so that each operation
/// documents every status it can answer without each annotation repeating them:
///
/// - 400 everywhere: a NUL (U+0000) in the path or query string is refused before any handler
///   (`input_guard`), and malformed bodies answer 400;
/// - 401 and 403 on every authenticated operation (no valid credentials; a role too low, or a
///   cookie-authenticated write from another site);
/// - 404 where the path has a parameter (unknown ids and other tenants' ids alike);
/// - 413, 415 and 422 where there is a request body, 422 where there are query parameters;
/// - 503 everywhere (database unavailable, or the request ran past its time limit);
/// - `text/csv` beside JSON for the 200 of operations that take `?format=csv`.
///
/// Statuses an annotation already documents keep its description; an error response documented
/// with a richer body than [`ErrorBody`](crate::error::ErrorBody) (a load's `LoadFailure`)
/// becomes `anyOf` that body or `ErrorBody`, since the extractors answer the plain shape before
/// the handler runs. `oneOf` becomes `anyOf` throughout: the enums behind it are untagged
/// (`serde(untagged)` picks the first variant that fits, e.g. an empty page fits both a page of
/// rows and a page of buckets), which `oneOf` ("exactly one") misdescribes.
///
/// The result is JSON: utoipa's types cannot represent everything the document says (they do not
/// read back an `anyOf` of references).
pub fn complete(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    complete_operation(op);
                }
            }
        }
    }
    any_of_not_one_of(&mut v);
    v
}

const ERROR_BODY_REF: &str = "#/components/schemas/ErrorBody";

fn error_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_BODY_REF}}}
    })
}

fn complete_operation(op: &mut serde_json::Value) {
    use serde_json::Value;
    let secured = op["security"].as_array().is_some_and(|s| {
        !s.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    let params_in = |place: &str| {
        op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
    };
    let has_path = params_in("path");
    let has_query = params_in("query");
    let has_body = op.get("requestBody").is_some();
    // `?format=csv` (`api::csv::FormatParam`) answers the same data as CSV.
    let takes_format = op["parameters"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["in"] == "query" && p["name"] == "format")
    });
    if takes_format {
        if let Some(content) = op
            .pointer_mut("/responses/200/content")
            .and_then(Value::as_object_mut)
        {
            content.entry("text/csv").or_insert_with(|| {
                serde_json::json!({"schema": {"type": "string",
                    "description": "With `format=csv`: RFC 4180 CSV with a header line"}})
            });
        }
    }
    let mut add = vec![(
        "400",
        "Bad request: a malformed body, or a NUL character (U+0000) in a parameter or field",
    )];
    if secured {
        add.push(("401", "No valid credentials"));
        add.push((
            "403",
            "The role is too low, or a cookie-authenticated write came from another site",
        ));
    }
    if has_path {
        add.push(("404", "Not found (another tenant's ids answer the same)"));
    }
    if has_body {
        add.push(("413", "The body is too large"));
        add.push(("415", "The body is not of the documented content type"));
    }
    if has_body || has_query {
        add.push((
            "422",
            "Invalid parameters or body: `error.details` names each problem",
        ));
    }
    add.push((
        "503",
        "Temporarily unavailable: the database cannot be reached or the request took too long",
    ));
    let responses = op
        .as_object_mut()
        .expect("an operation is an object")
        .entry("responses")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
        .expect("responses is an object");
    for (status, description) in add {
        responses
            .entry(status)
            .or_insert_with(|| error_response(description));
    }
    for (status, response) in responses.iter_mut() {
        if !status.starts_with('4') {
            continue;
        }
        let Some(schema) = response.pointer_mut("/content/application~1json/schema") else {
            continue;
        };
        let is_other_ref = schema
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r != ERROR_BODY_REF);
        if is_other_ref {
            let richer = schema.take();
            *schema = serde_json::json!({"anyOf": [richer, {"$ref": ERROR_BODY_REF}]});
        }
    }
}

fn any_of_not_one_of(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(alternatives) = map.remove("oneOf") {
                map.insert("anyOf".to_string(), alternatives);
            }
            map.values_mut().for_each(any_of_not_one_of);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(any_of_not_one_of),
        _ => {}
    }
}

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
