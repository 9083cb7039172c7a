//! Pipedrive runner: organizations → clients, deals → `lead_events` (the connector's mapping).
//!
//! Decisions (issue 5):
//! - **API root**: the token answer's `api_domain`, kept in `settings.pipedrive_api_domain` at
//!   connect time, replaced by each refresh's (`tokens`), read after the token is obtained and
//!   checked by `pipedrive::api_base` (https only, else the configured `ZIXLY_PIPEDRIVE_API_URL`).
//! - **Incremental** through `updated_since` = the cursor's `modified_since` (the provider's
//!   clock, set by the connector); a complete read every `settings.full_sync_hours` (default 24,
//!   [`super::Plan`]) re-evaluates deals that rot without being updated (rotting is "no update",
//!   which `updated_since` never returns).
//! - **Stage history builds up**: a deal that moves on adds an event and keeps the earlier ones,
//!   so live deals' events are never pruned (unlike HubSpot, whose deals carry their full
//!   history). Deleted deals (listed for 30 days on every read) lose all their events; archived
//!   deals keep theirs with their status.
//! - Client names come from the organizations read (all of them on a complete read, the changed
//!   ones on an increment); events of other clients carry no name, so an existing client keeps
//!   its name and a new one is named after its id until its organization is read.
//! - Rows that fail validation (a currency without an exchange rate) are skipped and reported in
//!   the run's `sync_runs.errors` (`skip_invalid`).

use std::collections::HashMap;

use chrono::Utc;
use zixly_connectors::pipedrive::{self, PipedriveClient};
use zixly_crypto::SecretString;
use zixly_db::loader::{self, Input, LoadOptions};
use zixly_domain::ingest::{IngestRow, LeadEventRow, ValidRow};

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "pipedrive";

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    // 1. Fetch (no writes).
    let mut extra = serde_json::Map::new();
    // Read now, not from `ctx`: the refresh that produced `token` may have moved the domain.
    let domain =
        crate::tokens::pipedrive_api_domain(ctx.app, ctx.tenant_id, ctx.integration.id).await?;
    if let Some(d) = domain {
        extra.insert("api_domain".into(), serde_json::json!(d));
    }
    let base = pipedrive::api_base(&extra, &ctx.config.api_url);
    let client =
        PipedriveClient::new(ctx.http.clone(), &base, token.clone()).with_pacer(ctx.pacer.clone());
    let now = Utc::now();
    let plan = Plan::new(ctx, now);
    let read = client.read(plan.since, now).await?;
    let names: HashMap<&str, &str> = read
        .clients
        .iter()
        .filter_map(|c| c.name.as_deref().map(|n| (c.client_id.as_str(), n)))
        .collect();

    // 2. Deleted deals lose their events (live deals keep their history). Committed before the
    //    load, which advances the cursor: a run killed in between re-reads the same deals.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let deleted = tx.delete_leads(SOURCE, &read.removed_leads).await?;
    tx.commit().await?;

    // 3. Load the events with the cursor.
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
    let mut inputs: Vec<Input<LeadEventRow>> = Vec::with_capacity(read.events.len());
    for (i, e) in read.events.iter().enumerate() {
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
        cursor: Some(plan.cursor(read.cursor)),
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
        rows_read: (read.events.len() + read.removed_leads.len() + read.skipped) as u64,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: read.skipped as u64 + report.rejected,
        not_run: None,
    })
}
