//! zixly_db integration tests: one test binary (see ARCHITECTURE.md, "Testing").
mod isolation;
mod reports;
mod schema;
