#!/usr/bin/env bash
# What uniform compression costs the default model: for each keep and method, `rankrl compress`
# (calibrated on calib.txt) then held-out perplexity (heldout.txt) and test-split ranking accuracy
# and margin with their bootstrap 95% intervals; a markdown table on stdout.
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
row() {  # LABEL KEEP MODEL
  local ppl tasks
  ppl=$("$RANKRL" eval --model "$3" --text "$M/heldout.txt" --ctx 256 --threads "$THREADS" --json -q | j 'round(d["ppl"], 2)')
  tasks=$("$RANKRL" eval --model "$3" --tasks "$M/ranking" --split test --threads "$THREADS" --json -q |
    j '"%.3f [%.3f, %.3f] | %.3f [%.3f, %.3f]" % (d["acc"], d["ci95"]["acc"]["lo"], d["ci95"]["acc"]["hi"], d["margin"], d["ci95"]["margin"]["lo"], d["ci95"]["margin"]["hi"])')
  echo "| $1 | $2 | $ppl | $tasks |"
}
echo "| method | keep | held-out ppl | test acc [95% CI] | test margin [95% CI] |"
echo "|---|---|---|---|---|"
row dense 1 "$M"
for keep in $KEEPS; do
  for method in $METHODS; do
    "$RANKRL" compress --model "$M" --method "$method" --keep "$keep" --calib "$M/calib.txt" \
      --calib-tokens 4096 --ctx 256 --threads "$THREADS" --out "$WORK/$method-$keep" -q > /dev/null
    row "$method" "$keep" "$WORK/$method-$keep"
  done
done
