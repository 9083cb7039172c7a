//! The Asana runner end to end through the job queue against the fake Asana (tenant zone
//! Australia/Sydney, UTC+11 in January).

use chrono::{DateTime, Utc};
use serde_json::json;
use zixly_connectors::Provider;
use zixly_queue::JobState;
use zixly_testkit::fakes::asana::{FakeAsana, CLIENT_ID, CLIENT_SECRET};
use zixly_testkit::fakes::oauth::Fault;

use std::time::Duration;

use zixly_connectors::pace::{Lane, RateLimit};
use zixly_sync::engine::SyncConfig;

use crate::sync::{config, connect_with, Env};

/// Metrics as (client, client name, metric, Sydney day, value).
async fn metrics(env: &Env) -> Vec<(String, String, String, String, String)> {
    env.db
        .superuser()
        .await
        .query(
            "select k.client_id, k.client_name, m.metric_name,
                    (m.record_date at time zone 'Australia/Sydney')::text, trim_scale(m.metric_value)::text
               from custom_metrics m join client_kpis k on k.tenant_id = m.tenant_id and k.id = m.client_kpi_id
              where m.source_system = 'asana' order by 1, 4, 3",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// One Sydney day's metrics of a client, in `metrics` order (rate present when given).
fn day(
    client: &str,
    date: &str,
    completed: &str,
    on_time: &str,
    rate: Option<&str>,
) -> Vec<(String, String, String, String, String)> {
    let at = format!("{date} 00:00:00");
    let mut v = vec![];
    if let Some(r) = rate {
        v.push((
            client.into(),
            client.into(),
            "on_time_rate".into(),
            at.clone(),
            r.into(),
        ));
    }
    v.push((
        client.into(),
        client.into(),
        "tasks_completed".into(),
        at.clone(),
        completed.into(),
    ));
    v.push((
        client.into(),
        client.into(),
        "tasks_completed_on_time".into(),
        at,
        on_time.into(),
    ));
    v
}

fn at(s: &str) -> Option<DateTime<Utc>> {
    Some(s.parse().unwrap())
}

pub(crate) async fn asana() -> (FakeAsana, Env) {
    asana_with(
        SyncConfig {
            max_jitter: Duration::ZERO,
            // Unpaced: the documented 150 per minute would hold the kill-and-restart test's
            // hundreds of requests for minutes. Pacing has its own test below.
            rate_limits: [(Provider::Asana, vec![])].into(),
            ..SyncConfig::default()
        },
        json!({}),
    )
    .await
}

/// [`asana`] with the engine configured by `sync_config` and these `settings` added.
async fn asana_with(sync_config: SyncConfig, settings: serde_json::Value) -> (FakeAsana, Env) {
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
    fake.add_project("ws-1", "p2", "Acme - SEO", true);
    fake.add_project("ws-1", "p3", "Beta - App", false);
    // In both Acme projects: counted once. Sydney 2024-01-10 13:00, on time.
    fake.upsert_task(
        "t1",
        &["p1", "p2"],
        at("2024-01-10T02:00:00Z"),
        Some("2024-01-10"),
    );
    // UTC 2024-01-09 but Sydney 2024-01-10 01:00: late for a 01-09 due date.
    fake.upsert_task(
        "t2",
        &["p1"],
        at("2024-01-09T14:00:00Z"),
        Some("2024-01-09"),
    );
    fake.upsert_task("t3", &["p2"], at("2024-01-11T02:00:00Z"), None);
    fake.upsert_task("t4", &["p3"], None, Some("2024-01-30"));
    fake.upsert_task(
        "t5",
        &["p3"],
        at("2024-01-12T02:00:00Z"),
        Some("2024-01-15"),
    );
    let mut all = json!({"asana_client_mapping": "name_prefix"});
    for (k, v) in settings.as_object().unwrap() {
        all[k] = v.clone();
    }
    let env = connect_with(cfg, all, sync_config).await;
    (fake, env)
}

fn concat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    parts.into_iter().flatten().collect()
}

#[tokio::test]
async fn asana_full_incremental_recompute_full_read_removals_and_expiry() {
    let (fake, env) = asana().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let full = concat(vec![
        day("Acme", "2024-01-10", "2", "1", Some("0.5")),
        day("Acme", "2024-01-11", "1", "0", None),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
    ]);
    assert_eq!(metrics(&env).await, full);
    assert_eq!(env.last_run().await, ("succeeded".into(), 8, 0, true));

    // No change: nothing written.
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 0, true));
    assert_eq!(metrics(&env).await, full);

    // Incremental with the token expiring mid-read: Acme's days from 01-11 are recomputed.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task(
        "t6",
        &["p1"],
        at("2024-01-11T03:00:00Z"),
        Some("2024-01-11"),
    );
    fake.expire_tokens_after(3);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1);
    assert_eq!(
        env.last_run().await,
        ("succeeded".into(), 1, 2, true),
        "a new rate, two changed counts"
    );
    assert_eq!(
        metrics(&env).await,
        concat(vec![
            day("Acme", "2024-01-10", "2", "1", Some("0.5")),
            day("Acme", "2024-01-11", "2", "1", Some("1")),
            day("Beta", "2024-01-12", "1", "1", Some("1")),
        ])
    );

    // A deleted task and a reopened one are invisible to increments; the periodic complete read
    // (here: every run) removes what they contributed, emptied days included.
    fake.tick(chrono::Duration::hours(1));
    fake.data.lock().unwrap().tasks.retain(|t| t["gid"] != "t5");
    fake.upsert_task("t3", &["p2"], None, None);
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"full_sync_hours\": 0}'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        metrics(&env).await,
        concat(vec![
            day("Acme", "2024-01-10", "2", "1", Some("0.5")),
            day("Acme", "2024-01-11", "1", "1", Some("1")),
        ])
    );
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

#[tokio::test]
async fn asana_rate_limit_snoozes_and_a_revoked_grant_is_an_error() {
    let (fake, env) = asana().await;
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
    assert_eq!((r.get::<_, i32>(0), r.get::<_, bool>(1)), (0, true));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    env.run_due_jobs().await;
    assert_eq!(metrics(&env).await.len(), 8);

    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    assert_eq!(env.sync_via_queue().await.0, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    assert!(error.unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn asana_runs_killed_at_any_point_then_restarted_converge() {
    let (fake, env) = asana().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task(
        "t6",
        &["p1"],
        at("2024-01-11T03:00:00Z"),
        Some("2024-01-11"),
    );
    fake.upsert_task(
        "t7",
        &["p3"],
        at("2024-01-13T02:00:00Z"),
        Some("2024-01-12"),
    );
    let expected = concat(vec![
        day("Acme", "2024-01-10", "2", "1", Some("0.5")),
        day("Acme", "2024-01-11", "2", "1", Some("1")),
        day("Beta", "2024-01-12", "1", "1", Some("1")),
        day("Beta", "2024-01-13", "1", "0", Some("0")),
    ]);
    // An increment takes ~145 polls here (its feeds included): every other point of it.
    for polls in (1usize..=160).step_by(2) {
        env.run_killed_then_complete(polls).await;
        assert_eq!(metrics(&env).await, expected, "killed after {polls} polls");
    }
}

/// (name, display name, aggregation) of the tenant's metric definitions, through RLS.
async fn definitions(env: &Env) -> Vec<(String, String, String)> {
    let tx = env.db.app.begin_tenant(env.tenant).await.unwrap();
    let list = tx.metric_definitions().await.unwrap();
    tx.commit().await.unwrap();
    list.into_iter()
        .map(|d| (d.name, d.display_name, d.aggregation.to_string()))
        .collect()
}

#[tokio::test]
async fn asana_metrics_are_defined_on_first_sight_and_edits_survive_later_syncs() {
    let (fake, env) = asana().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let defined = |rate: (&str, &str)| {
        vec![
            (
                "on_time_rate".to_string(),
                rate.0.to_string(),
                rate.1.to_string(),
            ),
            (
                "tasks_completed".into(),
                "Tasks completed".into(),
                "sum".into(),
            ),
            (
                "tasks_completed_on_time".into(),
                "Tasks completed on time".into(),
                "sum".into(),
            ),
        ]
    };
    assert_eq!(definitions(&env).await, defined(("On time rate", "sum")));

    // A rate averages, it does not add up: an EDITOR says so once.
    let tx = env.db.app.begin_tenant(env.tenant).await.unwrap();
    tx.update_metric_definition(
        "on_time_rate",
        &zixly_db::queries::metrics::MetricChanges {
            display_name: Some("On-time rate".into()),
            aggregation: Some(zixly_domain::metrics::Aggregation::Average),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .expect("defined by the sync");
    tx.commit().await.unwrap();

    // The next sync writes new rates of the metric; the definition stays as edited.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert_task(
        "t6",
        &["p1"],
        at("2024-01-11T03:00:00Z"),
        Some("2024-01-11"),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await.1, 1, "a new rate was written");
    assert_eq!(
        definitions(&env).await,
        defined(("On-time rate", "average"))
    );
}

/// A full read over 13 projects (one page of tasks each, plus workspaces and projects: 15
/// requests or so) against a fake whose per-token limit is a time-scaled 4 per second (Asana's 150
/// per minute, contracts/asana.json). The engine's pacer for the connection (4 per 1.2 s: the
/// margin covers the time a request takes to arrive) keeps every window under the limit, so no
/// 429 is answered and the run succeeds in one go. With an unlimited pacer the requests go out
/// within milliseconds and the fifth is refused (checked by hand: the run ends rate-limited).
#[tokio::test]
async fn asana_requests_stay_under_the_rate_limit() {
    let (fake, env) = asana_with(
        SyncConfig {
            max_jitter: Duration::ZERO,
            rate_limits: [(
                Provider::Asana,
                vec![RateLimit::new(4, Duration::from_millis(1200))],
            )]
            .into(),
            ..SyncConfig::default()
        },
        json!({}),
    )
    .await;
    for i in 0..10 {
        let gid = format!("g{i}");
        fake.add_project("ws-1", &gid, &format!("Gamma{i} - Ops"), false);
        fake.upsert_task(
            &format!("tg{i}"),
            &[gid.as_str()],
            at("2024-01-12T02:00:00Z"),
            Some("2024-01-15"),
        );
    }
    fake.data.lock().unwrap().window.limit = Some((4, Duration::from_secs(1)));
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(env.last_run().await.0, "succeeded");
    {
        let d = fake.data.lock().unwrap();
        assert_eq!(d.window.refused, 0, "no request was refused");
        assert!(
            d.window.times.len() >= 13,
            "{} requests",
            d.window.times.len()
        );
        let most = d.window.max_in_window(Duration::from_secs(1));
        assert!(most <= 4, "{most} requests within one second");
    }
    let gamma: Vec<_> = metrics(&env)
        .await
        .into_iter()
        .filter(|m| m.0.starts_with("Gamma") && m.2 == "tasks_completed")
        .collect();
    assert_eq!(gamma.len(), 10, "{gamma:?}");
    let pacer = env
        .engine
        .pacer(env.integration, Provider::Asana, Lane::General)
        .stats();
    assert!(pacer.waits >= 2, "the pacer made requests wait: {pacer:?}");
}

/// `requests_per_minute` (a paid workspace: up to 1,500) replaces the default 150 for that
/// connection's pacer, and is read again at each run.
#[tokio::test]
async fn asana_requests_per_minute_sets_the_connections_limit() {
    let (_fake, env) = asana_with(
        SyncConfig {
            max_jitter: Duration::ZERO,
            ..SyncConfig::default()
        },
        json!({"requests_per_minute": 1500}),
    )
    .await;
    let limits = |env: &Env| {
        env.engine
            .pacer(env.integration, Provider::Asana, Lane::General)
            .limits()
            .to_vec()
    };
    assert_eq!(
        limits(&env),
        vec![RateLimit::new(150, Duration::from_secs(60))],
        "no run yet: the documented default"
    );
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(
        limits(&env),
        vec![RateLimit::new(1500, Duration::from_secs(60))]
    );
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings - 'requests_per_minute'",
            &[],
        )
        .await
        .unwrap();
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    assert_eq!(
        limits(&env),
        vec![RateLimit::new(150, Duration::from_secs(60))],
        "the setting removed: back to the default"
    );
}

/// A task removed from one project of a client that has others (t1 leaves "Acme - Website" but
/// stays in "Acme - SEO") still counts for the client: the feed's `removed` takes Acme's share
/// away, and the client's other project, read in full, finds the task and gives it back. Left
/// for good (moved to an unmapped project), it stops counting at the next increment.
#[tokio::test]
async fn asana_task_leaving_one_of_a_clients_projects_still_counts_for_it() {
    let (fake, env) = asana().await;
    // Past the cursor's safety margin: the increments list none of the seeded tasks.
    fake.tick(chrono::Duration::minutes(5));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let full = metrics(&env).await;
    fake.tick(chrono::Duration::hours(1));
    fake.move_task("t1", &["p2"]);
    zixly_testkit::fakes::clear_recorded(&fake.url);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(metrics(&env).await, full, "still Acme's");
    let read_in_full: Vec<String> = zixly_testkit::fakes::recorded(&fake.url)
        .iter()
        .filter(|r| r.path.starts_with("/api/1.0/projects/") && r.status == 200)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(read_in_full, vec!["/api/1.0/projects/p2/tasks"]);

    fake.tick(chrono::Duration::hours(1));
    fake.add_project("ws-1", "p9", "Internal", false);
    env.db
        .superuser()
        .await
        .execute(
            "update integrations set settings = settings || '{\"asana_client_mapping\": \"explicit\", \"asana_projects\": {\"p1\": \"Acme\", \"p2\": \"Acme\", \"p3\": \"Beta\"}}'",
            &[],
        )
        .await
        .unwrap();
    fake.move_task("t1", &["p9"]);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let acme_10: Vec<_> = metrics(&env)
        .await
        .into_iter()
        .filter(|m| m.0 == "Acme" && m.3.starts_with("2024-01-10"))
        .map(|m| (m.2, m.4))
        .collect();
    assert_eq!(
        acme_10,
        vec![
            ("on_time_rate".to_string(), "0".to_string()),
            ("tasks_completed".into(), "1".into()),
            ("tasks_completed_on_time".into(), "0".into()),
        ],
        "t1 (on time) gone, t2 (late) left"
    );
}
