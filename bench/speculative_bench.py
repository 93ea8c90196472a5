#!/usr/bin/env python3
"""Speculative decoding on real text: acceptance and decode speed of prompt lookup and of a draft
model against plain decoding, greedy, with the bundled demo model (models/demo, converted here).

Texts: windows of the demo's held-out text (never trained on), and two repetitive prompts of the
kind prompt lookup exists for (a code edit and a passage copied out again). For each method and
number of guesses k it reports the guesses kept, the tokens each decode step yields (1 + kept per
step) and decode tok/s, medians over --reps runs, and checks that every run's ids equal plain
decoding's. Usage:
  .venv/bin/python bench/speculative_bench.py [--sparq build/sparq] [--reps 3] [-n 96] [--threads 2]
"""
import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo"

CODE_EDIT = '''def total(items):
    result = 0
    for item in items:
        result = result + item.price
    return result

def total_weight(items):
    result = 0
    for item in items:
        result = result + item.weight
    return result

def total_count(items):
    result = 0
    for item in items:
'''


def texts():
    heldout = (DEMO / "heldout.txt").read_text(encoding="utf-8")
    out = {f"held-out {i}": heldout[start:start + 600] for i, start in enumerate((2000, 40000, 90000, 150000))}
    passage = heldout[60000:60500]
    out["code edit"] = CODE_EDIT
    out["copy a passage"] = passage + "\n\nThe same passage again:\n\n" + passage[:120]
    return out


def generate(sparq, model, prompt, n, threads, flags):
    r = subprocess.run([sparq, "generate", "-m", model, "-p", prompt, "-n", str(n), "--ignore-eos", "--threads",
                        str(threads), "--json", *flags], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sparq", default=str(REPO / "build" / "sparq"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the table here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spec-bench-"))
    models = {}
    for name in ("bf16", "w8a8"):
        models[name] = str(tmp / f"demo-{name}.sparq")
        subprocess.run([a.sparq, "convert", str(DEMO / name), "-o", models[name], "-q"], check=True)
    methods = [("plain", [])]
    for k in (2, 4, 8):
        methods.append((f"prompt lookup k={k}", ["--prompt-lookup", "--draft-tokens", str(k)]))
    for k in (2, 4, 8):
        methods.append((f"draft w8a8 k={k}", ["--draft", models["w8a8"], "--draft-tokens", str(k)]))
    rows = []
    print(f"target: demo bf16; draft: demo w8a8; {a.n} greedy tokens; {a.threads} threads; medians of {a.reps}")
    print(f"{'text':<16} {'method':<20} {'kept':>12} {'tok/step':>9} {'tok/s':>9} {'speed-up':>9}")
    for text_name, prompt in texts().items():
        base = None
        for method, flags in methods:
            speeds, result = [], None
            for _ in range(a.reps):
                result = generate(a.sparq, models["bf16"], prompt, a.n, a.threads, flags)
                speeds.append(result["timings"]["decode_tokens_per_s"])
            speed = statistics.median(speeds)
            if base is None:
                base, base_ids = speed, result["ids"]
            assert result["ids"] == base_ids, f"{method} changed the greedy output on {text_name}"
            s = result.get("speculation", {"drafted_tokens": 0, "accepted_tokens": 0, "steps": len(result["ids"])})
            decode_steps = max(1, s["steps"] - 1)  # the first token comes from the prefill step
            per_step = (len(result["ids"]) - 1) / decode_steps
            kept = f"{s['accepted_tokens']}/{s['drafted_tokens']}" if s["drafted_tokens"] else "-"
            rows.append({"text": text_name, "method": method, "drafted": s["drafted_tokens"],
                         "accepted": s["accepted_tokens"], "tokens_per_step": per_step, "decode_tokens_per_s": speed,
                         "speedup": speed / base})
            print(f"{text_name:<16} {method:<20} {kept:>12} {per_step:>9.2f} {speed:>9.0f} {speed / base:>8.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
