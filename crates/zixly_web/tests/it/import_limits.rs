//! What an upload may cost (issue 9, items 2 and 3): slow uploads do not hold database
//! connections, imports are capped per tenant, a stalled body is 408, and hostile files (junk
//! lines, an unclosed quote, huge values) answer with bounded errors — through the API and the
//! `/imports` page, which share the upload action.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, COOKIE, ORIGIN};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zixly_testkit::app::{TestApp, TestUser, PASSWORD};

const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";
const BOUNDARY: &str = "zixlyslowuploadboundary";

/// An upload over a raw connection that sends its headers, the `dataset` field and the start of
/// the file part, then nothing more (the caller trickles or stalls). `before_file` stops inside
/// the `dataset` field instead.
async fn slow_upload(app: &TestApp, user: &TestUser, before_file: bool) -> TcpStream {
    let addr = app.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = if before_file {
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nfinan")
    } else {
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nfinancials\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n{HEADER}"
        )
    };
    let request = format!(
        "POST /api/v1/imports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000000\r\n\r\n{body}",
        user.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Sends one byte of a CSV line every 200 ms until aborted (the attack of issue 9).
fn trickle(mut stream: TcpStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let line = b"T-1,Trickle,2024-01-01,1.00,1.00,0.00\n";
        for b in line.iter().cycle() {
            if stream.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The status line and body of the response on `stream` (read until the server closes it or
/// `within` passes).
async fn response(stream: &mut TcpStream, within: Duration) -> (String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| got.len() >= end + 4 + len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn upload(app: &TestApp, user: &TestUser, csv: Vec<u8>) -> reqwest::Response {
    let form = Form::new().text("dataset", "financials").part(
        "file",
        Part::bytes(csv)
            .file_name("upload.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    app.request(Method::POST, "/api/v1/imports", user)
        .multipart(form)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

fn good_csv() -> Vec<u8> {
    format!("{HEADER}G-1,Good,2024-01-01,10.00,4.00,1.00\n").into_bytes()
}

#[tokio::test]
async fn slow_uploads_hold_no_database_connection() {
    // Caps raised so that every slow upload reaches the file part: this test is about the pool.
    let app = TestApp::builder()
        .config(|c| {
            c.imports_per_tenant = 64;
            c.imports_total = 64;
            c.import_idle_timeout = Duration::from_secs(60);
        })
        .spawn()
        .await;
    let (_, _, pool_max) = app.state.db.pool_status();
    let slow = pool_max + 4;
    let mut trickles = Vec::new();
    for _ in 0..slow {
        trickles.push(trickle(slow_upload(&app, &app.a.editor, false).await));
    }
    // Let every upload reach its file part (before the fix, each then held a connection).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for attempt in 0..3 {
        let started = Instant::now();
        let ready = app
            .anonymous(Method::GET, "/readyz")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/readyz answers within 5 s");
        assert_eq!(
            ready.status(),
            200,
            "attempt {attempt}: /readyz with {slow} slow uploads"
        );
        let other = app
            .request(Method::GET, "/api/v1/clients", &app.b.viewer)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("another tenant's request answers within 5 s");
        assert_eq!(other.status(), 200);
        let same = app
            .request(Method::GET, "/api/v1/clients", &app.a.viewer)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("the uploader's own tenant answers too");
        assert_eq!(same.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // And an import of another tenant runs meanwhile.
    let res = upload(&app, &app.b.editor, good_csv()).await;
    assert_eq!(res.status(), 200);
    for t in trickles {
        t.abort();
    }
}

#[tokio::test]
async fn imports_are_capped_per_tenant() {
    let app = TestApp::builder()
        .config(|c| c.import_idle_timeout = Duration::from_secs(60))
        .spawn()
        .await;
    assert_eq!(app.state.config.imports_per_tenant, 2);
    let slow1 = slow_upload(&app, &app.a.editor, false).await;
    let slow2 = slow_upload(&app, &app.a.editor, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A third import of tenant A, by any of its users: 429 with Retry-After, at once.
    for user in [&app.a.editor, &app.a.admin] {
        let started = Instant::now();
        let res = upload(&app, user, good_csv()).await;
        assert_eq!(res.status(), 429);
        assert!(started.elapsed() < Duration::from_secs(2));
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "too_many_imports", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 2 at once"),
            "{v}"
        );
    }
    // The page shares the cap.
    let (cookie, csrf) = page_session(&app, &app.a.editor).await;
    let res = page_post(&app, &cookie, &csrf, good_csv(), "check").await;
    assert_eq!(res.status(), 429);

    // Tenant B is not affected.
    let res = upload(&app, &app.b.editor, good_csv()).await;
    assert_eq!(res.status(), 200);

    // Closing the slow uploads frees A's slots.
    drop((slow1, slow2));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = upload(&app, &app.a.editor, good_csv()).await;
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 429);
        assert!(Instant::now() < deadline, "slots were not released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stalled_upload_is_408_and_frees_its_slot() {
    let app = TestApp::builder()
        .config(|c| c.import_idle_timeout = Duration::from_secs(1))
        .spawn()
        .await;
    // Stalled in the file part and before it: both are refused after the idle limit.
    for before_file in [false, true] {
        let started = Instant::now();
        let mut stream = slow_upload(&app, &app.a.editor, before_file).await;
        let (status, body) = response(&mut stream, Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        assert!(status.starts_with("HTTP/1.1 408"), "{status} {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "upload_stalled", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no data arrived for 1 s"),
            "{v}"
        );
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }
    // A third stall, then the two slots of the tenant are free again: nothing leaked.
    let mut stream = slow_upload(&app, &app.a.editor, false).await;
    let (status, _) = response(&mut stream, Duration::from_secs(10)).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    let res = upload(&app, &app.a.editor, good_csv()).await;
    assert_eq!(res.status(), 200);
    // Nothing of the stalled uploads was recorded as a load.
    let runs = count(&app, "select count(*) from sync_runs").await;
    assert_eq!(runs, 1);
}

/// `select count(*) ...` as a superuser (what the tests check was or was not stored).
async fn count(app: &zixly_testkit::app::TestApp, sql: &str) -> i64 {
    let client = app.db.superuser().await;
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A file of `lines` junk lines (3 errors each).
fn junk_lines(lines: usize) -> Vec<u8> {
    let mut csv = HEADER.to_string();
    for _ in 0..lines {
        csv.push_str("J-1,Junk,junk,junk,0,junk\n");
    }
    csv.into_bytes()
}

/// Line 3 opens a quote that never closes; 2 MiB follow.
fn unclosed_quote() -> Vec<u8> {
    let mut csv = format!(
        "{HEADER}Q-1,Quote,2024-01-01,1.00,1.00,0.00\nQ-2,\"Quote,2024-01-02,1.00,1.00,0.00\n"
    );
    while csv.len() < 2 * 1024 * 1024 {
        csv.push_str("Q-3,Quote,2024-01-03,1.00,1.00,0.00\n");
    }
    csv.into_bytes()
}

/// 20 lines with a 500,000-character revenue (each record under the 1 MiB limit).
fn huge_values() -> Vec<u8> {
    let value = "7".repeat(500_000);
    let mut csv = HEADER.to_string();
    for day in 1..=20 {
        csv.push_str(&format!("H-1,Huge,2024-01-{day:02},{value},1.00,0.00\n"));
    }
    csv.into_bytes()
}

async fn body_of(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    let body = res.text().await.unwrap();
    assert!(body.len() < 128 * 1024, "a {} byte answer", body.len());
    body
}

#[tokio::test]
async fn hostile_uploads_answer_bounded_errors() {
    let app = TestApp::builder().spawn().await;

    let v: Value = serde_json::from_str(
        &body_of(upload(&app, &app.a.editor, junk_lines(50_000)).await, 422).await,
    )
    .unwrap();
    assert_eq!(v["errors"].as_array().unwrap().len(), 100, "{v}");
    assert_eq!(v["error"]["details"].as_array().unwrap().len(), 100);
    assert_eq!(v["errors_not_listed"], 149_900);
    assert_eq!(v["rejected"], 50_000);
    assert_eq!(
        v["error_counts"],
        serde_json::json!({"cash_flow": 50_000, "record_date": 50_000, "revenue": 50_000})
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("149900 more errors not listed; by column: 50000 in cash_flow"),
        "{}",
        v["error"]["message"]
    );

    let v: Value = serde_json::from_str(
        &body_of(upload(&app, &app.a.editor, unclosed_quote()).await, 422).await,
    )
    .unwrap();
    assert_eq!(
        v["error"]["message"],
        "nothing written: line 3: record longer than 1048576 bytes (unclosed quote at line 3?)",
        "{v}"
    );
    assert_eq!(v["inserted"], 0);

    let v: Value =
        serde_json::from_str(&body_of(upload(&app, &app.a.editor, huge_values()).await, 422).await)
            .unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20);
    for e in errors {
        let reason = e["reason"].as_str().unwrap();
        assert!(reason.len() < 300, "{reason}");
        assert!(
            reason.contains("…` (500000 characters) is out of range"),
            "{reason}"
        );
    }
    // Nothing was written by any of them.
    let rows = count(&app, "select count(*) from financials").await;
    assert_eq!(rows, 0);
}

/// A session cookie and the CSRF token of the `/imports` form for `user`.
async fn page_session(app: &TestApp, user: &TestUser) -> (String, String) {
    let token = app.login_token(&user.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");
    let html = app
        .anonymous(Method::GET, "/imports")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split_once(r#"name="_csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .expect("the form carries a CSRF token");
    (cookie, csrf)
}

async fn page_post(
    app: &TestApp,
    cookie: &str,
    csrf: &str,
    csv: Vec<u8>,
    action: &str,
) -> reqwest::Response {
    let form = Form::new()
        .text("_csrf", csrf.to_string())
        .text("dataset", "financials")
        .part(
            "file",
            Part::bytes(csv)
                .file_name("hostile.csv")
                .mime_str("text/csv")
                .unwrap(),
        )
        .text("action", action.to_string());
    app.anonymous(Method::POST, "/imports")
        .header(COOKIE, cookie)
        .header(ORIGIN, HeaderValue::from_str(&app.base_url).unwrap())
        .multipart(form)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_imports_page_renders_bounded_results_for_hostile_files() {
    let app = TestApp::builder().spawn().await;
    let (cookie, csrf) = page_session(&app, &app.a.editor).await;

    // 9.9 MB of junk lines used to render 784 MB of HTML.
    let html = body_of(
        page_post(&app, &cookie, &csrf, junk_lines(380_000), "check").await,
        200,
    )
    .await;
    assert!(
        html.contains("380000 lines read: 0 valid, 380000 with errors."),
        "{html}"
    );
    assert_eq!(
        html.matches("status invalid").count(),
        34,
        "100 errors listed, on 34 lines"
    );
    assert!(
        html.contains("and 1139900 more errors not listed. All errors by column: 380000 in cash_flow, 380000 in record_date, 380000 in revenue."),
        "{html}"
    );

    let html = body_of(
        page_post(&app, &cookie, &csrf, unclosed_quote(), "load").await,
        200,
    )
    .await;
    assert!(
        html.contains("line 3: record longer than 1048576 bytes (unclosed quote at line 3?)"),
        "{html}"
    );
    assert!(html.contains("Nothing was loaded"), "{html}");

    let html = body_of(
        page_post(&app, &cookie, &csrf, huge_values(), "check").await,
        200,
    )
    .await;
    assert_eq!(html.matches("status invalid").count(), 20);
    assert!(
        html.contains("(500000 characters) is out of range"),
        "{html}"
    );

    // A form without its CSRF token stores nothing and is refused.
    let res = page_post(&app, &cookie, "wrong", good_csv(), "load").await;
    assert_eq!(res.status(), 403);
    let rows = count(&app, "select count(*) from financials").await;
    assert_eq!(rows, 0);

    // A good file still loads through the page.
    let html = body_of(
        page_post(&app, &cookie, &csrf, good_csv(), "load").await,
        200,
    )
    .await;
    assert!(html.contains(r#"data-load-status="succeeded""#), "{html}");
}
