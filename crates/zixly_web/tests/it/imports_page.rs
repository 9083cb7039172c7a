//! The `/imports` page flow (issue 12 item 5): "Check file" makes the loader's checks (duplicate
//! keys) without writing, a clean check offers "Load this file" by token, exact copies are
//! reported as ignored (page and API), the history lists each import with a link to its stored
//! errors, the CSV templates load as they are, and an upload over the limit is an HTML page.

use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::Value;
use zixly_testkit::app::{spawn_app, TestApp, TestUser, PASSWORD};

const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";

struct Session {
    cookie: String,
    csrf: String,
}

async fn session(app: &TestApp, user: &TestUser) -> Session {
    let token = app.login_token(&user.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");
    let html = get_page(app, &cookie, "/imports").await;
    let csrf = html
        .split_once(r#"name="_csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .expect("the imports page carries a CSRF token");
    Session { cookie, csrf }
}

async fn get_page(app: &TestApp, cookie: &str, path: &str) -> String {
    let res = app
        .anonymous(Method::GET, path)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

/// Posts the imports form; `file` = (name, contents).
async fn post(
    app: &TestApp,
    s: &Session,
    fields: &[(&str, &str)],
    file: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut form = Form::new().text("_csrf", s.csrf.clone());
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some((name, csv)) = file {
        form = form.part(
            "file",
            Part::bytes(csv.as_bytes().to_vec())
                .file_name(name.to_string())
                .mime_str("text/csv")
                .unwrap(),
        );
    }
    app.anonymous(Method::POST, "/imports")
        .header(COOKIE, &s.cookie)
        .header(ORIGIN, &app.base_url)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn html_of(res: reqwest::Response, status: u16) -> String {
    let got = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

async fn count_clients(app: &TestApp, user: &TestUser) -> usize {
    let v: Value = app.get("/api/v1/clients", user).await.json().await.unwrap();
    v["data"].as_array().unwrap().len()
}

fn token_in(html: &str) -> Option<String> {
    html.split_once(r#"name="upload" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
}

#[tokio::test]
async fn check_finds_duplicate_keys_and_a_clean_check_loads_the_kept_file() {
    let app = spawn_app().await;
    let s = session(&app, &app.a.editor).await;

    // Two rows of one key that differ: "Check file" reports both lines (the loader's check),
    // offers no load, and writes nothing.
    let clash =
        format!("{HEADER}K-1,Key,2024-01-01,10.00,4.00,1.00\nK-1,Key,2024-01-01,11.00,4.00,1.00\n");
    let html = html_of(
        post(
            &app,
            &s,
            &[("dataset", "financials"), ("action", "check")],
            Some(("clash.csv", &clash)),
        )
        .await,
        200,
    )
    .await;
    assert!(
        html.contains("duplicate key (client_id, record_date, source_system)"),
        "{html}"
    );
    assert!(html.contains(r#"data-line="3""#), "{html}");
    assert!(
        token_in(&html).is_none(),
        "a file with errors is not offered for loading"
    );
    assert_eq!(count_clients(&app, &app.a.viewer).await, 0);

    // Exact copies: one row, "1 duplicate row ignored"; the check keeps the file for loading.
    let copies = format!("{HEADER}C-1,Copy,2024-01-01,10.00,4.00,1.00\nC-1,Copy,2024-01-01,10.00,4.00,1.00\nC-2,Other,2024-01-01,1.00,1.00,1.00\n");
    let html = html_of(
        post(
            &app,
            &s,
            &[("dataset", "financials"), ("action", "check")],
            Some(("copies.csv", &copies)),
        )
        .await,
        200,
    )
    .await;
    assert!(
        html.contains("3 lines read: 2 valid, 0 with errors. 1 duplicate row ignored"),
        "{html}"
    );
    let token = token_in(&html).expect("a clean check offers \"Load this file\"");
    assert_eq!(
        count_clients(&app, &app.a.viewer).await,
        0,
        "a check writes nothing"
    );

    // Another user cannot use the token.
    let other = session(&app, &app.a.admin).await;
    let html = html_of(
        post(
            &app,
            &other,
            &[("upload", &token), ("action", "load")],
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(html.contains("no longer kept"), "{html}");

    // "Load this file": no file sent, the checked one is loaded.
    let html = html_of(
        post(&app, &s, &[("upload", &token), ("action", "load")], None).await,
        200,
    )
    .await;
    assert!(html.contains(r#"data-load-status="succeeded""#), "{html}");
    assert!(
        html.contains(r#"<dd data-count="inserted">2</dd>"#),
        "{html}"
    );
    assert!(html.contains("1 duplicate row ignored"), "{html}");
    assert_eq!(count_clients(&app, &app.a.viewer).await, 2);
    // A token loads once.
    let html = html_of(
        post(&app, &s, &[("upload", &token), ("action", "load")], None).await,
        200,
    )
    .await;
    assert!(html.contains("no longer kept"), "{html}");

    // The history: this load, by whom, with its counts; a failed load links to its errors.
    let bad = format!("{HEADER}B-1,Bad,2024-01-01,12.345,4.00,1.00\n");
    let html = html_of(
        post(
            &app,
            &s,
            &[("dataset", "financials"), ("action", "load")],
            Some(("bad.csv", &bad)),
        )
        .await,
        200,
    )
    .await;
    assert!(html.contains("Nothing was loaded"), "{html}");
    let page = get_page(&app, &s.cookie, "/imports").await;
    let history = page
        .split_once(r#"data-table="import-history""#)
        .expect("a history table")
        .1;
    let rows: Vec<&str> = history.split("<tr data-run=").skip(1).collect();
    assert_eq!(
        rows.len(),
        2,
        "one line per import (checks are not imports): {history}"
    );
    assert!(
        rows[0].contains("bad.csv") && rows[0].contains(r#"data-run-status="failed""#),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("copies.csv") && rows[1].contains(&app.a.editor.email),
        "{}",
        rows[1]
    );
    let link = rows[0]
        .split_once(r#"href="/imports/runs/"#)
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(id, _)| id.to_string())
        .expect("a failed import links to its errors");
    let run = get_page(&app, &s.cookie, &format!("/imports/runs/{link}")).await;
    assert!(
        run.contains(r#"data-line="2""#) && run.contains("revenue"),
        "{run}"
    );
    // Another tenant's run is not found.
    let b = session(&app, &app.b.editor).await;
    let res = app
        .anonymous(Method::GET, &format!("/imports/runs/{link}"))
        .header(COOKIE, &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_api_reports_duplicates_ignored() {
    let app = spawn_app().await;
    let csv =
        format!("{HEADER}A-1,A,2024-01-01,10.00,4.00,1.00\nA-1,A,2024-01-01,10.00,4.00,1.00\n");
    let form = Form::new().text("dataset", "financials").part(
        "file",
        Part::bytes(csv.into_bytes())
            .file_name("a.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let res = app
        .request(Method::POST, "/api/v1/imports", &app.a.editor)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["inserted"].as_u64(),
            v["duplicates_ignored"].as_u64()
        ),
        (Some("succeeded"), Some(1), Some(1)),
        "{v}"
    );
}

#[tokio::test]
async fn each_template_downloads_and_loads_as_it_is() {
    let app = spawn_app().await;
    let s = session(&app, &app.a.editor).await;
    let page = get_page(&app, &s.cookie, "/imports").await;
    for dataset in ["financials", "lead_events", "custom_metrics"] {
        assert!(
            page.contains(&format!(r#"href="/imports/template/{dataset}""#)),
            "{dataset}: a link"
        );
        let res = app
            .anonymous(Method::GET, &format!("/imports/template/{dataset}"))
            .header(COOKIE, &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let csv = res.text().await.unwrap();
        assert_eq!(
            csv.lines().count(),
            2,
            "{dataset}: header and one example: {csv}"
        );
        let html = html_of(
            post(
                &app,
                &s,
                &[("dataset", dataset), ("action", "load")],
                Some(("template.csv", &csv)),
            )
            .await,
            200,
        )
        .await;
        assert!(
            html.contains(r#"data-load-status="succeeded""#),
            "{dataset}: {html}"
        );
    }
    let res = app
        .anonymous(Method::GET, "/imports/template/nope")
        .header(COOKIE, &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_page_states_its_limit_and_answers_an_oversized_upload_with_an_html_page() {
    let app = TestApp::builder()
        .config(|c| c.import_body_limit = 64 * 1024)
        .spawn()
        .await;
    let s = session(&app, &app.a.editor).await;
    let page = get_page(&app, &s.cookie, "/imports").await;
    assert!(page.contains("Files up to 64 KiB"), "{page}");
    let mut big = HEADER.to_string();
    let mut n = 0;
    while big.len() <= 3 * 64 * 1024 {
        n += 1;
        big.push_str(&format!("B-{n},Big,2024-01-01,10.00,4.00,1.00\n"));
    }
    let res = post(
        &app,
        &s,
        &[("dataset", "financials"), ("action", "load")],
        Some(("big.csv", &big)),
    )
    .await;
    assert_eq!(res.status(), 413);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(
        html.contains("File too large") && html.contains("64 KiB"),
        "{html}"
    );
    assert_eq!(count_clients(&app, &app.a.viewer).await, 0);
}
