#!/usr/bin/env bash
# Installs every Debian 12 package rankrl needs to build, test and benchmark. Idempotent.
# --minimal: only what building and running the CLI needs (the main job), not the test-only
# packages (Python reference scripts, Chromium).
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev                 # tensors, LAPACK, autograd (libtorch 1.13)
  libopenblas0-openmp          # fast BLAS/LAPACK behind libtorch (the default reference BLAS is ~15x slower)
  nlohmann-json3-dev           # JSON: config.json, tokenizer.json, plans, reports
  libcli11-dev                 # command-line parsing
  libpcre2-dev                 # Unicode regex for BPE pre-tokenizers
  libgtest-dev googletest      # unit tests (CMake configures them)
  openmpi-bin libopenmpi-dev   # mpirun -np N rankrl ...: search/eval work spread over processes (core/dist.h)
)
[ "${1:-}" = "--minimal" ] || packages+=(
  python3 python3-torch python3-numpy python3-regex  # independent reference scripts (tests only)
  chromium                     # headless render of report.html (report_test)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
