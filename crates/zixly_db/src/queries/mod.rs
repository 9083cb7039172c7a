//! Tenant-scoped queries, grouped by entity, as methods on [`crate::TenantTx`].

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod dashboard;
pub mod fx;
pub mod goals;
pub mod metrics;
pub mod notifications;
pub mod reports;
pub mod rollups;
pub mod series;
pub mod sync_runs;
pub mod users;

#[cfg(feature = "test-support")]
pub mod testing;
