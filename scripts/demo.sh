#!/usr/bin/env bash
# The README's run command: builds Sweep, starts a private Postgres, a coordinator and
# two workers, submits examples/seed-grid.yaml, follows it, and prints the leaderboard
# and the best configuration. Everything it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
SPEC=${1:-examples/seed-grid.yaml}
STATE=${SWEEP_DEMO_DIR:-$SWEEP_CACHE/demo}
mkdir -p "$STATE"
cargo build --release --workspace --bins
export DATABASE_URL=$(scripts/pg.sh start "$STATE/pg" 55433)
BIN=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; scripts/pg.sh stop "$STATE/pg"; }
trap cleanup EXIT
$BIN/sweep-coordinator migrate
[ -s "$STATE/token" ] || $BIN/sweep-coordinator token create --role admin --name demo --out "$STATE/token"
[ -s "$STATE/join-token" ] || $BIN/sweep-coordinator token create --role join --name demo-workers --out "$STATE/join-token"
rm -f "$STATE/addr"
$BIN/sweep-coordinator serve --listen 127.0.0.1:0 --port-file "$STATE/addr" 2>"$STATE/coordinator.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$STATE/addr" ] && break; sleep 0.1; done
export SWEEP_COORDINATOR=http://$(cat "$STATE/addr") SWEEP_TOKEN_FILE=$STATE/token SWEEP_JOIN_TOKEN_FILE=$STATE/join-token
for i in 1 2; do $BIN/sweep-worker run --name "worker-$i" --device auto 2>"$STATE/worker-$i.log" & pids+=($!); done
ID=$($BIN/sweep submit "$SPEC" --watch)
echo; $BIN/sweep trials "$ID" --sort metric
echo; $BIN/sweep best "$ID"
