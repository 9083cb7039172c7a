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
//! - **Resumable, paced** (issue 10): the document streams ([`STREAMS`]: invoices, the bill
//!   layouts that carry lines, customer payments, receive and spend money) are read in order, page
//!   by page following `NextPageLink`. Each page's contributions and the run's checkpoint
//!   (`{plan, stream, next, horizon}`) commit in one transaction, so an attempt stopped by a rate
//!   limit, a crash or a kill resumes at the page where it stopped. Customers and jobs are re-read
//!   by every attempt. A complete read records page by page too; the documents it did not list
//!   (no contribution stored since the run's checkpoint started) lose theirs only when every
//!   stream is read, then the dirty days are settled with the cursor. Every request goes through
//!   the connection's pacer (8 calls/s per API key; MYOB documents no rate-limit headers).
//! - Every listed document replaces its contributions, so one that lost all of them (a bill
//!   whose lines were moved off all jobs) loses them on an increment too.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zixly_connectors::http::next_cursor;
use zixly_connectors::myob::{self, Bill, Customer, Invoice, Job, Money, MyobClient};
use zixly_connectors::xero::Contribution;
use zixly_connectors::ClientRecord;
use zixly_crypto::SecretString;
use zixly_db::checkpoints::CheckpointUpdate;

use super::contributions::{self, Documents};
use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "myob";

/// The document streams, read in this order (index kept in the checkpoint). The invoice layouts
/// come after the generic list: their page replaces the generic page's contribution of the same
/// invoice with one split by the lines' jobs (`myob::INVOICE_LAYOUTS`).
const STREAMS: [&str; 12] = [
    "Sale/Invoice",
    "Sale/Invoice/Service",
    "Sale/Invoice/Professional",
    "Sale/Invoice/TimeBilling",
    "Sale/Invoice/Miscellaneous",
    "Purchase/Bill/Service",
    "Purchase/Bill/Item",
    "Purchase/Bill/Professional",
    "Purchase/Bill/Miscellaneous",
    "Sale/CustomerPayment",
    "Banking/ReceiveMoneyTxn",
    "Banking/SpendMoneyTxn",
];

/// Changes whenever [`STREAMS`] does: a checkpoint's stream index means nothing under another
/// list (1 was `Purchase/Bill/Service` before the invoice layouts), so it is not resumed.
const STREAMS_VERSION: u32 = 2;

/// The checkpointed state of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// [`STREAMS_VERSION`] when written (absent, 1: the list before the invoice layouts).
    #[serde(default = "first_streams_version")]
    streams_version: u32,
    /// The company file read (`businessId`): a checkpoint of another file is not resumed.
    business_id: String,
    /// The plan the run started with (a resumed run reads the same window).
    since: Option<DateTime<Utc>>,
    full_at: DateTime<Utc>,
    /// Index into [`STREAMS`]; `STREAMS.len()`: every stream is read.
    stream: usize,
    /// The `NextPageLink` of the last committed page of the current stream (`None`: its first
    /// page).
    next: Option<String>,
    /// MYOB's earliest clock over the pages read: the next increment starts there (less
    /// `http::CURSOR_SAFETY`), so no change made during the read is skipped.
    horizon: Option<DateTime<Utc>>,
}

fn first_streams_version() -> u32 {
    1
}

/// The company file of the connection: the redirect's `businessId` (checked through the file's
/// own endpoint: keys issued since March 2025 get an empty company-file list), or, for legacy
/// keys connected before it was kept, the only file of the list.
async fn business_id(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<String, SyncError> {
    let api = ctx.config.api_url.as_str();
    let key = ctx.config.client_id.as_str();
    // These calls are made outside a MyobClient: they still count against the key's limit.
    ctx.pacer.acquire().await;
    Ok(match ctx.setting("myob_business_id") {
        Some(id) => {
            myob::company_file(ctx.http, api, key, token, id)
                .await?
                .company_file
                .id
        }
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
    })
}

/// One page of stream `stream`: its documents' ids (every one listed, so a document that lost
/// its contributions loses them here) and their contributions.
async fn stream_page(
    client: &MyobClient,
    stream: usize,
    state: &RunState,
    customers: &[Customer],
    jobs: &[Job],
) -> Result<(myob::MyobPage<()>, Vec<String>, Vec<Contribution>), SyncError> {
    let resource = STREAMS[stream];
    let (since, next) = (state.since, state.next.as_deref());
    macro_rules! read {
        ($t:ty, |$items:ident| $contributions:expr) => {{
            let page = client.page::<$t>(resource, since, next).await?;
            let ids = page.items.iter().map(|d| d.uid.clone()).collect();
            let $items = page.items.as_slice();
            let contributions = $contributions;
            let bare = myob::MyobPage {
                items: vec![(); page.items.len()],
                next: page.next,
                answered_at: page.answered_at,
            };
            (bare, ids, contributions)
        }};
    }
    let none_i: &[Invoice] = &[];
    let none_b: &[Bill] = &[];
    let none_m: &[Money] = &[];
    Ok(match resource {
        r if r.starts_with("Sale/Invoice") => read!(Invoice, |d| myob::contributions(
            customers, jobs, d, none_b, none_m, none_m, none_m
        )),
        "Sale/CustomerPayment" => read!(Money, |d| myob::contributions(
            customers, jobs, none_i, none_b, d, none_m, none_m
        )),
        "Banking/ReceiveMoneyTxn" => read!(Money, |d| myob::contributions(
            customers, jobs, none_i, none_b, none_m, d, none_m
        )),
        "Banking/SpendMoneyTxn" => read!(Money, |d| myob::contributions(
            customers, jobs, none_i, none_b, none_m, none_m, d
        )),
        _ => read!(Bill, |d| myob::contributions(
            customers, jobs, none_i, d, none_m, none_m, none_m
        )),
    })
}

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let api = ctx.config.api_url.as_str();
    let key = ctx.config.client_id.as_str();
    let business_id = business_id(ctx, token).await?;
    let client = MyobClient::new(ctx.http.clone(), api, key, token.clone(), &business_id)
        .with_pacer(ctx.pacer.clone());
    // Reference data the mapping needs whole, re-read by every attempt (a few pages).
    let customers: Vec<Customer> = client.list("Contact/Customer", None).await?;
    let jobs: Vec<Job> = client.list("GeneralLedger/Job", None).await?;
    let names: HashMap<String, String> = customers
        .iter()
        .map(|c| ClientRecord {
            client_id: c.uid.clone(),
            name: c.name(),
        })
        .filter_map(|c| c.name.map(|n| (c.client_id, n)))
        .collect();

    let resumed = ctx
        .checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok())
        .filter(|s| s.business_id == business_id && s.streams_version == STREAMS_VERSION);
    let (mut pages_read, mut items_read, mut requests_before) = ctx
        .checkpoint
        .as_ref()
        .map_or((0, 0, 0), |c| (c.pages_read, c.items_read, c.requests));
    let same_file =
        ctx.cursor.get("myob_business_id").and_then(|v| v.as_str()) == Some(business_id.as_str());
    let mut state = match resumed {
        Some(s) => {
            tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                stream = s.stream, "resuming a MYOB sync at its checkpoint");
            s
        }
        None => {
            let mut plan = Plan::new(ctx, Utc::now());
            // Another company file (or a cursor from before the file was named) is read in
            // full.
            if !same_file {
                plan = Plan {
                    since: None,
                    full_at: Utc::now(),
                };
            }
            // A checkpoint of an abandoned run (another file) is not this run's: its start
            // time would decide what the complete read removes.
            if ctx.checkpoint.is_some() {
                let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
                tx.clear_sync_checkpoint(ctx.integration.id).await?;
                tx.commit().await?;
                (pages_read, items_read, requests_before) = (0, 0, 0);
            }
            RunState {
                streams_version: STREAMS_VERSION,
                business_id: business_id.clone(),
                since: plan.since,
                full_at: plan.full_at,
                stream: 0,
                next: None,
                horizon: None,
            }
        }
    };
    let requests0 = ctx.pacer.stats().requests;

    while state.stream < STREAMS.len() {
        let (page, documents, contributions) =
            stream_page(&client, state.stream, &state, &customers, &jobs).await?;
        let answered = page.answered_at.unwrap_or_else(Utc::now);
        state.horizon = Some(state.horizon.map_or(answered, |h| h.min(answered)));
        match page.next {
            Some(next) => state.next = Some(next),
            None => {
                state.stream += 1;
                state.next = None;
            }
        }
        pages_read += 1;
        items_read += page.items.len() as i64;
        let saved = serde_json::to_value(&state).expect("serializable");
        // Always the page's documents only, even on a complete read: the documents it does not
        // list are removed once the whole read is committed (below), not page by page.
        contributions::commit_page(
            ctx,
            &documents,
            &contributions,
            &CheckpointUpdate {
                state: &saved,
                stream: STREAMS.get(state.stream).copied(),
                pages_read,
                items_read,
                items_total: None,
                requests: requests_before + (ctx.pacer.stats().requests - requests0) as i64,
            },
        )
        .await?;
    }

    // MYOB lists no deletions: after a complete read, the documents it did not list (none of
    // their contributions stored since the run started) lose their contributions. Idempotent,
    // so a kill before the settle below repeats it harmlessly.
    if state.since.is_none() {
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        let gone = tx
            .contribution_documents_before_run(ctx.integration.id)
            .await?;
        contributions::record(&tx, ctx.integration.id, Documents::These(&gone), &[]).await?;
        tx.commit().await?;
    }

    let plan = Plan {
        since: state.since,
        full_at: state.full_at,
    };
    let mut cursor = plan.cursor(state.horizon.map(|h| next_cursor(h, state.since)));
    cursor["myob_business_id"] = serde_json::json!(business_id);
    let mut summary =
        contributions::settle(ctx, SOURCE, &names, ctx.setting("base_currency"), cursor).await?;
    summary.rows_read = items_read as u64;
    Ok(summary)
}
