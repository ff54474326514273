#!/usr/bin/env bash
# Text stays sparse, and is featurized once: GoEmotions featurized with TF-IDF over word
# 1-3 grams cut to the 200,000 most frequent, then one epoch of an MLP, in one
# `sweep-worker train` process; printed: the worker's peak RSS next to what a dense
# [rows, features] float32 matrix of the training split alone would take; then the same
# run again with the featurized dataset read back from the cache (what every later trial
# on that machine does), with the featurization and cache-read times from the log.
#   bench/text-memory.sh [--hidden 128]     WORKER=path/to/sweep-worker to skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
HIDDEN=128
while [ $# -gt 0 ]; do case $1 in --hidden) HIDDEN=$2; shift 2;; *) echo "unknown argument $1" >&2; exit 2;; esac; done
source scripts/env.sh
if [ -z "${WORKER:-}" ]; then
  scripts/setup.sh >&2
  cargo build --release --workspace --bins >&2
  WORKER=target/release/sweep-worker
fi
data=$SWEEP_DATA_DIR/text/goemotions
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/trial.json" <<JSON
{"metric":{"name":"val.f1_macro","goal":"maximize"},
 "dataset":{"kind":"text","train":"$data/train.tsv","val":"$data/dev.tsv","test":"$data/test.tsv","labels":"label",
            "label_names":"$data/labels.txt",
            "features":{"kind":"tfidf","ngram":[1,3],"max_features":200000,"sublinear_tf":true}},
 "model":{"hidden":[$HIDDEN],"dropout":0.3},"train":{"epochs":1,"batch_size":256,"lr":0.003,"patience":0}}
JSON
run() {  # label
  /usr/bin/time -v "$WORKER" train --config "$work/trial.json" --device cpu --cache-dir "$work/cache" \
    --out "$work/$1.json" 2> "$work/$1.log" || { cat "$work/$1.log" >&2; exit 1; }
  sed -i 's/\x1b\[[0-9;]*m//g' "$work/$1.log"   # the log's colours
  rss=$(awk '/Maximum resident set size/ {print $NF}' "$work/$1.log")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$work/$1.log")
  feat=$(grep -o 'dataset featurized.*seconds=[0-9.]*' "$work/$1.log" | head -1 | sed 's/.*seconds=//' || true)
  cached=$(grep -o 'featurized dataset from the cache.*seconds=[0-9.]*' "$work/$1.log" | head -1 | sed 's/.*seconds=//' || true)
  # "dataset NAME: train N val N test N, C features, L labels; device D"
  line=$(grep '^dataset ' "$work/$1.log" | head -1)
  rows=$(echo "$line" | sed -E 's/.*: train ([0-9]+) .*/\1/')
  cols=$(echo "$line" | sed -E 's/.*, ([0-9]+) features.*/\1/')
  dense=$(python3 -c "print(f'{$rows * $cols * 4 / 2**30:.1f}')")
  printf '| %s | %s | %s | %.2f GB | %s GB | %s | %s | %s |\n' "$1" "$rows" "$cols" "$(python3 -c "print($rss / 2**20)")" \
    "$dense" "${feat:--}" "${cached:--}" "$wall"
}
echo "| run | training rows | columns | peak RSS | dense matrix would be | read + featurize s | read from the cache s | wall |"
echo "|---|---|---|---|---|---|---|---|"
run first
run second
