#!/usr/bin/env python3
"""Write random-weight Hugging Face checkpoints with the real shapes and the real
compressed-tensors on-disk format of sparq's yardstick models, for benchmarks.

Models (see docs MODEL_FORMATS.md sections 3, 4 and 9):

  gemma-2-2b-it-w8a8            Gemma2ForCausalLM, int-quantized W8A8: I8 weights [out,in],
                                weight_scale [out,1]; BF16 embed_tokens and norms; tied lm_head
                                (--with-redundant-lm-head writes a bit-identical lm_head copy).
  sparse-llama-3.1-8b-2of4-fp8  LlamaForCausalLM, float-quantized FP8 (E4M3FN) weights, 2:4 sparse
                                along `in`; sparsity_config format "dense" (zeros kept in the
                                weight) or, with --sparse-format sparse-24-bitmask, per Linear
                                `compressed` F8_E4M3 [out,in/2] + `bitmask` U8 [out,in/8] (LSB
                                first) + `shape` I64 [2,1]. BF16 embed_tokens, lm_head, norms.
  llama-3.1-8b-fp8              the same without sparsity (no zeros pattern, no sparsity_config).
  llama-3.1-8b-w4a16            the same shapes, pack-quantized W4A16 as llm-compressor writes it:
                                `weight_packed` I32 [out,in/8] (8 signed nibbles per word),
                                `weight_shape` I64 [2], `weight_scale` [out,in/128] (group 128,
                                symmetric); no activation quantization.

Only numpy is needed. Files are streamed: each safetensors header is written first (all shapes
are known up front), then every tensor is generated in row chunks of ~16 Mi elements and written
straight to disk, so peak memory stays around a few hundred MB whatever the model size.

Layout follows what transformers' save_pretrained + the safetensors library produce: tensors are
assigned to shards in module order with a 5 GB (5e9 bytes) cap; a checkpoint that fits in one
shard is written as a single `model.safetensors` without an index (as HF does), otherwise as
`model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json`. Inside a file, tensors are
ordered like the safetensors library orders them (wider dtypes first, then by name), header order
= data order, header padded with spaces to an 8-byte boundary, `__metadata__ = {"format": "pt"}`.

Randomness is deterministic: every tensor gets its own generator seeded from (--seed, tensor
name), so output does not depend on shard layout or write order, and the dense and bitmask
variants of the sparse model hold the same logical weights for the same seed.

Usage:
  python bench/make_full_size.py MODEL --out DIR [--seed N] [--layers N]
         [--sparse-format dense|sparse-24-bitmask] [--scale-dtype BF16|F32]
         [--with-redundant-lm-head] [--max-shard-size 5GB]
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Shared data (real configs, tokenizers). Overridable for other checkouts.
SHARED = os.environ.get("SPARQ_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
if not os.path.isdir(SHARED):
    SHARED = "/work/shared"

CHUNK_ELEMS = 1 << 24  # elements generated per chunk (fixed: part of the deterministic stream)
TABLE_SIZE = 1 << 16   # value tables indexed by random uint16

# ---------------------------------------------------------------------------------------------
# Number formats
# ---------------------------------------------------------------------------------------------

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
              "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}
# Order of the safetensors Rust `Dtype` enum; files sort tensors by it, descending, then by name.
DTYPE_RANK = {d: i for i, d in enumerate(
    ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
     "F32", "F64", "I64", "U64"])}


def f32_to_bf16_bits(x):
    """float32 array -> uint16 BF16 bit patterns, round to nearest even (no NaNs expected)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (u >> np.uint32(16)).astype(np.uint16)


def e4m3_decode_all():
    """float64 value of every E4M3FN byte (NaN for 0x7f/0xff)."""
    b = np.arange(256)
    s = np.where(b >> 7, -1.0, 1.0)
    e = (b >> 3) & 15
    m = b & 7
    v = np.where(e == 0, (m / 8.0) * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7.0))
    v = s * v
    v[(e == 15) & (m == 7)] = np.nan
    return v


def e4m3_encode_nonzero(x):
    """float array -> nearest E4M3FN byte, saturating at +-448, never 0x00/0x80/0x7f/0xff
    (magnitudes that would round to zero become the smallest subnormal, 2^-9)."""
    pos = e4m3_decode_all()[1:127]  # codes 0x01..0x7e, increasing, 2^-9 .. 448
    a = np.minimum(np.abs(x), pos[-1])
    i = np.clip(np.searchsorted(pos, a), 1, len(pos) - 1)
    lo, hi = pos[i - 1], pos[i]
    i = np.where(a - lo <= hi - a, i - 1, i)  # index into pos; code = i + 1
    code = (i + 1).astype(np.uint8)
    return np.where(x < 0, code | np.uint8(0x80), code).astype(np.uint8)


def _normal_sample(n, seed):
    return np.random.default_rng(seed).standard_normal(n)


# Value tables: a uniform uint16 picks one entry, which gives (a bootstrap of) the intended
# distribution at memory-bandwidth speed. Built once, from fixed seeds.
_TABLES = {}


def table(kind):
    if kind not in _TABLES:
        z = _normal_sample(TABLE_SIZE, 0x5A51 + len(kind))
        if kind == "i8":          # int8 weights: rounded normal, std 30, clipped to [-128, 127]
            t = np.clip(np.rint(z * 30.0), -128, 127).astype(np.int8)
        elif kind == "fp8":       # FP8 E4M3 weights: normal with std 75 (absmax 448 ~ 6 sigma)
            t = e4m3_encode_nonzero(z * 75.0)
        elif kind == "bf16_emb":  # embeddings / lm_head: normal std 0.02
            t = f32_to_bf16_bits(z * 0.02)
        else:
            raise KeyError(kind)
        _TABLES[kind] = t
    return _TABLES[kind]


def draw(rng, kind, n):
    return table(kind)[rng.integers(0, TABLE_SIZE, size=n, dtype=np.uint16)]


# 2:4 patterns: a random byte picks one of the 6 ways to keep 2 of 4 ((b*6)>>8, b in 0..255).
_PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
_PAT = (np.arange(256) * 6) >> 8
SHIFT0 = np.array([8 * _PAIRS[p][0] for p in _PAT], dtype=np.uint32)  # byte shift of kept #0
SHIFT1 = np.array([8 * _PAIRS[p][1] for p in _PAT], dtype=np.uint32)  # byte shift of kept #1
NIBBLE = np.array([(1 << _PAIRS[p][0]) | (1 << _PAIRS[p][1]) for p in _PAT], dtype=np.uint8)


def rng_for(seed, key):
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


# ---------------------------------------------------------------------------------------------
# Tensor specs: name, dtype, shape, and a chunk generator yielding C-ordered byte arrays
# ---------------------------------------------------------------------------------------------

class T:
    __slots__ = ("name", "dtype", "shape", "gen")

    def __init__(self, name, dtype, shape, gen):
        self.name, self.dtype, self.shape, self.gen = name, dtype, list(shape), gen

    @property
    def nbytes(self):
        return math.prod(self.shape) * DTYPE_SIZE[self.dtype]


def row_chunks(rows, cols):
    step = max(1, CHUNK_ELEMS // cols)
    for r0 in range(0, rows, step):
        yield min(step, rows - r0)


def gen_table(seed, key, kind, rows, cols):
    def g():
        rng = rng_for(seed, key)
        for r in row_chunks(rows, cols):
            yield draw(rng, kind, r * cols)
    return g


def gen_norm(seed, key, n, mean, std):
    def g():
        rng = rng_for(seed, key)
        yield f32_to_bf16_bits(rng.standard_normal(n, dtype=np.float32) * std + mean)
    return g


def gen_scale(seed, key, out, lo, hi, dtype):
    def g():
        rng = rng_for(seed, key)
        u = rng.random(out, dtype=np.float64)
        s = np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))).astype(np.float32)
        yield f32_to_bf16_bits(s) if dtype == "BF16" else s
    return g


def gen_24(seed, key, rows, cols, part):
    """2:4 sparse FP8 weight. part: 'dense' -> [rows,cols] with zeros; 'compressed' -> kept
    values [rows,cols/2] in column order; 'bitmask' -> U8 [rows,cols/8], bit j of byte b is
    column 8b+j. Pattern and kept values come from two independent streams, so all three parts
    describe the same weight."""
    assert cols % 8 == 0

    def g():
        rp = rng_for(seed, key + "#pattern")
        rv = rng_for(seed, key + "#values")
        for r in row_chunks(rows, cols):
            groups = r * cols // 4
            if part in ("dense", "bitmask"):
                pat = rp.integers(0, 256, size=groups, dtype=np.uint8)
            if part in ("dense", "compressed"):
                kept = draw(rv, "fp8", 2 * groups)
            if part == "compressed":
                yield kept
            elif part == "bitmask":
                nib = NIBBLE[pat].reshape(-1, 2)
                yield nib[:, 0] | (nib[:, 1] << np.uint8(4))
            else:
                k = kept.reshape(-1, 2).astype(np.uint32)
                grp = (k[:, 0] << SHIFT0[pat]) | (k[:, 1] << SHIFT1[pat])
                yield grp.astype("<u4").view(np.uint8)
    return g


def gen_bytes(seed, key, rows, row_bytes):
    """Uniform random bytes: packed int4 words, where every bit pattern is a valid weight."""
    def g():
        rng = rng_for(seed, key)
        for r in row_chunks(rows, row_bytes):
            yield rng.integers(0, 256, size=r * row_bytes, dtype=np.uint8)
    return g


def w4a16_config():
    weights = {"actorder": None, "block_structure": None, "dynamic": False, "group_size": W4_GROUP,
               "num_bits": 4, "observer": "minmax", "observer_kwargs": {}, "strategy": "group",
               "symmetric": True, "type": "int"}
    qc = quantization_config("int", "pack-quantized", "minmax", None)
    qc["config_groups"]["group_0"]["input_activations"] = None
    qc["config_groups"]["group_0"]["weights"] = weights
    return qc


def gen_const(arr):
    def g():
        yield arr
    return g


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

MODELS = ("gemma-2-2b-it-w8a8", "sparse-llama-3.1-8b-2of4-fp8", "llama-3.1-8b-fp8", "llama-3.1-8b-w4a16")
W4_GROUP = 128


def qargs(typ, strategy, dynamic, observer):
    return {"actorder": None, "block_structure": None, "dynamic": dynamic, "group_size": None,
            "num_bits": 8, "observer": observer, "observer_kwargs": {}, "strategy": strategy,
            "symmetric": True, "type": typ}


def quantization_config(typ, fmt, w_observer, a_observer):
    return {
        "config_groups": {"group_0": {
            "input_activations": qargs(typ, "token", True, a_observer),
            "output_activations": None,
            "targets": ["Linear"],
            "weights": qargs(typ, "channel", False, w_observer),
        }},
        "format": fmt,
        "global_compression_ratio": None,  # filled in from the actual sizes
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
    }


def load_json(path):
    with open(path) as f:
        return json.load(f)


def linear_shapes(cfg):
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    return [("self_attn.q_proj", q, h), ("self_attn.k_proj", kv, h), ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q), ("mlp.gate_proj", inter, h), ("mlp.up_proj", inter, h),
            ("mlp.down_proj", h, inter)]


def build(model, args):
    """Returns (config dict, generation_config dict, tokenizer dir, tensors in module order,
    info dict)."""
    seed, sd = args.seed, args.scale_dtype
    cfgdir = os.path.join(SHARED, "data", "configs")
    tensors = []
    if model == "gemma-2-2b-it-w8a8":
        cfg = load_json(os.path.join(cfgdir, "google--gemma-2-2b-it", "config.json"))
        gen_cfg = load_json(os.path.join(cfgdir, "google--gemma-2-2b-it", "generation_config.json"))
        tok = "gemma2"
        qc = quantization_config("int", "int-quantized", "minmax", "memoryless")
        norms = ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                 "post_feedforward_layernorm"]
        norm_mean, norm_std = 0.0, 0.1  # Gemma RMSNorm multiplies by (1 + w)
        wdtype, wkind, scale_lo, scale_hi = "I8", "i8", 1e-3, 1e-2
        lm_head = args.with_redundant_lm_head
        lm_key = "model.embed_tokens.weight"  # redundant copy: bit-identical to the embedding
    else:
        cfg = load_json(os.path.join(cfgdir, "meta-llama--Llama-3.1-8B-Instruct", "config.json"))
        # Sparse-Llama derives from the *base* model: single eos <|end_of_text|>; the sibling
        # config carries an explicit head_dim.
        cfg["eos_token_id"] = 128001
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
        gen_cfg = {"_from_model_config": True, "bos_token_id": 128000, "eos_token_id": 128001,
                   "transformers_version": cfg.get("transformers_version", "4.42.3")}
        tok = "llama3_1"
        qc = (w4a16_config() if model == "llama-3.1-8b-w4a16"
              else quantization_config("float", "float-quantized", "mse", None))
        norms = ["input_layernorm", "post_attention_layernorm"]
        norm_mean, norm_std = 1.0, 0.05
        wdtype, wkind, scale_lo, scale_hi = "F8_E4M3", "fp8", 2e-4, 1e-3
        lm_head = True
        lm_key = "lm_head.weight"

    sparse = model == "sparse-llama-3.1-8b-2of4-fp8"
    bitmask = sparse and args.sparse_format == "sparse-24-bitmask"
    real_layers = cfg["num_hidden_layers"]
    n_layers = real_layers if args.layers is None else args.layers
    if not 1 <= n_layers <= real_layers:
        sys.exit(f"--layers must be in 1..{real_layers}")
    cfg["num_hidden_layers"] = n_layers
    h, vocab = cfg["hidden_size"], cfg["vocab_size"]

    tensors.append(T("model.embed_tokens.weight", "BF16", [vocab, h],
                     gen_table(seed, "model.embed_tokens.weight", "bf16_emb", vocab, h)))
    n_params = vocab * h
    n_zero = 0
    for i in range(n_layers):
        for mod, out, inp in linear_shapes(cfg):
            p = f"model.layers.{i}.{mod}"
            n_params += out * inp
            if bitmask:
                tensors.append(T(p + ".shape", "I64", [2, 1],
                                 gen_const(np.array([[out], [inp]], dtype="<i8"))))
                tensors.append(T(p + ".compressed", "F8_E4M3", [out, inp // 2],
                                 gen_24(seed, p, out, inp, "compressed")))
                tensors.append(T(p + ".bitmask", "U8", [out, inp // 8],
                                 gen_24(seed, p, out, inp, "bitmask")))
            elif sparse:
                tensors.append(T(p + ".weight", wdtype, [out, inp],
                                 gen_24(seed, p, out, inp, "dense")))
            elif model == "llama-3.1-8b-w4a16":
                assert inp % W4_GROUP == 0
                tensors.append(T(p + ".weight_packed", "I32", [out, inp // 8],
                                 gen_bytes(seed, p + ".weight_packed", out, inp // 2)))
                tensors.append(T(p + ".weight_shape", "I64", [2],
                                 gen_const(np.array([out, inp], dtype="<i8"))))
                # Scales of a uniform int4 weight with std ~ 1/sqrt(in) per output.
                tensors.append(T(p + ".weight_scale", sd, [out, inp // W4_GROUP],
                                 gen_scale(seed, p + ".weight_scale", out * (inp // W4_GROUP), 2e-3, 6e-3, sd)))
                continue
            else:
                tensors.append(T(p + ".weight", wdtype, [out, inp],
                                 gen_table(seed, p + ".weight", wkind, out, inp)))
            if sparse:
                n_zero += out * inp // 2
            tensors.append(T(p + ".weight_scale", sd, [out, 1],
                             gen_scale(seed, p + ".weight_scale", out, scale_lo, scale_hi, sd)))
        for nm in norms:
            name = f"model.layers.{i}.{nm}.weight"
            tensors.append(T(name, "BF16", [h], gen_norm(seed, name, h, norm_mean, norm_std)))
            n_params += h
    tensors.append(T("model.norm.weight", "BF16", [h],
                     gen_norm(seed, "model.norm.weight", h, norm_mean, norm_std)))
    n_params += h
    if lm_head:
        tensors.append(T("lm_head.weight", "BF16", [vocab, h],
                         gen_table(seed, lm_key, "bf16_emb", vocab, h)))
        if model != "gemma-2-2b-it-w8a8":
            n_params += vocab * h

    stored = sum(t.nbytes for t in tensors)
    qc["global_compression_ratio"] = 2.0 * n_params / stored  # vs. an all-BF16 checkpoint
    if sparse:
        qc["sparsity_config"] = {
            "format": args.sparse_format,
            "global_sparsity": n_zero / n_params,
            "ignore": ["lm_head"],
            "registry_requires_subclass": False,
            "sparsity_structure": "2:4",
            "targets": ["Linear"],
        }
    cfg["quantization_config"] = qc
    return cfg, gen_cfg, tok, tensors, {"layers": n_layers, "params": n_params}


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def parse_size(s):
    s = str(s).strip().upper()
    for suf, mul in (("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
                     ("GB", 10 ** 9), ("MB", 10 ** 6), ("KB", 10 ** 3), ("B", 1)):
        if s.endswith(suf):
            return int(float(s[: -len(suf)]) * mul)
    return int(s)


def split_shards(tensors, max_size):
    """huggingface_hub's split: fill shards in state-dict order; an oversized tensor gets its
    own shard."""
    shards, cur, cur_size = [], [], 0
    for t in tensors:
        if t.nbytes > max_size:
            shards.append([t])
            continue
        if cur and cur_size + t.nbytes > max_size:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append(t)
        cur_size += t.nbytes
    if cur:
        shards.append(cur)
    return shards


class Progress:
    def __init__(self, total):
        self.total, self.done, self.t0, self.last = total, 0, time.time(), 0.0

    def add(self, n, label, force=False):
        self.done += n
        now = time.time()
        if force or now - self.last >= 2.0:
            self.last = now
            el = now - self.t0
            print(f"  {self.done / 1e9:7.2f} / {self.total / 1e9:.2f} GB  {el:6.1f} s  "
                  f"{self.done / 1e6 / max(el, 1e-9):6.0f} MB/s  {label}", flush=True)


def write_safetensors(path, tensors, prog):
    tensors = sorted(tensors, key=lambda t: (-DTYPE_RANK[t.dtype], t.name))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [off, off + t.nbytes]}
        off += t.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-(8 + len(hb)) % 8)
    with open(path, "wb", buffering=1 << 22) as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for t in tensors:
            n = 0
            for chunk in t.gen():
                chunk = np.ascontiguousarray(chunk)
                f.write(memoryview(chunk).cast("B"))
                n += chunk.nbytes
                prog.add(chunk.nbytes, t.name)
            if n != t.nbytes:
                raise RuntimeError(f"{t.name}: wrote {n} bytes, expected {t.nbytes}")
    expect = 8 + len(hb) + off
    if os.path.getsize(path) != expect:
        raise RuntimeError(f"{path}: size {os.path.getsize(path)} != {expect}")
    return off


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sparse-format", choices=["dense", "sparse-24-bitmask"], default="dense",
                    help="sparsity_config.format of sparse-llama (default dense: zeros kept)")
    ap.add_argument("--layers", type=int, default=None,
                    help="number of decoder layers (default: the real count)")
    ap.add_argument("--scale-dtype", choices=["BF16", "F32"], default="BF16",
                    help="dtype of the weight_scale tensors (default BF16)")
    ap.add_argument("--with-redundant-lm-head", action="store_true",
                    help="gemma: also write lm_head.weight, a bit-identical copy of embed_tokens")
    ap.add_argument("--max-shard-size", default="5GB",
                    help="shard cap as transformers' max_shard_size (default 5GB = 5e9 bytes)")
    args = ap.parse_args()
    if args.sparse_format != "dense" and args.model != "sparse-llama-3.1-8b-2of4-fp8":
        ap.error("--sparse-format applies to sparse-llama-3.1-8b-2of4-fp8 only")
    if args.with_redundant_lm_head and args.model != "gemma-2-2b-it-w8a8":
        ap.error("--with-redundant-lm-head applies to gemma-2-2b-it-w8a8 only")

    t0 = time.time()
    cfg, gen_cfg, tok, tensors, info = build(args.model, args)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):  # never mix with a previous layout
        if fn.startswith("model") and (fn.endswith(".safetensors") or fn.endswith(".index.json")):
            os.remove(os.path.join(out, fn))

    shards = split_shards(tensors, parse_size(args.max_shard_size))
    total = sum(t.nbytes for t in tensors)
    extra = f", sparsity format {args.sparse_format}" if "sparsity_config" in cfg["quantization_config"] else ""
    print(f"{args.model}: {info['layers']} layers, {len(tensors)} tensors, {info['params'] / 1e9:.3f} B "
          f"params, {total / 1e9:.3f} GB of tensor data in {len(shards)} file(s){extra}, seed {args.seed}"
          f" -> {out}", flush=True)

    prog = Progress(total)
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))])
    weight_map = {}
    for fn, shard in zip(names, shards):
        print(f" {fn}: {len(shard)} tensors, {sum(t.nbytes for t in shard) / 1e9:.3f} GB", flush=True)
        write_safetensors(os.path.join(out, fn), shard, prog)
        prog.add(0, f"{fn} done", force=True)
        for t in shard:
            weight_map[t.name] = fn
    if len(shards) > 1:
        write_json(os.path.join(out, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": weight_map})

    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "generation_config.json"), gen_cfg)
    tokdir = os.path.join(SHARED, "data", "tokenizers", tok)
    for fn in sorted(os.listdir(tokdir)):
        shutil.copyfile(os.path.join(tokdir, fn), os.path.join(out, fn))
    write_json(os.path.join(out, "sparq_synthetic.json"), {
        "generator": "bench/make_full_size.py", "model": args.model, "seed": args.seed,
        "layers": info["layers"], "sparse_format": args.sparse_format if "sparsity_config" in
        cfg["quantization_config"] else None, "scale_dtype": args.scale_dtype,
        "redundant_lm_head": args.with_redundant_lm_head,
        "note": "random weights with real shapes and on-disk format; outputs are meaningless"})

    files = sum(os.path.getsize(os.path.join(out, f)) for f in names)
    el = time.time() - t0
    print(f"done: {total} bytes of tensor data ({total / 1e9:.3f} GB), {files} bytes in "
          f"{len(names)} safetensors file(s), {el:.1f} s ({total / 1e6 / el:.0f} MB/s)", flush=True)


if __name__ == "__main__":
    main()
