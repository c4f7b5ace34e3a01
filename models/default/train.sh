#!/usr/bin/env bash
# Reproduces models/default from nothing but Debian packages: corpus -> tokenizer -> model.
# Usage: models/default/train.sh            (from the repository root; ~45 min at 2 threads, ~75 at one)
#        RESUME=1 models/default/train.sh   continues an interrupted run from its train_state.pt
# Env: RANKRL (binary, default build/rankrl), CORPUS, WORK (scratch dirs under /tmp), STEPS
# (default 5000), STOP_AFTER (stop with a checkpoint at that step; RESUME=1 continues).
# The committed model (5000 steps, 10.2 M tokens) was made in three legs on one thread while the
# machine did other work (`train --resume` accepts a new --steps; the cosine then continues from
# the current step towards the new end):
#   STEPS=4000 models/default/train.sh           steps 0-1000 (binary of 4f622b5; stopped, resumed
#                                                 from the step-1000 checkpoint)
#   RESUME=1 STEPS=4000 models/default/train.sh  steps 1000-3000 (binary of 7cff5c0, the allocator
#                                                 tuning: same arithmetic, 15% faster)
#   RESUME=1 STEPS=5000 models/default/train.sh  steps 3000-5000 (binary of 990cd79: the fused
#                                                 attention rounds differently in the last bits;
#                                                 the lr went from the 4000-step cosine's 4.7e-4
#                                                 up to the 5000-step cosine's 8.3e-4 at step 3000)
# With one binary and one thread a run is bit-identical to itself (train --resume is exact).
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
  --steps ${STEPS:-5000} ${STOP_AFTER:+--stop-after $STOP_AFTER} --batch 8 --lr 2e-3 --min-lr 2e-4 --warmup 30 --weight-decay 0.1 --clip 1.0 \
  --eval-every 50 --checkpoint-every 25 --val-tokens 8192 --seed 1 --dtype bf16 --threads 1 \
  ${RESUME:+--resume}
[ -z "${STOP_AFTER:-}" ] || exit 0
cp "$WORK/model/config.json" "$WORK/model/model.safetensors" "$WORK/model/tokenizer.json" \
  "$WORK/model/tokenizer_config.json" "$WORK/model/train_log.jsonl" "$HERE/"
"$RANKRL" eval --model "$HERE" --text "$CORPUS/test.txt" --ctx 256 --threads 1 --json
