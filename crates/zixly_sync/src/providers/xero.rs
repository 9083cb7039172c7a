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
//! - **Cursor** `{"modified_since": RFC 3339}` = the newest `UpdatedDateUTC` seen (the provider's
//!   clock, not ours: no skew), sent as `If-Modified-Since` on invoices, payments and bank
//!   transactions. Documents
//!   stamped exactly at the cursor are fetched again and change nothing.
//! - **Contacts** are always listed in full (names of clients and the tracking-category options
//!   that allocate bills to clients need all of them; contacts are few compared to documents).
//!   A client is created with its first day of numbers, not for every contact.
//! - **Amounts** are converted by the connector to the organisation's base currency with the
//!   document's own rate, and loaded in that currency (`GET /Organisation`'s `BaseCurrency`, read
//!   every run). When it is not the tenant's base currency, reports convert it through `fx_rates`
//!   like any other row, and a day without a rate fails the run with the loader's error naming
//!   the currency and date (never a silent rate of 1).
//! - **Organisation**: `settings.xero_tenant_id` (picked by the ADMIN on the Integrations page or
//!   through `POST /integrations/{id}/organisation`; recorded at connect time when only one is
//!   granted), or the only connected one. The cursor names the organisation it was read from
//!   (`xero_tenant_id`); a cursor of another organisation (or one without the name, from before
//!   it was recorded) is not used: the run reads everything.
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
use zixly_connectors::xero::{self, XeroClient};
use zixly_crypto::SecretString;

use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "xero";

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let api = ctx.config.api_url.as_str();
    // 1. Fetch (no writes).
    let connections = xero::connections(ctx.http, api, token).await?;
    let org = xero::choose_organisation(&connections, ctx.setting("xero_tenant_id"))?;
    let client = XeroClient::new(ctx.http.clone(), api, token.clone(), org.tenant_id.clone());
    let base_currency = client.organisation().await?.base_currency;
    // A cursor belongs to the organisation it was read from: after the ADMIN picks another one,
    // the new organisation is read in full.
    let same_org =
        ctx.cursor.get("xero_tenant_id").and_then(|v| v.as_str()) == Some(org.tenant_id.as_str());
    let since: Option<DateTime<Utc>> = ctx
        .cursor
        .get("modified_since")
        .filter(|_| same_org)
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let contacts = client.contacts(None).await?;
    let invoices = client.invoices(since).await?;
    let credit_notes = client.credit_notes(since).await?;
    let payments = client.payments(since).await?;
    let bank = client.bank_transactions(since).await?;

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
    // Payments on bills go to the bills' tracked clients: bills an incremental read did not
    // return are looked up by id (Xero re-stamps a bill when it is paid, so this is rare).
    let fetched: std::collections::HashSet<&str> =
        invoices.iter().map(|i| i.invoice_id.as_str()).collect();
    let mut missing: Vec<String> = payments
        .iter()
        .filter(|p| p.status == "AUTHORISED")
        .filter_map(|p| p.bill_id().map(String::from))
        .filter(|id| !fetched.contains(id.as_str()))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let payment_bills = if missing.is_empty() {
        Vec::new()
    } else {
        client.invoices_by_id(&missing).await?
    };
    let mut contributions =
        xero::contributions_with_bills(&invoices, &payments, &payment_bills, &by_name, category);
    contributions.extend(xero::contributions(&credit_notes, &[], &by_name, category));
    contributions.extend(xero::bank_transaction_contributions(
        &bank, &by_name, category,
    ));
    let documents: Vec<String> = invoices
        .iter()
        .chain(&credit_notes)
        .map(|i| i.document_id())
        .chain(payments.iter().map(|p| p.payment_id.clone()))
        .chain(bank.iter().map(|b| b.document_id()))
        .collect();
    let newest = invoices
        .iter()
        .chain(&credit_notes)
        .filter_map(|i| i.updated_date_utc.as_deref())
        .chain(
            payments
                .iter()
                .filter_map(|p| p.updated_date_utc.as_deref()),
        )
        .chain(bank.iter().filter_map(|b| b.updated_date_utc.as_deref()))
        .filter_map(xero::parse_ms_date)
        .max();
    let cursor = match newest.max(since) {
        Some(t) => {
            serde_json::json!({"modified_since": t.to_rfc3339(), "xero_tenant_id": org.tenant_id})
        }
        None => serde_json::json!({"xero_tenant_id": org.tenant_id}),
    };

    // 2. Contributions, recomputed days, load with the cursor, emptied days removed.
    super::contributions::apply(
        ctx,
        SOURCE,
        super::contributions::Documents::These(&documents),
        &contributions,
        &names,
        Some(&base_currency),
        cursor,
        (invoices.len() + credit_notes.len() + payments.len() + bank.len()) as u64,
    )
    .await
}
