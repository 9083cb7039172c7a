//! The three views as `crates/zixly_web/src/api/series.rs` defines them (serde attributes
//! verbatim; the utoipa ones dropped), and the same views with a fast decimal `serialize_with`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::json_time;

#[derive(Debug, Clone, Serialize)]
pub struct FinancialView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::date")]
    pub record_date: NaiveDate,
    pub revenue: Decimal,
    pub expenses: Decimal,
    pub net_profit: Decimal,
    pub cash_flow: Decimal,
    pub currency: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeadEventView {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::utc")]
    pub event_date: DateTime<Utc>,
    pub lead_id: String,
    pub stage: String,
    pub value: Option<Decimal>,
    pub currency: String,
    pub status: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricView {
    pub id: Uuid,
    pub metric_name: String,
    pub metric_value: Decimal,
    pub unit: Option<String>,
    #[serde(serialize_with = "json_time::utc")]
    pub record_date: DateTime<Utc>,
    pub source_system: String,
    pub metadata: Option<serde_json::Value>,
}

/// A decimal as its exact text (`"-0.50"`), formatted on the stack as `json_out` does (mantissa
/// through `itoa`, the point inserted), then handed to the serializer as a string.
pub fn fast_decimal<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 64];
    let mut n = 0;
    let mut push = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    let scale = d.scale() as usize;
    let mut itoa = itoa::Buffer::new();
    let digits = itoa.format(d.mantissa().unsigned_abs()).as_bytes();
    if d.is_sign_negative() {
        push(b"-");
    }
    if scale == 0 {
        push(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        push(int);
        push(b".");
        push(frac);
    } else {
        push(b"0.");
        for _ in 0..scale - digits.len() {
            push(b"0");
        }
        push(digits);
    }
    s.serialize_str(std::str::from_utf8(&buf[..n]).expect("ASCII"))
}

#[derive(Debug, Clone, Serialize)]
pub struct FinancialViewFast {
    pub id: Uuid,
    #[serde(serialize_with = "json_time::date")]
    pub record_date: NaiveDate,
    #[serde(serialize_with = "fast_decimal")]
    pub revenue: Decimal,
    #[serde(serialize_with = "fast_decimal")]
    pub expenses: Decimal,
    #[serde(serialize_with = "fast_decimal")]
    pub net_profit: Decimal,
    #[serde(serialize_with = "fast_decimal")]
    pub cash_flow: Decimal,
    pub currency: String,
    pub source_system: String,
    pub external_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricViewFast {
    pub id: Uuid,
    pub metric_name: String,
    #[serde(serialize_with = "fast_decimal")]
    pub metric_value: Decimal,
    pub unit: Option<String>,
    #[serde(serialize_with = "json_time::utc")]
    pub record_date: DateTime<Utc>,
    pub source_system: String,
    pub metadata: Option<serde_json::Value>,
}

impl From<&FinancialView> for FinancialViewFast {
    fn from(v: &FinancialView) -> Self {
        FinancialViewFast {
            id: v.id,
            record_date: v.record_date,
            revenue: v.revenue,
            expenses: v.expenses,
            net_profit: v.net_profit,
            cash_flow: v.cash_flow,
            currency: v.currency.clone(),
            source_system: v.source_system.clone(),
            external_id: v.external_id.clone(),
            metadata: v.metadata.clone(),
        }
    }
}

impl From<&MetricView> for MetricViewFast {
    fn from(v: &MetricView) -> Self {
        MetricViewFast {
            id: v.id,
            metric_name: v.metric_name.clone(),
            metric_value: v.metric_value,
            unit: v.unit.clone(),
            record_date: v.record_date,
            source_system: v.source_system.clone(),
            metadata: v.metadata.clone(),
        }
    }
}
