#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and fuzzes each one from the committed corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [--no-merge] [--jobs N] [--only NAME]
#     SECONDS_PER_TARGET  default 30 (CI uses what scripts/test.sh passes; e.g. 3600 for a long run)
#     --no-merge          leave tests/fuzz/corpus and tests/fuzz/effort.tsv as they are (CI)
#     --jobs N            targets fuzzed at once (default: the number of cores)
#     --only NAMES        these targets only, comma-separated, e.g. --only tokenizer,sampling
#
# Each target starts from tests/fuzz/corpus/NAME (a minimized corpus kept in git) and its working
# corpus build-fuzz/corpus/fuzz_NAME. Unless --no-merge, tests/fuzz/corpus/NAME is re-minimized over
# both with libFuzzer's -merge=1 (edge coverage, so it stays small; named seeds stay), and the run is
# added to tests/fuzz/effort.tsv (CPU seconds the fuzzer used, executions, coverage before and after,
# crashes; CPU rather than wall time, so a run that shared the cores is not over-counted).
# Each target's line reports its coverage gain per minute. A crash prints the input (base64) and
# the command that reproduces it, and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30; merge=1; max_jobs=$(nproc); only=""
while (($#)); do
  case "$1" in
    --no-merge) merge=0 ;;
    --jobs) max_jobs="$2"; shift ;;
    --only) only="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *[!0-9]*|"") echo "fuzz.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    *) seconds="$1" ;;
  esac
  shift
done
((seconds > 0)) || { echo "fuzz.sh: SECONDS_PER_TARGET must be positive" >&2; exit 2; }
((max_jobs > 0)) || { echo "fuzz.sh: --jobs must be positive" >&2; exit 2; }

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARQ_FUZZ=ON \
  -DSPARQ_CUDA=OFF -DSPARQ_VULKAN=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" | grep -vE '^\[0/[0-9]+\] Re-checking|^ninja: no work to do' || true
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz.sh: building the fuzz targets failed" >&2; exit 1; }

targets=()
for target in build-fuzz/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  [ -z "$only" ] || [[ ",$only," == *",${name#fuzz_},"* ]] || continue
  targets+=("$name")
done
((${#targets[@]})) || { echo "fuzz.sh: no fuzz target matched" >&2; exit 2; }

fuzz_one() {  # name -> runs it; its log is build-fuzz/NAME.log
  local name=$1 short=${1#fuzz_}
  local seeds="tests/fuzz/corpus/$short" work="build-fuzz/corpus/$name"
  mkdir -p "$work" "$seeds"
  rm -f build-fuzz/crash-"$name"-*
  local start=$SECONDS rc=0
  build-fuzz/tests/fuzz/"$name" -max_total_time="$seconds" -max_len=131072 -print_final_stats=1 -detect_leaks=0 \
    -artifact_prefix="build-fuzz/crash-$name-" "$work" "$seeds" >"build-fuzz/$name.log" 2>&1 || rc=$?
  echo $((SECONDS - start)) >"build-fuzz/$name.seconds"  # a crash ends the run early
  # CPU time of this subshell's children (the fuzzer): the second line of `times`, user and system.
  # Written by the builtin itself: in a pipe or $(...) it would run in a fork that has no children.
  times >"build-fuzz/$name.times"
  sed -n 2p "build-fuzz/$name.times" |
    awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); n += t[1] * 60 + t[2] } printf "%d\n", n + 0.5 }' \
    >"build-fuzz/$name.cpu_seconds"
  return $rc
}

status=0
pids=(); declare -A rc_of
for i in "${!targets[@]}"; do
  if ((i >= max_jobs)); then  # at most max_jobs at once: wait for the oldest
    j=$((i - max_jobs)); rc_of[${targets[$j]}]=0; wait "${pids[$j]}" || rc_of[${targets[$j]}]=$?
  fi
  echo "fuzz: ${targets[$i]} for ${seconds}s"
  fuzz_one "${targets[$i]}" &
  pids+=($!)
done
for i in "${!targets[@]}"; do
  name=${targets[$i]}
  if [ -z "${rc_of[$name]+set}" ]; then rc_of[$name]=0; wait "${pids[$i]}" || rc_of[$name]=$?; fi
  rc=${rc_of[$name]}
  log="build-fuzz/$name.log"
  cov0=$(grep -m1 -oE 'INITED cov: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov1=$(grep -oE '(DONE|NEW|REDUCE|pulse|RELOAD) +cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || echo "$cov0")
  # The last count: a run that stops on a finding may print the stats twice.
  runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || echo 0)
  crashes=0
  if ((rc != 0)); then
    crashes=1; status=1
    echo "fuzz: $name FAILED (exit $rc; log: $log)"
    grep -E "ERROR|SUMMARY|==[0-9]+==|Test unit written" "$log" | head -20 || tail -30 "$log"
    for artifact in build-fuzz/crash-"$name"-*; do
      [ -f "$artifact" ] || continue
      echo "  input (base64): $(base64 -w0 "$artifact")"
      echo "  reproduce: build-fuzz/tests/fuzz/$name $artifact"
    done
  fi
  took=$(cat "build-fuzz/$name.seconds" 2>/dev/null || echo "$seconds"); ((took > 0)) || took=1
  cpu=$(cat "build-fuzz/$name.cpu_seconds" 2>/dev/null || echo "$took")
  per_min=$(awk -v a="$cov0" -v b="$cov1" -v s="$took" 'BEGIN { printf "%.1f", (b - a) * 60 / s }')
  echo "fuzz: $name: ${runs} executions in ${took}s (${cpu} CPU-s), coverage ${cov0} -> ${cov1} (+${per_min}/min)"
  if ((merge)); then
    # Re-minimized from scratch over edge coverage (-use_counters=0 keeps it small): hashed inputs
    # are replaced by the minimal set; named seeds and regression inputs always stay.
    corpus="tests/fuzz/corpus/${name#fuzz_}" fresh="build-fuzz/merged/$name"
    before=$(find "$corpus" -type f | wc -l)
    rm -rf "$fresh"; mkdir -p "$fresh"
    if build-fuzz/tests/fuzz/"$name" -merge=1 -use_counters=0 -max_len=131072 -detect_leaks=0 \
         -artifact_prefix="build-fuzz/merge-$name-" "$fresh" "$corpus" \
         "build-fuzz/corpus/$name" >"build-fuzz/$name.merge.log" 2>&1; then
      find "$corpus" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
      for f in "$fresh"/*; do [ -e "$corpus/$(basename "$f")" ] || [ ! -f "$f" ] || cp "$f" "$corpus/"; done
      # A named input that the minimal set also holds under its hash is kept once, by name.
      for f in "$corpus"/*; do
        [ -f "$f" ] || continue  # removed a moment ago as the hashed twin of a named input
        h=$(sha1sum "$f" | cut -c1-40); [ "$(basename "$f")" = "$h" ] || rm -f "$corpus/$h"
      done
    else
      echo "fuzz: merging $name's corpus failed (build-fuzz/$name.merge.log)"
    fi
    after=$(find "$corpus" -type f | wc -l)
    echo "fuzz: $name: corpus $corpus $before -> $after inputs ($(du -sh "$corpus" | cut -f1))"
    [ -f tests/fuzz/effort.tsv ] || printf 'date\ttarget\tcpu_seconds\texecutions\tcov_start\tcov_end\tcrashes\n' >tests/fuzz/effort.tsv
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "${name#fuzz_}" "$cpu" "$runs" "$cov0" "$cov1" "$crashes" \
      >>tests/fuzz/effort.tsv
  fi
done
exit $status
