#!/usr/bin/env bash
# Soak: real sweep + random worker/coordinator kills, then the invariant checker.
#   bench/soak.sh [SECONDS] [SEED]     (the test suite runs a 20 s version)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
start_private_pg "${SWEEP_BENCH_PGDIR:-/tmp/sweep-soak-pg-$(id -u)}" 55437
# The soak starts the coordinator, worker and CLI binaries: build all of them first.
cargo build --release --workspace --bins >&2
SOAK_SECS=${1:-120} SOAK_SEED=${2:-7} cargo test --release -p sweep-worker --test soak -- --nocapture 2>&1 | grep -E '^\||^soak|test result|panicked'
