#!/usr/bin/env bash
# On a GPU machine (see bench/gpu.sh): worker samples/s on delicious at several batch
# sizes, same card, one run each — how much of the GPU one small-MLP trial uses.
set -uo pipefail
cd "$(dirname "$0")/.."
TORCH_DIR=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$TORCH_DIR/lib SWEEP_DATA_DIR=$PWD/.gpu/datasets
W=$PWD/.gpu/sweep-worker; chmod +x "$W"; work=$(mktemp -d)
nvidia-smi --query-gpu=name --format=csv,noheader
printf '| batch | samples/s | test micro-F1 | test macro-F1 |\n|---|---|---|---|\n'
for bs in 256 1024 4096; do
  cat > "$work/c.json" <<JSON
{"metric":{"name":"val.f1_micro","goal":"maximize"},
 "dataset":{"kind":"mulan","name":"delicious","val_fraction":0.1,"split_seed":0},
 "model":{"hidden":[1024],"dropout":0.2},
 "train":{"epochs":10,"batch_size":$bs,"lr":0.001,"weight_decay":0.01,"patience":0,"seed":0},
 "loss":{"class_weight":{"scheme":"neg_pos","cap":7,"beta":0.999},"focal_gamma":3,"focal_alpha":-1}}
JSON
  "$W" train --config "$work/c.json" --device cuda --out "$work/r.json" 2>/dev/null
  python3 -c "import json;m=json.load(open('$work/r.json'))['metrics'];print(f\"| $bs | {m['samples_per_s']:.0f} | {m['test.f1_micro']:.4f} | {m['test.f1_macro']:.4f} |\")"
done
