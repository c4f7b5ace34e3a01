#!/usr/bin/env bash
# The MPI benchmark of issue 12: the same stories260K search with one process and with
# `mpirun -np 2`, one thread per rank; checks that plan.json, log.jsonl (times removed) and
# results.json (times removed) are identical, and prints the evaluations per second of each and
# their ratio. Evaluations = RkD evaluations + KL surrogate evaluations; per second of the search
# after setup (calibration and factorizations, which are not split, are excluded; the wall time
# of the whole run is printed too). On a machine shared with other work the wall ratio says
# little (Linux's autogroup scheduler gives one login session the same CPU share however many
# processes it runs), so the script also prints each rank's CPU seconds (/usr/bin/time per
# rank; a waiting rank sleeps, core/dist.cpp) and the ratio of evaluations per CPU second of
# the busiest rank, an upper bound of the wall ratio on otherwise idle cores (measured: 1.82
# against a wall ratio of 1.74 on the idle machine).
# Usage: bench/mpi_speed.sh [build-dir] [extra search flags...]   (WORK=dir keeps the runs)
set -euo pipefail
BUILD=${1:-build}
shift $(( $# < 1 ? $# : 1 ))
DATA=$(cd "$(dirname "$0")/../../shared/data" && pwd)
MODEL=$DATA/stories260K/stories260K.bin
TEXT=$DATA/tinystories/tinystories_val.txt
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
"$BUILD/rankrl" data build --corpus "$TEXT" --out "$WORK/data" --split-items 100,50,100 --seed 1 \
  --model "$MODEL" --context-tokens 48 --force -q > /dev/null
run() {  # $1 = ranks, then extra search flags
  local np=$1 out=$WORK/np$1 launch=()
  shift
  [ "$np" -gt 1 ] && launch=(mpirun -q --bind-to none -np "$np")
  rm -f "$WORK"/cpu-np"$np"-*
  # Each rank under its own /usr/bin/time: wall, CPU seconds and peak RSS per rank.
  /usr/bin/time -f "%e" -o "$WORK/wall-np$np" "${launch[@]}" bash -c 'f=$0/cpu-np$1-${OMPI_COMM_WORLD_RANK:-0}; shift
    exec /usr/bin/time -f "%e %U %S %M" -o "$f" "$@"' "$WORK" "$np" "$BUILD/rankrl" search --model "$MODEL" \
    --calib "$TEXT" --calib-tokens 2048 --ctx 256 --keep 0.6 --rkd "$WORK/data" --vrkd "$WORK/data" \
    --test "$WORK/data" --episodes 200 --reward-items 32 --baseline-evaluations 20 --seed 1 --threads 1 \
    --out "$out" --force -q "$@" > /dev/null
}
run 1 "$@"
run 2 "$@"
/usr/bin/python3 - "$WORK" <<'PY'
import glob, json, sys, os
work = sys.argv[1]
def log(n):
    lines = []
    for l in open(os.path.join(work, n, "log.jsonl")):
        j = json.loads(l); j.pop("seconds", None); lines.append(j)
    return lines
def strip(x):
    if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if "second" not in k and k not in ("timing", "savings", "command")}
    if isinstance(x, list): return [strip(v) for v in x]
    return x
rate, cpu_rate = {}, {}
for n in ("np1", "np2"):
    r = json.load(open(os.path.join(work, n, "results.json")))
    t = r["timing"]
    evals = t["evaluations"] + t["surrogate_evaluations"]
    wall = float(open(os.path.join(work, "wall-" + n)).read().split()[0])
    ranks = [open(p).read().split() for p in sorted(glob.glob(os.path.join(work, "cpu-" + n + "-*")))]
    cpu = max(float(u) + float(s) for _, u, s, _ in ranks)
    rss = max(int(m) for *_, m in ranks) // 1024
    rate[n] = evals / (t["seconds"] - t["setup_seconds"])
    cpu_rate[n] = evals / cpu
    print(f"{n}: {evals} evaluations ({t['evaluations']} RkD + {t['surrogate_evaluations']} KL) in "
          f"{t['seconds'] - t['setup_seconds']:.1f} s after {t['setup_seconds']:.1f} s setup: {rate[n]:.2f} evaluations/s; "
          f"wall {wall:.1f} s; CPU s of the busiest rank {cpu:.1f} ({cpu_rate[n]:.2f} evaluations per CPU s); "
          f"peak RSS per rank {rss} MiB")
same_plan = open(os.path.join(work, "np1", "plan.json")).read() == open(os.path.join(work, "np2", "plan.json")).read()
same_log = log("np1") == log("np2")
same_results = strip(json.load(open(os.path.join(work, "np1", "results.json")))) == strip(json.load(open(os.path.join(work, "np2", "results.json"))))
print(f"identical plan.json: {same_plan}; identical log.jsonl without times: {same_log}; identical results.json without times: {same_results}")
print(f"ratio np2/np1: {rate['np2'] / rate['np1']:.2f} in evaluations/s; {cpu_rate['np2'] / cpu_rate['np1']:.2f} in evaluations "
      "per CPU second of the busiest rank (the bound of the wall ratio on otherwise idle cores)")
sys.exit(0 if same_plan and same_log and same_results else 1)
PY
