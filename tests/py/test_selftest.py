"""sparq selftest / compare / convert --reference / serve --selftest, end to end on the fixtures.

Every fixture's transformers reference (tests/fixtures/*/reference, exported by
tests/fixtures/export_selftest_reference.py) is embedded and must pass on the CPU backend; a
reference made by the CPU backend itself must match bit for bit; a deliberately faulty backend
(test-only `cpu:fault=attention`) must fail selftest and compare; bad references are refused
before anything is written."""
import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, REPO, run_sparq
from server_util import Server

EXPORT = REPO / "tests" / "fixtures" / "export_selftest_reference.py"
REFERENCE_FIXTURES = sorted(p.parent.parent.name for p in FIXTURES.glob("*/reference/outputs.json"))


def export_reference(fixture, out):
    subprocess.run([sys.executable, str(EXPORT), str(FIXTURES / fixture), "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def w8a8(tmp_path_factory):
    """gemma2-w8a8-int8 converted with its transformers reference."""
    d = tmp_path_factory.mktemp("selftest")
    model = d / "gemma2-w8a8.sparq"
    run_sparq("convert", FIXTURES / "gemma2-w8a8-int8", "-o", model, "-q",
              "--reference", export_reference("gemma2-w8a8-int8", d / "ref.json"))
    return model


@pytest.mark.parametrize("fixture", REFERENCE_FIXTURES)
def test_every_fixture_passes_its_transformers_reference(fixture, tmp_path):
    model = tmp_path / "m.sparq"
    out = run_sparq("convert", FIXTURES / fixture, "-o", model, "--reference",
                    export_reference(fixture, tmp_path / "ref.json"))
    assert "embedded a self-test reference from transformers: 3 prompts" in out.stdout
    report = json.loads(run_sparq("selftest", model, "--json").stdout)
    assert report["passed"], report
    assert report["reference"]["producer"] == "transformers"
    assert all(p["greedy_agreed"] > 0 for p in report["prompts"])  # compared at least to a first near-tie
    assert all(p["top1_mismatches"] == 0 for p in report["prompts"])


def test_cpu_reference_matches_bit_for_bit(tmp_path):
    model = tmp_path / "m.sparq"
    out = run_sparq("convert", FIXTURES / "llama-2of4-fp8", "-o", model, "--reference", "cpu")
    assert "self-test reference from sparq-cpu" in out.stdout
    info = run_sparq("info", model).stdout
    assert "self-test      sparq-cpu" in info
    report = json.loads(run_sparq("selftest", model, "--json").stdout)
    assert report["passed"] and report["max_rel_error"] == 0
    # Another kernel path on the same machine agrees within the tolerance too.
    assert run_sparq("selftest", model, "--backend", "cpu:threads=1,onednn=off").returncode == 0


def test_selftest_text_report(w8a8):
    out = run_sparq("selftest", w8a8).stdout
    assert "prompt 2 (42 tokens): top-1 42/42" in out
    assert "PASSED on cpu" in out


def test_a_faulty_backend_fails_selftest(w8a8, monkeypatch):
    refused = run_sparq("selftest", w8a8, "--backend", "cpu:fault=attention", check=False)
    assert refused.returncode != 0 and "SPARQ_TEST_FAULTS=1" in refused.stderr
    monkeypatch.setenv("SPARQ_TEST_FAULTS", "1")
    bad = run_sparq("selftest", w8a8, "--backend", "cpu:fault=attention", check=False)
    assert bad.returncode == 1, bad.stderr
    assert "FAILED on cpu" in bad.stdout
    assert "of the row's largest |logit| (tolerance 2%)" in bad.stderr
    assert "sparq: self-test failed" in bad.stderr and "sparq info --check" in bad.stderr


def test_a_file_without_a_reference_says_so(tmp_path):
    model = tmp_path / "plain.sparq"
    run_sparq("convert", FIXTURES / "llama-bf16", "-o", model, "-q")
    r = run_sparq("selftest", model, check=False)
    assert r.returncode == 3
    assert "carries no self-test reference" in r.stderr and "--reference" in r.stderr
    assert "self-test      none" in run_sparq("info", model).stdout


def test_bad_references_are_refused_and_nothing_is_written(tmp_path):
    model = tmp_path / "m.sparq"
    ref = export_reference("gemma2-w8a8-int8", tmp_path / "ref.json")

    def refused(reference, fixture="gemma2-w8a8-int8"):
        r = run_sparq("convert", FIXTURES / fixture, "-o", model, "-q", "--reference", reference, check=False)
        assert r.returncode != 0
        assert not model.exists() and not list(tmp_path.glob("*.partial-*"))
        return r.stderr

    assert "cannot read" in refused(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text('{"format": ')
    assert "broken.json" in refused(tmp_path / "broken.json")
    # Gemma's ids (vocab 1000) are not all tokens of the llama fixture (vocab 768).
    assert "is not a token of this model (vocab 768)" in refused(ref, "llama-w8a8-int8")
    block = json.loads(ref.read_text())
    block["prompts"][0]["positions"][3]["top_logits"].reverse()
    (tmp_path / "unsorted.json").write_text(json.dumps(block))
    assert "prompt 0 position 3: top_logits must be largest first" in refused(tmp_path / "unsorted.json")


def test_compare_backends(w8a8, monkeypatch):
    same = json.loads(run_sparq("compare", w8a8, "--backends", "cpu,cpu:threads=1,onednn=off", "-n", "8", "--json").stdout)
    assert same["ok"] and len(same["prompts"]) == 3  # the file's self-test prompts
    for p in same["prompts"]:
        (c,) = p["comparisons"]
        assert c["backend"] == "cpu:threads=1,onednn=off" and c["against"] == "cpu"
        assert len(c["position_rel_difference"]) == p["tokens"]
        assert c["divergence"] is None and c["tokens"] == 8
    text = run_sparq("compare", w8a8, "--backends", "cpu,cpu:onednn=off", "-p", "Hello there", "-n", "4").stdout
    assert 'prompt 0 "Hello there"' in text and "backends agree" in text

    monkeypatch.setenv("SPARQ_TEST_FAULTS", "1")
    bad = run_sparq("compare", w8a8, "--backends", "cpu,cpu:fault=attention", "-n", "8", check=False)
    assert bad.returncode == 1
    assert "<< beyond tolerance" in bad.stdout and "backends DISAGREE" in bad.stdout

    one = run_sparq("compare", w8a8, "--backends", "cpu", check=False)
    assert one.returncode != 0 and "at least two backends" in one.stderr
    unknown = run_sparq("compare", w8a8, "--backends", "cpu,metal", check=False)
    assert unknown.returncode != 0 and 'unknown backend "metal"' in unknown.stderr


def test_serve_reports_the_selftest_at_health(w8a8, monkeypatch):
    s = Server(w8a8, "--selftest")
    try:
        h = s.get("/health")
        assert h.status_code == 200
        body = h.json()
        assert body["status"] == "ok" and body["selftest"]["passed"] and body["selftest"]["backend"] == "cpu"
        assert "sparq serve: self-test PASSED" in s.log
    finally:
        assert s.stop() == 0

    monkeypatch.setenv("SPARQ_TEST_FAULTS", "1")
    s = Server(w8a8, "--selftest", "--backend", "cpu:fault=attention", ready_status=503)
    try:
        h = s.get("/health")
        assert h.status_code == 503
        body = h.json()
        assert body["status"] == "selftest_failed" and not body["selftest"]["passed"] and body["selftest"]["problems"]
        r = s.post("/v1/completions", {"prompt": "Hello", "max_tokens": 2})
        assert r.status_code == 503 and "self-test" in r.json()["error"]["message"]
    finally:
        assert s.stop() == 1  # stopped, and says it never served


def test_serve_selftest_needs_a_reference(tmp_path):
    model = tmp_path / "plain.sparq"
    run_sparq("convert", FIXTURES / "llama-bf16", "-o", model, "-q")
    r = subprocess.run([run_sparq.__globals__["sparq_bin"](), "serve", str(model), "--port", "0", "--selftest"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--selftest" in r.stderr and "carries no self-test reference" in r.stderr
