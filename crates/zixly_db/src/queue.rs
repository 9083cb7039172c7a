//! SQL of the job queue (table `jobs`, migration 0004). The worker loop lives in `zixly_queue`.
//!
//! Two paths, deliberately separate:
//! - Tenant side ([`TenantTx`]): enqueue a job for the transaction's tenant (transactional enqueue:
//!   the job exists iff the transaction commits), read a job, cancel queued jobs.
//! - Cross-tenant side ([`SystemDb`], owner role): claim, complete, fail, snooze, rescue, clean.
//!   Only the worker uses these; the job body itself then runs in tenant transactions.
//!
//! Every state change of a running job is guarded by `attempt = $n` (the attempt the worker
//! claimed): a worker that lost its job to the rescuer cannot overwrite the new attempt's outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::{SystemDb, TenantTx};

/// The NOTIFY channel the `jobs` insert trigger signals.
pub const CHANNEL: &str = "zixly_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Available,
    Running,
    Retryable,
    Completed,
    Discarded,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "available" => JobState::Available,
            "running" => JobState::Running,
            "retryable" => JobState::Retryable,
            "completed" => JobState::Completed,
            "discarded" => JobState::Discarded,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Completed, discarded or cancelled: the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Discarded | JobState::Cancelled
        )
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub args: serde_json::Value,
    /// At most one live (available, running, retryable) job per tenant, kind and key.
    pub unique_key: Option<String>,
    pub max_attempts: i32,
    /// 1 (first) .. 4.
    pub priority: i16,
    /// `None`: now.
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl NewJob {
    pub fn new(kind: &str, args: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            args,
            unique_key: None,
            max_attempts: 5,
            priority: 2,
            scheduled_at: None,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Job {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub args: serde_json::Value,
    pub state: JobState,
    pub attempt: i32,
    pub max_attempts: i32,
    /// 1 (first) .. 4.
    pub priority: i16,
    pub scheduled_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub unique_key: Option<String>,
    pub errors: serde_json::Value,
}

const JOB_COLUMNS: &str =
    "tenant_id, id, kind, args, state, attempt, max_attempts, scheduled_at, attempted_at, \
                           finalized_at, unique_key, errors, priority";

fn job_from_row(r: &Row) -> Job {
    let state: String = r.get(4);
    Job {
        tenant_id: r.get(0),
        id: r.get(1),
        kind: r.get(2),
        args: r.get(3),
        state: JobState::parse(&state).expect("jobs_state_known constraint"),
        attempt: r.get(5),
        max_attempts: r.get(6),
        scheduled_at: r.get(7),
        attempted_at: r.get(8),
        finalized_at: r.get(9),
        unique_key: r.get(10),
        errors: r.get(11),
        priority: r.get(12),
    }
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    New(Uuid),
    /// A live job with the same unique key already exists (its id).
    Duplicate(Uuid),
}

impl Enqueued {
    pub fn id(self) -> Uuid {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

async fn insert_job(
    client: &tokio_postgres::Client,
    tenant_id: Uuid,
    job: &NewJob,
) -> DbResult<Enqueued> {
    let id = Uuid::now_v7();
    let inserted = client
        .query_opt(
            "insert into jobs (tenant_id, id, kind, args, unique_key, max_attempts, priority, scheduled_at)
             values ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()))
             on conflict (tenant_id, kind, unique_key)
                 where unique_key is not null and state in ('available', 'running', 'retryable')
             do nothing
             returning id",
            &[&tenant_id, &id, &job.kind, &job.args, &job.unique_key, &job.max_attempts, &job.priority, &job.scheduled_at],
        )
        .await
        .ctx("enqueueing a job")?;
    if inserted.is_some() {
        return Ok(Enqueued::New(id));
    }
    // A live duplicate that is still waiting (`available`) is promoted to the new request: it
    // runs no later than asked and, when the new job has the higher priority, with its priority
    // and args (a manual "sync now" must not wait behind a scheduled run queued with jitter).
    // Running jobs, and retryable ones (a backoff or a provider's Retry-After), are left alone,
    // and so is a waiting job the new request would not change (no dead tuple per scheduler tick).
    let existing = client
        .query_opt(
            "with promoted as (
                 update jobs
                    set scheduled_at = least(scheduled_at, coalesce($4, now())),
                        args = case when $5 < priority then $6 else args end,
                        priority = least(priority, $5)
                  where tenant_id = $1 and kind = $2 and unique_key = $3 and state = 'available'
                    and (scheduled_at > coalesce($4, now()) or priority > $5)
                 returning id)
             select id, true from promoted
             union all
             select id, false from jobs where tenant_id = $1 and kind = $2 and unique_key = $3
                and state in ('available', 'running', 'retryable')
             order by 2 desc
             limit 1",
            &[
                &tenant_id,
                &job.kind,
                &job.unique_key,
                &job.scheduled_at,
                &job.priority,
                &job.args,
            ],
        )
        .await
        .ctx("reading the duplicate job")?;
    if existing.as_ref().is_some_and(|r| r.get::<_, bool>(1)) {
        // The insert trigger's wake-up, for a job that may have become due now.
        client
            .execute("select pg_notify('zixly_jobs', '')", &[])
            .await
            .ctx("waking workers")?;
    }
    // The live duplicate may have finished between the two statements: then enqueue again.
    match existing {
        Some(r) => Ok(Enqueued::Duplicate(r.get(0))),
        None => Box::pin(insert_job(client, tenant_id, job)).await,
    }
}

impl TenantTx {
    /// Enqueues a job for this transaction's tenant; it becomes visible to workers on commit.
    pub async fn enqueue_job(&self, job: &NewJob) -> DbResult<Enqueued> {
        insert_job(self.client(), self.tenant_id(), job).await
    }

    pub async fn job(&self, id: Uuid) -> DbResult<Option<Job>> {
        let row = self
            .client()
            .query_opt(
                &format!("select {JOB_COLUMNS} from jobs where tenant_id = $1 and id = $2"),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading a job")?;
        Ok(row.as_ref().map(job_from_row))
    }

    /// Cancels the queued (available or retryable) jobs of a kind and unique key. Running jobs
    /// finish their attempt. Returns how many were cancelled.
    pub async fn cancel_queued_jobs(&self, kind: &str, unique_key: &str) -> DbResult<u64> {
        self.client()
            .execute(
                "update jobs set state = 'cancelled', finalized_at = now()
                  where tenant_id = $1 and kind = $2 and unique_key = $3 and state in ('available', 'retryable')",
                &[&self.tenant_id(), &kind, &unique_key],
            )
            .await
            .ctx("cancelling jobs")
    }
}

/// What the rescuer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rescued {
    pub retried: u64,
    pub discarded: u64,
}

impl SystemDb {
    /// **Cross-tenant.** Enqueues a job for `tenant_id` (CLI and scheduler).
    pub async fn enqueue_job(&self, tenant_id: Uuid, job: &NewJob) -> DbResult<Enqueued> {
        let client = self.pool().get().await?;
        insert_job(&client, tenant_id, job).await
    }

    /// **Cross-tenant.** Reads a job of any tenant (the CLI's `--wait`).
    pub async fn job(&self, tenant_id: Uuid, id: Uuid) -> DbResult<Option<Job>> {
        let client = self.pool().get().await?;
        let row = client
            .query_opt(
                &format!("select {JOB_COLUMNS} from jobs where tenant_id = $1 and id = $2"),
                &[&tenant_id, &id],
            )
            .await
            .ctx("reading a job")?;
        Ok(row.as_ref().map(job_from_row))
    }

    /// **Cross-tenant.** Claims up to `limit` due jobs of the given kinds, of every tenant, in one
    /// statement: `FOR UPDATE SKIP LOCKED` lets concurrent workers claim disjoint sets without
    /// waiting. The claimed jobs are `running` when this returns; run them outside any transaction.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        kinds: &[String],
        limit: i64,
    ) -> DbResult<Vec<Job>> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let client = self.pool().get().await?;
        let rows = client
            .query(
                &format!(
                    "update /* cross-tenant */ jobs j
                        set state = 'running', attempt = j.attempt + 1, attempted_at = now(),
                            attempted_by = $1, heartbeat_at = now()
                       from (select tenant_id, id from jobs
                              where state in ('available', 'retryable') and scheduled_at <= now()
                                and kind = any($2)
                              order by priority, scheduled_at, id
                              limit $3
                              for update skip locked) due
                      where j.tenant_id = due.tenant_id and j.id = due.id
                  returning {}",
                    JOB_COLUMNS
                        .split(", ")
                        .map(|c| format!("j.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&worker, &kinds, &limit],
            )
            .await
            .ctx("claiming jobs")?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// **Cross-tenant.** Records that the worker still runs these attempts.
    pub async fn heartbeat_job(&self, tenant_id: Uuid, id: Uuid, attempt: i32) -> DbResult<bool> {
        let client = self.pool().get().await?;
        let n = client
            .execute(
                "update jobs set heartbeat_at = now()
                  where tenant_id = $1 and id = $2 and attempt = $3 and state = 'running'",
                &[&tenant_id, &id, &attempt],
            )
            .await
            .ctx("job heartbeat")?;
        Ok(n == 1)
    }

    /// **Cross-tenant.** Marks a running attempt completed. False when the attempt is no longer
    /// ours (rescued and reclaimed).
    pub async fn complete_job(&self, tenant_id: Uuid, id: Uuid, attempt: i32) -> DbResult<bool> {
        let client = self.pool().get().await?;
        let n = client
            .execute(
                "update jobs set state = 'completed', finalized_at = now()
                  where tenant_id = $1 and id = $2 and attempt = $3 and state = 'running'",
                &[&tenant_id, &id, &attempt],
            )
            .await
            .ctx("completing a job")?;
        Ok(n == 1)
    }

    /// **Cross-tenant.** Records a failed attempt. With attempts left and `retry_in` given, the job
    /// becomes `retryable` at now() + `retry_in`; otherwise it is `discarded`. Returns the new state.
    pub async fn fail_job(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        attempt: i32,
        error: &str,
        retry_in: Option<Duration>,
    ) -> DbResult<Option<JobState>> {
        let client = self.pool().get().await?;
        let entry = serde_json::json!([{ "attempt": attempt, "at": Utc::now(), "error": error }]);
        let retry_secs: Option<f64> = retry_in.map(|d| d.as_secs_f64());
        let row = client
            .query_opt(
                "update jobs
                    set state = case when $5::float8 is not null and attempt < max_attempts then 'retryable'
                                     else 'discarded' end,
                        scheduled_at = case when $5::float8 is not null and attempt < max_attempts
                                            then now() + make_interval(secs => $5::float8) else scheduled_at end,
                        finalized_at = case when $5::float8 is not null and attempt < max_attempts then null
                                            else now() end,
                        errors = errors || $4
                  where tenant_id = $1 and id = $2 and attempt = $3 and state = 'running'
              returning state",
                &[&tenant_id, &id, &attempt, &entry, &retry_secs],
            )
            .await
            .ctx("recording a failed job")?;
        Ok(row.map(|r| JobState::parse(r.get::<_, &str>(0)).expect("known state")))
    }

    /// **Cross-tenant.** Puts a running attempt back without counting it (rate limited: run again
    /// after `after`; graceful shutdown: `after` = 0).
    pub async fn snooze_job(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        attempt: i32,
        after: Duration,
    ) -> DbResult<bool> {
        let client = self.pool().get().await?;
        let n = client
            .execute(
                "update jobs set state = 'retryable', attempt = attempt - 1,
                                 scheduled_at = now() + make_interval(secs => $4::float8)
                  where tenant_id = $1 and id = $2 and attempt = $3 and state = 'running'",
                &[&tenant_id, &id, &attempt, &after.as_secs_f64()],
            )
            .await
            .ctx("snoozing a job")?;
        Ok(n == 1)
    }

    /// **Cross-tenant.** The rescuer: running jobs whose heartbeat is older than `stale_after`
    /// (their worker died) become retryable now, or discarded when out of attempts.
    pub async fn rescue_stuck_jobs(&self, stale_after: Duration) -> DbResult<Rescued> {
        let client = self.pool().get().await?;
        let entry = serde_json::json!({ "error": "worker stopped heartbeating (rescued)" });
        let rows = client
            .query(
                "update /* cross-tenant */ jobs
                    set state = case when attempt < max_attempts then 'retryable' else 'discarded' end,
                        scheduled_at = now(),
                        finalized_at = case when attempt < max_attempts then null else now() end,
                        errors = errors || jsonb_build_array($2::jsonb || jsonb_build_object('attempt', attempt, 'at', now()))
                  where state = 'running' and heartbeat_at < now() - make_interval(secs => $1::float8)
              returning state",
                &[&stale_after.as_secs_f64(), &entry],
            )
            .await
            .ctx("rescuing stuck jobs")?;
        let mut out = Rescued::default();
        for r in rows {
            if r.get::<_, &str>(0) == "retryable" {
                out.retried += 1;
            } else {
                out.discarded += 1;
            }
        }
        Ok(out)
    }

    /// **Cross-tenant.** Deletes finalized jobs older than `retention`.
    pub async fn clean_finished_jobs(&self, retention: Duration) -> DbResult<u64> {
        let client = self.pool().get().await?;
        client
            .execute(
                "delete /* cross-tenant */ from jobs where finalized_at < now() - make_interval(secs => $1::float8)",
                &[&retention.as_secs_f64()],
            )
            .await
            .ctx("cleaning finished jobs")
    }

    /// **Cross-tenant.** A dedicated connection listening on [`CHANNEL`].
    pub async fn job_listener(&self) -> DbResult<JobListener> {
        let (client, mut connection) = tokio_postgres::connect(self.url(), NoTls)
            .await
            .ctx("connecting to listen for jobs")?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let task = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        // A full channel already holds a wake-up: dropping this one loses nothing.
                        let _ = tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "job listener connection failed; workers fall back to polling");
                        break;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("listen {CHANNEL}"))
            .await
            .ctx("listening for jobs")?;
        Ok(JobListener {
            _client: client,
            rx,
            task,
        })
    }
}

/// Wake-ups from `NOTIFY zixly_jobs`. [`JobListener::notified`] returns `false` once the
/// connection is gone (callers then rely on polling and may reconnect).
pub struct JobListener {
    _client: tokio_postgres::Client,
    rx: tokio::sync::mpsc::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl JobListener {
    pub async fn notified(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}

impl Drop for JobListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
