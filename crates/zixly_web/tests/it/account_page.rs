//! The account page (`/account`) performs the API's own-account actions
//! (`zixly_web::actions::account`, as `/api/v1/me/password` and `/api/v1/me/tokens`): a user of any
//! role changes their password and creates, uses and revokes personal API tokens in the browser.

use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use zixly_testkit::app::{spawn_app, PASSWORD};

use super::page_kit::{get_page, page_session, post_form};

fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()[LOCATION].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_viewer_creates_uses_and_revokes_a_personal_token_on_the_page() {
    let app = spawn_app().await;
    let s = page_session(&app, &app.a.viewer, "/account").await;
    let html = get_page(&app, &s.0, "/account").await;
    // The test kit's own token of this user is listed like any other, as the API lists it.
    let before: serde_json::Value = app
        .get("/api/v1/me/tokens", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    let before = before["data"].as_array().unwrap().len();
    assert_eq!(html.matches("/revoke\"").count(), before, "{html}");
    assert!(
        html.contains(r#"href="/account""#),
        "the top bar links the account: {html}"
    );

    // Problems are named by field, and nothing is created.
    let res = post_form(
        &app,
        &s,
        "/account/tokens",
        &[("name", "  "), ("expires_in_days", "999")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Name: must be 1 to 100 characters."),
        "{html}"
    );
    assert!(
        html.contains("Expires in days: must be between 1 and 365."),
        "{html}"
    );

    let res = post_form(
        &app,
        &s,
        "/account/tokens",
        &[("name", "nightly <export>"), ("expires_in_days", "30")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("nightly &lt;export&gt;"), "escaped: {html}");
    let token = html
        .split_once("data-new-token")
        .and_then(|(_, rest)| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(t, _)| t.to_string())
        .expect("the new token is shown once");
    // It works as a bearer token, with the viewer's role.
    let me = app
        .anonymous(Method::GET, "/api/v1/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["role"], "VIEWER");
    // Listed without its secret from now on, the same as the API lists it.
    let html = get_page(&app, &s.0, "/account").await;
    assert!(!html.contains(&token), "the secret is never shown again");
    let listed: serde_json::Value = app
        .get("/api/v1/me/tokens", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    let id = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nightly <export>")
        .expect("listed by the API")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        html.contains(&format!("/account/tokens/{id}/revoke")),
        "{html}"
    );

    let res = post_form(&app, &s, &format!("/account/tokens/{id}/revoke"), &[]).await;
    assert_eq!(location(&res), "/account?ok=token_revoked");
    let html = get_page(&app, &s.0, "/account?ok=token_revoked").await;
    assert!(html.contains("The token was revoked"), "{html}");
    let me = app
        .anonymous(Method::GET, "/api/v1/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "a revoked token no longer works");
    // Someone else's token id (here: another tenant's user's) is not found.
    let res = post_form(
        &app,
        &s,
        &format!("/account/tokens/{}/revoke", app.b.viewer.id),
        &[],
    )
    .await;
    assert_eq!(location(&res), "/account?err=token_gone");
}

#[tokio::test]
async fn a_user_changes_their_own_password_on_the_page() {
    let app = spawn_app().await;
    let user = &app.a.editor;
    let s = page_session(&app, user, "/account").await;
    let other_session = app.login_token(&user.email, PASSWORD).await;

    // The two new passwords must agree, the current one must match, the policy applies.
    let res = post_form(
        &app,
        &s,
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "correct horse 1"),
            ("confirm_password", "correct horse 2"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("The two new passwords differ"));
    let res = post_form(
        &app,
        &s,
        "/account/password",
        &[
            ("current_password", "not it at all"),
            ("new_password", "correct horse 1"),
            ("confirm_password", "correct horse 1"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Current password: does not match."));
    let res = post_form(
        &app,
        &s,
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "short"),
            ("confirm_password", "short"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("New password:"));

    let res = post_form(
        &app,
        &s,
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "correct horse 1"),
            ("confirm_password", "correct horse 1"),
        ],
    )
    .await;
    assert_eq!(location(&res), "/account?ok=password_changed");
    // This session goes on; the other one is signed out; the new password logs in.
    get_page(&app, &s.0, "/account").await;
    let other = app
        .anonymous(Method::GET, "/api/v1/me")
        .header(COOKIE, format!("zixly_session={other_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    app.login_token(&user.email, "correct horse 1").await;
}
