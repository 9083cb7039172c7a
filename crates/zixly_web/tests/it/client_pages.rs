//! EDITORs add, rename and delete clients on the pages with the API's own actions
//! (`zixly_web::actions::clients`): the same validation, the same audit rows. Also: the
//! integrations page's "Not set up", and error pages that keep the navigation.

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_connectors::{Provider, ProviderConfig};
use zixly_testkit::app::{spawn_app, TestApp, TestUser, PASSWORD};

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A signed-in browser: its session cookie and the CSRF token of its forms.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn browser(app: &TestApp, user: &TestUser) -> Browser {
    let token = app.login_token(&user.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");
    let html = fetch(app, Some(&cookie), "/clients").await.1;
    let csrf = html
        .split_once(r#"name="_csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .expect("the clients page carries a CSRF token");
    Browser { cookie, csrf }
}

/// GET as a browser (accepting HTML): status and body.
async fn fetch(app: &TestApp, cookie: Option<&str>, path: &str) -> (StatusCode, String) {
    let mut req = app.anonymous(Method::GET, path).header(ACCEPT, HTML);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Posts a form with the browser's CSRF token (redirects are not followed).
async fn post_form(
    app: &TestApp,
    b: &Browser,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("_csrf", &b.csrf)];
    form.extend_from_slice(fields);
    app.anonymous(Method::POST, path)
        .header(COOKIE, &b.cookie)
        .header(ORIGIN, &app.base_url)
        .header(ACCEPT, HTML)
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a redirect after the form"
    );
    res.headers()[LOCATION].to_str().unwrap().to_string()
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/api/v1/audit-logs?action={action}"), &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

/// What must agree between the API's and the page's audit row of one action.
fn shape(row: &Value) -> Value {
    let mut keys: Vec<&String> = row["summary"].as_object().unwrap().keys().collect();
    keys.sort();
    json!({
        "action": row["action"],
        "entity_type": row["entity_type"],
        "actor_user_id": row["actor_user_id"],
        "has_request_id": row["request_id"].is_string(),
        "summary_keys": keys,
    })
}

async fn client_json(app: &TestApp, id: &str) -> (StatusCode, Value) {
    let res = app
        .get(&format!("/api/v1/clients/{id}"), &app.a.viewer)
        .await;
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_editor_adds_renames_and_deletes_a_client_on_the_pages() {
    let app = spawn_app().await;
    let b = browser(&app, &app.a.editor).await;
    let (_, list) = fetch(&app, Some(&b.cookie), "/clients").await;
    assert!(list.contains("data-add-client"), "EDITORs get the add form");

    // Add.
    let res = post_form(
        &app,
        &b,
        "/clients/new",
        &[
            ("client_name", "  Wattle & Co  "),
            ("client_id", "WAT-1"),
            ("industry", "Retail"),
            ("currency", "AUD"),
        ],
    )
    .await;
    let to = location(&res);
    let id = to
        .strip_prefix("/clients/")
        .and_then(|rest| rest.split_once("?done=created"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("redirected to the new client's page, not {to}"));
    let (status, page) = fetch(&app, Some(&b.cookie), &to).await;
    assert_eq!(status, 200);
    assert!(page.contains("Client added."), "the page confirms: {to}");
    assert!(page.contains("Wattle &amp; Co"));
    assert!(
        page.contains("data-manage-client"),
        "EDITORs get rename and delete"
    );
    let (status, client) = client_json(&app, &id).await;
    assert_eq!(status, 200);
    assert_eq!(
        client["client_name"], "Wattle & Co",
        "trimmed as the API trims"
    );
    assert_eq!(client["client_id"], "WAT-1");
    assert_eq!(client["industry"], "Retail");
    assert_eq!(client["currency"], "AUD");
    // The same audit row as the API's create.
    let api = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "API-1", "client_name": "By API", "industry": "Retail", "currency": "AUD"}),
        )
        .await;
    assert_eq!(api.status(), 201);
    let rows = audit_rows(&app, "client.create").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(shape(&rows[0]), shape(&rows[1]));
    let page_row = rows.iter().find(|r| r["entity_id"] == id.as_str()).unwrap();
    assert_eq!(page_row["summary"]["client_name"], "Wattle & Co");
    assert_eq!(page_row["actor_user_id"], app.a.editor.id.to_string());

    // Rename.
    let res = post_form(
        &app,
        &b,
        &format!("/clients/{id}/rename"),
        &[("client_name", "Wattle and Co")],
    )
    .await;
    assert_eq!(location(&res), format!("/clients/{id}?done=renamed"));
    let (_, page) = fetch(
        &app,
        Some(&b.cookie),
        &format!("/clients/{id}?done=renamed"),
    )
    .await;
    assert!(page.contains("Client renamed."));
    assert_eq!(
        client_json(&app, &id).await.1["client_name"],
        "Wattle and Co"
    );
    let rows = audit_rows(&app, "client.update").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["summary"]["changed"],
        json!({"client_name": {"from": "Wattle & Co", "to": "Wattle and Co"}})
    );
    // A blank name is refused with the reason, the form shown again; nothing changes.
    let res = post_form(
        &app,
        &b,
        &format!("/clients/{id}/rename"),
        &[("client_name", "   ")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Name must not be blank."));
    assert_eq!(
        client_json(&app, &id).await.1["client_name"],
        "Wattle and Co"
    );

    // Delete: the confirmation says what goes.
    let rows = json!({"rows": [
        {"record_date": "2025-01-01", "revenue": "10.00", "expenses": "1.00", "cash_flow": "9.00"},
        {"record_date": "2025-01-02", "revenue": "20.00", "expenses": "2.00", "cash_flow": "18.00"},
    ]});
    let res = app
        .post(
            &format!("/api/v1/clients/{id}/financials"),
            &app.a.editor,
            &rows,
        )
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let (status, confirm) = fetch(&app, Some(&b.cookie), &format!("/clients/{id}/delete")).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("2 days of financials"), "{confirm}");
    assert!(confirm.contains("0 lead events"));
    assert!(confirm.contains("0 custom metric values"));
    assert!(confirm.contains("cannot be undone"));
    // The wrong name deletes nothing.
    let res = post_form(
        &app,
        &b,
        &format!("/clients/{id}/delete"),
        &[("confirm", "Wattle")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("Nothing was deleted."));
    assert_eq!(client_json(&app, &id).await.0, 200);
    let res = post_form(
        &app,
        &b,
        &format!("/clients/{id}/delete"),
        &[("confirm", " Wattle and Co ")],
    )
    .await;
    assert_eq!(location(&res), "/clients?done=deleted");
    let (_, list) = fetch(&app, Some(&b.cookie), "/clients?done=deleted").await;
    assert!(list.contains("Client deleted, with its financials, lead events and metrics."));
    assert_eq!(client_json(&app, &id).await.0, 404);
    let rows = audit_rows(&app, "client.delete").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["summary"]["deleted_financials"], 2);
    assert_eq!(rows[0]["summary"]["client_name"], "Wattle and Co");
    // Gone: its pages are 404 pages.
    let (status, _) = fetch(&app, Some(&b.cookie), &format!("/clients/{id}/delete")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_add_form_names_what_is_wrong_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let b = browser(&app, &app.a.editor).await;
    let res = post_form(
        &app,
        &b,
        "/clients/new",
        &[
            ("client_name", ""),
            ("client_id", "X-1"),
            ("currency", "dollars"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("Name must not be blank."), "{html}");
    assert!(html.contains("Currency "), "the currency is named: {html}");
    assert!(
        html.contains(r#"value="X-1""#),
        "the typed client ID is kept"
    );
    // A taken client ID is a conflict, said on the form.
    let first = post_form(
        &app,
        &b,
        "/clients/new",
        &[("client_name", "One"), ("client_id", "DUP-1")],
    )
    .await;
    location(&first);
    let again = post_form(
        &app,
        &b,
        "/clients/new",
        &[("client_name", "Two"), ("client_id", "DUP-1")],
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let html = again.text().await.unwrap();
    assert!(html.contains(r#"class="flash err""#), "{html}");
    assert!(html.contains(r#"value="Two""#));
    let list: Value = app
        .get("/api/v1/clients?search=Two", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was added"
    );
}

#[tokio::test]
async fn viewers_get_no_client_forms_and_posting_them_anyway_is_refused() {
    let app = spawn_app().await;
    let created: Value = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "V-1", "client_name": "Viewed"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let b = browser(&app, &app.a.viewer).await;
    let (_, list) = fetch(&app, Some(&b.cookie), "/clients").await;
    assert!(!list.contains("data-add-client"));
    let (_, detail) = fetch(&app, Some(&b.cookie), &format!("/clients/{id}")).await;
    assert!(!detail.contains("data-manage-client"));
    assert!(!detail.contains("/delete"));
    for (path, fields) in [
        (
            "/clients/new".to_string(),
            vec![("client_name", "Sneaky"), ("client_id", "S-1")],
        ),
        (
            format!("/clients/{id}/rename"),
            vec![("client_name", "Sneaky")],
        ),
        (format!("/clients/{id}/delete"), vec![("confirm", "Viewed")]),
    ] {
        let res = post_form(&app, &b, &path, &fields).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "POST {path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("Not allowed"), "an HTML 403 page: {html}");
        assert!(html.contains(r#"class="topbar""#), "with the navigation");
    }
    let (status, _) = fetch(&app, Some(&b.cookie), &format!("/clients/{id}/delete")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(client_json(&app, id).await.1["client_name"], "Viewed");
    // And an EDITOR's form without its CSRF token is refused before anything changes.
    let editor = browser(&app, &app.a.editor).await;
    let res = app
        .anonymous(Method::POST, &format!("/clients/{id}/rename"))
        .header(COOKIE, &editor.cookie)
        .header(ORIGIN, &app.base_url)
        .form(&[("client_name", "No token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(client_json(&app, id).await.1["client_name"], "Viewed");
}

#[tokio::test]
async fn error_pages_keep_the_navigation_and_the_api_keeps_json() {
    let app = spawn_app().await;
    let b = browser(&app, &app.a.admin).await;
    // An unknown page, another tenant's or a made-up client: the 404 page inside the layout.
    for path in [
        "/no-such-page".to_string(),
        format!("/clients/{}", Uuid::now_v7()),
        "/clients/not-an-id".to_string(),
    ] {
        let (status, html) = fetch(&app, Some(&b.cookie), &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Page not found"), "{path}: {html}");
        assert!(html.contains(r#"class="topbar""#), "{path}: navigation");
        assert!(html.contains(">Log out<"), "{path}: the log-out form");
        assert!(
            html.contains(&app.a.admin.email),
            "{path}: who is signed in"
        );
    }
    let (_, html) = fetch(
        &app,
        Some(&b.cookie),
        &format!("/clients/{}", Uuid::now_v7()),
    )
    .await;
    assert!(
        html.contains(r#"<a href="/clients" aria-current="page">Clients</a>"#),
        "the client's section is current: {html}"
    );
    // Signed out, the 404 page has no top bar (there is nobody to show).
    let (status, html) = fetch(&app, None, "/no-such-page").await;
    assert_eq!(status, 404);
    assert!(html.contains("Page not found"));
    assert!(!html.contains(r#"class="topbar""#));
    // The API and non-browser clients keep the JSON error.
    for (path, accept) in [
        ("/api/v1/no-such-route", HTML),
        ("/no-such-page", "application/json"),
        ("/no-such-page", "*/*"),
    ] {
        let res = app
            .anonymous(Method::GET, path)
            .header(COOKIE, &b.cookie)
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path} with Accept {accept}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    // A role too low: the 403 page, with the navigation of that role.
    let v = browser(&app, &app.a.viewer).await;
    let (status, html) = fetch(&app, Some(&v.cookie), "/team").await;
    assert_eq!(status, 403);
    assert!(html.contains("Not allowed"));
    assert!(html.contains(r#"class="topbar""#));
    assert!(
        !html.contains(r#"href="/team""#),
        "a VIEWER's navigation has no Team"
    );
}

fn provider(p: Provider) -> ProviderConfig {
    let n = p.as_str();
    ProviderConfig::from_vars(p, |k| {
        (k == format!("ZIXLY_{n}_CLIENT_ID") || k == format!("ZIXLY_{n}_CLIENT_SECRET"))
            .then(|| "configured".to_string())
    })
    .unwrap()
    .unwrap()
}

/// The card of `code` on the integrations page.
fn card<'a>(html: &'a str, code: &str) -> &'a str {
    let start = html
        .find(&format!(r#"data-provider="{code}""#))
        .unwrap_or_else(|| panic!("no {code} card"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap()]
}

#[tokio::test]
async fn providers_this_server_cannot_connect_say_what_to_configure() {
    let app = TestApp::builder()
        .providers(vec![provider(Provider::Xero)])
        .spawn()
        .await;
    let b = browser(&app, &app.a.admin).await;
    let (status, html) = fetch(&app, Some(&b.cookie), "/integrations").await;
    assert_eq!(status, 200);
    let xero = card(&html, "XERO");
    assert!(
        xero.contains("Connect Xero"),
        "a configured provider: {xero}"
    );
    assert!(!xero.contains("Not set up"));
    let pipedrive = card(&html, "PIPEDRIVE");
    assert!(pipedrive.contains("Not set up"), "{pipedrive}");
    assert!(pipedrive.contains("ZIXLY_PIPEDRIVE_CLIENT_ID"));
    assert!(pipedrive.contains("ZIXLY_PIPEDRIVE_CLIENT_SECRET"));
    assert!(
        !pipedrive.contains("/connect"),
        "no Connect button that would fail"
    );
    // A VIEWER learns it is not set up, without the server's configuration.
    let v = browser(&app, &app.a.viewer).await;
    let (_, html) = fetch(&app, Some(&v.cookie), "/integrations").await;
    let pipedrive = card(&html, "PIPEDRIVE");
    assert!(pipedrive.contains("Not set up"));
    assert!(!pipedrive.contains("ZIXLY_PIPEDRIVE_CLIENT_ID"));
    // Posting the connect form anyway: the API's 409, as an HTML page with the navigation.
    let res = post_form(&app, &b, "/integrations/PIPEDRIVE/connect", &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let html = res.text().await.unwrap();
    assert!(html.contains("ZIXLY_PIPEDRIVE_CLIENT_ID"), "{html}");
    assert!(html.contains(r#"class="topbar""#));

    // Without the token encryption key no provider can be connected.
    let bare = TestApp::builder().without_integrations().spawn().await;
    let b = browser(&bare, &bare.a.admin).await;
    let (_, html) = fetch(&bare, Some(&b.cookie), "/integrations").await;
    for code in ["XERO", "HUBSPOT", "PIPEDRIVE", "MYOB", "ASANA"] {
        let c = card(&html, code);
        assert!(c.contains("Not set up"), "{code}: {c}");
        assert!(c.contains("ZIXLY_ENCRYPTION_KEY"), "{code}: {c}");
    }
}
