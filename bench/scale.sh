#!/usr/bin/env bash
# Times every stage on a random-weight checkpoint of a real model's shape and prints a table of
# seconds and peak RSS (from /usr/bin/time -v) per stage.
#
#   bash bench/scale.sh [SHAPE]          SHAPE: tinyllama-1.1b (default), llama2-7b, small, tiny
#
# Environment (defaults in brackets):
#   STAGES        stages to run, in order ["synth inspect eval calibrate compress"]
#   WORK          scratch directory; the checkpoint is written to $WORK/model [/tmp/rankrl-scale-SHAPE]
#   THREADS       --threads of every rankrl command [1]
#   EVAL_TOKENS   tokens of the eval text (about; the text is cut from tinystories_val) [2048]
#   CALIB_TOKENS  calibration tokens [1024]     CTX  calibration window [256]
#   KEEP, METHOD  compress plan [0.8, svdllm]; compress uses the calibrate stage's statistics when
#                 $WORK/stats.safetensors exists (else pick a method without, e.g. METHOD=rsvd)
#   COMPRESS_CALIB=1  compress calibrates itself (--calib, CALIB_TOKENS, CTX; needed for healing)
#   COMPRESS_ARGS     more compress flags, e.g. "--heal-compensate"
# The checkpoint (BF16, sharded like the original, bench/synth_checkpoint) stays in $WORK/model
# for reruns with a STAGES list without `synth`. Needs build/rankrl and build/synth_checkpoint
# (built here when missing). Mind the memory: calibrate/compress of the 1.1B shape held every
# layer's float64 Gram matrices at once before layer streaming (issue 12 item 2).
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPE=${1:-tinyllama-1.1b}
STAGES=${STAGES:-synth inspect eval calibrate compress}
WORK=${WORK:-/tmp/rankrl-scale-$SHAPE}
THREADS=${THREADS:-1}
EVAL_TOKENS=${EVAL_TOKENS:-2048}
CALIB_TOKENS=${CALIB_TOKENS:-1024}
CTX=${CTX:-256}
KEEP=${KEEP:-0.8}
METHOD=${METHOD:-svdllm}
TEXT=../shared/data/tinystories/tinystories_val.txt
MODEL=$WORK/model

[[ -x build/rankrl && -x build/synth_checkpoint ]] || bash scripts/build.sh rankrl synth_checkpoint
mkdir -p "$WORK"
# stories260K's tokenizer (which synth_checkpoint installs) averages ~2 bytes per token on this text.
head -c $((EVAL_TOKENS * 2 + 64)) "$TEXT" > "$WORK/eval.txt"

rows=()
# run NAME CMD...: runs CMD under /usr/bin/time -v, keeps its output in $WORK/NAME.{out,err,time}.
run() {
  local name=$1
  shift
  if ! /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "scale.sh: stage $name failed:" >&2
    tail -n 3 "$WORK/$name.err" >&2
    exit 1
  fi
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
           n = split($2, p, ":"); s = 0; for (i = 1; i <= n; ++i) s = s * 60 + p[i]; print s }' "$WORK/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$WORK/$name.time")
  rows+=("$(printf '%-10s %10s %14s' "$name" "$wall" "$rss")")
  echo "$name: ${wall} s, peak RSS ${rss} MiB" >&2
}

for stage in $STAGES; do
  case $stage in
    synth) rm -rf "$MODEL"; run synth build/synth_checkpoint --shape "$SHAPE" --out "$MODEL" ;;
    inspect) run inspect build/rankrl inspect --model "$MODEL" --threads "$THREADS" --json ;;
    eval) run eval build/rankrl eval --model "$MODEL" --text "$WORK/eval.txt" --ctx "$EVAL_TOKENS" \
            --threads "$THREADS" --json ;;
    calibrate) run calibrate build/rankrl calibrate --model "$MODEL" --calib "$TEXT" \
                 --calib-tokens "$CALIB_TOKENS" --ctx "$CTX" --threads "$THREADS" --out "$WORK/stats.safetensors" ;;
    compress)  # with the statistics of the calibrate stage when it ran (svdllm, asvd, ... need them)
      stats=()
      if [[ ${COMPRESS_CALIB:-0} = 1 ]]; then
        stats=(--calib "$TEXT" --calib-tokens "$CALIB_TOKENS" --ctx "$CTX")
      elif [[ -f $WORK/stats.safetensors ]]; then
        stats=(--stats "$WORK/stats.safetensors")
      fi
      # shellcheck disable=SC2086  # COMPRESS_ARGS is a list of flags
      run compress build/rankrl compress --model "$MODEL" "${stats[@]}" --keep "$KEEP" --method "$METHOD" \
        ${COMPRESS_ARGS:-} --threads "$THREADS" --force --out "$WORK/compressed" --json
      echo "compress seconds by stage: $(tr -d ' \n' < "$WORK/compress.out" | grep -o '"seconds_by_stage":{[^}]*}')" >&2 ;;
    *) echo "scale.sh: unknown stage '$stage'" >&2; exit 2 ;;
  esac
done

echo
echo "shape $SHAPE, $THREADS thread(s); checkpoint $(du -sb "$MODEL" | cut -f1) bytes" \
     "$( [[ -d $WORK/compressed ]] && echo "; compressed $(du -sb "$WORK/compressed" | cut -f1) bytes")"
printf '%-10s %10s %14s\n' stage seconds "peak RSS MiB"
printf '%s\n' "${rows[@]}"
