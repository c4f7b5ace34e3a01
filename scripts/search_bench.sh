#!/usr/bin/env bash
# The search benchmark of issue 4: stories260K at several keeps and seeds, RkD/VRkD/test built
# from the TinyStories file by `rankrl data build`, every approach in one `rankrl search` run.
# Prints one markdown table per run and a summary: the agent's test-margin drop and held-out
# perplexity increase over the dense model, next to the best baseline's (lowest on test), and its
# test margin minus the best uniform plan's (the uniform one best on VRkD) with the paired
# bootstrap 95% interval from results.json ("n.s." when the interval contains 0).
# evolution-kl (when in --baselines) is an ablation, not one of the issue's baselines: it is
# printed but never counted as the best baseline.
# Usage: scripts/search_bench.sh [build-dir] [keeps] [seeds] [extra search flags...] > bench.md
# (WORK=dir keeps the runs; DATA_SEED=n draws another set of items, default 1.)
set -euo pipefail
BUILD=${1:-build}
KEEPS=${2:-"0.8 0.6"}
SEEDS=${3:-"1 2 3"}
shift $(( $# < 3 ? $# : 3 ))
DATA=$(cd "$(dirname "$0")/../../shared/data" && pwd)
MODEL=$DATA/stories260K/stories260K.bin
TEXT=$DATA/tinystories/tinystories_val.txt
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
"$BUILD/rankrl" data build --corpus "$TEXT" --out "$WORK/data" --split-items 200,100,200 --seed "${DATA_SEED:-1}" \
  --model "$MODEL" --context-tokens 48 --force -q > /dev/null
for keep in $KEEPS; do
  for seed in $SEEDS; do
    out=$WORK/search-$keep-$seed
    start=$(date +%s)
    "$BUILD/rankrl" search --model "$MODEL" --calib "$TEXT" --calib-tokens 4096 --ctx 256 --keep "$keep" \
      --rkd "$WORK/data" --vrkd "$WORK/data" --test "$WORK/data" --seed "$seed" --out "$out" --force -q "$@" > /dev/null
    echo "$keep $seed $(( $(date +%s) - start ))" >> "$WORK/times"
  done
done
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys, glob, os, statistics
def ci(d):
    if not d: return "-"
    word = "better" if d["lo"] > 0 else "worse" if d["hi"] < 0 else "n.s."
    return f"{d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] {word}"
work = sys.argv[1]
times = {tuple(l.split()[:2]): int(l.split()[2]) for l in open(os.path.join(work, "times"))}
rows = []
for path in sorted(glob.glob(os.path.join(work, "search-*/results.json"))):
    r = json.load(open(path))
    keep, seed = os.path.basename(os.path.dirname(path)).split("-")[1:]
    d = r["dense"]
    print(f"\n### keep {keep}, seed {seed} ({times.get((keep, seed), '?')} s wall; dense test margin {d['test']['margin']:.3f}, ppl {d['heldout_ppl']:.2f})\n")
    uniform = r.get("bootstrap", {}).get("best_uniform", "best uniform")
    print(f"| approach | RkD evals | KL evals | s | RkD margin | VRkD margin | test margin | test drop | test acc | ppl | KL | keep | test margin - {uniform} (95%) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    agents = set(r["agents"])
    ablations = {"evolution-kl"}
    best_base = None
    for a in r["approaches"]:
        drop = d["test"]["margin"] - a["test"]["margin"]
        kl = a.get("surrogate_kl")
        print(f"| {a['name']} | {a['evaluations']} | {a.get('surrogate_evaluations', 0)} | {a['seconds']:.0f} | {a['rkd']['margin']:.3f} | {a['vrkd']['margin']:.3f} | "
              f"{a['test']['margin']:.3f} | {drop:.3f} | {a['test']['acc']:.3f} | {a['heldout_ppl']:.2f} | {'-' if kl is None else f'{kl:.3f}'} | {a['keep_actual']:.4f} | "
              f"{ci(a.get('vs_best_uniform', {}).get('margin'))} |")
        if a["name"] not in agents and a["name"] not in ablations and (best_base is None or drop < best_base[1]):
            best_base = (a["name"], drop, a["heldout_ppl"] - d["heldout_ppl"])
    for a in r["approaches"]:
        if a["name"] in agents:
            drop = d["test"]["margin"] - a["test"]["margin"]
            rows.append((keep, seed, a["name"], drop, a["heldout_ppl"] - d["heldout_ppl"], *best_base, a["evaluations"],
                         times.get((keep, seed), 0), uniform, ci(a.get("vs_best_uniform", {}).get("margin"))))
print("\n### Summary: agent vs the best baseline on test (goal: ratio <= 0.5)\n")
print("| keep | seed | agent | agent drop | agent ppl + | best baseline | its drop | its ppl + | drop ratio | ppl ratio | agent evals | wall s | agent - best uniform, test margin (95%) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k, s, n, dr, pp, bn, bd, bp, ev, t, u, c in rows:
    print(f"| {k} | {s} | {n} | {dr:.3f} | {pp:.2f} | {bn} | {bd:.3f} | {bp:.2f} | {dr / bd if bd else float('nan'):.2f} | "
          f"{pp / bp if bp else float('nan'):.2f} | {ev} | {t} | {u}: {c} |")
PY
