#!/usr/bin/env bash
# INT8 GEMMs of prefill next to the CPU's VNNI peak, in one run (see int8_gemm_bench.cpp):
#   bench/int8_gemm_bench.sh [BUILD_DIR] [M threads reps]
exec "$(dirname "$0")/build_kernel_bench.sh" int8_gemm_bench "$@"
