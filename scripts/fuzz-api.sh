#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis, as tenant A's ADMIN and as its VIEWER, against the real
# server on a fresh test database with a seeded two-tenant fixture (the test
# `crates/zixly_web/tests/fuzz`, ignored in the normal suite). Fails on any 5xx or answer that
# does not match /api/openapi.json. Logs and JUnit reports: target/schemathesis/.
#
# schemathesis (pinned below) is installed in a virtualenv under target/ unless
# ZIXLY_SCHEMATHESIS names an `st` program already. Time: about 2 × ZIXLY_FUZZ_MAX_TIME
# (default 120 s) plus the build. Other knobs: see the test's module docs.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5

if [ -z "${ZIXLY_SCHEMATHESIS:-}" ]; then
    venv="$PWD/target/schemathesis-venv"
    if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        echo "installing schemathesis $SCHEMATHESIS_VERSION in $venv"
        rm -rf "$venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            # Debian's python3 needs python3-venv for `-m venv`.
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
                rm -rf "$venv"
                python3 -m venv "$venv"
            else
                echo "python3 -m venv failed: install python3-venv" >&2
                exit 1
            fi
        fi
        "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    export ZIXLY_SCHEMATHESIS="$venv/bin/st"
fi
"$ZIXLY_SCHEMATHESIS" --version

exec cargo nextest run -p zixly_web --test fuzz --run-ignored only --no-capture --locked "$@"
