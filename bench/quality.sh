#!/usr/bin/env bash
# Loss quality on public data: for each MULAN set and each loss setting (BCE with neg/pos
# weights capped at 7, focal gamma 3 with the same weights, ASL, DB; bench/loss-configs.sh),
# REPLICAS runs that vary train.seed and dataset.split_seed together, each with
# `sweep-worker train`. Prints mean and sample standard deviation of test micro- and
# macro-F1, untuned (0.5) and tuned on validation, as a Markdown table.
#   bench/quality.sh [DATASETS] [EPOCHS] [REPLICAS]
#   default: "emotions yeast bibtex delicious" 20 3
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${1:-emotions yeast bibtex delicious}; EPOCHS=${2:-20}; REPLICAS=${3:-3}
LOSSES=${LOSSES:-bce-cap7 focal-cap7 asl db}
source scripts/env.sh
scripts/setup.sh
cargo build --release --workspace --bins >&2
source bench/loss-configs.sh
work=$(mktemp -d)
for ds in $DATASETS; do for loss in $LOSSES; do
  loss_cfg=$(loss_json "$loss")
  for r in $(seq 0 $((REPLICAS - 1))); do
    cat > "$work/c.json" <<JSON
{"metric":{"name":"val.f1_micro","goal":"maximize"},
 "dataset":{"kind":"mulan","name":"$ds","val_fraction":0.1,"split_seed":$r},
 "model":{"hidden":[512],"dropout":0.2},
 "train":{"epochs":$EPOCHS,"batch_size":256,"lr":0.001,"weight_decay":0.01,"patience":3,"seed":$r},
 "loss":$loss_cfg}
JSON
    target/release/sweep-worker train --config "$work/c.json" --device "${DEVICE:-cpu}" --out "$work/r.json" 2>/dev/null
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; print(json.dumps({"dataset":sys.argv[2],"loss":sys.argv[3],"replica":int(sys.argv[4]),**m}))' \
      "$work/r.json" "$ds" "$loss" "$r" | tee -a "$work/rows.jsonl" >&2
  done
done; done
python3 - "$work/rows.jsonl" <<'PY'
import json, statistics as st, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = collections.OrderedDict()
for r in rows:
    groups.setdefault((r["dataset"], r["loss"]), []).append(r)
def cell(rs, k):
    v = [r[k] for r in rs]
    return f"{st.mean(v):.4f} ± {st.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
keys = ["test.f1_micro", "test.f1_micro_tuned", "test.f1_macro", "test.f1_macro_tuned"]
print(f"| dataset | loss | n | {' | '.join(keys)} | best epoch (mean) |")
print("|---|---|---|" + "---|" * len(keys) + "---|")
for (ds, loss), rs in groups.items():
    be = st.mean(r["best_epoch"] for r in rs)
    print(f"| {ds} | {loss} | {len(rs)} | {' | '.join(cell(rs, k) for k in keys)} | {be:.1f} |")
PY
