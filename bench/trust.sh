#!/usr/bin/env bash
# Numbers you can trust on small, long-tailed data: random against iterative validation
# splits, in one run, through the whole system (one private Postgres, a coordinator,
# WORKERS workers, `sweep submit` and `sweep watch`).
#  1. Seed-to-seed spread: one configuration (the mission's: MLP 256, BCE with neg_pos
#     class weights capped at 7, focal gamma 3) with `replicas: N` (5; train and split seeds
#     vary together, as they would between two people's runs) and `dataset.split` swept
#     over random and iterative, on each set. Prints the standard deviation over the
#     replicas of test micro-F1 (global threshold tuned on validation) and test macro-F1
#     (per-label thresholds), random against iterative, and the change.
#  2. The winner's curse (--curse): a 3 x 3 grid (cap x gamma) selected on one random
#     validation split, on one iterative split, and on 5-fold stratified cross-validation
#     (the mean over folds), then `sweep confirm --top 1 --replicas 5` (fresh seeds: new
#     splits, new folds); the gap between the winner's selection score and its mean on the
#     fresh seeds, as `sweep best` states it.
#  3. The deliverable (--deliverable): the same configuration with `replicas: N`, trained
#     as the file `sweep best` printed for a cross-validated winner before refit existed
#     (cv dropped: a model on 90% of train, thresholds tuned on an iterative 10%) and as it
#     prints it now (`cv: {folds: 5, refit: true}`: thresholds tuned on the 5 folds'
#     out-of-fold predictions, a model on all of train for their mean best epoch); test
#     micro-F1 (global threshold) and macro-F1 (per-label thresholds), mean ± sd.
# Writes the table to --out (bench/results/trust-cpu.md).
#   bench/trust.sh [--sets "emotions birds genbase yeast bibtex"] [--replicas 5] [--epochs 20]
#                  [--workers 2] [--curse] [--deliverable] [--out bench/results/trust-cpu.md]
# Set BIN=dir-with-the-binaries to use a prebuilt set (then nothing is built).
set -euo pipefail
cd "$(dirname "$0")/.."
SETS="emotions birds genbase yeast bibtex" EPOCHS=20 WORKERS=2 CURSE=0 DELIVERABLE=0 REPLICAS=5
OUT=bench/results/trust-cpu.md
while [ $# -gt 0 ]; do case $1 in
  --sets) SETS=$2; shift 2;; --epochs) EPOCHS=$2; shift 2;;
  --workers) WORKERS=$2; shift 2;; --curse) CURSE=1; shift;; --deliverable) DELIVERABLE=1; shift;;
  --replicas) REPLICAS=$2; shift 2;; --out) OUT=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
source scripts/env.sh
source bench/cluster.sh
bench_binaries
bench_cluster trust 55454
bench_workers trust "$WORKERS"
common="model: {hidden: [256], dropout: 0.2}
train: {epochs: $EPOCHS, batch_size: 128, lr: 0.001, weight_decay: 0.01, patience: 5}"
run() { # NAME YAML-BODY -> sweep id, after it ends
  printf 'name: %s\n%s\n' "$1" "$2" > "$work/$1.yaml"
  local id; id=$("$BIN/sweep" submit "$work/$1.yaml")
  "$BIN/sweep" watch "$id" >/dev/null 2>&1 || true
  echo "$id"
}
t0=$(date +%s)
for set in $SETS; do
  id=$(run "spread-$set" "replicas: $REPLICAS
dataset: {kind: mulan, name: $set}
$common
loss: {class_weight: {scheme: neg_pos, cap: 7}, focal_gamma: 3}
parameters:
  dataset.split: {values: [random, iterative]}")
  "$BIN/sweep" trials "$id" -o json > "$work/spread-$set.json"
  if [ "$CURSE" = 1 ]; then
    for split in random iterative cv5; do
      case $split in cv5) ds="split: iterative, cv: {folds: 5}";; *) ds="split: $split";; esac
      id=$(run "curse-$set-$split" "dataset: {kind: mulan, name: $set, $ds}
$common
loss: {class_weight: {scheme: neg_pos}}
parameters:
  loss.class_weight.cap: {values: [1, 7, 20]}
  loss.focal_gamma: {values: [0, 2, 3]}")
      cid=$("$BIN/sweep" confirm "$id" --top 1 --replicas 5)
      "$BIN/sweep" watch "$cid" >/dev/null 2>&1 || true
      "$BIN/sweep" best "$id" -o json > "$work/curse-$set-$split.json"
    done
  fi
  if [ "$DELIVERABLE" = 1 ]; then
    for kind in holdout refit; do
      case $kind in holdout) ds="split: iterative";; refit) ds="split: iterative, cv: {folds: 5, refit: true}";; esac
      id=$(run "deliverable-$set-$kind" "replicas: $REPLICAS
dataset: {kind: mulan, name: $set, $ds}
$common
loss: {class_weight: {scheme: neg_pos, cap: 7}, focal_gamma: 3}")
      "$BIN/sweep" trials "$id" -o json > "$work/deliverable-$set-$kind.json"
    done
  fi
done
t1=$(date +%s)
"$SWEEP_VENV/bin/python" - "$work" "$SETS" "$CURSE" "$((t1 - t0))" "$OUT" "$DELIVERABLE" <<'PY'
import json, statistics, sys
work, sets, curse, seconds, out = sys.argv[1], sys.argv[2].split(), sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
deliverable = sys.argv[6] == "1"
lines = ["| set | metric | random: mean ± sd | iterative: mean ± sd | sd change |", "|---|---|---|---|---|"]
for s in sets:
    trials = [t for t in json.load(open(f"{work}/spread-{s}.json"))["trials"] if t["state"] == "succeeded"]
    by = {m: [t for t in trials if t["params"]["dataset.split"] == m] for m in ("random", "iterative")}
    for key, label in (("test.f1_micro_tuned", "test micro-F1"), ("test.f1_macro_tuned", "test macro-F1")):
        v = {m: [t["metrics"][key] for t in by[m]] for m in by}
        sd = {m: statistics.stdev(v[m]) if len(v[m]) > 1 else float("nan") for m in v}
        ms = lambda m: f"{statistics.mean(v[m]):.4f} ± {sd[m]:.4f} (n={len(v[m])})"
        change = (sd["iterative"] / sd["random"] - 1) * 100 if sd["random"] > 0 else float("nan")
        lines.append(f"| {s} | {label} | {ms('random')} | {ms('iterative')} | {change:+.0f}% |")
if curse:
    lines += ["", "| set | selected on | winner's validation score | fresh-seed mean ± CI95 (n) | gap |", "|---|---|---|---|---|"]
    for s in sets:
        for m in ("random", "iterative", "cv5"):
            c = json.load(open(f"{work}/curse-{s}-{m}.json")).get("confirmation")
            if c:
                ci = f" ± {c['fresh_ci95']:.4f}" if c.get("fresh_ci95") else ""
                lines.append(f"| {s} | {m} | {c['selected']:.4f} | {c['fresh_mean']:.4f}{ci} ({c['fresh_n']}) | {c['gap']:+.4f} |")
if deliverable:
    lines += ["", "| set | metric | holdout: model on 90%, thresholds on 10% | refit: model on all, thresholds out-of-fold (5) | change |", "|---|---|---|---|---|"]
    for s in sets:
        got = {k: [t for t in json.load(open(f"{work}/deliverable-{s}-{k}.json"))["trials"] if t["state"] == "succeeded"] for k in ("holdout", "refit")}
        for key, label in (("test.f1_micro_tuned", "test micro-F1"), ("test.f1_macro_tuned", "test macro-F1")):
            v = {k: [t["metrics"][key] for t in got[k]] for k in got}
            ms = lambda k: f"{statistics.mean(v[k]):.4f} ± {statistics.stdev(v[k]) if len(v[k]) > 1 else float('nan'):.4f} (n={len(v[k])})"
            lines.append(f"| {s} | {label} | {ms('holdout')} | {ms('refit')} | {statistics.mean(v['refit']) - statistics.mean(v['holdout']):+.4f} |")
print("\n".join(lines))
print(f"\nwall: {seconds} s")
with open(out, "w") as f:
    f.write("\n".join(lines) + f"\n\nwall: {seconds} s (bench/trust.sh)\n")
PY
