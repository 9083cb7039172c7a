pub mod bench;
pub mod bi_role;
// Wired into `zixly bench` as `BenchCommand::Api` by cmd/bench.rs (the ingest benchmark's file);
// until then nothing calls it.
#[allow(dead_code)]
pub mod bench_alerts;
pub mod bench_api;
pub mod bench_attack;
mod bench_server;
pub mod db;
pub mod fx;
pub mod import;
pub mod keys;
pub mod server;
pub mod sync;
pub mod tenant;
pub mod user;
pub mod worker;
