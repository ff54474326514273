# Sourced by the benchmarks that go through the whole system (bench/search.sh,
# bench/text.sh, bench/trust.sh). `bench_binaries` sets BIN: the prebuilt set it names,
# or (unset) the setup and a release build of this checkout. `bench_workers NAME N`
# starts N CPU workers splitting the cores (after bench_cluster; logs in $work).
# `bench_cluster NAME PORT [coordinator flags...]` starts (or reuses) a
# private Postgres on PORT, makes a database of its own for this run (sweeps are
# identified by name, and a rerun must train), migrates it, makes an admin and a join
# token, starts a coordinator with a blob store, and exports SWEEP_COORDINATOR and
# SWEEP_TOKEN_FILE. Sets `work` (a scratch directory) and `pids` (stopped on exit, with
# the scratch directory removed). Needs BIN (the binaries' directory).
bench_cluster() {
  local name=$1 port=$2; shift 2
  work=$(mktemp -d)
  local pgdir=${SWEEP_BENCH_PGDIR:-/tmp/sweep-$name-pg-$(id -u)}
  local url; url=$(scripts/pg.sh start "$pgdir" "$port")
  local db="${name}_$(date +%s)_$$"
  local psql; psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)
  "$psql" "$url" -qc "CREATE DATABASE $db"
  url=${url%/postgres}/$db
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  "$BIN/sweep-coordinator" migrate --database-url "$url" >/dev/null
  "$BIN/sweep-coordinator" token create --role admin --name "$name-bench" --database-url "$url" --out "$work/token" >/dev/null
  "$BIN/sweep-coordinator" token create --role join --name "$name-bench" --database-url "$url" --out "$work/join" >/dev/null
  "$BIN/sweep-coordinator" serve --listen 127.0.0.1:0 --database-url "$url" --port-file "$work/addr" \
    --blob-store "$work/blobs" "$@" 2>"$work/coordinator.log" & pids+=($!)
  for _ in $(seq 300); do [ -s "$work/addr" ] && break; sleep 0.1; done
  export SWEEP_COORDINATOR=http://$(cat "$work/addr") SWEEP_TOKEN_FILE=$work/token
}

bench_binaries() {
  if [ -z "${BIN:-}" ]; then
    scripts/setup.sh >&2
    cargo build --release --workspace --bins >&2
    BIN=$PWD/target/release
  fi
}

bench_workers() {
  local name=$1 n=$2 i threads
  threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
  for i in $(seq "$n"); do
    SWEEP_JOIN_TOKEN_FILE=$work/join "$BIN/sweep-worker" run --device cpu --threads "$threads" \
      --name "$name-$i" --cache-dir "$work/cache-$i" 2>"$work/worker-$i.log" & pids+=($!)
  done
}
