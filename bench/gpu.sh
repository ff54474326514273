#!/usr/bin/env bash
# The GPU check, run on a machine with CUDA and PyTorch but no Rust: the worker binary
# built on the CPU machine (copied to .gpu/sweep-worker) runs with that machine's own
# torch libraries, against the PyTorch script, same configs, same card.
# Data: .gpu/datasets (a copy of the MULAN files; not committed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
TORCH_DIR=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee -a "$OUT/gpu.txt"
export LD_LIBRARY_PATH=$TORCH_DIR/lib SWEEP_DATA_DIR=$PWD/.gpu/datasets WORKER=$PWD/.gpu/sweep-worker
chmod +x "$WORKER"
ldd "$WORKER" | grep -E "torch|c10" | tee -a "$OUT/gpu.txt"
bench/compare.sh --device cuda --seeds "${SEEDS:-0 1 2}" --dataset bibtex --epochs 15 2>&1 | tee "$OUT/compare-cuda.txt"
# The training array on the card: the delicious grid sequential / 9 processes / fused
# (K = 9), then with three seeds (K = 27).
bench/fused.sh --device cuda --seeds "0" 2>&1 | tee "$OUT/fused-k9-cuda.txt"
bench/fused.sh --device cuda --seeds "0 1 2" 2>&1 | tee "$OUT/fused-k27-cuda.txt"
