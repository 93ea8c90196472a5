#!/usr/bin/env bash
# Per-M oneDNN INT8 primitives against one runtime-M primitive (see onednn_int8_primitives.cpp):
#   bench/onednn_int8_primitives.sh [n k max_m]     (default 2304 2304 512: Gemma-2-2B's q_proj)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TMPDIR:-/tmp}/sparq-onednn-int8-primitives"
g++ -std=c++20 -O2 -DNDEBUG bench/onednn_int8_primitives.cpp -o "$bin" -ldnnl
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$bin" "$@"
