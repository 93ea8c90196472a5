#!/usr/bin/env bash
# Sets everything up, converts the bundled demo model (models/demo/w8a8: a 2M-parameter Llama
# trained on Jane Austen's novels, quantized to INT8 W8A8 by llm-compressor) into one .sparq file,
# verifies it, shows what is inside, and lets it write (a continuation, then one chat turn). Another checkpoint directory can be given
# as the first argument (e.g. tests/fixtures/llama-2of4-fp8).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model="${1:-models/demo/w8a8}"
mkdir -p build/demo
out="build/demo/$(basename "$(dirname "$model")")-$(basename "$model").sparq"
./build/sparq convert "$model" -o "$out" --verify
./build/sparq info "$out"
# A toy trained for 15 minutes on one core: English words with local grammar and little sense.
# Sampled (fixed seed), since greedy decoding of a model this small soon repeats itself.
./build/sparq generate -m "$out" -p "It was a fine morning, and" -n 80 --temp 0.7 --seed 1
echo
# The same model through its chat template: `sparq chat` reads one message per line from a pipe.
echo "Elizabeth went to the window." | ./build/sparq chat "$out" -n 60 --seed 1
