//! Asana runner: projects → clients (`settings.asana_client_mapping`), completed tasks → per-day
//! `custom_metrics` (`tasks_completed`, `tasks_completed_on_time`, `on_time_rate`) in the
//! tenant's time zone.
//!
//! Decisions (issue 5):
//! - **Workspace**: `settings.asana_workspace`, or the only one.
//! - **Recomputed days are replaced.** The connector says, per client, from which day on its
//!   metrics are complete (`Recomputed`; every day on a complete read). Before loading, that
//!   client's Asana metrics on those days that the read no longer reports are deleted (a day whose
//!   tasks were all reopened, an `on_time_rate` whose due dates were removed); the load then
//!   upserts the fresh values, so unchanged days write nothing. Prune first, load (with the
//!   cursor) second: a run killed in between has not advanced the cursor and the next run
//!   recomputes the same days.
//! - **Incremental** through `modified_since` = the cursor's `modified_since`; a complete read every
//!   `settings.full_sync_hours` (default 24, [`super::Plan`]) catches what increments cannot
//!   see: deleted tasks, tasks reopened, and the old day of a task whose completion moved to a
//!   later day (an increment recomputes from the task's new completion day only).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use zixly_connectors::asana::{self, AsanaClient, ProjectMapping};
use zixly_connectors::ConnectorError;
use zixly_crypto::SecretString;
use zixly_db::loader::{self, Input, LoadOptions, LoadStatus};
use zixly_domain::ingest::{CustomMetricRow, IngestRow, ValidRow};

use super::Plan;
use crate::engine::{RunSummary, SyncCtx};
use crate::SyncError;

pub const SOURCE: &str = "asana";

pub(crate) async fn sync(ctx: &SyncCtx<'_>, token: &SecretString) -> Result<RunSummary, SyncError> {
    // 1. Fetch (no writes).
    let mapping = ProjectMapping::from_settings(&ctx.integration.settings).map_err(|e| {
        SyncError::Connector(ConnectorError::Permanent(format!(
            "Asana integration settings: {e}"
        )))
    })?;
    let ingest = loader::ingest_context(ctx.app, ctx.tenant_id, SOURCE).await?;
    let client = AsanaClient::new(ctx.http.clone(), &ctx.config.api_url, token.clone())
        .with_pacer(ctx.pacer.clone());
    let workspaces = client.workspaces().await?;
    let workspace = asana::choose_workspace(&workspaces, ctx.setting("asana_workspace"))?;
    let now = Utc::now();
    let plan = Plan::new(ctx, now);
    let read = client
        .read(&workspace.gid, &mapping, plan.since, ingest.time_zone, now)
        .await?;
    let names: HashMap<&str, &str> = read
        .clients
        .iter()
        .filter_map(|c| c.name.as_deref().map(|n| (c.client_id.as_str(), n)))
        .collect();

    // 2. Recomputed days lose what the read no longer reports.
    let mut deleted = 0;
    if !read.recomputed.is_empty() {
        let mut keep: HashMap<&str, Vec<(String, DateTime<Utc>)>> = HashMap::new();
        for m in &read.metrics {
            keep.entry(m.client_id.as_str())
                .or_default()
                .push((m.metric_name.to_string(), m.record_date));
        }
        let tx = ctx.app.begin_tenant(ctx.tenant_id).await?;
        for r in &read.recomputed {
            let from = r.from.map(|d| day_start(&ingest.time_zone, d));
            let kept = keep
                .get(r.client_id.as_str())
                .map_or(&[][..], Vec::as_slice);
            deleted += tx.prune_metrics(SOURCE, &r.client_id, from, kept).await?;
        }
        tx.commit().await?;
    }

    // 3. Load the metrics with the cursor.
    let mut inputs: Vec<Input<CustomMetricRow>> = Vec::with_capacity(read.metrics.len());
    for (i, m) in read.metrics.iter().enumerate() {
        let line = i as u64 + 1;
        let at = m.record_date.to_rfc3339();
        let value = m.value.to_string();
        let mut fields = vec![
            ("client_id", m.client_id.as_str()),
            ("metric_name", m.metric_name),
            ("metric_value", value.as_str()),
            ("unit", m.unit),
            ("record_date", at.as_str()),
            ("source_system", SOURCE),
        ];
        if let Some(n) = names.get(m.client_id.as_str()) {
            fields.push(("client_name", n));
        }
        inputs.push(match CustomMetricRow::parse_named(&fields, line, &ingest) {
            Ok(row) => Input::Row(ValidRow { line, row }),
            Err(e) => Input::Invalid(e),
        });
    }
    let options = LoadOptions {
        integration_id: Some(ctx.integration.id),
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

    Ok(RunSummary {
        sync_run_ids: vec![report.sync_run_id],
        rows_read: read.metrics.len() as u64,
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        deleted,
        skipped: 0,
        not_run: None,
    })
}

/// The instant day `d` starts in `tz` (the earliest valid local time on DST days): the same
/// `record_date` the connector gives that day's metrics.
fn day_start<Z: TimeZone>(tz: &Z, d: NaiveDate) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
    loop {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
}
