//! The metric catalogue: `GET /metric-definitions` (any role) and
//! `PATCH /metric-definitions/{name}` (EDITOR). The business rules are in
//! [`crate::actions::metrics`]; this module parses JSON and shapes the answer.

use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zixly_db::queries::metrics::MetricDefinition;
use zixly_domain::metrics::{Aggregation, Direction};

use crate::actions::metrics::{self, CatalogueEntry, DefinitionChange};
use crate::api::Page;
use crate::auth::{Auth, Editor, Viewer};
use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_metric_definitions))
        .routes(routes!(update_metric_definition))
}

/// How a metric combines within a bucket (`value` of the bucketed metric reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregationName {
    Sum,
    Average,
    Last,
    Min,
    Max,
}

impl From<Aggregation> for AggregationName {
    fn from(a: Aggregation) -> Self {
        match a {
            Aggregation::Sum => AggregationName::Sum,
            Aggregation::Average => AggregationName::Average,
            Aggregation::Last => AggregationName::Last,
            Aggregation::Min => AggregationName::Min,
            Aggregation::Max => AggregationName::Max,
        }
    }
}

/// Whether a rising value is good news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionName {
    UpIsGood,
    DownIsGood,
}

impl From<Direction> for DirectionName {
    fn from(d: Direction) -> Self {
        match d {
            Direction::UpIsGood => DirectionName::UpIsGood,
            Direction::DownIsGood => DirectionName::DownIsGood,
        }
    }
}

/// A metric's definition as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricDefinitionView {
    /// The metric's name in imports, syncs and `/clients/{id}/metrics?name=`.
    pub name: String,
    pub display_name: String,
    /// `null` for amounts in the tenant's base currency and for unitless metrics.
    pub unit: Option<String>,
    /// `null` for the built-in ratios (margin, win rate), computed from sums.
    pub aggregation: Option<AggregationName>,
    pub direction: DirectionName,
    pub description: Option<String>,
    /// Built-in KPIs are defined by Zixly and cannot be changed.
    pub builtin: bool,
    /// `null` for built-in KPIs.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<MetricDefinition> for MetricDefinitionView {
    fn from(d: MetricDefinition) -> Self {
        MetricDefinitionView {
            name: d.name,
            display_name: d.display_name,
            unit: d.unit,
            aggregation: Some(d.aggregation.into()),
            direction: d.direction.into(),
            description: d.description,
            builtin: false,
            created_at: Some(d.created_at),
            updated_at: Some(d.updated_at),
        }
    }
}

impl From<CatalogueEntry> for MetricDefinitionView {
    fn from(e: CatalogueEntry) -> Self {
        match e {
            CatalogueEntry::Custom(d) => d.into(),
            CatalogueEntry::Builtin(k) => MetricDefinitionView {
                name: k.name.to_owned(),
                display_name: k.display_name.to_owned(),
                unit: k.unit.map(str::to_owned),
                aggregation: k.aggregation.map(Into::into),
                direction: k.direction.into(),
                description: Some(k.description.to_owned()),
                builtin: true,
                created_at: None,
                updated_at: None,
            },
        }
    }
}

fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a definition: absent fields stay as they are; `null` or `""` clears `unit` or
/// `description`. Values are validated by the action, so a wrong one is a 422 naming its field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinitionPatch {
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub unit: Option<Option<String>>,
    /// `sum`, `average`, `last`, `min` or `max`.
    #[schema(value_type = Option<AggregationName>)]
    pub aggregation: Option<String>,
    /// `up_is_good` or `down_is_good`.
    #[schema(value_type = Option<DirectionName>)]
    pub direction: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// List the metric catalogue
///
/// The built-in KPIs (read-only), then every custom metric the tenant has imported or synced,
/// by name. A metric gets its definition the first time a load meets its name.
#[utoipa::path(get, path = "/metric-definitions", tag = "metrics",
    security(("bearer" = ["VIEWER"]), ("cookie" = ["VIEWER"])),
    responses((status = 200, body = Page<MetricDefinitionView>), (status = 401, body = ErrorBody)))]
async fn list_metric_definitions(
    auth: Auth<Viewer>,
) -> ApiResult<Json<Page<MetricDefinitionView>>> {
    let entries = metrics::list(&auth).await?;
    Ok(Json(Page::all(
        entries.into_iter().map(Into::into).collect(),
    )))
}

/// Change a custom metric's definition
#[utoipa::path(patch, path = "/metric-definitions/{name}", tag = "metrics",
    request_body = MetricDefinitionPatch,
    params(("name" = String, Path, description = "The metric's name")),
    security(("bearer" = ["EDITOR"]), ("cookie" = ["EDITOR"])),
    responses((status = 200, body = MetricDefinitionView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`builtin_kpi`: a built-in KPI's definition is fixed"),
        (status = 422, body = ErrorBody)))]
async fn update_metric_definition(
    auth: Auth<Editor>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<MetricDefinitionPatch>,
) -> ApiResult<Json<MetricDefinitionView>> {
    let change = DefinitionChange {
        display_name: body.display_name.as_deref(),
        unit: body.unit.as_ref().map(Option::as_deref),
        aggregation: body.aggregation.as_deref(),
        direction: body.direction.as_deref(),
        description: body.description.as_ref().map(Option::as_deref),
    };
    let after = metrics::update(&auth, &name, &change).await?;
    Ok(Json(after.into()))
}
