//! `zixly_queue` — background jobs on PostgreSQL (table `jobs`, see migrations/0004_jobs.sql).
//!
//! Layout: [`Worker`] claims due jobs of the kinds it has [`Handler`]s for (through
//! [`zixly_db::SystemDb`], across tenants, one `FOR UPDATE SKIP LOCKED` statement), runs each in its
//! own task outside any transaction while heart-beating, and records the outcome. The same loop runs
//! the maintenance duties: the rescuer (running jobs whose heartbeat stopped go back to retryable),
//! the sync-run sweep (`running` runs whose process died become `interrupted`), the cleaner
//! (finalized jobs past retention are deleted) and registered periodic tasks (the sync
//! scheduler). It wakes on `NOTIFY zixly_jobs` and polls as a fallback.
//!
//! Invariants:
//! - A job may run more than once (crash after the work, before `completed`); handlers are
//!   idempotent. An attempt's outcome is recorded only if the attempt is still ours.
//! - Graceful shutdown: stop claiming, let running jobs finish within the grace period, then abort
//!   the rest and put them back (`retryable`, not counted as an attempt).
//! - Handler errors are stored in `jobs.errors`: they must not contain secrets.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;
pub use zixly_db::queue::{Enqueued, Job, JobState, NewJob};
use zixly_db::SystemDb;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How a job attempt failed, which decides what happens next.
#[derive(Debug)]
pub enum JobError {
    /// Transient: retry after exponential backoff with jitter (counts as an attempt).
    Retry(anyhow::Error),
    /// Transient with a known wait (e.g. a provider's Retry-After); counts as an attempt.
    RetryAfter(Duration, anyhow::Error),
    /// Not a failure: run again after the wait without counting an attempt.
    Snooze(Duration),
    /// Permanent: do not retry.
    Discard(anyhow::Error),
}

/// The code that runs jobs of one kind.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, job: Job) -> BoxFuture<Result<(), JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run(&self, job: Job) -> BoxFuture<Result<(), JobError>> {
        Box::pin(self(job))
    }
}

/// `attempt^4` seconds (river's curve: 1 s, 16 s, 81 s, 256 s, ...) capped at one hour, plus up to
/// 10% random jitter so retries of many jobs do not arrive together.
pub fn backoff(attempt: i32) -> Duration {
    let base = f64::from(attempt.clamp(1, 100)).powi(4).min(3600.0);
    let jitter = rand::thread_rng().gen_range(0.0..=base * 0.1);
    Duration::from_secs_f64(base + jitter)
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Recorded in `jobs.attempted_by`.
    pub name: String,
    /// Jobs run at the same time by this worker.
    pub concurrency: usize,
    /// Fallback polling period when no NOTIFY arrives.
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A running job without a heartbeat for this long is rescued. Must exceed `heartbeat_interval`
    /// by a good margin.
    pub rescue_after: Duration,
    /// How long shutdown waits for running jobs before aborting them.
    pub shutdown_grace: Duration,
    /// Finalized jobs are deleted after this long.
    pub retention: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: format!("{}-{}", hostname(), std::process::id()),
            concurrency: 4,
            poll_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(10),
            rescue_after: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(20),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "zixly".into())
}

type Periodic = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

/// A worker: handlers by kind plus periodic tasks.
pub struct Worker {
    db: SystemDb,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn Handler>>,
    periodic: Vec<(Duration, Periodic)>,
}

/// The attempts this worker is running: (tenant, job) -> attempt.
type InFlight = Arc<Mutex<HashMap<(Uuid, Uuid), i32>>>;

impl Worker {
    pub fn new(db: SystemDb, config: WorkerConfig) -> Worker {
        Worker {
            db,
            config,
            handlers: HashMap::new(),
            periodic: Vec::new(),
        }
    }

    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Runs `task` every `every` (first run right at start) inside the worker loop.
    pub fn every<F, Fut>(&mut self, every: Duration, task: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.periodic
            .push((every, Arc::new(move || Box::pin(task()) as BoxFuture<()>)));
        self
    }

    fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    /// Claims and runs jobs until no due job is left (tests and `zixly sync --wait` in-process).
    /// Returns the number of attempts run.
    pub async fn run_until_idle(&self) -> anyhow::Result<usize> {
        let kinds = self.kinds();
        let mut total = 0;
        loop {
            let jobs = self
                .db
                .claim_jobs(&self.config.name, &kinds, self.config.concurrency as i64)
                .await?;
            if jobs.is_empty() {
                return Ok(total);
            }
            total += jobs.len();
            let mut set = JoinSet::new();
            for job in jobs {
                set.spawn(run_one(
                    self.db.clone(),
                    self.handler(&job.kind),
                    job,
                    self.config.heartbeat_interval,
                ));
            }
            while set.join_next().await.is_some() {}
        }
    }

    fn handler(&self, kind: &str) -> Arc<dyn Handler> {
        self.handlers
            .get(kind)
            .cloned()
            .expect("claimed only kinds with a handler")
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let kinds = self.kinds();
        let config = self.config.clone();
        tracing::info!(worker = %config.name, ?kinds, concurrency = config.concurrency, "job worker started");
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let in_flight: InFlight = Arc::default();
        let mut tasks = JoinSet::new();
        let mut listener = self
            .db
            .job_listener()
            .await
            .map_err(|e| tracing::warn!(error = %e, "LISTEN failed; polling only"))
            .ok();
        let mut rescue = tokio::time::interval(config.rescue_after / 2);
        let mut clean = tokio::time::interval(Duration::from_secs(3600));
        let mut periodic: Vec<(tokio::time::Interval, Periodic)> = self
            .periodic
            .iter()
            .map(|(every, f)| (tokio::time::interval(*every), f.clone()))
            .collect();
        let mut poll = tokio::time::interval(config.poll_interval);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut claim_now = true;

        loop {
            if claim_now && !kinds.is_empty() {
                let free = slots.available_permits();
                if free > 0 {
                    match self.db.claim_jobs(&config.name, &kinds, free as i64).await {
                        Ok(jobs) => {
                            let full = jobs.len() == free;
                            for job in jobs {
                                let permit = slots
                                    .clone()
                                    .try_acquire_owned()
                                    .expect("counted free slots");
                                in_flight
                                    .lock()
                                    .unwrap()
                                    .insert((job.tenant_id, job.id), job.attempt);
                                let (db, handler, hb, in_flight) = (
                                    self.db.clone(),
                                    self.handler(&job.kind),
                                    config.heartbeat_interval,
                                    in_flight.clone(),
                                );
                                tasks.spawn(async move {
                                    let key = (job.tenant_id, job.id);
                                    run_one(db, handler, job, hb).await;
                                    in_flight.lock().unwrap().remove(&key);
                                    drop(permit);
                                });
                            }
                            // A full batch suggests more are due: claim again when a slot frees.
                            claim_now = full && slots.available_permits() > 0;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming jobs failed");
                            claim_now = false;
                        }
                    }
                } else {
                    claim_now = false;
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => claim_now = true,
                alive = async { listener.as_mut().expect("guarded").notified().await }, if listener.is_some() => {
                    if alive {
                        claim_now = true;
                    } else {
                        listener = None;
                    }
                }
                _ = poll.tick() => {
                    claim_now = true;
                    if listener.is_none() {
                        listener = self.db.job_listener().await.ok();
                    }
                }
                _ = rescue.tick() => {
                    match self.db.rescue_stuck_jobs(config.rescue_after).await {
                        Ok(r) if r.retried + r.discarded > 0 => {
                            tracing::warn!(retried = r.retried, discarded = r.discarded, "rescued jobs of a dead worker");
                            claim_now = true;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "rescuer failed"),
                    }
                    // The loads of a dead worker (or of any dead process) leave `running` runs.
                    interrupt_orphaned_sync_runs(&self.db).await;
                }
                _ = clean.tick() => if let Err(e) = self.db.clean_finished_jobs(config.retention).await {
                    tracing::warn!(error = %e, "cleaning finished jobs failed");
                },
                i = next_periodic(&mut periodic), if !periodic.is_empty() => {
                    (periodic[i].1)().await;
                    claim_now = true;
                }
            }
        }

        tracing::info!(
            running = tasks.len(),
            "job worker stopping: waiting for running jobs"
        );
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let left: Vec<((Uuid, Uuid), i32)> = in_flight.lock().unwrap().drain().collect();
            for ((tenant_id, id), attempt) in left {
                // Put it back now rather than waiting for the rescuer.
                match self
                    .db
                    .snooze_job(tenant_id, id, attempt, Duration::ZERO)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(%tenant_id, job_id = %id, "job interrupted by shutdown; requeued")
                    }
                    Err(e) => {
                        tracing::warn!(%tenant_id, job_id = %id, error = %e, "could not requeue; the rescuer will")
                    }
                }
            }
        }
        tracing::info!("job worker stopped");
        Ok(())
    }
}

/// Marks `interrupted` the `running` sync runs whose process is gone (their loading session
/// ended: see `zixly_db::queries::sync_runs`), across tenants, and logs them. A healthy load, however
/// long, is never marked. Runs with the rescuer, and at the start of `up`, `serve` and `worker`.
/// Returns how many were marked (0 when the database is unreachable: it is logged and retried on
/// the next round).
pub async fn interrupt_orphaned_sync_runs(db: &SystemDb) -> usize {
    match db.interrupt_orphaned_sync_runs().await {
        Ok(runs) => {
            for run in &runs {
                tracing::warn!(tenant_id = %run.tenant_id, sync_run_id = %run.id, "sync run interrupted: the process running it is gone");
            }
            runs.len()
        }
        Err(e) => {
            tracing::warn!(error = %e, "marking interrupted sync runs failed");
            0
        }
    }
}

async fn next_periodic(periodic: &mut [(tokio::time::Interval, Periodic)]) -> usize {
    let ticks = periodic.iter_mut().map(|(i, _)| Box::pin(i.tick()));
    let (_, index, _) = futures_util::future::select_all(ticks).await;
    index
}

/// Runs one claimed attempt with heartbeats and records its outcome.
async fn run_one(db: SystemDb, handler: Arc<dyn Handler>, job: Job, heartbeat: Duration) {
    let (tenant_id, id, attempt, kind) = (job.tenant_id, job.id, job.attempt, job.kind.clone());
    let span = tracing::info_span!("job", %tenant_id, job_id = %id, %kind, attempt);
    let work = std::panic::AssertUnwindSafe(handler.run(job)).catch_unwind();
    let mut work = std::pin::pin!(work);
    let mut beat = tokio::time::interval(heartbeat);
    beat.tick().await;
    let outcome = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = beat.tick() => {
                if let Err(e) = db.heartbeat_job(tenant_id, id, attempt).await {
                    tracing::warn!(parent: &span, error = %e, "heartbeat failed");
                }
            }
        }
    };
    let recorded = match outcome {
        Ok(Ok(())) => db
            .complete_job(tenant_id, id, attempt)
            .await
            .map(|ok| ok.then_some(JobState::Completed)),
        Ok(Err(JobError::Retry(e))) => {
            tracing::warn!(parent: &span, error = %format!("{e:#}"), "job failed; will retry");
            db.fail_job(
                tenant_id,
                id,
                attempt,
                &format!("{e:#}"),
                Some(backoff(attempt)),
            )
            .await
        }
        Ok(Err(JobError::RetryAfter(wait, e))) => {
            tracing::warn!(parent: &span, error = %format!("{e:#}"), wait_s = wait.as_secs(), "job failed; will retry");
            db.fail_job(tenant_id, id, attempt, &format!("{e:#}"), Some(wait))
                .await
        }
        Ok(Err(JobError::Snooze(wait))) => db
            .snooze_job(tenant_id, id, attempt, wait)
            .await
            .map(|ok| ok.then_some(JobState::Retryable)),
        Ok(Err(JobError::Discard(e))) => {
            tracing::warn!(parent: &span, error = %format!("{e:#}"), "job failed permanently");
            db.fail_job(tenant_id, id, attempt, &format!("{e:#}"), None)
                .await
        }
        Err(_) => {
            tracing::error!(parent: &span, "job panicked");
            db.fail_job(
                tenant_id,
                id,
                attempt,
                "the job panicked",
                Some(backoff(attempt)),
            )
            .await
        }
    };
    match recorded {
        Ok(Some(state)) => {
            tracing::debug!(parent: &span, state = state.as_str(), "job attempt recorded")
        }
        Ok(None) => {
            tracing::warn!(parent: &span, "attempt no longer ours (rescued meanwhile); outcome dropped")
        }
        Err(e) => {
            tracing::warn!(parent: &span, error = %e, "recording the job outcome failed; the rescuer will retry it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_bounded_jitter() {
        for (attempt, base) in [(1, 1.0), (2, 16.0), (3, 81.0), (10, 3600.0)] {
            let d = backoff(attempt).as_secs_f64();
            assert!(
                d >= base && d <= base * 1.1 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
    }
}
