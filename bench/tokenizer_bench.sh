#!/usr/bin/env bash
# Tokenizer encode throughput, sparq vs Hugging Face `tokenizers` (Rust, via its PyPI package), one
# thread each, same text and documents, in the same run:
#   bench/tokenizer_bench.sh [BUILD_DIR] [PYTHON_WITH_TOKENIZERS] [MB]
# BUILD_DIR (default build) must hold a built sparq_tokenizer; PYTHON defaults to python3.
# Results go to stdout as a Markdown table (copy it to bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
python="${2:-python3}"
mb="${3:-8}"
work="${TMPDIR:-/tmp}/sparq-tokbench"
mkdir -p "$work"
corpus="$work/corpus-${mb}mb.txt"
[ -f "$corpus" ] || "$python" bench/make_tokenizer_corpus.py "$corpus" --mb "$mb"

# The bench binary links the static libraries of BUILD_DIR (bench/ is not part of the CMake build).
bin="$work/tokenizer_bench"
g++ -std=c++20 -O2 -DNDEBUG -I. bench/tokenizer_bench.cpp -o "$bin" \
  "$build/runtime/tokenizer/libsparq_tokenizer.a" "$build/runtime/libsparq_runtime.a" \
  $(pkg-config --cflags --libs libpcre2-8 sentencepiece libxxhash libcrypto) \
  $(pkg-config --exists icu-uc && pkg-config --libs icu-uc) -lpthread

shared=../shared/data/tokenizers
echo "corpus: $corpus ($(stat -c %s "$corpus") bytes); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| tokenizer | documents | sparq MB/s | HF tokenizers MB/s | sparq / HF | tokens (sparq = HF?) |"
echo "| --- | --- | ---: | ---: | ---: | --- |"
for name in llama3_1 gemma2; do
  for chunk in 65536 2048; do
    s=$(taskset -c 0 "$bin" --tokenizer "$shared/$name/tokenizer.json" --text "$corpus" --chunk "$chunk" --repeat 2)
    h=$(taskset -c 0 env RAYON_NUM_THREADS=1 "$python" bench/tokenizer_bench_hf.py \
        --tokenizer "$shared/$name/tokenizer.json" --text "$corpus" --chunk "$chunk" --repeat 2)
    "$python" - "$name" "$chunk" "$s" "$h" <<'PY'
import json, sys
name, chunk, s, h = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
same = "yes" if s["tokens"] == h["tokens"] else f"NO ({s['tokens']} vs {h['tokens']})"
print(f"| {name} (tokenizer.json) | {s['documents']} of ~{chunk // 1024} KiB | {s['mb_per_s']:.1f} | {h['mb_per_s']:.1f} "
      f"| {s['mb_per_s'] / h['mb_per_s']:.1f}x | {s['tokens']} {same} |")
PY
  done
done
