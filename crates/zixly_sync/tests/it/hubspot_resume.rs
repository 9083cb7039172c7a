//! Resumable HubSpot runs (issue 10): every step (archived page, search, count, live page, chunk
//! of modified deals read by id) commits with the run's checkpoint, so a 429 in the middle of
//! page N resumes at page N and a run killed mid-read resumes at its checkpoint — checked against
//! what the fake was asked (its request recording) and what the database holds.

use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::hubspot::{FakeHubspot, CLIENT_ID, CLIENT_SECRET};

use crate::hubspot::deal;
use crate::resume_kit::{
    answered, assert_one_settled_run, assert_open_run_survives_the_sweep, checkpoint, served_twice,
};
use crate::sync::{config, connect, Env};

/// 230 live deals: pages of 50 (the runner's page with history), so 5 listing pages.
pub(crate) const DEALS: usize = 230;
const LISTING_PAGES: usize = 5;
const STAGE_AT: &str = "2024-01-01T09:00:00.000Z";
const LIVE: &str = "GET /crm/v3/objects/deals";
const SEARCH: &str = "POST /crm/v3/objects/deals/search";

/// A connected HubSpot with one pipeline, one company and [`DEALS`] deals (amount = id); nothing
/// synced yet.
pub(crate) async fn seeded() -> (FakeHubspot, Env) {
    let fake = FakeHubspot::start().await;
    fake.data.lock().unwrap().pipelines = vec![json!({"id": "default", "label": "Sales",
        "displayOrder": 0, "archived": false, "createdAt": STAGE_AT, "updatedAt": STAGE_AT,
        "stages": [{"id": "s1", "label": "Qualified", "displayOrder": 0, "archived": false,
                    "metadata": {"probability": "0.2", "isClosed": "false"},
                    "createdAt": STAGE_AT, "updatedAt": STAGE_AT}]})];
    fake.add(
        "companies",
        json!({"id": "co-1", "properties": {"name": "Acme"}, "archived": false}),
    );
    for i in 0..DEALS {
        fake.add(
            "deals",
            deal(
                &(1000 + i).to_string(),
                Some("co-1"),
                &(1000 + i).to_string(),
                &[("s1", STAGE_AT)],
            ),
        );
    }
    let cfg = config(
        Provider::Hubspot,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let env = connect(cfg, json!({})).await;
    (fake, env)
}

/// The deal requests the fake answered (listings, searches, reads by id), in order, as
/// (what was asked, status): reference data (account, pipelines, companies), which every
/// attempt re-reads, left out.
pub(crate) fn deal_requests(fake: &FakeHubspot) -> Vec<(String, u16)> {
    answered(&fake.url, |r| r.path.starts_with("/crm/v3/objects/deals"))
}

/// (lead events, sum of their values) of the tenant's HubSpot rows.
pub(crate) async fn totals(env: &Env) -> (i64, String) {
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select count(*), coalesce(sum(value), 0)::text from lead_events
              where tenant_id = $1 and source_system = 'hubspot'",
            &[&env.tenant],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

pub(crate) fn expected_totals() -> (i64, String) {
    let sum: usize = (0..DEALS).map(|i| 1000 + i).sum();
    (DEALS as i64, format!("{sum}.00"))
}

#[tokio::test]
async fn hubspot_uninterrupted_first_run_reads_every_page_once_and_shows_progress_of_the_total() {
    let (fake, env) = seeded().await;
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Completed, "{errors}");
    assert_eq!(totals(&env).await, expected_totals());
    let requests = deal_requests(&fake);
    assert_eq!(served_twice(&requests), Vec::<String>::new());
    // 1 archived page, 1 count search, the listing.
    assert_eq!(fake.requests(LIVE), LISTING_PAGES, "{requests:#?}");
    assert_eq!(fake.requests(SEARCH), 1, "the count: {requests:#?}");
    assert_eq!(checkpoint(&env).await, None, "a settled run leaves none");
    assert_eq!(env.last_run().await.0, "succeeded");
    // Five pages, one run row with the sum of their counts.
    assert_one_settled_run(&env, DEALS as i64).await;
}

#[tokio::test]
async fn hubspot_429_in_the_middle_of_page_n_resumes_at_page_n() {
    let (fake, env) = seeded().await;
    // The third live listing page is refused.
    fake.data
        .lock()
        .unwrap()
        .rate_limit_requests
        .push((LIVE.into(), 3, 2));
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable, "snoozed for Retry-After");
    let (stream, pages_read, items_read, items_total, _) =
        checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(stream.as_deref(), Some("deals"));
    // The archived page and two live pages are committed (the count is a step, not a page).
    assert_eq!(pages_read, 3);
    assert_eq!(items_read, 100);
    assert_eq!(items_total, Some(DEALS as i64), "of how many: the count");
    assert_eq!(totals(&env).await.0, 100, "the two pages' events are in");
    assert_open_run_survives_the_sweep(&env, 100).await;
    let before = deal_requests(&fake);
    let refused: Vec<_> = before.iter().filter(|r| r.1 == 429).cloned().collect();
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
    assert_eq!(
        all.iter()
            .filter(|r| r.1 == 200 && r.0.starts_with(&format!("{LIVE} ")))
            .filter(|r| r.0.contains(r#"("archived", "false")"#))
            .count(),
        LISTING_PAGES,
        "{all:#?}"
    );
    assert_eq!(fake.requests(SEARCH), 1, "the count is not asked again");
    assert_eq!(totals(&env).await, expected_totals());
    assert_eq!(checkpoint(&env).await, None);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    // One run row across both attempts, with all five pages' events.
    assert_one_settled_run(&env, DEALS as i64).await;
}

/// A worker killed while it reads (the run's future dropped once the fake has served the third
/// live page, wherever the run was: receiving it, committing it, asking for the next): the next
/// run resumes at the stored checkpoint. Only a page the kill left uncommitted is read again.
#[tokio::test]
async fn hubspot_run_killed_mid_read_resumes_at_the_checkpoint() {
    let (fake, env) = seeded().await;
    let engine = env.engine.clone();
    let (tenant, id) = (env.tenant, env.integration);
    let run = engine.run(tenant, id, true);
    let watched = fake.clone();
    let served_three = async move {
        while watched.requests(LIVE) < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the run finished before the kill: {r:?}"),
        _ = served_three => {}
    }
    // Killed: the dropped run's connections are closed, an open transaction rolls back.
    let (_, pages_read, items_read, _, state) = checkpoint(&env).await.expect("a checkpoint");
    assert!(
        (3..=4).contains(&pages_read),
        "archived page + 2 live pages committed, maybe the third: {pages_read}"
    );
    assert_eq!(
        totals(&env).await.0,
        items_read,
        "committed events = checkpointed items"
    );
    let resume_after = state["step"]["after"].as_str().map(String::from);
    assert_eq!(state["step"]["step"], "live", "{state}");
    let before = deal_requests(&fake);

    let summary = env.engine.run(tenant, id, true).await.unwrap();
    assert_eq!(summary.rows_read, DEALS as u64, "{summary:?}");
    let all = deal_requests(&fake);
    let first = &all[before.len()].0;
    match &resume_after {
        Some(after) => assert!(
            first.starts_with(&format!("{LIVE} ")) && first.contains(&format!("\"{after}\"")),
            "resumes at the checkpoint's page (after {after}): {first}"
        ),
        None => assert!(first.starts_with(&format!("{LIVE} ")), "{first}"),
    }
    // The committed pages were not asked again; at most the page the kill interrupted was.
    let twice = served_twice(&all);
    assert!(twice.len() <= 1, "{twice:#?}");
    assert_eq!(fake.requests(SEARCH), 1, "the count is not asked again");
    assert_eq!(totals(&env).await, expected_totals());
    assert_eq!(checkpoint(&env).await, None);
}

/// An increment of 120 modified deals (under `FULL_LIST_ABOVE`) reads them by id in chunks of 50,
/// each committed with the ids still pending: a 429 on a deal of the second chunk resumes at that
/// chunk — the search and the first chunk's deals are not asked again.
#[tokio::test]
async fn hubspot_increment_429_mid_chunk_resumes_without_searching_again() {
    let (fake, env) = seeded().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let modified: Vec<String> = (0..120).map(|i| (1000 + i).to_string()).collect();
    for id in &modified {
        let mut d = deal(id, Some("co-1"), "5", &[("s1", STAGE_AT)]);
        d["properties"]["amount"] = json!("5");
        fake.modify("deals", d);
    }
    zixly_testkit::fakes::record::clear_recorded(&fake.url);
    // Deal 1060 is the 61st found: the second chunk's 11th.
    fake.data.lock().unwrap().rate_limit_requests.push((
        "GET /crm/v3/objects/deals/1060".into(),
        1,
        2,
    ));
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (_, _, _, items_total, state) = checkpoint(&env).await.expect("a checkpoint");
    assert_eq!(state["step"]["step"], "by_id", "{state}");
    assert_eq!(
        state["step"]["pending"].as_array().map(Vec::len),
        Some(70),
        "the second chunk onwards"
    );
    assert_eq!(items_total, Some(120), "of the 120 modified deals");
    env.run_due_jobs().await;
    let all = deal_requests(&fake);
    let searches = all.iter().filter(|r| r.0.starts_with(SEARCH)).count();
    assert_eq!(searches, 1, "{all:#?}");
    let reads = |id: &str| {
        all.iter()
            .filter(|r| r.1 == 200 && r.0.starts_with(&format!("GET /crm/v3/objects/deals/{id} ")))
            .count()
    };
    assert_eq!(reads("1000"), 1, "first chunk: committed, not read again");
    assert_eq!(reads("1049"), 1);
    assert_eq!(reads("1119"), 1);
    assert_eq!(checkpoint(&env).await, None);
    let (count, sum) = totals(&env).await;
    let expected: usize = (120..DEALS).map(|i| 1000 + i).sum::<usize>() + 120 * 5;
    assert_eq!((count, sum), (DEALS as i64, format!("{expected}.00")));
}
