#!/usr/bin/env bash
# The training array: the cap x gamma grid (cap 6/7/8 x focal gamma 0/2/3, as
# bench/cap-gamma-grid.sh) trained three ways on one device, in one run:
#   sequential  one `sweep-worker train` process, the trials one after another
#   processes   K `sweep-worker train` processes at once on the same device (today's way
#               to share a GPU)
#   fused       one process, the K trials as one stacked model (`--fused`)
# and the same with several seeds per cell (K = 9 x seeds). Prints wall time,
# trial-samples/s (training rows x epochs run, summed over trials, per wall second), the
# speed-up over sequential, and the largest |difference| in test micro-F1 from the
# sequential run (fusing must not change results; the processes column shows what the
# same trials give when nothing is fused).
#   bench/fused.sh [--device cpu|cuda] [--dataset delicious] [--epochs 20] [--seeds "0"]
#                  [--modes "sequential processes fused"]
# Set WORKER=path/to/sweep-worker to use a prebuilt binary (the GPU machine has no Rust).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu DATASET=delicious EPOCHS=20 SEEDS="0" MODES="sequential processes fused"
while [ $# -gt 0 ]; do case $1 in
  --device) DEVICE=$2; shift 2;; --dataset) DATASET=$2; shift 2;;
  --epochs) EPOCHS=$2; shift 2;; --seeds) SEEDS=$2; shift 2;;
  --modes) MODES=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
if [ -z "${WORKER:-}" ]; then
  source scripts/env.sh
  scripts/setup.sh >&2
  cargo build --release --workspace --bins >&2  # the workspace build: -p alone would rebuild every dependency with other features
  WORKER=target/release/sweep-worker
fi
PY=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
configs=()
for seed in $SEEDS; do for cap in 6 7 8; do for gamma in 0 2 3; do
  c=$work/c-$cap-$gamma-$seed.json
  cat > "$c" <<JSON
{"metric":{"name":"val.f1_micro","goal":"maximize"},
 "dataset":{"kind":"mulan","name":"$DATASET","val_fraction":0.1,"split_seed":0},
 "model":{"hidden":[512],"dropout":0.2},
 "train":{"epochs":$EPOCHS,"batch_size":256,"lr":0.001,"weight_decay":0.01,"patience":3,"seed":$seed},
 "loss":{"class_weight":{"scheme":"neg_pos","cap":$cap,"beta":0.999},"focal_gamma":$gamma,"focal_alpha":-1}}
JSON
  configs+=("$c")
done; done; done
K=${#configs[@]}
args=(); for c in "${configs[@]}"; do args+=(--config "$c"); done
for mode in $MODES; do
  out=$work/$mode; mkdir -p "$out"
  start=$(date +%s.%N)
  case $mode in
    sequential) "$WORKER" train "${args[@]}" --device "$DEVICE" --out-dir "$out" 2>"$work/$mode.log" ;;
    fused) "$WORKER" train "${args[@]}" --fused --device "$DEVICE" --out-dir "$out" 2>"$work/$mode.log" ;;
    processes)
      # The cores split between the processes (K processes of libtorch's default one
      # thread per core each thrash a CPU); on a GPU each process drives the card.
      threads=$(( $(nproc) / K )); [ "$threads" -ge 1 ] || threads=1
      pids=()
      for c in "${configs[@]}"; do
        OMP_NUM_THREADS=$threads "$WORKER" train --config "$c" --device "$DEVICE" --out "$out/$(basename "$c")" 2>>"$work/$mode.log" & pids+=($!)
      done
      for p in "${pids[@]}"; do wait "$p"; done ;;
    *) echo "unknown mode $mode" >&2; exit 2;;
  esac
  end=$(date +%s.%N)
  echo "$mode $start $end" >> "$work/times"
done
"$PY" - "$work" "$K" "$DEVICE" "$DATASET" <<'PY'
import json, os, sys
work, k, device, dataset = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {}
for line in open(os.path.join(work, "times")):
    mode, a, b = line.split()
    res = {}
    for f in os.listdir(os.path.join(work, mode)):
        if f.endswith(".json"):
            r = json.load(open(os.path.join(work, mode, f)))
            res[f] = r
    rows[mode] = (float(b) - float(a), res)
print(f"\n{dataset}, {k} trials, device {device}, worker: {os.environ.get('WORKER', 'target/release/sweep-worker')}")
print("| mode | K | wall s | trial-samples/s | vs sequential | slowest trial s | max abs diff test micro-F1 vs sequential |")
print("|---|---|---|---|---|---|---|")
seq = rows.get("sequential")
for mode, (wall, res) in rows.items():
    n = sum(len(r["history"]) * r["train_rows"] for r in res.values())
    rate = n / wall
    speed = f"{rate / (sum(len(r['history']) * r['train_rows'] for r in seq[1].values()) / seq[0]):.2f}x" if seq else "-"
    slowest = max(r["seconds"] for r in res.values())
    diff = "-"
    if seq and mode != "sequential":
        diff = f"{max(abs(r['metrics']['test.f1_micro'] - seq[1][f]['metrics']['test.f1_micro']) for f, r in res.items()):.2e}"
    print(f"| {mode} | {k} | {wall:.1f} | {rate:,.0f} | {speed} | {slowest:.1f} | {diff} |")
PY
