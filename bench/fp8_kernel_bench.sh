#!/usr/bin/env bash
# FP8 kernel throughput next to the read bandwidth (see fp8_kernel_bench.cpp):
#   bench/fp8_kernel_bench.sh [BUILD_DIR] [rows cols threads reps]
exec "$(dirname "$0")/build_kernel_bench.sh" fp8_kernel_bench "$@"
