//! `zixly sync PROVIDER --tenant ID [--wait]`: queue a sync of one integration now.
//!
//! Without `--wait` the job is left to the running workers (`zixly up`/`serve`/`worker`). With
//! `--wait` this process also runs a worker until the job is final (completed: exit 0; discarded
//! or cancelled: the error and exit 1). A sync already queued or running for the integration is
//! waited for instead of starting a second one.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use uuid::Uuid;
use zixly_connectors::Provider;
use zixly_queue::JobState;

use crate::env::{Database, Global};

#[derive(Args)]
pub struct SyncArgs {
    /// XERO, MYOB, HUBSPOT, PIPEDRIVE or ASANA.
    pub provider: String,
    /// The tenant's id.
    #[arg(long)]
    pub tenant: Uuid,
    /// Run the sync in this process until it finishes; exit non-zero when it fails.
    #[arg(long)]
    pub wait: bool,
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
    let state = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(j) = db.system.job(args.tenant, job_id).await? else {
            bail!("the sync job disappeared");
        };
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
