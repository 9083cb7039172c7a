//! The views of the series reads (JSON, with their OpenAPI schemas) and the CSV rows of the
//! database rows they are made from.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use zixly_db::queries::series::{
    FinancialBucket, FinancialRow, LeadEventBucket, LeadEventRow, MetricBucket, MetricRow,
};

use crate::api::csv::CsvRow;
use crate::api::json_time;
use crate::api::metrics::AggregationName;
use crate::api::Page;

// ---------------------------------------------------------------------------------------------
// Views

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinancialView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::date")]
    pub record_date: NaiveDate,
    /// Decimal string, e.g. `"15000.00"`.
    #[schema(value_type = String)]
    pub revenue: Decimal,
    #[schema(value_type = String)]
    pub expenses: Decimal,
    #[schema(value_type = String)]
    pub net_profit: Decimal,
    #[schema(value_type = String)]
    pub cash_flow: Decimal,
    pub currency: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl From<FinancialRow> for FinancialView {
    fn from(r: FinancialRow) -> Self {
        FinancialView {
            id: r.id,
            record_date: r.record_date,
            revenue: r.revenue,
            expenses: r.expenses,
            net_profit: r.net_profit,
            cash_flow: r.cash_flow,
            currency: r.currency,
            source_system: r.source_system,
            external_id: r.external_id,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinancialBucketView {
    /// First day of the bucket (the range's first day for a clipped first bucket is still the
    /// bucket's own first day).
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub currency: String,
    /// Rows summed.
    pub rows: i64,
    #[schema(value_type = String)]
    pub revenue: Decimal,
    #[schema(value_type = String)]
    pub expenses: Decimal,
    #[schema(value_type = String)]
    pub net_profit: Decimal,
    #[schema(value_type = String)]
    pub cash_flow: Decimal,
}

impl From<FinancialBucket> for FinancialBucketView {
    fn from(b: FinancialBucket) -> Self {
        FinancialBucketView {
            bucket_start: b.bucket_start,
            currency: b.currency,
            rows: b.rows,
            revenue: b.revenue,
            expenses: b.expenses,
            net_profit: b.net_profit,
            cash_flow: b.cash_flow,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadEventView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::utc")]
    pub event_date: DateTime<Utc>,
    pub lead_id: String,
    pub stage: String,
    #[schema(value_type = Option<String>)]
    pub value: Option<Decimal>,
    pub currency: String,
    /// `active`, `won`, `lost` or `stale`.
    pub status: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl From<LeadEventRow> for LeadEventView {
    fn from(r: LeadEventRow) -> Self {
        LeadEventView {
            id: r.id,
            event_date: r.event_date,
            lead_id: r.lead_id,
            stage: r.stage,
            value: r.value,
            currency: r.currency,
            status: r.status,
            source_system: r.source_system,
            external_id: r.external_id,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadEventBucketView {
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub stage: String,
    pub status: String,
    pub currency: String,
    pub events: i64,
    /// Distinct leads.
    pub leads: i64,
    #[schema(value_type = String)]
    pub value: Decimal,
}

impl From<LeadEventBucket> for LeadEventBucketView {
    fn from(b: LeadEventBucket) -> Self {
        LeadEventBucketView {
            bucket_start: b.bucket_start,
            stage: b.stage,
            status: b.status,
            currency: b.currency,
            events: b.events,
            leads: b.leads,
            value: b.value,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricView {
    pub id: Uuid,
    pub metric_name: String,
    /// Decimal string with up to 4 places.
    #[schema(value_type = String)]
    pub metric_value: Decimal,
    pub unit: Option<String>,
    #[serde(serialize_with = "json_time::utc")]
    pub record_date: DateTime<Utc>,
    pub source_system: String,
    pub metadata: Option<serde_json::Value>,
}

impl From<MetricRow> for MetricView {
    fn from(r: MetricRow) -> Self {
        MetricView {
            id: r.id,
            metric_name: r.metric_name,
            metric_value: r.metric_value,
            unit: r.unit,
            record_date: r.record_date,
            source_system: r.source_system,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricBucketView {
    #[serde(serialize_with = "json_time::date")]
    pub bucket_start: NaiveDate,
    pub metric_name: String,
    /// From the metric's definition (`/metric-definitions`).
    pub display_name: String,
    /// The definition's unit, else the rows'.
    pub unit: Option<String>,
    /// The definition's aggregation, which `value` applies.
    pub aggregation: AggregationName,
    /// The bucket's figure: `sum`, `avg`, `min` or `max` as the definition says, or for `last`
    /// the value at the bucket's latest instant.
    #[schema(value_type = String)]
    pub value: Decimal,
    pub count: i64,
    #[schema(value_type = String)]
    pub sum: Decimal,
    #[schema(value_type = String)]
    pub avg: Decimal,
    #[schema(value_type = String)]
    pub min: Decimal,
    #[schema(value_type = String)]
    pub max: Decimal,
}

impl From<MetricBucket> for MetricBucketView {
    fn from(b: MetricBucket) -> Self {
        MetricBucketView {
            bucket_start: b.bucket_start,
            metric_name: b.metric_name,
            display_name: b.display_name,
            unit: b.unit,
            aggregation: b.aggregation.into(),
            value: b.value,
            count: b.count,
            sum: b.sum,
            avg: b.avg,
            min: b.min,
            max: b.max,
        }
    }
}

/// Raw rows, or buckets when `bucket` is given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FinancialSeries {
    Rows(Page<FinancialView>),
    Buckets(Page<FinancialBucketView>),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LeadEventSeries {
    Rows(Page<LeadEventView>),
    Buckets(Page<LeadEventBucketView>),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetricSeries {
    Rows(Page<MetricView>),
    Buckets(Page<MetricBucketView>),
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn json_text(v: &Option<serde_json::Value>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// CSV rows

impl CsvRow for FinancialRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "record_date",
        "revenue",
        "expenses",
        "net_profit",
        "cash_flow",
        "currency",
        "source_system",
        "external_id",
        "metadata",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.record_date.to_string(),
            self.revenue.to_string(),
            self.expenses.to_string(),
            self.net_profit.to_string(),
            self.cash_flow.to_string(),
            self.currency.clone(),
            self.source_system.clone(),
            opt(&self.external_id),
            json_text(&self.metadata),
        ]
    }
}

impl CsvRow for FinancialBucket {
    const HEADER: &'static [&'static str] = &[
        "bucket_start",
        "currency",
        "rows",
        "revenue",
        "expenses",
        "net_profit",
        "cash_flow",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.bucket_start.to_string(),
            self.currency.clone(),
            self.rows.to_string(),
            self.revenue.to_string(),
            self.expenses.to_string(),
            self.net_profit.to_string(),
            self.cash_flow.to_string(),
        ]
    }
}

impl CsvRow for LeadEventRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "event_date",
        "lead_id",
        "stage",
        "value",
        "currency",
        "status",
        "source_system",
        "external_id",
        "metadata",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.event_date.to_rfc3339(),
            self.lead_id.clone(),
            self.stage.clone(),
            self.value.map(|v| v.to_string()).unwrap_or_default(),
            self.currency.clone(),
            self.status.clone(),
            self.source_system.clone(),
            opt(&self.external_id),
            json_text(&self.metadata),
        ]
    }
}

impl CsvRow for LeadEventBucket {
    const HEADER: &'static [&'static str] = &[
        "bucket_start",
        "stage",
        "status",
        "currency",
        "events",
        "leads",
        "value",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.bucket_start.to_string(),
            self.stage.clone(),
            self.status.clone(),
            self.currency.clone(),
            self.events.to_string(),
            self.leads.to_string(),
            self.value.to_string(),
        ]
    }
}

impl CsvRow for MetricRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "metric_name",
        "metric_value",
        "unit",
        "record_date",
        "source_system",
        "metadata",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.metric_name.clone(),
            self.metric_value.to_string(),
            opt(&self.unit),
            self.record_date.to_rfc3339(),
            self.source_system.clone(),
            json_text(&self.metadata),
        ]
    }
}

impl CsvRow for MetricBucket {
    const HEADER: &'static [&'static str] = &[
        "bucket_start",
        "metric_name",
        "display_name",
        "unit",
        "aggregation",
        "value",
        "count",
        "sum",
        "avg",
        "min",
        "max",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.bucket_start.to_string(),
            self.metric_name.clone(),
            self.display_name.clone(),
            opt(&self.unit),
            self.aggregation.to_string(),
            self.value.to_string(),
            self.count.to_string(),
            self.sum.to_string(),
            self.avg.to_string(),
            self.min.to_string(),
            self.max.to_string(),
        ]
    }
}
