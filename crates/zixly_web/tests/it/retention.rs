//! Raw-data retention over HTTP: `GET`/`PUT /api/v1/settings/retention` (roles, field-named
//! validation, tenants, audit), the `/settings/data` page, a load's `before_retention`, and the
//! report pages' notice once a range reaches back before the first day of day-level data.

use chrono::{Datelike, Months, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, TestApp, TestUser};

use crate::page_kit::{get_page, page_session, post_form};

async fn put(app: &TestApp, user: &TestUser, body: Value) -> (u16, Value) {
    let res = app
        .request(Method::PUT, "/api/v1/settings/retention", user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, user: &TestUser) -> Value {
    let res = app.get("/api/v1/settings/retention", user).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn admins_set_the_retention_others_read_it_and_every_change_is_audited() {
    let app = spawn_app().await;
    let a = &app.a;
    assert_eq!(
        get(&app, &a.viewer).await,
        json!({"raw_retention_months": null, "raw_data_from": null, "applies_to": ["financials"]})
    );
    for user in [&a.viewer, &a.editor] {
        let (status, _) = put(&app, user, json!({"raw_retention_months": 6})).await;
        assert_eq!(status, 403, "{}", user.email);
    }
    for bad in [json!(0), json!(1201), json!(-3)] {
        let (status, body) = put(&app, &a.admin, json!({"raw_retention_months": bad})).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(
            body["error"]["details"][0]["field"], "raw_retention_months",
            "{body}"
        );
    }
    let (status, body) = put(&app, &a.admin, json!({"raw_retention_months": "six"})).await;
    assert!(status == 400 || status == 422, "{status}: {body}");

    let (status, body) = put(&app, &a.admin, json!({"raw_retention_months": 6})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["raw_retention_months"], 6);
    let from: NaiveDate = body["raw_data_from"].as_str().unwrap().parse().unwrap();
    assert_eq!(from.day(), 1);
    // Six whole months before the current one (the tenant's zone is Sydney: a day either way
    // of UTC's month boundary may move the month).
    let this_month = Utc::now().date_naive().with_day(1).unwrap();
    assert!(
        [5, 6, 7]
            .iter()
            .any(|m| this_month - Months::new(*m) == from),
        "{from}"
    );
    assert_eq!(get(&app, &a.viewer).await, body);
    // The other tenant is not affected.
    assert_eq!(
        get(&app, &app.b.viewer).await["raw_retention_months"],
        Value::Null
    );
    // The same value again is not a change; back to forever is.
    put(&app, &a.admin, json!({"raw_retention_months": 6})).await;
    let (status, body) = put(&app, &a.admin, json!({"raw_retention_months": null})).await;
    assert_eq!((status, &body["raw_data_from"]), (200, &Value::Null));

    let su = app.db.superuser().await;
    let audit: Vec<String> = su
        .query(
            "select concat_ws('|', actor_label, coalesce(summary->'raw_retention_months'->>'from', 'forever'),
                              coalesce(summary->'raw_retention_months'->>'to', 'forever'))
               from audit_logs where tenant_id = $1 and action = 'tenant.retention_update' order by id",
            &[&a.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        audit,
        vec![
            format!("{}|forever|6", a.admin.email),
            format!("{}|6|forever", a.admin.email)
        ]
    );
}

#[tokio::test]
async fn the_data_page_sets_the_retention_and_the_reports_say_where_months_begin() {
    let app = spawn_app().await;
    let a = &app.a;
    // Editors do not see the page.
    let token = app
        .login_token(&a.editor.email, zixly_testkit::app::PASSWORD)
        .await;
    let res = app
        .anonymous(Method::GET, "/settings/data")
        .header(reqwest::header::COOKIE, format!("zixly_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let session = page_session(&app, &a.admin, "/settings/data").await;
    let html = get_page(&app, &session.0, "/settings/data").await;
    assert!(html.contains(r#"data-retention="off""#), "{html}");

    // Not a number: the page again, with the form's value and a sentence naming the field.
    let res = post_form(
        &app,
        &session,
        "/settings/data",
        &[("raw_retention_months", "ten")],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Months of daily data: a whole number from 1 to 1200"),
        "{html}"
    );
    assert!(html.contains(r#"value="ten""#), "{html}");

    let res = post_form(
        &app,
        &session,
        "/settings/data",
        &[("raw_retention_months", "2")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let html = get_page(&app, &session.0, "/settings/data?ok=retention_saved").await;
    assert!(html.contains(r#"data-retention="on""#), "{html}");
    assert!(html.contains("2 months"), "{html}");
    assert_eq!(get(&app, &a.viewer).await["raw_retention_months"], 2);
    let from: NaiveDate = get(&app, &a.viewer).await["raw_data_from"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A load of a row before the cutoff: counted, not stored.
    let res = app
        .post(
            "/api/v1/clients",
            &a.editor,
            &json!({"client_id": "R-1", "client_name": "Retained"}),
        )
        .await;
    let client: Value = res.json().await.unwrap();
    let old = from - chrono::Days::new(40);
    let res = app
        .post(
            &format!("/api/v1/clients/{}/financials", client["id"].as_str().unwrap()),
            &a.editor,
            &json!({"rows": [
                {"record_date": old.to_string(), "revenue": "10.00", "expenses": "1.00", "cash_flow": "0"},
                {"record_date": from.to_string(), "revenue": "20.00", "expenses": "2.00", "cash_flow": "0"},
            ]}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (
            &body["status"],
            &body["inserted"],
            &body["before_retention"]
        ),
        (&json!("succeeded"), &json!(1), &json!(1)),
        "{body}"
    );

    // A year's overview reaches back before the cutoff: the page says so; this month's does not.
    let notice = r#"data-retention-notice="#;
    let year = get_page(&app, &session.0, "/?range=last_12_months").await;
    assert!(year.contains(notice), "{year}");
    assert!(
        year.contains(&from.format("%-d %b %Y").to_string()),
        "{year}"
    );
    let reports = get_page(&app, &session.0, "/reports?range=last_12_months").await;
    assert!(reports.contains(notice));
    let custom = format!("/?range=custom&from={from}&to={from}");
    let html = get_page(&app, &session.0, &custom).await;
    // The overview compares with the previous period and last year, which are before it.
    assert!(html.contains(notice));
    let client_page = get_page(
        &app,
        &session.0,
        &format!(
            "/clients/{}?{}",
            client["id"].as_str().unwrap(),
            &custom[2..]
        ),
    )
    .await;
    assert!(!client_page.contains(notice), "{client_page}");
}
