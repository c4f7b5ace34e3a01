#!/usr/bin/env bash
# Reproduces models/default from nothing but Debian packages: corpus -> tokenizer -> model.
# Usage: models/default/train.sh            (from the repository root; ~90 min on one core)
#        RESUME=1 models/default/train.sh   continues an interrupted run from its train_state.pt
# Env: RANKRL (binary, default build/rankrl), CORPUS, WORK (scratch dirs under /tmp).
# The committed model was made in three legs (`train --resume` accepts a new --steps; the cosine
# then continues from the current step towards the new end):
#   STOP_AFTER=225 models/default/train.sh  (planned 400 steps; stopped with a checkpoint at 225)
#   RESUME=1 STEPS=240 models/default/train.sh   (the shared machine was slow: ended at 240)
#   RESUME=1 STEPS=1000 models/default/train.sh  (next session: extended to 1000; the lr jumps
#                                                 back up to the cosine's value at 240 of 1000)
# All legs on one thread; the result is bit-identical to that run.
set -euo pipefail
RANKRL=${RANKRL:-build/rankrl}
CORPUS=${CORPUS:-/tmp/rankrl-default-corpus}
WORK=${WORK:-/tmp/rankrl-default-train}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
[ -f "$CORPUS/train.txt" ] || "$HERE/build_corpus.sh" "$CORPUS"
[ -f "$WORK/tok/tokenizer.json" ] ||
  "$RANKRL" train-tokenizer --corpus "$CORPUS/train.txt" --vocab-size 4096 --min-frequency 2 \
    --out "$WORK/tok" --threads 1
"$RANKRL" train --d-model 256 --layers 6 --heads 8 --ffn 688 --ctx 256 \
  --tokenizer "$WORK/tok" --corpus "$CORPUS/train.txt" --val "$CORPUS/val.txt" --out "$WORK/model" \
  --steps ${STEPS:-400} ${STOP_AFTER:+--stop-after $STOP_AFTER} --batch 8 --lr 2e-3 --min-lr 2e-4 --warmup 30 --weight-decay 0.1 --clip 1.0 \
  --eval-every 50 --checkpoint-every 25 --val-tokens 8192 --seed 1 --dtype bf16 --threads 1 \
  ${RESUME:+--resume}
[ -z "${STOP_AFTER:-}" ] || exit 0
cp "$WORK/model/config.json" "$WORK/model/model.safetensors" "$WORK/model/tokenizer.json" \
  "$WORK/model/tokenizer_config.json" "$WORK/model/train_log.jsonl" "$HERE/"
"$RANKRL" eval --model "$HERE" --text "$CORPUS/test.txt" --ctx 256 --threads 1 --json
