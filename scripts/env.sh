# Sourced by the other scripts: where the cached libtorch venv lives and how to build
# and run against it. The venv sits outside the clone, keyed by torch version, so
# fresh clones and CI runs reuse it.
SWEEP_CACHE=${SWEEP_CACHE:-$HOME/.cache/sweep}
TORCH_VERSION=2.11.0
SWEEP_VENV=$SWEEP_CACHE/torch-$TORCH_VERSION
export SWEEP_CACHE SWEEP_VENV
export PATH="$SWEEP_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$SWEEP_VENV/lib/python3.11/site-packages/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SWEEP_DATA_DIR=${SWEEP_DATA_DIR:-$(cd "$REPO_ROOT/.." && pwd)/shared/datasets}

# start_private_pg DIR PORT: starts (or reuses) a private cluster, exports its URL as
# SWEEP_TEST_DATABASE_URL, and stops it when the calling script exits.
start_private_pg() {
  SWEEP_TEST_DATABASE_URL=$("$REPO_ROOT/scripts/pg.sh" start "$1" "$2")
  export SWEEP_TEST_DATABASE_URL
  # shellcheck disable=SC2064
  trap "'$REPO_ROOT/scripts/pg.sh' stop '$1'" EXIT
}
