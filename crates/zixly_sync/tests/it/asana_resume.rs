//! Resumable Asana runs (issue 10) and what moves and deletions do to the metrics: every page of a
//! project's tasks commits its per-task contributions with the run's checkpoint, so a 429 in the
//! middle of page N resumes at page N and a run killed mid-read resumes at its checkpoint; a task
//! moved to another client's project counts for that client only, and a deleted task stops
//! counting, both at the next increment through the projects' events feeds (an expired sync token
//! turns it into a complete read) — checked against what the fake was asked (its request
//! recording) and what the database holds. Tenant zone Australia/Sydney (UTC+11 in January).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_sync::engine::SyncConfig;
use zixly_testkit::fakes::asana::{FakeAsana, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::recorded;

use crate::resume_kit::{
    answered, assert_one_settled_run, assert_open_run_survives_the_sweep, checkpoint, served_twice,
};
use crate::sync::{config, connect_with, Env};

/// Acme's tasks: three pages of 100 (100, 100, 50).
const ACME_TASKS: usize = 250;
/// The path of Acme's task pages on a complete read.
pub(crate) const ACME_PAGES: &str = "/api/1.0/projects/p1/tasks";

fn at(s: &str) -> Option<DateTime<Utc>> {
    Some(s.parse().unwrap())
}

/// Acme (p1: [`ACME_TASKS`] tasks done 2024-01-10 Sydney, even ones on time, odd ones late) and
/// Beta (p2: "b1" done 01-12 on time, "b2" done 01-15 without a due date, "b3" open), mapped by
/// name prefix; connected, nothing synced yet. Unpaced (pacing has its own tests).
pub(crate) async fn seeded() -> (FakeAsana, Env) {
    let fake = FakeAsana::start().await;
    let cfg = config(
        Provider::Asana,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.api_url(),
    );
    fake.tick(chrono::Duration::days(19)); // 2024-01-20
    fake.add_project("ws-1", "p1", "Acme - Website", false);
    fake.add_project("ws-1", "p2", "Beta - App", false);
    for i in 0..ACME_TASKS {
        let due = if i % 2 == 0 {
            "2024-01-10"
        } else {
            "2024-01-09"
        };
        fake.upsert_task(
            &format!("a{i}"),
            &["p1"],
            at("2024-01-10T02:00:00Z"),
            Some(due),
        );
    }
    fake.upsert_task(
        "b1",
        &["p2"],
        at("2024-01-12T02:00:00Z"),
        Some("2024-01-12"),
    );
    fake.upsert_task("b2", &["p2"], at("2024-01-15T02:00:00Z"), None);
    fake.upsert_task("b3", &["p2"], None, Some("2024-01-30"));
    // The first run starts after the cursor's safety margin: its increments do not re-read
    // every seeded task.
    fake.tick(chrono::Duration::minutes(5));
    let env = connect_with(
        cfg,
        json!({"asana_client_mapping": "name_prefix"}),
        SyncConfig {
            max_jitter: Duration::ZERO,
            rate_limits: [(Provider::Asana, vec![])].into(),
            ..SyncConfig::default()
        },
    )
    .await;
    (fake, env)
}

/// The tenant's Asana metrics as (client, metric, Sydney day, value).
pub(crate) async fn metrics(env: &Env) -> Vec<(String, String, String, String)> {
    env.db
        .superuser()
        .await
        .query(
            "select k.client_id, m.metric_name, (m.record_date at time zone 'Australia/Sydney')::date::text,
                    trim_scale(m.metric_value)::text
               from custom_metrics m join client_kpis k on k.tenant_id = m.tenant_id and k.id = m.client_kpi_id
              where m.tenant_id = $1 and m.source_system = 'asana' order by 1, 3, 2",
            &[&env.tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// One client-day's metrics in [`metrics`] order (the rate when given).
fn day(
    client: &str,
    date: &str,
    completed: &str,
    on_time: &str,
    rate: Option<&str>,
) -> Vec<(String, String, String, String)> {
    let m = |name: &str, v: &str| (client.into(), name.into(), date.into(), v.into());
    let mut v = vec![];
    if let Some(r) = rate {
        v.push(m("on_time_rate", r));
    }
    v.push(m("tasks_completed", completed));
    v.push(m("tasks_completed_on_time", on_time));
    v
}

/// What the seed gives, read once in full.
pub(crate) fn expected() -> Vec<(String, String, String, String)> {
    [
        day("Acme", "2024-01-10", "250", "125", Some("0.5")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-15", "1", "0", None),
    ]
    .concat()
}

/// The task requests the fake answered, in order, as (what was asked, status).
pub(crate) fn task_requests(fake: &FakeAsana) -> Vec<(String, u16)> {
    answered(&fake.url, |r| r.path.ends_with("/tasks"))
}

async fn complete_reads_every_run(env: &Env) {
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}' where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_uninterrupted_asana_run_reads_every_page_once() {
    let (fake, env) = seeded().await;
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(metrics(&env).await, expected());
    let requests = task_requests(&fake);
    assert_eq!(served_twice(&requests), Vec::<String>::new());
    let acme = requests
        .iter()
        .filter(|r| r.0.starts_with(&format!("GET {ACME_PAGES} ")))
        .count();
    assert_eq!((acme, requests.len()), (3, 4), "{requests:#?}");
    assert_eq!(checkpoint(&env).await, None, "a settled run leaves none");
    assert_one_settled_run(&env, expected().len() as i64).await;
}

#[tokio::test]
async fn an_asana_429_in_the_middle_of_page_n_resumes_at_page_n() {
    let (fake, env) = seeded().await;
    // Acme's second page is refused.
    fake.data
        .lock()
        .unwrap()
        .rate_limit_requests
        .push((ACME_PAGES.into(), 2, 30));
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable, "snoozed for Retry-After");
    let (stream, pages_read, items_read, _, saved) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(stream.as_deref(), Some("tasks of project 1 of 2"));
    assert_eq!(
        (pages_read, items_read),
        (1, 100),
        "the page before the 429 is committed"
    );
    assert!(saved["offset"].is_string(), "{saved}");
    assert_eq!(
        metrics(&env).await,
        vec![],
        "nothing loaded before the settle"
    );
    assert_open_run_survives_the_sweep(&env, 0).await;
    let before = task_requests(&fake);
    let refused: Vec<_> = before.iter().filter(|r| r.1 == 429).cloned().collect();
    assert_eq!(refused.len(), 1, "{before:#?}");

    env.run_due_jobs().await;
    let all = task_requests(&fake);
    let resumed = &all[before.len()..];
    assert_eq!(
        resumed[0],
        (refused[0].0.clone(), 200),
        "the resumed attempt starts with the page that was refused: {all:#?}"
    );
    assert_eq!(
        served_twice(&all),
        Vec::<String>::new(),
        "no page read twice"
    );
    assert_eq!(all.iter().filter(|r| r.1 == 200).count(), 4);
    assert_eq!(metrics(&env).await, expected(), "as an uninterrupted run");
    assert_eq!(checkpoint(&env).await, None);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    // One run row across both attempts (Asana loads the metrics when the run settles).
    assert_one_settled_run(&env, expected().len() as i64).await;
}

/// Sync runs that loaded (the settle's load commits one).
async fn settled_runs(env: &Env) -> i64 {
    env.db
        .superuser()
        .await
        .query_one(
            "select count(*) from sync_runs where integration_id = $1 and status = 'succeeded'",
            &[&env.integration],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls a run `polls` times, then drops it (a kill); true when it finished first.
async fn run_for(env: &Env, polls: usize) -> bool {
    let engine = env.engine.clone();
    let (tenant, id) = (env.tenant, env.integration);
    let mut run = Box::pin(async move { engine.run(tenant, id, true).await });
    let mut n = 0;
    std::future::poll_fn(|cx| {
        n += 1;
        if n > polls {
            return std::task::Poll::Ready(false);
        }
        run.as_mut().poll(cx).map(|r| {
            r.unwrap();
            true
        })
    })
    .await
}

#[tokio::test]
async fn an_asana_run_killed_mid_read_resumes_at_its_checkpoint() {
    let (fake, env) = seeded().await;
    let mut kills = 0;
    let mut progress = vec![];
    // Short attempts, each killed, each resuming where the one before committed; longer each
    // time, so the settle at the end also gets through.
    for attempt in 0..200 {
        if run_for(&env, 20 + 5 * attempt).await {
            break;
        }
        kills += 1;
        match checkpoint(&env).await {
            Some((_, pages, _, _, _)) => progress.push(pages),
            // Killed after the settle committed: the run is done.
            None if settled_runs(&env).await > 0 => break,
            None => {}
        }
    }
    assert!(kills >= 2, "the run was killed mid-read ({kills} kills)");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "committed pages never go back: {progress:?}"
    );
    assert_eq!(metrics(&env).await, expected());
    assert_eq!(checkpoint(&env).await, None);
    // Only a page in flight at a kill (not committed) can be read again.
    let all = task_requests(&fake);
    let twice = served_twice(&all);
    assert!(twice.len() <= kills, "{twice:#?} after {kills} kills");
    let pages = all.iter().filter(|r| r.1 == 200).count();
    assert!(pages <= 4 + kills, "{pages} pages answered, {kills} kills");
}

/// The requests of the latest run (since `from` recorded requests) as (what was asked, status).
fn asked_since(fake: &FakeAsana, from: usize) -> Vec<(String, u16)> {
    answered(&fake.url, |r| r.path.starts_with("/api/1.0/"))[from..].to_vec()
}

fn recorded_api(fake: &FakeAsana) -> usize {
    answered(&fake.url, |r| r.path.starts_with("/api/1.0/")).len()
}

/// The events sync tokens the latest settled run stored in its cursor.
pub(crate) async fn sync_tokens(env: &Env) -> serde_json::Value {
    env.db
        .superuser()
        .await
        .query_one(
            "select cursor from sync_runs where integration_id = $1 and status = 'succeeded'
              order by started_at desc, id desc limit 1",
            &[&env.integration],
        )
        .await
        .unwrap()
        .get::<_, serde_json::Value>(0)["asana_sync"]
        .clone()
}

#[tokio::test]
async fn a_moved_asana_task_counts_for_its_new_client_only() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);

    // a0 (on time) moves to Beta without another edit: Asana's modified_at does not change, so
    // no list shows it; the feeds do (removed from p1, added to p2), and the next increment moves
    // its count at once, reading Beta's project in full to find it.
    fake.tick(chrono::Duration::hours(1));
    fake.move_task("a0", &["p2"]);
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let moved = [
        day("Acme", "2024-01-10", "249", "124", Some("0.498")),
        day("Beta", "2024-01-10", "1", "1", Some("1")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-15", "1", "0", None),
    ]
    .concat();
    assert_eq!(metrics(&env).await, moved, "moved by the increment");
    let asked = asked_since(&fake, from);
    let full = |project: &str| {
        asked
            .iter()
            .filter(|r| {
                r.0.starts_with(&format!("GET /api/1.0/projects/{project}/tasks "))
            })
            .count()
    };
    assert_eq!((full("p1"), full("p2")), (0, 1), "{asked:#?}");
    let feeds = asked
        .iter()
        .filter(|r| r.0.starts_with("GET /api/1.0/events ") && r.1 == 200)
        .count();
    assert_eq!(feeds, 2, "one call of each project's feed: {asked:#?}");

    // The complete read agrees.
    complete_reads_every_run(&env).await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(metrics(&env).await, moved);

    // a1 (late) moves to Beta and is edited: the increment reads it from Beta's project (its
    // `projects` say Beta only) and moves it at once.
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings - 'full_sync_hours' where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap();
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task(
        "a1",
        &["p2"],
        at("2024-01-10T02:00:00Z"),
        Some("2024-01-09"),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let increment = [
        day("Acme", "2024-01-10", "248", "124", Some("0.5")),
        day("Beta", "2024-01-10", "2", "1", Some("0.5")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-15", "1", "0", None),
    ]
    .concat();
    assert_eq!(metrics(&env).await, increment);
    // In both clients' projects, a task counts for each (once per client).
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task(
        "a2",
        &["p1", "p2"],
        at("2024-01-10T02:00:00Z"),
        Some("2024-01-10"),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let both = [
        day("Acme", "2024-01-10", "248", "124", Some("0.5")),
        day("Beta", "2024-01-10", "3", "2", Some("0.6667")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-15", "1", "0", None),
    ]
    .concat();
    assert_eq!(metrics(&env).await, both);
    // a3 (late, untouched since the seed, so no modified_since list shows it) is added to Beta's
    // project without an edit: Beta's feed says `added`, and Beta's project is read in full.
    fake.tick(chrono::Duration::hours(1));
    fake.move_task("a3", &["p1", "p2"]);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let shared = [
        day("Acme", "2024-01-10", "248", "124", Some("0.5")),
        day("Beta", "2024-01-10", "4", "2", Some("0.5")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-15", "1", "0", None),
    ]
    .concat();
    assert_eq!(metrics(&env).await, shared);
    // ... and removed from it again: Beta loses its share, Acme keeps its own.
    fake.tick(chrono::Duration::hours(1));
    fake.move_task("a3", &["p1"]);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(metrics(&env).await, both);
}

#[tokio::test]
async fn a_deleted_asana_task_disappears_with_its_emptied_day_at_the_next_increment() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // b2 was Beta's only task of 01-15, a3 one of Acme's late ones. The lists stop showing them;
    // the feeds say `deleted`, and the increment (no complete read) removes them.
    fake.tick(chrono::Duration::hours(1));
    fake.delete_task("b2");
    fake.delete_task("a3");
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let deleted = [
        day("Acme", "2024-01-10", "249", "125", Some("0.502")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
    ]
    .concat();
    assert_eq!(metrics(&env).await, deleted);
    let asked = asked_since(&fake, from);
    assert!(
        !asked
            .iter()
            .any(|r| r.0.contains("/projects/p1/tasks") || r.0.contains("/projects/p2/tasks")),
        "an increment, no complete read: {asked:#?}"
    );
    // Undeleted (its modified_at unchanged): back at the next increment.
    fake.tick(chrono::Duration::hours(1));
    fake.undelete_task("b2");
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "249", "125", Some("0.502")),
            day("Beta", "2024-01-12", "1", "1", Some("1")),
            day("Beta", "2024-01-15", "1", "0", None),
        ]
        .concat()
    );
    // Reopening is an edit: the increment sees it and the day goes.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task("b1", &["p2"], None, Some("2024-01-12"));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "249", "125", Some("0.502")),
            day("Beta", "2024-01-15", "1", "0", None),
        ]
        .concat()
    );
    // A complete read finds the same.
    complete_reads_every_run(&env).await;
    let before = metrics(&env).await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(metrics(&env).await, before);
}

/// An expired sync token (412 with a fresh one, contracts/asana.json `events_412`) turns the
/// increment into a complete read, which finds what the lost feed would have said; the new
/// token is stored and the next increment reads the feeds from it.
#[tokio::test]
async fn an_expired_asana_sync_token_triggers_a_complete_read_and_a_new_token() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let first = sync_tokens(&env).await;
    assert!(
        first["p1"].is_string() && first["p2"].is_string(),
        "{first}"
    );

    fake.tick(chrono::Duration::hours(1));
    fake.delete_task("b2");
    fake.move_task("a0", &["p2"]);
    fake.expire_sync_tokens();
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let asked = asked_since(&fake, from);
    let events: Vec<u16> = asked
        .iter()
        .filter(|r| r.0.starts_with("GET /api/1.0/events "))
        .map(|r| r.1)
        .collect();
    assert_eq!(
        events,
        vec![412, 412],
        "expired, then a fresh token for p2: {asked:#?}"
    );
    let acme = asked
        .iter()
        .filter(|r| r.0.starts_with(&format!("GET {ACME_PAGES} ")))
        .count();
    assert_eq!(acme, 3, "Acme read in full: {asked:#?}");
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "249", "124", Some("0.498")),
            day("Beta", "2024-01-10", "1", "1", Some("1")),
            day("Beta", "2024-01-12", "1", "1", Some("1")),
        ]
        .concat()
    );
    let second = sync_tokens(&env).await;
    assert!(
        second["p1"].is_string() && second["p2"].is_string(),
        "{second}"
    );
    assert_ne!(second["p1"], first["p1"]);
    assert_ne!(second["p2"], first["p2"]);

    // The next increment reads the feeds from the new tokens (200, no complete read).
    fake.tick(chrono::Duration::hours(1));
    fake.delete_task("b1");
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let asked = asked_since(&fake, from);
    let p1 = second["p1"].as_str().unwrap();
    assert!(
        asked
            .iter()
            .any(|r| r.0.contains("/api/1.0/events") && r.0.contains(p1) && r.1 == 200),
        "{asked:#?}"
    );
    assert!(!asked
        .iter()
        .any(|r| r.0.starts_with(&format!("GET {ACME_PAGES} "))));
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "249", "124", Some("0.498")),
            day("Beta", "2024-01-10", "1", "1", Some("1")),
        ]
        .concat()
    );
}

/// More than 100 events (contracts/asana.json `events_cap`): the feed is read while `has_more`,
/// every page's deletions applied.
#[tokio::test]
async fn more_than_100_asana_events_are_read_page_by_page() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    // 150 of Acme's tasks deleted (a0..a149: 75 on time, 75 late), then a change in Beta.
    for i in 0..150 {
        fake.delete_task(&format!("a{i}"));
    }
    fake.upsert_task(
        "b3",
        &["p2"],
        at("2024-01-20T02:00:00Z"),
        Some("2024-01-30"),
    );
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let feeds: Vec<(bool, usize)> = recorded(&fake.url)
        .iter()
        .filter(|r| r.path == "/api/1.0/events" && r.query_values("resource") == ["p1"])
        .skip_while(|r| r.status != 200)
        .filter_map(|r| r.response.as_ref())
        .map(|b| {
            (
                b["has_more"].as_bool().unwrap(),
                b["data"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(feeds, vec![(true, 100), (false, 50)]);
    let asked = asked_since(&fake, from);
    assert!(!asked
        .iter()
        .any(|r| r.0.starts_with(&format!("GET {ACME_PAGES} "))));
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "100", "50", Some("0.5")),
            day("Beta", "2024-01-12", "1", "1", Some("1")),
            day("Beta", "2024-01-15", "1", "0", None),
            day("Beta", "2024-01-20", "1", "1", Some("1")),
        ]
        .concat()
    );
}

#[tokio::test]
async fn an_expired_asana_offset_restarts_its_project_from_the_first_page() {
    let (fake, env) = seeded().await;
    // Acme's third page is refused; by the resume, the checkpointed offset has expired.
    fake.data
        .lock()
        .unwrap()
        .rate_limit_requests
        .push((ACME_PAGES.into(), 3, 30));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    assert_eq!(checkpoint(&env).await.map(|c| c.1), Some(2));
    fake.expire_offsets();
    env.run_due_jobs().await;
    let all = task_requests(&fake);
    let refused: Vec<u16> = all.iter().map(|r| r.1).filter(|s| *s != 200).collect();
    assert_eq!(refused, vec![429, 400], "{all:#?}");
    let acme = all
        .iter()
        .filter(|r| r.0.starts_with(&format!("GET {ACME_PAGES} ")) && r.1 == 200)
        .count();
    assert_eq!(acme, 2 + 3, "Acme read again from its first page: {all:#?}");
    assert_eq!(metrics(&env).await, expected());
    assert_eq!(checkpoint(&env).await, None);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

/// Increments whose feeds delete and move tasks, each killed at a different point (feed pages,
/// task pages, the second pass, the settle) and then run to the end, converge on what an
/// uninterrupted run gives: no removal applied twice or lost, no moved task counted twice.
#[tokio::test]
async fn asana_increments_with_deletions_and_moves_killed_anywhere_converge() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let mut stopped_at = vec![];
    for i in 0..40usize {
        fake.tick(chrono::Duration::hours(1));
        // a(2i) (on time) deleted; a(2i+1) (late) moved to Beta and the one moved before back
        // to Acme, both without an edit (each project then read in full by the second pass).
        fake.delete_task(&format!("a{}", 2 * i));
        fake.move_task(&format!("a{}", 2 * i + 1), &["p2"]);
        if i > 0 {
            fake.move_task(&format!("a{}", 2 * i - 1), &["p1"]);
        }
        let polls = 3 + 3 * i;
        if !run_for(&env, polls).await {
            stopped_at.push(checkpoint(&env).await.map(|c| c.0.unwrap_or_default()));
        }
        env.engine
            .run(env.tenant, env.integration, true)
            .await
            .unwrap();
        let n = i + 1;
        let (acme, on_time) = (249 - n, 125 - n);
        let rate = format!("{:.4}", on_time as f64 / acme as f64);
        let rate = rate.trim_end_matches('0').trim_end_matches('.');
        assert_eq!(
            metrics(&env).await,
            [
                day(
                    "Acme",
                    "2024-01-10",
                    &acme.to_string(),
                    &on_time.to_string(),
                    Some(rate)
                ),
                day("Beta", "2024-01-10", "1", "0", Some("0")),
                day("Beta", "2024-01-12", "1", "1", Some("1")),
                day("Beta", "2024-01-15", "1", "0", None),
            ]
            .concat(),
            "killed after {polls} polls"
        );
        assert_eq!(checkpoint(&env).await, None);
    }
    let phase = |p: &str| stopped_at.iter().flatten().any(|s| s.starts_with(p));
    assert!(
        phase("events of project ")
            && phase("tasks of project")
            && phase("tasks of project 1 of 2 (read in full)"),
        "killed in the feeds, the modified_since pass and the second pass: {stopped_at:?}"
    );
}

/// An app Asana refuses the events feed (403: the spec lists no granular scope for it, so an
/// app with granular scopes only may be refused, unverified) still syncs: the complete read
/// goes on without tokens, increments without feeds (a deletion waits for the next complete
/// read, as before the feeds were read), and a later complete read tries the feeds again.
#[tokio::test]
async fn an_asana_app_refused_the_events_feed_syncs_without_it() {
    let (fake, env) = seeded().await;
    fake.data.lock().unwrap().events_forbidden = true;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(metrics(&env).await, expected());
    assert_eq!(sync_tokens(&env).await, json!({}));

    fake.tick(chrono::Duration::hours(1));
    fake.delete_task("b2");
    let from = recorded_api(&fake);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let asked = asked_since(&fake, from);
    assert!(
        !asked
            .iter()
            .any(|r| r.0.contains("/events") || r.0.starts_with(&format!("GET {ACME_PAGES} "))),
        "an increment without feeds: {asked:#?}"
    );
    assert_eq!(metrics(&env).await, expected(), "the deletion waits");

    fake.data.lock().unwrap().events_forbidden = false;
    complete_reads_every_run(&env).await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let tokens = sync_tokens(&env).await;
    assert!(
        tokens["p1"].is_string() && tokens["p2"].is_string(),
        "{tokens}"
    );
    let without_b2 = [
        day("Acme", "2024-01-10", "250", "125", Some("0.5")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
    ]
    .concat();
    assert_eq!(metrics(&env).await, without_b2);
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings - 'full_sync_hours' where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap();
    fake.tick(chrono::Duration::hours(1));
    fake.delete_task("b1");
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        metrics(&env).await,
        day("Acme", "2024-01-10", "250", "125", Some("0.5")),
        "the feeds are read again"
    );
}

/// A 429 on the second page of a feed: the first page's deletions and its advanced token are
/// committed, and the resumed attempt goes on with the refused page's token (the first page is
/// not read again).
#[tokio::test]
async fn an_asana_429_in_a_feed_resumes_at_that_feed_page() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    for i in 0..150 {
        fake.delete_task(&format!("a{i}"));
    }
    // The first run asked each feed once (412s); the increment's second call is p1's page 2.
    fake.data
        .lock()
        .unwrap()
        .rate_limit_requests
        .push(("/api/1.0/events".into(), 4, 30));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (stream, pages_read, _, _, saved) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(stream.as_deref(), Some("events of project 1 of 2"));
    assert_eq!(pages_read, 1, "the feed page before the 429 is committed");
    let feed = |fake: &FakeAsana| answered(&fake.url, |r| r.path == "/api/1.0/events");
    let before = feed(&fake);
    assert_eq!(before.last().map(|r| r.1), Some(429), "{before:#?}");
    assert!(
        before
            .last()
            .unwrap()
            .0
            .contains(saved["tokens"]["p1"].as_str().unwrap()),
        "the checkpoint holds the refused page's token: {saved}"
    );

    env.run_due_jobs().await;
    let all = feed(&fake);
    assert_eq!(
        all[before.len()],
        (before.last().unwrap().0.clone(), 200),
        "resumed with the refused page: {all:#?}"
    );
    assert_eq!(served_twice(&all), Vec::<String>::new());
    assert_eq!(
        metrics(&env).await,
        [
            day("Acme", "2024-01-10", "100", "50", Some("0.5")),
            day("Beta", "2024-01-12", "1", "1", Some("1")),
            day("Beta", "2024-01-15", "1", "0", None),
        ]
        .concat()
    );
    assert_eq!(checkpoint(&env).await, None);
}
