//! zixly_db integration tests: one test binary (see ARCHITECTURE.md, "Testing").
mod bi_logins;
mod bootstrap;
mod catalogue;
mod citus;
mod dashboard;
mod fx_agreement;
mod goals;
mod interrupted;
mod isolation;
mod loader;
mod loader_checks;
mod notifications;
mod numeric;
mod partitions;
mod reports;
mod schema;
mod statement_stats;
