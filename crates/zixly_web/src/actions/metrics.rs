//! The metric catalogue's actions, for `api/metrics.rs` and (later) the catalogue page: list the
//! definitions (built-in KPIs first, then the tenant's custom metrics) and change one.
//!
//! Input arrives as text so that every rejection names its field (`aggregation: unknown
//! aggregation "avg": expected sum, average, last, min or max`), whichever front end sent it.

use serde_json::json;
use zixly_db::queries::metrics::{MetricChanges, MetricDefinition};
use zixly_domain::metrics::{builtin, Aggregation, BuiltinKpi, Direction, BUILTIN_KPIS};

use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiError, ApiResult, ErrorDetail};

/// The longest display name and unit, in characters.
pub(crate) const MAX_DISPLAY_NAME_CHARS: usize = 200;
pub(crate) const MAX_UNIT_CHARS: usize = 32;
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 2000;

/// One entry of the catalogue: a built-in KPI (read-only, defined by code) or a custom metric.
#[derive(Debug, Clone)]
pub(crate) enum CatalogueEntry {
    Builtin(&'static BuiltinKpi),
    Custom(MetricDefinition),
}

/// The catalogue: the built-in KPIs in dashboard order, then the tenant's custom metrics by name.
pub(crate) async fn list(auth: &Auth<Viewer>) -> ApiResult<Vec<CatalogueEntry>> {
    let tx = auth.begin().await?;
    let custom = tx.metric_definitions().await?;
    tx.commit().await?;
    Ok(BUILTIN_KPIS
        .iter()
        .map(CatalogueEntry::Builtin)
        .chain(custom.into_iter().map(CatalogueEntry::Custom))
        .collect())
}

/// A change as a front end received it: `None` leaves a field alone; `Some(None)` clears `unit`
/// or `description` (an empty string clears them too).
#[derive(Debug, Default)]
pub(crate) struct DefinitionChange<'a> {
    pub display_name: Option<&'a str>,
    pub unit: Option<Option<&'a str>>,
    pub aggregation: Option<&'a str>,
    pub direction: Option<&'a str>,
    pub description: Option<Option<&'a str>>,
}

fn limited(field: &str, value: &str, max: usize, errors: &mut Vec<ErrorDetail>) -> Option<String> {
    let v = value.trim();
    if v.chars().count() > max {
        errors.push(ErrorDetail::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    (!v.is_empty()).then(|| v.to_owned())
}

/// Validates a change; every problem is reported, each naming its field.
pub(crate) fn parse_change(change: &DefinitionChange<'_>) -> ApiResult<MetricChanges> {
    let mut errors = Vec::new();
    let display_name = change.display_name.and_then(|v| {
        let out = limited("display_name", v, MAX_DISPLAY_NAME_CHARS, &mut errors);
        if out.is_none() {
            errors.push(ErrorDetail::field("display_name", "must not be blank"));
        }
        out
    });
    let unit = change
        .unit
        .map(|v| v.and_then(|v| limited("unit", v, MAX_UNIT_CHARS, &mut errors)));
    let description = change
        .description
        .map(|v| v.and_then(|v| limited("description", v, MAX_DESCRIPTION_CHARS, &mut errors)));
    let aggregation = change
        .aggregation
        .and_then(|v| match v.trim().parse::<Aggregation>() {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(ErrorDetail::field("aggregation", e.to_string()));
                None
            }
        });
    let direction = change
        .direction
        .and_then(|v| match v.trim().parse::<Direction>() {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(ErrorDetail::field("direction", e.to_string()));
                None
            }
        });
    let changes = MetricChanges {
        display_name,
        unit,
        aggregation,
        direction,
        description,
    };
    if errors.is_empty() && changes.is_empty() {
        errors.push(ErrorDetail {
            reason: "nothing to change: give at least one of display_name, unit, aggregation, direction, description".into(),
            ..Default::default()
        });
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Changes the definition of the custom metric `name` (404 if the tenant has no metric of that
/// name; 409 `builtin_kpi` for a built-in KPI, whose definition is code). Audited as
/// `metric.update` with the fields that changed, in the transaction of the change.
pub(crate) async fn update(
    auth: &Auth<Editor>,
    name: &str,
    change: &DefinitionChange<'_>,
) -> ApiResult<MetricDefinition> {
    let changes = parse_change(change)?;
    let tx = auth.begin().await?;
    let Some((before, after)) = tx.update_metric_definition(name, &changes).await? else {
        if builtin(name).is_some() {
            return Err(ApiError::conflict(
                "builtin_kpi",
                format!("{name} is a built-in KPI: its definition is fixed"),
            ));
        }
        return Err(ApiError::not_found("metric definition"));
    };
    let mut changed = serde_json::Map::new();
    let pairs = [
        (
            "display_name",
            json!(before.display_name),
            json!(after.display_name),
        ),
        ("unit", json!(before.unit), json!(after.unit)),
        (
            "aggregation",
            json!(before.aggregation),
            json!(after.aggregation),
        ),
        ("direction", json!(before.direction), json!(after.direction)),
        (
            "description",
            json!(before.description),
            json!(after.description),
        ),
    ];
    for (field, old, new) in pairs {
        if old != new {
            changed.insert(field.into(), json!({"from": old, "to": new}));
        }
    }
    tx.append_audit(&auth.audit(
        "metric.update",
        "metric_definition",
        Some(name.to_owned()),
        json!({ "changed": changed }),
    ))
    .await?;
    tx.commit().await?;
    Ok(after)
}
