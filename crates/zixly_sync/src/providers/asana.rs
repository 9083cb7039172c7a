//! Asana runner: projects → clients (`settings.asana_client_mapping`), completed tasks → per-day
//! `custom_metrics` (`tasks_completed`, `tasks_completed_on_time`, `on_time_rate`) in the
//! tenant's time zone.
//!
//! Decisions (issues 5 and 10):
//! - **Workspace**: `settings.asana_workspace`, or the only one.
//! - **Per-task contributions.** A day's metrics are sums over tasks, so each completed task's
//!   contribution to each of its clients' days is kept in `sync_contributions` (document = task
//!   gid; without a migration the three numeric columns hold counts: `revenue` = completed (1),
//!   `expenses` = with a due date (0/1), `cash_flow` = on time (0/1)). A re-read task replaces
//!   its contributions (all its clients at once: the task's `projects` are read), marking its old
//!   and new days dirty; the settle re-sums every dirty day ([`zixly_connectors::asana::day_metrics`]),
//!   loads it and prunes what the day no longer has. So a task moved to another client's project
//!   counts for its new client only, and a reopened or deleted one stops counting.
//! - **Events feeds** (issue 10; contracts/asana.json `events`, `deletions_via_events`,
//!   `modified_at_not_on_move`): one sync token per mapped project, in the checkpoint during a run
//!   and in the cursor ([`SYNC_TOKENS`]) between runs. Every feed is read before any task. On a
//!   complete read each project gets a fresh token (the tokenless call's 412), taken before the
//!   tasks are read so that what changes meanwhile is in the next increment's feed. On an
//!   increment each feed is read from its token while `has_more`; each page commits, with the
//!   advanced token, what it takes away: a `deleted` task's contributions, and a task `removed`
//!   from a project its contribution to that project's client (read back and rewritten without
//!   it). Tasks `added`, `undeleted` or `changed` — and a removed task whose client has other
//!   projects, in those projects — are remembered in the checkpoint (`unseen`) until a task page
//!   lists them (any listing gives the task's `projects`, so all its clients at once). After the
//!   `modified_since` pass, the projects of tasks still unseen (moved in without an edit) are read
//!   in full, a second pass. A 412 on an increment (the token expired, `events_412`), or a mapped
//!   project without a token (the first run that reads feeds, a project mapped since), makes the
//!   run a complete read with fresh tokens; the checkpoint is started again, so the contributions
//!   earlier feed pages rewrote are judged by the complete read like the rest. A 403 (Asana
//!   refusing the feed to an app with granular scopes, unverified) is not an error: the run goes on
//!   without feeds, the cursor says so ([`FEEDS_FORBIDDEN`]), increments read without them, and
//!   the next complete read tries them again.
//! - **Resumable, paced** (issue 10): the run reads the feeds page by page, then the mapped
//!   projects' tasks page by page (every task on a complete read, `modified_since` the cursor on
//!   an increment). Each page's contributions and the run's checkpoint (`{workspace, plan,
//!   started, tokens, feeds, unseen, pending projects, offset}`) commit in one transaction, so a
//!   429, a crash or a kill resumes at the page where it stopped and never re-reads a committed
//!   page. Workspaces and projects are re-read by every attempt (a few pages); a pending project
//!   that is gone or no longer mapped is skipped, and an `offset` Asana no longer accepts restarts
//!   its project from the first page. Progress: pages and tasks read, and which project's feed,
//!   then which project's tasks, of how many. Every request, feed calls included, goes through
//!   the connection's pacer.
//! - **Incremental** through `modified_since` = the provider's clock at the run's first answer less
//!   `http::CURSOR_SAFETY` (tasks changed within the margin are read twice and change nothing),
//!   and the feeds. A complete read every `settings.full_sync_hours` (default 24,
//!   [`super::Plan`]) still runs: tasks whose contributions were not stored since the run started
//!   lose them, and metrics on client-days without any contribution are deleted. A cursor from
//!   before the contributions were kept (no `asana_contributions`) starts with a complete read.
//!   Known limit: a project's full read for one moved-in task costs all its pages (`GET
//!   /tasks/{gid}` is not in the contract).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use zixly_connectors::asana::{self, AsanaClient, Events, ProjectMapping, TaskEvent};
use zixly_connectors::http::next_cursor;
use zixly_connectors::ConnectorError;
use zixly_crypto::SecretString;
use zixly_db::checkpoints::CheckpointUpdate;
use zixly_db::loader::{self, Input, LoadOptions, LoadStatus};
use zixly_db::sync_state::ContributionRow;
use zixly_domain::ingest::{CustomMetricRow, IngestRow, ValidRow};

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "asana";

/// The cursor key that says the integration's contributions are complete (a complete read with
/// contributions has settled).
const CONTRIBUTIONS_KEPT: &str = "asana_contributions";

/// The cursor key of the events feeds' sync tokens: `{"<project gid>": "<token>"}`.
pub const SYNC_TOKENS: &str = "asana_sync";

/// The cursor key that says Asana refused this app the events feed (403): increments go on
/// without the feeds until a complete read tries them again.
pub const FEEDS_FORBIDDEN: &str = "asana_events_forbidden";

/// The checkpointed state of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// The workspace read: a checkpoint of another one is not resumed.
    workspace: String,
    /// The plan the run started with (a resumed run reads the same window).
    since: Option<DateTime<Utc>>,
    full_at: DateTime<Utc>,
    /// The provider's clock at the first attempt's first answer: the next cursor starts there.
    started: DateTime<Utc>,
    /// Mapped projects whose tasks are still to read; the first is being read.
    pending: Vec<String>,
    /// The first project's next page (`None`: its first page).
    offset: Option<String>,
    /// How many projects the run (or its second pass) reads (for progress).
    projects_total: usize,
    /// Each mapped project's events sync token: on an increment the cursor's, advanced as its
    /// feed is read; on a complete read the fresh one Asana's 412 hands out. The settle stores
    /// them in the cursor ([`SYNC_TOKENS`]).
    #[serde(default)]
    tokens: BTreeMap<String, String>,
    /// Projects whose feed is still to read (an increment) or whose fresh token is still to take
    /// (a complete read); every feed is read before any task.
    #[serde(default)]
    feeds: Vec<String>,
    /// Tasks the feeds named (added, undeleted or changed; removed from one project of a client
    /// that has others), with the mapped projects to find them in, until a page lists them.
    #[serde(default)]
    unseen: BTreeMap<String, BTreeSet<String>>,
    /// An increment's second pass: `pending` are the projects of `unseen` tasks, read in full.
    #[serde(default)]
    full_pass: bool,
    /// Asana refused the feeds (403, [`asana::events_forbidden`]): this run reads without them.
    #[serde(default)]
    feeds_forbidden: bool,
}

impl RunState {
    fn stream(&self) -> Option<String> {
        if !self.feeds.is_empty() {
            // Every mapped project's feed is read (`projects_total` of them) before any task.
            return Some(format!(
                "events of project {} of {}",
                (self.projects_total + 1)
                    .saturating_sub(self.feeds.len())
                    .max(1),
                self.projects_total.max(self.feeds.len())
            ));
        }
        (!self.pending.is_empty()).then(|| {
            format!(
                "tasks of project {} of {}{}",
                self.projects_total - self.pending.len() + 1,
                self.projects_total,
                if self.full_pass {
                    " (read in full)"
                } else {
                    ""
                }
            )
        })
    }
}

/// What one page of a feed takes away, applied in the transaction that advances its token.
#[derive(Default)]
struct Removals {
    /// Deleted tasks: every contribution goes.
    deleted: Vec<String>,
    /// (task, client): the task left a project of that client.
    removed: Vec<(String, String)>,
}

impl Removals {
    async fn apply(
        &self,
        tx: &zixly_db::TenantTx,
        integration_id: uuid::Uuid,
    ) -> Result<(), SyncError> {
        if !self.deleted.is_empty() {
            tx.replace_contributions(integration_id, &self.deleted, &[])
                .await?;
        }
        if !self.removed.is_empty() {
            let mut documents: Vec<String> = self.removed.iter().map(|r| r.0.clone()).collect();
            documents.sort();
            documents.dedup();
            let keep: Vec<ContributionRow> = tx
                .contributions_of(integration_id, &documents)
                .await?
                .into_iter()
                .filter(|c| {
                    !self
                        .removed
                        .iter()
                        .any(|(t, cl)| *t == c.document_id && *cl == c.client_id)
                })
                .collect();
            tx.replace_contributions(integration_id, &documents, &keep)
                .await?;
        }
        Ok(())
    }
}

/// The sync tokens a cursor holds.
fn stored_tokens(cursor: &serde_json::Value) -> BTreeMap<String, String> {
    cursor
        .get(SYNC_TOKENS)
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    let mapping = ProjectMapping::from_settings(&ctx.integration.settings).map_err(|e| {
        SyncError::Connector(ConnectorError::Permanent(format!(
            "Asana integration settings: {e}"
        )))
    })?;
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
    let tz = ingest.time_zone;
    let client = AsanaClient::new(ctx.http.clone(), &ctx.config.api_url, token.clone())
        .with_pacer(ctx.pacer.clone());
    let requests0 = ctx.pacer.stats().requests;
    // Reference data, re-read by every attempt (a few pages).
    let workspaces = client.workspaces().await?;
    let workspace = asana::choose_workspace(&workspaces, ctx.setting("asana_workspace"))?;
    let projects = client.projects(&workspace.gid).await?;
    let (clients, project_clients) = asana::project_clients(&projects, &mapping);
    let names: HashMap<String, String> = clients
        .into_iter()
        .filter_map(|c| c.name.map(|n| (c.client_id, n)))
        .collect();
    let client_of: HashMap<String, String> = project_clients.iter().cloned().collect();
    let mapped: Vec<String> = project_clients.iter().map(|(p, _)| p.clone()).collect();
    let mut projects_of_client: HashMap<&str, Vec<&str>> = HashMap::new();
    for (p, c) in &project_clients {
        projects_of_client.entry(c).or_default().push(p);
    }

    let resumed = ctx
        .checkpoint
        .as_ref()
        .and_then(|c| serde_json::from_value::<RunState>(c.state.clone()).ok())
        .filter(|s| s.workspace == workspace.gid);
    let (mut pages_read, mut items_read, mut requests_before) = ctx
        .checkpoint
        .as_ref()
        .map_or((0, 0, 0), |c| (c.pages_read, c.items_read, c.requests));
    let requests = |before: i64| before + (ctx.pacer.stats().requests - requests0) as i64;
    let mut state = match resumed {
        Some(mut s) => {
            tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                pending = s.pending.len(), "resuming an Asana sync at its checkpoint");
            // A project deleted or unmapped since is not read (its page would fail for ever).
            let current = s.pending.first().cloned();
            s.pending.retain(|p| client_of.contains_key(p));
            if s.pending.first() != current.as_ref() {
                s.offset = None;
            }
            s.feeds.retain(|p| client_of.contains_key(p));
            s.tokens.retain(|p, _| client_of.contains_key(p));
            s
        }
        None => {
            let now = Utc::now();
            let mut plan = Plan::new(ctx, now);
            let stored = stored_tokens(&ctx.cursor);
            let forbidden = ctx.cursor.get(FEEDS_FORBIDDEN) == Some(&serde_json::json!(true));
            // A mapped project without a sync token (the first run that reads the feeds, a
            // project mapped since) has no feed to say what changed in it: everything is read.
            // Unless the feeds are refused: then increments go on without them.
            if ctx.cursor.get(CONTRIBUTIONS_KEPT) != Some(&serde_json::json!(true))
                || (!forbidden && mapped.iter().any(|p| !stored.contains_key(p)))
            {
                plan = Plan {
                    since: None,
                    full_at: now,
                };
            }
            let abandoned = ctx.checkpoint.is_some();
            if abandoned {
                (pages_read, items_read, requests_before) = (0, 0, 0);
            }
            let tokens = match plan.since {
                Some(_) => stored
                    .into_iter()
                    .filter(|(p, _)| client_of.contains_key(p))
                    .collect(),
                None => BTreeMap::new(),
            };
            // A complete read tries refused feeds again; an increment does not.
            let feeds_forbidden = forbidden && plan.since.is_some();
            let state = RunState {
                workspace: workspace.gid.clone(),
                since: plan.since,
                full_at: plan.full_at,
                started: client.first_answer().unwrap_or(now),
                projects_total: mapped.len(),
                pending: mapped.clone(),
                offset: None,
                tokens,
                feeds: if feeds_forbidden {
                    vec![]
                } else {
                    mapped.clone()
                },
                unseen: BTreeMap::new(),
                full_pass: false,
                feeds_forbidden,
            };
            // The run's start is committed before its first page: a complete read removes what
            // no page stored since then (even when no project is mapped any more).
            let saved = serde_json::to_value(&state).expect("serializable");
            let stream = state.stream();
            let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
            // A checkpoint of an abandoned run (another workspace) is not this run's: its start
            // time would decide what the complete read removes. Replaced in the transaction that
            // saves this run's, so the run's open `sync_runs` row is never without a checkpoint
            // (the orphan sweep would take it for a dead one).
            if abandoned {
                tx.clear_sync_checkpoint(ctx.integration.id).await?;
            }
            tx.save_sync_checkpoint(
                &ctx.run,
                &CheckpointUpdate {
                    state: &saved,
                    stream: stream.as_deref(),
                    pages_read,
                    items_read,
                    items_total: None,
                    requests: requests(requests_before),
                },
            )
            .await?;
            tx.commit().await?;
            state
        }
    };

    // The feeds, before any task: on a complete read, a fresh token per project (taken before
    // the tasks are read, so what changes while they are read is in the next increment's feed);
    // on an increment, every event since the stored token, page by page, each page's removals
    // committed with its advanced token.
    while let Some(project) = state.feeds.first().cloned() {
        let sync = match state.since {
            Some(_) => state.tokens.get(&project).cloned(),
            None => None,
        };
        let answer = match client.events(&project, sync.as_deref()).await {
            Err(e) if asana::events_forbidden(&e) => {
                tracing::warn!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                    error = %e, "Asana refuses this app the events feed; syncing without it \
                    (deletions and moves without an edit wait for the next complete read)");
                state.feeds_forbidden = true;
                state.feeds.clear();
                state.tokens.clear();
                None
            }
            other => Some(other?),
        };
        let mut restart = false;
        let mut removals = Removals::default();
        match answer {
            None => {}
            Some(Events::Expired { sync: fresh }) => {
                state.tokens.insert(project.clone(), fresh);
                state.feeds.remove(0);
                if state.since.is_some() {
                    // The token expired (contracts/asana.json `events_412`): what the feed would
                    // have said is lost, so this run becomes a complete read, with fresh tokens.
                    tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                        project = %project, "Asana's events token expired; reading every task again");
                    restart = true;
                    state.since = None;
                    state.full_at = Utc::now();
                    state.pending = mapped.clone();
                    state.offset = None;
                    state.projects_total = mapped.len();
                    state.unseen.clear();
                    state.full_pass = false;
                    state.tokens.retain(|p, _| *p == project);
                    state.feeds = mapped.iter().filter(|p| **p != project).cloned().collect();
                }
            }
            Some(Events::Page(page)) => {
                if state.since.is_some() {
                    pages_read += 1;
                    let client_id = &client_of[&project];
                    for event in &page.data {
                        match event.task_event(&project) {
                            Some(TaskEvent::Deleted(task)) => {
                                state.unseen.remove(&task);
                                removals.deleted.push(task);
                            }
                            Some(TaskEvent::Removed(task)) => {
                                // It still counts for the client if another of its projects has
                                // it: those are read for it.
                                let entry = state.unseen.entry(task.clone()).or_default();
                                entry.remove(&project);
                                entry.extend(
                                    projects_of_client[client_id.as_str()]
                                        .iter()
                                        .filter(|p| **p != project)
                                        .map(|p| p.to_string()),
                                );
                                if entry.is_empty() {
                                    state.unseen.remove(&task);
                                }
                                removals.removed.push((task, client_id.clone()));
                            }
                            Some(TaskEvent::Read(task)) => {
                                state
                                    .unseen
                                    .entry(task)
                                    .or_default()
                                    .insert(project.clone());
                            }
                            None => {}
                        }
                    }
                }
                state.tokens.insert(project.clone(), page.sync);
                if !page.has_more || state.since.is_none() {
                    state.feeds.remove(0);
                }
            }
        }
        let saved = serde_json::to_value(&state).expect("serializable");
        let stream = state.stream();
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        if restart {
            // A new start time: the complete read removes what no page stores from now on
            // (contributions the feed's earlier pages rewrote included).
            tx.clear_sync_checkpoint(ctx.integration.id).await?;
        }
        removals.apply(&tx, ctx.integration.id).await?;
        tx.save_sync_checkpoint(
            &ctx.run,
            &CheckpointUpdate {
                state: &saved,
                stream: stream.as_deref(),
                pages_read,
                items_read,
                items_total: None,
                requests: requests(requests_before),
            },
        )
        .await?;
        tx.commit().await?;
    }

    loop {
        if state.pending.is_empty() {
            // The increment's second pass: tasks the feeds named that no page of the first listed
            // (moved in without an edit, undeleted, or still in another of a client's projects)
            // are looked for in their projects, read in full.
            if state.since.is_none() || state.full_pass || state.unseen.is_empty() {
                break;
            }
            let wanted: BTreeSet<&String> = state.unseen.values().flatten().collect();
            state.full_pass = true;
            state.pending = mapped
                .iter()
                .filter(|p| wanted.contains(p))
                .cloned()
                .collect();
            state.projects_total = state.pending.len();
            state.offset = None;
            if state.pending.is_empty() {
                break;
            }
        }
        let project = state.pending[0].clone();
        let since = if state.full_pass { None } else { state.since };
        let page = match client
            .task_page(&project, since, state.offset.as_deref())
            .await
        {
            // A checkpoint's offset outlived Asana's token (a long snooze, a restart hours
            // later): the project is read again from its first page. Its committed pages are read
            // twice, which replaces their tasks' contributions with the same ones.
            Err(e) if state.offset.is_some() && asana::offset_refused(&e) => {
                tracing::info!(tenant_id = %ctx.tenant_id, integration_id = %ctx.integration.id,
                    "Asana refused a checkpointed offset; reading the project from its first page");
                state.offset = None;
                continue;
            }
            other => other?,
        };
        let documents: Vec<String> = page.tasks.iter().map(|t| t.gid.clone()).collect();
        // A listed task's `projects` say where it counts: found.
        for d in &documents {
            state.unseen.remove(d);
        }
        let rows: Vec<ContributionRow> = asana::task_days(&page.tasks, &project, &client_of, tz)
            .into_iter()
            .map(|d| {
                let (completed, dated, on_time) = d.counts();
                ContributionRow {
                    document_id: d.task_gid,
                    client_id: d.client_id,
                    record_date: d.date,
                    revenue: completed,
                    expenses: dated,
                    cash_flow: on_time,
                }
            })
            .collect();
        match page.next {
            Some(next) => state.offset = Some(next),
            None => {
                state.pending.remove(0);
                state.offset = None;
            }
        }
        pages_read += 1;
        items_read += page.tasks.len() as i64;
        let saved = serde_json::to_value(&state).expect("serializable");
        let stream = state.stream();
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        if !documents.is_empty() {
            tx.replace_contributions(ctx.integration.id, &documents, &rows)
                .await?;
        }
        tx.save_sync_checkpoint(
            &ctx.run,
            &CheckpointUpdate {
                state: &saved,
                stream: stream.as_deref(),
                pages_read,
                items_read,
                items_total: None,
                requests: requests(requests_before),
            },
        )
        .await?;
        tx.commit().await?;
    }

    // Asana lists no deletions: after a complete read, the tasks it did not list (none of their
    // contributions stored since the run started) lose their contributions. Idempotent, so a
    // kill before the settle below repeats it harmlessly.
    if state.since.is_none() {
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        let gone = tx
            .contribution_documents_before_run(ctx.integration.id)
            .await?;
        if !gone.is_empty() {
            tx.replace_contributions(ctx.integration.id, &gone, &[])
                .await?;
        }
        tx.commit().await?;
    }

    let plan = Plan {
        since: state.since,
        full_at: state.full_at,
    };
    let mut cursor = plan.cursor(Some(next_cursor(state.started, state.since)));
    cursor[CONTRIBUTIONS_KEPT] = serde_json::json!(true);
    cursor[SYNC_TOKENS] = serde_json::json!(state.tokens);
    if state.feeds_forbidden {
        cursor[FEEDS_FORBIDDEN] = serde_json::json!(true);
    }
    let mut summary = settle(ctx, &ingest, &names, state.since.is_none(), cursor).await?;
    summary.rows_read = items_read as u64;
    Ok(summary)
}

/// Re-sums every dirty client-day (this run's and any a killed run left) into its metrics, loads
/// them with the run's `cursor`, then, in one transaction, deletes the metrics those days no
/// longer have (and, after a complete read, those of client-days without contributions), clears
/// the processed days and the run's checkpoint.
async fn settle(
    ctx: &SyncCtx<'_>,
    ingest: &zixly_domain::ingest::IngestContext,
    names: &HashMap<String, String>,
    complete: bool,
    cursor: serde_json::Value,
) -> Result<RunSummary, SyncError> {
    let integration_id = ctx.integration.id;
    let tz = ingest.time_zone;
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let totals = tx.dirty_day_totals(integration_id).await?;
    tx.commit().await?;

    let mut days = Vec::with_capacity(totals.len());
    let mut keep = Vec::new();
    let mut inputs: Vec<Input<CustomMetricRow>> = Vec::new();
    for day in &totals {
        let record_date = day_start(&tz, day.record_date);
        days.push((day.client_id.clone(), record_date));
        if day.contributions == 0 {
            continue;
        }
        let at = record_date.to_rfc3339();
        for (metric, value, unit) in asana::day_metrics(day.revenue, day.expenses, day.cash_flow) {
            keep.push((day.client_id.clone(), metric.to_string(), record_date));
            let line = inputs.len() as u64 + 1;
            let value = value.to_string();
            let mut fields = vec![
                ("client_id", day.client_id.as_str()),
                ("metric_name", metric),
                ("metric_value", value.as_str()),
                ("unit", unit),
                ("record_date", at.as_str()),
                ("source_system", SOURCE),
            ];
            if let Some(n) = names.get(&day.client_id) {
                fields.push(("client_name", n));
            }
            inputs.push(match CustomMetricRow::parse_named(&fields, line, ingest) {
                Ok(row) => Input::Row(ValidRow { line, row }),
                Err(e) => Input::Invalid(e),
            });
        }
    }
    let rows = inputs.len() as u64;
    let options = LoadOptions {
        integration_id: Some(integration_id),
        cursor: Some(cursor),
        run: Some(ctx.settling_load()),
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
            "{} metric(s) rejected, first: {first}",
            report.rejected
        )));
    }

    // A kill before this commit leaves the days dirty and the checkpoint in place: the next
    // attempt resumes with nothing left to read and settles the same days again.
    let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
    let mut deleted = tx.prune_metric_days(SOURCE, &days, &keep).await?;
    if complete {
        deleted += tx
            .prune_metrics_without_contributions(integration_id, SOURCE, tz.name())
            .await?;
    }
    tx.clear_dirty_days(integration_id, &totals).await?;
    tx.clear_sync_checkpoint(integration_id).await?;
    tx.commit().await?;

    Ok(RunSummary {
        sync_run_id: Some(report.sync_run_id),
        rows_read: rows,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: 0,
        not_run: None,
    })
}

/// The instant day `d` starts in `tz` (the earliest valid local time on DST days): the
/// `record_date` of that day's metrics.
fn day_start<Z: TimeZone>(tz: &Z, d: NaiveDate) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
    loop {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
}
