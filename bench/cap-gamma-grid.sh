#!/usr/bin/env bash
# The 3x3 grid (class-weight cap 6/7/8 x focal gamma 0/2/3) on a MULAN dataset
# (default delicious, 983 labels), one trial at a time with `sweep-worker train`.
# Prints test micro-F1, macro-F1 and tail macro-F1, at 0.5 and tuned on validation.
#   bench/cap-gamma-grid.sh [DATASET] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:-delicious}; EPOCHS=${2:-20}
source scripts/env.sh
scripts/setup.sh
cargo build --release --workspace --bins >&2  # the workspace build: -p alone would rebuild every dependency with other features
work=$(mktemp -d)
printf '| cap | gamma | best epoch | test micro-F1 | micro-F1 tuned | test macro-F1 | macro-F1 tuned | tail macro-F1 | tail tuned |\n|---|---|---|---|---|---|---|---|---|\n'
for cap in 6 7 8; do for gamma in 0 2 3; do
  cat > "$work/c.json" <<JSON
{"metric":{"name":"val.f1_micro","goal":"maximize"},
 "dataset":{"kind":"mulan","name":"$DATASET","val_fraction":0.1,"split_seed":0},
 "model":{"hidden":[512],"dropout":0.2},
 "train":{"epochs":$EPOCHS,"batch_size":256,"lr":0.001,"weight_decay":0.01,"patience":3,"seed":0},
 "loss":{"class_weight":{"scheme":"neg_pos","cap":$cap,"beta":0.999},"focal_gamma":$gamma,"focal_alpha":-1}}
JSON
  target/release/sweep-worker train --config "$work/c.json" --device "${DEVICE:-cpu}" --out "$work/r.json" 2>/dev/null
  python3 - "$work/r.json" "$cap" "$gamma" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
g = lambda k: f"{m[k]:.4f}" if k in m else "-"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {int(m['best_epoch'])} | {g('test.f1_micro')} | {g('test.f1_micro_tuned')} | {g('test.f1_macro')} | {g('test.f1_macro_tuned')} | {g('test.f1_macro_tail')} | {g('test.f1_macro_tail_tuned')} |")
PY
done; done
