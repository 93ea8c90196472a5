"""Speculative decoding through the CLI and the server on the demo model: greedy output with
prompt lookup or a draft model is the output of plain decoding, id for id; guesses are counted and
some are kept; the flags are checked with messages that name them."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, run_sparq
from server_util import demo_model, metric, parse_metrics, serve  # noqa: F401 (fixture)

DEMO = REPO / "models" / "demo"
HELDOUT = (DEMO / "heldout.txt").read_text(encoding="utf-8")
# Repeats itself, so prompt lookup finds what to copy.
REPETITIVE = ("Mr. Darcy said to Elizabeth that he was sorry. Mr. Darcy said to Elizabeth that he was glad. "
              "Mr. Darcy said to Elizabeth that he was")


@pytest.fixture(scope="module")
def demo(demo_models):
    return demo_models


def generate(model, prompt, *flags, n=48):
    r = run_sparq("generate", "-m", model, "-p", prompt, "-n", n, "--ignore-eos", "--threads", "2", "--json", *flags)
    return json.loads(r.stdout)


PROMPTS = [HELDOUT[1000:1400], HELDOUT[50000:50300], REPETITIVE]


@pytest.mark.parametrize("prompt", range(len(PROMPTS)))
def test_prompt_lookup_and_draft_model_keep_greedy_output(demo, prompt):
    text = PROMPTS[prompt]
    plain = generate(demo["bf16"], text)
    assert "speculation" not in plain
    for flags in (["--prompt-lookup"], ["--prompt-lookup", "--draft-tokens", "8", "--lookup-ngram", "2"],
                  ["--draft", demo["w8a8"], "--draft-tokens", "3"]):
        spec = generate(demo["bf16"], text, *map(str, flags))
        assert spec["ids"] == plain["ids"], flags
        assert spec["text"] == plain["text"]
        s = spec["speculation"]
        assert 0 <= s["accepted_tokens"] <= s["drafted_tokens"]
        if "--draft" in flags:
            # The draft is the same model quantized: it nearly always agrees, so steps are saved.
            assert s["accepted_tokens"] > 0.5 * s["drafted_tokens"] > 0
            assert s["steps"] < len(plain["ids"])


def test_prompt_lookup_keeps_guesses_on_repetitive_text(demo):
    s = generate(demo["bf16"], REPETITIVE, "--prompt-lookup", n=64)["speculation"]
    assert s["accepted_tokens"] > 0, s


def test_sampled_speculation_is_reproducible(demo):
    flags = ("--temp", "0.9", "--seed", "5", "--prompt-lookup")
    a = generate(demo["bf16"], REPETITIVE, *flags)
    b = generate(demo["bf16"], REPETITIVE, *flags)
    assert a["ids"] == b["ids"] and len(a["ids"]) == 48


def test_chat_with_speculation_answers_as_without(demo):
    script = "Who is Mr. Darcy?\nAnd Elizabeth?\n"
    args = ("chat", "-m", demo["bf16"], "-n", "24", "--threads", "2", "--temp", "0")
    plain = run_sparq(*args, input=script)
    spec = run_sparq(*args, "--prompt-lookup", input=script)
    assert spec.stdout == plain.stdout and plain.stdout.strip()


@pytest.mark.parametrize("args,message", [
    (["--draft-tokens", "0", "--prompt-lookup"], "--draft-tokens"),
    (["--draft-tokens", "33", "--prompt-lookup"], "--draft-tokens"),
    (["--lookup-ngram", "0", "--prompt-lookup"], "--lookup-ngram"),
    (["--prompt-lookup", "--draft", "MODEL"], "excludes"),
    (["--draft", "/nonexistent.sparq"], "--draft"),
])
def test_speculation_flags_are_checked(demo, args, message):
    args = [str(demo["w8a8"]) if a == "MODEL" else a for a in args]
    r = run_sparq("generate", "-m", demo["bf16"], "-p", "Hello", "-n", "2", *args, check=False)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_draft_with_another_tokenizer_is_refused(demo, tmp_path):
    other = tmp_path / "llama.sparq"
    run_sparq("convert", REPO / "tests" / "fixtures" / "llama-bf16", "-o", other, "-q")
    r = run_sparq("generate", "-m", demo["bf16"], "-p", "Hello", "-n", "2", "--draft", other, check=False)
    assert r.returncode != 0 and "same tokenizer" in r.stderr, r.stderr


def test_server_with_prompt_lookup_serves_plain_greedy_output(demo_model):  # noqa: F811
    prompts = [PROMPTS[0], REPETITIVE, PROMPTS[1], "It was"]
    body = lambda p: {"prompt": p, "max_tokens": 24, "temperature": 0, "ignore_eos": True}  # noqa: E731
    with serve(demo_model, "--parallel", "4") as plain:
        want = [plain.post("/v1/completions", body(p)).json()["choices"][0]["text"] for p in prompts]
    with serve(demo_model, "--parallel", "4", "--prompt-lookup", "--draft-tokens", "4") as spec:
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda p: spec.post("/v1/completions", body(p)).json()["choices"][0]["text"], prompts))
        samples = parse_metrics(spec.metrics())
    assert got == want
    drafted = metric(samples, "sparq:spec_decode_draft_tokens_total")
    accepted = metric(samples, "vllm:spec_decode_num_accepted_tokens_total")
    assert drafted > 0 and 0 < accepted <= drafted
