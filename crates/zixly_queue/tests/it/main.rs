//! Queue tests against a real PostgreSQL (one database per test).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zixly_queue::{Enqueued, Job, JobError, JobState, NewJob, Worker, WorkerConfig};
use zixly_testkit::TestDb;

fn config() -> WorkerConfig {
    WorkerConfig {
        name: "test-worker".into(),
        concurrency: 2,
        poll_interval: Duration::from_secs(3600),
        heartbeat_interval: Duration::from_millis(200),
        rescue_after: Duration::from_secs(3600),
        shutdown_grace: Duration::from_millis(200),
        retention: Duration::from_secs(3600),
    }
}

async fn enqueue(db: &TestDb, tenant: uuid::Uuid, job: NewJob) -> Enqueued {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let e = tx.enqueue_job(&job).await.unwrap();
    tx.commit().await.unwrap();
    e
}

async fn job(db: &TestDb, tenant: uuid::Uuid, id: uuid::Uuid) -> Job {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let j = tx
        .job(id)
        .await
        .unwrap()
        .expect("job exists for its tenant");
    tx.commit().await.unwrap();
    j
}

#[tokio::test]
async fn a_job_runs_once_and_completes() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let id = enqueue(&db, tenant, NewJob::new("echo", json!({"n": 1})))
        .await
        .id();
    let seen = Arc::new(AtomicUsize::new(0));
    let mut worker = Worker::new(db.system.clone(), config());
    let s = seen.clone();
    worker.register("echo", move |job: Job| {
        let s = s.clone();
        async move {
            assert_eq!(job.args, json!({"n": 1}));
            s.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(worker.run_until_idle().await.unwrap(), 0);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let j = job(&db, tenant, id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.attempt, 1);
    assert!(j.finalized_at.is_some());
}

#[tokio::test]
async fn unique_jobs_dedupe_while_live_only() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let other = db.tenant("B").await;
    let mut j = NewJob::new("sync", json!({}));
    j.unique_key = Some("integration-1".into());
    let first = enqueue(&db, tenant, j.clone()).await;
    assert!(matches!(first, Enqueued::New(_)));
    assert_eq!(
        enqueue(&db, tenant, j.clone()).await,
        Enqueued::Duplicate(first.id())
    );
    // Another tenant has its own key space.
    assert!(matches!(
        enqueue(&db, other, j.clone()).await,
        Enqueued::New(_)
    ));
    let mut worker = Worker::new(db.system.clone(), config());
    worker.register("sync", |_job: Job| async { Ok(()) });
    worker.run_until_idle().await.unwrap();
    // Finished: a new one may be queued.
    assert!(matches!(enqueue(&db, tenant, j).await, Enqueued::New(id) if id != first.id()));
}

/// A waiting duplicate is promoted by a more urgent request (a manual "sync now" behind a
/// scheduled run queued minutes ahead with jitter) and never demoted by a later, lazier one.
#[tokio::test]
async fn a_waiting_duplicate_is_promoted_by_a_more_urgent_request_only() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(2);
    let mut scheduled = NewJob::new("sync", json!({"manual": false}));
    scheduled.unique_key = Some("integration-1".into());
    scheduled.priority = 2;
    scheduled.scheduled_at = Some(later);
    let id = enqueue(&db, tenant, scheduled.clone()).await.id();

    let mut manual = NewJob::new("sync", json!({"manual": true}));
    manual.unique_key = Some("integration-1".into());
    manual.priority = 1;
    assert_eq!(enqueue(&db, tenant, manual).await, Enqueued::Duplicate(id));
    let j = job(&db, tenant, id).await;
    assert_eq!(j.priority, 1);
    assert_eq!(j.args, json!({"manual": true}));
    assert!(
        j.scheduled_at <= chrono::Utc::now(),
        "due now: {}",
        j.scheduled_at
    );

    // The scheduler asking again later changes nothing.
    assert_eq!(
        enqueue(&db, tenant, scheduled).await,
        Enqueued::Duplicate(id)
    );
    let again = job(&db, tenant, id).await;
    assert_eq!(
        (again.priority, again.args, again.scheduled_at),
        (1, json!({"manual": true}), j.scheduled_at)
    );

    // Runs once, as the manual job.
    let mut worker = Worker::new(db.system.clone(), config());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    worker.register("sync", move |job: Job| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(job.args);
            Ok(())
        }
    });
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![json!({"manual": true})]);
}

#[tokio::test]
async fn failures_retry_with_backoff_then_discard() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let mut j = NewJob::new("flaky", json!({}));
    j.max_attempts = 2;
    let id = enqueue(&db, tenant, j).await.id();
    let mut worker = Worker::new(db.system.clone(), config());
    worker.register("flaky", |_job: Job| async {
        Err(JobError::Retry(anyhow::anyhow!("upstream 503")))
    });
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let after_first = job(&db, tenant, id).await;
    assert_eq!(after_first.state, JobState::Retryable);
    assert!(
        after_first.scheduled_at > after_first.attempted_at.unwrap(),
        "backoff pushes the next run later"
    );
    assert_eq!(after_first.errors[0]["error"], "upstream 503");
    // Not due yet.
    assert_eq!(worker.run_until_idle().await.unwrap(), 0);
    // Make it due, run again: out of attempts.
    db.superuser()
        .await
        .execute("update jobs set scheduled_at = now() where id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let last = job(&db, tenant, id).await;
    assert_eq!(last.state, JobState::Discarded);
    assert_eq!(last.errors.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn permanent_errors_discard_and_snoozes_do_not_count() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let perm = enqueue(&db, tenant, NewJob::new("perm", json!({})))
        .await
        .id();
    let snoozy = enqueue(&db, tenant, NewJob::new("snooze", json!({})))
        .await
        .id();
    let mut worker = Worker::new(db.system.clone(), config());
    worker.register("perm", |_job: Job| async {
        Err(JobError::Discard(anyhow::anyhow!("invalid_grant")))
    });
    worker.register("snooze", |_job: Job| async {
        Err(JobError::Snooze(Duration::from_secs(60)))
    });
    worker.run_until_idle().await.unwrap();
    assert_eq!(job(&db, tenant, perm).await.state, JobState::Discarded);
    let s = job(&db, tenant, snoozy).await;
    assert_eq!((s.state, s.attempt), (JobState::Retryable, 0));
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    for n in 0..20 {
        enqueue(&db, tenant, NewJob::new("k", json!({ "n": n }))).await;
    }
    let kinds = vec!["k".to_string()];
    let claims = futures_util::future::join_all((0..4).map(|w| {
        let (sys, kinds) = (db.system.clone(), kinds.clone());
        async move { sys.claim_jobs(&format!("w{w}"), &kinds, 7).await.unwrap() }
    }))
    .await;
    let mut ids: Vec<_> = claims.iter().flatten().map(|j| j.id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a job was claimed twice");
    assert_eq!(total, 20);
}

#[tokio::test]
async fn the_rescuer_requeues_jobs_of_dead_workers_and_fences_them_off() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let id = enqueue(&db, tenant, NewJob::new("k", json!({}))).await.id();
    let claimed = db
        .system
        .claim_jobs("dead-worker", &["k".into()], 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Fresh heartbeat: nothing to rescue.
    assert_eq!(
        db.system
            .rescue_stuck_jobs(Duration::from_secs(60))
            .await
            .unwrap()
            .retried,
        0
    );
    db.superuser()
        .await
        .execute(
            "update jobs set heartbeat_at = now() - interval '10 minutes' where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        db.system
            .rescue_stuck_jobs(Duration::from_secs(60))
            .await
            .unwrap()
            .retried,
        1
    );
    assert_eq!(job(&db, tenant, id).await.state, JobState::Retryable);
    let again = db
        .system
        .claim_jobs("new-worker", &["k".into()], 1)
        .await
        .unwrap();
    assert_eq!(again[0].attempt, 2);
    // The dead worker comes back: its attempt is no longer current.
    assert!(!db.system.complete_job(tenant, id, 1).await.unwrap());
    assert!(db.system.complete_job(tenant, id, 2).await.unwrap());
}

#[tokio::test]
async fn states_are_enforced_by_constraints_and_jobs_are_tenant_isolated() {
    let db = TestDb::new().await;
    let a = db.tenant("A").await;
    let b = db.tenant("B").await;
    let id = enqueue(&db, a, NewJob::new("k", json!({}))).await.id();
    let su = db.superuser().await;
    for bad in [
        "update jobs set state = 'exploded' where id = $1",
        "update jobs set state = 'completed' where id = $1",
        "update jobs set state = 'running' where id = $1",
        "update jobs set finalized_at = now() where id = $1",
    ] {
        let err = su.execute(bad, &[&id]).await.expect_err(bad);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
            "{bad}"
        );
    }
    let tx = db.app.begin_tenant(b).await.unwrap();
    assert!(tx.job(id).await.unwrap().is_none());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_notify_wakes_the_worker_and_shutdown_requeues_unfinished_jobs() {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(4);
    let mut worker = Worker::new(db.system.clone(), config());
    worker.register("quick", move |_job: Job| {
        let done = done_tx.clone();
        async move {
            done.send(()).await.unwrap();
            Ok(())
        }
    });
    worker.register("forever", |_job: Job| async {
        std::future::pending::<()>().await;
        Ok(())
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stop_rx.await;
    }));
    // Give the worker time to LISTEN is not needed for correctness: a job enqueued before LISTEN
    // is claimed by the first claim round. The poll interval is an hour, so only the start-up claim
    // or a NOTIFY can run these.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = enqueue(&db, tenant, NewJob::new("quick", json!({})))
        .await
        .id();
    tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
        .await
        .expect("the NOTIFY woke the worker");
    let stuck = enqueue(&db, tenant, NewJob::new("forever", json!({})))
        .await
        .id();
    // Wait until it runs.
    for _ in 0..300 {
        if job(&db, tenant, stuck).await.state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job(&db, tenant, stuck).await.state, JobState::Running);
    stop_tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
    for _ in 0..100 {
        if job(&db, tenant, quick).await.state == JobState::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job(&db, tenant, quick).await.state, JobState::Completed);
    let s = job(&db, tenant, stuck).await;
    assert_eq!(
        (s.state, s.attempt),
        (JobState::Retryable, 0),
        "shutdown put the unfinished job back uncounted"
    );
}
