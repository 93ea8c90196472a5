#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a bounded time.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARQ_FUZZ=ON \
  -DSPARQ_CUDA=OFF -DSPARQ_VULKAN=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)"
status=0
for target in build-fuzz/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  seeds="tests/fuzz/corpus/${name#fuzz_}"
  work="build-fuzz/corpus/$name"
  mkdir -p "$work"
  echo "fuzz: $name for ${seconds}s"
  if ! "$target" -max_total_time="$seconds" -max_len=131072 -print_final_stats=0 -detect_leaks=0 \
      -artifact_prefix="build-fuzz/crash-$name-" "$work" $( [ -d "$seeds" ] && echo "$seeds" ) \
      >"build-fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED (see build-fuzz/$name.log)"; tail -30 "build-fuzz/$name.log"; status=1
  else
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "build-fuzz/$name.log" | tail -1 || true
  fi
done
exit $status
