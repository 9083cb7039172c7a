//! Alert rules end to end (issue 13, "Done when"), against a real database, a local webhook
//! receiver and captured mail: a threshold crossed by a CSV import gives exactly one signed
//! webhook, one e-mail and one in-app notification per user; re-importing the same file gives
//! none; correcting the data resolves the alert and notifies once; a snoozed rule changes state
//! silently. Also: the rule API's validation, roles, audit rows and tenant isolation, pending
//! periods, goal rules, and the evaluation's idempotence.

use chrono::{Datelike, Months, NaiveDate, Utc};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_alerts::deliver::signature;
use zixly_queue::Worker;
use zixly_testkit::app::{TestApp, TestUser};

use crate::notify::{allow_private, count, create_channel, header, no_wait, worker, Receiver};

async fn json_of(res: reqwest::Response, status: u16, what: &str) -> Value {
    let got = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The worker of the notification tests plus the evaluation job.
fn full_worker(app: &TestApp) -> Worker {
    let mut w = worker(app, true, no_wait);
    zixly_alerts::evaluate::register(
        &mut w,
        &zixly_alerts::Services {
            app: app.db.app.clone(),
            system: app.db.system.clone(),
            keyring: None,
        },
    );
    w
}

/// The first day of last month: the latest complete month bucket (the test tenants' zone is
/// UTC-near; a test run at midnight on the 1st would straddle, which nextest's minutes do not).
fn last_month() -> NaiveDate {
    let today = Utc::now().date_naive();
    today.with_day(1).unwrap() - Months::new(1)
}

async fn import(app: &TestApp, user: &TestUser, csv: &str) -> Value {
    import_dataset(app, user, "financials", csv).await
}

async fn import_dataset(app: &TestApp, user: &TestUser, dataset: &str, csv: &str) -> Value {
    let form = Form::new().text("dataset", dataset.to_string()).part(
        "file",
        Part::bytes(csv.as_bytes().to_vec())
            .file_name("month.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let res = app
        .request(Method::POST, "/api/v1/imports", user)
        .multipart(form)
        .send()
        .await
        .unwrap();
    json_of(res, 200, "import").await
}

/// A financials file with ACME's revenue of last month spread over two days.
fn month_file(revenue_each_day: &str) -> String {
    let m = last_month();
    format!(
        "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
         ACME,Acme Pty,{},{revenue_each_day},100.00,0\n\
         ACME,Acme Pty,{},{revenue_each_day},100.00,0\n",
        m,
        m + chrono::Days::new(9)
    )
}

/// Tenant A's clients: external id → Zixly id.
async fn client_ids(app: &TestApp) -> std::collections::HashMap<String, String> {
    let v = json_of(
        app.get("/api/v1/clients", &app.a.editor).await,
        200,
        "clients",
    )
    .await;
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let external = c["client_id"].as_str().unwrap().to_string();
            (external, c["id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Creates a rule as tenant A's EDITOR; its id.
async fn create_rule(app: &TestApp, body: Value) -> String {
    json_of(
        app.post("/api/v1/alert-rules", &app.a.editor, &body).await,
        201,
        "create rule",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn client_uuid(app: &TestApp, user: &TestUser) -> Uuid {
    let v = json_of(app.get("/api/v1/clients", user).await, 200, "clients").await;
    v["data"][0]["id"].as_str().unwrap().parse().unwrap()
}

async fn alerts(app: &TestApp, user: &TestUser) -> Vec<Value> {
    json_of(app.get("/api/v1/alerts", user).await, 200, "alerts").await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// The tenant's alert rules as a VIEWER lists them (`GET /api/v1/alert-rules`).
async fn rules_listed(app: &TestApp) -> Value {
    json_of(
        app.get("/api/v1/alert-rules", &app.a.viewer).await,
        200,
        "rules",
    )
    .await
}

async fn unread(app: &TestApp, user: &TestUser) -> i64 {
    json_of(
        app.get("/api/v1/notifications", user).await,
        200,
        "notifications",
    )
    .await["unread"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_threshold_crossed_by_an_import_notifies_once_resolves_once_and_snooze_silences() {
    allow_private();
    let app = TestApp::builder().with_mailer().spawn().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Ops hook", "url": url}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let mail = create_channel(
        &app,
        json!({"kind": "email", "name": "Ops mail", "address": "ops@a.example"}),
    )
    .await;
    let w = full_worker(&app);

    // Last month at 2 × 400 = 800: below the threshold.
    import(&app, &app.a.editor, &month_file("400.00")).await;
    let client = client_uuid(&app, &app.a.editor).await;
    let rule = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "Acme revenue over 1,000", "kind": "threshold", "kpi": "revenue",
                    "client_id": client, "bucket": "month", "condition": "above", "value": "1000",
                    "channel_ids": [hook["id"], mail["id"]]}),
        )
        .await,
        201,
        "create rule",
    )
    .await;
    let rule_id = rule["id"].as_str().unwrap().to_string();
    assert_eq!(rule["client_id"], client.to_string());
    w.run_until_idle().await.unwrap();
    assert!(
        alerts(&app, &app.a.viewer).await.is_empty(),
        "below the threshold: no alert"
    );
    assert!(receiver.got().is_empty());

    // The import that crosses it: 2 × 600 = 1,200.
    let file = month_file("600.00");
    let report = import(&app, &app.a.editor, &file).await;
    assert_eq!(report["updated"], 2, "{report}");
    w.run_until_idle().await.unwrap();

    let got = receiver.got();
    assert_eq!(got.len(), 1, "exactly one webhook");
    let r = &got[0];
    let (id, ts, sig) = (
        header(r, "webhook-id"),
        header(r, "webhook-timestamp"),
        header(r, "webhook-signature"),
    );
    let key = signature::secret_bytes(&secret).unwrap();
    assert_eq!(
        sig,
        signature::sign(&key, id, ts.parse().unwrap(), &r.body),
        "the signature verifies with the channel's secret"
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "alert.firing");
    assert_eq!(body["rule_id"], rule_id);
    assert_eq!(body["client_id"], client.to_string());
    assert_eq!(body["kpi"], "revenue");
    assert_eq!(body["bucket_start"], last_month().to_string());
    assert_eq!(body["value"], "1200");
    assert_eq!(body["threshold"], "1000");
    // The sentence people read says the figures as the pages do: money in the tenant's
    // currency, grouped, with cents; the month in words.
    let month = last_month().format("%b %Y");
    let said = format!(
        "Alert “Acme revenue over 1,000” is firing: Revenue of Acme Pty for {month} is \
         $1,200.00 (threshold $1,000.00)."
    );
    assert_eq!(body["message"], said);
    let mails = app.mails();
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:?}");
    assert_eq!(mails[0].subject, format!("[Zixly] {said}"));
    let inbox: Value = app
        .get("/api/v1/notifications", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["data"][0]["message"], said.as_str(), "{inbox}");
    for user in [&app.a.admin, &app.a.editor, &app.a.viewer] {
        assert_eq!(unread(&app, user).await, 1, "one in-app notification each");
    }
    let listed = alerts(&app, &app.a.viewer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "firing");
    assert_eq!(listed[0]["value"], "1200");
    assert_eq!(listed[0]["client_name"], "Acme Pty");
    assert_eq!(
        listed[0]["detail"]["reason"],
        "Revenue $1,200.00 is above $1,000.00"
    );
    assert!(
        alerts(&app, &app.b.admin).await.is_empty(),
        "tenant B sees none"
    );

    // The same file again: nothing changes, nothing is evaluated, nothing is sent; a scheduled
    // evaluation on top records nothing either.
    let again = import(&app, &app.a.editor, &file).await;
    assert_eq!(again["unchanged"], 2, "{again}");
    w.run_until_idle().await.unwrap();
    let s = zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, Utc::now())
        .await
        .unwrap();
    assert_eq!((s.transitions, s.notified), (0, 0), "{s:?}");
    w.run_until_idle().await.unwrap();
    assert_eq!(receiver.got().len(), 1, "no second webhook");
    assert_eq!(app.mails().len(), 1, "no second mail");
    assert_eq!(unread(&app, &app.a.viewer).await, 1);

    // Corrected to 2 × 450 = 900: resolved, notified once.
    import(&app, &app.a.editor, &month_file("450.00")).await;
    w.run_until_idle().await.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 2, "one resolution webhook");
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(body["type"], "alert.resolved");
    assert_eq!(body["value"], "900");
    assert_eq!(
        body["message"],
        format!(
            "Alert “Acme revenue over 1,000” is resolved: Revenue of Acme Pty for {month} is \
             $900.00 (threshold $1,000.00)."
        )
    );
    assert_ne!(
        header(&got[1], "webhook-id"),
        header(&got[0], "webhook-id"),
        "another event, another id"
    );
    assert_eq!(app.mails().len(), 2);
    assert_eq!(unread(&app, &app.a.viewer).await, 2);
    let alert = &alerts(&app, &app.a.viewer).await[0];
    assert_eq!(alert["state"], "resolved");
    let detail = json_of(
        app.get(
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &app.a.viewer,
        )
        .await,
        200,
        "alert",
    )
    .await;
    let states: Vec<(&str, bool)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to_state"].as_str().unwrap(),
                t["notify"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("firing", true), ("resolved", true)]);
    // The same history on the alert's page, newest first, with the figures as written elsewhere.
    let alert_id = alert["id"].as_str().unwrap();
    let page = app.get(&format!("/alerts/{alert_id}"), &app.a.viewer).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let resolution = html
        .find("→ <strong>Resolved</strong>")
        .expect("the resolution row");
    let firing = html
        .find("<strong>Firing</strong>")
        .expect("the firing row");
    assert!(resolution < firing, "newest first");
    assert!(
        html.contains("$1,200.00") && html.contains("$900.00"),
        "{html}"
    );
    assert!(
        html.contains("Revenue $900.00 is not above $1,000.00"),
        "the latest reason"
    );
    assert_eq!(
        app.get(&format!("/alerts/{alert_id}"), &app.b.admin)
            .await
            .status(),
        404,
        "another tenant's alert does not exist"
    );
    assert_eq!(
        app.get("/alerts/not-a-uuid", &app.a.viewer).await.status(),
        404
    );

    // Snoozed: crossing again fires on the page but notifies nobody.
    let until = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    json_of(
        app.post(
            &format!("/api/v1/alert-rules/{rule_id}/snooze"),
            &app.a.editor,
            &json!({ "until": until }),
        )
        .await,
        200,
        "snooze",
    )
    .await;
    import(&app, &app.a.editor, &month_file("700.00")).await;
    w.run_until_idle().await.unwrap();
    assert_eq!(alerts(&app, &app.a.viewer).await[0]["state"], "firing");
    assert_eq!(receiver.got().len(), 2, "snoozed: no webhook");
    assert_eq!(app.mails().len(), 2, "snoozed: no mail");
    assert_eq!(
        unread(&app, &app.a.viewer).await,
        2,
        "snoozed: nothing in-app"
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from alert_transitions where to_state = 'firing' and not notify"
        )
        .await,
        1,
        "the silenced firing is in the history"
    );

    // The snooze is lifted (`until` null): the rule tells again from here on.
    let lifted = json_of(
        app.post(
            &format!("/api/v1/alert-rules/{rule_id}/snooze"),
            &app.a.editor,
            &json!({ "until": null }),
        )
        .await,
        200,
        "unsnooze",
    )
    .await;
    assert_eq!(lifted["snoozed_until"], Value::Null, "{lifted}");

    // Every change of the rule is audited.
    let audit = count(
        &app,
        "select count(*) from audit_logs
          where action in ('alert_rule.create', 'alert_rule.snooze', 'alert_rule.unsnooze')",
    )
    .await;
    assert_eq!(audit, 3);
}

#[tokio::test]
async fn a_pending_period_holds_the_firing_until_it_has_lasted() {
    let app = TestApp::builder().spawn().await;
    import(&app, &app.a.editor, &month_file("600.00")).await;
    let rule = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "Tenant revenue", "kind": "threshold", "kpi": "revenue",
                    "client_id": null, "bucket": "month", "condition": "above", "value": 1000,
                    "pending_seconds": 3600, "channel_ids": []}),
        )
        .await,
        201,
        "create",
    )
    .await;
    assert_eq!(rule["client_id"], Value::Null, "tenant-wide");
    let now = Utc::now();
    let eval = |at| zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, at);
    let s = eval(now).await.unwrap();
    assert_eq!(
        (s.transitions, s.notified),
        (1, 0),
        "ok → pending, silently"
    );
    assert_eq!(alerts(&app, &app.a.viewer).await[0]["state"], "pending");
    let s = eval(now + chrono::Duration::minutes(30)).await.unwrap();
    assert_eq!(s.transitions, 0, "still pending after 30 minutes");
    let s = eval(now + chrono::Duration::minutes(61)).await.unwrap();
    assert_eq!(
        (s.transitions, s.notified),
        (1, 1),
        "pending → firing, notified"
    );
    assert_eq!(alerts(&app, &app.a.viewer).await[0]["state"], "firing");
    assert_eq!(
        count(
            &app,
            "select count(*) from jobs where kind = 'alert_notify'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn rules_are_validated_by_field_managed_by_editors_and_kept_in_their_tenant() {
    let app = TestApp::builder().spawn().await;
    // Every bad field is named.
    let v = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": " ", "kind": "threshold", "kpi": "turnover", "bucket": "hour",
                    "condition": "sideways", "value": "lots",
                    "channel_ids": [Uuid::now_v7()]}),
        )
        .await,
        422,
        "bad rule",
    )
    .await;
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for f in ["name", "kpi", "bucket", "condition", "value", "channel_ids"] {
        assert!(fields.contains(&f), "{f} named in {v}");
    }
    let v = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "x", "kind": "sometimes"}),
        )
        .await,
        422,
        "bad kind",
    )
    .await;
    assert_eq!(v["error"]["details"][0]["field"], "kind");
    // A margin threshold is a fraction, like a goal's target.
    let v = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "m", "kind": "threshold", "kpi": "margin", "condition": "below",
                    "value": "30"}),
        )
        .await,
        422,
        "ratio as percent",
    )
    .await;
    assert!(v.to_string().contains("fraction"), "{v}");
    // Another tenant's channel is unknown here.
    let b_hook = json_of(
        app.post(
            "/api/v1/notification-channels",
            &app.b.admin,
            &json!({"kind": "email", "name": "B", "address": "b@b.example"}),
        )
        .await,
        201,
        "B channel",
    )
    .await;
    json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "x", "kind": "stale", "stale_days": 3, "channel_ids": [b_hook["id"]]}),
        )
        .await,
        422,
        "foreign channel",
    )
    .await;

    // VIEWERs read, EDITORs write.
    let body =
        json!({"name": "Quiet clients", "kind": "stale", "stale_days": 7, "each_client": true});
    json_of(
        app.post("/api/v1/alert-rules", &app.a.viewer, &body).await,
        403,
        "viewer create",
    )
    .await;
    let rule = json_of(
        app.post("/api/v1/alert-rules", &app.a.editor, &body).await,
        201,
        "editor create",
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    assert_eq!(rule["each_client"], true);
    let list = json_of(
        app.get("/api/v1/alert-rules", &app.a.viewer).await,
        200,
        "viewer list",
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let patched = json_of(
        app.patch(
            &format!("/api/v1/alert-rules/{id}"),
            &app.a.editor,
            &json!({"stale_days": 14, "name": "Two quiet weeks"}),
        )
        .await,
        200,
        "patch",
    )
    .await;
    assert_eq!(patched["stale_days"], 14);
    assert_eq!(patched["each_client"], true, "the scope stays");
    // Tenant B cannot see, change or delete it.
    for res in [
        app.get(&format!("/api/v1/alert-rules/{id}"), &app.b.admin)
            .await,
        app.patch(
            &format!("/api/v1/alert-rules/{id}"),
            &app.b.admin,
            &json!({"name": "mine"}),
        )
        .await,
        app.delete(&format!("/api/v1/alert-rules/{id}"), &app.b.admin)
            .await,
    ] {
        assert_eq!(res.status(), 404);
    }
    let res = app
        .delete(&format!("/api/v1/alert-rules/{id}"), &app.a.editor)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from audit_logs where entity_id = '{id}'
                   and action in ('alert_rule.create', 'alert_rule.update', 'alert_rule.delete')"
            )
        )
        .await,
        3
    );
}

#[tokio::test]
async fn a_goal_rule_fires_when_its_goal_is_off_track() {
    let app = TestApp::builder().spawn().await;
    // A fixed period from 40 days ago to 20 days ahead (two thirds gone whatever the date),
    // with 2 × 10 of revenue so far against a goal of 1,000,000: off track.
    let today = Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(40), today + chrono::Days::new(20));
    import(
        &app,
        &app.a.editor,
        &format!(
            "client_id,client_name,record_date,revenue,expenses,cash_flow\n\
             ACME,Acme Pty,{from},10.00,0,0\nACME,Acme Pty,{today},10.00,0,0\n"
        ),
    )
    .await;
    let goal = json_of(
        app.post(
            "/api/v1/goals",
            &app.a.editor,
            &json!({"kpi": "revenue", "client_id": null, "period": "fixed",
                    "from": from.to_string(), "to": to.to_string(), "kind": "reach",
                    "target": "1000000"}),
        )
        .await,
        201,
        "goal",
    )
    .await;
    assert_eq!(goal["status"], "off_track", "{goal}");
    json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "Revenue goal", "kind": "goal", "goal_id": goal["id"]}),
        )
        .await,
        201,
        "goal rule",
    )
    .await;
    let s = zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, Utc::now())
        .await
        .unwrap();
    let listed = alerts(&app, &app.a.viewer).await;
    assert_eq!((s.transitions, s.notified), (1, 1), "{s:?}");
    assert_eq!(listed[0]["state"], "firing");
    assert_eq!(listed[0]["bucket_start"], from.to_string());
    assert_eq!(listed[0]["threshold"], "1000000");
    assert!(listed[0]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("off track"));
}

/// The other rule kinds and options, each judged by the evaluation against the database:
/// - a change rule (percent, against the previous month) on a set of two clients judges each on
///   its own and ignores a client outside the set;
/// - `repeat_seconds` notifies again while firing, not before the interval;
/// - a stale rule on a client fires when its newest figure is older than its days; a tenant-wide
///   one is judged on the last load, which was today;
/// - a firing rule whose figures are withdrawn goes to `no_data`, silently.
#[tokio::test]
async fn change_rules_on_a_set_of_clients_repeats_stale_data_and_no_data_are_judged() {
    let app = TestApp::builder().spawn().await;
    let (m, before) = (last_month(), last_month() - Months::new(1));
    // Per client: the month before at 2 × 500, last month at 2 × the given amount.
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    for (id, last) in [
        ("ACME", "1000.00"),
        ("BETA", "550.00"),
        ("GAMMA", "2500.00"),
    ] {
        for (month, revenue) in [(before, "500.00"), (m, last)] {
            for day in [0, 9] {
                csv.push_str(&format!(
                    "{id},{id} Pty,{},{revenue},0,0\n",
                    month + chrono::Days::new(day)
                ));
            }
        }
    }
    import(&app, &app.a.editor, &csv).await;
    let ids = client_ids(&app).await;
    let id_of = |name: &str| ids[name].clone();
    let (acme, beta, gamma) = (id_of("ACME"), id_of("BETA"), id_of("GAMMA"));
    let create = |body: Value| create_rule(&app, body);
    let change = create(
        json!({"name": "Revenue up by half", "kind": "change", "kpi": "revenue",
        "client_ids": [acme, beta], "bucket": "month", "condition": "above", "value": "50",
        "change_mode": "percent", "compare_to": "previous", "channel_ids": []}),
    )
    .await;
    let repeat = create(
        json!({"name": "Gamma over 4,000, every 10 minutes", "kind": "threshold",
        "kpi": "revenue", "client_id": gamma, "bucket": "month", "condition": "above",
        "value": "4000", "repeat_seconds": 600, "channel_ids": []}),
    )
    .await;
    // Per client, staleness is the age of its newest figure; tenant-wide, of the last load.
    let stale = create(
        json!({"name": "Nothing new from Gamma for a day", "kind": "stale",
        "client_id": gamma, "stale_days": 1, "channel_ids": []}),
    )
    .await;
    let stale_tenant = create(json!({"name": "No load for a day", "kind": "stale",
        "client_id": null, "stale_days": 1, "channel_ids": []}))
    .await;

    let now = Utc::now();
    let eval = |at| zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, at);
    eval(now).await.unwrap();
    let all = alerts(&app, &app.a.viewer).await;
    let state = |rule: &str, client: Option<&str>| -> Option<String> {
        all.iter()
            .find(|a| a["rule_id"] == rule && client.is_none_or(|c| a["client_id"] == c))
            .map(|a| a["state"].as_str().unwrap().to_string())
    };
    // ACME doubled (+100 %): firing; BETA rose 10 %: not; GAMMA (+400 %) is not in the set.
    assert_eq!(
        state(&change, Some(&acme)).as_deref(),
        Some("firing"),
        "{all:#?}"
    );
    assert_ne!(
        state(&change, Some(&beta)).as_deref(),
        Some("firing"),
        "{all:#?}"
    );
    assert_eq!(state(&change, Some(&gamma)), None, "{all:#?}");
    assert_eq!(state(&repeat, None).as_deref(), Some("firing"), "{all:#?}");
    // Gamma's newest figure is last month's 10th: more than a day old. The tenant loaded today.
    assert_eq!(state(&stale, None).as_deref(), Some("firing"), "{all:#?}");
    assert_ne!(
        state(&stale_tenant, None).as_deref(),
        Some("firing"),
        "{all:#?}"
    );

    let notifies = || {
        count(
            &app,
            "select count(*) from jobs where kind = 'alert_notify'",
        )
    };
    let first = notifies().await;
    // Three firings were told: the change for ACME, Gamma's threshold, Gamma's staleness.
    assert_eq!(first, 3);
    eval(now + chrono::Duration::minutes(5)).await.unwrap();
    assert_eq!(notifies().await, first, "not again before the interval");
    let s = eval(now + chrono::Duration::minutes(11)).await.unwrap();
    assert_eq!(s.notified, 1, "only the repeating rule tells again");
    assert_eq!(notifies().await, first + 1);

    // Gamma's figures of last month are withdrawn: its threshold has nothing to judge, and says
    // so silently (no_data, no notification).
    app.db
        .superuser()
        .await
        .execute(
            "delete from financials where client_kpi_id = $1::text::uuid and record_date >= $2",
            &[&gamma, &m],
        )
        .await
        .unwrap();
    let s = eval(now + chrono::Duration::minutes(12)).await.unwrap();
    assert_eq!(s.notified, 0);
    let all = alerts(&app, &app.a.viewer).await;
    let gamma_threshold = all.iter().find(|a| a["rule_id"] == repeat).unwrap();
    assert_eq!(gamma_threshold["state"], "no_data", "{all:#?}");
    assert_eq!(notifies().await, first + 1);
}

/// The schedule (every 5 minutes in a worker) queues one evaluation per tenant with an enabled
/// rule, and none for a tenant without: pending periods, repeats and snoozes need time to pass,
/// not data.
#[tokio::test]
async fn the_schedule_queues_an_evaluation_for_each_tenant_with_an_enabled_rule() {
    let app = TestApp::builder().spawn().await;
    json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "Revenue", "kind": "threshold", "kpi": "revenue", "client_id": null,
                    "bucket": "month", "condition": "above", "value": "1", "channel_ids": []}),
        )
        .await,
        201,
        "create",
    )
    .await;
    // The rule's creation queued an evaluation; run it so that only the schedule queues now.
    full_worker(&app).run_until_idle().await.unwrap();
    let queued = |tenant: Uuid| {
        let app = &app;
        async move {
            app.db
                .superuser()
                .await
                .query_one(
                    "select count(*) from jobs where kind = 'alert_evaluate' and tenant_id = $1
                        and state in ('available', 'scheduled')",
                    &[&tenant],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(queued(app.a.id).await, 0);
    let n = zixly_alerts::evaluate::schedule(&app.db.system)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!((queued(app.a.id).await, queued(app.b.id).await), (1, 0));
}

/// An anomaly rule judged against the database: two years of steady monthly revenue, then a
/// month at five times the usual. The alert fires and carries the band it expected.
#[tokio::test]
async fn an_anomaly_rule_fires_on_a_spike_with_its_expected_band() {
    let app = TestApp::builder().spawn().await;
    let last = last_month();
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    for back in 0..30u32 {
        let month = last - Months::new(back);
        // A gentle seasonal swing around 1,000; last month 5,000.
        let revenue = if back == 0 {
            5000.0
        } else {
            1000.0 + 50.0 * f64::from((month.month0() % 4) as u8)
        };
        csv.push_str(&format!("ACME,Acme Pty,{month},{revenue:.2},0,0\n"));
    }
    import(&app, &app.a.editor, &csv).await;
    let client = client_uuid(&app, &app.a.editor).await;
    let rule = json_of(
        app.post(
            "/api/v1/alert-rules",
            &app.a.editor,
            &json!({"name": "Unusual revenue", "kind": "anomaly", "kpi": "revenue",
                    "client_id": client, "bucket": "month", "channel_ids": []}),
        )
        .await,
        201,
        "create",
    )
    .await;
    zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, Utc::now())
        .await
        .unwrap();
    let all = alerts(&app, &app.a.viewer).await;
    let alert = all
        .iter()
        .find(|a| a["rule_id"] == rule["id"])
        .unwrap_or_else(|| panic!("no alert: {all:#?}"));
    assert_eq!(alert["state"], "firing", "{alert:#}");
    assert_eq!(alert["bucket_start"], last.to_string());
    let band = |k: &str| -> f64 {
        alert[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {alert:#}"))
            .parse()
            .unwrap()
    };
    let (low, high) = (band("expected_low"), band("expected_high"));
    assert!(
        low < 1200.0 && high > 1000.0 && high < 5000.0,
        "band {low}..{high} around the usual month, below the spike: {alert:#}"
    );
    let reason = alert["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("is outside the expected"), "{reason}");
}

/// Rules on the derived and custom KPIs, each through the evaluation's KPI reader: the win rate
/// and the open pipeline of last month's lead events, and a custom metric.
#[tokio::test]
async fn rules_on_win_rate_open_pipeline_and_a_custom_metric_fire() {
    let app = TestApp::builder().spawn().await;
    let m = last_month();
    let day = |n: u64| m + chrono::Days::new(n);
    // Last month: one lead won, two lost (win rate 1/3); one still open at 2,500.
    import_dataset(
        &app,
        &app.a.editor,
        "lead_events",
        &format!(
            "client_id,client_name,event_date,lead_id,stage,value,status\n\
             ACME,Acme Pty,{},L1,won,1000,won\n\
             ACME,Acme Pty,{},L2,lost,800,lost\n\
             ACME,Acme Pty,{},L3,lost,700,lost\n\
             ACME,Acme Pty,{},L4,proposal,2500,active\n",
            day(2),
            day(3),
            day(4),
            day(5)
        ),
    )
    .await;
    import_dataset(
        &app,
        &app.a.editor,
        "custom_metrics",
        &format!(
            "metric_name,client_id,metric_value,unit,record_date\n\
             nps,ACME,20,score,{}T12:00:00Z\n",
            day(6)
        ),
    )
    .await;
    let create = |body: Value| create_rule(&app, body);
    let rule = |name: &str, kpi: &str, condition: &str, value: &str| {
        json!({"name": name, "kind": "threshold", "kpi": kpi, "client_id": null, "bucket": "month",
               "condition": condition, "value": value, "channel_ids": []})
    };
    let win = create(rule("Win rate under half", "win_rate", "below", "0.5")).await;
    let pipe = create(rule(
        "Pipeline over 2,000",
        "open_pipeline",
        "above",
        "2000",
    ))
    .await;
    let nps = create(rule("NPS under 30", "nps", "below", "30")).await;
    let quiet = create(rule("Win rate under a tenth", "win_rate", "below", "0.1")).await;
    zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, Utc::now())
        .await
        .unwrap();
    let all = alerts(&app, &app.a.viewer).await;
    let state = |rule: &str| {
        all.iter()
            .find(|a| a["rule_id"] == rule)
            .map(|a| a["state"].as_str().unwrap().to_string())
    };
    for (id, what) in [
        (&win, "win rate 1/3"),
        (&pipe, "pipeline 2,500"),
        (&nps, "nps 20"),
    ] {
        assert_eq!(state(id).as_deref(), Some("firing"), "{what}: {all:#?}");
    }
    assert_ne!(state(&quiet).as_deref(), Some("firing"), "{all:#?}");
}

/// The Alerts page's form sets what the API can: a rule on some clients (ticked), each judged on
/// its own, reminding every hour while it fires; ticking none is refused, naming the field.
#[tokio::test]
async fn the_page_creates_a_rule_on_some_clients_that_reminds_every_hour() {
    use crate::page_kit::{get_page, page_session, post_form};
    let app = TestApp::builder().spawn().await;
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    for id in ["ACME", "BETA", "GAMMA"] {
        csv.push_str(&format!("{id},{id} Pty,{},10,0,0\n", last_month()));
    }
    import(&app, &app.a.editor, &csv).await;
    let ids = client_ids(&app).await;
    let id_of = |name: &str| ids[name].clone();
    let (acme, beta) = (id_of("ACME"), id_of("BETA"));
    let s = page_session(&app, &app.a.editor, "/alerts").await;
    let html = get_page(&app, &s.0, "/alerts").await;
    assert!(html.contains(r#"<option value="some">"#), "{html}");
    assert!(html.contains(&format!(r#"name="client_{acme}""#)), "{html}");
    let base = [
        ("name", "Two clients over 5"),
        ("kind", "threshold"),
        ("kpi", "revenue"),
        ("client", "some"),
        ("bucket", "month"),
        ("condition", "above"),
        ("value", "5"),
        ("repeat_minutes", "60"),
    ];
    let res = post_form(&app, &s, "/alerts/rules", &base).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("tick at least one client"), "{html}");

    let (ta, tb) = (format!("client_{acme}"), format!("client_{beta}"));
    let mut fields = base.to_vec();
    fields.extend([(ta.as_str(), "on"), (tb.as_str(), "on")]);
    let res = post_form(&app, &s, "/alerts/rules", &fields).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let rules = rules_listed(&app).await;
    let rule = &rules["data"][0];
    let mut ids: Vec<&str> = rule["client_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![acme.as_str(), beta.as_str()];
    want.sort();
    assert_eq!(ids, want, "{rule:#}");
    assert_eq!(rule["repeat_seconds"], 3600, "{rule:#}");
    let html = get_page(&app, &s.0, "/alerts").await;
    assert!(html.contains("reminds every hour"), "{html}");
}

/// A stale rule on one integration judges that integration's syncs: the last one that wrote
/// rows (a later sync that found nothing new does not count), and whether it is in `ERROR`. Only
/// a stale, tenant-wide rule may name an integration, of its own tenant; deleting the
/// integration deletes its rules; the page creates one from its "Data from" choice.
#[tokio::test]
async fn a_stale_rule_on_one_integration_judges_that_integrations_syncs() {
    use crate::page_kit::{get_page, page_session, post_form};
    let app = TestApp::builder().spawn().await;
    let su = app.db.superuser().await;
    let integration = |tenant: Uuid, provider: &'static str| {
        let su = &su;
        async move {
            let row = su
                .query_one(
                    "insert into integrations (tenant_id, provider, status, access_token)
                     values ($1, $2::text::integration_provider, 'ACTIVE', '\\x00') returning id",
                    &[&tenant, &provider],
                )
                .await
                .unwrap();
            row.get::<_, Uuid>(0)
        }
    };
    let (xero, hubspot) = (
        integration(app.a.id, "XERO").await,
        integration(app.a.id, "HUBSPOT").await,
    );
    let b_xero = integration(app.b.id, "XERO").await;
    // A sync of `integration` that finished `days_ago` having written `rows`.
    let sync = |integration: Uuid, days_ago: i32, rows: i64| {
        let su = &su;
        let tenant = app.a.id;
        async move {
            su.execute(
                "insert into sync_runs (tenant_id, source, dataset, integration_id, status,
                                        rows_inserted, started_at, finished_at)
                 values ($1, 'sync', 'mixed', $2, 'succeeded', $3,
                         now() - make_interval(days => $4), now() - make_interval(days => $4))",
                &[&tenant, &integration, &rows, &days_ago],
            )
            .await
            .unwrap();
        }
    };
    sync(xero, 10, 40).await;
    sync(xero, 0, 0).await; // today's sync of Xero found nothing new
    sync(hubspot, 1, 5).await;

    // Validation, each naming `integration_id`.
    for (body, says) in [
        (
            json!({"name": "x", "kind": "threshold", "kpi": "revenue", "condition": "above",
                   "value": "1", "integration_id": xero}),
            "only a stale rule",
        ),
        (
            json!({"name": "x", "kind": "stale", "stale_days": 7, "integration_id": b_xero}),
            "no such integration",
        ),
        (
            json!({"name": "x", "kind": "stale", "stale_days": 7, "integration_id": xero,
                   "each_client": true}),
            "tenant-wide",
        ),
    ] {
        let v = json_of(
            app.post("/api/v1/alert-rules", &app.a.editor, &body).await,
            422,
            says,
        )
        .await;
        let detail = v.to_string();
        assert!(
            detail.contains("integration_id") && detail.contains(says),
            "{detail}"
        );
    }

    let quiet_xero = create_rule(
        &app,
        json!({"name": "Xero quiet for a week", "kind": "stale", "stale_days": 7,
               "integration_id": xero}),
    )
    .await;
    let quiet_hubspot = create_rule(
        &app,
        json!({"name": "HubSpot quiet for a week", "kind": "stale", "stale_days": 7,
               "integration_id": hubspot}),
    )
    .await;
    let rule = json_of(
        app.get(&format!("/api/v1/alert-rules/{quiet_xero}"), &app.a.viewer)
            .await,
        200,
        "rule",
    )
    .await;
    assert_eq!(rule["integration_id"], xero.to_string(), "{rule:#}");

    let now = Utc::now();
    let eval = |at| zixly_alerts::evaluate::evaluate_tenant(&app.db.app, app.a.id, at);
    eval(now).await.unwrap();
    let alert_of = |all: &[Value], rule: &str| -> Value {
        all.iter()
            .find(|a| a["rule_id"] == rule)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let all = alerts(&app, &app.a.viewer).await;
    let x = alert_of(&all, &quiet_xero);
    assert_eq!(x["state"], "firing", "{all:#?}");
    assert_eq!(
        x["value"], "10",
        "ten days since Xero last wrote rows: {x:#}"
    );
    assert_ne!(
        alert_of(&all, &quiet_hubspot)["state"],
        "firing",
        "{all:#?}"
    );

    // HubSpot goes into ERROR: its rule fires and says why; Xero's new rows resolve Xero's.
    su.execute(
        "update integrations set status = 'ERROR', last_error = 'token revoked' where id = $1",
        &[&hubspot],
    )
    .await
    .unwrap();
    sync(xero, 0, 3).await;
    eval(now + chrono::Duration::minutes(5)).await.unwrap();
    let all = alerts(&app, &app.a.viewer).await;
    let h = alert_of(&all, &quiet_hubspot);
    assert_eq!(h["state"], "firing", "{all:#?}");
    assert!(
        h["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("HUBSPOT is in error"),
        "{h:#}"
    );
    assert_eq!(alert_of(&all, &quiet_xero)["state"], "resolved", "{all:#?}");

    // The page offers the integrations, creates a rule on one and says what it watches.
    let s = page_session(&app, &app.a.editor, "/alerts").await;
    let html = get_page(&app, &s.0, "/alerts").await;
    assert!(
        html.contains(&format!(r#"<option value="{xero}">Xero only</option>"#)),
        "{html}"
    );
    assert!(
        html.contains("No new data from HubSpot for 7 days, or HubSpot in error"),
        "{html}"
    );
    let xero_text = xero.to_string();
    let res = post_form(
        &app,
        &s,
        "/alerts/rules",
        &[
            ("name", "Xero quiet for three days"),
            ("kind", "stale"),
            ("client", ""),
            ("integration", xero_text.as_str()),
            ("stale_days", "3"),
        ],
    )
    .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let rules = rules_listed(&app).await;
    let on_xero: Vec<&Value> = rules["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["integration_id"] == xero_text)
        .collect();
    assert_eq!(on_xero.len(), 2, "{rules:#}");

    // Deleting the integration deletes the rules that watched it, with their alerts.
    su.execute("delete from integrations where id = $1", &[&xero])
        .await
        .unwrap();
    let rules = rules_listed(&app).await;
    let names: Vec<&str> = rules["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["HubSpot quiet for a week"], "{rules:#}");
}
