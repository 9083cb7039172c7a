//! The series reads' CSV exports (`?format=csv` on `/clients/{id}/financials`, `/lead-events`,
//! `/metrics`), raw and bucketed, byte for byte: header, column order, RFC 4180 quoting of free
//! text and metadata, formula neutralization, CRLF, and the bucketed CSV equal to the JSON
//! buckets of the same read.

use serde_json::{json, Value};
use uuid::Uuid;
use zixly_testkit::app::{spawn_app, TestApp};

const RANGE: &str = "from=2025-01-01&to=2025-03-31";

async fn csv(app: &TestApp, path: &str, file: &str) -> String {
    let res = app.get(path, &app.a.viewer).await;
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(
        res.headers()["content-type"],
        "text/csv; charset=utf-8; header=present"
    );
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"{file}.csv\"").as_str()
    );
    res.text().await.unwrap()
}

/// The CSV the JSON buckets of `path` make: keys as the header (the CSV's columns are the JSON
/// keys), one line per bucket, `null` as an empty cell.
async fn csv_of_json_buckets(app: &TestApp, path: &str, keys: &[&str]) -> String {
    let v: Value = app.get(path, &app.a.viewer).await.json().await.unwrap();
    let buckets = v["data"].as_array().unwrap();
    assert!(!buckets.is_empty(), "{path}: {v}");
    let mut out = keys.join(",") + "\r\n";
    for b in buckets {
        let cells: Vec<String> = keys
            .iter()
            .map(|k| match &b[*k] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        assert!(cells.iter().all(|c| !c.contains([',', '"', '\n'])));
        out += &(cells.join(",") + "\r\n");
    }
    out
}

#[tokio::test]
async fn series_csv_exports_are_exact_raw_and_bucketed() {
    let app = spawn_app().await;
    let client: Value = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "ACME-7", "client_name": "Acme"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id: Uuid = client["id"].as_str().unwrap().parse().unwrap();
    let t = app.a.id;
    app.db
        .superuser()
        .await
        .batch_execute(&format!(
            r#"set role zixly_owner;
         insert into financials (tenant_id, id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, source_system, external_id, metadata) values
           ('{t}', '00000000-0000-7000-8000-000000000001', '{id}', '2025-01-10', 10000.00, 4000.00, 6000.00, 500.00, 'manual', 'INV-1, part "A"', '{{"note": "=cmd"}}'),
           ('{t}', '00000000-0000-7000-8000-000000000002', '{id}', '2025-01-20', 5000.00, 2000.00, 3000.00, -100.00, '=evil', null, null);
         insert into lead_events (tenant_id, id, client_kpi_id, event_date, lead_id, stage, value, status) values
           ('{t}', '00000000-0000-7000-8000-000000000011', '{id}', '2025-01-05T01:00:00Z', 'L1', 'lead', 100.00, 'active');
         insert into custom_metrics (tenant_id, id, client_kpi_id, metric_name, metric_value, unit, record_date, metadata) values
           ('{t}', '00000000-0000-7000-8000-000000000021', '{id}', 'delivery days', 3.5, 'days', '2025-01-07T00:00:00Z', '{{"a": [1, 2]}}');"#
        ))
        .await
        .unwrap();
    let base = format!("/api/v1/clients/{id}");

    assert_eq!(
        csv(&app, &format!("{base}/financials?{RANGE}&format=csv"), "financials").await,
        "id,record_date,revenue,expenses,net_profit,cash_flow,currency,source_system,external_id,metadata\r\n\
         00000000-0000-7000-8000-000000000001,2025-01-10,10000.00,4000.00,6000.00,500.00,AUD,manual,\"INV-1, part \"\"A\"\"\",\"{\"\"note\"\":\"\"=cmd\"\"}\"\r\n\
         00000000-0000-7000-8000-000000000002,2025-01-20,5000.00,2000.00,3000.00,-100.00,AUD,'=evil,,\r\n"
    );
    assert_eq!(
        csv(&app, &format!("{base}/lead-events?{RANGE}&format=csv"), "lead-events").await,
        "id,event_date,lead_id,stage,value,currency,status,source_system,external_id,metadata\r\n\
         00000000-0000-7000-8000-000000000011,2025-01-05T01:00:00+00:00,L1,lead,100.00,AUD,active,manual,,\r\n"
    );
    let metrics = "id,metric_name,metric_value,unit,record_date,source_system,metadata\r\n\
         00000000-0000-7000-8000-000000000021,delivery days,3.5000,days,2025-01-07T00:00:00+00:00,manual,\"{\"\"a\"\":[1,2]}\"\r\n";
    assert_eq!(
        csv(
            &app,
            &format!("{base}/metrics?{RANGE}&format=csv"),
            "metrics"
        )
        .await,
        metrics
    );
    assert_eq!(
        csv(
            &app,
            &format!("{base}/metrics?name=delivery%20days&{RANGE}&format=csv"),
            "metrics"
        )
        .await,
        metrics
    );
    assert_eq!(
        csv(
            &app,
            &format!("{base}/metrics?name=other&{RANGE}&format=csv"),
            "metrics"
        )
        .await,
        "id,metric_name,metric_value,unit,record_date,source_system,metadata\r\n"
    );

    for (series, keys) in [
        (
            "financials",
            &[
                "bucket_start",
                "currency",
                "rows",
                "revenue",
                "expenses",
                "net_profit",
                "cash_flow",
            ][..],
        ),
        (
            "lead-events",
            &[
                "bucket_start",
                "stage",
                "status",
                "currency",
                "events",
                "leads",
                "value",
            ][..],
        ),
        (
            "metrics",
            &[
                "bucket_start",
                "metric_name",
                "display_name",
                "unit",
                "aggregation",
                "value",
                "count",
                "sum",
                "avg",
                "min",
                "max",
            ][..],
        ),
    ] {
        let path = format!("{base}/{series}?{RANGE}&bucket=month");
        assert_eq!(
            csv(&app, &format!("{path}&format=csv"), series).await,
            csv_of_json_buckets(&app, &path, keys).await,
            "{series}"
        );
    }
    // The financial buckets, spelled out once.
    assert_eq!(
        csv(
            &app,
            &format!("{base}/financials?{RANGE}&bucket=month&format=csv"),
            "financials"
        )
        .await,
        "bucket_start,currency,rows,revenue,expenses,net_profit,cash_flow\r\n\
         2025-01-01,AUD,2,15000.00,6000.00,9000.00,400.00\r\n"
    );

    // Another tenant's client is 404 in CSV too.
    let res = app
        .get(
            &format!("{base}/financials?{RANGE}&format=csv"),
            &app.b.viewer,
        )
        .await;
    assert_eq!(res.status(), 404);
}
