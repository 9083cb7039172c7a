//! Integration tests of the `zixly` binary: one test binary.
mod import;
mod lifecycle;
mod sync_cli;
mod worker_kill;
