#!/usr/bin/env bash
# Fails when the `test-support` feature of zixly_db (raw SQL on TenantTx, for RLS tests) is in the
# graph of what ships: the `zixly` binary, and the workspace as `cargo build` / `cargo run` at the
# root resolve it (normal and build edges only — dev-dependencies, where the tests enable the
# feature, are resolved only when tests are compiled). Then compiles every crate's library and
# binary targets without dev-dependencies, which is what makes a handler that calls `raw_batch`
# a compile error rather than a review finding. A step of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for scope in "-p zixly" "--workspace"; do
    # shellcheck disable=SC2086 # $scope is two words on purpose
    if leaks=$(cargo tree $scope --edges normal,build,features --locked --prefix none | grep -F 'test-support'); then
        echo "test-support is in the graph of \`cargo tree $scope\` (normal and build edges):" >&2
        echo "$leaks" | sort -u >&2
        echo "who enables it: cargo tree $scope -e normal,build,features -i zixly_db" >&2
        status=1
    fi
done
if [ "$status" != 0 ]; then
    echo "enable zixly_db/test-support only under [dev-dependencies]" >&2
    exit "$status"
fi
echo "test-support: not in the binary's dependency graph"

# Library and binary targets only (no tests, so no dev-dependencies and no test-support).
cargo check --workspace --locked
