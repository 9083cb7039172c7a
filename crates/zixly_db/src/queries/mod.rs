//! Tenant-scoped queries, grouped by entity, as methods on [`crate::TenantTx`].

pub mod audit;
pub mod auth;
pub mod clients;
pub mod reports;
pub mod series;
pub mod users;

#[cfg(feature = "test-support")]
pub mod testing;
