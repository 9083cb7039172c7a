//! Alert rules (+ their channels), alert state and its history (migrations/0013), and the one
//! read of a KPI per bucket the evaluation needs ([`TenantTx::kpi_series`]).
//!
//! An alert is one row per (rule, subject, bucket): [`TenantTx::record_alert`] upserts it on that
//! key, appends the `alert_transitions` row of a state change and — in the same transaction, when
//! the change is to be notified — enqueues the `alert_notify` job (unique key: the transition id),
//! so a notification exists exactly when its transition does. Every statement filters on
//! `tenant_id = $1` as well as running under RLS.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;
use uuid::Uuid;
use zixly_domain::alerts::state::{AlertState, Memory};
use zixly_domain::alerts::{ChangeMode, CompareTo, Condition, RuleKind, Scope};
use zixly_domain::period::{Bucket, DateRange};

use crate::error::{Ctx, DbError, DbResult};
use crate::queue::{Enqueued, JobState, NewJob};
use crate::{SystemDb, TenantTx};

/// The job that evaluates a tenant's rules (handled by `zixly_alerts::evaluate`); enqueued by the
/// loader after every load that wrote rows.
pub const EVALUATE_JOB: &str = "alert_evaluate";
/// The job that notifies one transition (handled by `zixly_alerts::deliver`).
pub const NOTIFY_JOB: &str = "alert_notify";

/// The evaluation job of a tenant. Its unique key keeps at most one waiting evaluation per
/// tenant, so a burst of loads evaluates once.
pub fn evaluate_job() -> NewJob {
    evaluate_job_keyed(EVALUATE_KEYS[0])
}

/// Two keys, because a live job includes a *running* one: a load that commits while the
/// tenant's evaluation runs (which may have read the data before it) enqueues under the other
/// key, so its change is judged right after, not at the next schedule.
const EVALUATE_KEYS: [&str; 2] = ["tenant", "tenant-again"];

fn evaluate_job_keyed(key: &str) -> NewJob {
    let mut job = NewJob::new(EVALUATE_JOB, serde_json::json!({}));
    job.unique_key = Some(key.into());
    job.priority = 3;
    job
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub id: Uuid,
    pub spec: RuleSpec,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a rule says: everything a create or a change writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub name: String,
    pub kind: RuleKind,
    pub kpi: Option<String>,
    pub scope: Scope,
    pub client_ids: Vec<Uuid>,
    pub bucket: Bucket,
    pub condition: Option<Condition>,
    pub value: Option<Decimal>,
    pub change_mode: Option<ChangeMode>,
    pub compare_to: Option<CompareTo>,
    pub goal_id: Option<Uuid>,
    pub stale_days: Option<i32>,
    /// A stale rule on one integration (scope `Tenant`): judged by that integration's syncs
    /// ([`TenantTx::integration_freshness`]) rather than by all data.
    pub integration_id: Option<Uuid>,
    /// Seconds.
    pub pending_for: i64,
    /// Seconds; `None`: notify once.
    pub repeat_every: Option<i64>,
    pub enabled: bool,
    pub channel_ids: Vec<Uuid>,
}

/// One bucket's financial sums of one client, in the base currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSums {
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub cash_flow: Decimal,
}

/// [`TenantTx::client_financial_buckets`]: every client's sums per bucket of one window.
#[derive(Debug, Clone)]
pub struct FinancialBuckets {
    bucket: Bucket,
    /// The first day of every bucket of the window, oldest first.
    starts: Vec<NaiveDate>,
    /// Per client, the sums of each bucket (`None`: no financial row in it).
    by_client: HashMap<Uuid, Vec<Option<BucketSums>>>,
}

impl FinancialBuckets {
    /// What [`TenantTx::kpi_series`] answers for `kpi` of `client` per `bucket` in `[from, to]`,
    /// when the KPI is one of the financial ones (revenue, expenses, net profit, margin, cash
    /// flow) and the range lies inside the window read; `None` otherwise (read it another way).
    pub fn series(
        &self,
        kpi: &str,
        client: Uuid,
        bucket: Bucket,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Option<Vec<(NaiveDate, Option<Decimal>)>> {
        if bucket != self.bucket
            || !matches!(
                kpi,
                "revenue" | "expenses" | "net_profit" | "margin" | "cash_flow"
            )
        {
            return None;
        }
        let first = self.starts.binary_search(&bucket.start_of(from)).ok()?;
        let last = self.starts.binary_search(&bucket.start_of(to)).ok()?;
        let sums = self.by_client.get(&client);
        Some(
            (first..=last)
                .map(|i| {
                    let value = sums.and_then(|v| v[i]).and_then(|b| match kpi {
                        "revenue" => Some(b.revenue),
                        "expenses" => Some(b.expenses),
                        "net_profit" => Some(b.revenue - b.expenses),
                        "cash_flow" => Some(b.cash_flow),
                        _ => zixly_domain::figures::margin(b.revenue - b.expenses, b.revenue),
                    });
                    (self.starts[i], value)
                })
                .collect(),
        )
    }
}

/// The stored state of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: Uuid,
    pub memory: Memory,
    pub value: Option<Decimal>,
}

/// One evaluation's write (see [`TenantTx::record_alert`]).
#[derive(Debug, Clone)]
pub struct AlertWrite<'a> {
    pub rule_id: Uuid,
    pub client_id: Option<Uuid>,
    pub bucket_start: NaiveDate,
    pub memory: Memory,
    pub value: Option<Decimal>,
    pub threshold: Option<Decimal>,
    pub expected_low: Option<Decimal>,
    pub expected_high: Option<Decimal>,
    pub detail: &'a serde_json::Value,
    /// (from, to) of the change, if the state changed (or a repeat notification).
    pub transition: Option<(Option<AlertState>, AlertState)>,
    pub notify: bool,
}

/// An alert as the API and the page list it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub kind: RuleKind,
    pub client_id: Option<Uuid>,
    pub client_name: Option<String>,
    pub bucket_start: NaiveDate,
    pub state: AlertState,
    pub value: Option<Decimal>,
    pub threshold: Option<Decimal>,
    pub expected_low: Option<Decimal>,
    pub expected_high: Option<Decimal>,
    pub detail: serde_json::Value,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub evaluated_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One row of an alert's history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    pub id: Uuid,
    pub from_state: Option<AlertState>,
    pub to_state: AlertState,
    pub value: Option<Decimal>,
    pub notify: bool,
    pub occurred_at: DateTime<Utc>,
}

/// How fresh a subject's data is, for stale rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// The latest day with a record (a client), or of a load that wrote rows (the tenant).
    pub last_data: Option<NaiveDate>,
    /// Connections in error (tenant-wide only): their provider names.
    pub errored: Vec<String>,
}

fn parse<T: FromStr>(s: &str, column: &'static str) -> DbResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| DbError::Config(format!("{column}: {e}")))
}

fn parse_opt<T: FromStr>(s: Option<String>, column: &'static str) -> DbResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    s.map(|s| parse(&s, column)).transpose()
}

const RULE_COLUMNS: &str = "r.id, r.name, r.kind, r.kpi, r.scope, r.client_ids, r.bucket, r.condition, r.value,
     r.change_mode, r.compare_to, r.goal_id, r.stale_days, extract(epoch from r.pending_for)::bigint,
     extract(epoch from r.repeat_every)::bigint, r.snoozed_until, r.enabled, r.created_by, r.created_at,
     r.updated_at,
     array(select c.channel_id from alert_rule_channels c
            where c.tenant_id = r.tenant_id and c.rule_id = r.id order by c.channel_id),
     r.integration_id";

fn rule_from_row(r: &tokio_postgres::Row) -> DbResult<AlertRule> {
    Ok(AlertRule {
        id: r.get(0),
        spec: RuleSpec {
            name: r.get(1),
            kind: parse(r.get(2), "alert_rules.kind")?,
            kpi: r.get(3),
            scope: parse(r.get(4), "alert_rules.scope")?,
            client_ids: r.get(5),
            bucket: parse(r.get(6), "alert_rules.bucket")?,
            condition: parse_opt(r.get(7), "alert_rules.condition")?,
            value: r.get(8),
            change_mode: parse_opt(r.get(9), "alert_rules.change_mode")?,
            compare_to: parse_opt(r.get(10), "alert_rules.compare_to")?,
            goal_id: r.get(11),
            stale_days: r.get(12),
            integration_id: r.get(21),
            pending_for: r.get(13),
            repeat_every: r.get(14),
            enabled: r.get(16),
            channel_ids: r.get(20),
        },
        snoozed_until: r.get(15),
        created_by: r.get(17),
        created_at: r.get(18),
        updated_at: r.get(19),
    })
}

const ALERT_COLUMNS: &str =
    "a.id, a.rule_id, r.name, r.kind, a.client_id, c.client_name, a.bucket_start, a.state,
     a.value, a.threshold, a.expected_low, a.expected_high, a.detail, a.fired_at, a.resolved_at,
     a.evaluated_at, a.updated_at";

const ALERT_FROM: &str = "alerts a
     join alert_rules r on r.tenant_id = a.tenant_id and r.id = a.rule_id
     left join client_kpis c on c.tenant_id = a.tenant_id and c.id = a.client_id";

fn alert_from_row(r: &tokio_postgres::Row) -> DbResult<AlertView> {
    Ok(AlertView {
        id: r.get(0),
        rule_id: r.get(1),
        rule_name: r.get(2),
        kind: parse(r.get(3), "alert_rules.kind")?,
        client_id: r.get(4),
        client_name: r.get(5),
        bucket_start: r.get(6),
        state: parse(r.get(7), "alerts.state")?,
        value: r.get(8),
        threshold: r.get(9),
        expected_low: r.get(10),
        expected_high: r.get(11),
        detail: r.get(12),
        fired_at: r.get(13),
        resolved_at: r.get(14),
        evaluated_at: r.get(15),
        updated_at: r.get(16),
    })
}

impl TenantTx {
    async fn write_rule_channels(&self, rule: Uuid, channels: &[Uuid]) -> DbResult<()> {
        self.client()
            .execute(
                "delete from alert_rule_channels where tenant_id = $1 and rule_id = $2",
                &[&self.tenant_id(), &rule],
            )
            .await
            .ctx("replacing a rule's channels")?;
        self.client()
            .execute(
                "insert into alert_rule_channels (tenant_id, rule_id, channel_id)
                 select $1, $2, c from unnest($3::uuid[]) c on conflict do nothing",
                &[&self.tenant_id(), &rule, &channels],
            )
            .await
            .ctx("linking a rule to its channels")?;
        Ok(())
    }

    /// Which of `ids` are not this tenant's notification channels (a foreign key would say only
    /// "violated"; the API names the ids).
    pub async fn unknown_channels(&self, ids: &[Uuid]) -> DbResult<Vec<Uuid>> {
        let rows = self
            .client()
            .query(
                "select i from unnest($2::uuid[]) i
                  where not exists (select 1 from notification_providers p
                                     where p.tenant_id = $1 and p.id = i)",
                &[&self.tenant_id(), &ids],
            )
            .await
            .ctx("checking notification channels")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Which of `ids` are not this tenant's clients.
    pub async fn unknown_clients(&self, ids: &[Uuid]) -> DbResult<Vec<Uuid>> {
        let rows = self
            .client()
            .query(
                "select i from unnest($2::uuid[]) i
                  where not exists (select 1 from client_kpis c where c.tenant_id = $1 and c.id = i)",
                &[&self.tenant_id(), &ids],
            )
            .await
            .ctx("checking clients")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn write_rule(
        &self,
        id: Option<Uuid>,
        s: &RuleSpec,
        by: Option<Uuid>,
    ) -> DbResult<Option<Uuid>> {
        let (kind, scope, bucket) = (s.kind.as_str(), s.scope.as_str(), s.bucket.as_str());
        let condition = s.condition.map(Condition::as_str);
        let change_mode = s.change_mode.map(ChangeMode::as_str);
        let compare_to = s.compare_to.map(CompareTo::as_str);
        let row = match id {
            None => self
                .client()
                .query_opt(
                    "insert into alert_rules (tenant_id, name, kind, kpi, scope, client_ids, bucket, condition, value,
                                              change_mode, compare_to, goal_id, stale_days, pending_for,
                                              repeat_every, enabled, created_by, integration_id)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 * interval '1 second',
                             $15 * interval '1 second', $16, $17, $18)
                     returning id",
                    &[
                        &self.tenant_id(), &s.name, &kind, &s.kpi, &scope, &s.client_ids, &bucket,
                        &condition, &s.value, &change_mode, &compare_to, &s.goal_id, &s.stale_days,
                        &(s.pending_for as f64), &s.repeat_every.map(|v| v as f64), &s.enabled, &by,
                        &s.integration_id,
                    ],
                )
                .await
                .ctx("creating an alert rule")?,
            Some(id) => self
                .client()
                .query_opt(
                    "update alert_rules
                        set name = $3, kind = $4, kpi = $5, scope = $6, client_ids = $7, bucket = $8,
                            condition = $9, value = $10, change_mode = $11, compare_to = $12, goal_id = $13,
                            stale_days = $14, pending_for = $15 * interval '1 second',
                            repeat_every = $16 * interval '1 second', enabled = $17, integration_id = $18
                      where tenant_id = $1 and id = $2
                     returning id",
                    &[
                        &self.tenant_id(), &id, &s.name, &kind, &s.kpi, &scope, &s.client_ids, &bucket,
                        &condition, &s.value, &change_mode, &compare_to, &s.goal_id, &s.stale_days,
                        &(s.pending_for as f64), &s.repeat_every.map(|v| v as f64), &s.enabled,
                        &s.integration_id,
                    ],
                )
                .await
                .ctx("changing an alert rule")?,
        };
        let Some(row) = row else { return Ok(None) };
        let id: Uuid = row.get(0);
        self.write_rule_channels(id, &s.channel_ids).await?;
        Ok(Some(id))
    }

    /// Creates a rule with its channels.
    pub async fn create_alert_rule(
        &self,
        spec: &RuleSpec,
        by: Option<Uuid>,
    ) -> DbResult<AlertRule> {
        let id = self
            .write_rule(None, spec, by)
            .await?
            .expect("insert returns its row");
        self.alert_rule(id)
            .await?
            .ok_or(DbError::NotFound("alert rule"))
    }

    /// Replaces what a rule says (and its channels); `None` for an id the tenant does not have.
    pub async fn update_alert_rule(
        &self,
        id: Uuid,
        spec: &RuleSpec,
    ) -> DbResult<Option<AlertRule>> {
        if self.write_rule(Some(id), spec, None).await?.is_none() {
            return Ok(None);
        }
        self.alert_rule(id).await
    }

    /// Snoozes a rule until `until` (`None`: wake it).
    pub async fn snooze_alert_rule(
        &self,
        id: Uuid,
        until: Option<DateTime<Utc>>,
    ) -> DbResult<Option<AlertRule>> {
        let n = self
            .client()
            .execute(
                "update alert_rules set snoozed_until = $3 where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id, &until],
            )
            .await
            .ctx("snoozing an alert rule")?;
        if n == 0 {
            return Ok(None);
        }
        self.alert_rule(id).await
    }

    /// Deletes a rule, its channels and its alerts (cascade); the deleted rule, if there was one.
    pub async fn delete_alert_rule(&self, id: Uuid) -> DbResult<Option<AlertRule>> {
        let Some(rule) = self.alert_rule(id).await? else {
            return Ok(None);
        };
        self.client()
            .execute(
                "delete from alert_rules where tenant_id = $1 and id = $2",
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("deleting an alert rule")?;
        Ok(Some(rule))
    }

    pub async fn alert_rule(&self, id: Uuid) -> DbResult<Option<AlertRule>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {RULE_COLUMNS} from alert_rules r where r.tenant_id = $1 and r.id = $2"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading an alert rule")?;
        row.as_ref().map(rule_from_row).transpose()
    }

    /// Every rule (`enabled_only`: those the evaluation runs), oldest first.
    pub async fn alert_rules(&self, enabled_only: bool) -> DbResult<Vec<AlertRule>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {RULE_COLUMNS} from alert_rules r
                      where r.tenant_id = $1 and (r.enabled or not $2) order by r.id"
                ),
                &[&self.tenant_id(), &enabled_only],
            )
            .await
            .ctx("listing alert rules")?;
        rows.iter().map(rule_from_row).collect()
    }

    /// The alert of (rule, subject, bucket), locked until the transaction ends so that two
    /// evaluations cannot both record the same change.
    pub async fn stored_alert(
        &self,
        rule: Uuid,
        client: Option<Uuid>,
        bucket_start: NaiveDate,
    ) -> DbResult<Option<StoredAlert>> {
        let row = self
            .client()
            .query_opt(
                "select id, state, pending_since, fired_at, resolved_at, last_notified_at, value
                   from alerts
                  where tenant_id = $1 and rule_id = $2
                    and subject_key = coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid)
                    and bucket_start = $4
                  for update",
                &[&self.tenant_id(), &rule, &client, &bucket_start],
            )
            .await
            .ctx("reading an alert")?;
        row.map(|r| {
            Ok(StoredAlert {
                id: r.get(0),
                memory: Memory {
                    state: parse(r.get(1), "alerts.state")?,
                    pending_since: r.get(2),
                    fired_at: r.get(3),
                    resolved_at: r.get(4),
                    last_notified_at: r.get(5),
                },
                value: r.get(6),
            })
        })
        .transpose()
    }

    /// Upserts the alert of (rule, subject, bucket) with the evaluation's figures, appends the
    /// transition row when there is one, and enqueues its `alert_notify` job when it is to be
    /// notified. Returns the transition's id.
    pub async fn record_alert(&self, w: &AlertWrite<'_>) -> DbResult<Option<Uuid>> {
        let m = &w.memory;
        let row = self
            .client()
            .query_one(
                "insert into alerts (tenant_id, rule_id, client_id, subject_key, bucket_start, state, value,
                                     threshold, expected_low, expected_high, detail, pending_since,
                                     fired_at, resolved_at, last_notified_at, evaluated_at)
                 values ($1, $2, $3, coalesce($3, '00000000-0000-0000-0000-000000000000'::uuid), $4, $5,
                         $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
                 on conflict (tenant_id, rule_id, subject_key, bucket_start) do update
                    set state = excluded.state, value = excluded.value, threshold = excluded.threshold,
                        expected_low = excluded.expected_low, expected_high = excluded.expected_high,
                        detail = excluded.detail, pending_since = excluded.pending_since,
                        fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,
                        last_notified_at = excluded.last_notified_at, evaluated_at = now()
                 returning id",
                &[
                    &self.tenant_id(), &w.rule_id, &w.client_id, &w.bucket_start, &m.state.as_str(),
                    &w.value, &w.threshold, &w.expected_low, &w.expected_high, w.detail,
                    &m.pending_since, &m.fired_at, &m.resolved_at, &m.last_notified_at,
                ],
            )
            .await
            .ctx("recording an alert")?;
        let alert_id: Uuid = row.get(0);
        let Some((from, to)) = w.transition else {
            return Ok(None);
        };
        let id = Uuid::now_v7();
        self.client()
            .execute(
                "insert into alert_transitions (tenant_id, id, alert_id, from_state, to_state, value, notify)
                 values ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &self.tenant_id(), &id, &alert_id, &from.map(AlertState::as_str), &to.as_str(),
                    &w.value, &w.notify,
                ],
            )
            .await
            .ctx("recording an alert's transition")?;
        if w.notify {
            let mut job = NewJob::new(
                NOTIFY_JOB,
                serde_json::json!({"transition_id": id.to_string()}),
            );
            job.unique_key = Some(id.to_string());
            self.enqueue_job(&job).await?;
        }
        Ok(Some(id))
    }

    /// Alerts, most recently changed first (`state`: only those in it).
    pub async fn list_alerts(
        &self,
        state: Option<AlertState>,
        rule: Option<Uuid>,
        limit: i64,
    ) -> DbResult<Vec<AlertView>> {
        let state = state.map(AlertState::as_str);
        let rows = self
            .client()
            .query(
                &format!(
                    "select {ALERT_COLUMNS} from {ALERT_FROM}
                      where a.tenant_id = $1 and ($2::text is null or a.state = $2)
                        and ($4::uuid is null or a.rule_id = $4)
                      order by a.updated_at desc, a.id desc limit $3"
                ),
                &[&self.tenant_id(), &state, &limit, &rule],
            )
            .await
            .ctx("listing alerts")?;
        rows.iter().map(alert_from_row).collect()
    }

    pub async fn alert(&self, id: Uuid) -> DbResult<Option<AlertView>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {ALERT_COLUMNS} from {ALERT_FROM} where a.tenant_id = $1 and a.id = $2"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading an alert")?;
        row.as_ref().map(alert_from_row).transpose()
    }

    /// An alert's history, oldest first.
    pub async fn alert_transitions(&self, alert: Uuid) -> DbResult<Vec<AlertTransition>> {
        let rows = self
            .client()
            .query(
                "select id, from_state, to_state, value, notify, occurred_at from alert_transitions
                  where tenant_id = $1 and alert_id = $2 order by occurred_at, id",
                &[&self.tenant_id(), &alert],
            )
            .await
            .ctx("reading an alert's history")?;
        rows.iter()
            .map(|r| {
                Ok(AlertTransition {
                    id: r.get(0),
                    from_state: parse_opt(r.get(1), "alert_transitions.from_state")?,
                    to_state: parse(r.get(2), "alert_transitions.to_state")?,
                    value: r.get(3),
                    notify: r.get(4),
                    occurred_at: r.get(5),
                })
            })
            .collect()
    }

    /// Today in the tenant's time zone: buckets are complete when they end before it.
    pub async fn tenant_today(&self) -> DbResult<NaiveDate> {
        let row = self
            .client()
            .query_one(
                "select (now() at time zone time_zone)::date from tenants where id = $1",
                &[&self.tenant_id()],
            )
            .await
            .ctx("reading the tenant's date")?;
        Ok(row.get(0))
    }

    /// The ids of the tenant's clients (rules evaluated for each client).
    pub async fn client_ids(&self) -> DbResult<Vec<Uuid>> {
        let rows = self
            .client()
            .query(
                "select id from client_kpis where tenant_id = $1 order by id",
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing client ids")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The value of `kpi` in every `bucket` of `[from, to]` (whole buckets: `from` is a bucket's
    /// first day, `to` a bucket's last), oldest first; `None` for a bucket without data.
    ///
    /// Not a reader of its own: one [`TenantTx::kpi_actuals`] call with one range per bucket, so
    /// a rule judges exactly the figure a goal, the dashboard and the reports show (ratios as
    /// fractions, custom metrics by their definition's aggregation, money in the base currency).
    pub async fn kpi_series(
        &self,
        kpi: &str,
        client: Option<Uuid>,
        bucket: Bucket,
        from: NaiveDate,
        to: NaiveDate,
    ) -> DbResult<Vec<(NaiveDate, Option<Decimal>)>> {
        let mut ranges = Vec::new();
        let mut s = bucket.start_of(from);
        while s <= to {
            let next = bucket.next_start(s);
            let last = next.pred_opt().expect("a day before a bucket's start");
            ranges.push(DateRange::new(s, last).map_err(|e| DbError::Config(e.to_string()))?);
            s = next;
        }
        let actuals = self.kpi_actuals(kpi, client, &ranges).await?;
        Ok(ranges
            .iter()
            .map(DateRange::from)
            .zip(actuals.values)
            .collect())
    }

    /// Every client's financial sums per `bucket` over `[from, to]` (whole buckets), in one
    /// read: what an evaluation of rules that watch each client reads once instead of one
    /// [`TenantTx::kpi_series`] per rule and client (a 500-client tenant with ten rules made
    /// 25,000 reads of daily rows per evaluation; see BENCHMARKS.md, "Alert evaluation").
    ///
    /// The figures are [`TenantTx::kpi_series`]'s to the cent, because they are computed the same
    /// way: [`TenantTx::daily_totals`]'s per-day sums (converted to the base currency with the
    /// day's rate, rounded to cents per day), then added up per bucket — here in SQL, there in
    /// `kpi_actuals`. The test `a_batched_read_equals_kpi_series_per_client` compares the two.
    pub async fn client_financial_buckets(
        &self,
        bucket: Bucket,
        from: NaiveDate,
        to: NaiveDate,
    ) -> DbResult<FinancialBuckets> {
        let from = bucket.start_of(from);
        let to = bucket
            .next_start(to)
            .pred_opt()
            .expect("a day before a bucket's start");
        // Per day: converted with the day's rate and rounded to cents, as `daily_totals`.
        let per_day = |rows: &str| {
            format!(
                "g as (select f.client_kpi_id as cid, f.record_date as d, f.currency as cur,
                              sum(f.revenue) as r, sum(f.expenses) as e, sum(f.cash_flow) as c
                         from {rows}
                        group by 1, 2, 3),
                 v as (select g.cid, g.d, g.r * k.f as r, g.e * k.f as e, g.c * k.f as c
                         from g, z, lateral (select {f} as f) k),
                 days as (select cid, d, round(coalesce(sum(r), 0), 2) as r,
                                 round(coalesce(sum(e), 0), 2) as e, round(coalesce(sum(c), 0), 2) as c
                            from v group by cid, d)",
                f = super::dashboard::fx_factor("g.cur", "g.d"),
            )
        };
        let sql = if bucket == Bucket::Month {
            // Months whose rows are all in the base currency come from the rollups: their per-day
            // rounding is exact, so the month's sum is the sum of its rounded days. A month with
            // any foreign amount is read raw and rounded per day (rounding half away from zero
            // depends on the day's whole sum, not on each currency's part) — except before a
            // retention cutoff (migrations/0022), where only the month is kept: it counts as one
            // entry on its first day, converted at that day's rate, as in `daily_totals`.
            format!(
                "with z as (select base_currency as base,
                                   coalesce(zixly_raw_data_from(raw_retention_months, time_zone), '-infinity'::date) as raw_from
                              from tenants where id = $1),
                      fm as (select m.client_kpi_id as cid, m.month,
                                    bool_or(m.currency <> z.base) and m.month >= z.raw_from as mixed,
                                    sum(m.revenue) as r, sum(m.expenses) as e, sum(m.cash_flow) as c
                               from financial_months m, z
                              where m.tenant_id = $1 and m.month between $2 and $3
                              group by 1, 2, z.raw_from),
                      kept as (select m.client_kpi_id as cid, m.month as d, m.currency as cur,
                                      m.revenue as r, m.expenses as e, m.cash_flow as c
                                 from financial_months m, z
                                where m.tenant_id = $1 and m.month between $2 and $3 and m.month < z.raw_from),
                      {}
                 select cid, month, r, e, c from fm where not mixed and month >= (select raw_from from z)
                 union all
                 select cid, date_trunc($4, d::timestamp)::date, sum(r), sum(e), sum(c) from days group by 1, 2",
                per_day(
                    "(select cid as client_kpi_id, d as record_date, cur as currency, r as revenue,
                             e as expenses, c as cash_flow
                        from kept
                      union all
                      select f.client_kpi_id, f.record_date, f.currency, f.revenue, f.expenses, f.cash_flow
                        from fm join financials f
                          on f.tenant_id = $1 and f.client_kpi_id = fm.cid and fm.mixed
                         and f.record_date >= fm.month and f.record_date < (fm.month + interval '1 month')::date
                         -- The window's bounds again, on the raw table: they prune its partitions.
                         and f.record_date between $2 and $3) f"
                )
            )
        } else {
            // Days and weeks from the raw days only from the retention cutoff on; before it each
            // kept month is one entry on its first day, as in `daily_totals` (no bucket counts a
            // day and then loses it to the retention run).
            format!(
                "with z as (select base_currency as base,
                                   coalesce(zixly_raw_data_from(raw_retention_months, time_zone), '-infinity'::date) as raw_from
                              from tenants where id = $1),
                      {}
                 select cid, date_trunc($4, d::timestamp)::date, sum(r), sum(e), sum(c)
                   from days group by 1, 2",
                per_day(
                    "(select m.client_kpi_id, m.month as record_date, m.currency, m.revenue, m.expenses, m.cash_flow
                        from financial_months m, z
                       where m.tenant_id = $1 and m.month between $2 and $3 and m.month < z.raw_from
                      union all
                      select f.client_kpi_id, f.record_date, f.currency, f.revenue, f.expenses, f.cash_flow
                        from financials f
                       where f.tenant_id = $1 and f.record_date between $2 and $3
                         and f.record_date >= (select raw_from from z)) f"
                )
            )
        };
        let stmt = self
            .client()
            .prepare_cached(&sql)
            .await
            .ctx("summing every client's financials per bucket")?;
        let rows = self
            .client()
            .query(&stmt, &[&self.tenant_id(), &from, &to, &bucket.as_str()])
            .await
            .ctx("summing every client's financials per bucket")?;
        let mut starts = Vec::new();
        let mut s = from;
        while s <= to {
            starts.push(s);
            s = bucket.next_start(s);
        }
        let mut by_client: HashMap<Uuid, Vec<Option<BucketSums>>> = HashMap::new();
        for r in &rows {
            let start: NaiveDate = r.get(1);
            let Ok(i) = starts.binary_search(&start) else {
                continue;
            };
            by_client
                .entry(r.get(0))
                .or_insert_with(|| vec![None; starts.len()])[i] = Some(BucketSums {
                revenue: r.get(2),
                expenses: r.get(3),
                cash_flow: r.get(4),
            });
        }
        Ok(FinancialBuckets {
            bucket,
            starts,
            by_client,
        })
    }

    /// How fresh the data of `client` (or of the tenant) is, for stale rules.
    pub async fn data_freshness(&self, client: Option<Uuid>) -> DbResult<Freshness> {
        match client {
            Some(c) => {
                let row = self
                    .client()
                    .query_one(
                        "select greatest(
                            (select max(record_date) from financials where tenant_id = $1 and client_kpi_id = $2),
                            (select max((event_date at time zone t.time_zone)::date) from lead_events
                              where tenant_id = $1 and client_kpi_id = $2),
                            (select max((record_date at time zone t.time_zone)::date) from custom_metrics
                              where tenant_id = $1 and client_kpi_id = $2))
                           from tenants t where t.id = $1",
                        &[&self.tenant_id(), &c],
                    )
                    .await
                    .ctx("reading a client's latest data")?;
                Ok(Freshness {
                    last_data: row.get(0),
                    errored: Vec::new(),
                })
            }
            None => {
                let row = self
                    .client()
                    .query_one(
                        "select (select max((r.finished_at at time zone t.time_zone)::date) from sync_runs r
                                  where r.tenant_id = $1 and r.status in ('succeeded', 'partial')
                                    and r.rows_inserted + r.rows_updated > 0),
                                array(select i.provider::text from integrations i
                                       where i.tenant_id = $1 and i.status = 'ERROR' order by 1)
                           from tenants t where t.id = $1",
                        &[&self.tenant_id()],
                    )
                    .await
                    .ctx("reading the tenant's latest loads")?;
                Ok(Freshness {
                    last_data: row.get(0),
                    errored: row.get(1),
                })
            }
        }
    }
}

impl TenantTx {
    /// How fresh one integration's data is: the last day (in the tenant's time zone) a sync of it
    /// finished having written rows, and its provider when it is in `ERROR`. `None` when the
    /// tenant has no such integration (deleted meanwhile: its rules are deleted with it, so only
    /// a race sees this).
    pub async fn integration_freshness(&self, integration: Uuid) -> DbResult<Option<Freshness>> {
        let row = self
            .client()
            .query_opt(
                "select (select max((r.finished_at at time zone t.time_zone)::date) from sync_runs r
                          where r.tenant_id = $1 and r.integration_id = $2
                            and r.status in ('succeeded', 'partial')
                            and r.rows_inserted + r.rows_updated > 0),
                        i.provider::text, i.status = 'ERROR'
                   from integrations i join tenants t on t.id = i.tenant_id
                  where i.tenant_id = $1 and i.id = $2",
                &[&self.tenant_id(), &integration],
            )
            .await
            .ctx("reading an integration's latest sync")?;
        Ok(row.map(|r| Freshness {
            last_data: r.get(0),
            errored: if r.get(2) { vec![r.get(1)] } else { Vec::new() },
        }))
    }
}

impl SystemDb {
    /// **Cross-tenant.** The tenants with at least one enabled rule (the evaluation schedule).
    pub async fn tenants_with_alert_rules(&self) -> DbResult<Vec<Uuid>> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "select /* cross-tenant */ distinct tenant_id from alert_rules where enabled order by 1",
                &[],
            )
            .await
            .ctx("listing tenants with alert rules")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl TenantTx {
    /// Called by every write that changes a tenant's time series (the loader's commit, a
    /// connector's deletions): when `changed` rows > 0, enqueues the tenant's evaluation in this
    /// transaction, so rules see the change right after it commits — and a write that changed
    /// nothing (a re-import of the same file) evaluates nothing.
    pub(crate) async fn data_changed(&self, changed: u64) -> DbResult<()> {
        if changed == 0 {
            return Ok(());
        }
        for key in EVALUATE_KEYS {
            match self.enqueue_job(&evaluate_job_keyed(key)).await? {
                Enqueued::New(_) => return Ok(()),
                Enqueued::Duplicate(id) => {
                    // A waiting job will read this change when it runs; a running one may not.
                    let running = self
                        .job(id)
                        .await?
                        .is_some_and(|j| j.state == JobState::Running);
                    if !running {
                        return Ok(());
                    }
                }
            }
        }
        // Both running (the second waits on the tenant's evaluation lock, so it reads after
        // this commits, or the scheduled run does).
        Ok(())
    }
}

impl TenantTx {
    /// Takes the tenant's alert-evaluation lock until the transaction ends (a transaction-level
    /// advisory lock on the tenant id): evaluations of one tenant run one after the other.
    pub async fn lock_alert_evaluation(&self) -> DbResult<()> {
        self.client()
            .execute(
                "select pg_advisory_xact_lock(hashtextextended('zixly_alert_evaluate:' || $1::uuid::text, 0))",
                &[&self.tenant_id()],
            )
            .await
            .ctx("taking the tenant's alert evaluation lock")?;
        Ok(())
    }
}
