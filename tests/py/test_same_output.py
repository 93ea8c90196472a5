"""Same command, same output: an FP8 model's perplexity and greedy text are byte-identical from one
run to the next while another process keeps a core busy, so no choice that changes numbers depends
on timing (the FP8 prefill GEMM is chosen by CPU features or SPARQ_FP8_GEMM); `sparq devices`
reports the choice and an unknown setting is refused by name."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, run_sparq

HAS_AVX512_BF16 = "avx512_bf16" in Path("/proc/cpuinfo").read_text()


@pytest.fixture(scope="module")
def fp8_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp8") / "llama-fp8-dynamic.sparq"
    run_sparq("convert", FIXTURES / "llama-fp8-dynamic", "-o", out)
    return out


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    t = tmp_path_factory.mktemp("text") / "text.txt"
    t.write_text((REPO / "models" / "demo" / "heldout.txt").read_text()[:3000])
    return t


@pytest.fixture
def busy_core():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    spin.kill()
    spin.wait()


def outputs(model, text, env):
    # 64-token windows: prefill steps of 64 rows take the FP8 GEMM path (from 12 rows on).
    ppl = json.loads(run_sparq("perplexity", "-m", model, "-f", text, "--ctx", "64", "--threads", "2", "--json",
                               env=env).stdout)
    ppl.pop("seconds")  # wall time, the one field that may differ
    gen = run_sparq("generate", "-m", model, "-p", "It was a fine morning, and", "-n", "24", "--temp", "0",
                    "--threads", "2", env=env)
    return json.dumps(ppl, sort_keys=True), gen.stdout


@pytest.mark.parametrize("setting", [None, "f32", pytest.param("bf16", marks=pytest.mark.skipif(
    not HAS_AVX512_BF16, reason="this CPU has no AVX512-BF16"))])
def test_same_command_prints_the_same_bytes_under_load(fp8_model, text, busy_core, setting):
    env = dict(os.environ)
    env.pop("SPARQ_FP8_GEMM", None)
    if setting:
        env["SPARQ_FP8_GEMM"] = setting
    first = outputs(fp8_model, text, env)
    for _ in range(2):
        assert outputs(fp8_model, text, env) == first


def test_devices_reports_the_fp8_gemm_and_refuses_an_unknown_setting(fp8_model):
    env = dict(os.environ, SPARQ_FP8_GEMM="f32")
    assert "FP8 prefill GEMM: f32 (SPARQ_FP8_GEMM=f32)" in run_sparq("devices", env=env).stdout
    env.pop("SPARQ_FP8_GEMM")
    default = "BF16 (AVX512-BF16)" if HAS_AVX512_BF16 else "f32 (no AVX512-BF16)"
    assert f"FP8 prefill GEMM: {default}" in run_sparq("devices", env=env).stdout
    env["SPARQ_FP8_GEMM"] = "fastest"
    r = run_sparq("generate", "-m", fp8_model, "-p", "Hello", "-n", "2", env=env, check=False)
    assert r.returncode != 0 and 'SPARQ_FP8_GEMM="fastest" is not a choice (bf16 or f32)' in r.stderr, r.stderr
