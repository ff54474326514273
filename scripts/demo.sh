#!/usr/bin/env bash
# The README's run command: sets up (libtorch venv, PostgreSQL), builds, then runs
# `sweep local` on the seed grid (or the sweep file given): a private Postgres kept
# under ~/.local/share/sweep/local, a coordinator, two workers, live progress, the
# leaderboard, the best config, and an HTML report (sweep-report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
t0=$SECONDS
scripts/setup.sh --demo
t1=$SECONDS
cargo build --release --workspace --bins
echo "demo: set-up took $((t1 - t0)) s, the build $((SECONDS - t1)) s" >&2
exec target/release/sweep local ${1:+"$1"} --workers "${SWEEP_WORKERS:-2}" --report "${SWEEP_REPORT:-sweep-report.html}"
