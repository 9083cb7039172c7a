//! Writes through the loader over HTTP: batch upserts (`POST /clients/{id}/financials`,
//! `/lead-events`, `/metrics`) and CSV uploads (`POST /imports`): per-row/per-line errors,
//! atomic by default, `skip_invalid`, idempotent re-sends, size limit, tenant isolation, audit
//! rows per write. Role coverage is in `routes.rs` (ROUTES).

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp, TestTenant, TestUser};

async fn new_client(app: &TestApp, tenant: &TestTenant, client_id: &str) -> String {
    let res = app
        .post(
            "/api/v1/clients",
            &tenant.editor,
            &json!({"client_id": client_id, "client_name": format!("Client {client_id}")}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn json_of(res: reqwest::Response, status: u16, what: &str) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    body
}

/// Financial rows of a client in January 2024, as [date, revenue, expenses, net_profit].
async fn financials(app: &TestApp, user: &TestUser, id: &str) -> Vec<[String; 4]> {
    let res = app
        .get(
            &format!("/api/v1/clients/{id}/financials?from=2024-01-01&to=2024-01-31"),
            user,
        )
        .await;
    let v = json_of(res, 200, "reading financials").await;
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ["record_date", "revenue", "expenses", "net_profit"]
                .map(|k| r[k].as_str().unwrap().to_string())
        })
        .collect()
}

/// Audit rows of `action` in tenant A, oldest first.
async fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/v1/audit-logs?limit=500&action={action}"),
            &app.a.admin,
        )
        .await;
    let v = json_of(res, 200, "audit log").await;
    let mut rows = v["data"].as_array().unwrap().clone();
    rows.reverse();
    rows
}

fn fin(date: &str, revenue: &str, expenses: &str) -> Value {
    json!({"record_date": date, "revenue": revenue, "expenses": expenses, "cash_flow": "0.00"})
}

#[tokio::test]
async fn financial_batches_are_atomic_skip_invalid_idempotent_and_audited() {
    let app = spawn_app().await;
    let id = new_client(&app, &app.a, "F-1").await;
    let path = format!("/api/v1/clients/{id}/financials");
    let body = json!({"rows": [
        fin("2024-01-01", "100.00", "40.00"),
        fin("2024-01-02", "12.345", "1.00"),
        fin("2024-01-03", "200.50", "50.25"),
    ]});

    // Atomic by default: one bad row, nothing written, the row and field named.
    let v = json_of(app.post(&path, &app.a.editor, &body).await, 422, "atomic").await;
    assert_eq!(v["error"]["code"], "validation_failed");
    let details = v["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{v}");
    assert_eq!(details[0]["row"], 2);
    assert_eq!(details[0]["field"], "revenue");
    assert!(details[0]["line"].is_null(), "{v}");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["inserted"], 0);
    let failed_run = v["sync_run_id"].as_str().unwrap().to_string();
    assert!(financials(&app, &app.a.viewer, &id).await.is_empty());

    // skip_invalid loads the others.
    let v = json_of(
        app.post(&format!("{path}?skip_invalid=true"), &app.a.editor, &body)
            .await,
        200,
        "skip_invalid",
    )
    .await;
    assert_eq!(
        (
            &v["status"],
            &v["inserted"],
            &v["updated"],
            &v["unchanged"],
            &v["rejected"]
        ),
        (
            &json!("partial"),
            &json!(2),
            &json!(0),
            &json!(0),
            &json!(1)
        ),
        "{v}"
    );
    assert_eq!(v["errors"][0]["row"], 2, "{v}");
    let partial_run = v["sync_run_id"].as_str().unwrap().to_string();
    assert_eq!(
        financials(&app, &app.a.viewer, &id).await,
        [
            ["2024-01-01", "100.00", "40.00", "60.00"],
            ["2024-01-03", "200.50", "50.25", "150.25"],
        ]
    );

    // The same rows again: all unchanged. One changed value: one update.
    let valid = json!({"rows": [fin("2024-01-01", "100.00", "40.00"), fin("2024-01-03", "200.50", "50.25")]});
    let v = json_of(app.post(&path, &app.a.editor, &valid).await, 200, "again").await;
    assert_eq!(
        (
            &v["status"],
            &v["inserted"],
            &v["updated"],
            &v["unchanged"],
            &v["rejected"]
        ),
        (
            &json!("succeeded"),
            &json!(0),
            &json!(0),
            &json!(2),
            &json!(0)
        ),
        "{v}"
    );
    let changed = json!({"rows": [fin("2024-01-01", "100.00", "40.00"), {"record_date": "2024-01-03", "revenue": 300, "expenses": "50.25", "cash_flow": "1.5"}]});
    let v = json_of(
        app.post(&path, &app.a.editor, &changed).await,
        200,
        "changed",
    )
    .await;
    assert_eq!(
        (&v["updated"], &v["unchanged"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(financials(&app, &app.a.viewer, &id).await[1][1], "300.00");

    // One audit row per request, carrying its sync run.
    let audit = audit_rows(&app, "financials.upsert").await;
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(audit.iter().all(
        |r| r["entity_id"] == id.as_str() && r["actor_user_id"] == app.a.editor.id.to_string()
    ));
    assert_eq!(audit[0]["summary"]["sync_run_id"], failed_run.as_str());
    assert_eq!(audit[0]["summary"]["status"], "failed");
    assert_eq!(audit[1]["summary"]["sync_run_id"], partial_run.as_str());
    assert_eq!(audit[1]["summary"]["inserted"], 2);
    assert_eq!(audit[3]["summary"]["updated"], 1);
}

#[tokio::test]
async fn batch_rows_are_checked_one_by_one() {
    let app = spawn_app().await;
    let id = new_client(&app, &app.a, "F-2").await;
    let path = format!("/api/v1/clients/{id}/financials");
    let body = json!({"rows": [
        fin("2024-01-05", "1.00", "0.00"),
        {"client_id": "OTHER", "record_date": "2024-01-06", "revenue": "1", "expenses": "0", "cash_flow": "0", "colour": "red"},
        fin("2024-01-05", "2.00", "0.00"),
        {"record_date": "2024-02-30", "revenue": true, "expenses": "0", "cash_flow": "0"},
    ]});
    let v = json_of(app.post(&path, &app.a.editor, &body).await, 422, "mixed").await;
    let details: Vec<(u64, Option<&str>, &str)> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["row"].as_u64().unwrap(),
                d["field"].as_str(),
                d["reason"].as_str().unwrap(),
            )
        })
        .collect();
    let fields: Vec<(u64, Option<&str>)> = details.iter().map(|d| (d.0, d.1)).collect();
    assert_eq!(
        fields,
        [
            (1, None),
            (2, Some("client_id")),
            (2, Some("colour")),
            (3, None),
            (4, Some("revenue")),
        ],
        "{v}"
    );
    // Duplicate keys name the other row, in rows.
    assert!(details[0].2.contains("also on row 3"), "{}", details[0].2);
    assert!(details[3].2.contains("also on row 1"), "{}", details[3].2);
    assert_eq!(v["rejected"], 4);
    assert!(financials(&app, &app.a.viewer, &id).await.is_empty());

    // An empty batch is refused; so is a body that is not a batch.
    let v = json_of(
        app.post(&path, &app.a.editor, &json!({"rows": []})).await,
        422,
        "empty",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "rows");
    let res = app.post(&path, &app.a.editor, &json!({"data": []})).await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn lead_event_and_metric_batches_load_for_the_paths_client() {
    let app = spawn_app().await;
    let id = new_client(&app, &app.a, "L-1").await;
    let events = json!({"rows": [
        {"event_date": "2024-01-10T09:00:00Z", "lead_id": "D-1", "stage": "proposal", "value": "5000.00", "status": "active"},
        {"event_date": "2024-01-12T09:00:00Z", "lead_id": "D-1", "stage": "won", "value": "5000.00", "status": "WON"},
    ]});
    let path = format!("/api/v1/clients/{id}/lead-events");
    let v = json_of(app.post(&path, &app.a.editor, &events).await, 200, "events").await;
    assert_eq!(
        (&v["status"], &v["inserted"]),
        (&json!("succeeded"), &json!(2)),
        "{v}"
    );
    let v = json_of(app.post(&path, &app.a.editor, &events).await, 200, "again").await;
    assert_eq!(v["unchanged"], 2, "{v}");
    let res = app
        .get(
            &format!("{path}?from=2024-01-01&to=2024-01-31"),
            &app.a.viewer,
        )
        .await;
    let read = json_of(res, 200, "read events").await;
    let statuses: Vec<&str> = read["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "won"]);
    assert_eq!(read["data"][0]["source_system"], "api");

    let metrics = json!({"rows": [
        {"metric_name": "nps", "metric_value": "42.5", "record_date": "2024-01-15"},
        {"metric_name": "nps", "metric_value": "1.23456", "record_date": "2024-01-16"},
    ]});
    let path = format!("/api/v1/clients/{id}/metrics");
    let v = json_of(
        app.post(&path, &app.a.editor, &metrics).await,
        422,
        "metrics",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["row"], 2);
    assert_eq!(v["error"]["details"][0]["field"], "metric_value");
    let v = json_of(
        app.post(
            &format!("{path}?skip_invalid=true"),
            &app.a.editor,
            &metrics,
        )
        .await,
        200,
        "metrics skip",
    )
    .await;
    assert_eq!(
        (&v["inserted"], &v["rejected"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    let res = app
        .get(
            &format!("{path}?from=2024-01-01&to=2024-01-31"),
            &app.a.viewer,
        )
        .await;
    let read = json_of(res, 200, "read metrics").await;
    assert_eq!(read["data"][0]["metric_value"], "42.5000");

    // The client kept its name (lead events and metrics do not carry it).
    let c = json_of(
        app.get(&format!("/api/v1/clients/{id}"), &app.a.viewer)
            .await,
        200,
        "client",
    )
    .await;
    assert_eq!(c["client_name"], "Client L-1");
    assert_eq!(audit_rows(&app, "lead_events.upsert").await.len(), 2);
    assert_eq!(audit_rows(&app, "custom_metrics.upsert").await.len(), 2);
}

#[tokio::test]
async fn batches_respect_tenants_and_roles() {
    let app = spawn_app().await;
    let b_id = new_client(&app, &app.b, "B-1").await;
    let a_id = new_client(&app, &app.a, "A-1").await;
    let body = json!({"rows": [fin("2024-01-01", "1.00", "0.00")]});
    // Tenant A's editor with tenant B's client: 404, nothing written in B.
    let res = app
        .post(
            &format!("/api/v1/clients/{b_id}/financials"),
            &app.a.editor,
            &body,
        )
        .await;
    assert_eq!(
        json_of(res, 404, "cross-tenant").await["error"]["code"],
        "not_found"
    );
    assert!(financials(&app, &app.b.viewer, &b_id).await.is_empty());
    // A VIEWER may not write.
    let res = app
        .post(
            &format!("/api/v1/clients/{a_id}/financials"),
            &app.a.viewer,
            &body,
        )
        .await;
    assert_eq!(
        json_of(res, 403, "viewer").await["error"]["code"],
        "forbidden"
    );
    assert!(financials(&app, &app.a.viewer, &a_id).await.is_empty());
    assert!(audit_rows(&app, "financials.upsert").await.is_empty());
}

// ------------------------------------------------------------------------------------------------
// CSV uploads

const HEADER: &str = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";

async fn upload(
    app: &TestApp,
    user: &TestUser,
    fields: &[(&str, &str)],
    file: Option<&str>,
) -> reqwest::Response {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some(csv) = file {
        form = form.part(
            "file",
            Part::bytes(csv.as_bytes().to_vec())
                .file_name("upload.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    }
    app.request(Method::POST, "/api/v1/imports", user)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn client_ids(app: &TestApp, user: &TestUser) -> Vec<String> {
    let v = json_of(app.get("/api/v1/clients", user).await, 200, "clients").await;
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn csv_upload_reports_lines_is_atomic_and_idempotent() {
    let app = spawn_app().await;
    let csv = format!(
        "{HEADER}U-1,Upload One,2024-01-01,10.00,4.00,1.00\nU-1,Upload One,2024-01-02,abc,4.00,1.00\nU-2,Upload Two,2024-01-01,7.00,2.00,0.00\n"
    );
    let ds = ("dataset", "financials");

    // A bad line: reported with its line number and column; nothing written.
    let v = json_of(
        upload(&app, &app.a.editor, &[ds], Some(&csv)).await,
        422,
        "atomic",
    )
    .await;
    assert_eq!(v["error"]["code"], "validation_failed");
    assert_eq!(v["status"], "failed");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(
        (&errors[0]["line"], &errors[0]["column"]),
        (&json!(3), &json!("revenue"))
    );
    assert_eq!(v["error"]["details"], v["errors"]);
    assert_eq!(
        (&v["errors_not_listed"], &v["rejected"]),
        (&json!(0), &json!(1))
    );
    assert!(v["sync_run_id"].is_string());
    assert!(client_ids(&app, &app.a.viewer).await.is_empty());

    // skip_invalid (form field) loads the other lines.
    let v = json_of(
        upload(
            &app,
            &app.a.editor,
            &[ds, ("skip_invalid", "true")],
            Some(&csv),
        )
        .await,
        200,
        "skip_invalid",
    )
    .await;
    assert_eq!(
        (
            &v["status"],
            &v["inserted"],
            &v["rejected"],
            &v["errors"][0]["line"]
        ),
        (&json!("partial"), &json!(2), &json!(1), &json!(3)),
        "{v}"
    );
    assert_eq!(client_ids(&app, &app.a.viewer).await, ["U-1", "U-2"]);
    assert!(
        client_ids(&app, &app.b.viewer).await.is_empty(),
        "tenant B untouched"
    );

    // The valid lines again (query flag this time): all unchanged.
    let valid = format!(
        "{HEADER}U-1,Upload One,2024-01-01,10.00,4.00,1.00\nU-2,Upload Two,2024-01-01,7.00,2.00,0.00\n"
    );
    let v = json_of(
        upload(&app, &app.a.editor, &[ds], Some(&valid)).await,
        200,
        "again",
    )
    .await;
    assert_eq!(
        (&v["status"], &v["inserted"], &v["updated"], &v["unchanged"]),
        (&json!("succeeded"), &json!(0), &json!(0), &json!(2)),
        "{v}"
    );

    // One audit row per upload, with its outcome.
    let audit = audit_rows(&app, "import.csv").await;
    let statuses: Vec<&str> = audit
        .iter()
        .map(|r| r["summary"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "partial", "succeeded"]);
    assert!(audit.iter().all(|r| r["entity_id"] == "financials"
        && r["summary"]["file_name"] == "upload.csv"
        && r["actor_user_id"] == app.a.editor.id.to_string()));
    assert_eq!(audit[2]["summary"]["sync_run_id"], v["sync_run_id"]);
}

#[tokio::test]
async fn csv_upload_form_errors_header_errors_and_roles() {
    let app = spawn_app().await;
    let csv = format!("{HEADER}U-1,Upload One,2024-01-01,10.00,4.00,1.00\n");
    // `dataset` must come first and be known.
    let v = json_of(
        upload(&app, &app.a.editor, &[], Some(&csv)).await,
        422,
        "no dataset",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "dataset");
    let v = json_of(
        upload(&app, &app.a.editor, &[("dataset", "invoices")], Some(&csv)).await,
        422,
        "bad dataset",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "dataset");
    let v = json_of(
        upload(&app, &app.a.editor, &[("dataset", "financials")], None).await,
        422,
        "no file",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "file");
    // A header with an unknown column: line 1, nothing written.
    let v = json_of(
        upload(
            &app,
            &app.a.editor,
            &[("dataset", "lead_events")],
            Some(&csv),
        )
        .await,
        422,
        "wrong layout",
    )
    .await;
    assert_eq!(v["errors"][0]["line"], 1, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("header"),
        "{v}"
    );
    // Not multipart at all.
    let res = app.post("/api/v1/imports", &app.a.editor, &json!({})).await;
    assert_eq!(
        json_of(res, 400, "json body").await["error"]["code"],
        "bad_request"
    );
    // VIEWER: 403, nothing written.
    let res = upload(
        &app,
        &app.a.viewer,
        &[("dataset", "financials")],
        Some(&csv),
    )
    .await;
    assert_eq!(
        json_of(res, 403, "viewer").await["error"]["code"],
        "forbidden"
    );
    assert!(client_ids(&app, &app.a.viewer).await.is_empty());
    // ADMIN may.
    let res = upload(&app, &app.a.admin, &[("dataset", "financials")], Some(&csv)).await;
    assert_eq!(json_of(res, 200, "admin").await["inserted"], 1);
}

#[tokio::test]
async fn csv_upload_over_the_limit_writes_nothing() {
    let app = TestApp::builder()
        .config(|c| {
            c.body_limit = 512;
            c.import_body_limit = 64 * 1024;
        })
        .spawn()
        .await;
    // Over the API's default limit but within the upload's: accepted.
    let mut csv = HEADER.to_string();
    for day in 1..=28 {
        csv.push_str(&format!("S-1,Small,2024-02-{day:02},10.00,4.00,1.00\n"));
    }
    assert!(csv.len() > 512);
    let v = json_of(
        upload(
            &app,
            &app.a.editor,
            &[("dataset", "financials")],
            Some(&csv),
        )
        .await,
        200,
        "within the limit",
    )
    .await;
    assert_eq!(v["inserted"], 28);
    // Over the upload limit: 413, and the valid lines read before it are not written.
    let mut big = HEADER.to_string();
    let mut n = 0;
    while big.len() <= 64 * 1024 {
        n += 1;
        big.push_str(&format!("B-{n},Big,2024-01-01,10.00,4.00,1.00\n"));
    }
    let res = upload(
        &app,
        &app.a.editor,
        &[("dataset", "financials"), ("skip_invalid", "true")],
        Some(&big),
    )
    .await;
    assert_eq!(
        json_of(res, 413, "too large").await["error"]["code"],
        "payload_too_large"
    );
    assert_eq!(client_ids(&app, &app.a.viewer).await, ["S-1"]);
}
