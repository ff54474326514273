#!/usr/bin/env bash
# The README's test command: sets everything up (libtorch venv, PostgreSQL), starts a
# private Postgres cluster for the tests, then runs fmt, clippy and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
start_private_pg "${SWEEP_TEST_PGDIR:-/tmp/sweep-test-pg-$(id -u)}" "${SWEEP_TEST_PGPORT:-55439}"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace 2>&1
