#!/usr/bin/env bash
# Parity and speed: the worker (`sweep-worker train`) and the PyTorch script on the
# same trial configs, same machine, in one run. Prints a table.
#   bench/compare.sh [--device cpu|cuda] [--seeds "0 1 2"] [--dataset bibtex] [--epochs N]
#                    [--losses "bce-cap7 focal-cap7 asl db"]   (names: bench/loss-configs.sh)
# Set WORKER=path/to/sweep-worker to use a prebuilt binary (the GPU machine has no Rust).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu SEEDS="0 1 2" DATASET=bibtex EPOCHS=15 LOSSES="bce-cap7 focal-cap7"
while [ $# -gt 0 ]; do case $1 in
  --device) DEVICE=$2; shift 2;; --seeds) SEEDS=$2; shift 2;;
  --dataset) DATASET=$2; shift 2;; --epochs) EPOCHS=$2; shift 2;;
  --losses) LOSSES=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
if [ -z "${WORKER:-}" ]; then
  source scripts/env.sh
  scripts/setup.sh
  cargo build --release --workspace --bins >&2  # the workspace build: -p alone would rebuild every dependency with other features
  WORKER=target/release/sweep-worker
fi
source bench/loss-configs.sh
PY=${PYTHON:-python3}
work=$(mktemp -d)
printf '%-10s %-22s %4s %9s %9s %9s %9s %11s %11s %6s\n' device loss seed w.micro t.micro w.macro t.macro w.samples/s t.samples/s ratio
for loss in $LOSSES; do
  loss_cfg=$(loss_json "$loss")
  for seed in $SEEDS; do
    cfg=$work/$loss-$seed.json
    cat > "$cfg" <<JSON
{"metric":{"name":"val.f1_micro","goal":"maximize"},
 "dataset":{"kind":"mulan","name":"$DATASET","val_fraction":0.1,"split_seed":0},
 "model":{"hidden":[512],"dropout":0.2},
 "train":{"epochs":$EPOCHS,"batch_size":256,"lr":0.001,"weight_decay":0.01,"patience":3,"seed":$seed},
 "loss":$loss_cfg}
JSON
    "$WORKER" train --config "$cfg" --device "$DEVICE" --out "$work/w.json" 2>/dev/null
    $PY bench/torch_train.py --config "$cfg" --device "$DEVICE" --out "$work/t.json"
    $PY - "$work/w.json" "$work/t.json" "$DEVICE" "$loss" "$seed" <<'PY'
import json, sys
w, t = (json.load(open(p))["metrics"] for p in sys.argv[1:3])
print(f"{sys.argv[3]:<10} {sys.argv[4]:<22} {sys.argv[5]:>4} {w['test.f1_micro']:9.4f} {t['test.f1_micro']:9.4f} "
      f"{w['test.f1_macro']:9.4f} {t['test.f1_macro']:9.4f} {w['samples_per_s']:11.0f} {t['samples_per_s']:11.0f} "
      f"{w['samples_per_s']/t['samples_per_s']:6.2f}")
with open(sys.argv[1] + ".rows", "a") as f:
    f.write(json.dumps([sys.argv[4], w['test.f1_micro'], t['test.f1_micro'], w['test.f1_macro'], t['test.f1_macro'], w['samples_per_s'], t['samples_per_s']]) + "\n")
PY
  done
done
$PY - "$work/w.json.rows" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows: by[r[0]].append(r)
print("\nmean over seeds            worker   torch    |diff|")
for k, rs in by.items():
    m = lambda i: sum(r[i] for r in rs) / len(rs)
    print(f"{k:<22} micro {m(1):.4f}  {m(2):.4f}  {abs(m(1)-m(2)):.4f}")
    print(f"{k:<22} macro {m(3):.4f}  {m(4):.4f}  {abs(m(3)-m(4)):.4f}")
sp = sum(r[5] for r in rows) / sum(r[6] for r in rows)
print(f"throughput ratio worker/torch (all runs): {sp:.2f}x")
PY
