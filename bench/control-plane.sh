#!/usr/bin/env bash
# Control-plane benchmark against a private Postgres: prints a table.
#   bench/control-plane.sh        (BENCH_TRIALS=10000 BENCH_AGENTS=50 by default;
#                                  BENCH_SCALE=1 adds 2 coordinators, 1,000 agents, 100,000 trials)
#   bench/control-plane.sh --compare REV [--rounds N]
#       builds REV's benchmark beside this checkout's (REV's tree and target directory under
#       target/, its dependencies copied from this checkout's build), then runs the two
#       alternately on one fresh Postgres, N rounds (default 2), and prints each run, the
#       medians and the ratio this/REV. Run it before you stop whenever a change touches
#       coordinator/src/db/, migrations/ or the agent service, and put the ratio in the note.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

compare="" rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --compare) compare=${2:?--compare needs a revision}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    *) echo "control-plane.sh: unknown argument \`$1\` (usage: [--compare REV] [--rounds N])" >&2; exit 2 ;;
  esac
done

scripts/setup.sh

if [ -z "$compare" ]; then
  start_private_pg "${SWEEP_BENCH_PGDIR:-/tmp/sweep-bench-pg-$(id -u)}" 55438
  exec cargo bench -p sweep-coordinator --bench control_plane
fi

# The bench binary cargo builds in directory $1 into target directory $2.
target=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
bench_binary() {
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench -p sweep-coordinator --bench control_plane \
    --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "control_plane" and m.get("executable"):
        print(m["executable"])'
}

sha=$(git rev-parse --verify "$compare^{commit}") || { echo "control-plane.sh: \`$compare\` is no revision" >&2; exit 2; }
old_src=$target/compare/$sha-src
if [ ! -f "$old_src/Cargo.toml" ]; then
  rm -rf "$old_src"; mkdir -p "$old_src"
  git archive "$sha" | tar -x -C "$old_src"
  # Dated now, not at the commit: newer than anything built, so nothing of this
  # checkout's build (seeded below) is taken for REV's.
  find "$old_src" -type f -exec touch {} +
fi
# REV builds into a target directory of its own: cargo hashes workspace crates without
# their path, and `git archive` dates REV's files to its commit, so two checkouts sharing
# one would take each other's build-script outputs as fresh. It is seeded once from this
# checkout's build (the same dependencies are not built again).
old_target=$target/compare/$sha-target
if [ ! -d "$old_target/release" ] && [ -d "$target/release" ]; then
  mkdir -p "$old_target" && cp -a "$target/release" "$old_target/"
fi
echo "building this checkout's benchmark and $compare's ($sha)" >&2
new_bin=$(bench_binary "$REPO_ROOT" "$target")
old_bin=$(bench_binary "$old_src" "$old_target")
[ -x "$new_bin" ] && [ -x "$old_bin" ] || { echo "control-plane.sh: a benchmark did not build" >&2; exit 1; }

# One fresh cluster for both (each run makes its own database in it).
pgdir=${SWEEP_BENCH_PGDIR:-/tmp/sweep-bench-compare-pg-$(id -u)}
scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"
start_private_pg "$pgdir" 55437
out=$(mktemp -d)
for r in $(seq "$rounds"); do
  for side in new old; do
    bin=$new_bin; [ $side = old ] && bin=$old_bin
    echo "round $r: $side" >&2
    "$bin" --bench > "$out/$side-$r.txt"
    cat "$out/$side-$r.txt" >&2
  done
done
python3 - "$out" "$rounds" "$compare" <<'EOF'
import re, statistics, sys
out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [("submit", r"\| submit \d+-trial grid \| ([\d.]+) s", "s"),
        ("drain", r"\| drain throughput \| ([\d.]+) trials/s", "trials/s"),
        ("p50", r"hands out a trial, p50 \| ([\d.]+) ms", "ms"),
        ("p99", r"hands out a trial, p99 \| ([\d.]+) ms", "ms")]
def read(side, r):
    text = open(f"{out}/{side}-{r}.txt").read()
    return {k: float(re.search(p, text).group(1)) for k, p, _ in keys}
runs = {s: [read(s, r) for r in range(1, rounds + 1)] for s in ("new", "old")}
print(f"\ncontrol plane, this checkout against {rev}, alternately on one Postgres, {rounds} round(s)")
print("| measure | " + " | ".join(f"this, run {r}" for r in range(1, rounds + 1)) + " | "
      + " | ".join(f"{rev}, run {r}" for r in range(1, rounds + 1)) + " | median this / median rev |")
print("|---" * (2 * rounds + 2) + "|")
for k, _, unit in keys:
    new = [x[k] for x in runs["new"]]; old = [x[k] for x in runs["old"]]
    ratio = statistics.median(new) / statistics.median(old)
    print(f"| {k} ({unit}) | " + " | ".join(f"{v:g}" for v in new) + " | " + " | ".join(f"{v:g}" for v in old)
          + f" | {ratio:.2f}x |")
print("(drain: higher is better; submit, p50, p99: lower is better)")
EOF
rm -rf "$out"
