"""Encode throughput of Hugging Face `tokenizers` (the Rust library, PyPI package) on one thread,
measured exactly like bench/tokenizer_bench.cpp: same documents, no special tokens added, best of
--repeat passes. Prints one JSON line per run. Used by bench/tokenizer_bench.sh.

    python tokenizer_bench_hf.py --tokenizer tokenizer.json --text FILE [--chunk BYTES] [--repeat N]
"""
import argparse
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Tokenizer  # noqa: E402
import tokenizers  # noqa: E402


def split_documents(data: bytes, chunk: int):
    docs, pos = [], 0
    while pos < len(data):
        end = min(len(data), pos + chunk)
        if end < len(data):
            blank = data.find(b"\n\n", end)
            end = len(data) if blank < 0 else blank + 2
        docs.append(data[pos:end].decode("utf-8", errors="replace"))
        pos = end
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--chunk", type=int, default=64 * 1024)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    data = open(a.text, "rb").read()
    docs = split_documents(data, a.chunk)
    tok = Tokenizer.from_file(a.tokenizer)
    best, tokens = 1e30, 0
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        n = 0
        for d in docs:
            n += len(tok.encode(d, add_special_tokens=False).ids)
        best = min(best, time.perf_counter() - t0)
        tokens = n
    print(json.dumps({"impl": f"hf-tokenizers {tokenizers.__version__}", "tokenizer": a.tokenizer,
                      "mb_per_s": round(len(data) / 1e6 / best, 2), "seconds": round(best, 4), "tokens": tokens,
                      "bytes": len(data), "documents": len(docs)}))


if __name__ == "__main__":
    main()
