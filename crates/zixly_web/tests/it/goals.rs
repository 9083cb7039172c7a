//! Goals over HTTP: roles, field-named validation, the contract points (`POST /goals` → `id`;
//! `GET /goals` with `status`, `expected_to_date`, `projected`), status values on seeded data
//! with a year of history and without, per-period targets, history, budget CSV import (line
//! and column errors, all or nothing) and audit rows. Dates are relative to today in the
//! tenant's time zone (Australia/Sydney), as the server computes it.

use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp, TestTenant};

async fn json_of(res: reqwest::Response, status: u16, what: &str) -> Value {
    let got = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    body
}

fn today() -> NaiveDate {
    let tz: zixly_domain::timezone::Tz = "Australia/Sydney".parse().unwrap();
    Utc::now().with_timezone(&tz).date_naive()
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap()
}

/// A client with financial rows `(date, revenue, expenses)`; returns its id.
async fn client_with(
    app: &TestApp,
    t: &TestTenant,
    code: &str,
    rows: &[(NaiveDate, &str, &str)],
) -> String {
    let v = json_of(
        app.post(
            "/api/v1/clients",
            &t.editor,
            &json!({"client_id": code, "client_name": format!("Client {code}")}),
        )
        .await,
        201,
        "client",
    )
    .await;
    let id = v["id"].as_str().unwrap().to_string();
    if !rows.is_empty() {
        let rows: Vec<Value> = rows
            .iter()
            .map(|(d, r, e)| {
                json!({"record_date": d.to_string(), "revenue": r, "expenses": e, "cash_flow": "0"})
            })
            .collect();
        let v = json_of(
            app.post(
                &format!("/api/v1/clients/{id}/financials"),
                &t.editor,
                &json!({"rows": rows}),
            )
            .await,
            200,
            "financials",
        )
        .await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    id
}

async fn create(app: &TestApp, t: &TestTenant, body: Value) -> Value {
    json_of(
        app.post("/api/v1/goals", &t.editor, &body).await,
        201,
        "goal",
    )
    .await
}

fn fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn roles_and_validation() {
    let app = spawn_app().await;
    let a = &app.a;
    let body = json!({"kpi": "revenue", "client_id": null, "period": "month", "kind": "reach", "target": "1000"});
    let res = app.post("/api/v1/goals", &a.viewer, &body).await;
    assert_eq!(res.status(), 403);
    let goal = json_of(
        app.post("/api/v1/goals", &a.admin, &body).await,
        201,
        "admin",
    )
    .await;
    let id = goal["id"].as_str().unwrap();
    // The contract's fields, on creation and in the list (VIEWERs read).
    for f in ["id", "status", "expected_to_date", "projected"] {
        assert!(goal.get(f).is_some(), "{f} in {goal}");
    }
    let list = json_of(app.get("/api/v1/goals", &a.viewer).await, 200, "list").await;
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["data"][0]["kpi"], "revenue");
    assert_eq!(list["data"][0]["target"], "1000");
    let res = app
        .patch(
            &format!("/api/v1/goals/{id}"),
            &a.viewer,
            &json!({"target": "5"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app.delete(&format!("/api/v1/goals/{id}"), &a.viewer).await;
    assert_eq!(res.status(), 403);

    // Every bad field named at once.
    let v = json_of(
        app.post(
            "/api/v1/goals",
            &a.editor,
            &json!({"kpi": "bogus", "period": "weekly", "kind": "above", "target": "ten"}),
        )
        .await,
        422,
        "bad fields",
    )
    .await;
    let mut f = fields(&v);
    f.sort();
    assert_eq!(f, vec!["kind", "kpi", "period", "target"], "{v}");
    // A margin target of 30 (meaning 30 %) is refused; another tenant's client is unknown.
    let b_client = client_with(&app, &app.b, "B1", &[]).await;
    let v = json_of(
        app.post(
            "/api/v1/goals",
            &a.editor,
            &json!({"kpi": "margin", "client_id": b_client, "period": "quarter", "kind": "stay_above", "target": 30}),
        )
        .await,
        422,
        "ratio and client",
    )
    .await;
    let mut f = fields(&v);
    f.sort();
    assert_eq!(f, vec!["client_id", "target"], "{v}");
    // A fixed period needs its dates, in order.
    let v = json_of(
        app.post(
            "/api/v1/goals",
            &a.editor,
            &json!({"kpi": "revenue", "period": "fixed", "from": "2025-05-01", "to": "2025-04-01", "kind": "reach", "target": "1"}),
        )
        .await,
        422,
        "fixed",
    )
    .await;
    assert_eq!(fields(&v), vec!["to"]);
    // One fixed period: its dates are the current period, and it has no past periods.
    let from = month_start(today());
    let to = from + Months::new(2) - Days::new(1);
    let fixed = create(
        &app,
        a,
        json!({"kpi": "net_profit", "period": "fixed", "from": from.to_string(), "to": to.to_string(), "kind": "stay_above", "target": "10"}),
    )
    .await;
    assert_eq!(fixed["period"], "fixed");
    assert_eq!(
        (fixed["from"].clone(), fixed["to"].clone()),
        (json!(from.to_string()), json!(to.to_string()))
    );
    assert_eq!(fixed["current"]["period_start"], from.to_string());
    assert_eq!(fixed["current"]["period_end"], to.to_string());
    let fid = fixed["id"].as_str().unwrap();
    let h = json_of(
        app.get(&format!("/api/v1/goals/{fid}/history"), &a.viewer)
            .await,
        200,
        "fixed history",
    )
    .await;
    assert_eq!(h["periods"], json!([]));
    let res = app.delete(&format!("/api/v1/goals/{fid}"), &a.editor).await;
    assert_eq!(res.status(), 204);
    // Nothing to change.
    let v = json_of(
        app.patch(&format!("/api/v1/goals/{id}"), &a.editor, &json!({}))
            .await,
        422,
        "empty patch",
    )
    .await;
    assert!(v["error"]["details"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("nothing to change"));

    // Change, then archive: gone from reads, and the other tenant never saw it.
    let v = json_of(
        app.patch(
            &format!("/api/v1/goals/{id}"),
            &a.editor,
            &json!({"kind": "stay_above", "target": 1200.5, "name": "Monthly sales"}),
        )
        .await,
        200,
        "patch",
    )
    .await;
    assert_eq!(
        (v["kind"].clone(), v["target"].clone()),
        (json!("stay_above"), json!("1200.5"))
    );
    let res = app.get(&format!("/api/v1/goals/{id}"), &app.b.admin).await;
    assert_eq!(res.status(), 404);
    let b_list = json_of(app.get("/api/v1/goals", &app.b.admin).await, 200, "b list").await;
    assert_eq!(b_list["data"], json!([]));
    let res = app.delete(&format!("/api/v1/goals/{id}"), &a.editor).await;
    assert_eq!(res.status(), 204);
    let res = app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await;
    assert_eq!(res.status(), 404);

    // Every change left an audit row.
    let db = app.db.superuser().await;
    let actions: Vec<String> = db
        .query(
            "select action from audit_logs where tenant_id = $1 and entity_type = 'goal' order by occurred_at, id",
            &[&a.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        vec![
            "goal.create",
            "goal.create",
            "goal.archive",
            "goal.update",
            "goal.archive"
        ]
    );
}

#[tokio::test]
async fn status_follows_last_years_shape_or_the_calendar() {
    let app = spawn_app().await;
    let a = &app.a;
    let today = today();
    let this_month = month_start(today);
    let last_year = this_month - Months::new(12);
    let last_month = this_month - Months::new(1);
    // Last year all of the month's revenue came on its first day: by any day of this month the
    // whole target is expected, and 500 of 1000 is off track. The previous month reached 1200.
    let seasonal = client_with(
        &app,
        a,
        "S",
        &[
            (last_year, "1000", "0"),
            (last_month, "1200", "0"),
            (this_month, "500", "2000"),
        ],
    )
    .await;
    let fresh = client_with(&app, a, "F", &[(this_month, "500", "0")]).await;
    let empty = client_with(&app, a, "E", &[]).await;

    let with_history = create(
        &app,
        a,
        json!({"kpi": "revenue", "client_id": seasonal, "period": "month", "kind": "reach", "target": "1000"}),
    )
    .await;
    assert_eq!(
        with_history["current"]["pacing"], "seasonal",
        "{with_history}"
    );
    assert_eq!(with_history["expected_to_date"], "1000");
    assert_eq!(with_history["projected"], "500");
    assert_eq!(with_history["actual"], "500.00");
    assert_eq!(with_history["status"], "off_track");

    let linear = create(
        &app,
        a,
        json!({"kpi": "revenue", "client_id": fresh, "period": "month", "kind": "reach", "target": "1000"}),
    )
    .await;
    let cur = &linear["current"];
    assert_eq!(cur["pacing"], "linear", "{linear}");
    let (n, days) = (
        cur["elapsed_days"].as_u64().unwrap(),
        cur["total_days"].as_u64().unwrap(),
    );
    assert_eq!(n, u64::from(today.day()));
    let expected = (Decimal::from(1000 * n) / Decimal::from(days))
        .round_dp(4)
        .normalize();
    assert_eq!(linear["expected_to_date"], expected.to_string());
    // 500 by day n projects to 500·days/n: on track in the first half of the month, at risk
    // within 10 % short, off track beyond.
    let projected = Decimal::from(500 * days) / Decimal::from(n);
    let status = if projected >= Decimal::from(1000) {
        "on_track"
    } else if projected >= Decimal::from(900) {
        "at_risk"
    } else {
        "off_track"
    };
    assert_eq!(linear["status"], status, "{linear}");

    // A cost budget already exceeded mid-period is off track, whatever the pace.
    let budget = create(
        &app,
        a,
        json!({"kpi": "expenses", "client_id": seasonal, "period": "month", "kind": "stay_below", "target": "1000"}),
    )
    .await;
    assert_eq!(budget["status"], "off_track");
    // No data: no status (not "missed"), but the expected pace is known.
    let none = create(
        &app,
        a,
        json!({"kpi": "revenue", "client_id": empty, "period": "quarter", "kind": "reach", "target": "1000"}),
    )
    .await;
    assert_eq!(none["status"], Value::Null);
    assert_eq!(none["projected"], Value::Null);
    assert!(none["expected_to_date"].is_string());

    // History: last month reached 1200 of 1000; the month before had no data.
    let id = with_history["id"].as_str().unwrap();
    let h = json_of(
        app.get(&format!("/api/v1/goals/{id}/history?periods=2"), &a.viewer)
            .await,
        200,
        "history",
    )
    .await;
    let periods = h["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[1]["period_start"], last_month.to_string());
    assert_eq!(periods[1]["status"], "achieved");
    assert_eq!(periods[0]["status"], Value::Null);
    let res = app
        .get(&format!("/api/v1/goals/{id}/history?periods=99"), &a.viewer)
        .await;
    assert_eq!(res.status(), 422);

    // A per-period target of 400 for this month: 500 now reaches it.
    let put = |body: Value| {
        app.request(
            Method::PUT,
            &format!("/api/v1/goals/{id}/targets"),
            &a.editor,
        )
        .json(&body)
        .send()
    };
    let v = json_of(
        put(json!({"targets": [{"period_start": this_month.to_string(), "target": "400"}]}))
            .await
            .unwrap(),
        200,
        "targets",
    )
    .await;
    assert_eq!(v[0]["target"], "400");
    let g = json_of(
        app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await,
        200,
        "get",
    )
    .await;
    assert_eq!(g["current"]["target"], "400");
    assert_eq!(g["status"], "achieved");
    // A day that starts no month is refused, naming the entry.
    let bad_day = this_month + Days::new(1);
    let v = json_of(
        put(json!({"targets": [{"period_start": bad_day.to_string(), "target": "1"}]}))
            .await
            .unwrap(),
        422,
        "bad start",
    )
    .await;
    assert_eq!(fields(&v), vec!["targets[0].period_start"]);

    // Becoming quarterly keeps only the overrides that start a quarter.
    let quarter = this_month.with_month0(this_month.month0() / 3 * 3).unwrap();
    let other = if quarter == this_month {
        this_month + Months::new(1)
    } else {
        this_month
    };
    put(json!({"targets": [
        {"period_start": quarter.to_string(), "target": "3000"},
        {"period_start": other.to_string(), "target": "1"}
    ]}))
    .await
    .unwrap();
    let g = json_of(
        app.patch(
            &format!("/api/v1/goals/{id}"),
            &a.editor,
            &json!({"period": "quarter"}),
        )
        .await,
        200,
        "to quarterly",
    )
    .await;
    assert_eq!(
        g["targets"],
        json!([{"period_start": quarter.to_string(), "target": "3000"}])
    );
    assert_eq!(g["current"]["target"], "3000");
    // The two accepted target writes left an audit row each; the refused one none.
    let written: i64 = app
        .db
        .superuser()
        .await
        .query_one(
            "select count(*) from audit_logs where tenant_id = $1 and action = 'goal.targets'",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 2);
}

#[tokio::test]
async fn budget_csv_sets_targets_all_or_nothing() {
    let app = spawn_app().await;
    let a = &app.a;
    let client = client_with(&app, a, "ACME", &[]).await;
    let g = create(
        &app,
        a,
        json!({"kpi": "expenses", "client_id": client, "period": "month", "kind": "stay_below", "target": "1000"}),
    )
    .await;
    let tenant_wide = create(
        &app,
        a,
        json!({"kpi": "revenue", "period": "quarter", "kind": "reach", "target": "9000"}),
    )
    .await;
    let upload = |path: &str, csv: &str| {
        app.request(Method::POST, path, &a.editor)
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
    };
    // Line 3: a bad date; line 4: an unknown client; line 5: not a quarter's first day.
    let bad = "kpi,client_id,period_start,target\n\
               expenses,ACME,2026-01-01,800\n\
               expenses,ACME,2026-13-01,800\n\
               expenses,NOPE,2026-02-01,800\n\
               revenue,,2026-02-01,100\n";
    let v = json_of(
        upload("/api/v1/goals/budgets", bad).await.unwrap(),
        422,
        "bad budget",
    )
    .await;
    let details: Vec<(u64, String)> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        details,
        vec![
            (3, "period_start".to_owned()),
            (4, "client_id".to_owned()),
            (5, "period_start".to_owned())
        ],
        "{v}"
    );
    let id = g["id"].as_str().unwrap();
    let got = json_of(
        app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await,
        200,
        "goal",
    )
    .await;
    assert_eq!(got["targets"], json!([]), "nothing written");

    let good = "kpi,client_id,period_start,target\n\
                expenses,ACME,2026-01-01,800\n\
                expenses,ACME,2026-02-01,750.5\n\
                revenue,,2026-04-01,12000\n";
    let v = json_of(
        upload("/api/v1/goals/budgets", good).await.unwrap(),
        200,
        "budget",
    )
    .await;
    assert_eq!(v, json!({"lines": 3, "goals": 2}));
    let got = json_of(
        app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await,
        200,
        "goal",
    )
    .await;
    assert_eq!(
        got["targets"],
        json!([{"period_start": "2026-01-01", "target": "800"}, {"period_start": "2026-02-01", "target": "750.5"}])
    );
    // One goal's file needs the goal named; with it, its lines upsert.
    let v = json_of(
        upload(
            "/api/v1/goals/budgets",
            "period_start,target\n2026-07-01,1\n",
        )
        .await
        .unwrap(),
        422,
        "no goal",
    )
    .await;
    assert_eq!(fields(&v), vec!["goal_id"]);
    let tw = tenant_wide["id"].as_str().unwrap();
    let v = json_of(
        upload(
            &format!("/api/v1/goals/budgets?goal_id={tw}"),
            "period_start,target\n2026-07-01,13000\n",
        )
        .await
        .unwrap(),
        200,
        "one goal",
    )
    .await;
    assert_eq!(v["goals"], 1);
    let got = json_of(
        app.get(&format!("/api/v1/goals/{tw}"), &a.viewer).await,
        200,
        "goal",
    )
    .await;
    assert_eq!(got["targets"].as_array().unwrap().len(), 2);
    // VIEWERs cannot import.
    let res = app
        .request(Method::POST, "/api/v1/goals/budgets", &a.viewer)
        .header("content-type", "text/csv")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Each successful import left one audit row; the refused ones none.
    let imports: i64 = app
        .db
        .superuser()
        .await
        .query_one(
            "select count(*) from audit_logs where tenant_id = $1 and action = 'goal.import_budgets'",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(imports, 2);
}

/// The Goals page: EDITORs create, change and archive goals and upload a budget through its
/// forms (the API's actions); VIEWERs read it without forms; the overview and the client page
/// show the goals' progress.
#[tokio::test]
async fn goals_page_creates_shows_and_archives_goals() {
    use reqwest::header::{COOKIE, ORIGIN};
    use reqwest::multipart::{Form, Part};

    use super::page_kit::{get_page, page_session, post_form};
    let app = spawn_app().await;
    let a = &app.a;
    let this_month = month_start(today());
    let client = client_with(&app, a, "PG", &[(this_month, "500", "0")]).await;
    let s = page_session(&app, &a.editor, "/goals").await;
    let html = get_page(&app, &s.0, "/goals").await;
    assert!(html.contains("No goals yet."), "{html}");
    assert!(
        html.contains(r#"href="/goals" aria-current="page""#),
        "nav entry: {html}"
    );

    // A refusal names the field and keeps what was typed.
    let res = post_form(
        &app,
        &s,
        "/goals",
        &[
            ("name", "Typed name"),
            ("kpi", "revenue"),
            ("client_id", &client),
            ("period", "month"),
            ("kind", "reach"),
            ("target", "lots"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("Target: not a decimal number."), "{html}");
    assert!(html.contains(r#"value="Typed name""#), "{html}");

    let res = post_form(
        &app,
        &s,
        "/goals",
        &[
            ("name", "Monthly sales"),
            ("kpi", "revenue"),
            ("client_id", &client),
            ("period", "month"),
            ("kind", "reach"),
            ("target", "400"),
            ("from", ""),
            ("to", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/goals?ok=created");
    let list = json_of(app.get("/api/v1/goals", &a.viewer).await, 200, "list").await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let html = get_page(&app, &s.0, "/goals?ok=created").await;
    assert!(html.contains("The goal was created."), "{html}");
    assert!(html.contains(&format!(r#"data-goal="{id}""#)), "{html}");
    // 500 of a 400 target: reached.
    assert!(html.contains(r#"data-status="achieved""#), "{html}");
    assert!(html.contains("So far <b>$500</b>"), "{html}");

    // The client page and (for tenant-wide goals only) the overview show progress.
    let html = get_page(&app, &s.0, &format!("/clients/{client}")).await;
    assert!(html.contains("goals-compact"), "{html}");
    assert!(html.contains("Monthly sales"), "{html}");
    let html = get_page(&app, &s.0, "/").await;
    assert!(
        !html.contains("goals-compact"),
        "a client goal is not on the overview"
    );
    let res = app
        .post(
            "/api/v1/goals",
            &a.editor,
            &json!({"name": "Company costs", "kpi": "expenses", "period": "year", "kind": "stay_below", "target": "100000"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let html = get_page(&app, &s.0, "/").await;
    assert!(html.contains("Company costs"), "{html}");

    // Change: a higher target puts it back on its way.
    let res = post_form(
        &app,
        &s,
        &format!("/goals/{id}"),
        &[
            ("name", "Monthly sales"),
            ("kind", "reach"),
            ("target", "100000"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let g = json_of(
        app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await,
        200,
        "goal",
    )
    .await;
    assert_eq!(g["target"], "100000");

    // A budget file through the page's upload.
    let budget = format!("period_start,target\n{this_month},450\n");
    let form = Form::new()
        .text("_csrf", s.1.clone())
        .text("goal_id", id.clone())
        .part(
            "file",
            Part::bytes(budget.into_bytes())
                .file_name("budget.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let res = app
        .anonymous(Method::POST, "/goals/budgets")
        .header(COOKIE, &s.0)
        .header(ORIGIN, &app.base_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let g = json_of(
        app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await,
        200,
        "goal",
    )
    .await;
    assert_eq!(g["current"]["target"], "450");
    // A bad file names its line and column on the page.
    let form = Form::new()
        .text("_csrf", s.1.clone())
        .text("goal_id", id.clone())
        .part(
            "file",
            Part::bytes(b"period_start,target\n2026-01-15,1\n".to_vec())
                .file_name("budget.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let res = app
        .anonymous(Method::POST, "/goals/budgets")
        .header(COOKIE, &s.0)
        .header(ORIGIN, &app.base_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Line 2, period_start: must be the first day of a month."),
        "{html}"
    );

    // A VIEWER reads the page without any form but logout's.
    let v = page_session(&app, &a.viewer, "/goals").await;
    let html = get_page(&app, &v.0, "/goals").await;
    assert!(html.contains(&format!(r#"data-goal="{id}""#)), "{html}");
    assert!(!html.contains("New goal"), "{html}");
    assert!(!html.contains("Change or archive"), "{html}");
    assert!(!html.contains("Import a budget"), "{html}");
    let res = post_form(&app, &v, &format!("/goals/{id}/archive"), &[]).await;
    assert_eq!(res.status(), 403);

    // Archive.
    let res = post_form(&app, &s, &format!("/goals/{id}/archive"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/goals?ok=archived");
    let res = app.get(&format!("/api/v1/goals/{id}"), &a.viewer).await;
    assert_eq!(res.status(), 404);
}
