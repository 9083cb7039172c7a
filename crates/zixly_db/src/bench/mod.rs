//! The SQL of `zixly bench` (BENCHMARKS.md), outside the product's API: compiled only with the
//! `bench` feature, which the `zixly` binary alone enables (its `bench` command drives these).
//! No library crate may enable it; `scripts/check-test-support.sh` fails when one does. The SQL
//! stays in this crate because only zixly_db writes SQL.

mod ingest;
mod seed;

pub use ingest::{bench_create_clients, bench_raw_copy, bench_row_by_row, BenchRow, CopyTarget};
pub use seed::SeedCounts;
