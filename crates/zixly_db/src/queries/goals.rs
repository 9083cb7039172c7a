//! Goals (`goals`, `goal_targets`, migrations/0013): create, list, change, archive, per-period
//! targets; the KPI actuals a goal (or an alert rule) needs ([`TenantTx::kpi_actuals`]); and a
//! goal's progress ([`TenantTx::goal_progress`]): the reads plus `zixly_domain::goals::evaluate`.
//!
//! Every statement filters `tenant_id = $1` explicitly on top of the RLS policy, and the
//! composite keys carry the tenant. An archived goal (`DELETE` in the API) keeps its row for the
//! audit trail and `goal` alert rules' history but is invisible to every read here.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use uuid::Uuid;
use zixly_domain::goals::{
    self, same_elapsed_day, same_period_last_year, Evaluation, GoalInput, GoalKind, GoalPeriod,
    LastYear,
};
use zixly_domain::metrics::{builtin, Aggregation};
use zixly_domain::period::{Bucket, BucketWindow, DateRange};

use crate::error::{Ctx, DbError, DbResult};
use crate::TenantTx;

/// One goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub id: Uuid,
    pub name: Option<String>,
    /// A built-in KPI's name or a custom metric's name.
    pub kpi: String,
    /// `None`: the whole tenant.
    pub client_id: Option<Uuid>,
    pub period: GoalPeriod,
    pub kind: GoalKind,
    /// The constant target; [`GoalTarget`]s override it per period.
    pub target: Decimal,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new goal, validated by the caller (`zixly_web::actions::goals`).
#[derive(Debug, Clone)]
pub struct NewGoal {
    pub name: Option<String>,
    pub kpi: String,
    pub client_id: Option<Uuid>,
    pub period: GoalPeriod,
    pub kind: GoalKind,
    pub target: Decimal,
    pub created_by: Option<Uuid>,
}

/// A partial change: `None` leaves a field alone; `name: Some(None)` clears it. The KPI and the
/// client stay: a goal on another figure is another goal (its history would mean nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoalChanges {
    pub name: Option<Option<String>>,
    pub period: Option<GoalPeriod>,
    pub kind: Option<GoalKind>,
    pub target: Option<Decimal>,
}

impl GoalChanges {
    pub fn is_empty(&self) -> bool {
        *self == GoalChanges::default()
    }
}

/// A goal's target for the period starting `period_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalTarget {
    pub goal_id: Uuid,
    pub period_start: NaiveDate,
    pub target: Decimal,
}

const COLUMNS: &str = "id, name, kpi, client_id, period, kind, target, fixed_from, fixed_to, \
                       created_by, created_at, updated_at";

fn goal_from_row(r: &Row) -> DbResult<Goal> {
    let bad = |constraint: &str| DbError::CheckViolation {
        context: "reading goals",
        constraint: constraint.to_owned(),
    };
    let period = match r.get::<_, &str>(4) {
        "fixed" => {
            let (from, to): (Option<NaiveDate>, Option<NaiveDate>) = (r.get(7), r.get(8));
            let range = from
                .zip(to)
                .and_then(|(f, t)| DateRange::new(f, t).ok())
                .ok_or_else(|| bad("goals_fixed_iff_dates"))?;
            GoalPeriod::Fixed(range)
        }
        other => GoalPeriod::parse_recurring(other).map_err(|_| bad("goals_period_known"))?,
    };
    Ok(Goal {
        id: r.get(0),
        name: r.get(1),
        kpi: r.get(2),
        client_id: r.get(3),
        period,
        kind: r
            .get::<_, &str>(5)
            .parse()
            .map_err(|_| bad("goals_kind_known"))?,
        // numeric(20,4) answers `1000.0000`; the target is shown as it was entered.
        target: r.get::<_, Decimal>(6).normalize(),
        created_by: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
    })
}

fn fixed_dates(p: &GoalPeriod) -> (Option<NaiveDate>, Option<NaiveDate>) {
    match p {
        GoalPeriod::Fixed(r) => (Some(r.from()), Some(r.to())),
        _ => (None, None),
    }
}

/// The KPI's values over each asked range, and how the KPI aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiActuals {
    /// `None` for the built-in ratios (margin, win rate); a custom metric's definition's.
    pub aggregation: Option<Aggregation>,
    /// One per asked range, in order; `None` when the range has no record of the KPI (or, for a
    /// ratio, nothing to divide by).
    pub values: Vec<Option<Decimal>>,
}

/// A goal's current period and its past ones.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalProgress {
    pub current: Evaluation,
    /// Oldest first; each evaluated as of its end (`achieved`/`missed`, or no status without data).
    pub history: Vec<Evaluation>,
}

/// The sum of one day's financials for a built-in financial KPI.
fn financial_value(kpi: &str, d: &crate::queries::dashboard::DailyTotals) -> Decimal {
    match kpi {
        "revenue" => d.revenue,
        "expenses" => d.expenses,
        "net_profit" => d.net_profit,
        _ => d.cash_flow,
    }
}

impl TenantTx {
    /// Creates a goal. The client must exist in the tenant (the caller checks it, to answer 422
    /// rather than a foreign-key error).
    pub async fn create_goal(&self, new: &NewGoal) -> DbResult<Goal> {
        let (from, to) = fixed_dates(&new.period);
        let row = self
            .client()
            .query_one(
                &format!(
                    "insert into goals (tenant_id, id, name, kpi, client_id, period, kind, target,
                                        fixed_from, fixed_to, created_by)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     returning {COLUMNS}"
                ),
                &[
                    &self.tenant_id(),
                    &Uuid::now_v7(),
                    &new.name,
                    &new.kpi,
                    &new.client_id,
                    &new.period.as_str(),
                    &new.kind.as_str(),
                    &new.target,
                    &from,
                    &to,
                    &new.created_by,
                ],
            )
            .await
            .ctx("creating a goal")?;
        goal_from_row(&row)
    }

    /// The tenant's live (not archived) goals, oldest first; only one client's with `client`.
    pub async fn list_goals(&self, client: Option<Uuid>) -> DbResult<Vec<Goal>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {COLUMNS} from goals
                      where tenant_id = $1 and archived_at is null
                        and ($2::uuid is null or client_id = $2)
                      order by id"
                ),
                &[&self.tenant_id(), &client],
            )
            .await
            .ctx("listing goals")?;
        rows.iter().map(goal_from_row).collect()
    }

    /// One live goal.
    pub async fn goal(&self, id: Uuid) -> DbResult<Option<Goal>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {COLUMNS} from goals
                      where tenant_id = $1 and id = $2 and archived_at is null"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading a goal")?;
        row.as_ref().map(goal_from_row).transpose()
    }

    /// Applies `changes`; (before, after), or `None` for no such live goal. Locked first so that
    /// `before` is what was changed.
    pub async fn update_goal(
        &self,
        id: Uuid,
        changes: &GoalChanges,
    ) -> DbResult<Option<(Goal, Goal)>> {
        let before = self
            .client()
            .query_opt(
                &format!(
                    "select {COLUMNS} from goals
                      where tenant_id = $1 and id = $2 and archived_at is null for update"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("locking a goal")?;
        let Some(before) = before.as_ref().map(goal_from_row).transpose()? else {
            return Ok(None);
        };
        let period = changes.period.unwrap_or(before.period);
        let (from, to) = fixed_dates(&period);
        let row = self
            .client()
            .query_one(
                &format!(
                    "update goals set
                        name       = case when $3 then $4 else name end,
                        period     = $5, fixed_from = $6, fixed_to = $7,
                        kind       = coalesce($8, kind),
                        target     = coalesce($9, target)
                      where tenant_id = $1 and id = $2
                      returning {COLUMNS}"
                ),
                &[
                    &self.tenant_id(),
                    &id,
                    &changes.name.is_some(),
                    &changes.name.clone().flatten(),
                    &period.as_str(),
                    &from,
                    &to,
                    &changes.kind.map(GoalKind::as_str),
                    &changes.target,
                ],
            )
            .await
            .ctx("updating a goal")?;
        Ok(Some((before, goal_from_row(&row)?)))
    }

    /// Archives a live goal (it disappears from every read); `None` for no such live goal.
    pub async fn archive_goal(&self, id: Uuid) -> DbResult<Option<Goal>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update goals set archived_at = now()
                      where tenant_id = $1 and id = $2 and archived_at is null
                      returning {COLUMNS}"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("archiving a goal")?;
        row.as_ref().map(goal_from_row).transpose()
    }

    /// The per-period targets of the given goals, by goal and period.
    pub async fn goal_targets(&self, goal_ids: &[Uuid]) -> DbResult<Vec<GoalTarget>> {
        let rows = self
            .client()
            .query(
                "select goal_id, period_start, target from goal_targets
                  where tenant_id = $1 and goal_id = any($2)
                  order by goal_id, period_start",
                &[&self.tenant_id(), &goal_ids],
            )
            .await
            .ctx("reading goal targets")?;
        Ok(rows
            .iter()
            .map(|r| GoalTarget {
                goal_id: r.get(0),
                period_start: r.get(1),
                target: r.get::<_, Decimal>(2).normalize(),
            })
            .collect())
    }

    /// Writes per-period targets of one goal: upserts each `(period_start, target)`; with
    /// `replace`, first removes the goal's other periods (a `PUT` of the whole list). The goal
    /// must be live (the caller checks it). Returns how many rows were written.
    pub async fn set_goal_targets(
        &self,
        goal_id: Uuid,
        targets: &[(NaiveDate, Decimal)],
        replace: bool,
    ) -> DbResult<u64> {
        let (starts, values): (Vec<NaiveDate>, Vec<Decimal>) = targets.iter().copied().unzip();
        if replace {
            self.client()
                .execute(
                    "delete from goal_targets
                      where tenant_id = $1 and goal_id = $2 and not (period_start = any($3))",
                    &[&self.tenant_id(), &goal_id, &starts],
                )
                .await
                .ctx("replacing goal targets")?;
        }
        self.client()
            .execute(
                "insert into goal_targets (tenant_id, goal_id, period_start, target)
                 select $1, $2, s, t from unnest($3::date[], $4::numeric[]) as u(s, t)
                 on conflict (tenant_id, goal_id, period_start)
                 do update set target = excluded.target
                 where goal_targets.target is distinct from excluded.target",
                &[&self.tenant_id(), &goal_id, &starts, &values],
            )
            .await
            .ctx("writing goal targets")
    }

    /// **The KPI-actuals reader** of goals (and, later, alert rules): the value of catalogue KPI
    /// `kpi` over each of `ranges`, tenant-wide or for one `client`, computed as the dashboard
    /// and the reports compute it, by the same reads:
    ///
    /// - `revenue`, `expenses`, `net_profit`, `cash_flow`: the sum of
    ///   [`TenantTx::daily_totals`] (base currency, one read spanning every range);
    ///   `margin`: net profit over revenue of those sums (`zixly_domain::figures::margin`);
    /// - `open_pipeline` (the level at the range's end) and `win_rate` (won over closed inside
    ///   the range): [`TenantTx::pipeline_summaries`], one pass for every range; no lead at all
    ///   as of the range's end reads as no record;
    /// - any other name is a custom metric, read as day buckets
    ///   ([`TenantTx::custom_metric_buckets`] for a client, [`TenantTx::metric_report`]
    ///   tenant-wide) and combined over the range by its definition's aggregation: `sum` adds,
    ///   `average` is the sum over the count (4 places), `min`/`max` of the days', `last` the
    ///   last day's value.
    ///
    /// 404 (`DbError::NotFound("client")`) for a client the tenant does not have.
    pub async fn kpi_actuals(
        &self,
        kpi: &str,
        client: Option<Uuid>,
        ranges: &[DateRange],
    ) -> DbResult<KpiActuals> {
        let (Some(from), Some(to)) = (
            ranges.iter().map(DateRange::from).min(),
            ranges.iter().map(DateRange::to).max(),
        ) else {
            let aggregation = self.kpi_aggregation(kpi).await?;
            return Ok(KpiActuals {
                aggregation,
                values: Vec::new(),
            });
        };
        if let Some(c) = client {
            if !self.client_exists(c).await? {
                return Err(DbError::NotFound("client"));
            }
        }
        match kpi {
            "revenue" | "expenses" | "net_profit" | "cash_flow" | "margin" => {
                let (days, _unconverted) = self.daily_totals(from, to, client).await?;
                let values = ranges
                    .iter()
                    .map(|r| {
                        let inside: Vec<_> = days
                            .iter()
                            .filter(|d| d.date >= r.from() && d.date <= r.to())
                            .collect();
                        if inside.is_empty() {
                            return None;
                        }
                        if kpi == "margin" {
                            let revenue: Decimal = inside.iter().map(|d| d.revenue).sum();
                            let net: Decimal = inside.iter().map(|d| d.net_profit).sum();
                            return zixly_domain::figures::margin(net, revenue);
                        }
                        Some(inside.iter().map(|d| financial_value(kpi, d)).sum())
                    })
                    .collect();
                Ok(KpiActuals {
                    aggregation: builtin(kpi).and_then(|k| k.aggregation),
                    values,
                })
            }
            "open_pipeline" | "win_rate" => {
                let periods: Vec<_> = ranges.iter().map(|r| (r.from(), r.to())).collect();
                let summaries = self.pipeline_summaries(&periods, client).await?;
                let values = summaries
                    .iter()
                    .map(|s| {
                        if kpi == "win_rate" {
                            s.win_rate()
                        } else if s.open_leads == 0 && s.won == 0 && s.lost == 0 {
                            None
                        } else {
                            Some(s.open_value)
                        }
                    })
                    .collect();
                Ok(KpiActuals {
                    aggregation: builtin(kpi).and_then(|k| k.aggregation),
                    values,
                })
            }
            name => {
                let window = BucketWindow {
                    from,
                    to,
                    next: None,
                };
                // (day, aggregate value, count, sum, min, max) per day with data.
                let days: Vec<(NaiveDate, Decimal, i64, Decimal, Decimal, Decimal)> = match client {
                    Some(c) => self
                        .custom_metric_buckets(c, Some(name), Bucket::Day, &window)
                        .await?
                        .into_iter()
                        .map(|b| (b.bucket_start, b.value, b.count, b.sum, b.min, b.max))
                        .collect(),
                    None => self
                        .metric_report(name, Bucket::Day, &window)
                        .await?
                        .into_iter()
                        .map(|b| (b.bucket_start, b.value, b.count, b.sum, b.min, b.max))
                        .collect(),
                };
                let aggregation = self
                    .kpi_aggregation(name)
                    .await?
                    .unwrap_or(Aggregation::Sum);
                let values = ranges
                    .iter()
                    .map(|r| {
                        let inside: Vec<_> = days
                            .iter()
                            .filter(|d| d.0 >= r.from() && d.0 <= r.to())
                            .collect();
                        let last = inside.last()?;
                        Some(match aggregation {
                            Aggregation::Sum => inside.iter().map(|d| d.3).sum(),
                            Aggregation::Average => {
                                let sum: Decimal = inside.iter().map(|d| d.3).sum();
                                let count: i64 = inside.iter().map(|d| d.2).sum();
                                (sum / Decimal::from(count.max(1))).round_dp(4)
                            }
                            Aggregation::Min => inside.iter().map(|d| d.4).min()?,
                            Aggregation::Max => inside.iter().map(|d| d.5).max()?,
                            Aggregation::Last => last.1,
                        })
                    })
                    .collect();
                Ok(KpiActuals {
                    aggregation: Some(aggregation),
                    values,
                })
            }
        }
    }

    /// Every client as `(id, identifier in its source system, name)`, by name: budget files
    /// name clients the way import files do (`client_kpis.client_id`), and the goal forms list
    /// them by name.
    pub async fn client_directory(&self) -> DbResult<Vec<(Uuid, String, String)>> {
        let rows = self
            .client()
            .query(
                "select id, client_id, client_name from client_kpis where tenant_id = $1
                  order by lower(client_name), id",
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing clients by identifier")?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// How catalogue KPI `name` aggregates: a built-in's (`None` for the ratios), else the custom
    /// metric's definition (a name without one reads as `sum`, as `queries::metrics::DEFINED`).
    pub async fn kpi_aggregation(&self, name: &str) -> DbResult<Option<Aggregation>> {
        if let Some(k) = builtin(name) {
            return Ok(k.aggregation);
        }
        Ok(Some(
            self.metric_definition(name)
                .await?
                .map_or(Aggregation::Sum, |d| d.aggregation),
        ))
    }

    /// The goal's current period as of `today` (the tenant's calendar day) and its `history`
    /// past periods: one [`TenantTx::kpi_actuals`] read for all of them (the current period to
    /// date, last year's same period to the same elapsed day and whole, each past period whole),
    /// then `zixly_domain::goals::evaluate`.
    pub async fn goal_progress(
        &self,
        goal: &Goal,
        targets: &[GoalTarget],
        today: NaiveDate,
        history: usize,
    ) -> DbResult<GoalProgress> {
        let overrides: Vec<(NaiveDate, Decimal)> = targets
            .iter()
            .filter(|t| t.goal_id == goal.id)
            .map(|t| (t.period_start, t.target))
            .collect();
        let current = goal.period.period_of(today);
        let last_year = same_period_last_year(current);
        let to_date = DateRange::new(current.from(), today.clamp(current.from(), current.to()))
            .expect("clamped into the period");
        let ly_to_day = DateRange::new(last_year.from(), same_elapsed_day(current, today))
            .expect("the same elapsed day lies in last year's period");
        let past = goal.period.previous_periods(today, history);
        let mut ranges = vec![to_date, ly_to_day, last_year];
        ranges.extend(past.iter().copied());
        let actuals = self.kpi_actuals(&goal.kpi, goal.client_id, &ranges).await?;
        let accumulates = goals::accumulates(actuals.aggregation);
        let value = |i: usize| actuals.values.get(i).copied().flatten();
        let evaluate = |period: DateRange, on: NaiveDate, actual, last_year| {
            goals::evaluate(&GoalInput {
                kind: goal.kind,
                accumulates,
                period,
                target: goals::target_for(goal.target, &overrides, period.from()),
                today: on,
                actual: if on < period.from() { None } else { actual },
                last_year,
            })
        };
        let shape = value(2).map(|total| LastYear {
            to_same_day: value(1).unwrap_or(Decimal::ZERO),
            total,
        });
        let current_eval = evaluate(current, today, value(0), shape);
        let history = past
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Judged the day after it ended; last year's shape no longer matters then.
                evaluate(*p, p.to() + chrono::Days::new(1), value(3 + i), None)
            })
            .collect();
        Ok(GoalProgress {
            current: current_eval,
            history,
        })
    }
}
