#!/usr/bin/env bash
# Sets everything up, converts a bundled model checkpoint (a tiny Llama-3.1-shaped 2:4 sparse FP8
# model, made by llm-compressor) into one .sparq file, verifies it, shows what is inside, and
# generates a few tokens with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model="${1:-tests/fixtures/llama-2of4-fp8}"
mkdir -p build/demo
out="build/demo/$(basename "$model").sparq"
./build/sparq convert "$model" -o "$out" --verify
./build/sparq info "$out"
# The bundled model is tiny (2 layers, trained for seconds): its text is word salad, but every
# step of the pipeline is the real one.
./build/sparq generate -m "$out" -p "The" -n 24 --temp 0
