//! `zixly_db` — the only crate that writes SQL.
//!
//! Layout:
//! - [`connect`]: connection settings and the two pools. [`AppDb`] connects as `zixly_app` (no
//!   BYPASSRLS, DML only) and its *only* way to run a query is [`AppDb::begin_tenant`], which returns a
//!   [`TenantTx`]: one transaction with `zixly.tenant_id` set transaction-locally. Row-Level Security
//!   in the database then scopes every statement to that tenant, whatever the SQL says.
//! - [`system`]: [`SystemDb`], the loudly named cross-tenant path (tenant administration, scheduler).
//!   It connects as the schema owner, which bypasses RLS. Request handlers never receive one: the web
//!   crate's state holds only an [`AppDb`].
//! - [`bi_roles`]: direct-SQL logins for BI tools, mapped to one tenant (`zixly bi-role`).
//! - [`bootstrap`]: creates the cluster-wide roles and the database (needs a superuser or CREATEROLE).
//! - [`migrate`]: forward-only migrations embedded from `/migrations`, run as `zixly_owner`.
//! - [`retention`]: how long a tenant keeps raw daily financials, and the scheduled deletion that
//!   keeps the monthly rollups.
//! - [`statement_stats`]: `pg_stat_statements` for operators (`zixly db top`).
//! - [`queries`]: SQL grouped by entity, as methods taking a [`TenantTx`] (or [`SystemDb`]).
//!
//! Invariant: no `tokio_postgres::Client` leaves this crate, so no other crate can run SQL.

#[cfg(feature = "bench")]
pub mod bench;
pub mod bi_roles;
pub mod bootstrap;
pub mod checkpoints;
pub mod citus;
pub mod connect;
mod error;
pub mod integrations;
pub mod loader;
pub mod migrate;
pub mod numeric;
pub mod queries;
pub mod queue;
pub mod retention;
pub mod statement_stats;
pub mod sync_state;
pub mod system;
mod system_fx;
mod tenant_tx;

pub use connect::{AppDb, DbUrls};
pub use error::{DbError, DbResult};
pub use system::SystemDb;
pub use tenant_tx::TenantTx;

/// Role names: contract points shared with operators' tooling.
pub mod roles {
    pub const OWNER: &str = "zixly_owner";
    pub const APP: &str = "zixly_app";
    pub const READONLY: &str = "zixly_readonly";
}

/// The transaction-local setting RLS policies read: a contract point.
pub const TENANT_SETTING: &str = "zixly.tenant_id";
