//! The team page (`/team`) performs the same actions as `api/users.rs` (one implementation,
//! `zixly_web::actions::users`): the same email check, the same last-ADMIN rule, the same mail,
//! audit rows of the same shape.

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp};

use super::page_kit::{get_page, page_session, post_form};

/// The flash the redirect of a team form leads to: (`ok` | `err`, the page it shows).
async fn follow(app: &TestApp, cookie: &str, res: reqwest::Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()[LOCATION].to_str().unwrap().to_string();
    let url = url::Url::parse(&app.url(&to)).unwrap();
    let (kind, _) = url
        .query_pairs()
        .next()
        .unwrap_or_else(|| panic!("no flash in {to}"));
    (kind.into_owned(), get_page(app, cookie, &to).await)
}

async fn body(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    let page = body(
        app.get(&format!("/api/v1/audit-logs?action={action}"), &app.a.admin)
            .await,
    )
    .await;
    page["data"].as_array().unwrap().clone()
}

/// What must be equal between the API's and the page's audit row of one action.
fn shape(row: &Value) -> Value {
    let mut keys: Vec<&String> = row["summary"].as_object().unwrap().keys().collect();
    keys.sort();
    json!({
        "action": row["action"],
        "entity_type": row["entity_type"],
        "actor_user_id": row["actor_user_id"],
        "actor_label": row["actor_label"],
        "client_addr": row["client_addr"],
        "has_request_id": row["request_id"].is_string(),
        "has_entity_id": row["entity_id"].is_string(),
        "summary_keys": keys,
    })
}

#[tokio::test]
async fn the_page_refuses_an_email_with_a_space_with_a_readable_message() {
    let app = spawn_app().await;
    let s = page_session(&app, &app.a.admin, "/team").await;
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", "a b@c.co"), ("role", "VIEWER")],
    )
    .await;
    // Invalid input is answered directly (422, the page with the message), not redirected.
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("The email address contains a space."),
        "{html}"
    );
    // The API refuses the same address.
    let api = app
        .post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "a b@c.co", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(api.status(), 422);
    // A bad role is named too; nothing was created.
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", "nobody"), ("role", "OWNER")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("The email address has no `@`."), "{html}");
    assert!(
        html.contains("Choose a role: ADMIN, EDITOR or VIEWER."),
        "{html}"
    );
    let pending = body(app.get("/api/v1/invitations", &app.a.admin).await).await;
    assert!(pending["data"].as_array().unwrap().is_empty(), "{pending}");
}

#[tokio::test]
async fn a_page_invitation_is_mailed_when_mail_is_configured() {
    let app = TestApp::builder().with_mailer().spawn().await;
    let s = page_session(&app, &app.a.admin, "/team").await;
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", " Mailed@A.example "), ("role", "EDITOR")],
    )
    .await;
    let (kind, html) = follow(&app, &s.0, res).await;
    assert_eq!(kind, "ok");
    assert!(
        html.contains("Invitation sent to mailed@a.example by email."),
        "{html}"
    );
    assert!(
        !html.contains("data-invitation-link"),
        "a mailed link is not shown"
    );
    let mails = app.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "mailed@a.example");
    assert_eq!(mails[0].subject, "You are invited to Zixly");
    let link = mails[0]
        .body
        .lines()
        .find(|l| l.contains("#token=zxi_"))
        .expect("the mail carries the link")
        .trim();
    let token = link.split("#token=").nth(1).unwrap();
    let accepted = app
        .anonymous(Method::POST, "/api/v1/auth/accept-invitation")
        .json(&json!({"token": token, "password": "a good new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    assert_eq!(body(accepted).await["user"]["role"], "EDITOR");
}

#[tokio::test]
async fn without_mail_the_page_shows_the_link_and_an_existing_account_is_refused() {
    let app = spawn_app().await;
    let s = page_session(&app, &app.a.admin, "/team").await;
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", "linked@a.example"), ("role", "VIEWER")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-invitation-link"), "{html}");
    assert!(html.contains("/accept-invitation#token=zxi_"), "{html}");
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", "viewer@a.example"), ("role", "VIEWER")],
    )
    .await;
    let (kind, html) = follow(&app, &s.0, res).await;
    assert_eq!(kind, "err");
    assert!(
        html.contains("A user with this email already exists."),
        "{html}"
    );
}

#[tokio::test]
async fn the_last_admin_rule_answers_the_same_from_the_page_and_the_api() {
    let app = spawn_app().await;
    let me = app.a.admin.id;
    let api = app
        .patch(
            &format!("/api/v1/users/{me}"),
            &app.a.admin,
            &json!({"role": "EDITOR"}),
        )
        .await;
    assert_eq!(api.status(), 409);
    let api = body(api).await;
    assert_eq!(api["error"]["code"], "last_admin");
    let message = api["error"]["message"].as_str().unwrap();

    let s = page_session(&app, &app.a.admin, "/team").await;
    let res = post_form(&app, &s, &format!("/team/{me}/role"), &[("role", "EDITOR")]).await;
    let (kind, html) = follow(&app, &s.0, res).await;
    assert_eq!(kind, "err");
    let mut expected: Vec<char> = message.chars().collect();
    expected[0] = expected[0].to_ascii_uppercase();
    let expected = format!("{}.", expected.into_iter().collect::<String>());
    assert!(html.contains(&expected), "{expected} in {html}");
    let still = body(app.get(&format!("/api/v1/users/{me}"), &app.a.admin).await).await;
    assert_eq!(still["role"], "ADMIN");

    // With a second ADMIN (promoted on the page) both allow it.
    let editor = app.a.editor.id;
    let res = post_form(
        &app,
        &s,
        &format!("/team/{editor}/role"),
        &[("role", "ADMIN")],
    )
    .await;
    assert_eq!(follow(&app, &s.0, res).await.0, "ok");
    let res = post_form(&app, &s, &format!("/team/{me}/role"), &[("role", "EDITOR")]).await;
    // (Not followed: as an EDITOR now, this user may no longer see the team page.)
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/team?ok="));
    // Now the former EDITOR is the last ADMIN: the API refuses to demote them, and so does the
    // page (as that ADMIN).
    let last = app.with_token(&app.a.editor, &app.a.editor.token);
    let api = app
        .patch(
            &format!("/api/v1/users/{editor}"),
            &last,
            &json!({"role": "VIEWER"}),
        )
        .await;
    assert_eq!(api.status(), 409);
    let s2 = page_session(&app, &app.a.editor, "/team").await;
    let res = post_form(
        &app,
        &s2,
        &format!("/team/{editor}/role"),
        &[("role", "VIEWER")],
    )
    .await;
    let (kind, html) = follow(&app, &s2.0, res).await;
    assert_eq!(kind, "err");
    assert!(html.contains(&expected), "{html}");
}

#[tokio::test]
async fn page_and_api_write_audit_rows_of_the_same_shape() {
    let app = spawn_app().await;
    let a = &app.a;
    let s = page_session(&app, &a.admin, "/team").await;

    // Invitations.
    let res = app
        .post(
            "/api/v1/invitations",
            &a.admin,
            &json!({"email": "api@a.example", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = post_form(
        &app,
        &s,
        "/team/invite",
        &[("email", "page@a.example"), ("role", "VIEWER")],
    )
    .await;
    assert_eq!(res.status(), 200);

    // Role changes, deactivation and reactivation: the API on the VIEWER, the page on the EDITOR.
    let (v, e) = (a.viewer.id, a.editor.id);
    let ok = |s: StatusCode| assert!(s.is_success(), "{s}");
    ok(app
        .patch(
            &format!("/api/v1/users/{v}"),
            &a.admin,
            &json!({"role": "EDITOR"}),
        )
        .await
        .status());
    ok(app
        .post(
            &format!("/api/v1/users/{v}/deactivate"),
            &a.admin,
            &json!({}),
        )
        .await
        .status());
    ok(app
        .post(
            &format!("/api/v1/users/{v}/reactivate"),
            &a.admin,
            &json!({}),
        )
        .await
        .status());
    for (path, fields) in [
        (format!("/team/{e}/role"), vec![("role", "VIEWER")]),
        (format!("/team/{e}/deactivate"), vec![]),
        (format!("/team/{e}/reactivate"), vec![]),
    ] {
        let res = post_form(&app, &s, &path, &fields).await;
        assert_eq!(follow(&app, &s.0, res).await.0, "ok", "{path}");
    }

    for (action, api_entity, page_entity) in [
        ("user.invite", None, None),
        ("user.update", Some(v), Some(e)),
        ("user.deactivate", Some(v), Some(e)),
        ("user.reactivate", Some(v), Some(e)),
    ] {
        let rows = audit_rows(&app, action).await;
        assert_eq!(rows.len(), 2, "{action}: {rows:?}");
        // Newest first: the page's row, then the API's.
        let (page, api) = (&rows[0], &rows[1]);
        assert_eq!(shape(page), shape(api), "{action}");
        if let (Some(api_entity), Some(page_entity)) = (api_entity, page_entity) {
            assert_eq!(api["entity_id"], api_entity.to_string());
            assert_eq!(page["entity_id"], page_entity.to_string());
        }
        if action == "user.invite" {
            assert_eq!(api["summary"]["email"], "api@a.example");
            assert_eq!(page["summary"]["email"], "page@a.example");
        }
        if action == "user.update" {
            assert_eq!(
                page["summary"],
                json!({"role": {"from": "EDITOR", "to": "VIEWER"}})
            );
        }
    }
}

#[tokio::test]
async fn flash_messages_come_from_codes_never_from_text_in_the_url() {
    let app = spawn_app().await;
    let s = page_session(&app, &app.a.admin, "/team").await;
    // Free text in the URL shows nothing, whatever the key.
    for path in [
        "/team?ok=Your+account+is+locked%2C+call+0400+000+000",
        "/team?err=Your+account+is+locked",
        "/team?ok=last_admin",
    ] {
        let html = get_page(&app, &s.0, path).await;
        assert!(!html.contains("locked"), "{path}: {html}");
        assert!(!html.contains(r#"class="flash"#), "{path}: {html}");
    }
    // A known code names its subject from the database, in this tenant only.
    let viewer = app.a.viewer.id;
    let html = get_page(&app, &s.0, &format!("/team?ok=role_changed&who={viewer}")).await;
    assert!(
        html.contains(&format!("{} is now VIEWER.", app.a.viewer.email)),
        "{html}"
    );
    let other = app.b.viewer.id;
    let html = get_page(&app, &s.0, &format!("/team?ok=role_changed&who={other}")).await;
    assert!(!html.contains(&app.b.viewer.email), "{html}");
    assert!(html.contains("someone is now"), "{html}");
}

#[tokio::test]
async fn an_admin_issues_a_reset_link_and_revokes_an_invitation_on_the_page() {
    let app = spawn_app().await;
    let s = page_session(&app, &app.a.admin, "/team").await;
    let viewer = &app.a.viewer;

    // No mailer: the link is shown once, on the answer, and it works.
    let res = post_form(
        &app,
        &s,
        &format!("/team/{}/password-reset", viewer.id),
        &[],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-reset-link"), "{html}");
    let token = html
        .split_once("reset-password#token=")
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(t, _)| t.to_string())
        .expect("the reset link on the page");
    let confirmed = app
        .anonymous(Method::POST, "/api/v1/auth/password-reset/confirm")
        .json(&json!({"token": token, "password": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        confirmed.status(),
        204,
        "the shown link resets the password"
    );
    assert_eq!(
        audit_rows(&app, "user.password_reset_issue").await.len(),
        1,
        "audited like the API's"
    );
    // Another tenant's user is not found (the page's 404 → a "gone" notice, nothing issued).
    let res = post_form(
        &app,
        &s,
        &format!("/team/{}/password-reset", app.b.viewer.id),
        &[],
    )
    .await;
    let (kind, html) = follow(&app, &s.0, res).await;
    assert_eq!(kind, "err");
    assert!(html.contains("no longer exists"), "{html}");

    // Revoking a pending invitation, as DELETE /api/v1/invitations/{id} does.
    let res = app
        .post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "later@a.example", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let invitation = body(res).await["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let html = get_page(&app, &s.0, "/team").await;
    assert!(
        html.contains(&format!("/team/invitations/{invitation}/revoke")),
        "{html}"
    );
    let res = post_form(
        &app,
        &s,
        &format!("/team/invitations/{invitation}/revoke"),
        &[],
    )
    .await;
    let (kind, html) = follow(&app, &s.0, res).await;
    assert_eq!(kind, "ok");
    assert!(html.contains("The invitation was revoked."), "{html}");
    assert!(!html.contains("later@a.example"), "{html}");
    let pending = body(app.get("/api/v1/invitations", &app.a.admin).await).await;
    assert!(pending["data"].as_array().unwrap().is_empty(), "{pending}");
    assert_eq!(audit_rows(&app, "invitation.revoke").await.len(), 1);
    // A second revoke finds nothing.
    let res = post_form(
        &app,
        &s,
        &format!("/team/invitations/{invitation}/revoke"),
        &[],
    )
    .await;
    assert_eq!(follow(&app, &s.0, res).await.0, "err");
}
