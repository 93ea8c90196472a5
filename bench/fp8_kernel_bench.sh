#!/usr/bin/env bash
# FP8 kernel throughput next to the read bandwidth (see fp8_kernel_bench.cpp):
#   bench/fp8_kernel_bench.sh [BUILD_DIR] [rows cols threads reps]
# BUILD_DIR (default build) must hold a built sparq_cpu (bench/ is not part of the CMake build).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
bin="${TMPDIR:-/tmp}/sparq-fp8-kernel-bench"
g++ -std=c++20 -O3 -march=native -DNDEBUG -fopenmp -I. bench/fp8_kernel_bench.cpp -o "$bin" \
  "$build/backends/cpu/libsparq_cpu.a" -ldnnl
"$bin" "$@"
