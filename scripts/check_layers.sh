#!/bin/bash
# Checks that the folders of src/ depend on each other in one direction only: a file in folder X
# may include "Y/..." only when Y is X or sits on a lower layer than X (README "Layout").
# Usage: scripts/check_layers.sh [SRC_DIR]   (default: src beside this script). Exit 1 on a
# violation (each printed as file:line: X includes Y), 0 otherwise.
set -euo pipefail
src=${1:-$(dirname "$0")/../src}

# Bottom to top; folders on one line are one layer and may not include each other.
layers=(
  "core"
  "tokenizer"
  "io"
  "model"
  "data decompose"
  "eval calib"
  "plan train"
  "compress"
  "search"
  "report"
  "experiment"
  "cli"
)
# Known exceptions, "folder -> header": io reads checkpoints into model's ModelConfig, a plain
# struct (model/config.h holds no code of model/ that needs io). Moving it below io belongs to the
# weight-role table's change.
allowed=("io -> model/config.h")

declare -A level
for i in "${!layers[@]}"; do
  for f in ${layers[$i]}; do level[$f]=$i; done
done

status=0
for dir in "$src"/*/; do
  folder=$(basename "$dir")
  if [[ -z ${level[$folder]+x} ]]; then
    echo "check_layers: $folder/ is in no layer (add it to scripts/check_layers.sh and README's Layout)"
    status=1
    continue
  fi
  while IFS=: read -r file line text; do
    header=$(sed -E 's/^#include "([^"]+)".*/\1/' <<<"$text")
    dep=${header%%/*}
    [[ $dep == "$folder" || -z ${level[$dep]+x} ]] && continue
    for a in "${allowed[@]}"; do [[ $a == "$folder -> $header" ]] && continue 2; done
    if (( ${level[$dep]} >= ${level[$folder]} )); then
      echo "$file:$line: $folder/ includes $header (layer of $dep/ is not below $folder/)"
      status=1
    fi
  done < <(grep -Hn '^#include "[a-z_]*/' "$dir"* 2>/dev/null || true)
done
exit $status
