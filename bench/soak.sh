#!/usr/bin/env bash
# Soak: real sweep + random worker/coordinator kills, then the invariant checker.
#   bench/soak.sh [SECONDS] [SEED]     (the test suite runs a 20 s version)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
PGDIR=${SWEEP_BENCH_PGDIR:-/tmp/sweep-soak-pg-$(id -u)}
export SWEEP_TEST_DATABASE_URL=$(scripts/pg.sh start "$PGDIR" 55437)
trap 'scripts/pg.sh stop "$PGDIR"' EXIT
SOAK_SECS=${1:-120} SOAK_SEED=${2:-7} cargo test --release -p sweep-worker --test soak -- --nocapture 2>&1 | grep -E '^\||^soak|test result|panicked'
