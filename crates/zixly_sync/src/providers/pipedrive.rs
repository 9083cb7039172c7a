//! Pipedrive runner: organizations → clients, deals → `lead_events` (the connector's mapping).
//!
//! Decisions (issue 5):
//! - **API root**: the token answer's `api_domain`, kept in `settings.pipedrive_api_domain` at
//!   connect time, replaced by each refresh's (`tokens`), read after the token is obtained and
//!   checked by `pipedrive::api_base` (https only, else the configured `ZIXLY_PIPEDRIVE_API_URL`).
//! - **Incremental** through `updated_since` = the cursor's `modified_since` (the provider's
//!   clock: the high-water mark below); a complete read every `settings.full_sync_hours` (default 24,
//!   [`super::Plan`]) re-evaluates deals that rot without being updated (rotting is "no update",
//!   which `updated_since` never returns).
//! - **Stage history builds up**: a deal that moves on adds an event and keeps the earlier ones,
//!   so live deals' events are never pruned (unlike HubSpot, whose deals carry their full
//!   history). Deleted deals (listed for 30 days on every read) lose all their events; archived
//!   deals keep theirs with their status.
//! - Client names come from the organizations read (all of them on a complete read, the changed
//!   ones on an increment); events of other clients carry no name, so an existing client keeps
//!   its name and a new one is named after its id until its organization is read.
//! - **Resumable, paced** (issue 10): after the reference data (stages, and the organizations
//!   changed since the cursor: few pages, re-read by every attempt), the run reads three cursor-
//!   paged listings one page at a time ([`Step`]): deleted deals, archived deals, live deals.
//!   Each page commits with the run's checkpoint (`{plan, started, high_water, step + next_cursor}`)
//!   in one transaction — a deleted-deals page's removals with `save_sync_checkpoint`, an archived
//!   or live page's lead events in its load (`LoadOptions::checkpoint`) — and the last live page
//!   carries the cursor and clears the checkpoint. A 429, a crash or a kill resumes at the page
//!   where it stopped and never asks again for a committed page; a spent daily budget pauses the
//!   integration (the engine) and the resumed run continues from the checkpoint. Deleted deals
//!   come first so that a run's removals can never be undone by its own later pages (a deleted
//!   deal is in no other listing). Progress: pages and deals read (Pipedrive's v2 lists give no
//!   total). Every request goes through the connection's pacer.
//! - **High-water mark**: the provider's clock (`Date`) at the first answer of the run's *first*
//!   attempt, kept in the checkpoint: the next `updated_since` is that less
//!   `http::CURSOR_SAFETY`, so a deal changed at any time during a run that took several attempts
//!   (or a day's pause) is read by the next increment; deals read twice are upserted twice,
//!   harmlessly. The rotting rule is evaluated at the first attempt's start (our clock) for every
//!   page of the run.
//! - Rows that fail validation (a currency without an exchange rate) are skipped and reported in
//!   the run's `sync_runs.errors` (`skip_invalid`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zixly_connectors::http::next_cursor;
use zixly_connectors::pipedrive::{self, Deal, DealList, PipedriveClient, Stage};
use zixly_crypto::SecretString;
use zixly_db::checkpoints::OwnedCheckpoint;
use zixly_db::loader::{self, Input, LoadOptions};
use zixly_domain::ingest::{IngestRow, LeadEventRow, ValidRow};

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "pipedrive";

/// The page a run reads next: a listing and the `next_cursor` the previous page of it gave
/// (`None`: its first page). Each page commits with the checkpoint before the next is asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
enum Step {
    Deleted { cursor: Option<String> },
    Archived { cursor: Option<String> },
    Live { cursor: Option<String> },
}

impl Step {
    fn list(&self) -> DealList {
        match self {
            Step::Deleted { .. } => DealList::Deleted,
            Step::Archived { .. } => DealList::Archived,
            Step::Live { .. } => DealList::Live,
        }
    }

    fn cursor(&self) -> Option<&str> {
        match self {
            Step::Deleted { cursor } | Step::Archived { cursor } | Step::Live { cursor } => {
                cursor.as_deref()
            }
        }
    }

    fn stream(&self) -> &'static str {
        match self {
            Step::Deleted { .. } => "deleted deals",
            Step::Archived { .. } => "archived deals",
            Step::Live { .. } => "deals",
        }
    }

    /// The step after a page of this one that answered `next` (`None`: the run is done).
    fn after(&self, next: Option<String>) -> Option<Step> {
        match (self, next) {
            (Step::Deleted { .. }, Some(c)) => Some(Step::Deleted { cursor: Some(c) }),
            (Step::Deleted { .. }, None) => Some(Step::Archived { cursor: None }),
            (Step::Archived { .. }, Some(c)) => Some(Step::Archived { cursor: Some(c) }),
            (Step::Archived { .. }, None) => Some(Step::Live { cursor: None }),
            (Step::Live { .. }, Some(c)) => Some(Step::Live { cursor: Some(c) }),
            (Step::Live { .. }, None) => None,
        }
    }
}

/// The checkpointed state of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// The plan the run started with (kept across attempts: a resumed run reads the same window,
    /// and an interrupted complete read stays complete).
    since: Option<DateTime<Utc>>,
    full_at: DateTime<Utc>,
    /// Our clock when the run's first attempt started: the rotting rule is evaluated at it.
    started: DateTime<Utc>,
    /// The provider's clock at the first answer of the run's first attempt (module docs).
    high_water: DateTime<Utc>,
    step: Step,
}

/// What every page needs: the client, reference data, the progress counters.
struct Run<'a, 'c> {
    ctx: &'a SyncCtx<'c>,
    client: PipedriveClient,
    stages: Vec<Stage>,
    names: HashMap<String, String>,
    pages_read: i64,
    items_read: i64,
    requests_before: i64,
    requests0: u64,
    summary: RunSummary,
}

impl Run<'_, '_> {
    fn checkpoint(&self, state: &RunState) -> OwnedCheckpoint {
        let requests = self
            .ctx
            .pacer
            .stats()
            .requests
            .saturating_sub(self.requests0);
        OwnedCheckpoint {
            state: serde_json::to_value(state).expect("serializable"),
            stream: Some(state.step.stream().to_string()),
            pages_read: self.pages_read,
            items_read: self.items_read,
            items_total: None,
            requests: self.requests_before + requests as i64,
        }
    }

    /// Commits a page of deleted deals: their events go, with the checkpoint, in one transaction.
    async fn commit_removals(
        &mut self,
        state: &RunState,
        removed: &[String],
    ) -> Result<(), SyncError> {
        let saved = self.checkpoint(state);
        let tx = self.ctx.app.begin_tenant(self.ctx.tenant_id).await?;
        if !removed.is_empty() {
            self.summary.deleted += tx.delete_leads(SOURCE, removed).await?;
        }
        tx.save_sync_checkpoint(&self.ctx.run, &saved.as_update())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits a page of archived or live deals as lead events with the checkpoint (`last`: the
    /// run's last page, which carries the cursor and clears the checkpoint instead).
    async fn commit_deals(
        &mut self,
        state: &RunState,
        deals: &[Deal],
        last: bool,
    ) -> Result<(), SyncError> {
        let ctx = self.ctx;
        let leads = pipedrive::lead_events(deals, &self.stages, state.started);
        if !leads.removed.is_empty() {
            // A deleted deal in a live listing (not expected: deleted deals have their own
            // status); removed before the page's load, which a re-read would repeat harmlessly.
            let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
            self.summary.deleted += tx.delete_leads(SOURCE, &leads.removed).await?;
            tx.commit().await?;
        }
        let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
        let mut inputs: Vec<Input<LeadEventRow>> = Vec::with_capacity(leads.events.len());
        for (i, e) in leads.events.iter().enumerate() {
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
        let plan = Plan {
            since: state.since,
            full_at: state.full_at,
        };
        let options = LoadOptions {
            integration_id: Some(ctx.integration.id),
            skip_invalid: true,
            cursor: last.then(|| plan.cursor(Some(next_cursor(state.high_water, state.since)))),
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
        s.skipped += leads.skipped as u64 + report.rejected;
        Ok(())
    }
}

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
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
    let requests0 = ctx.pacer.stats().requests;

    // After a 401 mid-run, `providers::run` calls this again with the checkpoint as stored
    // after the pages the attempt committed, so none of them is read again.
    let checkpoint = &ctx.checkpoint;
    let resumed = checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok());
    let (pages_read, items_read, requests_before) = match (checkpoint, &resumed) {
        (Some(c), Some(_)) => (c.pages_read, c.items_read, c.requests),
        _ => (0, 0, 0),
    };
    let started = Utc::now();
    let plan = match &resumed {
        Some(s) => Plan {
            since: s.since,
            full_at: s.full_at,
        },
        None => Plan::new(ctx, started),
    };

    // Reference data, re-read by every attempt (a few pages): the stages' names and rotting,
    // the names of the organizations changed in the run's window.
    let stages = client.stages().await?;
    let names: HashMap<String, String> = client
        .organizations(plan.since)
        .await?
        .into_iter()
        .filter(|o| !o.is_deleted)
        .filter_map(|o| o.name.map(|n| (o.id.to_string(), n)))
        .collect();

    let mut state = match resumed {
        Some(s) => {
            tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                step = ?s.step, "resuming a Pipedrive sync at its checkpoint");
            s
        }
        None => RunState {
            since: plan.since,
            full_at: plan.full_at,
            started,
            // The first answer of this (the first) attempt; everything changed since is at or
            // after it.
            high_water: client.first_answer().unwrap_or(started),
            step: Step::Deleted { cursor: None },
        },
    };
    let mut run = Run {
        ctx,
        client,
        stages,
        names,
        pages_read,
        items_read,
        requests_before,
        requests0,
        summary: RunSummary::default(),
    };

    loop {
        let step = state.step.clone();
        let page = run
            .client
            .deal_page(step.list(), state.since, step.cursor())
            .await?;
        run.pages_read += 1;
        run.items_read += page.items.len() as i64;
        let next = step.after(page.next);
        match step {
            Step::Deleted { .. } => {
                let removed =
                    pipedrive::lead_events(&page.items, &run.stages, state.started).removed;
                state.step = next.expect("archived and live deals follow");
                run.commit_removals(&state, &removed).await?;
            }
            Step::Archived { .. } | Step::Live { .. } => {
                let last = next.is_none();
                if let Some(n) = next {
                    state.step = n;
                }
                run.commit_deals(&state, &page.items, last).await?;
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
