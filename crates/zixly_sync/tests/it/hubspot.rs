//! The HubSpot runner end to end against the fake HubSpot: rate limits, a revoked grant, and runs
//! killed at any point then restarted (the other providers' equivalents are in `sync.rs` and
//! `pipedrive.rs`).

use std::future::Future;
use std::task::Poll;

use serde_json::{json, Value};
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::hubspot::{FakeHubspot, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::oauth::Fault;

use crate::sync::{config, connect, Env};

pub(crate) type Event = (String, String, String, String, String, String, String);

/// HubSpot lead events as (lead, client, client name, stage, status, value, event date).
pub(crate) async fn events(env: &Env) -> Vec<Event> {
    env.db
        .superuser()
        .await
        .query(
            "select e.lead_id, k.client_id, k.client_name, e.stage, e.status::text,
                    coalesce(e.value::text, ''), to_char(e.event_date at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
               from lead_events e join client_kpis k on k.tenant_id = e.tenant_id and k.id = e.client_kpi_id
              where e.source_system = 'hubspot' order by e.lead_id, e.event_date",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
        .collect()
}

fn e(
    lead: &str,
    client: &str,
    name: &str,
    stage: &str,
    status: &str,
    value: &str,
    at: &str,
) -> Event {
    (
        lead.into(),
        client.into(),
        name.into(),
        stage.into(),
        status.into(),
        value.into(),
        at.into(),
    )
}

/// A deal as HubSpot lists it with `propertiesWithHistory=dealstage&associations=companies`;
/// `stages`: (stage id, entered at), oldest first; the last one is the current stage.
pub(crate) fn deal(
    id: &str,
    company: Option<&str>,
    amount: &str,
    stages: &[(&str, &str)],
) -> Value {
    let history: Vec<Value> = stages
        .iter()
        .map(|(s, t)| json!({"value": s, "timestamp": t, "sourceType": "CRM_UI"}))
        .collect();
    let last = stages.last().unwrap().0;
    let closed = last == "won" || last == "lost";
    let associations = match company {
        Some(c) => json!({"companies": {"results": [{"id": c, "type": "deal_to_company"}]}}),
        None => json!({}),
    };
    json!({"id": id, "archived": false,
        "properties": {"amount": amount, "dealstage": last, "pipeline": "default",
                       "hs_is_closed": closed.to_string(), "hs_is_closed_won": (last == "won").to_string(),
                       "hs_lastmodifieddate": "2024-01-05T00:00:00.000Z"},
        "propertiesWithHistory": {"dealstage": history},
        "associations": associations,
        "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-05T00:00:00.000Z"})
}

fn archived(mut deal: Value) -> Value {
    deal["archived"] = json!(true);
    deal["archivedAt"] = json!("2024-02-02T00:00:00.000Z");
    deal
}

const D1: &str = "2024-01-01T09:00:00.000Z";
const D2: &str = "2024-01-02T09:00:00.000Z";
const D3: &str = "2024-01-03T09:00:00.000Z";
const FEB1: &str = "2024-02-01T09:00:00.000Z";

/// A connected HubSpot with one pipeline, two companies and five deals (one without a company);
/// nothing synced yet.
pub(crate) async fn hubspot() -> (FakeHubspot, Env) {
    let fake = FakeHubspot::start().await;
    let cfg = config(
        Provider::Hubspot,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let stage = |id: &str, label: &str, order: u32, probability: &str, closed: bool| {
        json!({"id": id, "label": label, "displayOrder": order, "archived": false,
               "metadata": {"probability": probability, "isClosed": closed.to_string()},
               "createdAt": D1, "updatedAt": D1})
    };
    fake.data.lock().unwrap().pipelines = vec![json!({"id": "default", "label": "Sales",
        "displayOrder": 0, "archived": false, "createdAt": D1, "updatedAt": D1, "stages": [
        stage("s1", "Qualified", 0, "0.2", false),
        stage("s2", "Proposal", 1, "0.6", false),
        stage("won", "Closed won", 2, "1.0", true),
        stage("lost", "Closed lost", 3, "0.0", true)]})];
    fake.add(
        "companies",
        json!({"id": "co-1", "properties": {"name": "Acme"}, "archived": false}),
    );
    fake.add(
        "companies",
        json!({"id": "co-2", "properties": {"name": "Beta"}, "archived": false}),
    );
    fake.add("deals", deal("1", Some("co-1"), "100", &[("s1", D1)]));
    fake.add(
        "deals",
        deal("2", Some("co-1"), "200.5", &[("s1", D1), ("s2", D2)]),
    );
    fake.add(
        "deals",
        deal("3", Some("co-2"), "300", &[("s1", D1), ("won", D3)]),
    );
    fake.add("deals", deal("4", Some("co-2"), "40", &[("s1", D2)]));
    fake.add("deals", deal("5", None, "5", &[("s1", D1)]));
    let env = connect(cfg, json!({})).await;
    (fake, env)
}

/// The events of the fixture after one complete run.
fn initial() -> Vec<Event> {
    vec![
        e(
            "1",
            "co-1",
            "Acme",
            "Qualified",
            "active",
            "100.00",
            "2024-01-01 09:00",
        ),
        e(
            "2",
            "co-1",
            "Acme",
            "Qualified",
            "active",
            "200.50",
            "2024-01-01 09:00",
        ),
        e(
            "2",
            "co-1",
            "Acme",
            "Proposal",
            "active",
            "200.50",
            "2024-01-02 09:00",
        ),
        e(
            "3",
            "co-2",
            "Beta",
            "Qualified",
            "active",
            "300.00",
            "2024-01-01 09:00",
        ),
        e(
            "3",
            "co-2",
            "Beta",
            "Closed won",
            "won",
            "300.00",
            "2024-01-03 09:00",
        ),
        e(
            "4",
            "co-2",
            "Beta",
            "Qualified",
            "active",
            "40.00",
            "2024-01-02 09:00",
        ),
    ]
}

/// Changes at HubSpot after the first run, edited now: see [`change_at`].
pub(crate) fn change(fake: &FakeHubspot) {
    change_at(fake, None);
}

/// Changes at HubSpot after the first run: deal 1 moves to Proposal with a new amount, deal 2
/// is lost (its history now ends in Closed lost), new deal 6, deal 4 archived (archiving does not
/// bump `hs_lastmodifieddate`), and deal 3's won entry vanished from its history (the run must
/// prune it). The edited deals' `hs_lastmodifieddate` is `modified` (RFC 3339), or now.
fn change_at(fake: &FakeHubspot, modified: Option<&str>) {
    let edit = |mut d: Value| match modified {
        None => fake.modify("deals", d),
        Some(at) => {
            d["properties"]["hs_lastmodifieddate"] = json!(at);
            d["updatedAt"] = json!(at);
            fake.add("deals", d);
        }
    };
    edit(deal("1", Some("co-1"), "150", &[("s1", D1), ("s2", FEB1)]));
    edit(deal(
        "2",
        Some("co-1"),
        "200.5",
        &[("s1", D1), ("s2", D2), ("lost", FEB1)],
    ));
    edit(deal("6", Some("co-2"), "60", &[("s1", FEB1)]));
    fake.add(
        "deals",
        archived(deal("4", Some("co-2"), "40", &[("s1", D2)])),
    );
    edit(deal("3", Some("co-2"), "300", &[("s1", D1)]));
}

/// The events after [`change`] and one complete run.
fn changed() -> Vec<Event> {
    vec![
        e(
            "1",
            "co-1",
            "Acme",
            "Qualified",
            "active",
            "150.00",
            "2024-01-01 09:00",
        ),
        e(
            "1",
            "co-1",
            "Acme",
            "Proposal",
            "active",
            "150.00",
            "2024-02-01 09:00",
        ),
        e(
            "2",
            "co-1",
            "Acme",
            "Qualified",
            "active",
            "200.50",
            "2024-01-01 09:00",
        ),
        e(
            "2",
            "co-1",
            "Acme",
            "Proposal",
            "active",
            "200.50",
            "2024-01-02 09:00",
        ),
        e(
            "2",
            "co-1",
            "Acme",
            "Closed lost",
            "lost",
            "200.50",
            "2024-02-01 09:00",
        ),
        e(
            "3",
            "co-2",
            "Beta",
            "Qualified",
            "active",
            "300.00",
            "2024-01-01 09:00",
        ),
        e(
            "6",
            "co-2",
            "Beta",
            "Qualified",
            "active",
            "60.00",
            "2024-02-01 09:00",
        ),
    ]
}

/// (attempt, seconds until it is due) of the one job waiting for a retry.
async fn job_wait(env: &Env) -> (i32, f64) {
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select attempt, extract(epoch from scheduled_at - now())::float8 from jobs
              where state = 'retryable'",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

async fn sync_runs(env: &Env) -> i64 {
    env.db
        .superuser()
        .await
        .query_one("select count(*) from sync_runs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn hubspot_rate_limit_snoozes_and_a_revoked_grant_is_an_error_without_secrets() {
    let (fake, env) = hubspot().await;
    // HubSpot's secondly policy (110 requests / 10 s): the 429 RATE_LIMIT body with Retry-After.
    fake.oauth.inject(Fault::RateLimited { retry_after: 10 });
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (attempt, wait) = job_wait(&env).await;
    assert_eq!(attempt, 0, "a rate limit is not an attempt");
    assert!((5.0..=11.0).contains(&wait), "waits ~10 s, not {wait}");
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    assert!(events(&env).await.is_empty(), "nothing written");
    assert_eq!(sync_runs(&env).await, 0, "no run recorded, no cursor");
    env.run_due_jobs().await;
    assert_eq!(events(&env).await, initial());
    assert_eq!(env.last_run().await, ("succeeded".into(), 6, 0, true));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));

    // A rate limit in the middle of an increment: nothing of it is written, the retry applies it
    // all.
    change(&fake);
    fake.oauth.inject(Fault::RateLimited { retry_after: 10 });
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    assert_eq!(job_wait(&env).await.0, 0);
    assert_eq!(events(&env).await, initial());
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    env.run_due_jobs().await;
    assert_eq!(events(&env).await, changed());
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    assert_eq!(fake.oauth.refreshes(), 0);

    // The user removed the app at HubSpot: the access token expires and the refresh token is
    // refused with invalid_grant.
    let (access, refresh) = env.stored_tokens().await;
    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    let (state, job_errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Discarded, "permanent: not retried");
    assert_eq!(fake.oauth.rejected_refreshes(), 1, "one refresh attempt");
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    let error = error.unwrap();
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(error.contains("re-authorisation needed"), "{error}");
    let job_errors = job_errors.to_string();
    assert!(job_errors.contains("invalid_grant"), "{job_errors}");
    for text in [&error, &job_errors] {
        for secret in [
            access.as_str(),
            refresh.as_str(),
            CLIENT_SECRET,
            "at-",
            "rt-",
        ] {
            assert!(!text.contains(secret), "{secret:?} in {text}");
        }
    }
    assert_eq!(
        events(&env).await,
        changed(),
        "the data stays; only the status changed"
    );
    // A scheduled run leaves an integration in ERROR alone.
    let calls = fake.oauth.api_calls();
    let summary = env
        .engine
        .run(env.tenant, env.integration, false)
        .await
        .unwrap();
    assert!(summary.not_run.is_some());
    assert_eq!(fake.oauth.api_calls(), calls, "no call to HubSpot");
}

/// Runs `env`'s sync and drops it (killed) after `polls` polls (a yield count, not a time);
/// returns whether it had finished by then.
async fn run_killed(env: &Env, polls: usize) -> bool {
    let engine = env.engine.clone();
    let (tenant, id) = (env.tenant, env.integration);
    let mut run = Box::pin(async move { engine.run(tenant, id, true).await });
    let mut n = 0;
    std::future::poll_fn(|cx| {
        n += 1;
        if n > polls {
            return Poll::Ready(false);
        }
        match run.as_mut().poll(cx) {
            Poll::Ready(r) => {
                r.unwrap();
                Poll::Ready(true)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Moves the cursor of the integration's runs `ago` (an SQL interval) into the past: as if the
/// last run had been that long ago.
async fn backdate_cursor(env: &Env, ago: &str) {
    env.db
        .superuser()
        .await
        .execute(
            "update sync_runs set cursor = jsonb_set(cursor, '{modified_since}',
                    to_jsonb(to_char((now() - $1::text::interval) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))
              where integration_id = $2 and cursor is not null",
            &[&ago, &env.integration],
        )
        .await
        .unwrap();
}

/// What one kill point left: the data right after the killed run, and after the restart.
struct Killed {
    kill_after: usize,
    after_kill: Vec<Event>,
    after_restart: Vec<Event>,
}

/// The history "first complete run, [`change_at`] (`modified`), the next run killed after
/// `kill_after` polls, a complete run", each in a fresh database (so that every kill interrupts
/// the run that applies the changes and its removals, not a run with nothing left to do), for
/// `kill_after` = 1, 2, ... until the run is no longer killed. `last_run_ago` backdates the first
/// run's cursor. The restart must leave the integration healthy and a further run must change
/// nothing.
async fn kill_at_every_point(modified: Option<&str>, last_run_ago: Option<&str>) -> Vec<Killed> {
    let mut out = Vec::new();
    for kill_after in 1..=1000 {
        let (fake, env) = hubspot().await;
        env.engine
            .run(env.tenant, env.integration, true)
            .await
            .unwrap();
        if let Some(ago) = last_run_ago {
            backdate_cursor(&env, ago).await;
        }
        change_at(&fake, modified);
        let finished = run_killed(&env, kill_after).await;
        let after_kill = events(&env).await;
        env.engine
            .run(env.tenant, env.integration, true)
            .await
            .unwrap();
        let after_restart = events(&env).await;
        assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
        env.engine
            .run(env.tenant, env.integration, true)
            .await
            .unwrap();
        assert_eq!(
            env.last_run().await,
            ("succeeded".into(), 0, 0, true),
            "killed after {kill_after} polls: the restart left something to write"
        );
        assert_eq!(events(&env).await, after_restart);
        out.push(Killed {
            kill_after,
            after_kill,
            after_restart,
        });
        if finished {
            return out;
        }
    }
    panic!("a run never finished within 1000 polls");
}

#[tokio::test]
async fn hubspot_runs_killed_at_any_point_then_restarted_converge() {
    // The uninterrupted history: first complete run, changes, one complete run.
    let (fake, env) = hubspot().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(events(&env).await, initial());
    change(&fake);
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let uninterrupted = events(&env).await;
    assert_eq!(uninterrupted, changed());
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(
        env.last_run().await,
        ("succeeded".into(), 0, 0, true),
        "converged: nothing left to write"
    );
    drop((fake, env));

    let points = kill_at_every_point(None, None).await;
    for k in &points {
        assert_eq!(
            k.after_restart,
            uninterrupted,
            "killed after {} of {} polls",
            k.kill_after,
            points.len()
        );
    }
    // The kills hit every stage: before anything was written, after the removals committed but
    // before the load did (deal 4's and deal 3's won events gone, the changes not yet loaded),
    // and after.
    let partial = points
        .iter()
        .filter(|k| k.after_kill != initial() && k.after_kill != uninterrupted)
        .count();
    assert_eq!(points[0].after_kill, initial());
    assert_eq!(points.last().unwrap().after_kill, uninterrupted);
    assert!(
        partial >= 1,
        "no kill point fell between the removals and the load"
    );
}

/// The realistic timing of [`hubspot_runs_killed_at_any_point_then_restarted_converge`]: the last
/// run was an hour ago and the deals were edited ten minutes ago, longer ago than the cursor's
/// safety margin (`CURSOR_SAFETY`, 60 s), so a restarted incremental run does not read them again.
/// When the runner committed its removals after the load (rows and the new cursor), a run killed
/// in between left deal 3's vanished "Closed won" event behind until the next complete read
/// (`full_sync_hours`, 24 h by default); the removals are now committed before the cursor moves.
#[tokio::test]
async fn hubspot_killed_between_load_and_removals_converges_for_edits_older_than_the_margin() {
    let ten_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let points = kill_at_every_point(Some(&ten_minutes_ago), Some("1 hour")).await;
    assert_eq!(
        points.last().unwrap().after_restart,
        changed(),
        "uninterrupted: converges"
    );
    let diverged: Vec<usize> = points
        .iter()
        .filter(|k| k.after_restart != changed())
        .map(|k| k.kill_after)
        .collect();
    assert!(
        diverged.is_empty(),
        "killed after these polls (of {}), the restarted run left stale events: {diverged:?}",
        points.len()
    );
}

/// An increment with 1,000 modified deals, against a fake that answers 429 to a fifth search
/// within one second (HubSpot's documented 4 per second per token): one search tells that more
/// than `FULL_LIST_ABOVE` deals changed, a one-result search counts the live deals (progress),
/// and the listing reads them — two searches, none wasted on pages of ids the listing reads
/// anyway (before issue 10's resumable runner: five search pages of 200, then the listing).
/// The search lane's pacing itself is covered by `zixly_connectors::pace` and the benchmark.
#[tokio::test]
async fn hubspot_search_requests_stay_under_the_search_limit() {
    let (fake, env) = hubspot().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    for i in 100..1100 {
        fake.modify(
            "deals",
            deal(&i.to_string(), Some("co-1"), "10", &[("s1", FEB1)]),
        );
    }
    fake.data.lock().unwrap().search_per_second = Some(4);
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(env.last_run().await.0, "succeeded");
    {
        let d = fake.data.lock().unwrap();
        let searches = d
            .requests
            .iter()
            .filter(|r| *r == "POST /crm/v3/objects/deals/search")
            .count();
        assert_eq!(
            searches, 3,
            "the first run's count, then the increment's search and count"
        );
        assert_eq!(d.rate_limited, 0, "no search was refused");
        assert!(
            d.max_searches_per_second() <= 4,
            "{} searches within one second",
            d.max_searches_per_second()
        );
    }
    assert_eq!(
        events(&env)
            .await
            .iter()
            .filter(|e| e.1 == "co-1" && e.5 == "10.00")
            .count(),
        1000
    );
}

/// A 429 with `Retry-After` on a search mid-increment (the second: the count of live deals, after
/// the increment's search committed its step): the job snoozes for that long (a rate limit is not
/// an attempt), nothing of the increment is written, and the retry resumes and applies it all.
#[tokio::test]
async fn hubspot_429_on_a_search_page_snoozes_for_retry_after() {
    let (fake, env) = hubspot().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    for i in 100..500 {
        fake.modify(
            "deals",
            deal(&i.to_string(), Some("co-2"), "7", &[("s1", FEB1)]),
        );
    }
    fake.data.lock().unwrap().rate_limit_requests =
        vec![("POST /crm/v3/objects/deals/search".into(), 2, 3)];
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let (attempt, wait) = job_wait(&env).await;
    assert_eq!(attempt, 0, "a rate limit is not an attempt");
    assert!((1.0..=4.0).contains(&wait), "waits ~3 s, not {wait}");
    assert_eq!(fake.data.lock().unwrap().rate_limited, 1);
    assert_eq!(events(&env).await, initial(), "nothing of the increment");
    env.run_due_jobs().await;
    assert_eq!(env.last_run().await.0, "succeeded");
    assert_eq!(
        events(&env).await.iter().filter(|e| e.5 == "7.00").count(),
        400
    );
}
