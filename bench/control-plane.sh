#!/usr/bin/env bash
# Control-plane benchmark against a private Postgres: prints a table.
#   bench/control-plane.sh        (BENCH_TRIALS=10000 BENCH_AGENTS=50 by default;
#                                  BENCH_SCALE=1 adds 2 coordinators, 1,000 agents, 100,000 trials)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
start_private_pg "${SWEEP_BENCH_PGDIR:-/tmp/sweep-bench-pg-$(id -u)}" 55438
cargo bench -p sweep-coordinator --bench control_plane
