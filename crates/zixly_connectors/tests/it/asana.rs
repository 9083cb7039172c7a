//! Asana connector against the fake Asana.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use zixly_connectors::asana::{self, AsanaClient, ProjectMapping, Task};
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

/// Every page of `project`'s tasks (complete, or modified since `since`), with the calls made.
async fn all_tasks(
    client: &AsanaClient,
    project: &str,
    since: Option<DateTime<Utc>>,
) -> Result<(Vec<Task>, u64), ConnectorError> {
    let before = client.calls.load(Ordering::Relaxed);
    let mut tasks = vec![];
    let mut offset: Option<String> = None;
    loop {
        let page = client.task_page(project, since, offset.as_deref()).await?;
        tasks.extend(page.tasks);
        match page.next {
            Some(n) => offset = Some(n),
            None => return Ok((tasks, client.calls.load(Ordering::Relaxed) - before)),
        }
    }
}

/// (client, day) -> (completed, with a due date, on time) over every mapped project's tasks,
/// deduplicated per (task, client) as the runner's per-task contributions are.
async fn counts(
    client: &AsanaClient,
    mapping: &ProjectMapping,
    since: Option<DateTime<Utc>>,
) -> std::collections::BTreeMap<(String, String), (Decimal, Decimal, Decimal)> {
    let projects = client.projects("ws-1").await.unwrap();
    let (_, of) = asana::project_clients(&projects, mapping);
    let clients: std::collections::HashMap<String, String> = of.iter().cloned().collect();
    let mut per_task = std::collections::BTreeMap::new();
    for (p, _) in &of {
        let (tasks, _) = all_tasks(client, p, since).await.unwrap();
        for d in asana::task_days(&tasks, p, &clients, "UTC".parse().unwrap()) {
            per_task.insert((d.task_gid.clone(), d.client_id.clone()), d);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for d in per_task.values() {
        let (c, dated, on) = d.counts();
        let e: &mut (Decimal, Decimal, Decimal) = out
            .entry((d.client_id.clone(), d.date.to_string()))
            .or_default();
        e.0 += c;
        e.1 += dated;
        e.2 += on;
    }
    out
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn asana_pages_contributions_increments_and_deleted_tasks() {
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
    fake.tick(chrono::Duration::minutes(5));
    let client = AsanaClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());
    let ws = asana::choose_workspace(&client.workspaces().await.unwrap(), None).unwrap();
    assert_eq!(ws.gid, "ws-1");
    assert!(client.first_answer().is_some(), "the provider's clock");
    let mapping =
        ProjectMapping::from_settings(&serde_json::json!({"asana_client_mapping": "name_prefix"}))
            .unwrap();
    let projects = client.projects(&ws.gid).await.unwrap();
    let (clients, of) = asana::project_clients(&projects, &mapping);
    let names: Vec<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(names, ["Acme", "Globex", "Internal"]);
    assert_eq!(of.len(), 4, "p9 is in another workspace");

    // 230 tasks in p1: pages of 100, 100, 30; each task lists its projects.
    let (p1, calls) = all_tasks(&client, "p1", None).await.unwrap();
    assert_eq!((p1.len(), calls), (230, 3));
    let a0 = p1.iter().find(|t| t.gid == "a0").unwrap();
    let a0_projects: Vec<&str> = a0.projects.iter().map(|p| p.gid.as_str()).collect();
    assert_eq!(a0_projects, ["p1", "p2"]);

    let full = counts(&client, &mapping, None).await;
    let key = |c: &str, d: &str| (c.to_string(), d.to_string());
    // a0..a4 are in both Acme projects: counted once. 115 on time of 173 with a due date.
    assert_eq!(
        full[&key("Acme", "2024-01-10")],
        (dec("230"), dec("173"), dec("115"))
    );
    let (c, dated, on) = full[&key("Acme", "2024-01-10")];
    assert_eq!(asana::day_metrics(c, dated, on)[2].1, dec("0.6647"));
    assert_eq!(
        full[&key("Acme", "2024-01-11")],
        (dec("10"), dec("10"), dec("10"))
    );
    assert_eq!(
        full[&key("Globex", "2024-01-11")],
        (dec("3"), dec("0"), dec("0")),
        "no due date: no rate"
    );
    assert_eq!(full.len(), 3, "{full:?}");

    // A day later: a task of Jan 10 is completed in p2, an open task of p4 is edited. The
    // increment reads only those (GET /tasks?project=&modified_since=).
    let since = fake.now();
    fake.tick(chrono::Duration::days(1));
    fake.upsert_task("b100", &["p2"], Some(at(10, 15)), None);
    fake.upsert_task("i0", &["p4"], None, Some("2024-02-01"));
    let (p2, calls) = all_tasks(&client, "p2", Some(since)).await.unwrap();
    let gids: Vec<&str> = p2.iter().map(|t| t.gid.as_str()).collect();
    assert_eq!((gids, calls), (vec!["b100"], 1));
    let (p4, _) = all_tasks(&client, "p4", Some(since)).await.unwrap();
    assert_eq!(p4.len(), 1);
    assert!(all_tasks(&client, "p1", Some(fake.now()))
        .await
        .unwrap()
        .0
        .is_empty());

    // A deleted task is gone from the next complete read.
    fake.delete_task("a0");
    let after = counts(&client, &mapping, None).await;
    assert_eq!(
        after[&key("Acme", "2024-01-10")],
        (dec("230"), dec("172"), dec("114")),
        "b100 (no due date) added, a0 (due, on time) gone"
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
    let client = AsanaClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());

    // Expiry after two answers, in the middle of p1's pages.
    fake.expire_tokens_after(2);
    let err = counts_err(&client, &mapping).await;
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
    assert_eq!(all_tasks(&client, "p1", None).await.unwrap().0.len(), 230);

    fake.oauth.inject(Fault::RateLimited { retry_after: 7 });
    assert_eq!(
        client.projects("ws-1").await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );
    fake.oauth.inject(Fault::Status(503));
    assert!(matches!(
        client.task_page("p2", None, None).await.unwrap_err(),
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

/// The first error of reading every mapped project's tasks.
async fn counts_err(client: &AsanaClient, mapping: &ProjectMapping) -> ConnectorError {
    let projects = client.projects("ws-1").await.unwrap();
    for (p, _) in asana::project_clients(&projects, mapping).1 {
        if let Err(e) = all_tasks(client, &p, None).await {
            return e;
        }
    }
    panic!("no error");
}

/// The events feed of a project (contracts/asana.json `events`): the first call, without a token,
/// answers 412 with one; then at most 100 events a call with `has_more`; an expired token answers
/// 412 with a fresh one. Deletions and moves, invisible to the lists, are in it.
#[tokio::test]
async fn asana_events_feed_tokens_paging_and_expiry() {
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
    let client = AsanaClient::new(http_client(), &cfg.api_url, tokens.access_token.clone());
    let asana::Events::Expired { sync: first } = client.events("p1", None).await.unwrap() else {
        panic!("the first call answers 412");
    };
    let asana::Events::Expired { sync: p4 } = client.events("p4", None).await.unwrap() else {
        panic!("412");
    };
    // 150 tasks of p1 deleted, one moved from p1 to p4: 151 events in p1's feed.
    for i in 10..160 {
        fake.delete_task(&format!("a{i}"));
    }
    fake.move_task("a5", &["p4"]);
    let calls = client.calls.load(Ordering::Relaxed);
    let asana::Events::Page(one) = client.events("p1", Some(&first)).await.unwrap() else {
        panic!("a valid token answers events");
    };
    assert_eq!((one.data.len(), one.has_more), (100, true));
    let asana::Events::Page(two) = client.events("p1", Some(&one.sync)).await.unwrap() else {
        panic!("the next page");
    };
    assert_eq!((two.data.len(), two.has_more), (51, false));
    assert_eq!(client.calls.load(Ordering::Relaxed) - calls, 2);
    let got: Vec<Option<asana::TaskEvent>> = one
        .data
        .iter()
        .chain(&two.data)
        .map(|e| e.task_event("p1"))
        .collect();
    assert_eq!(got[0], Some(asana::TaskEvent::Deleted("a10".into())));
    assert_eq!(got[149], Some(asana::TaskEvent::Deleted("a159".into())));
    assert_eq!(got[150], Some(asana::TaskEvent::Removed("a5".into())));
    // p4's feed shows the move as an addition.
    let asana::Events::Page(p4) = client.events("p4", Some(&p4)).await.unwrap() else {
        panic!("events");
    };
    let got: Vec<_> = p4.data.iter().map(|e| e.task_event("p4")).collect();
    assert_eq!(got, vec![Some(asana::TaskEvent::Read("a5".into()))]);
    assert!(!p4.has_more);
    // Nothing new: an empty page, and the token still works.
    let asana::Events::Page(empty) = client.events("p1", Some(&two.sync)).await.unwrap() else {
        panic!("events");
    };
    assert!(empty.data.is_empty());
    fake.expire_sync_tokens();
    let asana::Events::Expired { sync: fresh } =
        client.events("p1", Some(&empty.sync)).await.unwrap()
    else {
        panic!("an expired token answers 412");
    };
    assert_ne!(fresh, empty.sync);
    assert!(matches!(
        client.events("p1", Some(&fresh)).await.unwrap(),
        asana::Events::Page(_)
    ));
}
