#!/usr/bin/env bash
# Builds the files that ship beside the default model so `rankrl search` runs on a fresh machine:
#   ranking/{rkd,vrkd,test}.jsonl + manifest.json  `rankrl data build` items from the HELD-OUT
#       documents (val.txt + test.txt of build_corpus.sh; the model never trained on them),
#       documents shuffled into the splits 25/20/55, 300/300/1200 items, 4 choices, of the kinds
#       swap, replace and lastword in equal shares (README "Item kinds"): the true continuation
#       against a span swapped in from another document, against content words replaced, and the
#       passage's last word among other words of the passage. Not `next` (next sentence against
#       other sentences: 0.43 for the default model, near chance, and its margins of about -13
#       would drown the other kinds' -1..-2 in the search's mean-margin reward) and not `shuffle`
#       (solved outright, 1.00: no signal)
#       Split sizes: good plans at keep 0.3 differ by ~0.2 nats of test margin, about the half-width
#       of a paired 95% interval over 300 items; 1200 test items halve that, and 300 VRkD items
#       (was 150) make the final choice less of a coin toss. 300 RkD items are enough for reward.
#   calib.txt    calibration text: every 500th training document (KJV, Jargon File, Devil's and
#                Webster's dictionaries alike), cut at about 60 KB (~16K tokens)
#   heldout.txt  perplexity text: every 15th document of test.txt, cut at about 80 KB (~22K tokens)
# Usage: models/default/build_data.sh   (from the repository root; RANKRL=build/rankrl, CORPUS=...)
set -euo pipefail
RANKRL=${RANKRL:-build/rankrl}
CORPUS=${CORPUS:-/tmp/rankrl-default-corpus}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$CORPUS/train.txt" ] || "$HERE/build_corpus.sh" "$CORPUS"
"$RANKRL" data build --corpus "$CORPUS/val.txt" "$CORPUS/test.txt" --out "$HERE/ranking" \
  --split-items 300,300,1200 --split 0.25,0.2,0.55 --split-order shuffle --hard 0 --seed 1 \
  --kinds swap,replace,lastword --model "$HERE" --context-tokens 64 --max-choice-tokens 96 --force -q > /dev/null
# Every k-th blank-line-separated document of FILE until LIMIT bytes (whole documents only).
every_kth_document() {  # FILE K LIMIT
  awk -v k="$2" -v limit="$3" 'BEGIN { RS = ""; ORS = "\n\n" }
    (NR - 1) % k == 0 { if (bytes + length($0) > limit) exit; bytes += length($0) + 2; print }' "$1"
}
every_kth_document "$CORPUS/train.txt" 500 60000 > "$HERE/calib.txt.tmp" && mv "$HERE/calib.txt.tmp" "$HERE/calib.txt"
every_kth_document "$CORPUS/test.txt" 15 80000 > "$HERE/heldout.txt.tmp" && mv "$HERE/heldout.txt.tmp" "$HERE/heldout.txt"
"$RANKRL" data check "$HERE/ranking"
wc -c "$HERE/calib.txt" "$HERE/heldout.txt"
