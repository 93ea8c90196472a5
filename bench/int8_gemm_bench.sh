#!/usr/bin/env bash
# INT8 GEMMs of prefill next to the CPU's VNNI peak, in one run (see int8_gemm_bench.cpp):
#   bench/int8_gemm_bench.sh [BUILD_DIR] [M threads reps]
# BUILD_DIR (default build) must hold a built sparq_cpu (bench/ is not part of the CMake build).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
bin="${TMPDIR:-/tmp}/sparq-int8-gemm-bench"
g++ -std=c++20 -O3 -march=native -DNDEBUG -fopenmp -I. bench/int8_gemm_bench.cpp -o "$bin" \
  "$build/backends/cpu/libsparq_cpu.a" "$build/runtime/libsparq_runtime.a" -ldnnl
"$bin" "$@"
