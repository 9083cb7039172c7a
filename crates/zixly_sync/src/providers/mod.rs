//! Provider dispatch: **the one place that knows which runner syncs which provider.**
//!
//! A runner is `pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) ->
//! Result<RunSummary, SyncError>` in `providers/<name>.rs`. Contract:
//! - fetch over HTTP through `zixly_connectors` (never SQL), page by page, with a checkpoint
//!   committed with each page (`TenantTx::save_sync_checkpoint(&ctx.run, ..)`), resuming from
//!   `ctx.checkpoint`, so a restart after a token refresh, a 429 or a kill resumes there;
//! - write rows only through `zixly_db::loader::load` in `ctx.tenant_id`, with
//!   `LoadOptions { integration_id, cursor, run: Some(RunPart { run: ctx.run, .. }), .. }` so
//!   the cursor commits with the rows and every page counts into the run's one `sync_runs` row
//!   (the last load, `last: true`, settles it);
//! - removals (voided documents, archived deals) and any other writes through `TenantTx` methods;
//! - idempotent: the same provider state loaded twice writes nothing the second time.
//!
//! Runners of providers read incrementally (Pipedrive, Asana, MYOB) take their cursor and the
//! periodic complete read from [`Plan`].
//!
//! A provider answering 401 mid-run (token expired or revoked early) gets one refresh (the rejected
//! token is passed to `tokens::access_token`, which refreshes unless another process already did)
//! and the run restarts from the checkpoint as stored *now* — the pages the attempt committed
//! before the 401 are not read again — into the same `sync_runs` row; a second 401 is permanent.

pub(crate) mod asana;
pub(crate) mod contributions;
pub(crate) mod hubspot;
pub(crate) mod myob;
pub(crate) mod pipedrive;
pub(crate) mod xero;

use std::future::Future;

use chrono::{DateTime, Utc};

use zixly_connectors::{ConnectorError, Provider};
use zixly_crypto::SecretString;

use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

/// Runs `ctx.provider`'s runner with a token from `token(rejected)`.
pub async fn run<F, Fut>(ctx: &SyncCtx<'_>, token: F) -> Result<RunSummary, SyncError>
where
    F: Fn(Option<SecretString>) -> Fut,
    Fut: Future<Output = Result<SecretString, SyncError>>,
{
    let mut rejected: Option<SecretString> = None;
    let mut refreshed = false;
    // After a refresh: the same run, resumed from the checkpoint its pages committed since.
    let mut restarted: Option<SyncCtx<'_>> = None;
    loop {
        let access = token(rejected.take()).await?;
        let ctx = restarted.as_ref().unwrap_or(ctx);
        let outcome = match ctx.provider {
            Provider::Xero => xero::sync(ctx, &access).await,
            Provider::Hubspot => hubspot::sync(ctx, &access).await,
            Provider::Pipedrive => pipedrive::sync(ctx, &access).await,
            Provider::Asana => asana::sync(ctx, &access).await,
            Provider::Myob => myob::sync(ctx, &access).await,
        };
        match outcome {
            Err(SyncError::Connector(ConnectorError::Unauthorized(m))) => {
                if refreshed {
                    return Err(SyncError::Connector(ConnectorError::Permanent(format!(
                        "the provider rejects a freshly refreshed token ({m}); connect again"
                    ))));
                }
                tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                    "access token rejected mid-sync; refreshing and restarting the run");
                refreshed = true;
                rejected = Some(access);
                // Read-only: this is the same attempt, so `stalled_attempts` is not counted again.
                let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
                let checkpoint = tx.sync_checkpoint(ctx.integration.id).await?;
                tx.commit().await?;
                let next = ctx.resuming(checkpoint);
                restarted = Some(next);
            }
            other => return other,
        }
    }
}

/// Hours between complete reads of a provider read incrementally (`settings.full_sync_hours`).
pub const DEFAULT_FULL_SYNC_HOURS: i64 = 24;

/// What an incremental provider reads this run, from the cursor `{"modified_since": RFC 3339,
/// "full_at": RFC 3339}`: the changes since `modified_since`, or everything (`since: None`) when
/// there is no cursor yet or the last complete read is older than `settings.full_sync_hours`.
/// Complete reads catch what increments cannot see (MYOB deletions, Pipedrive deals rotting
/// without an update, Asana changes made while a project's events token was expired).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub since: Option<DateTime<Utc>>,
    /// When the latest complete read started (now, on a complete read).
    pub full_at: DateTime<Utc>,
}

impl Plan {
    pub(crate) fn new(ctx: &SyncCtx<'_>, now: DateTime<Utc>) -> Plan {
        let time = |k: &str| {
            ctx.cursor
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
        };
        let hours = ctx
            .integration
            .settings
            .get("full_sync_hours")
            .and_then(|v| v.as_i64())
            .unwrap_or(DEFAULT_FULL_SYNC_HOURS);
        match (time("modified_since"), time("full_at")) {
            (Some(since), Some(full_at)) if now - full_at < chrono::Duration::hours(hours) => {
                Plan {
                    since: Some(since),
                    full_at,
                }
            }
            _ => Plan {
                since: None,
                full_at: now,
            },
        }
    }

    /// The cursor to store with this run's rows.
    pub(crate) fn cursor(&self, next: Option<DateTime<Utc>>) -> serde_json::Value {
        let mut c = serde_json::json!({"full_at": self.full_at.to_rfc3339()});
        if let Some(n) = next.or(self.since) {
            c["modified_since"] = serde_json::json!(n.to_rfc3339());
        }
        c
    }
}
