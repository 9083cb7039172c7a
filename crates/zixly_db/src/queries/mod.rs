//! Tenant-scoped queries, grouped by entity, as methods on [`crate::TenantTx`].

pub mod users;

#[cfg(feature = "test-support")]
pub mod testing;
