//! Provider dispatch: **the one place that knows which runner syncs which provider.**
//!
//! A runner is `pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) ->
//! Result<RunSummary, SyncError>` in `providers/<name>.rs`. Contract:
//! - fetch everything over HTTP first (through `zixly_connectors`, never SQL), then write: a run
//!   that fails while fetching has written nothing, so [`run`] can restart it from the top after a
//!   token refresh, and a killed run leaves nothing half-done;
//! - write rows only through `zixly_db::loader::load` in `ctx.tenant_id`, with
//!   `LoadOptions { integration_id, cursor, .. }` so the cursor commits with the rows;
//! - removals (voided documents, archived deals) and any other writes through `TenantTx` methods;
//! - idempotent: the same provider state loaded twice writes nothing the second time.
//!
//! A provider answering 401 mid-run (token expired or revoked early) gets one refresh (the rejected
//! token is passed to `tokens::access_token`, which refreshes unless another process already did)
//! and the run restarts; a second 401 is permanent.

pub(crate) mod hubspot;
pub(crate) mod xero;

use std::future::Future;

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
    loop {
        let access = token(rejected.take()).await?;
        let outcome = match ctx.provider {
            Provider::Xero => xero::sync(ctx, &access).await,
            Provider::Hubspot => hubspot::sync(ctx, &access).await,
            // Pipedrive, Asana, MYOB: add `Provider::X => x::sync(ctx, &access).await,` here.
            other => Err(SyncError::Unsupported(other)),
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
            }
            other => return other,
        }
    }
}
