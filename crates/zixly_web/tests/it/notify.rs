//! Notification channels, delivery and the notification centre (issue 13 item 4), against a real
//! database and a local webhook receiver: a notified transition gives exactly one signed webhook,
//! one e-mail and one in-app notification per user, idempotently; a failing receiver is retried
//! with backoff, every attempt logged; receiver addresses are refused by the address rule; and
//! channels and notifications stay inside their tenant and user.
//!
//! The address rule is lifted for the local receiver with `ZIXLY_WEBHOOK_ALLOW_PRIVATE`, set in
//! the test's own process (nextest runs each test in its own process, so it does not leak).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use uuid::Uuid;
use zixly_alerts::deliver::{self, signature, DeliveryConfig};
use zixly_alerts::mail::Mailer;
use zixly_queue::{NewJob, Worker, WorkerConfig};
use zixly_testkit::app::{spawn_app, TestApp};

/// What the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A webhook receiver on 127.0.0.1: answers the queued statuses in order, then 200.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub(crate) async fn start(statuses: &[u16]) -> (Receiver, String) {
        let r = Receiver::default();
        r.statuses.lock().unwrap().extend(statuses);
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received { headers, body });
                    let code = state.statuses.lock().unwrap().pop_front().unwrap_or(200);
                    (
                        StatusCode::from_u16(code).unwrap(),
                        // Longer than the 1 KiB kept, with multi-byte characters at the cut.
                        "é".repeat(700),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

pub(crate) fn no_wait(_: i32) -> Duration {
    Duration::ZERO
}

fn an_hour(_: i32) -> Duration {
    Duration::from_secs(3600)
}

/// A worker with the delivery jobs, the app's keyring and mail capture.
pub(crate) fn worker(app: &TestApp, allow_private: bool, backoff: fn(i32) -> Duration) -> Worker {
    let mut w = Worker::new(app.db.system.clone(), WorkerConfig::default());
    let services = zixly_alerts::Services {
        app: app.db.app.clone(),
        system: app.db.system.clone(),
        keyring: app.state.integrations.as_ref().map(|e| e.keyring().clone()),
    };
    deliver::register_with(
        &mut w,
        &services,
        DeliveryConfig {
            allow_private,
            backoff,
            mailer: app.mailer.clone().map(|m| m as Arc<dyn Mailer>),
        },
    );
    w
}

pub(crate) fn allow_private() {
    std::env::set_var(deliver::ALLOW_PRIVATE_ENV, "1");
}

pub(crate) async fn create_channel(app: &TestApp, body: Value) -> Value {
    let res = app
        .post("/api/v1/notification-channels", &app.a.admin, &body)
        .await;
    assert_eq!(res.status(), 201, "creating {body}");
    res.json().await.unwrap()
}

/// A client, a threshold rule with `channels`, a firing alert and its notified transition, made
/// with SQL as the evaluation job would; enqueues the `alert_notify` job. Returns
/// (client id, rule id, transition id).
async fn firing_transition(app: &TestApp, channels: &[&str]) -> (Uuid, Uuid, Uuid) {
    let res = app
        .post(
            "/api/v1/clients",
            &app.a.admin,
            &json!({"client_id": "ACME", "client_name": "Acme Pty"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let client: Uuid = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (t, rule, alert, transition) = (app.a.id, Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut sql = format!(
        "insert into alert_rules (tenant_id, id, name, kind, kpi, scope, client_ids, condition, value)
           values ('{t}', '{rule}', 'Revenue too low', 'threshold', 'revenue', 'clients',
                   array['{client}']::uuid[], 'below', 1000);
         insert into alerts (tenant_id, id, rule_id, client_id, subject_key, bucket_start, state,
                             value, threshold, detail)
           values ('{t}', '{alert}', '{rule}', '{client}', '{client}', '2026-11-01', 'firing',
                   812.50, 1000, '{{\"kpi\": \"revenue\", \"reason\": \"Below the threshold.\"}}');
         insert into alert_transitions (tenant_id, id, alert_id, from_state, to_state, value, notify)
           values ('{t}', '{transition}', '{alert}', 'ok', 'firing', 812.50, true);"
    );
    for c in channels {
        sql.push_str(&format!(
            "insert into alert_rule_channels (tenant_id, rule_id, channel_id) values ('{t}', '{rule}', '{c}');"
        ));
    }
    let tx = app.db.app.begin_tenant(t).await.unwrap();
    tx.raw_batch(&sql).await.unwrap();
    enqueue_notify(&tx, transition).await;
    tx.commit().await.unwrap();
    (client, rule, transition)
}

async fn enqueue_notify(tx: &zixly_db::TenantTx, transition: Uuid) {
    let mut job = NewJob::new(deliver::NOTIFY_JOB, json!({"transition_id": transition}));
    job.unique_key = Some(transition.to_string());
    tx.enqueue_job(&job).await.unwrap();
}

pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db
        .superuser()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

pub(crate) fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn a_transition_gives_one_signed_webhook_one_mail_and_in_app_notifications() {
    allow_private();
    let app = TestApp::builder().with_mailer().spawn().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Ops hook", "url": url}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_"),
        "a secret is generated and shown once"
    );
    let mail = create_channel(
        &app,
        json!({"kind": "email", "name": "Ops mail", "address": "Ops@A.example"}),
    )
    .await;
    assert_eq!(mail["target"], "ops@a.example");
    let (client, rule, transition) = firing_transition(
        &app,
        &[hook["id"].as_str().unwrap(), mail["id"].as_str().unwrap()],
    )
    .await;

    let w = worker(&app, true, no_wait);
    w.run_until_idle().await.unwrap();

    // One signed webhook.
    let got = receiver.got();
    assert_eq!(got.len(), 1, "exactly one webhook");
    let r = &got[0];
    let (id, ts, sig) = (
        header(r, "webhook-id"),
        header(r, "webhook-timestamp"),
        header(r, "webhook-signature"),
    );
    let ts: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 300);
    let key = signature::secret_bytes(&secret).unwrap();
    assert_eq!(
        sig,
        signature::sign(&key, id, ts, &r.body),
        "signature verifies"
    );
    let mut wrong = key.clone();
    wrong[0] ^= 1;
    assert_ne!(sig, signature::sign(&wrong, id, ts, &r.body));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "alert.firing");
    assert_eq!(body["rule_id"], rule.to_string());
    assert_eq!(body["client_id"], client.to_string());
    assert_eq!(body["kpi"], "revenue");
    assert_eq!(body["bucket_start"], "2026-11-01");
    assert_eq!(body["value"], "812.5");
    assert_eq!(body["threshold"], "1000");
    assert_eq!(body["test"], false);
    let delivery: Uuid = id.parse().expect("the webhook-id is the delivery id");
    assert_eq!(
        count(&app, &format!("select count(*) from notification_deliveries where id = '{delivery}' and state = 'delivered'")).await,
        1
    );

    // One e-mail.
    let mails = app.mails();
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:?}");
    assert_eq!(mails[0].to, "ops@a.example");
    assert!(
        mails[0].subject.contains("Revenue too low"),
        "{}",
        mails[0].subject
    );
    assert!(mails[0].body.contains("812.5"), "{}", mails[0].body);

    // One in-app notification per active user of the tenant, linking to the client's page for
    // the judged month.
    for user in [&app.a.admin, &app.a.editor, &app.a.viewer] {
        let v: Value = app
            .get("/api/v1/notifications", user)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["unread"], 1, "{v}");
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        let link = format!("/clients/{client}?range=custom&from=2026-11-01&to=2026-11-30");
        assert_eq!(v["data"][0]["link"], link);
        if std::ptr::eq(user, &app.a.viewer) {
            // The link opens the client's figures for the judged month.
            let res = app.get(&link, user).await;
            assert_eq!(res.status(), 200);
            let page = res.text().await.unwrap();
            assert!(
                page.contains("1 Nov 2026 – 30 Nov 2026"),
                "the client page for November: {page}"
            );
        }
        assert!(v["data"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Acme Pty"));
    }
    let v: Value = app
        .get("/api/v1/notifications", &app.b.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]), "another tenant hears nothing");

    // Every attempt is logged, with at most 1 KiB of the answer, cut at a character.
    let log: Value = app
        .get(
            &format!(
                "/api/v1/notification-channels/{}/log",
                hook["id"].as_str().unwrap()
            ),
            &app.a.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "sent");
    assert_eq!(rows[0]["response_status"], 200);
    let kept = rows[0]["response"].as_str().unwrap();
    assert_eq!(kept.len(), 1024);
    assert!(kept.chars().all(|c| c == 'é'));

    // The job again (a re-run after a crash): nothing new anywhere.
    let tx = app.db.app.begin_tenant(app.a.id).await.unwrap();
    enqueue_notify(&tx, transition).await;
    tx.commit().await.unwrap();
    w.run_until_idle().await.unwrap();
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(app.mails().len(), 1);
    assert_eq!(count(&app, "select count(*) from notifications").await, 3);
    assert_eq!(
        count(&app, "select count(*) from notification_deliveries").await,
        2
    );
    assert_eq!(
        count(&app, "select count(*) from notification_dispatch_log").await,
        2
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_and_every_attempt_logged() {
    allow_private();
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(&[500, 500]).await;
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Flaky", "url": url}),
    )
    .await;
    let channel = hook["id"].as_str().unwrap().to_string();
    firing_transition(&app, &[&channel]).await;

    // First attempt fails: the job waits the backoff (an hour here) before the next.
    worker(&app, true, an_hour).run_until_idle().await.unwrap();
    assert_eq!(receiver.got().len(), 1);
    let waits = count(
        &app,
        "select extract(epoch from scheduled_at - now())::int8 from jobs
          where kind = 'notification_deliver' and state = 'retryable'",
    )
    .await;
    assert!(
        (3500..=3600).contains(&waits),
        "retry scheduled after the backoff: {waits} s"
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from notification_deliveries where state = 'pending' and attempts = 1"
        )
        .await,
        1
    );

    // Due now (as after the wait): 500 again, then 200.
    app.db
        .superuser()
        .await
        .execute(
            "update jobs set scheduled_at = now() where kind = 'notification_deliver'",
            &[],
        )
        .await
        .unwrap();
    worker(&app, true, no_wait).run_until_idle().await.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got.iter().map(|r| header(r, "webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same webhook-id on every retry: {ids:?}"
    );

    let log: Value = app
        .get(
            &format!("/api/v1/notification-channels/{channel}/log"),
            &app.a.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    let rows: Vec<(i64, String, i64)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["response_status"].as_i64().unwrap(),
            )
        })
        .rev()
        .collect();
    assert_eq!(
        rows,
        [
            (1, "failed".to_string(), 500),
            (2, "failed".to_string(), 500),
            (3, "sent".to_string(), 200)
        ]
    );
    assert_eq!(
        count(&app, "select count(*) from notification_deliveries where state = 'delivered' and attempts = 3").await,
        1
    );
    let ch: Value = app
        .get("/api/v1/notification-channels", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(ch["data"][0]["verified_at"].is_string());
    assert!(
        ch["data"][0]["last_error"].is_null(),
        "a success clears the error"
    );
}

#[tokio::test]
async fn a_receiver_that_never_succeeds_ends_failed() {
    allow_private();
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(&[503; 10]).await;
    let hook = create_channel(&app, json!({"kind": "webhook", "name": "Down", "url": url})).await;
    firing_transition(&app, &[hook["id"].as_str().unwrap()]).await;
    worker(&app, true, no_wait).run_until_idle().await.unwrap();
    assert_eq!(receiver.got().len(), deliver::MAX_ATTEMPTS as usize);
    assert_eq!(
        count(
            &app,
            "select count(*) from notification_deliveries where state = 'failed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from notification_dispatch_log where status = 'failed'"
        )
        .await,
        i64::from(deliver::MAX_ATTEMPTS)
    );
    let ch: Value = app
        .get("/api/v1/notification-channels", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(ch["data"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("503"));
}

#[tokio::test]
async fn receiver_addresses_are_refused_at_creation_and_at_delivery() {
    std::env::remove_var(deliver::ALLOW_PRIVATE_ENV);
    let app = spawn_app().await;
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "http://example.com/hook",
    ] {
        let res = app
            .post(
                "/api/v1/notification-channels",
                &app.a.admin,
                &json!({"kind": "webhook", "name": "x", "url": url}),
            )
            .await;
        assert_eq!(res.status(), 422, "{url}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["details"][0]["field"], "url", "{url}: {v}");
    }
    let res = app
        .post(
            "/api/v1/notification-channels",
            &app.a.admin,
            &json!({"kind": "webhook", "name": "x", "url": "https://hooks.example.com/x", "secret": "whsec_tooshort"}),
        )
        .await;
    assert_eq!(res.status(), 422);

    // Created while the operator allowed private receivers, delivered after they stopped: the
    // check after resolution refuses it and nothing is sent.
    allow_private();
    let (receiver, url) = Receiver::start(&[]).await;
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Local", "url": url}),
    )
    .await;
    std::env::remove_var(deliver::ALLOW_PRIVATE_ENV);
    firing_transition(&app, &[hook["id"].as_str().unwrap()]).await;
    worker(&app, false, no_wait).run_until_idle().await.unwrap();
    assert!(
        receiver.got().is_empty(),
        "nothing reaches a private address"
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from notification_deliveries where state = 'failed' and attempts = 1"
        )
        .await,
        1,
        "refused for good, not retried"
    );
    let err = app
        .db
        .superuser()
        .await
        .query_one("select error from notification_dispatch_log", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    // The local receiver is plain http on 127.0.0.1: the rule refuses it on the scheme first (the
    // check on resolved addresses is `deliver::address`'s unit test).
    assert_eq!(err, "the URL must use https");

    // The dispatch log is append-only: neither the app nor the owner can rewrite an attempt.
    let tx = app.db.app.begin_tenant(app.a.id).await.unwrap();
    let refused = tx
        .raw_execute("update notification_dispatch_log set status = 'sent'")
        .await
        .unwrap_err();
    assert_eq!(
        refused.sql_state().map(|s| s.code()),
        Some("42501"),
        "insufficient_privilege: {refused}"
    );
    drop(tx);
    let refused = app
        .db
        .superuser()
        .await
        .execute("update notification_dispatch_log set status = 'sent'", &[])
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("append-only"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn channels_are_admin_only_secret_free_audited_and_tenant_scoped() {
    allow_private();
    let app = spawn_app().await;
    let slack = create_channel(
        &app,
        json!({"kind": "slack", "name": "Slack", "url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"}),
    )
    .await;
    assert_eq!(
        slack["target"], "hooks.slack.com",
        "a Slack URL is a secret"
    );
    assert!(slack["secret"].is_null());
    let given = signature::generate_secret();
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Hook", "url": "https://hooks.example.com/in", "secret": given}),
    )
    .await;
    assert_eq!(hook["secret"], given.as_str());
    let id = hook["id"].as_str().unwrap();

    let listed = app
        .get("/api/v1/notification-channels", &app.a.admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains("XXXXSECRET") && !listed.contains(&given),
        "{listed}"
    );
    assert!(!listed.contains("\"secret\""));
    let stored = count(
        &app,
        "select count(*) from notification_providers where secret_ciphertext is not null
           and position(convert_to('whsec_', 'utf8') in secret_ciphertext) = 0
           and position(convert_to('XXXXSECRET', 'utf8') in secret_ciphertext) = 0",
    )
    .await;
    assert_eq!(stored, 2, "secrets are stored encrypted");

    assert_eq!(
        app.post(
            "/api/v1/notification-channels",
            &app.a.editor,
            &json!({"kind": "email", "name": "e", "address": "a@b.example"})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.get("/api/v1/notification-channels", &app.a.viewer)
            .await
            .status(),
        403
    );
    let dup = app
        .post(
            "/api/v1/notification-channels",
            &app.a.admin,
            &json!({"kind": "email", "name": "Hook", "address": "a@b.example"}),
        )
        .await;
    assert_eq!(dup.status(), 409);

    // Another tenant's ADMIN sees nothing and can change nothing.
    let b: Value = app
        .get("/api/v1/notification-channels", &app.b.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["data"], json!([]));
    let path = format!("/api/v1/notification-channels/{id}");
    assert_eq!(
        app.patch(&path, &app.b.admin, &json!({"name": "mine"}))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post(&format!("{path}/test"), &app.b.admin, &json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("{path}/log"), &app.b.admin).await.status(),
        404
    );
    assert_eq!(app.delete(&path, &app.b.admin).await.status(), 404);

    let res = app
        .patch(
            &path,
            &app.a.admin,
            &json!({"name": "Renamed", "active": false}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["active"].as_bool()),
        (Some("Renamed"), Some(false))
    );
    assert_eq!(app.delete(&path, &app.a.admin).await.status(), 204);
    let audit = app
        .db
        .superuser()
        .await
        .query(
            "select action from audit_logs where entity_type = 'notification_channel' order by occurred_at, id",
            &[],
        )
        .await
        .unwrap();
    let actions: Vec<String> = audit.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        actions,
        [
            "notification_channel.create",
            "notification_channel.create",
            "notification_channel.update",
            "notification_channel.delete"
        ]
    );
    let summary: Value = app
        .db
        .superuser()
        .await
        .query_one(
            "select summary from audit_logs where action = 'notification_channel.update'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        summary,
        json!({"name": "Renamed", "renamed": {"from": "Hook", "to": "Renamed"}, "active": {"from": true, "to": false}})
    );
}

#[tokio::test]
async fn send_test_goes_through_the_same_delivery() {
    allow_private();
    let app = spawn_app().await;
    let (receiver, url) = Receiver::start(&[]).await;
    let hook = create_channel(&app, json!({"kind": "webhook", "name": "Hook", "url": url})).await;
    let res = app
        .post(
            &format!(
                "/api/v1/notification-channels/{}/test",
                hook["id"].as_str().unwrap()
            ),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let delivery = res.json::<Value>().await.unwrap()["delivery_id"].clone();
    worker(&app, true, no_wait).run_until_idle().await.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "webhook-id"), delivery.as_str().unwrap());
    let key = signature::secret_bytes(hook["secret"].as_str().unwrap()).unwrap();
    let ts: i64 = header(&got[0], "webhook-timestamp").parse().unwrap();
    assert_eq!(
        header(&got[0], "webhook-signature"),
        signature::sign(&key, delivery.as_str().unwrap(), ts, &got[0].body)
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["test"].as_bool()),
        (Some("alert.test"), Some(true))
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from audit_logs where action = 'notification_channel.test'"
        )
        .await,
        1,
        "the test send is audited"
    );
}

#[tokio::test]
async fn each_user_sees_and_marks_only_their_own_notifications() {
    allow_private();
    let app = spawn_app().await;
    firing_transition(&app, &[]).await;
    worker(&app, true, no_wait).run_until_idle().await.unwrap();
    let mine: Value = app
        .get("/api/v1/notifications", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    let mine_id = mine["data"][0]["id"].as_str().unwrap().to_string();
    let admins: Value = app
        .get("/api/v1/notifications", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    let admins_id = admins["data"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(mine_id, admins_id);

    // Not theirs: 404, and the admin's stays unread.
    let res = app
        .post(
            &format!("/api/v1/notifications/{admins_id}/read"),
            &app.a.viewer,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post(
            &format!("/api/v1/notifications/{mine_id}/read"),
            &app.b.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post(
            &format!("/api/v1/notifications/{mine_id}/read"),
            &app.a.viewer,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let mine: Value = app
        .get("/api/v1/notifications", &app.a.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (mine["unread"].as_i64(), mine["data"][0]["read"].as_bool()),
        (Some(0), Some(true))
    );
    let admins: Value = app
        .get("/api/v1/notifications", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admins["unread"], 1);

    let res = app
        .post("/api/v1/notifications/read-all", &app.a.admin, &json!({}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], 1);
    let admins: Value = app
        .get("/api/v1/notifications", &app.a.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admins["unread"], 0);
    let editors: Value = app
        .get("/api/v1/notifications", &app.a.editor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(editors["unread"], 1, "read-all marks only the caller's");
}

#[tokio::test]
async fn slack_gets_text_and_a_redirect_is_not_followed() {
    allow_private();
    let app = spawn_app().await;
    let (slack, slack_url) = Receiver::start(&[]).await;
    let ch = create_channel(
        &app,
        json!({"kind": "slack", "name": "Slack", "url": slack_url}),
    )
    .await;
    assert_eq!(ch["target"], "127.0.0.1", "only the host is shown");
    let (moved, moved_url) = Receiver::start(&[302]).await;
    let hook = create_channel(
        &app,
        json!({"kind": "webhook", "name": "Moved", "url": moved_url}),
    )
    .await;
    firing_transition(
        &app,
        &[ch["id"].as_str().unwrap(), hook["id"].as_str().unwrap()],
    )
    .await;
    worker(&app, true, an_hour).run_until_idle().await.unwrap();

    let got = slack.got();
    assert_eq!(got.len(), 1);
    assert!(got[0].headers.get("webhook-signature").is_none());
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Revenue too low") && text.contains("Acme Pty") && text.contains("812.5"),
        "{text}"
    );

    // The 302 (no Location needed: it is not followed) is a failed attempt, retried later.
    assert_eq!(moved.got().len(), 1);
    let row = app
        .db
        .superuser()
        .await
        .query_one(
            "select response_status, error from notification_dispatch_log where channel = 'webhook'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(302));
    assert!(row.get::<_, String>(1).contains("redirect"));
    assert_eq!(
        count(
            &app,
            "select count(*) from notification_deliveries where state = 'pending'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_pages_answer_by_role() {
    let app = spawn_app().await;
    assert_eq!(app.get("/notifications", &app.a.viewer).await.status(), 200);
    assert_eq!(
        app.get("/settings/notifications", &app.a.admin)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get("/settings/notifications", &app.a.editor)
            .await
            .status(),
        403
    );
    let page = app.get("/", &app.a.viewer).await.text().await.unwrap();
    assert!(
        page.contains("Notifications, none unread"),
        "the top bar links the centre"
    );
    assert!(
        !page.contains("/settings/notifications"),
        "no Channels entry for a VIEWER"
    );
}
