//! HubSpot runner: companies → clients, deals → `lead_events`.
//!
//! Decisions (issue 5):
//! - **Incremental reads** ([`super::Plan`]: cursor `{"modified_since", "full_at"}`). With a
//!   cursor, one search on `hs_lastmodifieddate GTE modified_since` gives the modified deals and
//!   their number (`total`); up to [`FULL_LIST_ABOVE`], each one is read with its stage history
//!   and associations (search results carry neither); above it, the full listing is read instead
//!   (cheaper at 50 deals a request, and no search page is read only to be thrown away). Without
//!   a cursor, or on the periodic complete read, every live deal is listed. `modified_since` is
//!   our run start minus `http::CURSOR_SAFETY` (HubSpot's search index lags behind writes; deals
//!   modified within the margin are read again and change nothing); a deal modified while the
//!   run reads is modified after the run start, so the next increment reads it.
//! - **Resumable, paced** (issue 10): the run is a sequence of steps ([`Step`]: archived pages,
//!   the search, the count, live pages or chunks of [`BY_ID_CHUNK`] modified deals), each of which
//!   commits with the run's checkpoint (`{plan, started, step, after token or pending ids}`): a
//!   live page's lead events and the checkpoint commit in the page's load (one transaction,
//!   `LoadOptions::checkpoint`); the last one carries the cursor and clears the checkpoint. A
//!   429, a crash or a kill resumes at the step where it stopped; pipelines, companies and the
//!   company currency are re-read by every attempt (few pages). Progress: pages and deals read,
//!   of the portal's live deals (a one-result search's `total`) or of the modified ones. Every
//!   request goes through the connection's pacers (general lane; searches on the search lane).
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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zixly_connectors::http::next_cursor;
use zixly_connectors::hubspot::{self, CrmObject, HubspotClient, Pipeline};
use zixly_crypto::SecretString;
use zixly_db::checkpoints::OwnedCheckpoint;
use zixly_db::loader::{self, Input, LoadOptions};
use zixly_domain::ingest::{IngestRow, LeadEventRow, ValidRow};

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "hubspot";

/// Above this many modified deals an increment reads the full listing rather than one call per deal.
pub const FULL_LIST_ABOVE: usize = 200;

/// Modified deals read by id per committed step of an increment (a listing page's size).
pub const BY_ID_CHUNK: usize = hubspot::HISTORY_PAGE_LIMIT;

/// Where a run is; each step commits with the checkpoint before the next begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    /// Archived deals (listed in full every run: archiving does not bump
    /// `hs_lastmodifieddate`), from `after`.
    Archived { after: Option<String> },
    /// An increment's search: how many deals were modified, and which.
    Search,
    /// A complete read's count of live deals (for progress), then the listing.
    Count,
    /// The live listing, from `after`.
    Live { after: Option<String> },
    /// An increment's modified deals still to read by id.
    ById { pending: Vec<String> },
}

/// The checkpointed state of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// The plan the run started with (kept across attempts: a resumed run reads the same window).
    since: Option<DateTime<Utc>>,
    full_at: DateTime<Utc>,
    /// When the run's first attempt started (our clock): the next cursor is this less
    /// `http::CURSOR_SAFETY`, and the "stale" rule is evaluated at it.
    started: DateTime<Utc>,
    step: Step,
    /// Archived deals read (they count in `items_read` but not in `live_total`).
    archived_read: u64,
    /// Live deals this run will read, when HubSpot says (search `total`).
    live_total: Option<u64>,
}

impl RunState {
    fn stream(&self) -> &'static str {
        match self.step {
            Step::Archived { .. } => "archived deals",
            _ => "deals",
        }
    }
}

/// What every step needs: the client, reference data, the progress counters.
struct Run<'a, 'c> {
    ctx: &'a SyncCtx<'c>,
    client: HubspotClient,
    home_currency: String,
    pipelines: Vec<Pipeline>,
    names: HashMap<String, String>,
    stale: HashMap<String, i64>,
    pages_read: i64,
    items_read: i64,
    requests_before: i64,
    requests0: u64,
    summary: RunSummary,
}

impl Run<'_, '_> {
    fn requests(&self) -> i64 {
        let now = self.ctx.pacer.stats().requests + self.ctx.search_pacer.stats().requests;
        self.requests_before + now.saturating_sub(self.requests0) as i64
    }

    fn checkpoint(&self, state: &RunState) -> OwnedCheckpoint {
        OwnedCheckpoint {
            state: serde_json::to_value(state).expect("serializable"),
            stream: Some(state.stream().to_string()),
            pages_read: self.pages_read,
            items_read: self.items_read,
            items_total: state
                .live_total
                .map(|t| (state.archived_read + t) as i64)
                .filter(|t| *t >= self.items_read),
            requests: self.requests(),
        }
    }

    /// Commits a step that loads no rows (archived deals' removals, the search, the count).
    async fn save(&self, state: &RunState, removed: &[String]) -> Result<u64, SyncError> {
        let saved = self.checkpoint(state);
        let tx = self.ctx.app.begin_tenant(self.ctx.tenant_id).await?;
        let deleted = if removed.is_empty() {
            0
        } else {
            tx.delete_leads(SOURCE, removed).await?
        };
        tx.save_sync_checkpoint(&self.ctx.run, &saved.as_update())
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Commits live `deals` (a listing page or a chunk read by id) and moves to `next` (`None`:
    /// the run's last step, which carries the cursor and clears the checkpoint).
    async fn commit_live(
        &mut self,
        state: &mut RunState,
        mut deals: Vec<CrmObject>,
        next: Option<Step>,
    ) -> Result<(), SyncError> {
        let ctx = self.ctx;
        // A deal's figures go to its primary company; only the v4 associations mark it.
        self.client.resolve_primary_companies(&mut deals).await?;
        let (mut events, skipped) =
            hubspot::lead_events(&deals, &self.pipelines, &self.stale, state.started);
        // A deal without its own currency is in the portal's company currency, which need not
        // be the tenant's.
        for e in events.iter_mut().filter(|e| e.currency.is_none()) {
            e.currency = Some(self.home_currency.clone());
        }

        // Events these deals no longer have (a stage entry gone, the deal moved to another
        // company): removed before the page's load commits the checkpoint (or the cursor). A run
        // killed in between re-reads this page and removes again (idempotent).
        let live_ids: Vec<String> = deals.iter().map(|d| d.id.clone()).collect();
        let keep: Vec<(String, String, String, DateTime<Utc>)> = events
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
        if !live_ids.is_empty() {
            let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
            self.summary.deleted += tx.prune_lead_events(SOURCE, &live_ids, &keep).await?;
            tx.commit().await?;
        }

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
            if let Some(n) = self.names.get(&e.client_id) {
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

        self.pages_read += 1;
        self.items_read += deals.len() as i64;
        let last = next.is_none();
        if let Some(step) = next {
            state.step = step;
        }
        let plan = Plan {
            since: state.since,
            full_at: state.full_at,
        };
        let options = LoadOptions {
            integration_id: Some(ctx.integration.id),
            skip_invalid: true,
            cursor: last.then(|| plan.cursor(Some(next_cursor(state.started, state.since)))),
            run: Some(ctx.page_of_run((!last).then(|| self.checkpoint(state)))),
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
        let s = &mut self.summary;
        s.sync_run_id = Some(report.sync_run_id);
        s.inserted += report.inserted;
        s.updated += report.updated;
        s.unchanged += report.unchanged;
        s.skipped += skipped as u64 + report.rejected;
        Ok(())
    }
}

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let client = HubspotClient::new(ctx.http.clone(), &ctx.config.api_url, token.clone())
        .with_pacers(ctx.pacer.clone(), ctx.search_pacer.clone());
    let requests0 = ctx.pacer.stats().requests + ctx.search_pacer.stats().requests;
    // Reference data, re-read by every attempt (a few requests).
    let home_currency = client.company_currency().await?;
    let pipelines = client.pipelines().await?;
    let companies = client.companies().await?;
    let names: HashMap<String, String> = companies
        .iter()
        .filter_map(|c| c.prop("name").map(|n| (c.id.clone(), n.to_string())))
        .collect();
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

    let resumed = ctx
        .checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok());
    let (pages_read, items_read, requests_before) = match (&ctx.checkpoint, &resumed) {
        (Some(c), Some(_)) => (c.pages_read, c.items_read, c.requests),
        _ => (0, 0, 0),
    };
    let mut state = match resumed {
        Some(s) => {
            tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                step = ?s.step, "resuming a HubSpot sync at its checkpoint");
            s
        }
        None => {
            let started = Utc::now();
            let plan = Plan::new(ctx, started);
            RunState {
                since: plan.since,
                full_at: plan.full_at,
                started,
                step: Step::Archived { after: None },
                archived_read: 0,
                live_total: None,
            }
        }
    };
    let mut run = Run {
        ctx,
        client,
        home_currency,
        pipelines,
        names,
        stale,
        pages_read,
        items_read,
        requests_before,
        requests0,
        summary: RunSummary::default(),
    };

    loop {
        match state.step.clone() {
            Step::Archived { after } => {
                let page = run.client.deal_page(true, after.as_deref()).await?;
                let ids: Vec<String> = page.deals.iter().map(|d| d.id.clone()).collect();
                run.pages_read += 1;
                run.items_read += ids.len() as i64;
                state.archived_read += ids.len() as u64;
                state.step = match (page.next, state.since) {
                    (Some(after), _) => Step::Archived { after: Some(after) },
                    (None, Some(_)) => Step::Search,
                    (None, None) => Step::Count,
                };
                run.summary.deleted += run.save(&state, &ids).await?;
            }
            Step::Search => {
                let since = state.since.expect("an increment has a window");
                let found = run.client.modified_deals(since).await?;
                if found.total as usize > FULL_LIST_ABOVE || found.more {
                    state.step = Step::Count;
                } else {
                    state.live_total = Some(found.ids.len() as u64);
                    state.step = Step::ById { pending: found.ids };
                }
                run.save(&state, &[]).await?;
            }
            Step::Count => {
                state.live_total = run.client.live_deal_count().await?;
                state.step = Step::Live { after: None };
                run.save(&state, &[]).await?;
            }
            Step::Live { after } => {
                let page = run.client.deal_page(false, after.as_deref()).await?;
                let next = page.next.map(|a| Step::Live { after: Some(a) });
                let last = next.is_none();
                run.commit_live(&mut state, page.deals, next).await?;
                if last {
                    break;
                }
            }
            Step::ById { pending } => {
                let (chunk, rest) = pending.split_at(pending.len().min(BY_ID_CHUNK));
                let mut deals = Vec::with_capacity(chunk.len());
                for id in chunk {
                    // Gone since the search (archived): the next run's archived listing reports it.
                    if let Some(d) = run.client.deal(id).await? {
                        deals.push(d);
                    }
                }
                let next = (!rest.is_empty()).then(|| Step::ById {
                    pending: rest.to_vec(),
                });
                let last = next.is_none();
                run.commit_live(&mut state, deals, next).await?;
                if last {
                    break;
                }
            }
        }
    }
    let mut summary = run.summary;
    summary.rows_read = run.items_read as u64;
    Ok(summary)
}
