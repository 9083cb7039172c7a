//! `zixly sync PROVIDER --tenant ID [--wait]`: queue a sync of one integration now.
//!
//! Without `--wait` the job is left to the running workers (`zixly up`/`serve`/`worker`). With
//! `--wait` this process also runs a worker until the job is final (completed: exit 0; discarded
//! or cancelled: the error and exit 1). A sync already queued or running for the integration is
//! waited for instead of starting a second one.

use std::process::ExitCode;
use std::time::Duration;

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;
use zixly_connectors::Provider;
use zixly_db::checkpoints::SyncProgress;
use zixly_queue::JobState;

use crate::env::{Database, Global};

#[derive(Args)]
pub struct SyncArgs {
    /// XERO, MYOB, HUBSPOT, PIPEDRIVE or ASANA.
    pub provider: String,
    /// The tenant's id.
    #[arg(long)]
    pub tenant: Uuid,
    /// Run the sync in this process until it finishes, showing its progress; exit 1 when it
    /// fails, 75 when a provider budget pauses it (it resumes later in a running worker).
    #[arg(long)]
    pub wait: bool,
}

/// Exit code of `--wait` when the run is paused by a provider budget (EX_TEMPFAIL).
const PAUSED: u8 = 75;

/// The run's progress: a bar on a terminal (items of the total when the provider tells), else a
/// line whenever a page was committed, at most every 5 seconds.
struct Progress {
    bar: Option<ProgressBar>,
    last_pages: i64,
    last_line: Option<std::time::Instant>,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message("starting");
            bar
        });
        Progress {
            bar,
            last_pages: 0,
            last_line: None,
        }
    }

    fn show(&mut self, p: Option<&SyncProgress>) {
        let Some(p) = p else { return };
        match &self.bar {
            Some(bar) => {
                if let Some(total) = p.items_total.filter(|t| *t > 0) {
                    if bar.length() != Some(total as u64) {
                        bar.set_length(total as u64);
                        bar.set_style(
                            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({elapsed})")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                    }
                    bar.set_position(p.items_read.min(total) as u64);
                }
                bar.set_message(p.describe());
            }
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if p.pages_read != self.last_pages && due {
                    eprintln!("progress: {}", p.describe());
                    self.last_pages = p.pages_read;
                    self.last_line = Some(std::time::Instant::now());
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(global: &Global, args: SyncArgs) -> Result<ExitCode> {
    let provider = Provider::parse(&args.provider).with_context(|| {
        format!(
            "unknown provider `{}` (XERO, MYOB, HUBSPOT, PIPEDRIVE, ASANA)",
            args.provider
        )
    })?;
    let db = Database::open(global, 4).await?;
    let outcome = sync(global, &db, provider, &args).await;
    let closed = db.close().await;
    let code = outcome?;
    closed?;
    Ok(code)
}

async fn sync(
    global: &Global,
    db: &Database,
    provider: Provider,
    args: &SyncArgs,
) -> Result<ExitCode> {
    let tx = db.app.begin_tenant(args.tenant).await?;
    let Some(integration) = tx.integration_by_provider(provider.as_str()).await? else {
        bail!(
            "tenant {} has no {provider} integration; connect it first",
            args.tenant
        );
    };
    if integration.status == "DISABLED" {
        bail!("the {provider} integration is disabled");
    }
    let job = zixly_sync::engine::enqueue_sync(&tx, integration.id).await?;
    // As `POST /api/v1/integrations/{id}/sync` records it, with the CLI as the actor.
    tx.append_audit(&crate::env::cli_audit(
        "integration.sync",
        "integration",
        Some(integration.id.to_string()),
        serde_json::json!({
            "provider": provider.as_str(),
            "job_id": job.id(),
            "already_queued": matches!(job, zixly_db::queue::Enqueued::Duplicate(_)),
        }),
    ))
    .await?;
    tx.commit().await?;
    let job_id = job.id();
    if !args.wait {
        println!(
            "sync of {provider} queued (job {job_id}); a running zixly worker will pick it up"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let worker = super::worker::build(global, db, 2, super::worker::JobArgs::default())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let mut reported = 0;
    let mut progress = Progress::new();
    let state = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(j) = db.system.job(args.tenant, job_id).await? else {
            bail!("the sync job disappeared");
        };
        let tx = db.app.begin_tenant(args.tenant).await?;
        let now = tx.integration(integration.id).await?;
        tx.commit().await?;
        if let Some(now) = &now {
            if let (Some(until), false) = (now.paused_until, j.state.is_final()) {
                progress.finish();
                let _ = stop.send(());
                worker.await.context("worker task")??;
                eprintln!(
                    "sync of {provider} paused until {}: {}",
                    until.format("%Y-%m-%d %H:%M UTC"),
                    now.pause_reason
                        .as_deref()
                        .unwrap_or("the provider's budget is used up")
                );
                eprintln!(
                    "a running zixly worker (up, serve or worker) resumes it then, from where it stopped"
                );
                return Ok(ExitCode::from(PAUSED));
            }
            progress.show(now.progress.as_ref());
        }
        if let Some(errors) = j.errors.as_array() {
            for e in errors.iter().skip(reported) {
                eprintln!(
                    "attempt failed: {}",
                    e.get("error")
                        .and_then(|v| v.as_str())
                        .unwrap_or("unknown error")
                );
            }
            reported = errors.len();
        }
        if j.state.is_final() {
            break j.state;
        }
    };
    progress.finish();
    let _ = stop.send(());
    worker.await.context("worker task")??;
    let tx = db.app.begin_tenant(args.tenant).await?;
    let integration = tx.integration(integration.id).await?;
    tx.commit().await?;
    match state {
        JobState::Completed => {
            println!("sync of {provider} finished");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            let reason = integration
                .and_then(|i| i.last_error)
                .unwrap_or_else(|| "see the errors above".into());
            eprintln!("sync of {provider} {}: {reason}", other.as_str());
            Ok(ExitCode::FAILURE)
        }
    }
}
