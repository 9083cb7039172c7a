//! The Pipedrive runner end to end through the job queue against the fake Pipedrive.

use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::oauth::Fault;
use zixly_testkit::fakes::pipedrive::{ts, FakePipedrive, CLIENT_ID, CLIENT_SECRET};

use std::time::Duration;

use zixly_connectors::pace::{Lane, RateLimit};
use zixly_sync::engine::SyncConfig;

use crate::sync::{config, connect_with, Env};

/// Lead events as (lead, client, client name, stage, status, value).
pub(crate) async fn events(env: &Env) -> Vec<(String, String, String, String, String, String)> {
    env.db
        .superuser()
        .await
        .query(
            "select e.lead_id, k.client_id, k.client_name, e.stage, e.status::text, coalesce(e.value::text, '')
               from lead_events e join client_kpis k on k.tenant_id = e.tenant_id and k.id = e.client_kpi_id
              where e.source_system = 'pipedrive' order by e.lead_id, e.event_date",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

fn e(
    lead: &str,
    client: &str,
    name: &str,
    stage: &str,
    status: &str,
    value: &str,
) -> (String, String, String, String, String, String) {
    (
        lead.into(),
        client.into(),
        name.into(),
        stage.into(),
        status.into(),
        value.into(),
    )
}

pub(crate) async fn pipedrive() -> (FakePipedrive, Env) {
    pipedrive_with(SyncConfig {
        max_jitter: Duration::ZERO,
        ..SyncConfig::default()
    })
    .await
}

/// [`pipedrive`] with the engine configured by `sync_config`.
pub(crate) async fn pipedrive_with(sync_config: SyncConfig) -> (FakePipedrive, Env) {
    let fake = FakePipedrive::start().await;
    // The configured API root is unreachable: calls must go to the token answer's api_domain,
    // kept in the settings at connect time.
    let cfg = config(
        Provider::Pipedrive,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        "http://127.0.0.1:9",
    );
    {
        let mut d = fake.data.lock().unwrap();
        d.stages = vec![
            json!({"id": 1, "name": "Qualified", "pipeline_id": 1, "is_deal_rot_enabled": false, "days_to_rotten": null}),
            json!({"id": 2, "name": "Proposal", "pipeline_id": 1, "is_deal_rot_enabled": false, "days_to_rotten": null}),
            json!({"id": 3, "name": "Negotiation", "pipeline_id": 1, "is_deal_rot_enabled": true, "days_to_rotten": 10}),
        ];
    }
    fake.upsert_organization(json!({"id": 1, "name": "Acme"}));
    fake.upsert_organization(json!({"id": 2, "name": "Beta"}));
    fake.upsert_deal(json!({"id": 1, "org_id": 1, "pipeline_id": 1, "stage_id": 1, "status": "open", "value": 100}));
    fake.upsert_deal(json!({"id": 2, "org_id": 2, "pipeline_id": 1, "stage_id": 2, "status": "won", "value": 250.5}));
    fake.upsert_deal(
        json!({"id": 3, "org_id": null, "pipeline_id": 1, "stage_id": 1, "status": "open"}),
    );
    // Not updated for far longer than the stage's 10 rotting days (the fake's clock is in 2024).
    fake.upsert_deal(json!({"id": 4, "org_id": 1, "pipeline_id": 1, "stage_id": 3, "status": "open", "value": 5}));
    let api_domain = fake.data.lock().unwrap().api_domain.clone();
    let env = connect_with(
        cfg,
        json!({"pipedrive_api_domain": api_domain}),
        sync_config,
    )
    .await;
    (fake, env)
}

#[tokio::test]
async fn pipedrive_full_incremental_history_deletions_archive_and_expiry() {
    let (fake, env) = pipedrive().await;
    fake.expire_tokens_after(2); // expires on the third request of the read
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1, "refreshed once mid-sync");
    let full = vec![
        e("1", "1", "Acme", "Qualified", "active", "100.00"),
        e("2", "2", "Beta", "Proposal", "won", "250.50"),
        e("4", "1", "Acme", "Negotiation", "stale", "5.00"),
    ];
    assert_eq!(events(&env).await, full, "deal 3 has no organization");
    assert_eq!(env.last_run().await, ("succeeded".into(), 3, 0, true));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));

    // No change at the provider: the run writes nothing.
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 0, true));
    assert_eq!(events(&env).await, full);

    // Incremental: deal 1 moves on (its earlier stage stays: the history builds up), deal 5 is
    // new.
    fake.tick(chrono::Duration::hours(1));
    let now = ts(fake.now());
    fake.upsert_deal(
        json!({"id": 1, "org_id": 1, "pipeline_id": 1, "stage_id": 2, "status": "open",
        "value": 120, "stage_change_time": now}),
    );
    fake.upsert_deal(json!({"id": 5, "org_id": 2, "pipeline_id": 1, "stage_id": 1, "status": "open", "value": 7}));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 2, 0, true));
    assert_eq!(
        events(&env).await,
        vec![
            e("1", "1", "Acme", "Qualified", "active", "100.00"),
            e("1", "1", "Acme", "Proposal", "active", "120.00"),
            e("2", "2", "Beta", "Proposal", "won", "250.50"),
            e("4", "1", "Acme", "Negotiation", "stale", "5.00"),
            e("5", "2", "Beta", "Qualified", "active", "7.00"),
        ]
    );

    // Deleting does not bump update_time, yet the deleted deal's events go; an archived deal
    // keeps its history and status.
    fake.tick(chrono::Duration::hours(1));
    fake.delete_deal(1);
    fake.archive_deal(2);
    // Incremental: a change that does not bump update_time (older than the cursor) is not read.
    {
        let mut d = fake.data.lock().unwrap();
        let deal = d.deals.iter_mut().find(|x| x["id"] == json!(4)).unwrap();
        deal["value"] = json!(999);
    }
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        events(&env).await,
        vec![
            e("2", "2", "Beta", "Proposal", "won", "250.50"),
            e("4", "1", "Acme", "Negotiation", "stale", "5.00"),
            e("5", "2", "Beta", "Qualified", "active", "7.00"),
        ],
        "deal 1 deleted; archived deal 2 kept; deal 4 not re-read"
    );
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

#[tokio::test]
async fn pipedrive_rate_limit_snoozes_and_a_revoked_grant_is_an_error() {
    let (fake, env) = pipedrive().await;
    fake.oauth.inject(Fault::RateLimited { retry_after: 30 });
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select attempt, scheduled_at > now() + interval '20 seconds' from jobs where kind = 'sync'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i32>(0), r.get::<_, bool>(1)),
        (0, true),
        "not counted, waits for x-ratelimit-reset"
    );
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    assert!(
        events(&env).await.is_empty(),
        "nothing written before the load"
    );
    env.run_due_jobs().await;
    assert_eq!(events(&env).await.len(), 3);

    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    assert!(error.unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn pipedrive_runs_killed_at_any_point_then_restarted_converge() {
    let (fake, env) = pipedrive().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    fake.tick(chrono::Duration::hours(1));
    let now = ts(fake.now());
    fake.upsert_deal(
        json!({"id": 1, "org_id": 1, "pipeline_id": 1, "stage_id": 2, "status": "open",
        "value": 120, "stage_change_time": now}),
    );
    fake.delete_deal(2);
    let expected = vec![
        e("1", "1", "Acme", "Qualified", "active", "100.00"),
        e("1", "1", "Acme", "Proposal", "active", "120.00"),
        e("4", "1", "Acme", "Negotiation", "stale", "5.00"),
    ];
    // A complete run takes a few dozen polls here: every other point of it.
    for polls in (1usize..=80).step_by(2) {
        env.run_killed_then_complete(polls).await;
        assert_eq!(events(&env).await, expected, "killed after {polls} polls");
    }
}

/// The stored `settings.pipedrive_api_domain` (as a superuser).
async fn stored_domain(env: &Env) -> Option<String> {
    env.db
        .superuser()
        .await
        .query_one(
            "select settings->>'pipedrive_api_domain' from integrations where id = $1",
            &[&env.integration],
        )
        .await
        .unwrap()
        .get(0)
}

/// Requests the fake served at `base` to the API (`/api/v2/...`).
fn api_requests(base: &str) -> usize {
    zixly_testkit::fakes::recorded(base)
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/"))
        .count()
}

#[tokio::test]
async fn a_refresh_that_moves_the_api_domain_sends_the_next_requests_there() {
    let (fake, env) = pipedrive().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let old = fake.url.clone();
    assert!(api_requests(&old) > 0);
    assert_eq!(stored_domain(&env).await.as_deref(), Some(old.as_str()));

    // The company domain changes; the next refresh's answer says so. The token expires, so the
    // next run's first request gets a 401, refreshes and restarts.
    let new = fake.move_api_domain().await;
    fake.oauth.expire_access_tokens();
    zixly_testkit::fakes::clear_recorded(&old);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1);
    assert_eq!(
        stored_domain(&env).await.as_deref(),
        Some(new.as_str()),
        "the refresh's api_domain is stored"
    );
    let at_old = zixly_testkit::fakes::recorded(&old);
    assert_eq!(
        at_old
            .iter()
            .filter(|r| r.path.starts_with("/api/v2/"))
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![401],
        "only the rejected request went to the old domain"
    );
    assert!(
        api_requests(&new) > 0,
        "the run restarted on the new domain"
    );
    assert_eq!(events(&env).await.len(), 3);

    // And the runs after it.
    zixly_testkit::fakes::clear_recorded(&old);
    zixly_testkit::fakes::clear_recorded(&new);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(api_requests(&old), 0);
    assert!(api_requests(&new) > 0);
}

#[tokio::test]
async fn a_refresh_answering_an_unsafe_api_domain_keeps_the_stored_one() {
    let (fake, env) = pipedrive().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let old = fake.url.clone();
    for bad in [
        "ftp://files.example",
        "not a url",
        "https://user:pw@evil.example",
    ] {
        fake.data.lock().unwrap().api_domain = bad.into();
        fake.oauth.expire_access_tokens();
        assert_eq!(env.sync_via_queue().await.0, JobState::Completed, "{bad}");
        assert_eq!(
            stored_domain(&env).await.as_deref(),
            Some(old.as_str()),
            "{bad} is not stored"
        );
    }
    assert_eq!(fake.oauth.refreshes(), 3);
}

/// A full read of 1,600 deals (four pages of 500) plus organizations, stages, archived and
/// deleted deals: eight requests, against a fake whose burst limit is a time-scaled 3 per second
/// (Pipedrive's rolling 2-second window, contracts/pipedrive.json). The engine's pacer for the
/// connection (3 per 1.2 s: the margin covers the time a request takes to arrive) keeps every
/// window under the limit, and the fake's `x-ratelimit-remaining: 0` holds it until the reset, so
/// no 429 is answered and the run succeeds in one go. Either alone suffices for these sequential
/// requests (the variant below runs with an unlimited pacer); with neither (an unlimited pacer and
/// `remaining` ignored) the eight requests go out within milliseconds and the fourth is refused
/// (checked by hand: the run ends rate-limited).
#[tokio::test]
async fn pipedrive_requests_stay_under_the_burst_limit() {
    burst_limited_full_read(vec![RateLimit::new(3, Duration::from_millis(1200))]).await;
}

/// As above with an unlimited pacer: `x-ratelimit-remaining: 0` alone holds the connection until
/// `x-ratelimit-reset` (another app spending the same budget is seen the same way).
#[tokio::test]
async fn pipedrive_remaining_zero_holds_an_unpaced_connection() {
    burst_limited_full_read(vec![]).await;
}

async fn burst_limited_full_read(limits: Vec<RateLimit>) {
    let (fake, env) = pipedrive_with(SyncConfig {
        max_jitter: Duration::ZERO,
        rate_limits: [(Provider::Pipedrive, limits)].into(),
        ..SyncConfig::default()
    })
    .await;
    for id in 100..1700 {
        fake.upsert_deal(
            json!({"id": id, "org_id": 2, "pipeline_id": 1, "stage_id": 2, "status": "open", "value": 1}),
        );
    }
    fake.data.lock().unwrap().window.limit = Some((3, Duration::from_secs(1)));
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(env.last_run().await.0, "succeeded");
    {
        let d = fake.data.lock().unwrap();
        assert_eq!(d.window.refused, 0, "no request was refused");
        assert_eq!(d.window.times.len(), 8, "4 deal pages + 4 other lists");
        let most = d.window.max_in_window(Duration::from_secs(1));
        assert!(most <= 3, "{most} requests within one second");
    }
    assert_eq!(events(&env).await.len(), 3 + 1600);
    let pacer = env
        .engine
        .pacer(env.integration, Provider::Pipedrive, Lane::General)
        .stats();
    assert!(pacer.waits >= 2, "the pacer made requests wait: {pacer:?}");
}
