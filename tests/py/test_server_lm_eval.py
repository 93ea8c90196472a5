"""lm-evaluation-harness against `sparq serve`, as users run it: `lm_eval --model local-completions`
with the server's own tokenizer endpoints (tokenizer_backend=remote, no Hugging Face download).

Two small local tasks on the demo model:
  - a loglikelihood task (multiple choice with an empty context, so lm-eval scores each choice from
    the BOS token exactly as `sparq perplexity` scores a text): every choice's log-likelihood equals
    -(mean_nll * tokens_scored) of `sparq perplexity` on that text, and acc follows from them;
  - a generate_until task: every generation equals `sparq generate` greedy with the same stop.
The tolerance on log-likelihoods is 1e-3 nats per text: the server computes a choice inside a batch
with other requests and the perplexity run alone, so float sums in attention and the output head
are ordered differently (measured: at most 1e-6 on these texts; the INT8 matmuls are exact either way).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_sparq
from server_util import serve

import lm_eval  # noqa: F401  (a hard requirement: scripts/setup.sh installs it)

MC_DOCS = [
    {"choices": ["It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
                 "Fortune wife a of want in be must, single a that acknowledged universally truth a is it."], "label": 0},
    {"choices": ["She was the youngest of the two daughters of a most affectionate, indulgent father.",
                 "Daughters father she youngest indulgent was of two the affectionate most a of the."], "label": 0},
    {"choices": ["The family of Dashwood had long been settled in Sussex.",
                 "Sussex in settled been long had Dashwood of family the."], "label": 0},
    {"choices": ["Emma Woodhouse, handsome, clever, and rich.", "Rich and clever handsome Woodhouse Emma."], "label": 0},
]
GEN_DOCS = [{"prompt": "It was a fine morning, and"}, {"prompt": "Mr. Darcy said that"}, {"prompt": "Elizabeth went to the window"}]
MAX_GEN = 20


def write_tasks(d: Path):
    (d / "mc.jsonl").write_text("".join(json.dumps(x) + "\n" for x in MC_DOCS))
    (d / "gen.jsonl").write_text("".join(json.dumps(x) + "\n" for x in GEN_DOCS))
    (d / "sparq_demo_ll.yaml").write_text(textwrap.dedent(f"""\
        task: sparq_demo_ll
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {d / 'mc.jsonl'}
        test_split: test
        output_type: multiple_choice
        doc_to_text: ""
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: "{{{{label}}}}"
        target_delimiter: ""
        metric_list:
          - metric: acc
        """))
    (d / "sparq_demo_gen.yaml").write_text(textwrap.dedent(f"""\
        task: sparq_demo_gen
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {d / 'gen.jsonl'}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{{{prompt}}}}"
        doc_to_target: ""
        generation_kwargs:
          until: ["\\n\\n"]
          max_gen_toks: {MAX_GEN}
          do_sample: false
          temperature: 0
        metric_list:
          - metric: exact_match
        """))


def run_lm_eval(port, task, tasks_dir, out_dir, tokenized):
    model_args = (f"base_url=http://127.0.0.1:{port}/v1/completions,model=demo,tokenizer_backend=remote,"
                  f"num_concurrent=4,max_retries=1,tokenized_requests={tokenized},max_length=1024")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OPENAI_API_KEY="unused", HF_DATASETS_CACHE=str(out_dir / "hf-cache"))
    proc = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args", model_args,
                           "--tasks", task, "--include_path", str(tasks_dir), "--output_path", str(out_dir),
                           "--log_samples", "--batch_size", "1"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"lm_eval failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    samples = sorted(out_dir.rglob(f"samples_{task}_*.jsonl"))
    results = sorted(out_dir.rglob("results_*.json"))
    assert samples and results, f"lm_eval wrote no samples/results under {out_dir}"
    docs = [json.loads(line) for line in samples[-1].read_text().splitlines() if line.strip()]
    return sorted(docs, key=lambda s: s["doc_id"]), json.loads(results[-1].read_text())["results"][task]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmeval")
    model = d / "demo.sparq"
    run_sparq("convert", REPO / "models" / "demo" / "w8a8", "-o", model)
    tasks = d / "tasks"
    tasks.mkdir()
    write_tasks(tasks)
    with serve(model, "--served-model-name", "demo", "--parallel", "4") as server:
        yield server, model, d


def test_loglikelihood_task_matches_sparq_perplexity(served):
    server, model, d = served
    docs, result = run_lm_eval(server.port, "sparq_demo_ll", d / "tasks", d / "out-ll", tokenized=True)
    assert len(docs) == len(MC_DOCS)
    correct = 0
    for s in docs:
        doc = MC_DOCS[s["doc_id"]]
        got = [float(r[0][0]) if isinstance(r[0], list) else float(r[0]) for r in s["resps"]]
        want = []
        for i, text in enumerate(doc["choices"]):
            f = d / f"choice-{s['doc_id']}-{i}.txt"
            f.write_text(text)
            p = json.loads(run_sparq("perplexity", "-m", model, "-f", f, "--ctx", "1024", "--json").stdout)
            want.append(-p["mean_nll"] * p["tokens_scored"])
        for g, w in zip(got, want):
            assert abs(g - w) <= 1e-3, f"doc {s['doc_id']}: lm-eval {got} vs sparq perplexity {want}"
        correct += int(max(range(len(want)), key=lambda i: want[i]) == doc["label"])
    assert result["acc,none"] == pytest.approx(correct / len(MC_DOCS))


def test_generate_until_task_matches_sparq_generate(served):
    server, model, d = served
    docs, _ = run_lm_eval(server.port, "sparq_demo_gen", d / "tasks", d / "out-gen", tokenized=False)
    assert len(docs) == len(GEN_DOCS)
    for s in docs:
        prompt = GEN_DOCS[s["doc_id"]]["prompt"]
        got = s["resps"][0][0]
        want = json.loads(run_sparq("generate", "-m", model, "-p", prompt, "-n", MAX_GEN, "--stop", "\n\n", "--json").stdout)["text"]
        assert got == want, f"prompt {prompt!r}: lm-eval got {got!r}, sparq generate {want!r}"
