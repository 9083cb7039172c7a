//! Login, logout, sessions and cookies, personal tokens, password change, throttling.

use reqwest::Method;
use serde_json::{json, Value};
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, PASSWORD};

async fn body(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

#[tokio::test]
async fn login_answers_token_and_user_sets_a_session_cookie_and_both_authenticate() {
    let app = spawn_app().await;
    let res = app.login("Admin@A.example ", PASSWORD).await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let v = body(res).await;
    let token = v["token"].as_str().unwrap();
    assert!(
        token.starts_with("zxs_") && token.len() >= 4 + 32 + 32,
        "{token}"
    );
    assert_eq!(v["user"]["email"], "admin@a.example");
    assert_eq!(v["user"]["role"], "ADMIN");
    assert_eq!(v["user"]["tenant_id"], app.a.id.to_string());
    assert!(v["user"].get("password_hash").is_none());
    for attribute in ["zixly_session=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }
    assert!(
        !cookie.contains("Secure"),
        "plain-http public URL must not set Secure: {cookie}"
    );
    assert!(
        cookie.contains(token),
        "the cookie carries the session token"
    );

    let me = app
        .anonymous(Method::GET, "/api/v1/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(body(me).await["email"], "admin@a.example");
    let me = app
        .anonymous(Method::GET, "/api/v1/me")
        .header("cookie", format!("zixly_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let last_login: Value = body(
        app.get(&format!("/api/v1/users/{}", app.a.admin.id), &app.a.admin)
            .await,
    )
    .await;
    assert!(last_login["last_login_at"].is_string());
}

#[tokio::test]
async fn https_public_url_makes_the_cookie_secure_and_sends_hsts() {
    let app = TestApp::builder()
        .config(|c| *c = zixly_web::WebConfig::new("https://kpi.example.com").unwrap())
        .spawn()
        .await;
    let res = app.login("viewer@b.example", PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    assert!(res.headers().get("strict-transport-security").is_some());
}

#[tokio::test]
async fn cookie_writes_from_another_site_are_refused_but_bearer_writes_are_not() {
    let app = spawn_app().await;
    let token = app.login_token("viewer@a.example", PASSWORD).await;
    let res = app
        .anonymous(Method::POST, "/api/v1/me/tokens")
        .header("cookie", format!("zixly_session={token}"))
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(body(res).await["error"]["code"], "cross_site_request");
    let res = app
        .anonymous(Method::POST, "/api/v1/me/tokens")
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn failed_logins_look_the_same_for_unknown_email_wrong_password_and_deactivated_account() {
    let app = spawn_app().await;
    let deactivated = app
        .post(
            &format!("/api/v1/users/{}/deactivate", app.a.viewer.id),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(deactivated.status(), 200);
    let mut bodies = Vec::new();
    for (email, password) in [
        ("nobody@a.example", PASSWORD),
        ("editor@a.example", "wrong password!"),
        ("viewer@a.example", PASSWORD),
    ] {
        let res = app.login(email, password).await;
        assert_eq!(res.status(), 401, "{email}");
        bodies.push(body(res).await);
    }
    assert_eq!(bodies[0]["error"]["code"], "invalid_credentials");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let res = app.login("", "").await;
    assert_eq!(res.status(), 422);
    let v = body(res).await;
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);
}

#[tokio::test]
async fn the_same_email_in_two_tenants_logs_into_the_one_whose_password_matches() {
    let app = spawn_app().await;
    // Same email in tenant B, different password.
    let tx = app.db.app.begin_tenant(app.b.id).await.unwrap();
    let other = zixly_domain::password::hash_password("another password 456").unwrap();
    tx.insert_user("admin@a.example", Role::Viewer, Some(&other))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let a = body(app.login("admin@a.example", PASSWORD).await).await;
    assert_eq!(a["user"]["tenant_id"], app.a.id.to_string());
    let b = body(app.login("admin@a.example", "another password 456").await).await;
    assert_eq!(b["user"]["tenant_id"], app.b.id.to_string());
    assert_eq!(b["user"]["role"], "VIEWER");
    // Same password in both: the client must choose.
    let tx = app.db.app.begin_tenant(app.b.id).await.unwrap();
    tx.insert_user(
        "editor@a.example",
        Role::Viewer,
        Some(&zixly_domain::password::hash_password(PASSWORD).unwrap()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let res = app.login("editor@a.example", PASSWORD).await;
    assert_eq!(res.status(), 409);
    assert_eq!(body(res).await["error"]["code"], "tenant_required");
    let res = app
        .anonymous(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": "editor@a.example", "password": PASSWORD, "tenant_id": app.b.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(res).await["user"]["tenant_id"], app.b.id.to_string());
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let token = app.login_token("editor@b.example", PASSWORD).await;
    let res = app
        .anonymous(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let me = app
        .anonymous(Method::GET, "/api/v1/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // Logging out again (or without a session) is harmless.
    let res = app
        .anonymous(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // Other credentials of the user still work.
    assert_eq!(app.get("/api/v1/me", &app.b.editor).await.status(), 200);
}

#[tokio::test]
async fn account_throttling_answers_429_with_retry_after_whether_or_not_the_email_exists() {
    let app = spawn_app().await;
    for email in ["viewer@a.example", "ghost@a.example"] {
        for attempt in 1..=5 {
            let res = app.login(email, "wrong password!").await;
            assert_eq!(res.status(), 401, "{email}: attempt {attempt}");
        }
        // Locked now, even with the right password.
        let res = app.login(email, PASSWORD).await;
        assert_eq!(res.status(), 429, "{email}");
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "{email}: Retry-After {retry}");
        assert_eq!(body(res).await["error"]["code"], "too_many_requests");
    }
    // Other accounts are not affected.
    assert_eq!(app.login("editor@a.example", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn address_throttling_spans_accounts() {
    let app = TestApp::builder()
        .config(|c| {
            c.throttle.address_limit = 3;
            c.throttle.account_limit = 100;
        })
        .spawn()
        .await;
    for i in 0..3 {
        assert_eq!(
            app.login(&format!("user{i}@x.example"), "wrong password!")
                .await
                .status(),
            401
        );
    }
    let res = app.login("admin@a.example", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn a_successful_login_resets_the_account_counter() {
    let app = spawn_app().await;
    for _ in 0..4 {
        assert_eq!(
            app.login("viewer@b.example", "wrong password!")
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.login("viewer@b.example", PASSWORD).await.status(), 200);
    for _ in 0..4 {
        assert_eq!(
            app.login("viewer@b.example", "wrong password!")
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.login("viewer@b.example", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn personal_tokens_are_shown_once_listed_without_secret_used_and_revoked() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/me/tokens",
            &app.a.viewer,
            &json!({"name": "nightly export", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created = body(res).await;
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("zxp_"));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "nightly export");

    let scripted = app.with_token(&app.a.viewer, &token);
    let me = body(app.get("/api/v1/me", &scripted).await).await;
    assert_eq!(me["id"], app.a.viewer.id.to_string());

    let list = body(app.get("/api/v1/me/tokens", &app.a.viewer).await).await;
    let text = list.to_string();
    assert!(
        !text.contains(&token) && !text.contains(&token[4..]),
        "the list must not carry secrets: {text}"
    );
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(
        listed["last_used_at"].is_string(),
        "last_used_at after use: {listed}"
    );
    assert!(list["next_cursor"].is_null());

    // Another user of the same tenant cannot revoke it.
    assert_eq!(
        app.delete(&format!("/api/v1/me/tokens/{id}"), &app.a.admin)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.delete(&format!("/api/v1/me/tokens/{id}"), &app.a.viewer)
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/v1/me", &scripted).await.status(), 401);
    assert_eq!(
        app.delete(&format!("/api/v1/me/tokens/{id}"), &app.a.viewer)
            .await
            .status(),
        404
    );

    let bad = app
        .post(
            "/api/v1/me/tokens",
            &app.a.viewer,
            &json!({"name": " ", "expires_in_days": 400}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let v = body(bad).await;
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "expires_in_days"]);
}

#[tokio::test]
async fn expired_tokens_do_not_authenticate() {
    let app = spawn_app().await;
    let su = app.db.superuser().await;
    su.execute(
        "update auth_tokens set created_at = now() - interval '2 days', expires_at = now() - interval '1 second' where user_id = $1",
        &[&app.b.viewer.id],
    )
    .await
    .unwrap();
    assert_eq!(app.get("/api/v1/me", &app.b.viewer).await.status(), 401);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    let other_session = app.login_token("editor@a.example", PASSWORD).await;
    let wrong = app
        .post(
            "/api/v1/me/password",
            &app.a.editor,
            &json!({"current_password": "nope", "new_password": "brand new password"}),
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(
        body(wrong).await["error"]["details"][0]["field"],
        "current_password"
    );
    let short = app
        .post(
            "/api/v1/me/password",
            &app.a.editor,
            &json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(short.status(), 422);
    let ok = app
        .post(
            "/api/v1/me/password",
            &app.a.editor,
            &json!({"current_password": PASSWORD, "new_password": "brand new password"}),
        )
        .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(
        app.get("/api/v1/me", &app.a.editor).await.status(),
        200,
        "the credential used stays valid"
    );
    let other = app.with_token(&app.a.editor, &other_session);
    assert_eq!(
        app.get("/api/v1/me", &other).await.status(),
        401,
        "other sessions are revoked"
    );
    assert_eq!(app.login("editor@a.example", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("editor@a.example", "brand new password")
            .await
            .status(),
        200
    );
}
