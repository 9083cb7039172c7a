//! The metric catalogue over HTTP: `GET /metric-definitions`, `PATCH /metric-definitions/{name}`
//! (roles, field-named validation, 404/409, audit, tenants), first sight through an API batch,
//! and bucketed reads carrying the definition's `value`, display name and unit.

use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp, TestTenant};

async fn json_of(res: reqwest::Response, status: u16, what: &str) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    body
}

async fn client_with_metrics(
    app: &TestApp,
    tenant: &TestTenant,
    client_id: &str,
    rows: Value,
) -> String {
    let v = json_of(
        app.post(
            "/api/v1/clients",
            &tenant.editor,
            &json!({"client_id": client_id, "client_name": format!("Client {client_id}")}),
        )
        .await,
        201,
        "client",
    )
    .await;
    let id = v["id"].as_str().unwrap().to_string();
    let v = json_of(
        app.post(
            &format!("/api/v1/clients/{id}/metrics"),
            &tenant.editor,
            &json!({"rows": rows}),
        )
        .await,
        200,
        "metric batch",
    )
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");
    id
}

fn custom(list: &Value) -> Vec<(String, String, Value, String)> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["builtin"] == false)
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["display_name"].as_str().unwrap().to_owned(),
                d["unit"].clone(),
                d["aggregation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn definitions_are_listed_patched_by_editors_and_audited() {
    let app = spawn_app().await;
    client_with_metrics(
        &app,
        &app.a,
        "M-1",
        json!([
            {"metric_name": "billable_hours", "metric_value": "2.5", "unit": "h", "record_date": "2024-01-15"},
            {"metric_name": "nps", "metric_value": "40", "record_date": "2024-01-15"},
        ]),
    )
    .await;
    let list = json_of(
        app.get("/api/v1/metric-definitions", &app.a.viewer).await,
        200,
        "list",
    )
    .await;
    assert_eq!(
        custom(&list),
        [
            (
                "billable_hours".into(),
                "Billable hours".into(),
                json!("h"),
                "sum".into()
            ),
            ("nps".into(), "Nps".into(), Value::Null, "sum".into()),
        ]
    );
    let builtins: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["builtin"] == true)
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        builtins,
        [
            "revenue",
            "expenses",
            "net_profit",
            "margin",
            "cash_flow",
            "open_pipeline",
            "win_rate"
        ]
    );
    // Tenant B sees none of A's metrics.
    let b = json_of(
        app.get("/api/v1/metric-definitions", &app.b.viewer).await,
        200,
        "B list",
    )
    .await;
    assert!(custom(&b).is_empty(), "{b}");

    let path = "/api/v1/metric-definitions/nps";
    let patch = json!({"display_name": "Net promoter score", "aggregation": "average", "unit": "score",
                       "direction": "up_is_good", "description": "Quarterly survey"});
    let res = app.patch(path, &app.a.viewer, &patch).await;
    assert_eq!(res.status(), 403, "a VIEWER cannot change definitions");

    // Every bad field is named.
    let v = json_of(
        app.patch(
            path,
            &app.a.editor,
            &json!({"aggregation": "avg", "direction": "up", "display_name": "  "}),
        )
        .await,
        422,
        "invalid",
    )
    .await;
    let mut fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["aggregation", "direction", "display_name"], "{v}");
    let v = json_of(
        app.patch(path, &app.a.editor, &json!({"unit": "x".repeat(33)}))
            .await,
        422,
        "long unit",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "unit", "{v}");
    json_of(
        app.patch(path, &app.a.editor, &json!({})).await,
        422,
        "empty patch",
    )
    .await;
    json_of(
        app.patch("/api/v1/metric-definitions/unknown", &app.a.editor, &patch)
            .await,
        404,
        "unknown",
    )
    .await;
    let v = json_of(
        app.patch("/api/v1/metric-definitions/revenue", &app.a.editor, &patch)
            .await,
        409,
        "built-in",
    )
    .await;
    assert_eq!(v["error"]["code"], "builtin_kpi", "{v}");
    // Another tenant's metric is unknown, not forbidden, and stays as it was.
    json_of(
        app.patch(path, &app.b.admin, &patch).await,
        404,
        "B patches A",
    )
    .await;

    let v = json_of(app.patch(path, &app.a.editor, &patch).await, 200, "patch").await;
    assert_eq!(
        (
            &v["display_name"],
            &v["aggregation"],
            &v["unit"],
            &v["description"],
            &v["builtin"]
        ),
        (
            &json!("Net promoter score"),
            &json!("average"),
            &json!("score"),
            &json!("Quarterly survey"),
            &json!(false)
        ),
        "{v}"
    );
    // `null` clears the unit; the rest stays.
    let v = json_of(
        app.patch(path, &app.a.editor, &json!({"unit": null})).await,
        200,
        "clear",
    )
    .await;
    assert_eq!(
        (&v["unit"], &v["aggregation"]),
        (&Value::Null, &json!("average"))
    );

    let audit = json_of(
        app.get(
            "/api/v1/audit-logs?limit=10&action=metric.update",
            &app.a.admin,
        )
        .await,
        200,
        "audit",
    )
    .await;
    let rows = audit["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{audit}");
    let first = rows
        .iter()
        .find(|r| r["summary"]["changed"]["aggregation"].is_object())
        .expect("the first patch");
    assert_eq!(
        first["summary"]["changed"]["aggregation"],
        json!({"from": "sum", "to": "average"}),
        "{first}"
    );

    // A re-load of the metric keeps the edit.
    let id = json_of(
        app.get("/api/v1/clients?limit=10", &app.a.viewer).await,
        200,
        "clients",
    )
    .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    json_of(
        app.post(
            &format!("/api/v1/clients/{id}/metrics"),
            &app.a.editor,
            &json!({"rows": [{"metric_name": "nps", "metric_value": "50", "unit": "pts", "record_date": "2024-01-16"}]}),
        )
        .await,
        200,
        "reload",
    )
    .await;
    let list = json_of(
        app.get("/api/v1/metric-definitions", &app.a.viewer).await,
        200,
        "list",
    )
    .await;
    assert_eq!(
        custom(&list)[1],
        (
            "nps".into(),
            "Net promoter score".into(),
            Value::Null,
            "average".into()
        )
    );
}

#[tokio::test]
async fn bucketed_reads_aggregate_by_definition() {
    let app = spawn_app().await;
    let rows = |nps: [&str; 2], hours: [&str; 2]| {
        json!([
            {"metric_name": "nps", "metric_value": nps[0], "record_date": "2024-01-10"},
            {"metric_name": "nps", "metric_value": nps[1], "record_date": "2024-01-20"},
            {"metric_name": "hours", "metric_value": hours[0], "unit": "h", "record_date": "2024-01-10"},
            {"metric_name": "hours", "metric_value": hours[1], "unit": "h", "record_date": "2024-01-20"},
        ])
    };
    let c1 = client_with_metrics(&app, &app.a, "N-1", rows(["40", "50"], ["2.5", "3.25"])).await;
    client_with_metrics(&app, &app.a, "N-2", rows(["10", "20"], ["8", "1"])).await;
    json_of(
        app.patch(
            "/api/v1/metric-definitions/nps",
            &app.a.editor,
            &json!({"aggregation": "average", "display_name": "NPS", "unit": "score"}),
        )
        .await,
        200,
        "nps average",
    )
    .await;
    let series = json_of(
        app.get(
            &format!("/api/v1/clients/{c1}/metrics?from=2024-01-01&to=2024-01-31&bucket=month"),
            &app.a.viewer,
        )
        .await,
        200,
        "series",
    )
    .await;
    let got: Vec<Value> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            json!([
                b["metric_name"],
                b["display_name"],
                b["unit"],
                b["aggregation"],
                b["value"],
                b["sum"],
                b["avg"]
            ])
        })
        .collect();
    assert_eq!(
        got,
        [
            json!(["hours", "Hours", "h", "sum", "5.7500", "5.7500", "2.8750"]),
            json!(["nps", "NPS", "score", "average", "45.0000", "90.0000", "45.0000"]),
        ],
        "{series}"
    );
    let report = |name: &'static str| {
        let app = &app;
        async move {
            json_of(
                app.get(
                    &format!("/api/v1/reports/metrics?name={name}&from=2024-01-01&to=2024-01-31&bucket=month"),
                    &app.a.viewer,
                )
                .await,
                200,
                name,
            )
            .await["data"][0]
                .clone()
        }
    };
    let nps = report("nps").await;
    assert_eq!(
        (&nps["value"], &nps["display_name"], &nps["unit"]),
        (&json!("30.0000"), &json!("NPS"), &json!("score")),
        "{nps}"
    );
    let hours = report("hours").await;
    assert_eq!(
        (&hours["value"], &hours["aggregation"]),
        (&json!("14.7500"), &json!("sum")),
        "{hours}"
    );
}

/// The catalogue page (`/catalogue`) edits definitions through the API's action, and the client
/// page's metric charts follow the definition (name shown, aggregate used).
#[tokio::test]
async fn editors_change_a_definition_on_the_catalogue_page_and_charts_follow() {
    use super::page_kit::{get_page, page_session, post_form};
    let app = spawn_app().await;
    let id = client_with_metrics(
        &app,
        &app.a,
        "M-9",
        json!([
            {"metric_name": "billable_hours", "metric_value": "2.5", "record_date": "2024-01-15"},
            {"metric_name": "billable_hours", "metric_value": "1.5", "record_date": "2024-01-16"},
        ]),
    )
    .await;
    let s = page_session(&app, &app.a.editor, "/catalogue").await;
    let html = get_page(&app, &s.0, "/catalogue").await;
    assert!(html.contains(r#"data-metric="billable_hours""#), "{html}");
    assert!(
        html.contains("Net profit"),
        "built-in KPIs are listed: {html}"
    );

    // A refusal names the field and keeps what was typed.
    let res = post_form(
        &app,
        &s,
        "/catalogue/billable_hours",
        &[
            ("display_name", "Typed name"),
            ("unit", "hours"),
            ("aggregation", "median"),
            ("direction", "up_is_good"),
            ("description", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("Aggregation:"), "{html}");
    assert!(html.contains(r#"value="Typed name""#), "{html}");

    let res = post_form(
        &app,
        &s,
        "/catalogue/billable_hours",
        &[
            ("display_name", "Billable hours"),
            ("unit", "hours"),
            ("aggregation", "sum"),
            ("direction", "up_is_good"),
            ("description", "Hours we can invoice"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/catalogue?ok=saved");
    let list = json_of(
        app.get("/api/v1/metric-definitions", &app.a.viewer).await,
        200,
        "list",
    )
    .await;
    assert!(
        custom(&list).contains(&(
            "billable_hours".into(),
            "Billable hours".into(),
            json!("hours"),
            "sum".into()
        )),
        "{list}"
    );
    let audit = json_of(
        app.get("/api/v1/audit-logs?action=metric.update", &app.a.admin)
            .await,
        200,
        "audit",
    )
    .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");

    // The client page names the metric by its definition and charts its sum per bucket.
    let html = get_page(
        &app,
        &s.0,
        &format!("/clients/{id}?range=custom&from=2024-01-01&to=2024-01-31&bucket=month"),
    )
    .await;
    assert!(html.contains("Billable hours"), "{html}");
    assert!(html.contains("(total per month)"), "{html}");
    assert!(
        html.contains(r#""4""#) || html.contains(r#""4.0""#),
        "the month's value is the sum 2.5 + 1.5: {html}"
    );

    // VIEWERs read the catalogue without forms, and posting anyway is refused.
    let v = page_session(&app, &app.a.viewer, "/catalogue").await;
    let html = get_page(&app, &v.0, "/catalogue").await;
    assert!(!html.contains(r#"action="/catalogue/"#), "{html}");
    assert!(html.contains("billable_hours"), "{html}");
    let res = post_form(
        &app,
        &v,
        "/catalogue/billable_hours",
        &[
            ("display_name", "x"),
            ("aggregation", "sum"),
            ("direction", "up_is_good"),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
}

/// The custom-metrics report page shows the API's report: one metric over every client, each
/// bucket aggregated by the definition.
#[tokio::test]
async fn the_metrics_report_page_aggregates_every_client_by_the_definition() {
    use super::page_kit::{get_page, page_session};
    let app = spawn_app().await;
    for client in ["R-1", "R-2"] {
        client_with_metrics(
            &app,
            &app.a,
            client,
            json!([
                {"metric_name": "billable_hours", "metric_value": "2.5", "record_date": "2024-01-15"},
                {"metric_name": "billable_hours", "metric_value": "1.5", "record_date": "2024-02-16"},
            ]),
        )
        .await;
    }
    let res = app
        .patch(
            "/api/v1/metric-definitions/billable_hours",
            &app.a.editor,
            &json!({"aggregation": "sum", "display_name": "Billable hours"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let s = page_session(&app, &app.a.viewer, "/reports").await;
    let reports = get_page(&app, &s.0, "/reports").await;
    assert!(
        reports.contains("/reports/metrics?"),
        "the reports page links it: {reports}"
    );
    let html = get_page(
        &app,
        &s.0,
        "/reports/metrics?name=billable_hours&range=custom&from=2024-01-01&to=2024-02-29&bucket=month",
    )
    .await;
    assert!(html.contains("Billable hours"), "{html}");
    assert!(html.contains("(total per month, all clients)"), "{html}");
    let table = html
        .split(r#"data-table="metric-report""#)
        .nth(1)
        .expect("the table");
    // January: 2.5 + 2.5 over 2 clients; February: 1.5 + 1.5.
    assert!(
        table.contains(r#"<td class="num">5</td><td class="num">2</td>"#),
        "{table}"
    );
    assert!(
        table.contains(r#"<td class="num">3</td><td class="num">2</td>"#),
        "{table}"
    );
    assert!(html.contains("format=csv"), "{html}");
    // Another tenant's metrics are not offered.
    let other = page_session(&app, &app.b.viewer, "/reports/metrics").await;
    let html = get_page(&app, &other.0, "/reports/metrics").await;
    assert!(html.contains("No custom metrics yet"), "{html}");
}
