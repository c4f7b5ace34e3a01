#!/usr/bin/env bash
# rankrl against the eager-PyTorch peers of ../shared/bench, in one run, same machine, same
# threads: the dense prefill forward (build/bench_forward vs peer_forward.py) at d 64, 256 and
# 1024, and a training step of the default model's shape (rankrl train vs peer_train.py).
# Usage: bench/speed_vs_peer.sh [BUILD_DIR] [THREADS...]   (default: build, threads "1 2")
# Prints a markdown table; the ratio column is rankrl / peer (>= 1 means rankrl is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; shift || true
THREADS=${*:-1 2}
PEER=../shared/bench
PY=/usr/bin/python3
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
# name: bench_forward/peer_forward shape flags (both scripts take the same flags)
declare -A SHAPES=(
  [d64]="--dim 64 --hidden 172 --layers 5 --heads 8 --kv-heads 4 --vocab 512 --batch 8 --seq 256"
  [d256]="--dim 256 --hidden 688 --layers 6 --heads 8 --kv-heads 8 --vocab 4096 --batch 8 --seq 256"
  [d1024]="--dim 1024 --hidden 2816 --layers 8 --heads 16 --kv-heads 16 --vocab 32000 --batch 4 --seq 512"
)
tps_of() { grep -o '[0-9.]* tokens/s' | head -1 | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| what | threads | rankrl tokens/s | PyTorch eager tokens/s | ratio |"
echo "|---|---|---|---|---|"
for t in $THREADS; do
  for s in d64 d256 d1024; do
    ours=$("$B/bench_forward" ${SHAPES[$s]} --threads "$t" --reps 5 | awk -F'|' '/^\| 1.00 /{print $3}' | tr -d ' ')
    peer=$($PY "$PEER/peer_forward.py" ${SHAPES[$s]} --threads "$t" --reps 5 | tps_of)
    echo "| forward $s | $t | $ours | $peer | $(ratio "$ours" "$peer") |"
  done
  # Training: the default model's shape on random-ish text (the corpus only feeds tokens).
  if [ ! -f "$WORK/tok/tokenizer.json" ]; then
    head -c 400000 ../shared/data/tinystories/tinystories_val.txt > "$WORK/corpus.txt"
    "$B/rankrl" train-tokenizer --corpus "$WORK/corpus.txt" --vocab-size 4096 --out "$WORK/tok" --threads 1 -q >/dev/null
  fi
  rm -rf "$WORK/m"
  "$B/rankrl" train --d-model 256 --layers 6 --heads 8 --ffn 688 --ctx 256 --batch 8 --steps 21 \
    --warmup 1 --eval-every 0 --checkpoint-every 0 --val-tokens 512 --tokenizer "$WORK/tok" \
    --corpus "$WORK/corpus.txt" --val "$WORK/corpus.txt" --out "$WORK/m" --threads "$t" -q >/dev/null
  # Steps 11..20 from the log lines of steps 10 and 20 (the first steps warm up; the peer also
  # leaves its first step untimed).
  ours=$($PY -c "import json,sys; L=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]; print(round(2048*10/(L[1]['time']-L[0]['time'])))" "$WORK/m/train_log.jsonl" 2>/dev/null || echo 0)
  peer=$($PY "$PEER/peer_train.py" --dim 256 --hidden 688 --layers 6 --heads 8 --vocab 4096 --batch 8 --seq 256 --threads "$t" --steps 10 | tps_of)
  echo "| train d256 | $t | $ours | $peer | $(ratio "$ours" "$peer") |"
done
