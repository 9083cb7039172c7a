//! The error shape, request ids, security headers, limits, metrics, and a sabotaged database.

use reqwest::Method;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp};

async fn error_of(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = res.json().await.unwrap();
    let e = &v["error"];
    assert!(
        e["code"].is_string() && e["message"].is_string() && e["details"].is_array(),
        "{v}"
    );
    assert_eq!(
        v.as_object().unwrap().len(),
        1,
        "only `error` at the top: {v}"
    );
    v
}

#[tokio::test]
async fn every_kind_of_error_has_the_one_shape() {
    let app = spawn_app().await;
    let v = error_of(
        app.anonymous(Method::GET, "/api/v1/nope")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(v["error"]["code"], "not_found");
    let v = error_of(
        app.anonymous(Method::PUT, "/api/v1/auth/login")
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    assert_eq!(v["error"]["code"], "method_not_allowed");
    let v = error_of(
        app.anonymous(Method::POST, "/api/v1/auth/login")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(v["error"]["code"], "bad_request");
    let v = error_of(
        app.anonymous(Method::POST, "/api/v1/auth/login")
            .body("email=x")
            .send()
            .await
            .unwrap(),
        415,
    )
    .await;
    assert_eq!(v["error"]["code"], "unsupported_media_type");
    let v = error_of(
        app.anonymous(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": 3}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(v["error"]["code"], "validation_failed");
    let v = error_of(
        app.post("/api/v1/me/tokens", &app.a.viewer, &json!({"name": ""}))
            .await,
        422,
    )
    .await;
    assert_eq!(
        v["error"]["details"][0],
        json!({"field": "name", "reason": "must be 1 to 100 characters"})
    );
    let v = error_of(app.get("/api/v1/users", &app.a.editor).await, 403).await;
    assert_eq!(v["error"]["code"], "forbidden");
    let v = error_of(
        app.anonymous(Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(v["error"]["code"], "unauthenticated");
    let v = error_of(app.get("/api/v1/users/not-a-uuid", &app.a.admin).await, 404).await;
    assert_eq!(v["error"]["code"], "not_found");
    let v = error_of(
        app.post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "viewer@a.example", "role": "VIEWER"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "email");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let app = TestApp::builder()
        .config(|c| c.body_limit = 1024)
        .spawn()
        .await;
    let big = json!({"email": "x".repeat(4096), "password": "y"});
    let v = error_of(
        app.anonymous(Method::POST, "/api/v1/auth/login")
            .json(&big)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert_eq!(v["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for path in ["/healthz", "/api/v1/me", "/api/v1/nope"] {
        let res = app.anonymous(Method::GET, path).send().await.unwrap();
        let h = res.headers();
        let id = h["x-request-id"].to_str().unwrap().to_string();
        assert!(!id.is_empty(), "{path}");
        ids.push(id);
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("content-security-policy"), "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "{path}: no HSTS over plain http"
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "fresh ids: {ids:?}");
    let res = app.get("/api/v1/me", &app.a.viewer).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    // A client's plain id is kept (proxies correlate with it); anything else is replaced.
    let res = app
        .anonymous(Method::GET, "/healthz")
        .header("x-request-id", "lb-1234.abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "lb-1234.abc");
    let res = app
        .anonymous(Method::GET, "/healthz")
        .header("x-request-id", "evil id; with=stuff")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "evil id; with=stuff");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_report_the_pool() {
    let app = zixly_testkit::app::TestApp::builder()
        .config(|c| {
            c.metrics_token = Some(zixly_crypto::SecretString::new("metrics token 0123456789"))
        })
        .spawn()
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", &app.a.viewer).await.status(), 200);
    }
    assert_eq!(
        app.get(
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            &app.a.admin
        )
        .await
        .status(),
        404
    );
    app.anonymous(Method::GET, "/no/such/path/123")
        .send()
        .await
        .unwrap();
    let res = app
        .anonymous(Method::GET, "/metrics")
        .bearer_auth("metrics token 0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let me = "method=\"GET\",route=\"/api/v1/me\",status=\"200\"";
    assert!(
        text.contains(&format!("zixly_http_requests_total{{{me}}} 3\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "zixly_http_request_duration_seconds_count{{{me}}} 3\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "zixly_http_request_duration_seconds_bucket{{{me},le=\"+Inf\"}} 3\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/v1/users/{id}\",status=\"404\""),
        "templated route, not the raw path: {text}"
    );
    assert!(
        text.contains("route=\"unmatched\",status=\"404\""),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(text.contains("zixly_db_pool_connections{state=\"open\"}"));
    assert!(text.contains("zixly_db_pool_max_connections 8"), "{text}");
}

/// A broken database answers 500 with no internals (after zero-to-production's sabotage test).
#[tokio::test]
async fn database_errors_answer_500_without_internals() {
    let app = spawn_app().await;
    let su = app.db.superuser().await;
    su.batch_execute("alter table users rename column display_name to display_name_gone")
        .await
        .unwrap();
    let res = app.get("/api/v1/me", &app.a.viewer).await;
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let v = error_of(res, 500).await;
    assert_eq!(v["error"]["code"], "internal");
    let text = v.to_string();
    for leak in [
        "display_name",
        "column",
        "users",
        "postgres",
        "SELECT",
        "select",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert!(!request_id.is_empty());
}
