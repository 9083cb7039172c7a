//! Integration tests of the `zixly` binary: one test binary.
mod bench_cli;
mod bi_role;
mod cli_audit;
mod import;
mod import_duplicates;
mod import_kill;
mod lifecycle;
mod notify_kill;
mod sync_cli;
mod worker_kill;
