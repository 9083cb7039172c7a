//! Integration tests of the `zixly` binary: one test binary.
mod lifecycle;
