#!/usr/bin/env bash
# The dashboard with a 10,000-trial sweep in headless Chromium: time to first paint, to a
# complete parallel-coordinates plot and table, the API's answer times, the page weight.
#   bench/dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
start_private_pg "${SWEEP_BENCH_PGDIR:-/tmp/sweep-bench-pg-$(id -u)}" 55438
cargo bench -p sweep-coordinator --bench dashboard
