#!/usr/bin/env bash
# Fails when the `test-support` feature of zixly_db (raw SQL on TenantTx, for RLS tests) is in the
# graph of what ships: the `zixly` binary, and the workspace as `cargo build` / `cargo run` at the
# root resolve it (normal and build edges only — dev-dependencies, where the tests enable the
# feature, are resolved only when tests are compiled). Then compiles every crate's library and
# binary targets without dev-dependencies, which is what makes a handler that calls `raw_batch`
# a compile error rather than a review finding. Also checks that zixly_db's `bench` feature (the SQL
# of `zixly bench`) is enabled by the binary alone. A step of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The feature graph of `cargo tree ARGS` (normal and build edges); a failing cargo fails the script.
features_of() {
    cargo tree "$@" --edges normal,build,features --locked --prefix none
}

status=0
for scope in "-p zixly" "--workspace"; do
    # shellcheck disable=SC2086 # $scope is two words on purpose
    graph=$(features_of $scope)
    if grep -qF 'zixly_db feature "test-support"' <<<"$graph"; then
        echo "test-support is in the graph of \`cargo tree $scope\` (normal and build edges);" >&2
        echo "who enables it: cargo tree $scope -e normal,build,features -i zixly_db" >&2
        status=1
    fi
done
if [ "$status" != 0 ]; then
    echo "enable zixly_db/test-support only under [dev-dependencies]" >&2
    exit "$status"
fi
echo "test-support: not in the binary's dependency graph"

# zixly_db/bench (the SQL of `zixly bench`) is the binary's alone: no library crate's graph has it.
grep -qF 'zixly_db feature "bench"' <<<"$(features_of -p zixly)" || {
    echo "the zixly binary no longer enables zixly_db/bench: this check is stale" >&2
    exit 1
}
for manifest in crates/*/Cargo.toml; do
    crate=$(basename "$(dirname "$manifest")")
    [ "$crate" = zixly ] && continue
    if grep -qF 'zixly_db feature "bench"' <<<"$(features_of -p "$crate")"; then
        echo "$crate enables zixly_db/bench: only the zixly binary may" >&2
        status=1
    fi
done
[ "$status" = 0 ] || exit "$status"
echo "bench: only in the binary"

# Library and binary targets only (no tests, so no dev-dependencies and no test-support).
cargo check --workspace --locked
