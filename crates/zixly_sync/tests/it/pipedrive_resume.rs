//! Resumable Pipedrive runs (issue 10): every deal page (deleted, archived, live) commits with the
//! run's checkpoint, so a 429 or a failure on page N resumes at page N, a run killed mid-read
//! resumes at its checkpoint, an interrupted complete read stays complete, and a spent daily
//! budget pauses the integration with a readable resume time, then continues — each checked
//! against what the fake was asked (its request recording) and what the database holds, and
//! against an uninterrupted run of the same data.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use zixly_queue::JobState;
use zixly_sync::engine::SyncConfig;
use zixly_testkit::fakes::pipedrive::FakePipedrive;
use zixly_testkit::fakes::record::clear_recorded;

use crate::pipedrive::{events, pipedrive_with};
use crate::resume_kit::{
    answered, assert_one_settled_run, assert_open_run_survives_the_sweep, checkpoint, served_twice,
};
use crate::sync::Env;

/// Items the fake serves a page in these tests (the connector asks for 500).
const PAGE: usize = 50;
/// Deals beyond the four of [`pipedrive_with`]: 234 live deals, five live pages.
const EXTRA_DEALS: i64 = 230;
const LIVE_PAGES: usize = 5;
/// The log entry of both `/deals` listings (live and `status=deleted`).
pub(crate) const DEALS: &str = "GET /api/v2/deals";

/// [`pipedrive_with`] plus [`EXTRA_DEALS`] deals (value = id), two of them archived and two
/// deleted, pages of [`PAGE`]; nothing synced yet.
async fn seeded_with(sync_config: SyncConfig) -> (FakePipedrive, Env) {
    let (fake, env) = pipedrive_with(sync_config).await;
    for id in 100..100 + EXTRA_DEALS {
        // A few deals a second, so that sorting by update_time interleaves with ids.
        if id % 7 == 0 {
            fake.tick(chrono::Duration::seconds(1));
        }
        fake.upsert_deal(json!({"id": id, "org_id": 1 + id % 2, "pipeline_id": 1,
            "stage_id": 1 + id % 2, "status": "open", "value": id}));
    }
    // Archived and deleted beyond these four: 230 + 4 - 4 = 230 live deals, 5 pages.
    fake.archive_deal(150);
    fake.archive_deal(151);
    fake.delete_deal(160);
    fake.delete_deal(161);
    fake.data.lock().unwrap().page_size_cap = Some(PAGE);
    (fake, env)
}

fn no_jitter() -> SyncConfig {
    SyncConfig {
        max_jitter: Duration::ZERO,
        ..SyncConfig::default()
    }
}

pub(crate) async fn seeded() -> (FakePipedrive, Env) {
    seeded_with(no_jitter()).await
}

/// The lead events an uninterrupted first run of [`seeded`] data leaves.
pub(crate) async fn uninterrupted() -> Vec<(String, String, String, String, String, String)> {
    let (_fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let ev = events(&env).await;
    // 230 live deals less deal 3 (no organization), plus the 2 archived ones.
    assert_eq!(ev.len(), 231);
    ev
}

/// The deal-listing requests the fake answered, in order, as (what was asked, status);
/// reference data (stages, organizations), which every attempt re-reads, left out.
pub(crate) fn deal_requests(fake: &FakePipedrive) -> Vec<(String, u16)> {
    answered(&fake.url, |r| r.path.starts_with("/api/v2/deals"))
}

/// Live-listing pages answered 200.
pub(crate) fn live_pages(requests: &[(String, u16)]) -> usize {
    requests
        .iter()
        .filter(|r| r.1 == 200 && r.0.starts_with(&format!("{DEALS} ")))
        .filter(|r| r.0.contains(r#"("status", "open,won,lost")"#))
        .count()
}

/// Lead events of the tenant's Pipedrive rows.
async fn event_count(env: &Env) -> i64 {
    env.db
        .superuser()
        .await
        .query_one(
            "select count(*) from lead_events where tenant_id = $1 and source_system = 'pipedrive'",
            &[&env.tenant],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn pipedrive_uninterrupted_first_run_reads_every_page_once() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let requests = deal_requests(&fake);
    assert_eq!(served_twice(&requests), Vec::<String>::new());
    // 1 deleted page, 1 archived page, the live listing.
    assert_eq!(requests.len(), 2 + LIVE_PAGES, "{requests:#?}");
    assert_eq!(live_pages(&requests), LIVE_PAGES);
    assert_eq!(checkpoint(&env).await, None, "a settled run leaves none");
    assert_eq!(env.last_run().await.0, "succeeded");
    assert_eq!(event_count(&env).await, 231);
}

/// The third live page is refused (`status`: 429 = a spent burst window, 503 = the provider
/// failing); the next attempt starts with that page, asks for no committed page again, and ends
/// with the data of an uninterrupted run.
async fn failure_on_page_n_resumes_at_page_n(status: u16) {
    let expected = uninterrupted().await;
    let (fake, env) = seeded().await;
    // Request 1 of the entry is the deleted listing; 2 and 3 the first two live pages.
    fake.data
        .lock()
        .unwrap()
        .fail_requests
        .push((DEALS.into(), 4, status));
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable, "{status}");
    let (stream, pages_read, items_read, items_total, state) =
        checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(stream.as_deref(), Some("deals"));
    // The deleted page, the archived page, two live pages.
    assert_eq!(pages_read, 4);
    assert_eq!(items_read, 2 + 2 + 2 * PAGE as i64);
    assert_eq!(items_total, None, "Pipedrive's lists give no total");
    assert_eq!(state["step"]["step"], "live", "{state}");
    assert!(state["step"]["cursor"].is_string(), "{state}");
    // Committed events = the two live pages' (deal 3, without an organization, is among them)
    // and the archived ones.
    assert_eq!(event_count(&env).await, 2 * PAGE as i64 - 1 + 2);
    assert_open_run_survives_the_sweep(&env, 2 * PAGE as i64 - 1 + 2).await;
    let before = deal_requests(&fake);
    let refused: Vec<_> = before.iter().filter(|r| r.1 == status).cloned().collect();
    assert_eq!(refused.len(), 1, "{before:#?}");

    env.run_due_jobs().await;
    let all = deal_requests(&fake);
    let resumed = &all[before.len()..];
    assert_eq!(
        resumed[0],
        (refused[0].0.clone(), 200),
        "the resumed attempt starts with the page that was refused: {all:#?}"
    );
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(live_pages(&all), LIVE_PAGES, "{all:#?}");
    assert_eq!(resumed.len(), LIVE_PAGES - 2, "{all:#?}");
    assert_eq!(events(&env).await, expected);
    assert_eq!(checkpoint(&env).await, None);
    // One run row across both attempts, with every page's events (not the last page's).
    assert_one_settled_run(&env, expected.len() as i64).await;
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    // The resumed request (a stored cursor) is as documented as any.
    crate::contracts::assert_conforms("pipedrive", &fake.url);
}

#[tokio::test]
async fn pipedrive_429_on_page_n_resumes_at_page_n() {
    failure_on_page_n_resumes_at_page_n(429).await;
}

#[tokio::test]
async fn pipedrive_failure_on_page_n_resumes_at_page_n() {
    failure_on_page_n_resumes_at_page_n(503).await;
}

/// A worker killed while it reads (the run's future dropped once the fake has served the third
/// live page, wherever the run was: receiving it, committing it, asking for the next): the next
/// run resumes at the stored checkpoint. Only a page the kill left uncommitted is read again.
#[tokio::test]
async fn pipedrive_run_killed_mid_read_resumes_at_the_checkpoint() {
    let expected = uninterrupted().await;
    let (fake, env) = seeded().await;
    let engine = env.engine.clone();
    let (tenant, id) = (env.tenant, env.integration);
    let run = engine.run(tenant, id, true);
    let watched = fake.clone();
    let served_three = async move {
        // The deleted listing and three live pages.
        while watched.requests(DEALS) < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the run finished before the kill: {r:?}"),
        _ = served_three => {}
    }
    // Killed: the dropped run's connections are closed, an open transaction rolls back.
    let (_, pages_read, _, _, state) = checkpoint(&env).await.expect("a checkpoint");
    assert!(
        (4..=5).contains(&pages_read),
        "deleted + archived + 2 live pages committed, maybe the third: {pages_read}"
    );
    assert_eq!(state["step"]["step"], "live", "{state}");
    let resume_at = state["step"]["cursor"].as_str().map(String::from);
    let before = deal_requests(&fake);

    let summary = env.engine.run(tenant, id, true).await.unwrap();
    let all = deal_requests(&fake);
    let first = &all[before.len()].0;
    let at = resume_at.expect("past the first live page");
    assert!(
        first.contains(r#"("status", "open,won,lost")"#) && first.contains(&format!("\"{at}\"")),
        "resumes at the checkpoint's page ({at}): {first}"
    );
    // The committed pages were not asked again; at most the page the kill interrupted was.
    let twice = served_twice(&all);
    assert!(twice.len() <= 1, "{twice:#?}");
    assert_eq!(
        summary.rows_read,
        2 + 2 + 230,
        "deals read by the run, over both attempts: {summary:?}"
    );
    assert_eq!(events(&env).await, expected);
    assert_eq!(checkpoint(&env).await, None);
}

/// The periodic complete read is interrupted; by the next attempt the complete read is no longer
/// due by the settings, yet the run resumes as the complete read it started as (its plan is in
/// the checkpoint) and repairs a change no increment can see.
#[tokio::test]
async fn pipedrive_interrupted_complete_read_resumes_as_a_complete_read() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    fake.tick(chrono::Duration::hours(1));
    // A change that does not bump update_time (the kind only a complete read sees), on a deal of
    // the last live page.
    {
        let mut d = fake.data.lock().unwrap();
        let deal = d.deals.iter_mut().find(|x| x["id"] == json!(329)).unwrap();
        deal["value"] = json!(9999);
    }
    let settings = |hours: i64| {
        let domain = fake.data.lock().unwrap().api_domain.clone();
        json!({"pipedrive_api_domain": domain, "full_sync_hours": hours})
    };
    let (db, integration) = (&env.db, env.integration);
    let set = |s: Value| async move {
        db.superuser()
            .await
            .execute(
                "update integrations set settings = $2 where id = $1",
                &[&integration, &s],
            )
            .await
            .unwrap();
    };
    // Every run is a complete read; the second live page of this one is refused.
    set(settings(0)).await;
    let n = fake.requests(DEALS) + 3;
    fake.data
        .lock()
        .unwrap()
        .fail_requests
        .push((DEALS.into(), n, 429));
    clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (_, _, _, _, state) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(state["since"], Value::Null, "a complete read: {state}");
    // Now an increment would be due: the resumed run must not become one.
    set(settings(24)).await;
    env.run_due_jobs().await;
    let all = deal_requests(&fake);
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert!(
        all.iter().all(|r| !r.0.contains("updated_since")),
        "every page of the complete read: {all:#?}"
    );
    assert_eq!(live_pages(&all), LIVE_PAGES, "{all:#?}");
    let repaired = events(&env).await;
    assert!(
        repaired.iter().any(|e| e.0 == "329" && e.5 == "9999.00"),
        "repaired by the complete read"
    );
    assert_eq!(checkpoint(&env).await, None);
    // And the next run is an increment again (the complete read's cursor committed).
    clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let next = deal_requests(&fake);
    assert!(
        next.iter()
            .filter(|r| !r.0.contains(r#"("status", "deleted")"#))
            .all(|r| r.0.contains("updated_since")),
        "{next:#?}"
    );
}

/// The daily token budget runs out mid-read (the fake answers 429 while the 2-second window still
/// has room): the run stops, the integration shows when it resumes and why — not an error, not
/// a retry every few seconds — and once the budget is back the run continues from its
/// checkpoint to the data of an uninterrupted run.
#[tokio::test]
async fn pipedrive_spent_daily_budget_pauses_until_utc_midnight_then_resumes() {
    let expected = uninterrupted().await;
    // The wait until UTC midnight is shorter than the default `pause_above` (15 min) near
    // midnight; any wait is a pause here so that the test holds at any time of day.
    let (fake, env) = seeded_with(SyncConfig {
        pause_above: Duration::ZERO,
        ..no_jitter()
    })
    .await;
    // Stages, organizations, the deleted page, the archived page, two live pages.
    fake.data.lock().unwrap().daily_requests_left = Some(6);
    let before_run = Utc::now();
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable);
    let (paused_until, reason): (Option<chrono::DateTime<Utc>>, Option<String>) = env
        .db
        .superuser()
        .await
        .query_one(
            "select paused_until, pause_reason from integrations where id = $1",
            &[&env.integration],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    let until = paused_until.expect("paused");
    let midnight = |t: chrono::DateTime<Utc>| {
        (t.date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    };
    let off = |m: chrono::DateTime<Utc>| (until - m).num_seconds().abs();
    assert!(
        off(midnight(before_run)) <= 5 || off(midnight(Utc::now())) <= 5,
        "paused until the next UTC midnight, not {until}"
    );
    let reason = reason.unwrap();
    assert!(
        reason.contains("request budget is used up")
            && reason.contains(&until.format("%Y-%m-%d %H:%M UTC").to_string())
            && reason.contains("from where it stopped"),
        "{reason}"
    );
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    let (stream, pages_read, _, _, _) = checkpoint(&env).await.expect("kept for the resume");
    assert_eq!((stream.as_deref(), pages_read), (Some("deals"), 4));
    let due_in: f64 = env
        .db
        .superuser()
        .await
        .query_one(
            "select extract(epoch from scheduled_at - now())::float8 from jobs where kind = 'sync'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let to_midnight = (until - Utc::now()).num_seconds() as f64;
    assert!(
        (due_in - to_midnight).abs() <= 5.0,
        "the job waits for the budget: due in {due_in} s, midnight in {to_midnight} s"
    );
    // One refused request: the run did not keep asking.
    let before = deal_requests(&fake);
    assert_eq!(
        before.iter().filter(|r| r.1 == 429).count(),
        1,
        "{before:#?}"
    );

    // After midnight: the budget is back; the run continues from the third live page.
    fake.data.lock().unwrap().daily_requests_left = None;
    env.run_due_jobs().await;
    let all = deal_requests(&fake);
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(all.len() - before.len(), LIVE_PAGES - 2, "{all:#?}");
    assert_eq!(events(&env).await, expected);
    let paused: Option<chrono::DateTime<Utc>> = env
        .db
        .superuser()
        .await
        .query_one(
            "select paused_until from integrations where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(paused, None, "the pause is cleared when the run resumes");
    assert_eq!(checkpoint(&env).await, None);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

/// The access token expires in the middle of the read (Pipedrive's last an hour; a long first
/// sync outlives one): the 401 refreshes it and the runner starts again — from the checkpoint
/// stored by the pages this attempt already committed, not from the one the attempt began with.
#[tokio::test]
async fn pipedrive_token_expiring_mid_read_continues_from_the_pages_just_committed() {
    let expected = uninterrupted().await;
    let (fake, env) = seeded().await;
    // Stages, organizations, the deleted page, the archived page, two live pages; the third
    // live page is answered 401.
    fake.expire_tokens_after(6);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1);
    let all = deal_requests(&fake);
    assert_eq!(all.iter().filter(|r| r.1 == 401).count(), 1, "{all:#?}");
    assert_eq!(served_twice(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(live_pages(&all), LIVE_PAGES);
    assert_eq!(events(&env).await, expected);
    assert_eq!(checkpoint(&env).await, None);
    assert_one_settled_run(&env, expected.len() as i64).await;
}

/// The high-water mark is the provider's clock at the first answer of the run's *first* attempt:
/// a deal archived and changed while an interrupted increment waits — after the run has passed
/// the archived listing, so the resumed attempt cannot see it — is read by the next increment.
/// (Were the mark taken from the resumed attempt, an hour later, the next `updated_since` would
/// be past the change.)
#[tokio::test]
async fn pipedrive_change_during_an_interrupted_increment_is_read_by_the_next_one() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // An increment of three live pages; its second is refused.
    fake.tick(chrono::Duration::hours(1));
    for id in 200..300 {
        fake.upsert_deal(json!({"id": id, "org_id": 1 + id % 2, "pipeline_id": 1,
            "stage_id": 1 + id % 2, "status": "open", "value": id + 1}));
    }
    let n = fake.requests(DEALS) + 3;
    fake.data
        .lock()
        .unwrap()
        .fail_requests
        .push((DEALS.into(), n, 429));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (_, _, _, _, state) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(
        state["step"]["step"], "live",
        "past the archived listing: {state}"
    );

    // Half an hour later, deal 120 (read by the first run) is archived with a new value; half an
    // hour after that the run resumes and finishes.
    fake.tick(chrono::Duration::minutes(30));
    fake.archive_deal(120);
    {
        let mut d = fake.data.lock().unwrap();
        let deal = d.deals.iter_mut().find(|x| x["id"] == json!(120)).unwrap();
        deal["value"] = json!(4242);
    }
    fake.tick(chrono::Duration::minutes(30));
    env.run_due_jobs().await;
    assert_eq!(checkpoint(&env).await, None);
    // The latest event's value (an upsert without a stage change time moves the deal to a new
    // event at the fake's clock).
    let value = |ev: &[(String, String, String, String, String, String)], id: &str| {
        ev.iter().rev().find(|e| e.0 == id).map(|e| e.5.clone())
    };
    let ev = events(&env).await;
    assert_eq!(value(&ev, "120").as_deref(), Some("120.00"), "not seen yet");
    assert_eq!(
        value(&ev, "299").as_deref(),
        Some("300.00"),
        "the increment"
    );

    // The next increment reads from the first attempt's clock, less the margin.
    fake.tick(chrono::Duration::minutes(5));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let ev = events(&env).await;
    assert_eq!(value(&ev, "120").as_deref(), Some("4242.00"));
}
