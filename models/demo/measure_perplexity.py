#!/usr/bin/env python3
"""Perplexity of the demo model on its held-out text, BF16 and W8A8, through sparq and transformers.

Same windows and same tokens on both sides (see apps/cmd_perplexity.cpp for the definition):
the text is encoded once; window k runs [BOS] + T[k*S, k*S + ctx-1) from an empty cache and scores
the tokens no earlier window scored, each from the position before it; NLL in float64 from the
float32 logits; perplexity = exp(mean NLL). Defaults: ctx 256 (the training context), stride
ctx-1 (non-overlapping windows).

Runs measured:
  sparq          `sparq perplexity` on the .sparq conversions of models/demo/bf16 and models/demo/w8a8
  transformers   float32, eager attention:
    bf16                  the BF16 checkpoint upcast to float32
    w8a8_vllm             the stored int8 weights dequantized exactly (q * scale, float32), and every
                          quantized Linear's input quantized per token like vLLM (and sparq):
                          s = max|x|/127, q = clamp(round_half_even(x/s), -128, 127)
    w8a8_compressed_tensors  the checkpoint as transformers + compressed-tensors run it: the same
                          weights, activations fake-quantized with the library's s = max|x|/127.5
Recovery (as in published quantization tables, for a lower-is-better metric):
  recovery = ppl_bf16 / ppl_w8a8 * 100 %.

Writes models/demo/perplexity.json, which tests/py/test_demo_model.py compares sparq against.

    .venv/bin/python models/demo/measure_perplexity.py --sparq build/sparq
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# Both sides compute in float32 from the same weights and differ only in the order of their sums
# (oneDNN / xsimd blocks vs PyTorch's kernels): ~1e-6 relative per logit, and the mean NLL over ~56k
# tokens averages that down further (measured: 1e-9 relative for BF16). W8A8 adds the int8 rounding of
# every quantized Linear's input: where f32 noise puts x/s on the other side of a .5 boundary one
# element moves by a whole quantization step (measured: 2e-6 relative). The W8A8 bound stays below
# the 1e-4 that separates sparq (vLLM's s = max|x|/127) from compressed-tensors' own s = max|x|/127.5,
# so a change of formula would fail the test.
REL_TOL = {"bf16": 1e-5, "w8a8": 3e-5}


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def windows(n_prefix, n, ctx, stride=0):
    """(b, e, first): window k covers text tokens [b, e) and scores [first, e)."""
    skip = 0 if n_prefix else 1
    length = ctx - n_prefix
    if length < 1 + skip:
        raise ValueError("ctx too small")
    stride = stride or length - skip
    if stride > length - skip:
        raise ValueError("stride leaves tokens unscored")
    out, b, done = [], 0, 0
    while done < n:
        e = min(b + length, n)
        out.append((b, e, max(b + skip, done)))
        done, b = e, b + stride
    return out


def encode(tok, text):
    """(prefix, text tokens) as apps/cmd_perplexity.cpp splits them."""
    full = tok(text, add_special_tokens=True).input_ids
    plain = tok(text, add_special_tokens=False).input_ids
    for k in range(len(full) - len(plain) + 1):
        if full[k:k + len(plain)] == plain:
            return full[:k], plain
    raise ValueError("cannot tell the prefix apart")


def hf_perplexity(model, prefix, tokens, ctx, stride):
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for b, e, first in windows(len(prefix), len(tokens), ctx, stride):
            ids = torch.tensor([prefix + tokens[b:e]])
            logits = model(ids).logits[0].float()
            lp = torch.log_softmax(logits.double(), dim=-1)
            lo, hi = len(prefix) + first - b - 1, len(prefix) + e - b - 1
            tgt = ids[0, lo + 1:hi + 1]
            nll -= float(lp[lo:hi].gather(1, tgt[:, None]).sum())
            count += hi - lo
    return {"perplexity": math.exp(nll / count), "mean_nll": nll / count, "tokens_scored": count}


def load_f32(path, **kw):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager", **kw).eval()


def load_compressed_tensors(path):
    """The W8A8 checkpoint as transformers + compressed-tensors load it (weights decompressed at
    load, inputs of quantized Linears fake-quantized per token by the library)."""
    from transformers import CompressedTensorsConfig

    return load_f32(path, quantization_config=CompressedTensorsConfig(dequantize=True))


def load_w8a8_vllm(path):
    """A float32 model holding the exactly dequantized weights, with vLLM's per-token int8 input
    quantization at every quantized Linear."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(path)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
    stored = load_file(os.path.join(path, "model.safetensors"))
    state, quantized = {}, []
    for k, v in stored.items():
        if k.endswith(".weight_scale"):
            continue
        if k.endswith(".weight") and k[:-len("weight")] + "weight_scale" in stored:
            assert v.dtype == torch.int8, k
            state[k] = v.float() * stored[k[:-len("weight")] + "weight_scale"].float()
            quantized.append(k[:-len(".weight")])
        else:
            state[k] = v.float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model.tie_weights()

    def quant(x):
        a = x.abs().amax(dim=-1, keepdim=True)
        inv = torch.where(a > 0, 127.0 / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(a))
        return torch.round(x * inv).clamp(-128, 127) * (a / 127.0)

    for name in quantized:
        model.get_submodule(name).register_forward_pre_hook(lambda m, args: (quant(args[0].float()),) + args[1:])
    return model, len(quantized)


def sparq_run(sparq, args):
    p = subprocess.run([sparq, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"sparq {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def sparq_ids(sparq, model, text):
    out = sparq_run_stdin(sparq, ["tokenize", "-m", model, "--special"], json.dumps({"text": text}) + "\n")
    return json.loads(out)["ids"]


def sparq_run_stdin(sparq, args, stdin):
    p = subprocess.run([sparq, *args], input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"sparq {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sparq", default=os.path.join(REPO, "build", "sparq"))
    ap.add_argument("--text", default=os.path.join(HERE, "heldout.txt"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "perplexity.json"))
    a = ap.parse_args()

    import compressed_tensors
    import torch
    import transformers
    from transformers import AutoTokenizer

    torch.set_num_threads(a.threads)
    text = open(a.text, encoding="utf-8").read()
    ckpt = {"bf16": os.path.join(HERE, "bf16"), "w8a8": os.path.join(HERE, "w8a8")}
    tok = AutoTokenizer.from_pretrained(ckpt["bf16"])
    prefix, tokens = encode(tok, text)
    res = {"text": os.path.relpath(a.text, REPO), "text_sha256": sha256_file(a.text), "ctx": a.ctx,
           "stride": a.stride or a.ctx - len(prefix), "prefix_tokens": len(prefix), "text_tokens": len(tokens),
           "windows": len(windows(len(prefix), len(tokens), a.ctx, a.stride)),
           "definition": "perplexity = exp(mean NLL of every text token, each scored once); window k = "
                         "[BOS] + T[k*stride, k*stride + ctx - 1), fresh cache, scoring the tokens no "
                         "earlier window scored; recovery = ppl_bf16 / ppl_w8a8 * 100",
           "relative_tolerance_sparq_vs_transformers": REL_TOL,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "compressed_tensors": compressed_tensors.__version__}}

    hf = {}
    t = time.time()
    hf["bf16"] = hf_perplexity(load_f32(ckpt["bf16"]), prefix, tokens, a.ctx, a.stride)
    model, nq = load_w8a8_vllm(ckpt["w8a8"])
    hf["w8a8_vllm"] = hf_perplexity(model, prefix, tokens, a.ctx, a.stride)
    hf["w8a8_vllm"]["quantized_linears"] = nq
    hf["w8a8_compressed_tensors"] = hf_perplexity(load_compressed_tensors(ckpt["w8a8"]), prefix, tokens, a.ctx, a.stride)
    print(f"transformers: {time.time() - t:.0f} s", file=sys.stderr)
    res["transformers"] = hf

    sq = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, d in ckpt.items():
            f = os.path.join(tmp, f"demo-{name}.sparq")
            sparq_run(a.sparq, ["convert", d, "-o", f])
            ids = sparq_ids(a.sparq, f, text)
            assert ids == prefix + tokens, f"sparq and transformers tokenize {a.text} differently"
            args = ["perplexity", "-m", f, "-f", a.text, "--ctx", str(a.ctx), "--threads", str(a.threads), "--json"]
            if a.stride:
                args += ["--stride", str(a.stride)]
            r = json.loads(sparq_run(a.sparq, args))
            sq[name] = {k: r[k] for k in ("perplexity", "mean_nll", "tokens_scored", "windows", "seconds")}
    res["sparq"] = sq

    res["recovery_percent"] = {
        "sparq": 100 * sq["bf16"]["perplexity"] / sq["w8a8"]["perplexity"],
        "transformers_vllm_int8": 100 * hf["bf16"]["perplexity"] / hf["w8a8_vllm"]["perplexity"],
        "transformers_compressed_tensors": 100 * hf["bf16"]["perplexity"] / hf["w8a8_compressed_tensors"]["perplexity"],
    }
    diff = {"bf16": sq["bf16"]["perplexity"] / hf["bf16"]["perplexity"] - 1,
            "w8a8_vs_vllm": sq["w8a8"]["perplexity"] / hf["w8a8_vllm"]["perplexity"] - 1,
            "w8a8_vs_compressed_tensors": sq["w8a8"]["perplexity"] / hf["w8a8_compressed_tensors"]["perplexity"] - 1}
    res["relative_difference_sparq_vs_transformers"] = diff
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(json.dumps(res, indent=2))
    ok = abs(diff["bf16"]) < REL_TOL["bf16"] and abs(diff["w8a8_vs_vllm"]) < REL_TOL["w8a8"]
    if not ok:
        sys.exit("sparq and transformers disagree beyond the stated tolerance")


if __name__ == "__main__":
    main()
