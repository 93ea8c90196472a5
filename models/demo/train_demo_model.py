#!/usr/bin/env python3
"""Train sparq's bundled demo model: a small Llama that writes English, BF16 and W8A8 INT8.

What it does (deterministic: fixed seeds, fixed step count, one process, --threads CPU threads)
----------------------------------------------------------------------------------------------
1. corpus     Jane Austen's six novels from the Debian package r-cran-janeaustenr (public-domain
              texts; the package is MIT). The R data files are read directly (no R needed).
              Paragraphs are re-joined from the wrapped lines and `_italics_` marks dropped.
              The last 5% (by characters) of each novel is held out: models/demo/heldout.txt,
              never used for the tokenizer, training or calibration.
2. tokenizer  Byte-level BPE (the Llama 3 split regex) trained on the training text with the
              `tokenizers` library: 2040 tokens + 8 Llama-3 special tokens = 2048 ids. A short
              Llama-3-style chat template goes into tokenizer_config.json.
3. train      LlamaForCausalLM (hidden 192, 4 layers, 6 heads of 32, 2 KV heads, SwiGLU 512,
              tied embeddings, 1.97M parameters), AdamW for --steps (640) steps of 16 windows of 256
              tokens (float32 weights, bf16 autocast matmuls). 10% of the windows are chat-formatted (the user gives the start
              of a paragraph, the assistant continues it and ends with <|eot_id|>), so that
              `sparq chat` gets prose and a stop token from this model too.
4. export     models/demo/bf16: the model in bfloat16 (config, safetensors, tokenizer files,
              generation_config.json with the eos ids).
5. quantize   models/demo/w8a8: llm-compressor `oneshot` with the W8A8 preset (int8 weights per
              output channel, int8 dynamic per-token activations, lm_head ignored), calibrated on
              64 training windows, saved with save_compressed=True.

Environment: the dev virtual environment of `scripts/setup.sh --dev` (.venv with torch,
transformers, compressed-tensors, llmcompressor, tokenizers), or any with the versions recorded in
models/demo/train_log.json. About 25 minutes on a 2-core machine shared with other work (training:
15.5 minutes in one thread):

    .venv/bin/python models/demo/train_demo_model.py            # everything
    .venv/bin/python models/demo/train_demo_model.py --stage quantize   # one stage (needs the earlier ones' work dir)
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 1234
JANEAUSTENR_DEB = "r-cran-janeaustenr"
JANEAUSTENR_DATA = "usr/lib/R/site-library/janeaustenr/data"
NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
          "persuasion"]
HELDOUT_FRACTION = 0.05

VOCAB = 2048
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
            "<|python_tag|>"]
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
                  r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Llama 3's template without tools or dates: a header per message, <|eot_id|> after each.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

MODEL = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=6,
             num_key_value_heads=2, head_dim=32, max_position_embeddings=1024, rope_theta=10000.0,
             rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu")
CTX = 256
BATCH = 16
CHAT_FRACTION = 0.1
LR, LR_MIN, WARMUP = 3e-3, 1e-4, 64
CALIB_SAMPLES = 64


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# 1. Corpus: R lazy-load database (Rdata.rdx index + Rdata.rdb blobs) -> paragraphs
# ----------------------------------------------------------------------------------------------
class RUnserializer:
    """The subset of R's XDR serialization format that character vectors and their index use."""

    def __init__(self, data):
        self.b, self.p, self.refs = data, 0, []

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 252, 251, 250, 242, 241):  # NULL, environments, markers
            return None
        if t == 255:  # reference to an earlier symbol
            return self.refs[((flags >> 8) or self.int()) - 1]
        if t == 1:  # symbol
            v = ("sym", self.item())
            self.refs.append(v)
            return v
        if t in (2, 6):  # pairlist / language: attributes, tag, car, cdr
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            return ("pairlist", tag, self.item(), self.item(), attr)
        if t == 9:  # CHARSXP; -1 = NA
            n = self.int()
            if n == -1:
                return None
            v = self.b[self.p:self.p + n].decode("utf-8")
            self.p += n
            return v
        if t in (10, 13, 14, 16, 19):  # logical, integer, double, character, list
            n = self.int()
            if t in (10, 13):
                v = list(struct.unpack_from(f">{n}i", self.b, self.p))
                self.p += 4 * n
            elif t == 14:
                v = list(struct.unpack_from(f">{n}d", self.b, self.p))
                self.p += 8 * n
            else:
                v = [self.item() for _ in range(n)]
            attr = self.item() if has_attr else None
            return ("vector", v, attr)
        raise ValueError(f"R serialization type {t} is not handled")

    def top(self):
        if self.b[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.p = 2
        version = self.int()
        self.int(), self.int()
        if version == 3:
            self.p += 4 + struct.unpack_from(">i", self.b, self.p)[0]  # native encoding name
        return self.item()


def r_names(vec):
    attr = vec[2]
    while attr and attr[0] == "pairlist":
        if attr[1] and attr[1][1] == "names":
            return attr[2][1]
        attr = attr[3]
    raise ValueError("R vector without names")


def read_janeaustenr(data_dir):
    index = RUnserializer(gzip.decompress(open(os.path.join(data_dir, "Rdata.rdx"), "rb").read())).top()
    top = dict(zip(r_names(index), index[1]))
    variables = dict(zip(r_names(top["variables"]), top["variables"][1]))
    blob = open(os.path.join(data_dir, "Rdata.rdb"), "rb").read()
    out = {}
    for name in NOVELS:
        off, n = variables[name][1]
        # each record: 4-byte uncompressed length, then zlib data (the package's compress=TRUE)
        lines = RUnserializer(zlib.decompress(blob[off + 4:off + n])).top()[1]
        out[name] = [l or "" for l in lines]
    return out


def find_janeaustenr(work):
    """The installed package's data, else the .deb fetched with `apt-get download` and unpacked."""
    installed = "/" + JANEAUSTENR_DATA
    if os.path.exists(os.path.join(installed, "Rdata.rdb")):
        return installed, "installed"
    deb_dir = os.path.join(work, "deb")
    os.makedirs(deb_dir, exist_ok=True)
    debs = [f for f in os.listdir(deb_dir) if f.startswith(JANEAUSTENR_DEB) and f.endswith(".deb")]
    if not debs:
        subprocess.run(["apt-get", "download", JANEAUSTENR_DEB], cwd=deb_dir, check=True)
        debs = [f for f in os.listdir(deb_dir) if f.endswith(".deb")]
    deb = os.path.join(deb_dir, sorted(debs)[-1])
    root = os.path.join(deb_dir, "root")
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return os.path.join(root, JANEAUSTENR_DATA), os.path.basename(deb)


def paragraphs(lines):
    """Wrapped lines -> one string per paragraph; italics marks (_word_) dropped, runs of spaces
    (two after a full stop in these texts) made one."""
    out, cur = [], []
    for line in lines + [""]:
        line = line.strip()
        if line:
            cur.append(line)
        elif cur:
            out.append(" ".join(" ".join(cur).replace("_", "").split()))
            cur = []
    return out


def build_corpus(work, out):
    data_dir, source = find_janeaustenr(work)
    novels = read_janeaustenr(data_dir)
    train, heldout = [], []
    stats = {}
    for name in NOVELS:
        paras = paragraphs(novels[name])
        total = sum(len(p) for p in paras)
        # the last paragraphs holding HELDOUT_FRACTION of the novel's characters are held out
        acc, cut = 0, len(paras)
        while cut > 0 and acc < HELDOUT_FRACTION * total:
            cut -= 1
            acc += len(paras[cut])
        train.append(paras[:cut])
        heldout.append(paras[cut:])
        stats[name] = {"paragraphs": len(paras), "chars": total, "heldout_paragraphs": len(paras) - cut,
                       "heldout_chars": acc}
    os.makedirs(work, exist_ok=True)
    write_json(os.path.join(work, "train_paragraphs.json"), train)
    with open(os.path.join(out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n\n".join(ps) for ps in heldout) + "\n")
    info = {"source": f"Debian package {JANEAUSTENR_DEB} ({source})",
            "sha256_Rdata.rdb": sha256_file(os.path.join(data_dir, "Rdata.rdb")), "novels": stats}
    write_json(os.path.join(work, "corpus.json"), info)
    log("corpus:", json.dumps(info))


def train_text(work):
    """Novels joined by <|end_of_text|>, paragraphs by a blank line."""
    novels = read_json(os.path.join(work, "train_paragraphs.json"))
    return "<|end_of_text|>".join("\n\n".join(ps) for ps in novels)


# ----------------------------------------------------------------------------------------------
# 2. Tokenizer
# ----------------------------------------------------------------------------------------------
def tokenizer_dir(work):
    return os.path.join(work, "tokenizer")


def build_tokenizer(work):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    d = tokenizer_dir(work)
    os.makedirs(d, exist_ok=True)
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - len(SPECIALS), min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    novels = read_json(os.path.join(work, "train_paragraphs.json"))
    tok.train_from_iterator([p for ps in novels for p in ps], trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos = tok.token_to_id(SPECIALS[0])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single=f"{SPECIALS[0]} $A", pair=f"{SPECIALS[0]} $A {SPECIALS[0]}:1 $B:1",
                                      special_tokens=[(SPECIALS[0], bos)]),
    ])
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.save(os.path.join(d, "tokenizer.json"))
    added = {str(tok.token_to_id(s)): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                       "single_word": False, "special": True} for s in SPECIALS}
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "added_tokens_decoder": added,
        "bos_token": "<|begin_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": MODEL["max_position_embeddings"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    write_json(os.path.join(d, "special_tokens_map.json"), {
        "bos_token": {"content": "<|begin_of_text|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "eos_token": {"content": "<|eot_id|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
    })
    log("tokenizer: vocab", tok.get_vocab_size())


def special_ids(work):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tokenizer_dir(work), "tokenizer.json"))
    return {s: tok.token_to_id(s) for s in SPECIALS}


def encode_plain(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def chat_examples(tok, novels, ids):
    """User: the first sentence of a paragraph; assistant: the rest. One conversation per paragraph."""
    rng = random.Random(SEED + 1)
    convs = []
    for ps in novels:
        for p in ps:
            cut = p.find(". ")
            if cut < 20 or len(p) - cut < 40:
                continue
            user, assistant = p[:cut + 1], p[cut + 2:]
            text = (f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
                    f"<|start_header_id|>assistant<|end_header_id|>\n\n{assistant}<|eot_id|>")
            convs.append([ids["<|begin_of_text|>"]] + encode_plain(tok, text))
    rng.shuffle(convs)
    return convs


def make_batches(work):
    """Token stream of the training text and the chat conversations (cached in the work dir)."""
    import numpy as np
    from tokenizers import Tokenizer

    cache = os.path.join(work, "tokens.npz")
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=True)
        return z["stream"], list(z["convs"])
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir(work), "tokenizer.json"))
    stream = np.array(encode_plain(tok, train_text(work)), dtype=np.int64)
    convs = [np.array(c, dtype=np.int64) for c in
             chat_examples(tok, read_json(os.path.join(work, "train_paragraphs.json")), special_ids(work))]
    packed = np.empty(len(convs), dtype=object)
    packed[:] = convs
    np.savez(cache, stream=stream, convs=packed)
    return stream, convs


def model_config(ids):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=VOCAB, bos_token_id=ids["<|begin_of_text|>"],
                       eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]], attention_bias=False,
                       mlp_bias=False, initializer_range=0.02, **MODEL)


# ----------------------------------------------------------------------------------------------
# 3. Training
# ----------------------------------------------------------------------------------------------
def set_threads(n):
    import torch

    torch.set_num_threads(n)


def batch_rows(rng, stream, convs, bos, n):
    """n windows of CTX tokens: [BOS] + CTX-1 tokens from a random point of the text, or (10%)
    whole chat conversations packed from a random one on."""
    import numpy as np

    rows = []
    for _ in range(n):
        if rng.random() < CHAT_FRACTION:
            k = rng.randrange(len(convs))
            row = []
            while len(row) < CTX:
                row.extend(convs[k % len(convs)].tolist())
                k += 1
            rows.append(row[:CTX])
        else:
            s = rng.randrange(len(stream) - CTX)
            rows.append([bos] + stream[s:s + CTX - 1].tolist())
    return np.array(rows, dtype=np.int64)


def lr_at(step, steps):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, steps - WARMUP)
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1 + math.cos(math.pi * t))


def train(work, steps, threads):
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    set_threads(threads)
    torch.manual_seed(SEED)
    ids = special_ids(work)
    stream, convs = make_batches(work)
    log(f"train: {len(stream)} text tokens, {len(convs)} chat conversations")
    model = AutoModelForCausalLM.from_config(model_config(ids), dtype=torch.float32, attn_implementation="sdpa")
    nparams = sum(p.numel() for p in model.parameters())
    log(f"train: {nparams} parameters, {steps} steps of {BATCH}x{CTX} tokens")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    rng = random.Random(SEED)
    losses, t0 = [], time.time()
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps)
        x = torch.from_numpy(batch_rows(rng, stream, convs, ids["<|begin_of_text|>"], BATCH))
        # bf16 matmuls (autocast; master weights, optimizer and loss in float32): 3-5x faster on
        # CPUs with AVX512-BF16 or AMX, and the weights are shipped in bf16 anyway
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"step {step}/{steps} loss {np.mean(losses[-50:]):.3f} lr {lr_at(step, steps):.2e} "
                f"{(step + 1) * BATCH * CTX / el:.0f} tok/s, {el / 60:.1f} min")
    os.makedirs(os.path.join(work, "f32"), exist_ok=True)
    model.save_pretrained(os.path.join(work, "f32"))
    write_json(os.path.join(work, "train.json"), {
        "parameters": nparams, "steps": steps, "batch": BATCH, "ctx": CTX, "tokens_seen": steps * BATCH * CTX,
        "text_tokens": int(len(stream)), "chat_conversations": len(convs), "seconds": round(time.time() - t0),
        "threads": threads, "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:])),
        "loss_every_50": [round(float(np.mean(losses[i:i + 50])), 4) for i in range(0, steps, 50)]})


# ----------------------------------------------------------------------------------------------
# 4-5. Export BF16 and quantize to W8A8
# ----------------------------------------------------------------------------------------------
def copy_tokenizer(work, dst):
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(tokenizer_dir(work), f), os.path.join(dst, f))


def generation_config(ids):
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=ids["<|begin_of_text|>"],
                            eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]],
                            do_sample=True, temperature=0.7, top_p=0.9)


def export_bf16(work, out):
    import torch
    from transformers import AutoModelForCausalLM

    ids = special_ids(work)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(work, "f32"), dtype=torch.bfloat16)
    model.generation_config = generation_config(ids)
    d = os.path.join(out, "bf16")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    copy_tokenizer(work, d)
    log("export:", d)


def calibration_rows(work):
    import numpy as np

    stream, _ = make_batches(work)
    bos = special_ids(work)["<|begin_of_text|>"]
    rng = random.Random(SEED + 2)
    rows = []
    for _ in range(CALIB_SAMPLES):
        s = rng.randrange(len(stream) - CTX)
        rows.append([bos] + stream[s:s + CTX - 1].tolist())
    return np.array(rows).tolist()


def quantize(work, out, threads):
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    set_threads(threads)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(out, "bf16"), dtype=torch.bfloat16,
                                                 attn_implementation="eager")
    calib = calibration_rows(work)
    ds = Dataset.from_dict({"input_ids": calib, "attention_mask": [[1] * len(c) for c in calib]})
    recipe = QuantizationModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=CTX, num_calibration_samples=len(calib))
    d = os.path.join(out, "w8a8")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, save_compressed=True)
    copy_tokenizer(work, d)
    shutil.copyfile(os.path.join(out, "bf16", "generation_config.json"), os.path.join(d, "generation_config.json"))
    log("quantize:", d)


def sample(out, prompt="It was a fine morning, and Elizabeth", n=60):
    """Greedy continuation through transformers, for the log."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.join(out, "bf16"))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(out, "bf16"), dtype=torch.float32)
    x = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        y = model.generate(x, max_new_tokens=n, do_sample=False)
    return tok.decode(y[0, x.shape[1]:])


def versions():
    import compressed_tensors
    import llmcompressor
    import tokenizers
    import torch
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "compressed_tensors": compressed_tensors.__version__, "llmcompressor": llmcompressor.__version__,
            "tokenizers": tokenizers.__version__}


def write_words(work, out):
    """The lower-cased ASCII words that occur at least twice in the training text (the test's
    check that generated text is made of English words)."""
    import collections
    import re

    counts = collections.Counter(w.lower() for w in re.findall(r"[A-Za-z]+", train_text(work)))
    with open(os.path.join(out, "train_words.txt"), "w") as f:
        f.write("\n".join(sorted(w for w, c in counts.items() if c >= 2)) + "\n")


def write_log(work, out):
    write_words(work, out)
    files = {}
    for sub in ("bf16", "w8a8"):
        for f in sorted(os.listdir(os.path.join(out, sub))):
            p = os.path.join(out, sub, f)
            files[f"{sub}/{f}"] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
    for f in ("heldout.txt", "train_words.txt"):
        files[f] = {"bytes": os.path.getsize(os.path.join(out, f)), "sha256": sha256_file(os.path.join(out, f))}
    write_json(os.path.join(out, "train_log.json"), {
        "generator": "models/demo/train_demo_model.py", "seed": SEED, "versions": versions(),
        "corpus": read_json(os.path.join(work, "corpus.json")), "model": MODEL, "vocab": VOCAB,
        "training": read_json(os.path.join(work, "train.json")),
        "greedy_sample_bf16": sample(out), "files": files})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="where bf16/, w8a8/ and heldout.txt go (default: models/demo)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sparq_demo_work"))
    ap.add_argument("--stage", default="all", choices=["all", "corpus", "tokenizer", "train", "export", "quantize",
                                                       "log"])
    ap.add_argument("--steps", type=int, default=640)
    # one thread: on a machine shared with other work it trains faster than two (no waiting at
    # OpenMP barriers for a descheduled thread), and the float sums keep one order
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    out, work = os.path.abspath(a.out), os.path.abspath(a.work)
    os.makedirs(out, exist_ok=True)
    stages = ["corpus", "tokenizer", "train", "export", "quantize", "log"] if a.stage == "all" else [a.stage]
    for s in stages:
        t = time.time()
        if s == "corpus":
            build_corpus(work, out)
        elif s == "tokenizer":
            build_tokenizer(work)
            if os.path.exists(os.path.join(work, "tokens.npz")):
                os.remove(os.path.join(work, "tokens.npz"))
        elif s == "train":
            train(work, a.steps, a.threads)
        elif s == "export":
            export_bf16(work, out)
        elif s == "quantize":
            quantize(work, out, a.threads)
        elif s == "log":
            write_log(work, out)
        log(f"stage {s} done in {time.time() - t:.0f}s")


if __name__ == "__main__":
    main()
