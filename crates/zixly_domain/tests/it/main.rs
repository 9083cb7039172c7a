//! zixly_domain integration tests (one test binary).
//!
//! `csv_fuzz.rs`: the CSV reader fuzzed with proptest for panics, error locations and memory.
mod csv_fuzz;
