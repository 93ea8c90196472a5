#!/usr/bin/env bash
# Two sparq builds side by side on the same model files, in one run on one machine: each
# configuration alternates A, B, A, B, ... REPS times, and the medians are printed as a Markdown
# table (prefill tok/s, decode tok/s, batched decode tok/s, peak RSS). For "no regression" checks
# of a change: build the old commit in a worktree, pass both binaries.
#
#   bench/before_after.sh OLD_SPARQ NEW_SPARQ MODEL.sparq [REPS] -- BENCH_ARGS...
#   bench/before_after.sh /work/before/build/sparq build/sparq gemma2.sparq 3 -- -p 128 -n 32 --threads 2
set -euo pipefail
if [[ $# -lt 5 || "${5:-}" != "--" && "${4:-}" != "--" ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
old=$1 new=$2 model=$3
shift 3
reps=3
if [[ "$1" != "--" ]]; then reps=$1; shift; fi
shift  # --
for bin in "$old" "$new"; do [[ -x "$bin" ]] || { echo "before_after: $bin is not an executable" >&2; exit 2; }; done
[[ -f "$model" ]] || { echo "before_after: no model file $model" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 0; r < reps; ++r)); do
  for side in old new; do
    bin=$old
    [[ $side == new ]] && bin=$new
    "$bin" bench "$model" "$@" --json > "$out/$side.$r.json"
  done
done
python3 - "$out" "$reps" "$model" "$*" <<'PY'
import json, statistics, sys, os
out, reps, model, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(side):
    return [json.load(open(os.path.join(out, f"{side}.{r}.json"))) for r in range(reps)]
def med(runs, *path):
    vals = []
    for j in runs:
        v = j
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
            if v is None: break
        if v is not None: vals.append(v)
    return statistics.median(vals) if vals else None
rows = []
old, new = load("old"), load("new")
sample = new[0]
keys = [k for k in sample if isinstance(sample[k], (int, float)) and not isinstance(sample[k], bool)
        and any(s in k for s in ("per_s", "rss", "seconds", "_s"))]
print(f"model `{os.path.basename(model)}`, `sparq bench {args}`, {reps} alternating runs each, medians\n")
print("| metric | before | after | after / before |")
print("|---|---:|---:|---:|")
for k in keys:
    a, b = med(old, k), med(new, k)
    if a is None or b is None: continue
    ratio = f"{b / a:.3f}" if a else "-"
    print(f"| {k} | {a:.4g} | {b:.4g} | {ratio} |")
if "concurrent_decode" in sample:
    for i, c in enumerate(sample["concurrent_decode"]):
        a = statistics.median([j["concurrent_decode"][i]["decode_tokens_per_s"] for j in old])
        b = statistics.median([j["concurrent_decode"][i]["decode_tokens_per_s"] for j in new])
        print(f"| decode tok/s at concurrency {c['sequences']} | {a:.4g} | {b:.4g} | {b / a:.3f} |")
PY
