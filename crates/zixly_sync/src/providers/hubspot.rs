//! HubSpot runner: companies → clients, deals → `lead_events`.
//!
//! Decisions (issue 5):
//! - **Incremental reads** ([`super::Plan`]: cursor `{"modified_since", "full_at"}`). With a
//!   cursor, live deals are found by search on `hs_lastmodifieddate GTE modified_since` and each
//!   one is read with its stage history and associations (search results carry neither); more
//!   than [`FULL_LIST_ABOVE`] modified deals, or a window the search cannot split, read the full
//!   listing instead (cheaper at 50 deals a page). Without a cursor, or on the periodic complete
//!   read, every live deal is listed. `modified_since` is our run start minus
//!   `http::CURSOR_SAFETY` (HubSpot's search index lags behind writes; deals modified within the
//!   margin are read again and change nothing).
//! - **Archived deals** are listed in full (`archived=true`) on every run: archiving does not bump
//!   `hs_lastmodifieddate`, so search never reveals it. Pipelines and companies are listed in full
//!   too (few). The loader's `IS DISTINCT FROM` upsert makes an unchanged deal a no-op, so a run
//!   without changes writes nothing.
//! - **What only the complete read sees**: a deal turning stale without being modified (its
//!   status is recomputed only when it is read), and a restored deal if restoring does not bump
//!   `hs_lastmodifieddate` (UNVERIFIED).
//! - **Removals.** Lead events of archived deals are deleted; for every live deal, events the
//!   deal no longer has (a stage entry gone, the deal moved to another company) are pruned.
//! - **Stale.** `settings.stale_after_days` = `{"<pipeline id>": days}`; pipelines not listed
//!   never go stale.
//! - Deals without an associated company have no client: skipped and counted. A deal with
//!   several companies belongs to its primary one (v4 associations, read only for such deals).
//! - Amounts are in the deal's `deal_currency_code`, or else in the portal's company currency
//!   (`/account-info/v3/details`, read every run), never assumed to be the tenant's.
//! - Rows that fail validation (e.g. a deal currency without an exchange rate) are skipped and
//!   reported in the run's `sync_runs.errors` (`skip_invalid`): one bad deal does not block all.

use std::collections::HashMap;

use chrono::Utc;
use zixly_connectors::hubspot::{self, HubspotClient};
use zixly_crypto::SecretString;
use zixly_db::loader::{self, Input, LoadOptions};
use zixly_domain::ingest::{IngestRow, LeadEventRow, ValidRow};

use zixly_connectors::http::next_cursor;

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "hubspot";

/// Above this many modified deals an increment reads the full listing rather than one call per deal.
pub const FULL_LIST_ABOVE: usize = 200;

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    // 1. Fetch (no writes).
    let client = HubspotClient::new(ctx.http.clone(), &ctx.config.api_url, token.clone())
        .with_pacers(ctx.pacer.clone(), ctx.search_pacer.clone());
    let started = Utc::now();
    let plan = Plan::new(ctx, started);
    let home_currency = client.company_currency().await?;
    let pipelines = client.pipelines().await?;
    let companies = client.companies().await?;
    let mut live = match plan.since {
        None => client.deals(false).await?,
        Some(since) => match client.modified_deal_ids(since).await? {
            Some(ids) if ids.len() <= FULL_LIST_ABOVE => {
                let mut deals = Vec::with_capacity(ids.len());
                for id in &ids {
                    // Gone since the search (archived): the archived listing below reports it.
                    if let Some(d) = client.deal(id).await? {
                        deals.push(d);
                    }
                }
                deals
            }
            _ => client.deals(false).await?,
        },
    };
    let archived = client.deals(true).await?;
    // A deal's figures go to its primary company; only the v4 associations mark it.
    client.resolve_primary_companies(&mut live).await?;

    let stale: HashMap<String, i64> = ctx
        .integration
        .settings
        .get("stale_after_days")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_i64().map(|d| (k.clone(), d)))
                .collect()
        })
        .unwrap_or_default();
    let names: HashMap<&str, &str> = companies
        .iter()
        .filter_map(|c| c.prop("name").map(|n| (c.id.as_str(), n)))
        .collect();
    let (mut events, skipped) = hubspot::lead_events(&live, &pipelines, &stale, started);
    // A deal without its own currency is in the portal's company currency, which need not be
    // the tenant's.
    for e in events.iter_mut().filter(|e| e.currency.is_none()) {
        e.currency = Some(home_currency.clone());
    }

    // 2. Removals: archived deals, and events live deals no longer have. Committed before the
    //    load, which advances the cursor: a run killed in between has not moved the cursor, so
    //    the next run reads the same deals and removes again (removing after the cursor commit
    //    lost the removals of deals modified before the new cursor).
    let archived_ids: Vec<String> = archived.iter().map(|d| d.id.clone()).collect();
    let live_ids: Vec<String> = live.iter().map(|d| d.id.clone()).collect();
    let keep: Vec<(String, String, String, chrono::DateTime<Utc>)> = events
        .iter()
        .map(|e| {
            (
                e.lead_id.clone(),
                e.client_id.clone(),
                e.stage.clone(),
                e.event_date,
            )
        })
        .collect();
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let mut deleted = tx.delete_leads(SOURCE, &archived_ids).await?;
    deleted += tx.prune_lead_events(SOURCE, &live_ids, &keep).await?;
    tx.commit().await?;

    // 3. Load with the cursor.
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
    let mut inputs: Vec<Input<LeadEventRow>> = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let line = i as u64 + 1;
        let at = e.event_date.to_rfc3339();
        let value = e.value.map(|v| v.to_string());
        let mut fields = vec![
            ("client_id", e.client_id.as_str()),
            ("event_date", at.as_str()),
            ("lead_id", e.lead_id.as_str()),
            ("stage", e.stage.as_str()),
            ("status", e.status),
            ("source_system", SOURCE),
        ];
        if let Some(n) = names.get(e.client_id.as_str()) {
            fields.push(("client_name", n));
        }
        if let Some(v) = &value {
            fields.push(("value", v.as_str()));
        }
        if let Some(c) = &e.currency {
            fields.push(("currency", c.as_str()));
        }
        inputs.push(match LeadEventRow::parse_named(&fields, line, &ingest) {
            Ok(row) => Input::Row(ValidRow { line, row }),
            Err(e) => Input::Invalid(e),
        });
    }
    let options = LoadOptions {
        integration_id: Some(ctx.integration.id),
        skip_invalid: true,
        cursor: Some(plan.cursor(Some(next_cursor(started, plan.since)))),
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

    Ok(RunSummary {
        sync_run_ids: vec![report.sync_run_id],
        rows_read: (live.len() + archived.len()) as u64,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: skipped as u64 + report.rejected,
        not_run: None,
    })
}
