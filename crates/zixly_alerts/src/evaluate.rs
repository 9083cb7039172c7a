//! Rule evaluation: the `alert_evaluate` job and its schedule.
//!
//! **When.** The loader enqueues the job in the transaction that commits a load's rows (only when
//! rows were inserted or updated, `zixly_db::queries::alerts::evaluate_job`: one live job per
//! tenant, so a burst of loads evaluates once), and the schedule registered here enqueues it for
//! every tenant with an enabled rule every [`SCHEDULE_EVERY`] (pending periods, repeats, snoozes
//! ending and new days need time to pass, not data). A load that commits while its tenant's
//! evaluation is already running finds that job live and adds none: the next scheduled run sees it.
//!
//! **What.** For each enabled rule and each subject of its scope, the latest *complete* bucket —
//! the one before the bucket holding the tenant's today — is judged by `zixly_domain::alerts`,
//! and the state machine there decides the new state and whether to notify;
//! [`zixly_db::TenantTx::record_alert`] writes it with its transition and `alert_notify` job.
//! Goal rules judge the goal's *current* period (its status is a forecast: waiting for the period
//! to end would tell too late), one alert per period, the subject being the goal's client. Stale
//! rules have one alert per subject (bucket `2000-01-01`), not one per bucket: staleness is about
//! now, not about a period. A stale rule on one integration judges that integration's syncs (the
//! last one that wrote rows, and whether it is in `ERROR`), its subject being the tenant.
//!
//! **Idempotent.** The same data judged again is the same observation, which the state machine
//! turns into no transition; an alert row is rewritten only when its state or figure changed.
//! Everything of one tenant runs in one transaction that first takes the tenant's evaluation
//! lock, so two evaluations of a tenant (a scheduled one and one after a load) run one after the
//! other and the second sees what the first recorded.

use std::time::Duration;

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::HashMap;

use uuid::Uuid;
pub use zixly_db::queries::alerts::{evaluate_job, EVALUATE_JOB};
use zixly_db::queries::alerts::{AlertRule, AlertWrite, FinancialBuckets};
use zixly_db::{AppDb, SystemDb, TenantTx};
use zixly_domain::alerts::state::{step, Observation, Policy};
use zixly_domain::alerts::{
    anomaly, check_change, check_goal, check_stale, check_threshold, CompareTo, Condition,
    KpiWords, RuleKind, Scope, Verdict,
};
use zixly_domain::display::{CustomMetricWords, Figures};
use zixly_domain::period::Bucket;
use zixly_queue::{Job, JobError, Worker};

use crate::Services;

/// How often every tenant with an enabled rule is evaluated even without new data.
pub const SCHEDULE_EVERY: Duration = Duration::from_secs(5 * 60);

/// The bucket of stale rules' alerts (one per rule and subject).
fn stale_bucket() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

pub fn register(worker: &mut Worker, services: &Services) {
    let app = services.app.clone();
    worker.register(EVALUATE_JOB, move |job: Job| {
        let app = app.clone();
        async move {
            match evaluate_tenant(&app, job.tenant_id, Utc::now()).await {
                Ok(s) => {
                    if s.transitions > 0 {
                        tracing::info!(tenant_id = %job.tenant_id, rules = s.rules,
                            subjects = s.subjects, transitions = s.transitions,
                            notified = s.notified, "alert rules evaluated");
                    }
                    Ok(())
                }
                Err(e) => Err(JobError::Retry(e)),
            }
        }
    });
    let system = services.system.clone();
    worker.every(SCHEDULE_EVERY, move || {
        let system = system.clone();
        async move {
            match schedule(&system).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(enqueued = n, "scheduled alert evaluations"),
                Err(e) => tracing::warn!(error = %e, "scheduling alert evaluations failed"),
            }
        }
    });
}

/// **Cross-tenant** (through `SystemDb`, only to find the tenants): enqueues an evaluation for
/// every tenant with an enabled rule; returns how many were new.
pub async fn schedule(system: &SystemDb) -> anyhow::Result<usize> {
    let mut n = 0;
    for tenant in system.tenants_with_alert_rules().await? {
        if matches!(
            system.enqueue_job(tenant, &evaluate_job()).await?,
            zixly_db::queue::Enqueued::New(_)
        ) {
            n += 1;
        }
    }
    Ok(n)
}

/// What one evaluation of a tenant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub rules: usize,
    pub subjects: usize,
    pub transitions: usize,
    pub notified: usize,
}

/// Evaluates every enabled rule of `tenant` as of `now`, in one transaction.
pub async fn evaluate_tenant(
    app: &AppDb,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<Summary> {
    let tx = app.begin_tenant(tenant).await?;
    tx.lock_alert_evaluation().await?;
    let today = tx.tenant_today().await?;
    let figures = tenant_figures(&tx).await?;
    let rules = tx.alert_rules(true).await?;
    let reader = Reader::prefetch(&tx, &rules, today).await?;
    let mut summary = Summary::default();
    let mut all_clients: Option<Vec<Uuid>> = None;
    for rule in rules {
        summary.rules += 1;
        if rule.spec.kind == RuleKind::Goal {
            summary.subjects += 1;
            let (t, n) = evaluate_goal_rule(&tx, &rule, &figures, today, now)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "evaluating alert rule {} ({}): {e}",
                        rule.id,
                        rule.spec.name
                    )
                })?;
            summary.transitions += usize::from(t);
            summary.notified += usize::from(n);
            continue;
        }
        let subjects: Vec<Option<Uuid>> = match rule.spec.scope {
            Scope::Tenant => vec![None],
            Scope::Clients => rule.spec.client_ids.iter().copied().map(Some).collect(),
            Scope::EachClient => {
                if all_clients.is_none() {
                    all_clients = Some(tx.client_ids().await?);
                }
                all_clients.iter().flatten().copied().map(Some).collect()
            }
        };
        for subject in subjects {
            summary.subjects += 1;
            let (t, n) = evaluate_one(&reader, &rule, subject, &figures, today, now)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "evaluating alert rule {} ({}): {e}",
                        rule.id,
                        rule.spec.name
                    )
                })?;
            summary.transitions += usize::from(t);
            summary.notified += usize::from(n);
        }
    }
    tx.commit().await?;
    Ok(summary)
}

/// Where an evaluation reads a rule's KPI series. Rules that watch clients one by one over a
/// financial KPI read from sums fetched once per bucket for every client
/// ([`TenantTx::client_financial_buckets`], the same figures as `kpi_series`); the rest (a
/// tenant-wide total, lead KPIs, custom metrics) through [`TenantTx::kpi_series`].
struct Reader<'a> {
    tx: &'a TenantTx,
    financial: HashMap<Bucket, FinancialBuckets>,
}

impl<'a> Reader<'a> {
    /// Reads, per bucket, the widest window any per-client financial rule needs.
    async fn prefetch(
        tx: &'a TenantTx,
        rules: &[AlertRule],
        today: NaiveDate,
    ) -> anyhow::Result<Reader<'a>> {
        let mut windows: HashMap<Bucket, (NaiveDate, NaiveDate)> = HashMap::new();
        for rule in rules {
            let spec = &rule.spec;
            let financial = spec.kpi.as_deref().is_some_and(|k| {
                matches!(
                    k,
                    "revenue" | "expenses" | "net_profit" | "margin" | "cash_flow"
                )
            });
            if spec.scope == Scope::Tenant || !financial {
                continue;
            }
            let Some(from) = window_start(spec, today) else {
                continue;
            };
            let to = last_day(spec.bucket, latest_bucket(spec.bucket, today));
            let w = windows.entry(spec.bucket).or_insert((from, to));
            w.0 = w.0.min(from);
        }
        let mut financial = HashMap::new();
        for (bucket, (from, to)) in windows {
            financial.insert(bucket, tx.client_financial_buckets(bucket, from, to).await?);
        }
        Ok(Reader { tx, financial })
    }

    async fn series(
        &self,
        kpi: &str,
        subject: Option<Uuid>,
        bucket: Bucket,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(NaiveDate, Option<Decimal>)>> {
        if let (Some(client), Some(read)) = (subject, self.financial.get(&bucket)) {
            if let Some(series) = read.series(kpi, client, bucket, from, to) {
                return Ok(series);
            }
        }
        Ok(self.tx.kpi_series(kpi, subject, bucket, from, to).await?)
    }
}

/// The latest complete bucket: the one before today's.
fn latest_bucket(bucket: Bucket, today: NaiveDate) -> NaiveDate {
    buckets_back(bucket, bucket.start_of(today), 1)
}

/// The first day a rule's figures are read from (`None`: it reads no series).
fn window_start(spec: &zixly_db::queries::alerts::RuleSpec, today: NaiveDate) -> Option<NaiveDate> {
    let latest = latest_bucket(spec.bucket, today);
    match spec.kind {
        RuleKind::Threshold => Some(latest),
        RuleKind::Change => Some(compared_bucket(spec, latest).0),
        RuleKind::Anomaly => Some(buckets_back(spec.bucket, latest, 3 * season(spec.bucket))),
        RuleKind::Goal | RuleKind::Stale => None,
    }
}

/// The bucket a change rule compares with, and how the reason names it.
fn compared_bucket(
    spec: &zixly_db::queries::alerts::RuleSpec,
    latest: NaiveDate,
) -> (NaiveDate, &'static str) {
    let bucket = spec.bucket;
    match spec.compare_to.unwrap_or(CompareTo::Previous) {
        CompareTo::Previous => (buckets_back(bucket, latest, 1), "the previous period"),
        CompareTo::LastYear => (
            match bucket {
                Bucket::Week => buckets_back(bucket, latest, 52),
                _ => latest - Months::new(12),
            },
            "the same period last year",
        ),
    }
}

/// How the tenant's figures read in reasons: its base currency, its custom metrics' names and
/// units.
async fn tenant_figures(tx: &TenantTx) -> anyhow::Result<Figures> {
    let profile = tx.tenant_profile().await?;
    let custom = tx
        .metric_definitions()
        .await?
        .into_iter()
        .map(|d| CustomMetricWords {
            name: d.name,
            display_name: d.display_name,
            unit: d.unit,
        })
        .collect();
    Ok(Figures::new(&profile.base_currency, custom))
}

/// The first day of the bucket `back` buckets before the one starting at `start`.
fn buckets_back(bucket: Bucket, start: NaiveDate, back: u32) -> NaiveDate {
    match bucket {
        Bucket::Day => start - Days::new(u64::from(back)),
        Bucket::Week => start - Days::new(7 * u64::from(back)),
        Bucket::Month => start - Months::new(back),
    }
}

/// Buckets per seasonal cycle.
fn season(bucket: Bucket) -> u32 {
    match bucket {
        Bucket::Day => 7,
        Bucket::Week => 52,
        Bucket::Month => 12,
    }
}

fn last_day(bucket: Bucket, start: NaiveDate) -> NaiveDate {
    bucket.next_start(start).pred_opt().expect("a day before")
}

async fn evaluate_one(
    reader: &Reader<'_>,
    rule: &AlertRule,
    subject: Option<Uuid>,
    figures: &Figures,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<(bool, bool)> {
    let tx = reader.tx;
    let spec = &rule.spec;
    let bucket = spec.bucket;
    let latest = latest_bucket(bucket, today);
    let latest_end = last_day(bucket, latest);
    let kpi = spec.kpi.as_deref().unwrap_or("");
    let words = KpiWords {
        figures,
        kpi: spec.kpi.as_deref(),
    };
    let condition = spec.condition.unwrap_or(Condition::Above);
    let value = spec.value.unwrap_or(Decimal::ZERO);
    let mut method = None;
    let (bucket_start, verdict) = match spec.kind {
        RuleKind::Threshold => {
            let s = reader
                .series(kpi, subject, bucket, latest, latest_end)
                .await?;
            let v = s.first().and_then(|(_, v)| *v);
            (latest, check_threshold(words, v, condition, value))
        }
        RuleKind::Change => {
            let (before_start, label) = compared_bucket(spec, latest);
            let now_s = reader
                .series(kpi, subject, bucket, latest, latest_end)
                .await?;
            let before_s = reader
                .series(
                    kpi,
                    subject,
                    bucket,
                    before_start,
                    last_day(bucket, before_start),
                )
                .await?;
            let cur = now_s.first().and_then(|(_, v)| *v);
            let before = before_s.first().and_then(|(_, v)| *v);
            let mode = spec
                .change_mode
                .unwrap_or(zixly_domain::alerts::ChangeMode::Percent);
            (
                latest,
                check_change(words, cur, before, mode, condition, value, label),
            )
        }
        RuleKind::Anomaly => {
            let cycle = season(bucket);
            let from = buckets_back(bucket, latest, 3 * cycle);
            let s = reader
                .series(kpi, subject, bucket, from, latest_end)
                .await?;
            let (history, current) = s.split_at(s.len().saturating_sub(1));
            let history: Vec<Option<Decimal>> = history.iter().map(|(_, v)| *v).collect();
            let verdict = match current.first().and_then(|(_, v)| *v) {
                None => Verdict::no_data(format!("no {} in the bucket", words.name())),
                Some(x) => match anomaly::judge(&history, x, cycle as usize) {
                    None => Verdict {
                        value: Some(x),
                        ..Verdict::no_data(format!(
                            "not enough history of {} to judge (at least {} periods)",
                            words.name(),
                            anomaly::MIN_HISTORY
                        ))
                    },
                    Some(j) => {
                        method = Some(j.method.as_str());
                        // A rule with a condition watches one side only (spikes, or drops).
                        let on_watched_side = match spec.condition {
                            None => true,
                            Some(Condition::Above) => j.high_decimal().is_some_and(|h| x > h),
                            Some(Condition::Below) => j.low_decimal().is_some_and(|l| x < l),
                        };
                        Verdict {
                            crossed: Some(j.anomalous && on_watched_side),
                            value: Some(x),
                            threshold: None,
                            expected_low: j.low_decimal(),
                            expected_high: j.high_decimal(),
                            reason: format!(
                                "{} {} is {} the expected {} – {} ({})",
                                words.name(),
                                words.show(x),
                                if j.anomalous { "outside" } else { "within" },
                                words.show(j.low_decimal().unwrap_or_default()),
                                words.show(j.high_decimal().unwrap_or_default()),
                                j.method.as_str()
                            ),
                        }
                    }
                },
            };
            (latest, verdict)
        }
        RuleKind::Stale => {
            let f = match spec.integration_id {
                // An integration deleted since the rule was read: nothing to judge.
                Some(i) => match tx.integration_freshness(i).await? {
                    Some(f) => f,
                    None => return Ok((false, false)),
                },
                None => tx.data_freshness(subject).await?,
            };
            let days = f.last_data.map(|d| (today - d).num_days());
            let limit = i64::from(spec.stale_days.unwrap_or(1));
            (stale_bucket(), check_stale(days, limit, &f.errored))
        }
        RuleKind::Goal => unreachable!("goal rules are evaluated by evaluate_goal_rule"),
    };
    settle(
        tx,
        rule,
        subject,
        bucket_start,
        verdict,
        comparison(spec, condition, value, method),
        now,
    )
    .await
}

/// What a rule compared, for the alert's `detail`.
fn comparison(
    spec: &zixly_db::queries::alerts::RuleSpec,
    condition: Condition,
    value: Decimal,
    method: Option<&str>,
) -> serde_json::Value {
    match spec.kind {
        RuleKind::Threshold => json!({"condition": condition.as_str(), "value": value}),
        RuleKind::Change => json!({
            "condition": condition.as_str(), "value": value,
            "change_mode": spec.change_mode.map(|m| m.as_str()),
            "compare_to": spec.compare_to.map(|c| c.as_str()),
        }),
        RuleKind::Anomaly => json!({"method": method}),
        RuleKind::Goal => json!({"goal_id": spec.goal_id}),
        RuleKind::Stale => {
            json!({"stale_days": spec.stale_days, "integration_id": spec.integration_id})
        }
    }
}

/// A goal rule: the status of its goal's current period ([`zixly_domain::alerts::check_goal`]).
/// A goal archived (or deleted) meanwhile has nothing to judge.
async fn evaluate_goal_rule(
    tx: &TenantTx,
    rule: &AlertRule,
    figures: &Figures,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<(bool, bool)> {
    let Some(goal_id) = rule.spec.goal_id else {
        return Ok((false, false));
    };
    let Some(goal) = tx.goal(goal_id).await? else {
        return Ok((false, false));
    };
    let targets = tx.goal_targets(&[goal.id]).await?;
    let progress = tx.goal_progress(&goal, &targets, today, 0).await?;
    let verdict = check_goal(
        &progress.current,
        KpiWords {
            figures,
            kpi: Some(&goal.kpi),
        },
    );
    let mut comparison = json!({"goal_id": goal.id, "goal_kind": goal.kind.as_str(),
        "period_end": progress.current.period.to()});
    if let Some(status) = progress.current.status {
        comparison["status"] = json!(status.as_str());
    }
    if let Some(e) = progress.current.expected_to_date {
        comparison["expected_to_date"] = json!(e);
    }
    settle(
        tx,
        rule,
        goal.client_id,
        progress.current.period.from(),
        verdict,
        comparison,
        now,
    )
    .await
}

/// Runs the state machine on a verdict and records what changed: `(a transition, notified)`.
async fn settle(
    tx: &TenantTx,
    rule: &AlertRule,
    subject: Option<Uuid>,
    bucket_start: NaiveDate,
    verdict: Verdict,
    comparison: serde_json::Value,
    now: DateTime<Utc>,
) -> anyhow::Result<(bool, bool)> {
    let spec = &rule.spec;
    let policy = Policy {
        pending_for: chrono::Duration::seconds(spec.pending_for),
        repeat_every: spec.repeat_every.map(chrono::Duration::seconds),
        snoozed_until: rule.snoozed_until,
    };
    let stored = tx.stored_alert(rule.id, subject, bucket_start).await?;
    let s = step(
        stored.as_ref().map(|a| &a.memory),
        Observation::from_crossed(verdict.crossed),
        &policy,
        now,
    );
    let Some(memory) = s.memory else {
        return Ok((false, false));
    };
    if s.transition.is_none() && stored.as_ref().is_some_and(|a| a.value == verdict.value) {
        return Ok((false, false));
    }
    let detail = json!({
        "rule": spec.name,
        "kind": spec.kind.as_str(),
        "kpi": spec.kpi,
        "client_id": subject,
        "bucket": spec.bucket.as_str(),
        "bucket_start": bucket_start,
        "comparison": comparison,
        "reason": verdict.reason,
    });
    tx.record_alert(&AlertWrite {
        rule_id: rule.id,
        client_id: subject,
        bucket_start,
        memory,
        value: verdict.value,
        threshold: verdict.threshold,
        expected_low: verdict.expected_low,
        expected_high: verdict.expected_high,
        detail: &detail,
        transition: s.transition,
        notify: s.notify,
    })
    .await?;
    Ok((s.transition.is_some(), s.notify))
}
