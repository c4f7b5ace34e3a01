#!/usr/bin/env bash
# Compression table for stories260K: uniform plans at several keeps for every method (and with
# --heal), held-out ppl (ids[200000:232768] of tinystories_val.txt, ctx 256, via bench_heldout),
# PIQA / ARC-Easy margin on the first 200 items, parameters, bytes and compress time.
# Usage: scripts/compress_table.sh [build-dir] [keeps] [methods] > table.md
set -euo pipefail
BUILD=${1:-build}
KEEPS=${2:-"0.8 0.6 0.4"}
METHODS=${3:-"svd rsvd asvd svdllm fwsvd cur nmf svd+heal rsvd+heal asvd+heal svdllm+heal fwsvd+heal cur+heal nmf+heal"}
DATA=$(cd "$(dirname "$0")/../../shared/data" && pwd)
MODEL=$DATA/stories260K/stories260K.bin
TOK=$DATA/stories260K/tok512.bin
VAL=$DATA/tinystories/tinystories_val.txt
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

heldout() { "$BUILD/bench_heldout" --model "$1" --tokenizer "$TOK" --text "$VAL" | j 'round(d["ppl"], 2)'; }
margin() { "$BUILD/rankrl" eval --model "$1" --tokenizer "$TOK" --tasks "$DATA/tasks/$2.jsonl" --limit 200 --json -q | j 'round(d["margin"], 4)'; }

echo "| method | keep | held-out ppl | PIQA margin | ARC-E margin | linear params | total params | total bytes | compress s |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| dense | 1 | $(heldout "$MODEL") | $(margin "$MODEL" piqa) | $(margin "$MODEL" arc_easy) | - | - | - | - |"
for keep in $KEEPS; do
  for spec in $METHODS; do
    method=${spec%+heal}
    extra=""
    [[ $spec == *+heal ]] && extra="--heal"
    [[ $method == fwsvd ]] && extra="$extra --fisher"
    out=$WORK/$method-$keep
    start=$(date +%s.%N)
    "$BUILD/rankrl" compress --model "$MODEL" --calib "$VAL" --calib-tokens 4096 --ctx 256 \
      --keep "$keep" --method "$method" $extra --out "$out" --force --json -q > "$WORK/report.json"
    secs=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
    size=$(j '" | ".join(str(d["size"]["after"][k]) for k in ("linear_parameters", "total_parameters", "total_bytes"))' < "$WORK/report.json")
    echo "| $spec | $keep | $(heldout "$out") | $(margin "$out" piqa) | $(margin "$out" arc_easy) | $size | $secs |"
  done
done
