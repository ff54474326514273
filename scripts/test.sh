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
# The house's function-length rule on everything but tests: too_many_lines at 80 (clippy.toml).
cargo clippy --release --workspace --lib --bins -- -D warnings -W clippy::too_many_lines
cargo test --release --workspace 2>&1
