#!/usr/bin/env bash
# The README's test command: sets everything up (libtorch venv, PostgreSQL), starts a
# private Postgres cluster for the tests, then runs fmt, clippy and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
PGDIR=${SWEEP_TEST_PGDIR:-/tmp/sweep-test-pg-$(id -u)}
PGPORT=${SWEEP_TEST_PGPORT:-55439}
export SWEEP_TEST_DATABASE_URL=$(scripts/pg.sh start "$PGDIR" "$PGPORT")
trap 'scripts/pg.sh stop "$PGDIR"' EXIT
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace 2>&1
