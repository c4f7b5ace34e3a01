#!/usr/bin/env bash
# The main job: set up, build, measure and run the real stories260K model, then search a
# compression plan for it with the RL agent and every baseline (about 5 minutes on 2 idle cores).
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
# Compression: ranking items from TinyStories, then the RL search against every baseline at keep
# 0.8 (results.json, report.html and the compressed model land in demo-out/search).
text=$data/tinystories/tinystories_val.txt
./build/rankrl data build --corpus "$text" --out demo-out/ts-rank --split-items 200,100,200 --seed 1 \
  --model "$model" --context-tokens 48 --force
./build/rankrl search --model "$model" --calib "$text" --calib-tokens 4096 --ctx 256 --keep 0.8 \
  --rkd demo-out/ts-rank --vrkd demo-out/ts-rank --test demo-out/ts-rank --episodes 40 --reward-items 32 \
  --sensitivity-grid 2 --seed 1 --out demo-out/search --force
./build/rankrl eval --model demo-out/search/model --text "$text" --ctx 256
echo "report: $(pwd)/demo-out/search/report.html"
