"""`sparq tokenize` / `sparq detokenize` on the real tokenizers: every shared reference case
(shared/data/tokenizer-cases) through the CLI, JSON lines in and out, plus error handling."""
import json
import subprocess

import pytest

from conftest import REPO, sparq_bin

SHARED = REPO.parent / "shared" / "data"


def cases(name):
    path = SHARED / "tokenizer-cases" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(args, stdin):
    return subprocess.run([sparq_bin(), *args], input=stdin.encode("utf-8"), capture_output=True)


@pytest.mark.parametrize("name", ["gemma2", "llama3_1"])
@pytest.mark.parametrize("special", [False, True], ids=["plain", "special"])
def test_tokenize_matches_reference(name, special):
    cs = cases(name)
    stdin = "".join(json.dumps({"text": c["text"]}) + "\n" for c in cs)
    args = ["tokenize", "--tokenizer", str(SHARED / "tokenizers" / name)] + (["--special"] if special else [])
    proc = run(args, stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert len(out) == len(cs)
    for c, o in zip(cs, out):
        assert o["ids"] == (c["ids_with_special"] if special else c["ids"]), c["name"]


@pytest.mark.parametrize("name", ["gemma2", "llama3_1"])
@pytest.mark.parametrize("skip", [False, True], ids=["keep", "skip"])
def test_detokenize_matches_reference(name, skip):
    cs = cases(name)
    stdin = "".join(json.dumps({"ids": c["ids"]}) + "\n" for c in cs)
    args = ["detokenize", "--tokenizer", str(SHARED / "tokenizers" / name / "tokenizer.json")]
    proc = run(args + (["--skip-special"] if skip else []), stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    for c, o in zip(cs, out):
        assert o["text"] == (c["decoded_skip_special"] if skip else c["decoded"]), c["name"]


def test_plain_special_keeps_special_text_plain():
    tok = str(SHARED / "tokenizers" / "llama3_1")
    parsed = json.loads(run(["tokenize", "--tokenizer", tok], '{"text": "a<|eot_id|>"}\n').stdout)
    plain = json.loads(run(["tokenize", "--tokenizer", tok, "--plain-special"], '{"text": "a<|eot_id|>"}\n').stdout)
    assert 128009 in parsed["ids"] and 128009 not in plain["ids"]


def test_bad_input_is_a_clear_error():
    tok = str(SHARED / "tokenizers" / "gemma2")
    proc = run(["tokenize", "--tokenizer", tok], '{"text": "ok"}\nnot json\n')
    assert proc.returncode == 1 and "line 2" in proc.stderr.decode()
    proc = run(["detokenize", "--tokenizer", tok], '{"ids": [1, 99999999]}\n')
    assert proc.returncode == 1 and "outside the vocabulary" in proc.stderr.decode()
    proc = run(["tokenize"], '{"text": "x"}\n')
    assert proc.returncode == 1 and "--tokenizer" in proc.stderr.decode()


def test_model_file_source_matches_directory(tmp_path):
    """-m FILE.sparq uses the tokenizer files and chat template embedded by `sparq convert`."""
    from conftest import fixture_dirs
    dirs = [d for d in fixture_dirs() if (d / "tokenizer_config.json").exists()]
    if not dirs:
        pytest.skip("no converted-model fixtures under tests/fixtures")
    # Any fixture that converts will do (some fixtures test conversion errors): prefer plain bf16.
    dirs.sort(key=lambda d: "bf16" not in d.name)
    model = tmp_path / "m.sparq"
    for src in dirs:
        conv = subprocess.run([sparq_bin(), "convert", str(src), "-o", str(model), "-q"], capture_output=True, text=True)
        if conv.returncode == 0:
            break
    else:
        pytest.skip("no fixture converts with this build")
    text = "".join(json.dumps({"text": t}) + "\n" for t in ["Hello world", "  spaces\n\nnewlines", "日本語 🍕"])
    a = run(["tokenize", "-m", str(model), "--special"], text)
    b = run(["tokenize", "--tokenizer", str(src), "--special"], text)
    assert a.returncode == 0 and a.stdout == b.stdout, a.stderr.decode()
    msgs = tmp_path / "msgs.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    a = subprocess.run([sparq_bin(), "template", "-m", str(model), "--messages", str(msgs)], capture_output=True)
    b = subprocess.run([sparq_bin(), "template", "--tokenizer", str(src), "--messages", str(msgs)], capture_output=True)
    assert a.returncode == b.returncode and a.stdout == b.stdout
