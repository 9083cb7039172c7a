//! Xero runner: documents → per-document contributions → recomputed client-days → `financials`.
//!
//! Decisions (issue 5):
//! - The contribution bookkeeping and the load are shared with MYOB (`providers/contributions.rs`).
//! - **Incremental recomputation.** A client's day in `financials` is a SUM over many documents,
//!   so an incremental sync cannot upsert a changed invoice's amount. Every fetched document's
//!   contribution is stored in `sync_contributions` (migration 0005); the days it touched before
//!   and after are marked dirty; dirty days are re-summed from the table and loaded. A VOIDED or
//!   DELETED document contributes nothing: its old days are re-summed without it, and a day left
//!   without any document has its `financials` row deleted (`settle_dirty_days`).
//! - **Cursor** `{"modified_since": RFC 3339, "full_at": RFC 3339}` ([`super::Plan`]):
//!   `modified_since` = Xero's clock (`Date`) when the first-finished stream's last page was
//!   answered, less `http::CURSOR_SAFETY` (the provider's clock, not ours: no skew), sent as
//!   `If-Modified-Since` (rounded down to the second, never up) on invoices, credit notes,
//!   payments and bank transactions. Documents stamped within the overlap are fetched again and
//!   change nothing. A complete read every `settings.full_sync_hours` (default
//!   24) repairs anything an increment missed (Xero does not re-stamp every change).
//! - **Resumable, paced** (issue 10): the four document streams are read in order, page by page
//!   (`XeroClient::document_page`: keyset on `UpdatedDateUTC`, so a document changed during the
//!   read is read again rather than skipped). Each page's contributions and the run's checkpoint
//!   (`{plan, stream, position, newest}`) commit in one transaction; an attempt stopped by a 429,
//!   a crash or a kill resumes at the page where it stopped. Contacts and the organisation are
//!   re-read by every attempt (reference data, a few pages). The dirty days are summed and loaded
//!   once, with the cursor, when the last stream is read; the checkpoint goes in that
//!   transaction. Every request goes through the connection's pacer (60 per minute per
//!   organisation, corrected by `X-MinLimit-Remaining`); a day limit pauses the integration.
//! - **Contacts** are always listed in full (names of clients and the tracking-category options
//!   that allocate bills to clients need all of them; contacts are few compared to documents).
//!   A client is created with its first day of numbers, not for every contact.
//! - **Amounts** are converted by the connector to the organisation's base currency with the
//!   document's own rate, and loaded in that currency (`GET /Organisation`'s `BaseCurrency`, read
//!   every run). When it is not the tenant's base currency, reports convert it through `fx_rates`
//!   like any other row, and a day without a rate fails the run with the loader's error naming
//!   the currency and date (never a silent rate of 1).
//! - **Organisation**: `settings.xero_tenant_id` (picked by the ADMIN on the Integrations page or
//!   through the API when a connection grants several; recorded at connect when it grants one),
//!   or the only connected one. The cursor and the checkpoint name the organisation they were read
//!   from (`xero_tenant_id`); those of another organisation (or a cursor without the name, from
//!   before) start a complete read.
//! - **Payments on bills** are cash flow of the clients the bill's lines are tracked to, pro rata
//!   (not of the supplier); a bill missing from an incremental read is fetched by id. A later
//!   change of the bill's tracking does not move an earlier payment (the payment is not re-read).
//! - **Tracking category** for bills and bank transactions: `settings.tracking_category`,
//!   default `Client`.
//! - **Credit notes** (`/CreditNotes`, stored as `cn:<id>`): ACCRECCREDIT is negative revenue of
//!   its contact, ACCPAYCREDIT negative expenses of the clients its lines are tracked to, on the
//!   credit note's date; a VOIDED/DELETED one removes what it added. Their allocations to
//!   invoices move no cash and are not read; a refund is a payment (ARCREDITPAYMENT), negative
//!   cash flow of the customer.
//! - **Prepayments and overpayments** are cash when received (RECEIVE-PREPAYMENT /
//!   RECEIVE-OVERPAYMENT bank transactions) or paid (SPEND-…, cash only, no expense); their
//!   refunds to customers (payments on them) are negative cash flow.
//! - **Bank transactions** (spend/receive money) are documents too, stored as `bt:<id>` so their
//!   ids cannot collide with invoices or payments; a VOIDED/DELETED one removes what it added.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zixly_connectors::http::next_cursor;
use zixly_connectors::xero::{self, DocumentStream, Invoice, StreamPosition, XeroClient};
use zixly_crypto::SecretString;
use zixly_db::checkpoints::CheckpointUpdate;

use super::contributions;
use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "xero";

/// Bills kept in memory during an attempt so that payments on them need no lookup; beyond this
/// many, payments' bills are looked up by id (bounded memory whatever the ledger's size).
const BILL_CACHE: usize = 50_000;

/// The checkpointed state of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// The organisation read (`xero-tenant-id`).
    org: String,
    /// The plan the run started with (kept across attempts: a resumed run reads the same window).
    since: Option<DateTime<Utc>>,
    full_at: DateTime<Utc>,
    /// Index into [`DocumentStream::ALL`]; `ALL.len()`: every stream is read.
    stream: usize,
    at: StreamPosition,
    /// The earliest of Xero's clocks at the last page of each stream read so far: every change
    /// the run did not see is stamped after it, so the next run starts there (less
    /// `http::CURSOR_SAFETY`). Not the newest stamp seen: a stream read early would then miss
    /// changes stamped before another stream's newest document.
    horizon: Option<DateTime<Utc>>,
    /// Items of the current stream read before `at`, and its estimated size.
    stream_read: u64,
    stream_total: Option<u64>,
}

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let api = ctx.config.api_url.as_str();
    let connections = xero::connections(ctx.http, api, token).await?;
    let org = xero::choose_organisation(&connections, ctx.setting("xero_tenant_id"))?;
    let client = XeroClient::new(ctx.http.clone(), api, token.clone(), org.tenant_id.clone())
        .with_pacer(ctx.pacer.clone());
    let base_currency = client.organisation().await?.base_currency;
    let contacts = client.contacts(None).await?;
    let names: HashMap<String, String> = contacts
        .iter()
        .filter_map(|c| c.name.as_ref().map(|n| (c.contact_id.clone(), n.clone())))
        .collect();
    let by_name: HashMap<String, String> = contacts
        .iter()
        .filter_map(|c| {
            c.name
                .as_ref()
                .map(|n| (n.trim().to_lowercase(), c.contact_id.clone()))
        })
        .collect();
    let category = ctx.setting("tracking_category").unwrap_or("Client");

    let resumed = ctx
        .checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok());
    let (mut pages_read, mut items_read, requests_before) = ctx
        .checkpoint
        .as_ref()
        .map_or((0, 0, 0), |c| (c.pages_read, c.items_read, c.requests));
    // A cursor or checkpoint belongs to the organisation it was read from: after the ADMIN picks
    // another one, the new organisation is read in full.
    let resumed = resumed.filter(|s| s.org == org.tenant_id);
    let same_org =
        ctx.cursor.get("xero_tenant_id").and_then(|v| v.as_str()) == Some(org.tenant_id.as_str());
    let mut state = match resumed {
        Some(s) => {
            tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                stream = s.stream, page = s.at.page, "resuming a Xero sync at its checkpoint");
            s
        }
        None => {
            let mut plan = Plan::new(ctx, Utc::now());
            if !same_org {
                plan = Plan {
                    since: None,
                    full_at: Utc::now(),
                };
            }
            RunState {
                org: org.tenant_id.clone(),
                since: plan.since,
                full_at: plan.full_at,
                stream: 0,
                at: StreamPosition {
                    since: plan.since,
                    page: 1,
                },
                horizon: None,
                stream_read: 0,
                stream_total: None,
            }
        }
    };
    let requests0 = ctx.pacer.stats().requests;
    // ACCPAY bills read in this attempt, for the payments on them.
    let mut bills: HashMap<String, Invoice> = HashMap::new();

    while let Some(&stream) = DocumentStream::ALL.get(state.stream) {
        let page = client.document_page(stream, &state.at).await?;
        let n = page.len() as u64;
        if state.at.page == 1 && state.stream_read == 0 {
            state.stream_total = page.remaining.map(|r| r as u64);
        }
        let contributions = match stream {
            DocumentStream::Invoices => {
                for bill in page.documents.iter().filter(|d| d.kind == "ACCPAY") {
                    if bills.len() < BILL_CACHE {
                        bills.insert(bill.invoice_id.clone(), bill.clone());
                    }
                }
                xero::contributions(&page.documents, &[], &by_name, category)
            }
            DocumentStream::CreditNotes => {
                xero::contributions(&page.documents, &[], &by_name, category)
            }
            DocumentStream::Payments => {
                // Payments on bills go to the bills' tracked clients: bills not read in this
                // attempt are looked up by id.
                let mut missing: Vec<String> = page
                    .payments
                    .iter()
                    .filter(|p| p.status == "AUTHORISED")
                    .filter_map(|p| p.bill_id().map(String::from))
                    .filter(|id| !bills.contains_key(id))
                    .collect();
                missing.sort_unstable();
                missing.dedup();
                let looked_up = if missing.is_empty() {
                    Vec::new()
                } else {
                    client.invoices_by_id(&missing).await?
                };
                let known: Vec<Invoice> = page
                    .payments
                    .iter()
                    .filter_map(|p| p.bill_id())
                    .filter_map(|id| bills.get(id).cloned())
                    .chain(looked_up)
                    .collect();
                xero::contributions_with_bills(&[], &page.payments, &known, &by_name, category)
            }
            DocumentStream::BankTransactions => {
                xero::bank_transaction_contributions(&page.bank_transactions, &by_name, category)
            }
        };
        let documents: Vec<String> = page
            .documents
            .iter()
            .map(|i| i.document_id())
            .chain(page.payments.iter().map(|p| p.payment_id.clone()))
            .chain(page.bank_transactions.iter().map(|b| b.document_id()))
            .collect();
        state.stream_read += n;
        match page.next {
            Some(next) => state.at = next,
            None => {
                let answered = page.answered_at.unwrap_or_else(Utc::now);
                state.horizon = Some(state.horizon.map_or(answered, |h| h.min(answered)));
                state.stream += 1;
                state.at = StreamPosition {
                    since: state.since,
                    page: 1,
                };
                state.stream_read = 0;
                state.stream_total = None;
            }
        }
        pages_read += 1;
        items_read += n as i64;
        let saved = serde_json::to_value(&state).expect("serializable");
        let current = DocumentStream::ALL.get(state.stream).map(|s| s.name());
        contributions::commit_page(
            ctx,
            &documents,
            &contributions,
            &CheckpointUpdate {
                state: &saved,
                stream: current,
                pages_read,
                items_read,
                items_total: state
                    .stream_total
                    .map(|t| (items_read as u64 - state.stream_read + t) as i64),
                requests: requests_before + (ctx.pacer.stats().requests - requests0) as i64,
            },
        )
        .await?;
    }

    // Every stream read: the dirty days are summed and loaded with the cursor, and the
    // checkpoint goes in the same settling transaction.
    let plan = Plan {
        since: state.since,
        full_at: state.full_at,
    };
    let mut cursor = plan.cursor(state.horizon.map(|h| next_cursor(h, state.since)));
    cursor["xero_tenant_id"] = serde_json::json!(org.tenant_id);
    let mut summary =
        contributions::settle(ctx, SOURCE, &names, Some(&base_currency), cursor).await?;
    summary.rows_read = items_read as u64;
    Ok(summary)
}
