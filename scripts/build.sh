#!/usr/bin/env bash
# Configures and builds rankrl (Release, Ninja, ccache) into ./build.
# Usage: scripts/build.sh [TARGET...]   (default: everything; `rankrl` = only the CLI)
set -euo pipefail
cd "$(dirname "$0")/.."
# Let ccache cache the compiles that use the precompiled libtorch header (it refuses by default).
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" ${1:+--target "$@"}
