//! The `sync` job and the scheduler.
//!
//! Jobs: kind [`SYNC_JOB`], args `{"integration_id": "...", "manual": bool}`, unique key = the
//! integration id (at most one sync per integration queued or running, across all workers).
//!
//! Decisions:
//! - **Who may run.** Scheduled runs only sync ACTIVE integrations; a manual run (API, CLI) also
//!   syncs one in ERROR (the admin retries after fixing the cause). DISABLED never syncs, PENDING
//!   (never connected) fails with "not connected".
//! - **Outcomes.** Success clears `last_error` and `consecutive_failures` and sets
//!   `last_sync_at`. A rate limit snoozes the job for the provider's `Retry-After` without
//!   counting an attempt or a failure. A transient failure (5xx, timeouts, database) counts one
//!   failure and is retried with backoff; after [`SyncConfig::error_after`] consecutive failures
//!   the integration is ERROR and the job is discarded. A permanent failure (`invalid_grant`, 401
//!   after a refresh, other 4xx, unloadable data, provider not configured) sets ERROR at once.
//!   `last_error` is the readable reason; it never contains a token.
//! - **Scheduling.** [`SyncEngine::schedule_due`] runs periodically inside every worker; it
//!   enqueues each ACTIVE integration whose `last_sync_at + sync_interval` has passed and that has
//!   no live job, delayed by a random jitter so that integrations connected together do not all
//!   hit the providers at the same second. Several workers may schedule at once: the unique key
//!   makes the second enqueue a no-op.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use uuid::Uuid;
use zixly_connectors::pace::{documented_limits, Lane, Pacer, RateLimit};
use zixly_connectors::{ConnectorError, Provider, ProviderConfig};
use zixly_crypto::{Keyring, SecretString};
use zixly_db::checkpoints::{OwnedCheckpoint, SyncCheckpoint};
use zixly_db::integrations::Integration;
use zixly_db::loader::{CheckpointWrite, RunPart};
use zixly_db::queries::sync_runs::SyncRunRef;
use zixly_db::queue::{Enqueued, Job, NewJob};
use zixly_db::{AppDb, DbResult, SystemDb, TenantTx};
use zixly_queue::{JobError, Worker};

use crate::{providers, tokens, SyncError};

/// The job kind.
pub const SYNC_JOB: &str = "sync";

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How often the scheduler looks for due integrations.
    pub schedule_every: Duration,
    /// Scheduled jobs start after a random delay up to this long.
    pub max_jitter: Duration,
    /// Consecutive failed attempts before the integration is put in ERROR.
    pub error_after: i32,
    /// Attempts of one job (transient failures).
    pub max_attempts: i32,
    /// Attempts of a resumable run in a row that commit no page before the run stops in ERROR
    /// (instead of snoozing for ever on a provider that keeps refusing).
    pub max_stalled_attempts: i32,
    /// A rate-limit wait longer than this is a spent budget (a day limit): the integration shows
    /// the resume time and the reason until then.
    pub pause_above: Duration,
    /// Request limits per provider instead of the documented ones (benchmarks against a
    /// time-scaled fake; a plan with higher limits).
    pub rate_limits: HashMap<Provider, Vec<RateLimit>>,
    /// The same for the search lane (HubSpot's CRM search limit).
    pub search_rate_limits: HashMap<Provider, Vec<RateLimit>>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            schedule_every: Duration::from_secs(60),
            max_jitter: Duration::from_secs(120),
            error_after: 3,
            max_attempts: 5,
            max_stalled_attempts: 5,
            pause_above: Duration::from_secs(15 * 60),
            rate_limits: HashMap::new(),
            search_rate_limits: HashMap::new(),
        }
    }
}

/// The job's arguments.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct SyncArgs {
    pub integration_id: Uuid,
    #[serde(default)]
    pub manual: bool,
}

/// What one run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    /// The run's one `sync_runs` row (`None` when nothing ran).
    pub sync_run_id: Option<Uuid>,
    pub rows_read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows removed because the provider removed their source (voids, deletions, archived deals).
    pub deleted: u64,
    /// Provider records that could not be mapped (e.g. deals without a company).
    pub skipped: u64,
    /// Set when the run did nothing on purpose (disabled, not active).
    pub not_run: Option<String>,
}

/// Everything a provider runner gets.
pub struct SyncCtx<'a> {
    pub app: &'a AppDb,
    pub http: &'a reqwest::Client,
    pub config: &'a ProviderConfig,
    pub provider: Provider,
    pub tenant_id: Uuid,
    pub integration: &'a Integration,
    /// The cursor of the integration's latest successful run (`{}` when none).
    pub cursor: serde_json::Value,
    /// The unfinished run this attempt resumes (resumable runners only).
    pub checkpoint: Option<SyncCheckpoint>,
    /// The run's one `sync_runs` row, opened by its first committed page: every checkpoint save
    /// and every load of the run names it (`LoadOptions::run`), across all its attempts.
    pub run: SyncRunRef,
    /// The connection's pacer: every request of the run goes through it.
    pub pacer: Arc<Pacer>,
    /// The connection's search lane (HubSpot's CRM search has its own per-second limit).
    pub search_pacer: Arc<Pacer>,
}

impl SyncCtx<'_> {
    /// A string setting of the integration.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.integration.settings.get(key).and_then(|v| v.as_str())
    }

    /// A page load of this run: `next` is the checkpoint to save with it, `None` on the run's
    /// last page, whose load settles the run's row and clears the checkpoint.
    pub(crate) fn page_of_run(&self, next: Option<OwnedCheckpoint>) -> RunPart {
        RunPart {
            run: self.run.clone(),
            last: next.is_none(),
            checkpoint: Some(next.map_or(CheckpointWrite::Clear, CheckpointWrite::Save)),
        }
    }

    /// The load that settles this run while its checkpoint stays until the caller's next
    /// transaction (Xero, MYOB, Asana: dirty days are cleared after the load).
    pub(crate) fn settling_load(&self) -> RunPart {
        RunPart {
            run: self.run.clone(),
            last: true,
            checkpoint: None,
        }
    }

    /// The same run with `checkpoint` as the one it resumes (a restart after a token refresh).
    pub(crate) fn resuming(&self, checkpoint: Option<SyncCheckpoint>) -> Self {
        SyncCtx {
            app: self.app,
            http: self.http,
            config: self.config,
            provider: self.provider,
            tenant_id: self.tenant_id,
            integration: self.integration,
            cursor: self.cursor.clone(),
            checkpoint,
            run: self.run.clone(),
            pacer: self.pacer.clone(),
            search_pacer: self.search_pacer.clone(),
        }
    }
}

/// The dataset a provider's runs load (`sync_runs.dataset`).
pub fn run_dataset(provider: Provider) -> &'static str {
    match provider {
        Provider::Xero | Provider::Myob => "financials",
        Provider::Hubspot | Provider::Pipedrive => "lead_events",
        Provider::Asana => "custom_metrics",
    }
}

/// The integration setting with a connection's own per-minute request limit (Asana: 150 per
/// minute on free workspaces, the default; up to 1,500 on paid ones, contracts/asana.json).
pub const REQUESTS_PER_MINUTE: &str = "requests_per_minute";

/// A `requests_per_minute` setting's value: absent or null is `None`; else an integer in
/// 1..=1500.
pub fn requests_per_minute(value: Option<&serde_json::Value>) -> Result<Option<u32>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1500).contains(n))
            .map(|n| Some(n as u32))
            .ok_or_else(|| format!("must be an integer from 1 to 1500, not {v}")),
    }
}

struct Inner {
    app: AppDb,
    keyring: Arc<Keyring>,
    http: reqwest::Client,
    providers: HashMap<Provider, ProviderConfig>,
    config: SyncConfig,
    /// One pacer per (integration, lane), shared by every worker task of this process (the queue
    /// runs at most one sync per integration across all processes).
    pacers: std::sync::Mutex<HashMap<(Uuid, Lane), Arc<Pacer>>>,
}

/// The sync engine: cheap to clone.
#[derive(Clone)]
pub struct SyncEngine {
    inner: Arc<Inner>,
}

impl SyncEngine {
    pub fn new(
        app: AppDb,
        keyring: Arc<Keyring>,
        providers: Vec<ProviderConfig>,
        config: SyncConfig,
    ) -> SyncEngine {
        SyncEngine {
            inner: Arc::new(Inner {
                app,
                keyring,
                http: zixly_connectors::http_client(),
                providers: providers.into_iter().map(|p| (p.provider, p)).collect(),
                config,
                pacers: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Every provider configured through `ZIXLY_<P>_*` in the process environment.
    pub fn providers_from_env() -> Result<Vec<ProviderConfig>, String> {
        let mut out = Vec::new();
        for p in Provider::ALL {
            if let Some(c) = ProviderConfig::from_env(p)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    pub fn provider_config(&self, provider: Provider) -> Option<&ProviderConfig> {
        self.inner.providers.get(&provider)
    }

    /// The pacer of `integration_id`'s `lane`: the one its runs use (the configured or documented
    /// limits of `provider` until a run has set the connection's own).
    pub fn pacer(&self, integration_id: Uuid, provider: Provider, lane: Lane) -> Arc<Pacer> {
        self.pacer_with(integration_id, provider, lane, None)
    }

    /// The limits of a connection's lane: its own setting (Asana's `requests_per_minute`), else
    /// the configured ones of `provider` (`SyncConfig`), else the documented ones.
    fn limits(&self, integration: &Integration, provider: Provider, lane: Lane) -> Vec<RateLimit> {
        let own = match (provider, lane) {
            (Provider::Asana, Lane::General) => {
                match requests_per_minute(integration.settings.get(REQUESTS_PER_MINUTE)) {
                    Ok(n) => n.map(|n| vec![RateLimit::new(n, Duration::from_secs(60))]),
                    Err(e) => {
                        // Validated where settings are patched; a bad stored value must not stop
                        // syncs: the default is the safe one.
                        tracing::warn!(integration_id = %integration.id, "ignoring settings.{REQUESTS_PER_MINUTE}: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        own.unwrap_or_else(|| self.provider_limits(provider, lane))
    }

    /// The configured limits of `provider`'s lane (`SyncConfig`), else the documented ones.
    fn provider_limits(&self, provider: Provider, lane: Lane) -> Vec<RateLimit> {
        match lane {
            Lane::General => self.inner.config.rate_limits.get(&provider),
            Lane::Search => self.inner.config.search_rate_limits.get(&provider),
        }
        .cloned()
        .unwrap_or_else(|| documented_limits(provider, lane))
    }

    /// The cached pacer, replaced by one of `limits` when they are given and differ (a changed
    /// setting takes effect at the next run; the old pacer's window is forgotten).
    fn pacer_with(
        &self,
        integration_id: Uuid,
        provider: Provider,
        lane: Lane,
        limits: Option<Vec<RateLimit>>,
    ) -> Arc<Pacer> {
        let mut pacers = self.inner.pacers.lock().expect("pacers lock");
        if let Some(p) = pacers.get(&(integration_id, lane)) {
            if limits.as_deref().is_none_or(|l| p.limits() == l) {
                return p.clone();
            }
        }
        let limits = limits.unwrap_or_else(|| self.provider_limits(provider, lane));
        let pacer = Arc::new(Pacer::new(limits));
        pacers.insert((integration_id, lane), pacer.clone());
        pacer
    }

    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.inner.keyring
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Registers the `sync` handler and the scheduler on `worker`.
    pub fn register(&self, worker: &mut Worker, system: SystemDb) {
        let engine = self.clone();
        worker.register(SYNC_JOB, move |job: Job| {
            let engine = engine.clone();
            async move { engine.handle(job).await }
        });
        let engine = self.clone();
        worker.every(self.inner.config.schedule_every, move || {
            let (engine, system) = (engine.clone(), system.clone());
            async move {
                match engine.schedule_due(&system).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(enqueued = n, "scheduled integration syncs"),
                    Err(e) => tracing::warn!(error = %e, "scheduling syncs failed"),
                }
            }
        });
    }

    /// **Cross-tenant.** Enqueues a sync for every due integration; returns how many were new.
    pub async fn schedule_due(&self, system: &SystemDb) -> DbResult<usize> {
        let mut n = 0;
        for due in system.due_integrations().await? {
            let jitter_ms = self.inner.config.max_jitter.as_millis() as i64;
            let delay = if jitter_ms > 0 {
                rand::thread_rng().gen_range(0..=jitter_ms)
            } else {
                0
            };
            let mut job = self.job(due.id, false);
            job.scheduled_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(delay));
            if matches!(
                system.enqueue_job(due.tenant_id, &job).await?,
                Enqueued::New(_)
            ) {
                n += 1;
            }
        }
        Ok(n)
    }

    fn job(&self, integration_id: Uuid, manual: bool) -> NewJob {
        sync_job(integration_id, manual, self.inner.config.max_attempts)
    }

    /// The job handler: one run, its outcome mapped onto the job and the integration.
    async fn handle(&self, job: Job) -> Result<(), JobError> {
        let args: SyncArgs = serde_json::from_value(job.args.clone())
            .map_err(|e| JobError::Discard(anyhow::anyhow!("bad sync job arguments: {e}")))?;
        match self
            .run(job.tenant_id, args.integration_id, args.manual)
            .await
        {
            Ok(summary) => {
                tracing::info!(tenant_id = %job.tenant_id, integration_id = %args.integration_id,
                    inserted = summary.inserted, updated = summary.updated, unchanged = summary.unchanged,
                    deleted = summary.deleted, not_run = ?summary.not_run, "sync finished");
                Ok(())
            }
            Err(SyncError::Connector(ConnectorError::RateLimited { retry_after })) => {
                if retry_after > self.inner.config.pause_above {
                    // A spent budget (a day limit): the admin sees when and why; the checkpoint
                    // makes the resumed run continue where this one stopped.
                    let until = chrono::Utc::now()
                        + chrono::Duration::from_std(retry_after)
                            .unwrap_or(chrono::Duration::days(1));
                    let reason = format!(
                        "the provider's request budget is used up (it asks to wait {}); the sync \
                         resumes at {} from where it stopped",
                        human_wait(retry_after),
                        until.format("%Y-%m-%d %H:%M UTC")
                    );
                    if let Err(e) = self
                        .pause(job.tenant_id, args.integration_id, until, &reason)
                        .await
                    {
                        tracing::warn!(error = %e, "recording an integration's pause failed");
                    }
                    tracing::warn!(tenant_id = %job.tenant_id, integration_id = %args.integration_id,
                        %until, "sync paused: provider budget used up");
                }
                Err(JobError::Snooze(retry_after))
            }
            Err(e) => {
                let permanent = e.is_permanent();
                let now_error = self
                    .record_failure(job.tenant_id, args.integration_id, &e, permanent)
                    .await
                    .unwrap_or(false);
                let err = anyhow::anyhow!("{e}");
                if permanent || now_error {
                    Err(JobError::Discard(err))
                } else {
                    Err(JobError::Retry(err))
                }
            }
        }
    }

    async fn pause(
        &self,
        tenant_id: Uuid,
        integration_id: Uuid,
        until: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> DbResult<()> {
        let tx = self.inner.app.begin_tenant(tenant_id).await?;
        tx.pause_integration(integration_id, until, reason).await?;
        tx.commit().await
    }

    /// Records a failed run; returns whether the integration is now in ERROR.
    async fn record_failure(
        &self,
        tenant_id: Uuid,
        integration_id: Uuid,
        error: &SyncError,
        permanent: bool,
    ) -> DbResult<bool> {
        let tx = self.inner.app.begin_tenant(tenant_id).await?;
        let message = match error {
            SyncError::Connector(ConnectorError::Permanent(m)) if m.contains("invalid_grant") => {
                format!("re-authorisation needed: {error}")
            }
            _ => error.to_string(),
        };
        tx.record_integration_sync(
            integration_id,
            Some(&message),
            permanent,
            self.inner.config.error_after,
        )
        .await?;
        let status = tx.integration(integration_id).await?.map(|i| i.status);
        let error = status.as_deref() == Some("ERROR");
        if error {
            // The engine gives up on the run: its open row says so, with the reason. (A failure
            // that will be retried leaves it open: the retry continues the same run.)
            tx.fail_open_sync_run(integration_id, &message).await?;
        }
        tx.commit().await?;
        Ok(error)
    }

    /// Runs one sync of one integration now, in this task (the job handler's body).
    pub async fn run(
        &self,
        tenant_id: Uuid,
        integration_id: Uuid,
        manual: bool,
    ) -> Result<RunSummary, SyncError> {
        let app = &self.inner.app;
        let tx = app.begin_tenant(tenant_id).await?;
        let Some(integration) = tx.integration(integration_id).await? else {
            tx.commit().await?;
            return Ok(not_run("the integration no longer exists"));
        };
        let cursor = tx.last_sync_cursor(integration_id).await?;
        match integration.status.as_str() {
            "DISABLED" => return Ok(not_run("the integration is disabled")),
            "ACTIVE" => {}
            "ERROR" if manual => {}
            "PENDING" => return Err(SyncError::NotConnected),
            other => return Ok(not_run(&format!("the integration is {other}"))),
        }
        let checkpoint = tx.begin_sync_attempt(integration_id).await?;
        // A resumed run keeps counting into the row its first page opened.
        let open = match &checkpoint {
            Some(_) => tx.open_sync_run(integration_id).await?,
            None => None,
        };
        tx.commit().await?;
        if let Some(c) = checkpoint.as_ref() {
            // Attempts that keep committing nothing end the run in ERROR instead of snoozing for
            // ever (an admin's "sync now" starts a fresh count: `enqueue_sync`).
            if c.stalled_attempts > self.inner.config.max_stalled_attempts {
                return Err(SyncError::NoProgress(format!(
                    "the sync made no progress in {} attempts in a row (stuck at {} after {} \
                     page(s) read since {}); check the provider's status, then sync again to \
                     resume from there",
                    c.stalled_attempts - 1,
                    c.stream.as_deref().unwrap_or("the start"),
                    c.pages_read,
                    c.started_at.format("%Y-%m-%d %H:%M UTC"),
                )));
            }
        }
        let provider = Provider::parse(&integration.provider)
            .ok_or_else(|| SyncError::Load(format!("unknown provider {}", integration.provider)))?;
        let config = self
            .inner
            .providers
            .get(&provider)
            .ok_or(SyncError::NotConfigured(provider))?;
        let run = SyncRunRef {
            id: open.as_ref().map_or_else(Uuid::now_v7, |o| o.id),
            integration_id,
            source: provider.as_str().to_ascii_lowercase(),
            dataset: run_dataset(provider).into(),
            started_at: open.map_or_else(chrono::Utc::now, |o| o.started_at),
        };
        let ctx = SyncCtx {
            app,
            http: &self.inner.http,
            config,
            provider,
            tenant_id,
            integration: &integration,
            cursor: cursor.unwrap_or_else(|| serde_json::json!({})),
            checkpoint,
            run,
            pacer: self.pacer_with(
                integration_id,
                provider,
                Lane::General,
                Some(self.limits(&integration, provider, Lane::General)),
            ),
            search_pacer: self.pacer_with(
                integration_id,
                provider,
                Lane::Search,
                Some(self.limits(&integration, provider, Lane::Search)),
            ),
        };
        let summary = providers::run(&ctx, |rejected| self.token(&ctx, rejected)).await?;
        let tx = app.begin_tenant(tenant_id).await?;
        tx.record_integration_sync(integration_id, None, false, self.inner.config.error_after)
            .await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn token(
        &self,
        ctx: &SyncCtx<'_>,
        rejected: Option<SecretString>,
    ) -> Result<SecretString, SyncError> {
        tokens::access_token(
            ctx.app,
            &self.inner.keyring,
            ctx.http,
            ctx.config,
            ctx.tenant_id,
            ctx.integration.id,
            rejected.as_ref(),
        )
        .await
    }
}

/// "11 h 6 min", "40 min", "20 s".
fn human_wait(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn not_run(reason: &str) -> RunSummary {
    RunSummary {
        not_run: Some(reason.into()),
        ..RunSummary::default()
    }
}

/// The job that syncs `integration_id` (unique per integration).
pub fn sync_job(integration_id: Uuid, manual: bool, max_attempts: i32) -> NewJob {
    NewJob {
        unique_key: Some(integration_id.to_string()),
        max_attempts,
        ..NewJob::new(
            SYNC_JOB,
            serde_json::to_value(SyncArgs {
                integration_id,
                manual,
            })
            .expect("serializable"),
        )
    }
}

/// Enqueues a manual sync in the caller's tenant transaction (API, CLI); a sync already queued or
/// running for the integration is returned as `Enqueued::Duplicate`, and a queued one that has not
/// started (a scheduled run waiting for its jitter) becomes this manual run, due now. An
/// unfinished run's count of attempts without progress starts again.
pub async fn enqueue_sync(tx: &TenantTx, integration_id: Uuid) -> DbResult<Enqueued> {
    let mut job = sync_job(integration_id, true, SyncConfig::default().max_attempts);
    job.priority = 1;
    // The admin asked: a stalled run gets a fresh count of attempts from its checkpoint.
    tx.reset_sync_stall(integration_id).await?;
    tx.enqueue_job(&job).await
}
