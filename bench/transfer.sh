#!/usr/bin/env bash
# Transfer experiment (issue 14, item 2): train a policy on stories260K (or SOURCE), apply it zero-shot to other
# models (rankrl plan: no evaluation on the target), and fine-tune it there (search --init-policy)
# against a from-scratch search. Writes WORK/TAG.md (a markdown table) and WORK/TAG.json.
#
# Usage: bench/transfer.sh [BUILD_DIR]            (from the repository root; default build)
#        KEEPS=0.8 TAG=t08 bench/transfer.sh &   KEEPS=0.6 TAG=t06 bench/transfer.sh   (two at once)
# Env: WORK (scratch, default /tmp/policy-transfer), SEEDS ("1 2 3"), KEEPS ("0.6 0.8"),
#      E_TRAIN (source episodes, 200), E_FT (target episodes of scratch and fine-tuning, 100),
#      TARGETS ("default A B": models/default and the two small models this script trains),
#      FT_TARGETS (where fine-tuning vs scratch is measured; default TARGETS), THREADS (1),
#      SEARCH_ARGS (more flags for every search, e.g. "--rank-action anchored --methods dense,svdllm
#      --selects top"; rankrl plan takes them from the policy), SOURCE (the model policies learn on:
#      stories260K, C, or a model directory, which is then read with the default model's
#      calibration, held-out and ranking files; "stories" is then a target too; C is a small model
#      this script trains on the default model's corpus — another width and depth, the same text
#      and tokenizer — from CORPUS, default /tmp/rankrl-default-corpus, written by
#      models/default/build_corpus.sh). Every step is skipped when its output exists, so a rerun
#      continues.
#
# Per target and keep: the zero-shot plan (greedy), uniform svdllm and svdllm2 (the plans of the
# from-scratch search, which runs both baselines and kfac, the K-FAC allocation alone) are each written by compress --plan and scored
# by eval: held-out perplexity (--text) and the test split's margin (--tasks). Fine-tuning: the
# episodes the fine-tuned agent needs until its best surrogate KL is at most the from-scratch
# run's best KL over all its E_FT episodes (log.jsonl; "-" when it never gets there).
set -euo pipefail
BUILD=${1:-build}
R=$(cd "$BUILD" && pwd)/rankrl
REPO=$(pwd)
WORK=${WORK:-/tmp/policy-transfer}
SEEDS=${SEEDS:-"1 2 3"}
KEEPS=${KEEPS:-"0.6 0.8"}
E_TRAIN=${E_TRAIN:-200}
E_FT=${E_FT:-100}
TARGETS=${TARGETS:-"default A B"}
FT_TARGETS=${FT_TARGETS:-$TARGETS}  # targets where fine-tuning is measured (others: baselines only)
TAG=${TAG:-transfer}  # output name: WORK/TAG.md, WORK/TAG.json (parallel runs over other KEEPS use another)
THREADS=${THREADS:-1}
SOURCE=${SOURCE:-stories260K}
DATA=$REPO/../shared/data
SRC=$DATA/stories260K/stories260K.bin
TOK=$DATA/stories260K/tok512.bin
TS=$DATA/tinystories/tinystories_val.txt
mkdir -p "$WORK"
cd "$WORK"
T="/usr/bin/time -f %e_s_%M_KiB -a -o $WORK/times.txt"

# TinyStories val split by documents: 85% to train the small models (and calibrate), 15% held out.
[ -f ts_held.txt ] || python3 - "$TS" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
cut = t.index("\n\n", int(len(t) * 0.85))
open("ts_train.txt", "w", encoding="utf-8").write(t[:cut].strip() + "\n")
open("ts_held.txt", "w", encoding="utf-8").write(t[cut:].strip() + "\n")
PY
# Ranking items from the held-out part (TinyStories-tokenised models share them).
[ -d ts-rank ] || "$R" data build --corpus ts_held.txt --out ts-rank --split-items 40,20,70 --model "$SRC" \
  --context-tokens 48 --seed 1 -q
# Two small models of other widths and depths (a few minutes each at one thread).
[[ " $TARGETS " != *" A "* ]] || [ -f modelA/config.json ] || $T nice -n 10 "$R" train --d-model 128 --layers 4 --heads 4 --ffn 344 --ctx 256 \
  --tokenizer "$TOK" --corpus ts_train.txt --val ts_held.txt --out modelA --steps 600 --batch 8 --lr 2e-3 \
  --warmup 50 --eval-every 0 --val-tokens 8192 --threads "$THREADS" --dtype f32 -q
[[ " $TARGETS " != *" B "* ]] || [ -f modelB/config.json ] || $T nice -n 10 "$R" train --d-model 64 --layers 8 --heads 4 --kv-heads 2 --ffn 176 \
  --ctx 256 --tokenizer "$TOK" --corpus ts_train.txt --val ts_held.txt --out modelB --steps 600 --batch 8 \
  --lr 2e-3 --warmup 50 --eval-every 0 --val-tokens 8192 --threads "$THREADS" --dtype f32 -q

# C: d 128 × 4 layers on the default model's training text with its tokenizer (1500 steps of
# 8 × 256 tokens; ~9 min at one thread, val ppl ~79 where the default model has ~12).
CORPUS=${CORPUS:-/tmp/rankrl-default-corpus}
[ "$SOURCE" != C ] || [ -f modelC/config.json ] || $T nice -n 10 "$R" train --d-model 128 --layers 4 --heads 4 --ffn 344 \
  --ctx 256 --tokenizer "$REPO/models/default/tokenizer.json" --corpus "$CORPUS/train.txt" --val "$CORPUS/val.txt" \
  --out modelC --steps 1500 --batch 8 --lr 2e-3 --warmup 50 --eval-every 0 --val-tokens 8192 --threads "$THREADS" \
  --dtype f32 --seed 1 -q

# model, calibration text, held-out text, ranking split directory, ctx of a target
target() {
  case $1 in
    source) if [ "$SOURCE" = stories260K ]; then target stories;
            elif [ "$SOURCE" = C ]; then target C; else
              echo "$SOURCE $REPO/models/default/calib.txt $REPO/models/default/heldout.txt $REPO/models/default/ranking 256"; fi ;;
    C) echo "$WORK/modelC $REPO/models/default/calib.txt $REPO/models/default/heldout.txt $REPO/models/default/ranking 256" ;;
    stories) echo "$SRC $TS ts_held.txt ts-rank 256" ;;
    default) echo "$REPO/models/default $REPO/models/default/calib.txt $REPO/models/default/heldout.txt $REPO/models/default/ranking 256" ;;
    A) echo "$WORK/modelA ts_train.txt ts_held.txt ts-rank 256" ;;
    B) echo "$WORK/modelB ts_train.txt ts_held.txt ts-rank 256" ;;
  esac
}

# search on a target: NAME MODEL CALIB HELD TASKS CTX KEEP SEED EPISODES EXTRA...
run_search() {
  local out=$1 model=$2 calib=$3 held=$4 tasks=$5 ctx=$6 keep=$7 seed=$8 episodes=$9
  shift 9
  [ -f "$out/results.json" ] && return 0
  mkdir -p "$(dirname "$out")"
  $T nice -n 10 "$R" search --model "$model" --calib "$calib" --calib-tokens 2048 --ctx "$ctx" --keep "$keep" \
    --heldout "$held" --rkd "$tasks" --vrkd "$tasks" --test "$tasks" --limit 50 --reward-items 16 --promote 2 --surrogate-tokens 1024 \
    --finalists 1 --episodes "$episodes" --seed "$seed" --factor-cache "$(dirname "$out")/factors" \
    --threads "$THREADS" -q --force --out "$out" ${SEARCH_ARGS:-} "$@" > /dev/null
}

# 1. Policies on the source, one per keep and seed.
for keep in $KEEPS; do for seed in $SEEDS; do
  run_search train/k$keep-s$seed $(target source) $keep $seed "$E_TRAIN" --baselines uniform \
    --save-policy "$WORK/train/k$keep-s$seed.policy"
done; done

# Held-out perplexity and test margin of a plan on a target: PLAN MODEL CALIB HELD TASKS CTX OUT
score_plan() {
  local plan=$1 model=$2 calib=$3 held=$4 tasks=$5 ctx=$6 out=$7
  [ -f "$out.json" ] && return 0
  nice -n 10 "$R" compress --model "$model" --calib "$calib" --calib-tokens 2048 --ctx "$ctx" --plan "$plan" \
    --out "$out.dir" --force --threads "$THREADS" -q > /dev/null
  local ppl margin
  ppl=$(nice -n 10 "$R" eval --model "$out.dir" --text "$held" --ctx "$ctx" --threads "$THREADS" --json -q |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
  margin=$(nice -n 10 "$R" eval --model "$out.dir" --tasks "$tasks/test.jsonl" --threads "$THREADS" --json -q |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["margin"])')
  echo "{\"ppl\": $ppl, \"margin\": $margin}" > "$out.json"
  rm -rf "$out.dir"
}

# 2. Per target: scratch and fine-tuned searches, the zero-shot plan, every plan scored.
for t in $TARGETS; do
  read -r model calib held tasks ctx <<< "$(target "$t")"
  mkdir -p "$t"
  for keep in $KEEPS; do for seed in $SEEDS; do
    p=train/k$keep-s$seed.policy
    [ -f "$t/zero-k$keep-s$seed.plan.json" ] || $T nice -n 10 "$R" plan --policy "$p" --model "$model" --calib "$calib" \
      --calib-tokens 2048 --ctx "$ctx" --keep "$keep" --factor-cache "$t/plan-factors" --threads "$THREADS" --json -q \
      --out "$t/zero-k$keep-s$seed.plan.json" > "$t/zero-k$keep-s$seed.summary.json"
    score_plan "$t/zero-k$keep-s$seed.plan.json" "$model" "$calib" "$held" "$tasks" "$ctx" "$t/zero-k$keep-s$seed"
    if [[ " $FT_TARGETS " == *" $t "* ]]; then
      run_search "$t/scratch-k$keep-s$seed" "$model" "$calib" "$held" "$tasks" "$ctx" "$keep" "$seed" "$E_FT" \
        --baselines uniform,svdllm2,kfac
      run_search "$t/tuned-k$keep-s$seed" "$model" "$calib" "$held" "$tasks" "$ctx" "$keep" "$seed" "$E_FT" \
        --baselines uniform --init-policy "$WORK/$p"
    else  # the baselines' plans only (one agent episode)
      run_search "$t/scratch-k$keep-s1" "$model" "$calib" "$held" "$tasks" "$ctx" "$keep" 1 1 --baselines uniform,svdllm2,kfac
    fi
  done
  # The baselines are deterministic (no seed enters them): scored once, from the first seed's run.
  first=$(echo $SEEDS | cut -d' ' -f1)
  [[ " $FT_TARGETS " == *" $t "* ]] || first=1
  score_plan "$t/scratch-k$keep-s$first/plans/uniform-svdllm.json" "$model" "$calib" "$held" "$tasks" "$ctx" "$t/svdllm-k$keep"
  score_plan "$t/scratch-k$keep-s$first/plans/svdllm2.json" "$model" "$calib" "$held" "$tasks" "$ctx" "$t/svdllm2-k$keep"
  score_plan "$t/scratch-k$keep-s$first/plans/kfac.json" "$model" "$calib" "$held" "$tasks" "$ctx" "$t/kfac-k$keep"
  done
done

# 3. Tables.
python3 - "$E_FT" "$KEEPS" "$SEEDS" "$TARGETS" "$TAG" "$FT_TARGETS" <<'PY'
import json, os, sys
E, keeps, seeds, targets, tag = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split(), sys.argv[5]
ft = sys.argv[6].split()

def kl_curve(run):
    best, curve = float("inf"), []
    for line in open(run + "/log.jsonl"):
        j = json.loads(line)
        if j["approach"] == "ppo" and "kl" in j and not j.get("greedy"):
            best = min(best, j["kl"])
            curve.append(best)
    return curve

rows, out = [], {}
lines = ["| target | keep | seed | zero-shot ppl | svdllm ppl | svdllm2 ppl | kfac ppl | zero-shot margin | svdllm margin | svdllm2 margin | kfac margin | beats both (ppl) | scratch best KL | tuned best KL | tuned episodes to scratch's best |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for t in targets:
    for k in keeps:
        u = json.load(open(f"{t}/svdllm-k{k}.json")); v = json.load(open(f"{t}/svdllm2-k{k}.json"))
        q = json.load(open(f"{t}/kfac-k{k}.json"))
        wins = 0
        for s in seeds:
            z = json.load(open(f"{t}/zero-k{k}-s{s}.json"))
            if t in ft:
                sc, tu = kl_curve(f"{t}/scratch-k{k}-s{s}"), kl_curve(f"{t}/tuned-k{k}-s{s}")
                reach = next((i + 1 for i, x in enumerate(tu) if x <= sc[-1]), None)
            else:
                sc, tu, reach = [float("nan")], [float("nan")], None
            beats = z["ppl"] < u["ppl"] and z["ppl"] < v["ppl"]
            wins += beats
            out[f"{t}/k{k}/s{s}"] = {"zero": z, "svdllm": u, "svdllm2": v, "kfac": q, "scratch_best_kl": sc[-1],
                                     "tuned_best_kl": tu[-1], "tuned_episodes_to_scratch_best": reach, "episodes": E}
            lines.append(f"| {t} | {k} | {s} | {z['ppl']:.2f} | {u['ppl']:.2f} | {v['ppl']:.2f} | {q['ppl']:.2f} | {z['margin']:.3f} | "
                         f"{u['margin']:.3f} | {v['margin']:.3f} | {q['margin']:.3f} | {'yes' if beats else 'no'} | {sc[-1]:.4f} | {tu[-1]:.4f} | "
                         f"{reach if reach else '-'} of {E} |")
        out[f"{t}/k{k}/seeds_beating_both"] = wins
open(tag + ".json", "w").write(json.dumps(out, indent=1) + "\n")
open(tag + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
