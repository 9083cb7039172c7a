//! Clients, series and reports over real HTTP: validation and conflicts, audit rows per write,
//! money as decimal strings, CSV export (RFC 4180, formula cells neutralized), tenant isolation.
//! Role and cross-tenant coverage of these routes is in `routes.rs` (ROUTES).

use serde_json::{json, Value};
use uuid::Uuid;
use zixly_testkit::app::{spawn_app, TestApp};

async fn audit_actions(app: &TestApp, entity_id: &str) -> Vec<String> {
    let res = app.get("/api/v1/audit-logs?limit=500", &app.a.admin).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let mut actions: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["entity_id"] == entity_id)
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    actions.sort();
    actions
}

#[tokio::test]
async fn client_writes_validate_conflict_and_are_audited() {
    let app = spawn_app().await;
    let body = json!({"client_id": "X-1", "client_name": "=HYPERLINK(\"http://evil.example\",\"x\")", "industry": "-cmd", "currency": "AUD"});
    let res = app.post("/api/v1/clients", &app.a.editor, &body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    let res = app.post("/api/v1/clients", &app.a.editor, &body).await;
    assert_eq!(res.status(), 409, "client_id is unique per tenant");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["details"][0]["field"], "client_id");
    // The same external id in another tenant is fine.
    assert_eq!(
        app.post("/api/v1/clients", &app.b.editor, &body)
            .await
            .status(),
        201
    );

    let res = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": " ", "client_name": "ok", "currency": "XYZ"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    let fields: Vec<&str> = err["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["client_id", "currency"]);

    let res = app
        .patch(
            &format!("/api/v1/clients/{id}"),
            &app.a.editor,
            &json!({"client_name": "Renamed", "industry": null}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(
        (
            updated["client_name"].as_str(),
            updated["industry"].is_null()
        ),
        (Some("Renamed"), true)
    );
    assert_eq!(
        app.patch(&format!("/api/v1/clients/{id}"), &app.a.editor, &json!({}))
            .await
            .status(),
        422
    );

    assert_eq!(
        app.delete(&format!("/api/v1/clients/{id}"), &app.a.editor)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get(&format!("/api/v1/clients/{id}"), &app.a.viewer)
            .await
            .status(),
        404
    );
    assert_eq!(
        audit_actions(&app, &id).await,
        ["client.create", "client.delete", "client.update"]
    );
    // The deleted client is gone from the list too.
    let res = app
        .get("/api/v1/clients?search=renamed", &app.a.viewer)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["data"], json!([]));
}

#[tokio::test]
async fn csv_export_is_rfc4180_and_neutralizes_formulas() {
    let app = spawn_app().await;
    for (cid, name, industry) in [
        ("C-1", "=HYPERLINK(\"http://evil.example\",\"x\")", "-cmd"),
        ("C-2", "Plain, with comma", "@SUM(A1)"),
        ("C-3", "+61 Pty", "line\nbreak"),
    ] {
        let res = app
            .post(
                "/api/v1/clients",
                &app.a.editor,
                &json!({"client_id": cid, "client_name": name, "industry": industry}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let res = app
        .get("/api/v1/clients?format=csv&sort=created", &app.a.viewer)
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = res.text().await.unwrap();
    let records: Vec<&str> = body.split("\r\n").collect();
    assert_eq!(
        records[0],
        "id,client_id,client_name,industry,currency,created_at,updated_at"
    );
    assert!(
        records[1].contains(",C-1,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",'-cmd,,"),
        "{}",
        records[1]
    );
    assert!(
        records[2].contains(",C-2,\"Plain, with comma\",'@SUM(A1),,"),
        "{}",
        records[2]
    );
    assert!(
        records[3].contains(",C-3,'+61 Pty,\"line\nbreak\",,"),
        "{}",
        records[3]
    );
    assert_eq!(records.last(), Some(&""), "every record ends with CRLF");
    assert_eq!(records.len(), 5);
}

#[tokio::test]
async fn reports_and_series_answer_money_as_strings_and_stay_in_the_tenant() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "ACME-7", "client_name": "Acme"}),
        )
        .await;
    let client: Value = res.json().await.unwrap();
    let id: Uuid = client["id"].as_str().unwrap().parse().unwrap();
    let t = app.a.id;
    let su = app.db.superuser().await;
    su.batch_execute(&format!(
        "set role zixly_owner;
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow) values
           ('{t}', '{id}', '2025-01-10', 10000.00, 4000.00, 6000.00, 500.00),
           ('{t}', '{id}', '2025-02-10', 5000.00, 2000.00, 3000.00, -100.00),
           ('{t}', '{id}', '2024-12-01', 800.00, 200.00, 600.00, 0.00);
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, status) values
           ('{t}', '{id}', '2025-01-05T01:00:00Z', 'L1', 'lead', 100.00, 'active'),
           ('{t}', '{id}', '2025-01-08T01:00:00Z', 'L1', 'proposal', 250.00, 'won'),
           ('{t}', '{id}', '2025-01-06T01:00:00Z', 'L2', 'lead', 50.00, 'lost');"
    ))
    .await
    .unwrap();

    let res = app
        .get(
            "/api/v1/reports/profitability?from=2025-01-01&to=2025-03-31",
            &app.a.viewer,
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["base_currency"].as_str(), v["previous_from"].as_str()),
        (Some("AUD"), Some("2024-10-01"))
    );
    let row = &v["data"][0];
    assert_eq!(row["client_id"], "ACME-7");
    assert_eq!(
        [
            &row["revenue"],
            &row["expenses"],
            &row["net_profit"],
            &row["margin"],
            &row["cash_flow"]
        ],
        [
            &json!("15000.00"),
            &json!("6000.00"),
            &json!("9000.00"),
            &json!("0.600"),
            &json!("400.00")
        ]
    );
    assert_eq!(
        [&row["previous_revenue"], &row["previous_net_profit"]],
        [&json!("800.00"), &json!("600.00")]
    );
    // Tenant B has no client: nothing of A's shows.
    let v: Value = app
        .get(
            "/api/v1/reports/profitability?from=2025-01-01&to=2025-03-31",
            &app.b.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]));
    // CSV of the same report.
    let csv = app
        .get(
            "/api/v1/reports/profitability?from=2025-01-01&to=2025-03-31&format=csv",
            &app.a.viewer,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("client_id,client_name,revenue,expenses,net_profit,margin,cash_flow,"));
    assert!(
        csv.contains("\r\nACME-7,Acme,15000.00,6000.00,9000.00,0.600,400.00,2,800.00,"),
        "{csv}"
    );

    // Funnel by external id; another tenant's client is 404.
    let res = app
        .get(
            "/api/v1/reports/funnel?client_id=ACME-7&from=2025-01-01&to=2025-01-31",
            &app.a.viewer,
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let stages: Vec<(&str, i64, Value)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap(),
                s["leads"].as_i64().unwrap(),
                s["conversion_from_previous"].clone(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [("lead", 2, Value::Null), ("proposal", 1, json!("0.500"))]
    );
    assert_eq!(
        v["data"][1]["statuses"][0],
        json!({"status": "won", "events": 1, "value": "250.00"})
    );
    assert_eq!(
        app.get("/api/v1/reports/funnel?client_id=ACME-7", &app.b.viewer)
            .await
            .status(),
        404
    );
    // Without client_id: all of the tenant's clients (all time, from the funnel rollups); the
    // other tenant's funnel has none of these leads.
    let v: Value = app
        .get("/api/v1/reports/funnel", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&v["client_id"], &v["client_name"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (
            &v["data"][0]["stage"],
            &v["data"][0]["leads"],
            &v["data"][0]["value"]
        ),
        (&json!("lead"), &json!(2), &json!("150.00"))
    );
    assert_eq!(v["data"][1]["conversion_from_previous"], json!("0.500"));
    let v: Value = app
        .get("/api/v1/reports/funnel", &app.b.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]));
    assert_eq!(
        app.get("/api/v1/reports/funnel?client_id=%20", &app.a.viewer)
            .await
            .status(),
        422
    );
    // The Reports page offers the same: "All clients" in the funnel's client choice.
    let path = "/reports?range=custom&from=2025-01-01&to=2025-01-31&client=all";
    let (cookie, _) = crate::page_kit::page_session(&app, &app.a.viewer, path).await;
    let html = crate::page_kit::get_page(&app, &cookie, path).await;
    assert!(
        html.contains(r#"<option value="all" selected>All clients</option>"#),
        "{html}"
    );
    assert!(html.contains("<td>proposal</td>"), "{html}");

    // Series: raw page and month buckets; a bad bucket names its field.
    let v: Value = app
        .get(
            &format!("/api/v1/clients/{id}/financials?from=2025-01-01&to=2025-03-31"),
            &app.a.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["revenue"], "10000.00");
    let v: Value =
        app.get(&format!("/api/v1/clients/{id}/financials?from=2025-01-01&to=2025-03-31&bucket=month&limit=2"), &app.a.viewer).await.json().await.unwrap();
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["bucket_start"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["2025-01-01", "2025-02-01"]
    );
    let cursor = v["next_cursor"]
        .as_str()
        .expect("March is on the next page")
        .to_string();
    let v: Value = app
        .get(&format!("/api/v1/clients/{id}/financials?from=2025-01-01&to=2025-03-31&bucket=month&limit=2&cursor={cursor}"), &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["data"].as_array().unwrap().len(),
            v["next_cursor"].is_null()
        ),
        (0, true)
    );
    let res = app
        .get(
            &format!("/api/v1/clients/{id}/financials?bucket=year"),
            &app.a.viewer,
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["details"][0]["field"],
        "bucket"
    );
}
