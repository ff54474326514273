#!/usr/bin/env bash
# Every GPU check the project has, in one command, for whoever next has a GPU: run it on
# the GPU machine (CUDA and PyTorch, no Rust) with the worker built elsewhere, and put
# the results file's tables in bench/README.md. Under 8 minutes on one H200.
#   1. the device as the worker sees it (`sweep-worker doctor`): memory, the K `--fuse
#      auto` stacks for the delicious MLP and the memory that K then uses, dropout masks
#      on the device against the CPU's (bit for bit), the sparse first layer against
#      dense rows and whether its backward repeats exactly
#   2. parity with PyTorch: BCE, focal, ASL and DB, 3 seeds (bench/compare.sh)
#   3. the training array: sequential, 9 processes, K = 9, and K = 27 (bench/fused.sh):
#      trial-samples/s and the largest test micro-F1 difference from sequential
#   4. text through the sparse first layer (GoEmotions, when present): one trial alone and
#      9 fused, samples/s and the largest difference between them
#   5. a pretrained encoder's frozen tier (bench/encoder.sh), when transformers is there
#   bench/gpu-all.sh [--device cuda|cpu] [--tiny] [--out FILE]
# --device cpu --tiny is the dry run the test suite makes (tiny sizes, so the script
# cannot rot before a GPU is lent). WORKER=path/to/sweep-worker (default: the build
# here, or .gpu/sweep-worker); SWEEP_DATA_DIR for the datasets; PYTHON with torch.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda TINY=0 OUT=${OUT:-bench/results/gpu-all.md}
while [ $# -gt 0 ]; do case $1 in
  --device) DEVICE=$2; shift 2;; --tiny) TINY=1; shift;; --out) OUT=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
if [ -z "${WORKER:-}" ]; then
  if [ -x .gpu/sweep-worker ]; then WORKER=$PWD/.gpu/sweep-worker; else WORKER=$PWD/target/release/sweep-worker; fi
fi
export WORKER PYTHON=${PYTHON:-python3}
if [ "$DEVICE" = cuda ]; then
  TORCH_DIR=$($PYTHON -c 'import torch,os;print(os.path.dirname(torch.__file__))')
  export LD_LIBRARY_PATH=$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [ -z "${SWEEP_DATA_DIR:-}" ]; then
  if [ -d .gpu/datasets ]; then SWEEP_DATA_DIR=$PWD/.gpu/datasets; else SWEEP_DATA_DIR=$(cd .. && pwd)/shared/datasets; fi
fi
export SWEEP_DATA_DIR
if [ "$TINY" = 1 ]; then
  SEEDS="0" EPOCHS=1 DATASET=emotions LOSSES="bce-cap7 focal-cap7 asl db" FUSED_SEEDS_27="0 1 2"
  TEXT_EPOCHS=1 TEXT_FEATURES=2000 TEXT_HIDDEN=16
else
  SEEDS="0 1 2" EPOCHS=10 DATASET=bibtex LOSSES="bce-cap7 focal-cap7 asl db" FUSED_SEEDS_27="0 1 2"
  TEXT_EPOCHS=3 TEXT_FEATURES=50000 TEXT_HIDDEN=256
fi
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
failed=0
section() { echo; echo "## $1"; echo; }
run() {  # label, command...: its output into the results, its time and status after
  local label=$1; shift
  local t0; t0=$(date +%s)
  if "$@" > "$work/out" 2>"$work/err"; then st=ok; else st="FAILED ($?)"; failed=1; fi
  echo '```'; cat "$work/out"; [ "$st" = ok ] || tail -20 "$work/err"; echo '```'
  echo "$label: $st in $(( $(date +%s) - t0 )) s"
}
peak_gpu_memory() {  # command...: runs it, prints the peak memory.used nvidia-smi saw (MiB)
  local peak=0
  "$@" & local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
    [ -n "$m" ] && [ "$m" -gt "$peak" ] && peak=$m
    sleep 0.5
  done
  wait "$pid"; local st=$?
  echo "peak GPU memory used: ${peak} MiB"
  return $st
}
fused_auto() {  # trains K copies of the delicious cell fused, K from doctor's answer
  local k; k=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["fuse_auto"]["k"])' "$work/doctor.json")
  [ "$TINY" = 1 ] && k=2
  local args=()
  for s in $(seq 1 "$k"); do
    cat > "$work/auto-$s.json" <<JSON
{"dataset":{"kind":"mulan","name":"$( [ "$TINY" = 1 ] && echo emotions || echo delicious )"},
 "model":{"hidden":[512],"dropout":0.2},"train":{"epochs":1,"batch_size":256,"seed":$s}}
JSON
    args+=(--config "$work/auto-$s.json")
  done
  echo "K = $k"
  if command -v nvidia-smi >/dev/null && [ "$DEVICE" = cuda ]; then
    peak_gpu_memory "$WORKER" train "${args[@]}" --fused --device "$DEVICE" --out-dir "$work/auto"
  else
    "$WORKER" train "${args[@]}" --fused --device "$DEVICE" --out-dir "$work/auto" 2>/dev/null && echo "peak GPU memory used: - (no GPU)"
  fi
}
text_check() {  # GoEmotions (or a small generated set in the dry run): alone and 9 fused
  local dir=$SWEEP_DATA_DIR/text/goemotions train=train.tsv
  [ -f "$dir/$train" ] || { echo "no text dataset under $dir: skipped"; return 0; }
  local args=()
  for s in $(seq 0 8); do
    cat > "$work/text-$s.json" <<JSON
{"metric":{"name":"val.f1_macro","goal":"maximize"},
 "dataset":{"kind":"text","train":"$dir/train.tsv","val":"$dir/dev.tsv","test":"$dir/test.tsv","labels":"label",
            "label_names":"$dir/labels.txt","features":{"kind":"tfidf","ngram":[1,2],"min_df":2,"max_features":$TEXT_FEATURES,"sublinear_tf":true}},
 "model":{"hidden":[$TEXT_HIDDEN],"dropout":0.3},"train":{"epochs":$TEXT_EPOCHS,"batch_size":256,"lr":0.003,"seed":$s,"patience":0},
 "loss":{"class_weight":{"scheme":"neg_pos","cap":7}}}
JSON
    args+=(--config "$work/text-$s.json")
  done
  [ "$TINY" = 1 ] && args=(--config "$work/text-0.json" --config "$work/text-1.json")
  local t0; t0=$(date +%s.%N)
  "$WORKER" train "${args[@]}" --device "$DEVICE" --out-dir "$work/text-seq" 2>/dev/null || return 1
  local t1; t1=$(date +%s.%N)
  "$WORKER" train "${args[@]}" --fused --device "$DEVICE" --out-dir "$work/text-fused" 2>/dev/null || return 1
  local t2; t2=$(date +%s.%N)
  $PYTHON - "$work" "$t0" "$t1" "$t2" <<'PY'
import glob, json, os, sys
work, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
seq = {os.path.basename(p): json.load(open(p)) for p in glob.glob(f"{work}/text-seq/*.json")}
fus = {os.path.basename(p): json.load(open(p)) for p in glob.glob(f"{work}/text-fused/*.json")}
rows = sum(r["train_rows"] * len(r["history"]) for r in seq.values())
diff = max(abs(seq[k]["metrics"]["test.f1_micro"] - fus[k]["metrics"]["test.f1_micro"]) for k in seq)
print(f"| mode | trials | wall s | trial-samples/s |\n|---|---|---|---|")
print(f"| one after another | {len(seq)} | {t1 - t0:.1f} | {rows / (t1 - t0):,.0f} |")
print(f"| fused | {len(fus)} | {t2 - t1:.1f} | {rows / (t2 - t1):,.0f} |")
print(f"max |test micro-F1 fused - alone| = {diff:.2e}")
PY
}
{
  echo "# bench/gpu-all.sh --device $DEVICE$( [ "$TINY" = 1 ] && echo ' --tiny')"
  echo; echo "$(date -u +%FT%TZ), worker $WORKER"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PYTHON -c 'import torch;print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
  section "1. The device (sweep-worker doctor)"
  "$WORKER" doctor --device "$DEVICE" > "$work/doctor.json" 2>"$work/doctor.err" || failed=1
  cat "$work/doctor.json"; tail -5 "$work/doctor.err"
  run "--fuse auto's K and its memory" fused_auto
  section "2. Parity with PyTorch ($DATASET, $EPOCHS epochs, seeds $SEEDS)"
  run "parity" bench/compare.sh --device "$DEVICE" --seeds "$SEEDS" --dataset "$DATASET" --epochs "$EPOCHS" --losses "$LOSSES"
  section "3. The training array (delicious grid; K = 9, then K = 27)"
  fd=$( [ "$TINY" = 1 ] && echo emotions || echo delicious ); fe=$( [ "$TINY" = 1 ] && echo 1 || echo 20 )
  run "K = 9" bench/fused.sh --device "$DEVICE" --dataset "$fd" --epochs "$fe" --seeds "0"
  run "K = 27" bench/fused.sh --device "$DEVICE" --dataset "$fd" --epochs "$fe" --seeds "$FUSED_SEEDS_27"
  section "4. Text through the sparse first layer (GoEmotions, 50k TF-IDF columns)"
  run "text" text_check
  section "5. A pretrained encoder's frozen tier (bench/encoder.sh: BERT-base shaped, random)"
  if $PYTHON -c 'import transformers' 2>/dev/null; then
    run "encoder" bench/encoder.sh --device "$DEVICE" --out "$work/encoder.md" $( [ "$TINY" = 1 ] && echo "--tiny --docs 200 --steps 2" )
  else
    echo "no transformers in $PYTHON: skipped (pip install transformers==5.25.0 where the network is)"
  fi
  echo; [ "$failed" = 0 ] && echo "all checks ran" || echo "SOME CHECKS FAILED"
} | tee "$OUT"
exit "$failed"
