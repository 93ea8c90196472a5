#!/usr/bin/env bash
# Sets everything up, converts a bundled model checkpoint (a tiny Llama-3.1-shaped 2:4 sparse FP8
# model, made by llm-compressor) into one .sparq file, verifies it, and shows what is inside.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model="${1:-tests/fixtures/llama-2of4-fp8}"
mkdir -p build/demo
out="build/demo/$(basename "$model").sparq"
./build/sparq convert "$model" -o "$out" --verify
./build/sparq info "$out"
