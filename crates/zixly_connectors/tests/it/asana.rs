//! Asana connector against the fake Asana.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use zixly_connectors::asana::{self, AsanaClient, AsanaRead, ProjectMapping, Recomputed};
use zixly_connectors::{http_client, ConnectorError, Provider};
use zixly_testkit::fakes::asana::{FakeAsana, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::oauth::Fault;

use super::{config, connect};

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, d, h, 0, 0).unwrap()
}

/// Acme = "Acme - Website" (p1) + "Acme - SEO" (p2); Globex = "Globex - App" (p3, archived);
/// Internal = p4 with open tasks only.
fn seed(fake: &FakeAsana) {
    fake.tick(chrono::Duration::days(11)); // 2024-01-12
    fake.add_project("ws-1", "p1", "Acme - Website", false);
    fake.add_project("ws-1", "p2", "Acme - SEO", false);
    fake.add_project("ws-1", "p3", "Globex - App", true);
    fake.add_project("ws-1", "p4", "Internal", false);
    fake.add_project("ws-other", "p9", "Elsewhere - X", false);
    // 230 tasks done on Jan 10: even ones on time, 4k+1 late (due Jan 9), 4k+3 without a due date.
    for i in 0..230 {
        let due = match i % 4 {
            0 | 2 => Some("2024-01-10"),
            1 => Some("2024-01-09"),
            _ => None,
        };
        // a0..a4 are in both Acme projects: counted once.
        let projects: &[&str] = if i < 5 { &["p1", "p2"] } else { &["p1"] };
        fake.upsert_task(&format!("a{i}"), projects, Some(at(10, 10)), due);
    }
    for i in 0..10 {
        fake.upsert_task(
            &format!("b{i}"),
            &["p2"],
            Some(at(11, 9)),
            Some("2024-01-11"),
        );
    }
    for i in 0..3 {
        fake.upsert_task(&format!("g{i}"), &["p3"], Some(at(11, 12)), None);
    }
    for i in 0..5 {
        fake.upsert_task(&format!("i{i}"), &["p4"], None, Some("2024-01-01"));
    }
}

fn metric(read: &AsanaRead, client: &str, day: &str, name: &str) -> Option<Decimal> {
    read.metrics
        .iter()
        .find(|m| m.client_id == client && m.date.to_string() == day && m.metric_name == name)
        .map(|m| m.value)
}

fn dec(s: &str) -> Option<Decimal> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn asana_full_incremental_and_deleted_tasks() {
    let fake = FakeAsana::start().await;
    let cfg = config(
        Provider::Asana,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    assert!(cfg.pkce);
    let tokens = connect(&cfg).await;
    seed(&fake);
    // The full read starts a while after the last change (more than the cursor's safety margin).
    fake.tick(chrono::Duration::minutes(5));
    let client = AsanaClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());
    let ws = asana::choose_workspace(&client.workspaces().await.unwrap(), None).unwrap();
    assert_eq!(ws.gid, "ws-1");
    let mapping =
        ProjectMapping::from_settings(&serde_json::json!({"asana_client_mapping": "name_prefix"}))
            .unwrap();
    let utc: Tz = "UTC".parse().unwrap();

    let before = client.calls.load(Ordering::Relaxed);
    let full = client
        .read(&ws.gid, &mapping, None, utc, fake.now())
        .await
        .unwrap();
    // projects 1 + p1 100/100/30 + p2 1 + p3 1 + p4 1
    assert_eq!(client.calls.load(Ordering::Relaxed) - before, 7);
    let names: Vec<&str> = full.clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(names, ["Acme", "Globex", "Internal"]);
    assert_eq!(
        metric(&full, "Acme", "2024-01-10", "tasks_completed"),
        dec("230")
    );
    assert_eq!(
        metric(&full, "Acme", "2024-01-10", "tasks_completed_on_time"),
        dec("115")
    );
    assert_eq!(
        metric(&full, "Acme", "2024-01-10", "on_time_rate"),
        dec("0.6647"),
        "115 on time of 173 with a due date"
    );
    assert_eq!(
        metric(&full, "Acme", "2024-01-11", "on_time_rate"),
        dec("1")
    );
    assert_eq!(
        metric(&full, "Globex", "2024-01-11", "tasks_completed"),
        dec("3")
    );
    assert_eq!(
        metric(&full, "Globex", "2024-01-11", "on_time_rate"),
        None,
        "no task had a due date"
    );
    assert_eq!(full.metrics.len(), 8);
    assert!(full.recomputed.iter().all(|r| r.from.is_none()));
    let cursor = full.cursor.unwrap();

    // A day later: a task of Jan 10 is completed in p2, an open task of p4 is edited.
    fake.tick(chrono::Duration::days(1));
    fake.upsert_task("b100", &["p2"], Some(at(10, 15)), None);
    fake.upsert_task("i0", &["p4"], None, Some("2024-02-01"));
    fake.tick(chrono::Duration::minutes(5));
    let before = client.calls.load(Ordering::Relaxed);
    let inc = client
        .read(&ws.gid, &mapping, Some(cursor), utc, fake.now())
        .await
        .unwrap();
    // projects 1 + modified_since per project 4 + Acme's two projects since Jan 10: 3 + 1
    assert_eq!(client.calls.load(Ordering::Relaxed) - before, 9);
    assert_eq!(
        inc.recomputed,
        vec![Recomputed {
            client_id: "Acme".into(),
            from: Some("2024-01-10".parse().unwrap())
        }]
    );
    assert_eq!(
        metric(&inc, "Acme", "2024-01-10", "tasks_completed"),
        dec("231")
    );
    assert_eq!(
        metric(&inc, "Acme", "2024-01-10", "on_time_rate"),
        dec("0.6647")
    );
    assert_eq!(
        metric(&inc, "Acme", "2024-01-11", "tasks_completed"),
        dec("10")
    );
    assert!(inc.metrics.iter().all(|m| m.client_id == "Acme"));
    assert!(inc.cursor.unwrap() > cursor);

    // Nothing changed since: no day is recomputed.
    let quiet = client
        .read(&ws.gid, &mapping, inc.cursor, utc, fake.now())
        .await
        .unwrap();
    assert!(quiet.metrics.is_empty() && quiet.recomputed.is_empty());

    // A deleted task is gone from the next full read.
    fake.delete_task("a0");
    let after = client
        .read(&ws.gid, &mapping, None, utc, fake.now())
        .await
        .unwrap();
    assert_eq!(
        metric(&after, "Acme", "2024-01-10", "tasks_completed"),
        dec("230")
    );
    assert_eq!(
        metric(&after, "Acme", "2024-01-10", "tasks_completed_on_time"),
        dec("114")
    );
}

#[tokio::test]
async fn asana_failures_are_classified_and_refresh_keeps_the_refresh_token() {
    let fake = FakeAsana::start().await;
    let cfg = config(
        Provider::Asana,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    let tokens = connect(&cfg).await;
    seed(&fake);
    let mapping = ProjectMapping::Project;
    let utc: Tz = "UTC".parse().unwrap();
    let client = AsanaClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());

    // Expiry after two answers, in the middle of p1's pages.
    fake.expire_tokens_after(2);
    let err = client
        .read("ws-1", &mapping, None, utc, fake.now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Unauthorized(ref m) if m.contains("Not Authorized")),
        "{err:?}"
    );
    assert!(!format!("{err}").contains(tokens.access_token.expose()));

    // Asana's refresh answer has no refresh token: the old one stays valid.
    let rt = tokens.refresh_token.clone().unwrap();
    let fresh = cfg.refresh(&http_client(), &rt).await.unwrap();
    assert!(fresh.refresh_token.is_none());
    let again = cfg.refresh(&http_client(), &rt).await.unwrap();
    let client = AsanaClient::new(http_client(), &cfg.api_url, again.access_token);
    assert_eq!(client.project_tasks("p1", None).await.unwrap().len(), 230);

    fake.oauth.inject(Fault::RateLimited { retry_after: 7 });
    assert_eq!(
        client.projects("ws-1").await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );
    fake.oauth.inject(Fault::Status(503));
    assert!(matches!(
        client.project_tasks("p2", None).await.unwrap_err(),
        ConnectorError::Transient(_)
    ));
    // Several workspaces need a choice in the settings.
    fake.data.lock().unwrap().workspaces.push(
        serde_json::json!({"gid": "ws-other", "resource_type": "workspace", "name": "Other"}),
    );
    let all = client.workspaces().await.unwrap();
    assert!(matches!(
        asana::choose_workspace(&all, None),
        Err(ConnectorError::Permanent(_))
    ));
    assert_eq!(
        asana::choose_workspace(&all, Some("ws-other")).unwrap().gid,
        "ws-other"
    );
}
