//! What the page tests share: a signed-in browser session (cookie + the page's CSRF token), a GET
//! that must answer 200, and a form post with the CSRF token and the browser's `Origin`.

use reqwest::header::{COOKIE, ORIGIN};
use reqwest::Method;
use zixly_testkit::app::{TestApp, TestUser, PASSWORD};

/// A session cookie of `user` and the CSRF token of the forms on `path`.
pub async fn page_session(app: &TestApp, user: &TestUser, path: &str) -> (String, String) {
    let token = app.login_token(&user.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");
    let html = get_page(app, &cookie, path).await;
    let csrf = csrf_in(&html).unwrap_or_else(|| panic!("{path} carries a CSRF token"));
    (cookie, csrf)
}

/// The first CSRF token of a page's forms.
pub fn csrf_in(html: &str) -> Option<String> {
    html.split_once(r#"name="_csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
}

/// GET `path` with `cookie`; the page must answer 200. Answers its HTML.
pub async fn get_page(app: &TestApp, cookie: &str, path: &str) -> String {
    let res = app
        .anonymous(Method::GET, path)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

/// Posts a form with the session's CSRF token; answers the response (redirects not followed).
pub async fn post_form(
    app: &TestApp,
    (cookie, csrf): &(String, String),
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf)];
    form.extend_from_slice(fields);
    app.anonymous(Method::POST, path)
        .header(COOKIE, cookie)
        .header(ORIGIN, &app.base_url)
        .form(&form)
        .send()
        .await
        .unwrap()
}
