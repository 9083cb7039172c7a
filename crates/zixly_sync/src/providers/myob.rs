//! MYOB AccountRight runner: the Xero mapping (the connector's per-document
//! `xero::Contribution`s) through the shared contribution bookkeeping
//! (`providers/contributions.rs`).
//!
//! Decisions (issue 5):
//! - **Company file**: `settings.myob_business_id` (the redirect's `businessId`, which needs
//!   `prompt=consent`), checked through `GET {api}/{businessId}/`; only legacy keys without it
//!   fall back to the company-file list (empty for keys issued since March 2025).
//! - **Incremental** through `$filter=LastModified ge` the cursor's `modified_since` (the
//!   provider's clock). MYOB lists no deletions: a complete read (the first run, then every
//!   `settings.full_sync_hours`, default 24, [`super::Plan`]) replaces every document this
//!   integration holds, so documents it no longer lists lose their contributions and emptied days
//!   are removed. Between complete reads a deleted document still counts.
//! - **Currency**: amounts are the company file's local currency; the API documents no call
//!   that names it, so it is `settings.base_currency` (ISO 4217), by default the tenant's base
//!   currency. Reports convert a different one through `fx_rates`.
//! - On an increment, a document that lost every contribution it had (a bill whose lines were
//!   moved off all jobs) is not listed among the contributions and keeps its old ones until the
//!   next complete read.

use std::collections::HashMap;

use chrono::Utc;
use zixly_connectors::myob::{self, MyobClient};
use zixly_crypto::SecretString;

use super::contributions::{self, Documents};
use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "myob";

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    // 1. Fetch (no writes).
    let api = ctx.config.api_url.as_str();
    let key = ctx.config.client_id.as_str();
    let business_id = match ctx.setting("myob_business_id") {
        // The redirect's businessId, checked through the file's own endpoint: keys issued
        // since March 2025 get an empty company-file list.
        Some(id) => {
            myob::company_file(ctx.http, api, key, token, id)
                .await?
                .company_file
                .id
        }
        // Legacy keys connected before businessId was kept: the only file of the list.
        None => {
            let files = myob::company_files(ctx.http, api, key, token).await?;
            myob::choose_company_file(&files, None)
                .map_err(|e| match e {
                    zixly_connectors::ConnectorError::Permanent(m) => {
                        zixly_connectors::ConnectorError::Permanent(format!(
                            "{m}; reconnect MYOB so that the company file (businessId) is recorded"
                        ))
                    }
                    e => e,
                })?
                .id
        }
    };
    let client = MyobClient::new(ctx.http.clone(), api, key, token.clone(), &business_id);
    let now = Utc::now();
    let plan = Plan::new(ctx, now);
    let read = client.read(plan.since, now).await?;
    let names: HashMap<String, String> = read
        .clients
        .iter()
        .filter_map(|c| c.name.clone().map(|n| (c.client_id.clone(), n)))
        .collect();
    let mut documents: Vec<String> = read
        .contributions
        .iter()
        .map(|c| c.document_id.clone())
        .collect();
    documents.sort_unstable();
    documents.dedup();

    // 2. Contributions, recomputed days, load with the cursor, emptied days removed.
    let documents = if read.complete {
        Documents::AllAnd(&documents)
    } else {
        Documents::These(&documents)
    };
    contributions::apply(
        ctx,
        SOURCE,
        documents,
        &read.contributions,
        &names,
        ctx.setting("base_currency"),
        plan.cursor(read.cursor),
        read.contributions.len() as u64,
    )
    .await
}
