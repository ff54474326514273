#!/usr/bin/env bash
# Refreshes the dashboard's screenshots in docs/dashboard/ from the browser test, which
# takes them during a live sweep (worker/tests/process/dashboard.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
start_private_pg "${SWEEP_TEST_PGDIR:-/tmp/sweep-test-pg-$(id -u)}" "${SWEEP_TEST_PGPORT:-55439}"
cargo build --release --workspace --bins
cargo test --release -p sweep-worker --test process dashboard::
mkdir -p docs/dashboard
for v in sweep sweeps trial workers; do cp "target/test-artifacts/dashboard-$v.png" "docs/dashboard/$v.png"; done
echo "docs/dashboard/: $(ls docs/dashboard | tr '\n' ' ')"
