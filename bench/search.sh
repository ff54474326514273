#!/usr/bin/env bash
# Search on bibtex: the 108-cell grid (lr {1e-4,3e-4,1e-3,3e-3} x hidden {256,512,1024} x
# dropout {0,0.2,0.4} x class-weight cap {1,5,10}) against random search, TPE, and random
# search with ASHA over the continuous versions of the same ranges (run_cap 40 each, one
# sweep per search seed). One private Postgres, one coordinator and WORKERS workers (the
# cores split between them), every sweep through `sweep submit` and `sweep watch`.
# Prints, per search and seed: trials, best validation micro-F1, the test micro-F1 of that
# trial, epochs spent, and how many trials (in proposal order) it took to come within
# 0.005 of the grid's best validation micro-F1; then the means over seeds.
#   bench/search.sh [--seeds "1 2 3"] [--epochs 20] [--workers 2] [--searches "grid random tpe asha"]
# Set BIN=dir-with-the-binaries to use a prebuilt set (then nothing is built).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="1 2 3" EPOCHS=20 WORKERS=2 SEARCHES="grid random tpe asha"
while [ $# -gt 0 ]; do case $1 in
  --seeds) SEEDS=$2; shift 2;; --epochs) EPOCHS=$2; shift 2;;
  --workers) WORKERS=$2; shift 2;; --searches) SEARCHES=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
source scripts/env.sh
source bench/cluster.sh
bench_binaries
export SWEEP_DATA_DIR=${SWEEP_DATA_DIR:-$(cd .. && pwd)/shared/datasets}
bench_cluster search 55452
bench_workers search "$WORKERS"
common="metric: {name: val.f1_micro, goal: maximize}
dataset: {kind: mulan, name: bibtex}
model: {hidden: [512], dropout: 0.2}
train: {epochs: $EPOCHS, batch_size: 256, lr: 0.001, weight_decay: 0.01, patience: 3}
loss: {class_weight: {scheme: neg_pos, cap: 5}}"
continuous="  train.lr: {min: 1e-4, max: 3e-3, distribution: log_uniform}
  model.hidden: {values: [[256], [512], [1024]]}
  model.dropout: {min: 0.0, max: 0.4}
  loss.class_weight.cap: {min: 1, max: 10}"
run() {  # name, then the rest of the sweep file
  printf 'name: %s\n%s\n%s\n' "$1" "$common" "$2" > "$work/$1.yaml"
  local id; id=$("$BIN/sweep" submit "$work/$1.yaml" --no-upload)
  "$BIN/sweep" watch "$id" >/dev/null 2>&1 || true
  "$BIN/sweep" trials "$id" -o json > "$work/$1.trials.json"
  echo "$1" >> "$work/runs"
}
for s in $SEARCHES; do
  case $s in
    grid) run grid "method: grid
parameters:
  train.lr: {values: [1e-4, 3e-4, 1e-3, 3e-3]}
  model.hidden: {values: [[256], [512], [1024]]}
  model.dropout: {values: [0.0, 0.2, 0.4]}
  loss.class_weight.cap: {values: [1, 5, 10]}" ;;
    random|tpe|asha)
      for seed in $SEEDS; do
        method=$s; extra=""
        if [ "$s" = asha ]; then method=random; extra="early_stop: {type: asha, min_epochs: 1, reduction_factor: 3, max_epochs: $EPOCHS}"; fi
        run "$s-$seed" "method: $method
run_cap: 40
seed: $seed
$extra
parameters:
$continuous"
      done ;;
    *) echo "unknown search $s" >&2; exit 2;;
  esac
done
python3 - "$work" <<'PY'
import json, os, statistics, sys
work = sys.argv[1]
runs = [l.strip() for l in open(os.path.join(work, "runs"))]
def load(name):
    ts = json.load(open(os.path.join(work, name + ".trials.json")))["trials"]
    done = [t for t in ts if t["state"] in ("succeeded", "pruned") and "val.f1_micro" in t["metrics"]]
    return ts, done
grid_best = None
if "grid" in runs:
    _, done = load("grid")
    grid_best = max(t["metrics"]["val.f1_micro"] for t in done)
rows = []
print("| search | seed | trials | pruned | best val micro-F1 | its test micro-F1 | epochs spent | trials to within 0.005 of the grid's best |")
print("|---|---|---|---|---|---|---|---|")
for name in runs:
    ts, done = load(name)
    best = max(done, key=lambda t: t["metrics"]["val.f1_micro"])
    epochs = sum(t["epoch"] for t in ts)
    reach = "-"
    if grid_best is not None:
        reach = "not reached"
        top = 0.0
        for i, t in enumerate(ts, 1):
            v = t["metrics"].get("val.f1_micro")
            if v is not None and t["state"] in ("succeeded", "pruned"):
                top = max(top, v)
            if top >= grid_best - 0.005:
                reach = str(i)
                break
    search, _, seed = name.partition("-")
    pruned = sum(t["state"] == "pruned" for t in ts)
    rows.append((search, best["metrics"]["val.f1_micro"], best["metrics"]["test.f1_micro"], epochs, reach))
    print(f"| {search} | {seed or '-'} | {len(ts)} | {pruned} | {best['metrics']['val.f1_micro']:.4f} | "
          f"{best['metrics']['test.f1_micro']:.4f} | {epochs} | {reach} |")
print("\nmean over search seeds: best val micro-F1 / its test micro-F1 / epochs spent")
for search in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == search]
    m = lambda i: statistics.mean(r[i] for r in rs)
    print(f"{search:<7} {m(1):.4f} / {m(2):.4f} / {m(3):.0f}  (n={len(rs)})")
if grid_best is not None:
    print(f"grid best validation micro-F1: {grid_best:.4f}")
PY
