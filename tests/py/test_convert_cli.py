"""End-to-end tests of `sparq convert` and `sparq info` on the committed fixtures and on broken input."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (fixture_dirs, read_safetensors, run_sparq, sparq_bin, split_tensors, write_safetensors)


@pytest.mark.parametrize("fixture", fixture_dirs(), ids=lambda p: p.name)
def test_every_fixture_converts_and_verifies(fixture, tmp_path):
    out = tmp_path / "model.sparq"
    proc = run_sparq("convert", fixture, "-o", out, "--verify")
    assert "verified" in proc.stdout
    info = run_sparq("info", out, "--check").stdout
    assert "checksums: all" in info
    meta = json.loads(run_sparq("info", out, "--json").stdout)["metadata"]
    config = json.loads((fixture / "config.json").read_text())
    assert meta["config"] == config
    # Every linear recorded with a scheme that matches the checkpoint's quantization.
    q = config.get("quantization_config")
    for scheme in meta["linears"].values():
        if q and scheme["weight_strategy"] != "none":
            assert scheme["weight_dtype"] in ("I8", "F8_E4M3", "I4")
    sparsity = (q or {}).get("sparsity_config") or {}
    # 2:4 fixtures are stored compressed whether or not sparsity_config declares the pattern.
    if sparsity.get("sparsity_structure") == "2:4" or "2of4" in fixture.name:
        assert any(s["sparse24"] for s in meta["linears"].values())
    assert meta["tokenizer"]["files"], "the tokenizer must be embedded"


def test_info_prints_the_tensor_table(any_fixture, tmp_path):
    out = tmp_path / "m.sparq"
    run_sparq("convert", any_fixture, "-o", out, "-q")
    info = run_sparq("info", out).stdout
    for word in ("architecture", "linears", "tokenizer", "chat template", "model.embed_tokens.weight", "row_major"):
        assert word in info


def test_sharded_checkpoint_with_scales_in_another_shard(tmp_path):
    quantized = [d for d in fixture_dirs() if "w8a8" in d.name]
    if not quantized:
        pytest.skip("no w8a8 fixture")
    src = quantized[0]
    dst = tmp_path / "sharded"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "reference"))
    tensors = split_tensors(src / "model.safetensors")
    # Scales in shard 2, everything else in shard 1: a weight and its scale live apart.
    first = [t for t in tensors if not t[0].endswith("weight_scale")]
    second = [t for t in tensors if t[0].endswith("weight_scale")]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    write_safetensors(dst / names[0], first)
    write_safetensors(dst / names[1], second)
    weight_map = {t[0]: names[0] for t in first} | {t[0]: names[1] for t in second}
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    a, b = tmp_path / "a.sparq", tmp_path / "b.sparq"
    run_sparq("convert", src, "-o", a, "-q")
    run_sparq("convert", dst, "-o", b, "-q", "--verify")
    ta = json.loads(run_sparq("info", a, "--json").stdout)["tensors"]
    tb = json.loads(run_sparq("info", b, "--json").stdout)["tensors"]
    assert ta == tb


def _broken_copy(src, tmp_path, edit_config=None):
    dst = tmp_path / "broken"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("reference"))
    if edit_config:
        config = json.loads((dst / "config.json").read_text())
        edit_config(config)
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def _assert_refused(src, out, *needles):
    proc = run_sparq("convert", src, "-o", out, check=False)
    assert proc.returncode != 0
    for n in needles:
        assert n in proc.stderr, proc.stderr
    assert not out.exists()
    assert not list(out.parent.glob(out.name + ".partial*")), "temporary output left behind"


def test_missing_shard_is_named(any_fixture, tmp_path):
    dst = _broken_copy(any_fixture, tmp_path)
    tensors = split_tensors(dst / "model.safetensors")
    (dst / "model.safetensors").unlink()
    write_safetensors(dst / "model-00001-of-00002.safetensors", tensors)
    weight_map = {t[0]: "model-00001-of-00002.safetensors" for t in tensors}
    weight_map["model.norm.weight"] = "model-00002-of-00002.safetensors"
    (dst / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _assert_refused(dst, tmp_path / "out.sparq", "missing shard model-00002-of-00002.safetensors")


@pytest.mark.parametrize("fmt", ["marlin-24", "nvfp4-pack-quantized", "mxfp4-pack-quantized"])
def test_unknown_format_names_the_scheme_and_tensor(tmp_path, fmt):
    quantized = [d for d in fixture_dirs() if "w8a8" in d.name]
    if not quantized:
        pytest.skip("no w8a8 fixture")
    def set_format(c):
        c["quantization_config"]["format"] = fmt
        for g in c["quantization_config"]["config_groups"].values():
            if "format" in g:
                g["format"] = fmt
    dst = _broken_copy(quantized[0], tmp_path, set_format)
    _assert_refused(dst, tmp_path / "out.sparq", fmt, ".weight")


def test_conflicting_formats_are_refused(tmp_path):
    quantized = [d for d in fixture_dirs() if "w8a8" in d.name]
    if not quantized:
        pytest.skip("no w8a8 fixture")

    def conflict(c):
        c["quantization_config"]["format"] = "float-quantized"
        for g in c["quantization_config"]["config_groups"].values():
            g["format"] = "int-quantized"
    dst = _broken_copy(quantized[0], tmp_path, conflict)
    _assert_refused(dst, tmp_path / "out.sparq", "conflicts", ".weight")


def test_unsupported_strategy_is_named(tmp_path):
    quantized = [d for d in fixture_dirs() if "fp8-dynamic" in d.name]
    if not quantized:
        pytest.skip("no fp8 fixture")

    def to_block(c):
        for g in c["quantization_config"]["config_groups"].values():
            g["weights"]["strategy"] = "block"
    dst = _broken_copy(quantized[0], tmp_path, to_block)
    _assert_refused(dst, tmp_path / "out.sparq", "block", ".weight")


def test_truncated_safetensors_is_refused(any_fixture, tmp_path):
    dst = _broken_copy(any_fixture, tmp_path)
    st = dst / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])
    _assert_refused(dst, tmp_path / "out.sparq", "model.safetensors")


def test_wrong_dtype_size_is_refused(any_fixture, tmp_path):
    dst = _broken_copy(any_fixture, tmp_path)
    st = dst / "model.safetensors"
    header, data = read_safetensors(st)
    name = next(k for k in header if k != "__metadata__" and header[k]["dtype"] == "BF16")
    header[name]["dtype"] = "F32"  # same bytes, twice the element size
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    st.write_bytes(len(text).to_bytes(8, "little") + text + data)
    _assert_refused(dst, tmp_path / "out.sparq", name)


def test_missing_tokenizer_is_refused(any_fixture, tmp_path):
    dst = _broken_copy(any_fixture, tmp_path)
    for f in ("tokenizer.json", "tokenizer.model"):
        (dst / f).unlink(missing_ok=True)
    _assert_refused(dst, tmp_path / "out.sparq", "tokenizer")


def test_corrupted_model_file_is_refused(any_fixture, tmp_path):
    out = tmp_path / "m.sparq"
    run_sparq("convert", any_fixture, "-o", out, "-q")
    raw = bytearray(out.read_bytes())
    tensor_byte = bytearray(raw)
    tensor_byte[4096 + 17] ^= 0x20
    bad = tmp_path / "bad.sparq"
    bad.write_bytes(tensor_byte)
    proc = run_sparq("info", bad, "--check", check=False)
    assert proc.returncode != 0 and "checksum mismatch in tensor" in proc.stderr
    bad.write_bytes(raw[: len(raw) // 2])
    proc = run_sparq("info", bad, check=False)
    assert proc.returncode != 0 and "truncated" in proc.stderr
    tail = bytearray(raw)
    tail[-10] ^= 0x01  # inside the index JSON
    bad.write_bytes(tail)
    proc = run_sparq("info", bad, check=False)
    assert proc.returncode != 0 and "checksum" in proc.stderr


def _big_dense_llama(dst: Path):
    """A dense BF16 Llama-shaped checkpoint of ~300 MB (zeros), slow enough to interrupt."""
    dst.mkdir()
    hidden, inter, layers, vocab = 1024, 4096, 4, 32000
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": hidden, "intermediate_size": inter,
              "num_hidden_layers": layers, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": vocab,
              "tie_word_embeddings": False}
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "tokenizer.json").write_text("{}")
    tensors = [("model.embed_tokens.weight", "BF16", [vocab, hidden]), ("model.norm.weight", "BF16", [hidden]),
               ("lm_head.weight", "BF16", [vocab, hidden])]
    for l in range(layers):
        p = f"model.layers.{l}."
        tensors += [(p + "self_attn.q_proj.weight", "BF16", [hidden, hidden]),
                    (p + "self_attn.k_proj.weight", "BF16", [256, hidden]),
                    (p + "self_attn.v_proj.weight", "BF16", [256, hidden]),
                    (p + "self_attn.o_proj.weight", "BF16", [hidden, hidden]),
                    (p + "mlp.gate_proj.weight", "BF16", [inter, hidden]),
                    (p + "mlp.up_proj.weight", "BF16", [inter, hidden]),
                    (p + "mlp.down_proj.weight", "BF16", [hidden, inter]),
                    (p + "input_layernorm.weight", "BF16", [hidden]),
                    (p + "post_attention_layernorm.weight", "BF16", [hidden])]
    sized = [(n, d, s, bytes(2 * s[0] * (s[1] if len(s) > 1 else 1))) for n, d, s in tensors]
    write_safetensors(dst / "model.safetensors", sized)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "int", "term"])
def test_interrupted_conversion_leaves_no_valid_looking_file(tmp_path, sig):
    src = tmp_path / "big"
    _big_dense_llama(src)
    out = tmp_path / "out.sparq"
    out.write_bytes(b"previous contents")  # an existing file must survive an interrupted overwrite
    proc = subprocess.Popen([sparq_bin(), "convert", str(src), "-o", str(out), "-q"], stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline and not list(tmp_path.glob("out.sparq.partial*")):
        time.sleep(0.002)
    partials = list(tmp_path.glob("out.sparq.partial*"))
    assert partials, "conversion never started"
    time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=20)
    assert proc.returncode != 0, "conversion finished before it could be interrupted"
    assert out.read_bytes() == b"previous contents"
    left = list(tmp_path.glob("out.sparq.partial*"))
    if sig == signal.SIGKILL:
        # Nothing can clean up after SIGKILL; what is left must not pass for a model file.
        for p in left:
            r = run_sparq("info", p, check=False)
            assert r.returncode != 0 and "not a sparq model file" in r.stderr
    else:
        assert not left, "the temporary file must be removed on a signal"


def test_bad_flags_get_clear_errors(any_fixture, tmp_path):
    proc = run_sparq("convert", any_fixture, check=False)
    assert proc.returncode != 0 and "--output" in proc.stderr
    proc = run_sparq("convert", tmp_path / "nope", "-o", tmp_path / "x.sparq", check=False)
    assert proc.returncode != 0 and "nope" in proc.stderr
    proc = run_sparq("convert", any_fixture, "-o", tmp_path / "no" / "such" / "dir.sparq", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    proc = run_sparq("info", tmp_path / "missing.sparq", check=False)
    assert proc.returncode != 0 and "missing.sparq" in proc.stderr
    proc = run_sparq("info", any_fixture / "config.json", check=False)
    assert proc.returncode != 0 and "not a sparq model file" in proc.stderr
