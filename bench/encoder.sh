#!/usr/bin/env bash
# A pretrained encoder's frozen tier against the alternative, in one run on one machine:
# a BERT-base shaped random model (12 x 768; --tiny: 2 x 64), GoEmotions texts.
#  - embedding pass: tokens/s of Sweep's forward (the frozen tier's one pass over every
#    text: length-bucketed batches of 32, no gradients) and of `transformers` on the
#    same model, texts and tokenizer (bench/encoder_ref.py forward): the ratio;
#  - the seed's 9-cell grid (class-weight cap 6/7/8 x focal gamma 0/2/3) as frozen-tier
#    trials through `sweep-worker train --fused`: once with an empty cache (one embedding
#    pass + nine heads as one stack) and again with the embeddings cached (the heads);
#  - what the grid costs fine-tuned instead: PyTorch forward + backward + AdamW of the
#    encoder with a linear head (STEPS steps of 32, timed), scaled to one epoch per cell;
#  - peak resident memory of each.
# Sweep cannot fine-tune an encoder yet (docs/known-gaps.md): there is no Sweep
# forward+backward number to set beside PyTorch's.
#   bench/encoder.sh [--docs 2000] [--max-length 64] [--steps 20] [--tiny] [--device cpu|cuda] [--out FILE]
# WORKER=path/to/sweep-worker (default: the build here); PYTHON with torch + transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=2000 MAXLEN=64 STEPS=20 TINY="" DEVICE=cpu OUT=""
while [ $# -gt 0 ]; do case $1 in
  --docs) DOCS=$2; shift 2;; --max-length) MAXLEN=$2; shift 2;; --steps) STEPS=$2; shift 2;;
  --tiny) TINY=--tiny; shift;; --device) DEVICE=$2; shift 2;; --out) OUT=$2; shift 2;;
  *) echo "unknown argument $1" >&2; exit 2;; esac; done
OUT=${OUT:-bench/results/encoder-$DEVICE.md}
if [ -z "${WORKER:-}" ]; then
  source scripts/env.sh
  cargo build --release -q -p sweep-worker --bin sweep-worker
  WORKER=$PWD/target/release/sweep-worker
fi
PYTHON=${PYTHON:-${SWEEP_VENV:+$SWEEP_VENV/bin/}python3}
DATA=${SWEEP_DATA_DIR:-$(cd .. && pwd)/shared/datasets}/text/goemotions
[ -f "$DATA/train.tsv" ] || { echo "GoEmotions not found under $DATA (set SWEEP_DATA_DIR)" >&2; exit 1; }
work=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
head -n $((DOCS + 1)) "$DATA/train.tsv" > "$work/train.tsv"
head -n $((DOCS / 4 + 1)) "$DATA/test.tsv" > "$work/test.tsv"
tail -n +2 "$work/train.tsv" | cut -f1 > "$work/train.txt"
{ cat "$work/train.txt"; tail -n +2 "$work/test.tsv" | cut -f1; } > "$work/texts.txt"
"$PYTHON" bench/encoder_ref.py make "$work/model" "$work/train.txt" $TINY >/dev/null 2>&1

i=0
for cap in 6 7 8; do for gamma in 0 2 3; do
  cat > "$work/c$i.json" <<JSON
{"dataset": {"kind": "text", "format": "tsv", "train": "$work/train.tsv", "test": "$work/test.tsv",
  "labels": "label", "label_names": "$DATA/labels.txt",
  "encoder": {"path": "$work/model", "pooling": "cls", "max_length": $MAXLEN, "truncation": "head", "batch_size": 32}},
 "model": {"kind": "encoder", "path": "$work/model", "freeze": true, "max_length": $MAXLEN, "hidden": []},
 "train": {"epochs": 20, "batch_size": 256, "lr": 0.003, "patience": 3},
 "loss": {"class_weight": {"scheme": "neg_pos", "cap": $cap}, "focal_gamma": $gamma}}
JSON
  i=$((i + 1)); done; done
configs=(); for k in $(seq 0 8); do configs+=(--config "$work/c$k.json"); done
sweep_run() {  # name: the fused grid, its wall seconds and peak RSS into $work/name.*
  local t0; t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/$1.rss" "$WORKER" train "${configs[@]}" --fused --device "$DEVICE" \
    --cache-dir "$work/cache" --out-dir "$work/$1" 2> "$work/$1.log" \
    || { echo "sweep-worker train failed:" >&2; tail -20 "$work/$1.log" >&2; exit 1; }
  echo "$(date +%s.%N) - $t0" | bc > "$work/$1.s"
}
sweep_run cold
sweep_run warm
embed_s=$(sed 's/\x1b\[[0-9;]*m//g' "$work/cold.log" | grep -o 'dataset featurized seconds=[0-9.]*' | head -1 | cut -d= -f2)
torch_fwd=$("$PYTHON" bench/encoder_ref.py forward "$work/model" "$work/texts.txt" "$MAXLEN" 2>/dev/null)
torch_ft=$("$PYTHON" bench/encoder_ref.py finetune "$work/model" "$work/train.txt" "$MAXLEN" "$STEPS" 2>/dev/null)
f1=$("$PYTHON" -c "import json,glob; print('%.3f' % max(json.load(open(p))['metrics']['test.f1_micro_tuned'] for p in glob.glob('$work/cold/*.json')))")

mkdir -p "$(dirname "$OUT")"
"$PYTHON" - "$embed_s" "$(cat "$work/cold.s")" "$(cat "$work/warm.s")" "$(cat "$work/cold.rss")" "$torch_fwd" "$torch_ft" "$f1" \
  "$DOCS" "$MAXLEN" "$DEVICE" "${TINY:-bert-base}" <<'PY' | tee "$OUT"
import json, sys
embed, cold, warm, rss, fwd, ft, f1, docs, maxlen, device, size = sys.argv[1:]
embed, cold, warm, rss = float(embed), float(cold), float(warm), int(rss) / 1024
fwd, ft = json.loads(fwd), json.loads(ft)
sweep_tps = fwd["tokens"] / embed
train_tokens = fwd["tokens"] * int(docs) / (int(docs) + int(docs) // 4)
ft_epoch = train_tokens / ft["tokens_per_s"]
print(f"# Encoder, frozen tier: {size.strip('-')} random model, {docs} GoEmotions training texts, max_length {maxlen}, {device}\n")
print("| measure | Sweep | PyTorch | Sweep / PyTorch |\n|---|---|---|---|")
print(f"| embedding pass, tokens/s (forward, no gradients; {fwd['tokens']} tokens) | {sweep_tps:,.0f} | {fwd['tokens_per_s']:,.0f} | {sweep_tps / fwd['tokens_per_s']:.2f}x |")
print(f"| seed grid, 9 frozen-tier trials fused: embedding pass + 9 heads (s) | {cold:.1f} | | |")
print(f"| the same with the embeddings cached: 9 heads (s) | {warm:.1f} | | |")
print(f"| seed grid fine-tuned: 9 x one epoch of forward+backward+AdamW (s, from {ft['steps']} timed steps) | not built | {9 * ft_epoch:.0f} | {cold / (9 * ft_epoch):.3f}x |")
print(f"| peak resident memory (MiB) | {rss:,.0f} (grid) | {ft['peak_mib']:,.0f} (one fine-tune) | |")
print(f"\nBest frozen-tier test micro-F1 (tuned threshold): {f1} (a random encoder: the numbers are about cost, not quality).")
PY
