#!/usr/bin/env bash
# The main job: set up, build, then measure and run the real stories260K model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
data=../shared/data
if [ ! -f "$data/stories260K/stories260K.bin" ]; then
  echo "demo: $data/stories260K/stories260K.bin not found (../shared/data must sit beside the repository)" >&2
  exit 1
fi
model=$data/stories260K/stories260K.bin
set -x
./build/rankrl inspect --model "$model"
./build/rankrl eval --model "$model" --text "$data/tinystories/tinystories_val.txt" --ctx 256
./build/rankrl eval --model "$model" --tasks "$data/tasks/piqa.jsonl" --limit 200
./build/rankrl generate --model "$model" -n 120
