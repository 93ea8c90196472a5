#!/usr/bin/env python3
"""Side-by-side CPU benchmark: sparq against llama.cpp (through llama-cpp-python) on the same shapes.

Two jobs:

1. `make-gguf KIND`: write a random-weight GGUF with the real shapes of KIND (gemma-2-2b or
   llama-3.1-8b) at Q8_0, with the architecture metadata llama.cpp needs and a minimal SentencePiece
   style vocabulary of the right size ("<tok_i>" plus the 256 byte tokens). The file is written tensor
   by tensor, in chunks, so peak RSS stays around 100 MB even for the 8.5 GB 8B file. The Q8_0 blocks
   are generated directly (an f16 scale and 32 random int8 values per block), which is what
   `gguf.quants.quantize(x, Q8_0)` would store for random weights, without the slow numpy quantization.

2. `run`: for each thread count, in the same process run and one after the other, `sparq bench` on the
   .sparq file and llama.cpp on the GGUF, prefill P tokens then decode N tokens (random token ids), and
   print the medians, the load average seen with each measurement and the peak RSS of each side.

Needs numpy, gguf and llama-cpp-python (built from source with CMAKE_ARGS="-DGGML_NATIVE=ON"):

    python3 -m venv /tmp/bench-venv
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/bench-venv/bin/pip install numpy gguf llama-cpp-python
    /tmp/bench-venv/bin/python bench/llama_cpp_bench.py make-gguf gemma-2-2b
    /tmp/bench-venv/bin/python bench/llama_cpp_bench.py run gemma-2-2b \
        --sparq-model bench/out/gemma2-w8a8.sparq -p 512 -n 128 --threads 1 2 --reps 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Real shapes (Hugging Face configs of google/gemma-2-2b-it and meta-llama/Llama-3.1-8B-Instruct).
MODELS = {
    "gemma-2-2b": dict(
        arch="gemma2", n_vocab=256000, n_embd=2304, n_layer=26, n_ff=9216, n_head=8, n_head_kv=4,
        head_dim=256, ctx=8192, rms_eps=1e-6, sliding_window=4096, attn_softcap=50.0,
        final_softcap=30.0, tied=True, bos=2, eos=1, pad=0, unk=3,
        gguf="gemma-2-2b-q8_0-random.gguf", sparq="gemma2-w8a8.sparq",
    ),
    "llama-3.1-8b": dict(
        arch="llama", n_vocab=128256, n_embd=4096, n_layer=32, n_ff=14336, n_head=32, n_head_kv=8,
        head_dim=128, ctx=131072, rms_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_ctx=8192),
        tied=False, bos=128000, eos=128009, pad=None, unk=None,
        gguf="llama-3.1-8b-q8_0-random.gguf", sparq="sparse-llama-2of4-fp8.sparq",
    ),
}

QK8_0 = 32
Q8_0_BLOCK_BYTES = 34  # f16 scale + 32 x int8
CHUNK_BYTES = 32 << 20


# --------------------------------------------------------------------------------------------- GGUF


def tensor_plan(m: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape as (rows, cols) = (ne1, ne0), 'q8_0' | 'f32') in llama.cpp's naming."""
    E, F, H, KV, D = m["n_embd"], m["n_ff"], m["n_head"], m["n_head_kv"], m["head_dim"]
    t: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (m["n_vocab"], E), "q8_0")]
    if m["arch"] == "llama":
        t.append(("rope_freqs.weight", (D // 2,), "f32"))
    for i in range(m["n_layer"]):
        b = f"blk.{i}."
        t += [
            (b + "attn_norm.weight", (E,), "f32"),
            (b + "attn_q.weight", (H * D, E), "q8_0"),
            (b + "attn_k.weight", (KV * D, E), "q8_0"),
            (b + "attn_v.weight", (KV * D, E), "q8_0"),
            (b + "attn_output.weight", (E, H * D), "q8_0"),
        ]
        if m["arch"] == "gemma2":
            t.append((b + "post_attention_norm.weight", (E,), "f32"))
        t += [
            (b + "ffn_norm.weight", (E,), "f32"),
            (b + "ffn_gate.weight", (F, E), "q8_0"),
            (b + "ffn_up.weight", (F, E), "q8_0"),
            (b + "ffn_down.weight", (E, F), "q8_0"),
        ]
        if m["arch"] == "gemma2":
            t.append((b + "post_ffw_norm.weight", (E,), "f32"))
    t.append(("output_norm.weight", (E,), "f32"))
    if not m["tied"]:
        t.append(("output.weight", (m["n_vocab"], E), "q8_0"))
    return t


def llama3_rope_factors(m: dict) -> np.ndarray:
    """As convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors for rope_type llama3."""
    rs, D, base = m["rope_scaling"], m["head_dim"], m["rope_theta"]
    freqs = 1.0 / (base ** (np.arange(0, D, 2, dtype=np.float32) / D))
    lo_wl = rs["original_ctx"] / rs["low_freq_factor"]
    hi_wl = rs["original_ctx"] / rs["high_freq_factor"]
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(rs["factor"])
        else:
            smooth = (rs["original_ctx"] / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append(1.0 / ((1 - smooth) / rs["factor"] + smooth))
    return np.asarray(out, dtype=np.float32)


def q8_0_chunks(rows: int, cols: int, rng: np.random.Generator):
    """Random Q8_0 data for a [rows, cols] weight, yielded as raw byte chunks of whole rows."""
    assert cols % QK8_0 == 0
    nb = cols // QK8_0
    row_bytes = nb * Q8_0_BLOCK_BYTES
    # Scale so that a weight is about U(-1, 1) / sqrt(cols): activations stay finite.
    d = np.float16(1.0 / (127.0 * math.sqrt(cols)))
    rows_per_chunk = max(1, CHUNK_BYTES // row_bytes)
    for r0 in range(0, rows, rows_per_chunk):
        n = min(rows_per_chunk, rows - r0)
        blocks = np.empty((n * nb, Q8_0_BLOCK_BYTES), dtype=np.uint8)
        blocks[:, :2] = np.frombuffer(np.full(1, d, dtype="<f2").tobytes(), dtype=np.uint8)
        blocks[:, 2:] = rng.integers(0, 256, size=(n * nb, QK8_0), dtype=np.uint8)
        yield blocks.reshape(-1)


def self_check_q8_0() -> None:
    """Our hand-made blocks must decode the way gguf's own Q8_0 (de)quantizer reads them."""
    from gguf import GGMLQuantizationType, quants

    rng = np.random.default_rng(1)
    raw = next(q8_0_chunks(4, 64, rng)).reshape(4, -1)
    deq = quants.dequantize(raw, GGMLQuantizationType.Q8_0)
    d = raw[:, :2].copy().view("<f2").astype(np.float32)[:, 0]
    q = raw[:, 2:34].view(np.int8).astype(np.float32)
    assert deq.shape == (4, 64) and np.allclose(deq[:, :32], q * d[:, None])
    requant = quants.quantize(deq, GGMLQuantizationType.Q8_0)
    assert requant.shape == raw.shape


def make_gguf(kind: str, out: Path) -> Path:
    import gguf
    from gguf import GGMLQuantizationType as QT

    self_check_q8_0()
    m = MODELS[kind]
    path = out / m["gguf"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".gguf.part")
    w = gguf.GGUFWriter(tmp, m["arch"])
    w.add_name(f"{kind} random Q8_0 (sparq bench)")
    w.add_context_length(m["ctx"])
    w.add_embedding_length(m["n_embd"])
    w.add_block_count(m["n_layer"])
    w.add_feed_forward_length(m["n_ff"])
    w.add_head_count(m["n_head"])
    w.add_head_count_kv(m["n_head_kv"])
    w.add_layer_norm_rms_eps(m["rms_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if m["arch"] == "gemma2":
        w.add_key_length(m["head_dim"])
        w.add_value_length(m["head_dim"])
        w.add_attn_logit_softcapping(m["attn_softcap"])
        w.add_final_logit_softcapping(m["final_softcap"])
        w.add_sliding_window(m["sliding_window"])
    else:
        w.add_rope_freq_base(m["rope_theta"])
        w.add_rope_dimension_count(m["head_dim"])
        w.add_vocab_size(m["n_vocab"])

    # Minimal SentencePiece-style vocabulary: specials, the 256 byte tokens, then "<tok_i>".
    V = m["n_vocab"]
    toks = [f"<tok_{i}>" for i in range(V)]
    types = [gguf.TokenType.NORMAL] * V
    for i in range(256):
        toks[4 + i] = f"<0x{i:02X}>"
        types[4 + i] = gguf.TokenType.BYTE
    for name, tid in (("<pad>", m["pad"]), ("<eos>", m["eos"]), ("<bos>", m["bos"]), ("<unk>", m["unk"])):
        if tid is not None:
            toks[tid] = name
            types[tid] = gguf.TokenType.UNKNOWN if name == "<unk>" else gguf.TokenType.CONTROL
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([-float(i) for i in range(V)])
    w.add_token_types(types)
    w.add_bos_token_id(m["bos"])
    w.add_eos_token_id(m["eos"])
    if m["pad"] is not None:
        w.add_pad_token_id(m["pad"])
    if m["unk"] is not None:
        w.add_unk_token_id(m["unk"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    plan = tensor_plan(m)
    for name, shape, kind_ in plan:
        if kind_ == "q8_0":
            rows, cols = shape
            byte_shape = (rows, cols // QK8_0 * Q8_0_BLOCK_BYTES)
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), byte_shape[0] * byte_shape[1], QT.Q8_0)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    # Stream the data in plan order (GGUFWriter keeps tensor infos in insertion order).
    fout = w.fout[0]
    total = 0
    t0 = time.time()
    for name, shape, kind_ in plan:
        ti = w.tensors[0].pop(name)
        w.write_padding(fout, fout.tell())
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        written = 0
        if kind_ == "q8_0":
            for chunk in q8_0_chunks(shape[0], shape[1], rng):
                chunk.tofile(fout)
                written += chunk.nbytes
        elif name == "rope_freqs.weight":
            a = llama3_rope_factors(m)
            a.tofile(fout)
            written = a.nbytes
        else:  # norm weights, near 1 (llama.cpp's Gemma converter folds Gemma's "1 + w" into the file)
            a = (1.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
            a.tofile(fout)
            written = a.nbytes
        assert written == ti.nbytes, (name, written, ti.nbytes)
        w.write_padding(fout, written)
        total += written
    w.state = gguf.gguf_writer.WriterState.WEIGHTS
    w.close()
    os.replace(tmp, path)
    print(f"wrote {path}: {total / 1e9:.2f} GB of tensor data, {len(plan)} tensors, "
          f"{time.time() - t0:.1f} s, peak RSS {peak_rss_self() / 2**20:.0f} MiB", flush=True)
    return path


# ------------------------------------------------------------------------------------------- bench


def peak_rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def loadavg() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def llama_cpp_once(gguf_path: str, threads: int, p: int, n: int, seed: int) -> dict:
    """One prefill of p random tokens then n decode steps, in this process, through llama-cpp-python."""
    import llama_cpp
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=gguf_path, n_ctx=max(1024, p + n + 16), n_batch=512, n_ubatch=512,
                n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False,
                use_mmap=True)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    V = llm.n_vocab()
    prompt = [int(x) for x in rng.integers(300, V, size=p)]
    gen = [int(x) for x in rng.integers(300, V, size=n)]
    la0 = loadavg()
    t0 = time.perf_counter()
    llm.eval(prompt)
    prefill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for tok in gen:
        llm.eval([tok])
    decode_s = time.perf_counter() - t0
    la1 = loadavg()
    out = dict(load_s=load_s, prefill_s=prefill_s, decode_s=decode_s,
               prefill_tokens_per_s=p / prefill_s, decode_tokens_per_s=n / decode_s,
               loadavg_before=la0, loadavg_after=la1, peak_rss_bytes=peak_rss_self(),
               llama_cpp_python=llama_cpp.__version__,
               system_info=llama_cpp.llama_print_system_info().decode(errors="replace"))
    del llm
    return out


def run_llama_cpp(gguf_path: Path, threads: int, p: int, n: int, seed: int) -> dict:
    """In a child process, so that peak RSS is llama.cpp's own."""
    cmd = [sys.executable, __file__, "_llama_once", str(gguf_path), str(threads), str(p), str(n), str(seed)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama.cpp run failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_sparq(sparq_bin: Path, model: Path, threads: int, p: int, n: int) -> dict:
    la0 = loadavg()
    cmd = [str(sparq_bin), "bench", str(model), "-p", str(p), "-n", str(n), "--threads", str(threads), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sparq bench failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["loadavg_before"], out["loadavg_after"] = la0, loadavg()
    return out


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def bench(args) -> None:
    m = MODELS[args.kind]
    gguf_path = Path(args.gguf) if args.gguf else args.out / m["gguf"]
    sparq_model = Path(args.sparq_model) if args.sparq_model else args.out / m["sparq"]
    if not gguf_path.exists():
        make_gguf(args.kind, args.out)
    results = []
    for T in args.threads:
        row = dict(model=args.kind, threads=T, p=args.p, n=args.n, sparq=[], llama_cpp=[])
        for rep in range(args.reps):
            if not args.skip_sparq:
                s = run_sparq(args.sparq_bin, sparq_model, T, args.p, args.n)
                row["sparq"].append(s)
                print(f"[{args.kind} T={T} rep {rep}] sparq     prefill {s['prefill_tokens_per_s']:7.2f} tok/s  "
                      f"decode {s['decode_tokens_per_s']:6.2f} tok/s  peak RSS {s['peak_rss_bytes'] / 2**20:6.0f} MiB  "
                      f"load {s['loadavg_before']} -> {s['loadavg_after']}", flush=True)
            if not args.skip_llama:
                l_ = run_llama_cpp(gguf_path, T, args.p, args.n, seed=rep)
                row["llama_cpp"].append(l_)
                print(f"[{args.kind} T={T} rep {rep}] llama.cpp prefill {l_['prefill_tokens_per_s']:7.2f} tok/s  "
                      f"decode {l_['decode_tokens_per_s']:6.2f} tok/s  peak RSS {l_['peak_rss_bytes'] / 2**20:6.0f} MiB  "
                      f"load {l_['loadavg_before']} -> {l_['loadavg_after']}", flush=True)
        summary = dict(model=args.kind, threads=T, reps=args.reps)
        for side in ("sparq", "llama_cpp"):
            if row[side]:
                summary[side] = dict(prefill=med(row[side], "prefill_tokens_per_s"),
                                     decode=med(row[side], "decode_tokens_per_s"),
                                     peak_rss_mib=max(r["peak_rss_bytes"] for r in row[side]) / 2**20)
        if "sparq" in summary and "llama_cpp" in summary:
            summary["ratio_prefill"] = summary["sparq"]["prefill"] / summary["llama_cpp"]["prefill"]
            summary["ratio_decode"] = summary["sparq"]["decode"] / summary["llama_cpp"]["decode"]
        print("SUMMARY " + json.dumps(summary), flush=True)
        row["summary"] = summary
        results.append(row)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(dict(
            sparq_file_bytes=sparq_model.stat().st_size, gguf_file_bytes=gguf_path.stat().st_size,
            results=results), indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_llama_once":
        g, t, p, n, seed = sys.argv[2:7]
        print(json.dumps(llama_cpp_once(g, int(t), int(p), int(n), int(seed))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-gguf", help="write a random-weight Q8_0 GGUF with the real shapes")
    mk.add_argument("kind", choices=sorted(MODELS))
    mk.add_argument("--out", type=Path, default=HERE / "out")
    rn = sub.add_parser("run", help="sparq bench and llama.cpp, one after the other, per thread count")
    rn.add_argument("kind", choices=sorted(MODELS))
    rn.add_argument("--out", type=Path, default=HERE / "out")
    rn.add_argument("--gguf", help="GGUF file (default: bench/out/<kind>-q8_0-random.gguf, made if missing)")
    rn.add_argument("--sparq-model", help="sparq model file (default: bench/out/<the converted model>)")
    rn.add_argument("--sparq-bin", type=Path, default=REPO / "build" / "sparq")
    rn.add_argument("-p", type=int, default=512, help="prompt tokens")
    rn.add_argument("-n", type=int, default=128, help="decode tokens")
    rn.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    rn.add_argument("--reps", type=int, default=3)
    rn.add_argument("--skip-sparq", action="store_true")
    rn.add_argument("--skip-llama", action="store_true")
    rn.add_argument("--json-out", help="write all runs as JSON here")
    args = ap.parse_args()
    if args.cmd == "make-gguf":
        make_gguf(args.kind, args.out)
    else:
        bench(args)


if __name__ == "__main__":
    main()
