#!/usr/bin/env bash
# What uniform compression costs the default model: for each keep and method, `rankrl compress`
# (calibrated on calib.txt) then held-out perplexity (heldout.txt) and test-split ranking accuracy
# and margin with their bootstrap 95% intervals, and their changes vs the dense model with paired
# intervals (eval --against); a markdown table on stdout.
# Usage: models/default/compression_cost.sh [KEEPS] [METHODS]   (from the repository root;
#        defaults "0.8 0.6 0.4 0.3" and "svdllm svd"; RANKRL=build/rankrl, THREADS=2)
set -euo pipefail
RANKRL=${RANKRL:-build/rankrl}
THREADS=${THREADS:-2}
KEEPS=${1:-"0.8 0.6 0.4 0.3"}
METHODS=${2:-"svdllm svd"}
M=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
DENSE_PPL=
# "value [lo, hi]" of a metric, then its paired change vs dense when eval --against gave one.
CELLS='" | ".join(["%.3f [%.3f, %.3f]" % (d[k], d["ci95"][k]["lo"], d["ci95"][k]["hi"]) + " | " +
  ("%+.3f [%+.3f, %+.3f]" % (d["paired"][k]["difference"], d["paired"][k]["lo"], d["paired"][k]["hi"]) if "paired" in d else "")
  for k in ("acc", "margin")])'
row() {  # LABEL KEEP MODEL
  local ppl rise against=()
  [ "$3" = "$M" ] || against=(--against "$M")  # the changes are paired against the dense model
  ppl=$("$RANKRL" eval --model "$3" --text "$M/heldout.txt" --ctx 256 --threads "$THREADS" --json -q | j 'd["ppl"]')
  DENSE_PPL=${DENSE_PPL:-$ppl}
  rise=$(python3 -c "import sys; a, b = map(float, sys.argv[1:]); print('' if a == b else '%+.1f%%' % (100 * (b / a - 1)))" "$DENSE_PPL" "$ppl")
  echo "| $1 | $2 | $(printf %.2f "$ppl") | $rise | $("$RANKRL" eval --model "$3" --tasks "$M/ranking" --split test "${against[@]}" \
    --threads "$THREADS" --json -q | j "$CELLS") |"
}
echo "| method | keep | held-out ppl | increase | test acc [95% CI] | change vs dense [paired 95% CI] | test margin [95% CI] | change vs dense [paired 95% CI] |"
echo "|---|---|---|---|---|---|---|---|"
row dense 1 "$M"
for keep in $KEEPS; do
  for method in $METHODS; do
    "$RANKRL" compress --model "$M" --method "$method" --keep "$keep" --calib "$M/calib.txt" \
      --calib-tokens 4096 --ctx 256 --threads "$THREADS" --out "$WORK/$method-$keep" -q > /dev/null
    row "$method" "$keep" "$WORK/$method-$keep"
  done
done
