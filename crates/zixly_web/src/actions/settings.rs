//! Workspace settings shared by `api/settings.rs` and the Data settings page: how long raw daily
//! financials are kept (retention, migrations/0022; the deletion itself is the worker's
//! scheduled job, `zixly_db::retention`).

use serde_json::json;
use zixly_db::retention::{Retention, MAX_RETENTION_MONTHS};

use crate::auth::{Admin, Auth, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};

/// The tenant's retention setting and the first day of day-level data it means today.
pub(crate) async fn retention(auth: &Auth<Viewer>) -> ApiResult<Retention> {
    let tx = auth.begin().await?;
    let r = tx.retention().await?;
    tx.commit().await?;
    Ok(r)
}

/// Checks a retention period: whole months, 1 to [`MAX_RETENTION_MONTHS`]; `None` keeps
/// everything.
pub(crate) fn check_months(months: Option<i64>) -> ApiResult<Option<i32>> {
    match months {
        None => Ok(None),
        Some(m) if (1..=i64::from(MAX_RETENTION_MONTHS)).contains(&m) => Ok(Some(m as i32)),
        Some(m) => Err(ApiError::validation(vec![ErrorDetail::field(
            "raw_retention_months",
            format!(
                "must be a whole number of months from 1 to {MAX_RETENTION_MONTHS}, or null to keep raw data forever (got {m})"
            ),
        )])),
    }
}

/// Sets the retention period (ADMIN). Shortening it deletes nothing now: the worker's next
/// retention run does, within hours, and audits what it deleted. Audited as
/// `tenant.retention_update` with the old and new period, in the transaction of the change.
pub(crate) async fn set_retention(auth: &Auth<Admin>, months: Option<i64>) -> ApiResult<Retention> {
    let months = check_months(months)?;
    let tx = auth.begin().await?;
    let before = tx.retention().await?;
    let after = tx.set_retention(months).await?;
    if before.months != after.months {
        tx.append_audit(&auth.audit(
            "tenant.retention_update",
            "tenant",
            Some(tx.tenant_id().to_string()),
            json!({
                "raw_retention_months": {"from": before.months, "to": after.months},
                "raw_data_from": after.raw_data_from,
            }),
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}
