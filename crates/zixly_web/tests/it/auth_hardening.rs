//! Issue 9's authentication fixes: the redirect after login, throttling per account and address
//! (login and `POST /me/password`), constant login work across tenants, reset-link invalidation,
//! what the integrations page shows below ADMIN, and who may read `/metrics`.

use reqwest::Method;
use serde_json::{json, Value};
use url::Url;
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, TestUser, PASSWORD};
use zixly_web::api::auth::VERIFICATIONS_PER_LOGIN;

const PRE: &str = "0123456789abcdef0123456789abcdef";

/// The Location of a redirect, resolved as a browser would against the server's URL.
fn location(app: &TestApp, res: &reqwest::Response) -> Url {
    let raw = res.headers()["location"].to_str().unwrap();
    Url::parse(&app.base_url).unwrap().join(raw).unwrap()
}

fn same_origin(app: &TestApp, u: &Url) -> bool {
    u.origin() == Url::parse(&app.base_url).unwrap().origin()
}

/// The login form posted as a browser does (double-submit CSRF cookie), with `next`.
async fn login_form(app: &TestApp, email: &str, password: &str, next: &str) -> reqwest::Response {
    app.anonymous(Method::POST, "/login")
        .header("cookie", format!("zixly_pre={PRE}"))
        .form(&[
            ("_csrf", PRE),
            ("email", email),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

const HOSTILE_NEXT: &[&str] = &[
    "//evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\n",
    "/.//evil.example",
    "https://evil.example/x",
    "http://127.0.0.1.evil.example/",
    "javascript:alert(1)",
    "java\nscript:alert(1)",
    "\u{1}//evil.example",
];

#[tokio::test]
async fn next_after_login_is_always_a_same_origin_path_never_a_500() {
    let app = spawn_app().await;
    let session = app.login_token("viewer@a.example", PASSWORD).await;
    let long = format!("/{}", "a".repeat(10_000));
    let mut inputs: Vec<&str> = HOSTILE_NEXT.to_vec();
    inputs.push(&long);
    for next in &inputs {
        // Signed in: `GET /login?next=` redirects at once (this answered 500 for `%2F%0A`).
        let res = app
            .anonymous(Method::GET, "/login")
            .query(&[("next", next)])
            .header("cookie", format!("zixly_session={session}"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection(), "{next:?}: {}", res.status());
        let to = location(&app, &res);
        assert!(same_origin(&app, &to), "{next:?} → {to}");
        assert_eq!(to.path(), "/", "{next:?} → {to}");
        // Signed out: the form does not carry the hostile target either.
        let res = app
            .anonymous(Method::GET, "/login")
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{next:?}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(r#"name="next" value="/""#),
            "{next:?}: the form keeps `/`"
        );
    }
    // The form post, for a few of them (each is a real login).
    for next in [
        "/\t/evil.example",
        "/\n",
        "//evil.example",
        "/\\evil.example",
    ] {
        let res = login_form(&app, "viewer@a.example", PASSWORD, next).await;
        assert_eq!(res.status(), 303, "{next:?}");
        let to = location(&app, &res);
        assert!(same_origin(&app, &to), "{next:?} → {to}");
        assert_eq!(to.path(), "/", "{next:?}");
    }
    // Legitimate targets survive, query and all.
    for next in [
        "/clients?from=2024-01-01&to=2024-12-31",
        "/reports/funnel?client=a%20b#chart",
        "/%2F%2Fevil.example",
    ] {
        let res = login_form(&app, "viewer@a.example", PASSWORD, next).await;
        assert_eq!(res.status(), 303, "{next:?}");
        assert_eq!(res.headers()["location"], next);
        assert!(same_origin(&app, &location(&app, &res)));
    }
    // A DEL is not stripped by browsers: it stays in the path, percent-encoded, on this site.
    let res = login_form(&app, "viewer@a.example", PASSWORD, "/\u{7f}//evil.example").await;
    assert_eq!(res.headers()["location"], "/%7F//evil.example");
    assert!(same_origin(&app, &location(&app, &res)));
}

async fn login_from(app: &TestApp, addr: &str, email: &str, password: &str) -> u16 {
    app.anonymous(Method::POST, "/api/v1/auth/login")
        .header("x-forwarded-for", addr)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_attacking_address_cannot_lock_the_account_out_from_another_address() {
    let app = TestApp::builder()
        .config(|c| c.trust_forwarded_for = true)
        .spawn()
        .await;
    let attacker = "203.0.113.9";
    for attempt in 1..=5 {
        assert_eq!(
            login_from(&app, attacker, "admin@a.example", "wrong password!").await,
            401,
            "attempt {attempt}"
        );
    }
    // The attacker's address is locked for this account, even with the right password...
    assert_eq!(
        login_from(&app, attacker, "admin@a.example", PASSWORD).await,
        429
    );
    // ...but the real user, elsewhere, logs in.
    assert_eq!(
        login_from(&app, "198.51.100.7", "admin@a.example", PASSWORD).await,
        200
    );
    // That success does not unlock the attacker.
    assert_eq!(
        login_from(&app, attacker, "admin@a.example", PASSWORD).await,
        429
    );
}

#[tokio::test]
async fn the_per_account_ceiling_still_trips_across_addresses() {
    let app = TestApp::builder()
        .config(|c| {
            c.trust_forwarded_for = true;
            c.throttle.account_limit = 8;
        })
        .spawn()
        .await;
    // Four addresses, two failures each: below the per-address limit of 5 every time.
    for i in 1..=4 {
        for _ in 0..2 {
            assert_eq!(
                login_from(
                    &app,
                    &format!("203.0.113.{i}"),
                    "editor@b.example",
                    "wrong password!"
                )
                .await,
                401
            );
        }
    }
    // Eight in total: the account is locked everywhere, also from a fresh address.
    assert_eq!(
        login_from(&app, "198.51.100.7", "editor@b.example", PASSWORD).await,
        429
    );
    // Other accounts are not.
    assert_eq!(
        login_from(&app, "198.51.100.7", "viewer@b.example", PASSWORD).await,
        200
    );
}

async fn change_password(app: &TestApp, user: &TestUser, current: &str, new: &str) -> u16 {
    app.post(
        "/api/v1/me/password",
        user,
        &json!({"current_password": current, "new_password": new}),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn a_wrong_current_password_counts_as_a_failed_login() {
    let app = spawn_app().await;
    let user = &app.a.viewer;
    for attempt in 1..=5 {
        assert_eq!(
            change_password(&app, user, "wrong password!", "a brand new password").await,
            422,
            "attempt {attempt}"
        );
    }
    // Locked: the right current password does not help now...
    assert_eq!(
        change_password(&app, user, PASSWORD, "a brand new password").await,
        429
    );
    // ...and login shares the budget.
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 429);
    // Another user of the same address still can (5 < the address limit).
    assert_eq!(
        change_password(&app, &app.a.editor, PASSWORD, "a brand new password").await,
        204
    );
}

#[tokio::test]
async fn login_verifies_the_same_number_of_hashes_for_one_tenant_two_or_none() {
    let app = spawn_app().await;
    // admin@a.example also in tenant B, with the same password (409), and viewer@a.example in
    // B with another one.
    let tx = app.db.app.begin_tenant(app.b.id).await.unwrap();
    let same = zixly_domain::password::hash_password(PASSWORD).unwrap();
    let other = zixly_domain::password::hash_password("another password 456").unwrap();
    tx.insert_user("admin@a.example", Role::Viewer, Some(&same))
        .await
        .unwrap();
    tx.insert_user("viewer@a.example", Role::Viewer, Some(&other))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let res = app
        .post(
            &format!("/api/v1/users/{}/deactivate", app.a.editor.id),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let cases: &[(&str, &str, u16)] = &[
        ("nobody@a.example", "wrong password!", 401),
        ("viewer@b.example", "wrong password!", 401),
        ("viewer@b.example", PASSWORD, 200),
        ("viewer@a.example", "wrong password!", 401),
        ("viewer@a.example", "another password 456", 200),
        ("admin@a.example", PASSWORD, 409),
        ("editor@a.example", PASSWORD, 401), // deactivated
    ];
    for (email, password, status) in cases {
        let before = app.state.password_verifications();
        assert_eq!(
            app.login(email, password).await.status(),
            *status,
            "{email}"
        );
        let spent = app.state.password_verifications() - before;
        assert_eq!(
            spent, VERIFICATIONS_PER_LOGIN as u64,
            "{email}: {spent} verifications"
        );
    }
}

/// Issues a reset link for `user` as its tenant's ADMIN; returns the token.
async fn issue_reset(app: &TestApp, admin: &TestUser, user: &TestUser) -> String {
    let res = app
        .post(
            &format!("/api/v1/users/{}/password-reset", user.id),
            admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    let link = v["link"].as_str().expect("no mailer: the link is returned");
    link.split_once("#token=").unwrap().1.to_string()
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> u16 {
    app.anonymous(Method::POST, "/api/v1/auth/password-reset/confirm")
        .json(&json!({"token": token, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn issuing_using_a_reset_link_or_changing_the_password_invalidates_older_links() {
    let app = spawn_app().await;
    let (admin, viewer) = (&app.a.admin, &app.a.viewer);
    // Issuing: the newer link replaces the older.
    let first = issue_reset(&app, admin, viewer).await;
    let second = issue_reset(&app, admin, viewer).await;
    assert_eq!(confirm_reset(&app, &first, "first new password").await, 400);
    // Using: single use.
    assert_eq!(
        confirm_reset(&app, &second, "second new password").await,
        204
    );
    assert_eq!(
        confirm_reset(&app, &second, "third new password").await,
        400
    );
    // Changing the password: an outstanding link dies with the old password.
    let third = issue_reset(&app, admin, &app.a.editor).await;
    assert_eq!(
        change_password(&app, &app.a.editor, PASSWORD, "a brand new password").await,
        204
    );
    assert_eq!(
        confirm_reset(&app, &third, "attacker's password").await,
        400
    );
    assert_eq!(
        app.login("editor@a.example", "a brand new password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn two_reset_links_issued_at_once_leave_one_valid() {
    let app = spawn_app().await;
    let user = &app.b.viewer;
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let one = zixly_web::auth::issue_secret(zixly_web::auth::SecretKind::PasswordReset, app.b.id);
    let two = zixly_web::auth::issue_secret(zixly_web::auth::SecretKind::PasswordReset, app.b.id);
    let tx1 = app.db.app.begin_tenant(app.b.id).await.unwrap();
    tx1.insert_password_reset(user.id, &one.hash, None, expires)
        .await
        .unwrap();
    // The second issue runs while the first is uncommitted (it used to see nothing to replace).
    let db = app.db.app.clone();
    let (tenant, user_id, hash) = (app.b.id, user.id, two.hash);
    let second = tokio::spawn(async move {
        let tx2 = db.begin_tenant(tenant).await.unwrap();
        tx2.insert_password_reset(user_id, &hash, None, expires)
            .await
            .unwrap();
        tx2.commit().await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx1.commit().await.unwrap();
    second.await.unwrap();
    assert_eq!(
        confirm_reset(&app, &one.token, "first new password").await,
        400
    );
    assert_eq!(
        confirm_reset(&app, &two.token, "second new password").await,
        204
    );
}

#[tokio::test]
async fn integration_errors_are_shown_to_admins_only() {
    let app = spawn_app().await;
    let secret_error = "Xero refused: organisation Acme Holdings (tenant 4f1c) revoked scope X";
    let tx = app.db.app.begin_tenant(app.a.id).await.unwrap();
    let integration = tx.ensure_integration("XERO").await.unwrap();
    tx.record_integration_sync(integration.id, Some(secret_error), true, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for role in [Role::Viewer, Role::Editor, Role::Admin] {
        let res = app.get("/integrations", app.a.user(role)).await;
        assert_eq!(res.status(), 200, "{role}");
        let html = res.text().await.unwrap();
        assert!(html.contains("Error"), "{role}: the status is shown to all");
        assert_eq!(
            html.contains(secret_error),
            role == Role::Admin,
            "{role}: the error text is the API's, ADMIN-only"
        );
        // What the API answers the same role.
        let api = app.get("/api/v1/integrations", app.a.user(role)).await;
        assert_eq!(api.status() == 200, role == Role::Admin, "{role}");
    }
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener_without_a_token() {
    let app = spawn_app().await;
    let res = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Not even to a signed-in ADMIN: metrics are for the scraper.
    assert_eq!(app.get("/metrics", &app.a.admin).await.status(), 404);
}

#[tokio::test]
async fn metrics_need_the_configured_token() {
    let token = "a metrics token of some length";
    let app = TestApp::builder()
        .config(move |c| c.metrics_token = Some(zixly_crypto::SecretString::new(token)))
        .spawn()
        .await;
    let res = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    for wrong in [
        "nope",
        "a metrics token of some lengt",
        app.a.admin.token.as_str(),
    ] {
        let res = app
            .anonymous(Method::GET, "/metrics")
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{wrong}");
    }
    let res = app
        .anonymous(Method::GET, "/metrics")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("zixly_db_pool_max_connections"));
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_nothing_else() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(zixly_web::serve_metrics(
        listener,
        app.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    assert_eq!(app.get("/api/v1/me", &app.a.viewer).await.status(), 200);
    let res = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains("route=\"/api/v1/me\",status=\"200\""),
        "the main listener's requests: {text}"
    );
    for path in ["/api/v1/me", "/healthz", "/login", "/"] {
        let res = app
            .client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(&app.a.viewer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    // The main listener still refuses it.
    let res = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(res.status(), 404);
    drop(stop);
    served.await.unwrap().unwrap();
}
