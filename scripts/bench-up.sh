#!/usr/bin/env bash
# Measures `zixly up` from process start to `GET /readyz` = 200: first start (initdb included) and
# restart, RUNS times each on fresh data dirs. Usage: scripts/bench-up.sh [BIN] [RUNS]
set -euo pipefail
BIN=${1:-target/release/zixly}
RUNS=${2:-5}
PORT=18181

ms_now() { date +%s%3N; }

wait_ready() {
    until curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do sleep 0.01; done
}

measure() { # dir -> prints ms to ready, leaves server stopped
    local dir=$1 t0 t1 pid
    t0=$(ms_now)
    ZIXLY_LOG=warn "$BIN" up --data-dir "$dir" --listen "127.0.0.1:$PORT" >/dev/null &
    pid=$!
    wait_ready
    t1=$(ms_now)
    kill -TERM "$pid"; wait "$pid"
    echo $((t1 - t0))
}

first=(); restart=()
for i in $(seq "$RUNS"); do
    dir=$(mktemp -d /tmp/zx-bench-XXXXXX)
    first+=("$(measure "$dir")")
    restart+=("$(measure "$dir")")
    rm -rf "$dir"
done
summary() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %d ms, median %d ms, max %d ms (n=%d)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
echo "first start to ready: $(summary "${first[@]}")"
echo "restart to ready:     $(summary "${restart[@]}")"
