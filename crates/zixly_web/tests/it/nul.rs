//! A NUL character (U+0000) in any input answers 400 `invalid_character` naming the field —
//! never 500 (PostgreSQL text cannot hold it) — whether it comes in a JSON body, a query string,
//! a path parameter or a page's form, authenticated or not; in a CSV upload it is a line error.

use reqwest::Method;
use serde_json::{json, Value};
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, TestUser};

use crate::routes::{fixture, Entity};

enum Input<'a> {
    Json(Method, String, Option<&'a TestUser>, Value),
    Get(String, Option<&'a TestUser>),
    Form(String, &'a str),
}

/// Sends `case` and checks the answer is 400 `invalid_character` naming `field`.
async fn expect_400(app: &TestApp, case: Input<'_>, field: &str) {
    let (what, res) = match case {
        Input::Json(m, path, user, body) => {
            let what = format!("{m} {path} {body}");
            let rb = match user {
                Some(u) => app.request(m, &path, u),
                None => app.anonymous(m, &path),
            };
            (what, rb.json(&body).send().await.unwrap())
        }
        Input::Get(path, user) => {
            let rb = match user {
                Some(u) => app.request(Method::GET, &path, u),
                None => app.anonymous(Method::GET, &path),
            };
            (format!("GET {path}"), rb.send().await.unwrap())
        }
        Input::Form(path, body) => (
            format!("POST {path} (form) {body}"),
            app.anonymous(Method::POST, &path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        ),
    };
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(status, 400, "{what}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
    assert_eq!(v["error"]["code"], "invalid_character", "{what}: {v}");
    assert_eq!(v["error"]["details"][0]["field"], field, "{what}: {v}");
    assert!(
        !text.contains('\0') && !text.contains("\\u0000"),
        "{what}: echoed the NUL: {text}"
    );
}

#[tokio::test]
async fn a_nul_anywhere_answers_400_naming_the_field() {
    let app = spawn_app().await;
    let admin = &app.a.admin;
    let client = fixture(&app, &app.a, Entity::Client).await;
    let user = fixture(&app, &app.a, Entity::User).await;
    let integration = fixture(&app, &app.a, Entity::Integration).await;
    let nul = "x\u{0}y";
    let cases: Vec<(Input, &str)> = vec![
        // Unauthenticated JSON.
        (
            Input::Json(
                Method::POST,
                "/api/v1/auth/login".into(),
                None,
                json!({"email": format!("admin{nul}@a.example"), "password": "p"}),
            ),
            "email",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/auth/login".into(),
                None,
                json!({"email": "admin@a.example", "password": nul}),
            ),
            "password",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/auth/password-reset".into(),
                None,
                json!({"email": nul}),
            ),
            "email",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/auth/accept-invitation".into(),
                None,
                json!({"token": nul, "password": "long enough password", "display_name": "x"}),
            ),
            "token",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/auth/password-reset/confirm".into(),
                None,
                json!({"token": nul, "new_password": "long enough password"}),
            ),
            "token",
        ),
        // Authenticated JSON.
        (
            Input::Json(
                Method::POST,
                "/api/v1/me/tokens".into(),
                Some(admin),
                json!({"name": nul}),
            ),
            "name",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/me/password".into(),
                Some(admin),
                json!({"current_password": nul, "new_password": "long enough password"}),
            ),
            "current_password",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/clients".into(),
                Some(admin),
                json!({"client_id": nul, "client_name": "n"}),
            ),
            "client_id",
        ),
        (
            Input::Json(
                Method::PATCH,
                format!("/api/v1/clients/{client}"),
                Some(admin),
                json!({"client_name": nul}),
            ),
            "client_name",
        ),
        (
            Input::Json(
                Method::POST,
                format!("/api/v1/clients/{client}/financials"),
                Some(admin),
                json!({"rows": [{"record_date": "2024-01-01", "revenue": "1", "expenses": "1", "cash_flow": "1"},
                            {"record_date": "2024-01-02", "revenue": "1", "expenses": "1", "cash_flow": "1", "external_id": nul}]}),
            ),
            "rows[1].external_id",
        ),
        (
            Input::Json(
                Method::POST,
                format!("/api/v1/clients/{client}/metrics"),
                Some(admin),
                json!({"rows": [{"metric_name": nul, "metric_value": "1", "record_date": "2024-01-01"}]}),
            ),
            "rows[0].metric_name",
        ),
        (
            Input::Json(
                Method::POST,
                "/api/v1/invitations".into(),
                Some(admin),
                json!({"email": nul, "role": "VIEWER"}),
            ),
            "email",
        ),
        (
            Input::Json(
                Method::PATCH,
                format!("/api/v1/users/{user}"),
                Some(admin),
                json!({"display_name": nul}),
            ),
            "display_name",
        ),
        (
            Input::Json(
                Method::PATCH,
                format!("/api/v1/integrations/{integration}"),
                Some(admin),
                json!({"settings": {"xero_tenant_id": nul}}),
            ),
            "settings.xero_tenant_id",
        ),
        (
            Input::Json(
                Method::PATCH,
                format!("/api/v1/integrations/{integration}"),
                Some(admin),
                json!({"settings": {"k\u{0}": 1}}),
            ),
            "settings.k\\0",
        ),
        // Query strings and path parameters.
        (
            Input::Get("/api/v1/clients?search=x%00y".into(), Some(admin)),
            "search",
        ),
        (
            Input::Get("/api/v1/clients?cursor=%00".into(), Some(admin)),
            "cursor",
        ),
        (
            Input::Get(
                format!("/api/v1/clients/{client}/metrics?name=%00"),
                Some(admin),
            ),
            "name",
        ),
        (
            Input::Get("/api/v1/reports/metrics?name=a%00".into(), Some(admin)),
            "name",
        ),
        (
            Input::Get(
                "/api/v1/audit-logs?action=%00&entity_type=x".into(),
                Some(admin),
            ),
            "action",
        ),
        (Input::Get("/api/v1/users/%00".into(), Some(admin)), "id"),
        (
            Input::Json(
                Method::POST,
                "/api/v1/integrations/xero%00/connect".into(),
                Some(admin),
                json!({}),
            ),
            "id",
        ),
        (
            Input::Get(
                "/api/v1/integrations/callback?state=%00&code=c".into(),
                Some(admin),
            ),
            "state",
        ),
        // Unauthenticated, even before the credentials are looked at.
        (Input::Get("/api/v1/me?x=%00".into(), None), "x"),
        // Pages: query strings and forms.
        (Input::Get("/login?next=%2F%00".into(), None), "next"),
        (Input::Get("/clients?search=%00".into(), None), "search"),
        (
            Input::Form("/login".into(), "email=a%00%40a.example&password=p&_csrf=x"),
            "email",
        ),
        (
            Input::Form("/password-reset".into(), "email=%00&_csrf=x"),
            "email",
        ),
    ];
    for (case, field) in cases {
        expect_400(&app, case, field).await;
    }
    // The user the login tried is not locked out or otherwise affected.
    assert_eq!(app.get("/api/v1/me", admin).await.status(), 200);
}

/// An escaped backslash followed by `u0000` is text, not a NUL: it is stored and read back.
#[tokio::test]
async fn an_escaped_backslash_before_u0000_is_ordinary_text() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "C-\\u0000", "client_name": "back\\u0000slash"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["client_name"], "back\\u0000slash");
}

/// CSV uploads: a NUL in a field, in a value echoed by its error, or in a header name is a line
/// error of the file (422, nothing written), not a 500.
#[tokio::test]
async fn a_nul_in_a_csv_upload_is_a_line_error() {
    let app = spawn_app().await;
    let editor = app.a.user(Role::Editor);
    let files: [(&[u8], u64); 4] = [
        // In a text field.
        (b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,Ac\0me,2024-01-01,1,1,1\n", 2),
        // In a money value, whose error quotes the value.
        (b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,Acme,2024-01-01,1,1,1\nC2,B,2024-01-01,1\0,1,1\n", 3),
        // In a date.
        (b"client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,Acme,2024-01-\x0001,1,1,1\n", 2),
        // In a header name (an unknown column, named in the error).
        (b"client_id,client_name,record_date,revenue,expenses,cash_flow,no\0te\nC1,Acme,2024-01-01,1,1,1,x\n", 1),
    ];
    for (file, line) in files {
        let form = reqwest::multipart::Form::new()
            .text("dataset", "financials")
            .part(
                "file",
                reqwest::multipart::Part::bytes(file.to_vec()).file_name("nul.csv"),
            );
        let res = app
            .request(Method::POST, "/api/v1/imports", editor)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 422, "{}: {text}", String::from_utf8_lossy(file));
        let v: Value = serde_json::from_str(&text).unwrap();
        let details = v["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["line"] == line),
            "{}: no error on line {line}: {v}",
            String::from_utf8_lossy(file)
        );
    }
    let clients: Value = app
        .get("/api/v1/clients", editor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(clients["data"], json!([]), "nothing was written");
}

/// The last defence: a NUL that reached the database anyway (SQLSTATE 22021 in text, 22P05 in
/// jsonb) maps to 400 `invalid_character`, not 500.
#[tokio::test]
async fn database_errors_for_unstorable_text_map_to_400() {
    let app = spawn_app().await;
    for sql in [
        "select convert_from('\\x00'::bytea, 'UTF8')",
        "select '\"\\u0000\"'::jsonb",
    ] {
        let tx = app.db.app.begin_tenant(app.a.id).await.unwrap();
        let err = tx.raw_strings(sql).await.unwrap_err();
        let code = err.sql_state().map(|s| s.code().to_string());
        let api = zixly_web::error::ApiError::from(err);
        assert_eq!(api.status(), 400, "{sql} ({code:?})");
        assert_eq!(api.code(), "invalid_character", "{sql}");
    }
}
