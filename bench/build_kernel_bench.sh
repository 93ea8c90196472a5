#!/usr/bin/env bash
# Compiles one kernel benchmark (bench/NAME.cpp) against a build's CPU backend and runs it:
#   bench/build_kernel_bench.sh NAME [BUILD_DIR] [ARGS...]
# BUILD_DIR (default build) must hold a built sparq_cpu (bench/ is not part of the CMake build).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
build="${1:-build}"
shift || true
bin="${TMPDIR:-/tmp}/sparq-$name"
g++ -std=c++20 -O3 -march=native -DNDEBUG -fopenmp -I. "bench/$name.cpp" -o "$bin" \
  "$build/backends/cpu/libsparq_cpu.a" "$build/runtime/libsparq_runtime.a" -ldnnl
"$bin" "$@"
