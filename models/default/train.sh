#!/usr/bin/env bash
# Reproduces models/default from nothing but Debian packages: corpus -> tokenizer -> model, in six
# stages (MODEL_CARD.md "Training"):
#   1. base: 5000 steps (10.2 M tokens) from random weights on the KJV + Jargon File corpus
#      (CORPUS/base), with a tokenizer trained on that text;
#   2. more text: from the stage-1 weights (`train --init`, fresh optimizer and schedule), 4000 steps
#      (8.2 M tokens) on the full corpus (+ The Devil's Dictionary and Webster's 1913);
#   3. longer: from the stage-2 weights, 4000 more steps (8.2 M tokens) on the same corpus, lr 8e-4 ->
#      5e-5 (stage 2's validation perplexity was still falling at its end);
#   4. longer still: from the stage-3 weights, 4000 more steps, lr 5e-4 -> 2e-5 (a milder warm
#      restart than stage 3's, whose first 1000 steps went to recovering from it);
#   5. from the stage-4 weights, 4000 more steps, lr 4e-4 -> 2e-5 (stage 4's perplexity still fell);
#   6. from the stage-5 weights, the same again with seed 6 (stage 5's perplexity still fell).
# Usage: models/default/train.sh            (from the repository root; ~8.5 h at one thread)
#        RESUME=1 models/default/train.sh   continues an interrupted stage from its train_state.pt
# Env: RANKRL (binary, default build/rankrl), CORPUS, WORK (scratch dirs under /tmp), STAGE (1-6, or
# all six when unset). A stage N > 1 alone starts from WORK/model<N-1> of an earlier run (stage 1:
# WORK/model); on a fresh machine, copy the committed weights there to continue from them.
# The committed stage 1 was made in three legs on one thread while the machine did other work
# (`train --resume` accepts a new --steps; the cosine then continues from the current step):
#   steps 0-1000 with the binary of 4f622b5 (planned as 4000 steps), 1000-3000 with 7cff5c0 (the
#   allocator tuning: same arithmetic, 15% faster), 3000-5000 with 990cd79 and --steps 5000 (the
#   fused attention rounds differently in the last bits; the lr went from the 4000-step cosine's
#   4.7e-4 up to the 5000-step cosine's 8.3e-4 at step 3000). Stage 2 ran in one leg.
# The committed stage 6: steps 0-250 by this script (one thread, binary of 14aeea6), then the same
# train command with --threads 2 --resume on an idle machine (steps 250-4000, 55 min); two threads
# round differently from one, so a one-thread rerun is close to it but not bit-identical.
# With one binary and one thread a run is bit-identical to itself (train --resume is exact).
set -euo pipefail
RANKRL=${RANKRL:-build/rankrl}
CORPUS=${CORPUS:-/tmp/rankrl-default-corpus}
WORK=${WORK:-/tmp/rankrl-default-train}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
[ -f "$CORPUS/train.txt" ] || "$HERE/build_corpus.sh" "$CORPUS"
COMMON=(--batch 8 --weight-decay 0.1 --clip 1.0 --dtype bf16 --threads 1 ${RESUME:+--resume})

if [ "${STAGE:-1}" = 1 ]; then
  [ -f "$WORK/tok/tokenizer.json" ] ||
    "$RANKRL" train-tokenizer --corpus "$CORPUS/base/train.txt" --vocab-size 4096 --min-frequency 2 \
      --out "$WORK/tok" --threads 1
  "$RANKRL" train --d-model 256 --layers 6 --heads 8 --ffn 688 --ctx 256 \
    --tokenizer "$WORK/tok" --corpus "$CORPUS/base/train.txt" --val "$CORPUS/base/val.txt" --out "$WORK/model" \
    --steps 5000 --lr 2e-3 --min-lr 2e-4 --warmup 30 --eval-every 50 --checkpoint-every 25 --val-tokens 8192 \
    --seed 1 "${COMMON[@]}"
fi
# Stages 2-6: from the previous stage's weights (train --init: fresh optimizer and schedule), 4000
# steps on the full corpus, validated on valmix.txt. Usage: continue_stage FROM OUT LR MIN_LR SEED.
continue_stage() {
  "$RANKRL" train --init "$WORK/$1" --tokenizer "$WORK/$1" \
    --corpus "$CORPUS/train.txt" --val "$WORK/valmix.txt" --out "$WORK/$2" \
    --steps 4000 --lr "$3" --min-lr "$4" --warmup 100 --eval-every 250 --checkpoint-every 50 --val-tokens 0 \
    --seed "$5" "${COMMON[@]}"
}
# Validation of stages 2-6: every 10th held-out document (KJV, Jargon and dictionary text alike).
awk 'BEGIN { RS = ""; ORS = "\n\n" } NR % 10 == 1' "$CORPUS/val.txt" > "$WORK/valmix.txt"
[ "${STAGE:-2}" != 2 ] || continue_stage model model2 1e-3 1e-4 2
[ "${STAGE:-3}" != 3 ] || continue_stage model2 model3 8e-4 5e-5 3
[ "${STAGE:-4}" != 4 ] || continue_stage model3 model4 5e-4 2e-5 4
[ "${STAGE:-5}" != 5 ] || continue_stage model4 model5 4e-4 2e-5 5
if [ "${STAGE:-6}" = 6 ]; then
  continue_stage model5 model6 4e-4 2e-5 6
  cp "$WORK/model6/config.json" "$WORK/model6/model.safetensors" "$WORK/model6/tokenizer.json" \
    "$WORK/model6/tokenizer_config.json" "$HERE/"
  # Earlier stages' logs are committed; a STAGE=6 run alone keeps them.
  for n in 1 2 3 4 5; do
    d="$WORK/model$n"; [ "$n" = 1 ] && d="$WORK/model"
    [ ! -f "$d/train_log.jsonl" ] || cp "$d/train_log.jsonl" "$HERE/train_log_stage$n.jsonl"
  done
  cp "$WORK/model6/train_log.jsonl" "$HERE/train_log.jsonl"
  "$RANKRL" eval --model "$HERE" --text "$CORPUS/test.txt" --ctx 256 --threads 1 --json
fi
