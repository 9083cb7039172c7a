//! The metric catalogue (`metric_definitions`): list, get, update. Rows are created by the
//! loader on first sight of a metric name (`loader::sql::CUSTOM_METRICS`), never here, so an
//! EDITOR can only describe metrics that exist. Built-in KPIs are not rows
//! (`zixly_domain::metrics::BUILTIN_KPIS`).
//!
//! Every statement filters `tenant_id = $1` explicitly on top of the RLS policy.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use zixly_domain::metrics::{Aggregation, Direction};

use crate::error::{Ctx, DbError, DbResult};
use crate::TenantTx;

/// One custom metric's definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricDefinition {
    pub name: String,
    pub display_name: String,
    pub unit: Option<String>,
    pub aggregation: Aggregation,
    pub direction: Direction,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears a nullable field. Values
/// are validated by the caller (`zixly_web::actions::metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricChanges {
    pub display_name: Option<String>,
    pub unit: Option<Option<String>>,
    pub aggregation: Option<Aggregation>,
    pub direction: Option<Direction>,
    pub description: Option<Option<String>>,
}

impl MetricChanges {
    pub fn is_empty(&self) -> bool {
        *self == MetricChanges::default()
    }
}

const COLUMNS: &str =
    "name, display_name, unit, aggregation, direction, description, created_at, updated_at";

fn definition(r: &Row) -> DbResult<MetricDefinition> {
    // The table's checks admit only the known names; a mismatch is a schema/code disagreement.
    let bad = |constraint: &str| DbError::CheckViolation {
        context: "reading metric definitions",
        constraint: constraint.to_owned(),
    };
    Ok(MetricDefinition {
        name: r.get(0),
        display_name: r.get(1),
        unit: r.get(2),
        aggregation: r
            .get::<_, &str>(3)
            .parse()
            .map_err(|_| bad("metric_definitions_aggregation_known"))?,
        direction: r
            .get::<_, &str>(4)
            .parse()
            .map_err(|_| bad("metric_definitions_direction_known"))?,
        description: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    })
}

impl TenantTx {
    /// Every custom metric definition of the tenant, by name.
    pub async fn metric_definitions(&self) -> DbResult<Vec<MetricDefinition>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {COLUMNS} from metric_definitions where tenant_id = $1 order by name"
                ),
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing metric definitions")?;
        rows.iter().map(definition).collect()
    }

    /// The definition of `name`, if the tenant has seen that metric.
    pub async fn metric_definition(&self, name: &str) -> DbResult<Option<MetricDefinition>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {COLUMNS} from metric_definitions where tenant_id = $1 and name = $2"
                ),
                &[&self.tenant_id(), &name],
            )
            .await
            .ctx("reading a metric definition")?;
        row.as_ref().map(definition).transpose()
    }

    /// Applies `changes` to `name`'s definition; returns (before, after), or `None` if the tenant
    /// has no metric of that name. The row is locked first so that `before` is what was changed.
    pub async fn update_metric_definition(
        &self,
        name: &str,
        changes: &MetricChanges,
    ) -> DbResult<Option<(MetricDefinition, MetricDefinition)>> {
        let before = self
            .client()
            .query_opt(
                &format!(
                    "select {COLUMNS} from metric_definitions where tenant_id = $1 and name = $2 for update"
                ),
                &[&self.tenant_id(), &name],
            )
            .await
            .ctx("locking a metric definition")?;
        let Some(before) = before.as_ref().map(definition).transpose()? else {
            return Ok(None);
        };
        let row = self
            .client()
            .query_one(
                &format!(
                    "update metric_definitions set
                        display_name = coalesce($3, display_name),
                        unit         = case when $4 then $5 else unit end,
                        aggregation  = coalesce($6, aggregation),
                        direction    = coalesce($7, direction),
                        description  = case when $8 then $9 else description end
                      where tenant_id = $1 and name = $2
                      returning {COLUMNS}"
                ),
                &[
                    &self.tenant_id(),
                    &name,
                    &changes.display_name,
                    &changes.unit.is_some(),
                    &changes.unit.clone().flatten(),
                    &changes.aggregation.map(Aggregation::as_str),
                    &changes.direction.map(Direction::as_str),
                    &changes.description.is_some(),
                    &changes.description.clone().flatten(),
                ],
            )
            .await
            .ctx("updating a metric definition")?;
        Ok(Some((before, definition(&row)?)))
    }
}

/// The select-list columns `display_name, unit, aggregation, value` of a bucket aggregate `a`
/// (columns `metric_name, unit, sum, avg, min, max, last`) left-joined with its definition `d`:
/// the one place that turns a definition into a number, shared by the series and report reads.
/// A metric without a definition (rows written before the loader defined them, or by hand) reads
/// as its first sight would define it: `sum`.
pub(crate) const DEFINED: &str =
    "coalesce(d.display_name, zixly_metric_display_name(a.metric_name)),
        coalesce(d.unit, a.unit),
        coalesce(d.aggregation, 'sum'),
        case coalesce(d.aggregation, 'sum')
             when 'sum' then a.sum when 'average' then a.avg when 'last' then a.last
             when 'min' then a.min when 'max' then a.max end";

/// Column `idx` as an [`Aggregation`] (a `text` the table's check admits).
pub(crate) fn aggregation(r: &Row, idx: usize) -> DbResult<Aggregation> {
    r.get::<_, &str>(idx)
        .parse()
        .map_err(|_| DbError::CheckViolation {
            context: "reading a metric aggregation",
            constraint: "metric_definitions_aggregation_known".to_owned(),
        })
}
