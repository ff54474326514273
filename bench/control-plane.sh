#!/usr/bin/env bash
# Control-plane benchmark against a private Postgres: prints a table.
#   bench/control-plane.sh        (BENCH_TRIALS=10000 BENCH_AGENTS=50 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
PGDIR=${SWEEP_BENCH_PGDIR:-/tmp/sweep-bench-pg-$(id -u)}
export SWEEP_TEST_DATABASE_URL=$(scripts/pg.sh start "$PGDIR" 55438)
trap 'scripts/pg.sh stop "$PGDIR"' EXIT
cargo bench -p sweep-coordinator --bench control_plane
