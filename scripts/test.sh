#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: the sanitizer (ASan+UBSan) build of the unit
# tests, the threaded tests under ThreadSanitizer, a bounded fuzzing run, then every unit and CLI
# test through ctest, whose summary ends the run.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
failed=0

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
if cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSPARQ_SANITIZE=ON -DSPARQ_CUDA=OFF \
     -DSPARQ_VULKAN=OFF -DSPARQ_WERROR=ON >/dev/null && cmake --build build-asan -j"$(nproc)" --target sparq_test_binaries; then
  if (cd build-asan && ctest -j"$(nproc)" --output-on-failure >ctest.log 2>&1); then
    tail -3 build-asan/ctest.log
  else
    tail -60 build-asan/ctest.log; failed=1
  fi
else
  failed=1
fi

echo "== threaded tests (engine service, HTTP server) under ThreadSanitizer"
if cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARQ_TSAN=ON -DSPARQ_CUDA=OFF \
     -DSPARQ_VULKAN=OFF -DSPARQ_WERROR=ON >/dev/null && cmake --build build-tsan -j"$(nproc)" --target sparq_unit_tests >build-tsan.log 2>&1; then
  if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" build-tsan/tests/sparq_unit_tests "[service]" >build-tsan/tsan.log 2>&1; then
    tail -2 build-tsan/tsan.log
  else
    tail -60 build-tsan/tsan.log; failed=1
  fi
else
  tail -30 build-tsan.log; failed=1
fi

echo "== fuzzing (bounded, from the committed corpus)"
bash scripts/fuzz.sh --no-merge "${SPARQ_FUZZ_SECONDS:-60}" || failed=1
[ "$failed" -eq 0 ] || echo "!! the sanitizer or fuzzing stage failed (see above)"

echo "== unit and CLI tests"
(cd build && ctest -j"$(nproc)" --output-on-failure) || failed=1
exit $failed
