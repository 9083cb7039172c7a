//! Xero runner: documents → per-document contributions → recomputed client-days → `financials`.
//!
//! Decisions (issue 5):
//! - **Incremental recomputation.** A client's day in `financials` is a SUM over many documents,
//!   so an incremental sync cannot upsert a changed invoice's amount. Every fetched document's
//!   contribution is stored in `sync_contributions` (migration 0005); the days it touched before
//!   and after are marked dirty; dirty days are re-summed from the table and loaded. A VOIDED or
//!   DELETED document contributes nothing: its old days are re-summed without it, and a day left
//!   without any document has its `financials` row deleted (`settle_dirty_days`).
//! - **Cursor** `{"modified_since": RFC 3339}` = the newest `UpdatedDateUTC` seen (the provider's
//!   clock, not ours: no skew), sent as `If-Modified-Since` on invoices and payments. Documents
//!   stamped exactly at the cursor are fetched again and change nothing.
//! - **Contacts** are always listed in full (names of clients and the tracking-category options
//!   that allocate bills to clients need all of them; contacts are few compared to documents).
//!   A client is created with its first day of numbers, not for every contact.
//! - **Amounts** are converted by the connector to the organisation's base currency with the
//!   document's own rate and loaded without a currency column, i.e. in the tenant's base currency:
//!   the organisation's base currency is assumed to be the tenant's.
//! - **Organisation**: `settings.xero_tenant_id`, or the only connected one.
//! - **Tracking category** for bills: `settings.tracking_category`, default `Client`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use zixly_connectors::xero::{self, XeroClient};
use zixly_crypto::SecretString;
use zixly_db::loader::{self, Input, LoadOptions, LoadStatus};
use zixly_db::sync_state::ContributionRow;
use zixly_domain::ingest::{FinancialRow, IngestRow, ValidRow};

use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "xero";

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let api = ctx.config.api_url.as_str();
    // 1. Fetch (no writes).
    let connections = xero::connections(ctx.http, api, token).await?;
    let org = xero::choose_organisation(&connections, ctx.setting("xero_tenant_id"))?;
    let client = XeroClient::new(ctx.http.clone(), api, token.clone(), org.tenant_id.clone());
    let since: Option<DateTime<Utc>> = ctx
        .cursor
        .get("modified_since")
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let contacts = client.contacts(None).await?;
    let invoices = client.invoices(since).await?;
    let payments = client.payments(since).await?;

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
    let contributions = xero::contributions(&invoices, &payments, &by_name, category);
    let documents: Vec<String> = invoices
        .iter()
        .map(|i| i.invoice_id.clone())
        .chain(payments.iter().map(|p| p.payment_id.clone()))
        .collect();
    let rows: Vec<ContributionRow> = contributions
        .iter()
        .filter(|c| !c.removed)
        .map(|c| ContributionRow {
            document_id: c.document_id.clone(),
            client_id: c.client_id.clone(),
            record_date: c.date,
            revenue: c.revenue,
            expenses: c.expenses,
            cash_flow: c.cash_flow,
        })
        .collect();
    let newest = invoices
        .iter()
        .filter_map(|i| i.updated_date_utc.as_deref())
        .chain(
            payments
                .iter()
                .filter_map(|p| p.updated_date_utc.as_deref()),
        )
        .filter_map(xero::parse_ms_date)
        .max();
    let cursor = match newest.max(since) {
        Some(t) => serde_json::json!({"modified_since": t.to_rfc3339()}),
        None => serde_json::json!({}),
    };

    // 2. Contributions and dirty days, in one transaction.
    let integration_id = ctx.integration.id;
    if !documents.is_empty() {
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        tx.replace_contributions(integration_id, &documents, &rows)
            .await?;
        tx.commit().await?;
    }

    // 3. Re-sum every dirty day (this run's and any a killed run left) and load the non-empty ones.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let totals = tx.dirty_day_totals(integration_id).await?;
    tx.commit().await?;
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
    let mut inputs: Vec<Input<FinancialRow>> = Vec::new();
    for (i, day) in totals.iter().filter(|d| d.contributions > 0).enumerate() {
        let line = i as u64 + 1;
        let name = names
            .get(&day.client_id)
            .map_or(day.client_id.as_str(), String::as_str);
        let (date, rev, exp, cash) = (
            day.record_date.to_string(),
            day.revenue.round_dp(2).to_string(),
            day.expenses.round_dp(2).to_string(),
            day.cash_flow.round_dp(2).to_string(),
        );
        let fields = [
            ("client_id", day.client_id.as_str()),
            ("client_name", name),
            ("record_date", date.as_str()),
            ("revenue", rev.as_str()),
            ("expenses", exp.as_str()),
            ("cash_flow", cash.as_str()),
            ("source_system", SOURCE),
        ];
        inputs.push(match FinancialRow::parse_named(&fields, line, &ingest) {
            Ok(row) => Input::Row(ValidRow { line, row }),
            Err(e) => Input::Invalid(e),
        });
    }
    let options = LoadOptions {
        integration_id: Some(integration_id),
        cursor: Some(cursor),
        ..LoadOptions::new(SOURCE)
    };
    let report = loader::load(
        ctx.app,
        ctx.tenant_id,
        &options,
        futures_util::stream::iter(inputs),
        None,
    )
    .await?;
    if report.status != LoadStatus::Succeeded {
        let first = report.errors.first().map_or_else(
            || report.aborted.clone().unwrap_or_default(),
            |e| e.reason.clone(),
        );
        return Err(SyncError::Load(format!(
            "{} day(s) rejected, first: {first}",
            report.rejected
        )));
    }

    // 4. Remove emptied days and clear what was processed.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let deleted = tx
        .settle_dirty_days(integration_id, SOURCE, &totals)
        .await?;
    tx.commit().await?;

    Ok(RunSummary {
        sync_run_ids: vec![report.sync_run_id],
        rows_read: (invoices.len() + payments.len()) as u64,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: 0,
        not_run: None,
    })
}
