//! Shared by the aggregating accounting runners (Xero, MYOB): per-document contributions →
//! recomputed client-days → `financials` (see `zixly_db::sync_state` for the protocol).
//!
//! [`apply`] takes the fetched documents and their contributions (both providers normalize into
//! [`zixly_connectors::xero::Contribution`]), replaces the documents' stored contributions, re-sums
//! every dirty day (this run's and any a killed run left), loads the non-empty days with the run's
//! cursor and deletes the emptied ones.

use std::collections::HashMap;

use zixly_connectors::xero::Contribution;
use zixly_db::loader::{self, Input, LoadOptions, LoadStatus};
use zixly_db::sync_state::ContributionRow;
use zixly_domain::ingest::{FinancialRow, IngestRow, ValidRow};

use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

/// Which stored documents the fetched ones replace.
pub(crate) enum Documents<'a> {
    /// Exactly these (an increment, or a provider that lists removals such as Xero's VOIDED).
    These(&'a [String]),
}

/// Step 1, in the caller's transaction (which may also save a checkpoint): replaces the
/// documents' stored contributions and marks the days they touch dirty.
pub(crate) async fn record(
    tx: &zixly_db::TenantTx,
    integration_id: uuid::Uuid,
    documents: Documents<'_>,
    contributions: &[Contribution],
) -> Result<(), SyncError> {
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
    let documents: Vec<String> = match documents {
        Documents::These(d) => d.to_vec(),
    };
    if !documents.is_empty() {
        tx.replace_contributions(integration_id, &documents, &rows)
            .await?;
    }
    Ok(())
}

/// A resumable runner's page (Xero, MYOB): its documents' contributions ([`record`]) and the run's
/// checkpoint in one transaction, so the checkpoint is never ahead of (or behind) what is stored.
pub(crate) async fn commit_page(
    ctx: &SyncCtx<'_>,
    documents: &[String],
    contributions: &[Contribution],
    checkpoint: &zixly_db::checkpoints::CheckpointUpdate<'_>,
) -> Result<(), SyncError> {
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    record(
        &tx,
        ctx.integration.id,
        Documents::These(documents),
        contributions,
    )
    .await?;
    tx.save_sync_checkpoint(&ctx.run, checkpoint).await?;
    tx.commit().await?;
    Ok(())
}

/// Steps 2 and 3: re-sums every dirty day (this run's and any a killed run left), loads the
/// non-empty ones with the run's `cursor`, deletes the emptied ones and clears the integration's
/// sync checkpoint in the same transaction (the run is settled). `rows_read` of the summary is 0.
pub(crate) async fn settle(
    ctx: &SyncCtx<'_>,
    source: &str,
    names: &HashMap<String, String>,
    currency: Option<&str>,
    cursor: serde_json::Value,
) -> Result<RunSummary, SyncError> {
    let integration_id = ctx.integration.id;

    // 2. Re-sum every dirty day and load the non-empty ones.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let totals = tx.dirty_day_totals(integration_id).await?;
    tx.commit().await?;
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, source).await?;
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
        let mut fields = vec![
            ("client_id", day.client_id.as_str()),
            ("client_name", name),
            ("record_date", date.as_str()),
            ("revenue", rev.as_str()),
            ("expenses", exp.as_str()),
            ("cash_flow", cash.as_str()),
            ("source_system", source),
        ];
        if let Some(c) = currency {
            fields.push(("currency", c));
        }
        inputs.push(match FinancialRow::parse_named(&fields, line, &ingest) {
            Ok(row) => Input::Row(ValidRow { line, row }),
            Err(e) => Input::Invalid(e),
        });
    }
    let options = LoadOptions {
        integration_id: Some(integration_id),
        cursor: Some(cursor),
        run: Some(ctx.settling_load()),
        ..LoadOptions::new(source)
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

    // 3. Remove emptied days and clear what was processed.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let deleted = tx
        .settle_dirty_days(integration_id, source, &totals)
        .await?;
    tx.clear_sync_checkpoint(integration_id).await?;
    tx.commit().await?;

    Ok(RunSummary {
        sync_run_id: Some(report.sync_run_id),
        rows_read: 0,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: 0,
        not_run: None,
    })
}
