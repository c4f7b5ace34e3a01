#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what building the CLI needs, build it, then
# compress the default model that ships in models/default (5.8M-parameter Llama) with
# `rankrl search` at keep 0.3 -- the PPO agent against every baseline (uniform per method,
# svdllm2, kfac, sensitivity, random, evolution) on the model's own ranking sets -- and write the
# report. Sized to finish in under 15 minutes on 2 cores (the run's budget: see README).
# Keep 0.3: where plans differ most on this model (uniform svdllm: held-out perplexity +485% at
# keep 0.3, +49% at 0.6; models/default/MODEL_CARD.md). Every item of the ranking sets (300 RkD,
# 300 VRkD, 1200 test): good plans differ by ~0.2 nats of test margin, which 300 test items cannot
# resolve. The agent's rank actions are anchored at the kfac allocation (ranks bought by the K-FAC
# estimate of each truncation's loss increase, from output gradients taken in calibration; a
# policy asking for the keep everywhere is that plan, and the agent learns where to deviate from
# it; README "kfac allocation"), which is also a baseline; each approach's best plans by the 24-item
# training reward are re-scored on all of RkD and its 4 best go to VRkD (one pick by 24 items is
# mostly noise). Methods dense and svdllm, top components, rank-logit std 0.1: with all four
# methods and both selection rules the first policy draws another method for ~4 weights in 10 and
# 200 episodes never reach uniform svdllm's surrogate KL (0.370 vs 0.358); in this space the agent
# gets to 0.33 (README "Search"). It ends with the differences and their intervals.
# Interrupted? `bash scripts/demo.sh --resume` continues the search where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --minimal
bash scripts/build.sh rankrl
echo "demo: set up and built in $(( $(date +%s) - start )) s"
M=models/default
mode=--force; [ "${1:-}" = "--resume" ] && mode=--resume
./build/rankrl search --model $M --keep 0.3 \
  --calib $M/calib.txt --calib-tokens 4096 --ctx 256 --heldout $M/heldout.txt --heldout-tokens 8192 \
  --rkd $M/ranking --vrkd $M/ranking --test $M/ranking \
  --methods dense,svdllm --selects top --agent ppo --rank-action anchored --anchor kfac --init-std 0.1 --episodes 200 \
  --baselines uniform,svdllm2,kfac,sensitivity,random,evolution \
  --surrogate-tokens 1024 --promote 8 --baseline-evaluations 17 --reward-items 24 --finalists 4 --sensitivity-grid 1 \
  --seed 1 --out demo-out/search $mode
# The differences behind the choice, with their paired bootstrap 95% intervals (report.md).
sed -n '/^## Differences/,/^## [^D]/p' demo-out/search/report.md | sed '$d'
echo "demo: finished in $(( $(date +%s) - start )) s"
echo "demo: report $(pwd)/demo-out/search/report.html (tables: demo-out/search/report.md; compressed model: demo-out/search/model)"
