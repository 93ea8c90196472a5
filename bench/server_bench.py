#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers: sparq serve, llama.cpp's server (llama-cpp-python) and
vLLM's CPU server, one after the other on the same machine, or any running server given by URL.

For each concurrency level C, C client threads send streaming /v1/completions requests (temperature 0,
max_tokens M, ignore_eos where the server has it) until a number of requests or a duration is reached.
Prompts come from models/demo/heldout.txt, cut to a mix of token lengths with the server's own tokenizer
(tokenize, take N tokens, detokenize), and each request starts with its own serial number, so that no two
requests share a prefix (no prefix-cache hits, on any server). Reported per level: aggregate generated
tokens/s (all tokens over the wall time of the level), time to first token p50/p99, inter-token latency
p50, request latency p50, failures; each level is repeated R times and the medians are reported, as JSON
and as a markdown table.

Servers this script starts are started one at a time, never two at once, with the same thread count:
  sparq      `sparq serve FILE --parallel C --threads T --ctx X`, restarted for each C (it starts in ~1 s)
  llama.cpp  `python -m llama_cpp.server --model GGUF --n_threads T --n_threads_batch T --n_ctx X
             --interrupt_requests False [--logits_all False]` (llama-cpp-python[server]; one sequence at a
             time: concurrent requests wait for each other). The GGUF: bench/llama_cpp_bench.py make-gguf.
  vLLM       `python -m vllm.entrypoints.openai.api_server --model DIR --max-num-seqs max(C)
             --max-model-len X` with VLLM_CPU_OMP_THREADS_BIND=0-(T-1), VLLM_CPU_KVCACHE_SPACE and the
             LD_PRELOAD of shared/docs/PERFORMANCE.md; skipped with a message when vllm is not importable.

Examples:
  python bench/server_bench.py --sparq bench/out/gemma2-w8a8.sparq \\
      --llama-cpp bench/out/gemma-2-2b-q8_0-random.gguf --llama-python /tmp/bench-venv/bin/python \\
      --vllm bench/out/gemma-2-2b-it-w8a8 --vllm-python /tmp/vllm-venv/bin/python \\
      --concurrency 1 4 16 64 --max-tokens 128 --reps 3 --json-out bench/out/server-gemma.json
  python bench/server_bench.py --url http://127.0.0.1:8080 --concurrency 1 4 --duration 20
Only the Python standard library is needed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = REPO / "models" / "demo" / "heldout.txt"
OUT = HERE / "out"
LISTENING = re.compile(r"sparq serve: listening on http://([\d.]+):(\d+)")
# EOS ids of the random-weight GGUFs of bench/llama_cpp_bench.py (llama.cpp's server has no ignore_eos:
# the bench bans the EOS token with logit_bias instead).
GGUF_EOS = {"gemma-2-2b": 1, "llama-3.1-8b": 128009}


# ------------------------------------------------------------------------------------------ HTTP


def http_json(host, port, method, path, body=None, timeout=30.0, headers=None):
    """(status, parsed JSON or raw text) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, None if body is None else json.dumps(body), hdrs)
        r = conn.getresponse()
        raw = r.read().decode(errors="replace")
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw
    finally:
        conn.close()


def percentile(values, q):
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


@dataclass
class Target:
    """A server to load: where it is, how to tokenize with it, and what each request adds."""
    name: str
    host: str
    port: int
    model: str | None = None
    extra_body: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    pid: int | None = None

    def get(self, path, timeout=10.0):
        return http_json(self.host, self.port, "GET", path, timeout=timeout, headers=self.headers)

    def post(self, path, body, timeout=60.0):
        return http_json(self.host, self.port, "POST", path, body, timeout=timeout, headers=self.headers)

    def discover_model(self):
        status, body = self.get("/v1/models")
        if status == 200 and isinstance(body, dict) and body.get("data"):
            self.model = body["data"][0]["id"]

    def tokenize(self, text):
        """Token ids without special tokens, through whichever tokenize route the server has."""
        tries = [("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False}, "tokens"),
                 ("/extras/tokenize", {"input": text}, "tokens"),
                 ("/tokenize", {"input": text}, "tokens")]
        for path, body, key in tries:
            status, out = self.post(path, {k: v for k, v in body.items() if v is not None})
            if status == 200 and isinstance(out, dict) and key in out:
                return out[key], path
        return None, None

    def detokenize(self, ids, route):
        if route == "/extras/tokenize":
            # llama-cpp-python answers 500 when the ids end inside a UTF-8 character.
            status, out = self.post("/extras/detokenize", {"tokens": ids})
            return out["text"] if status == 200 and isinstance(out, dict) and "text" in out else None
        body = {"tokens": ids}
        if self.model:
            body["model"] = self.model
        status, out = self.post("/detokenize", body)
        if status == 200 and isinstance(out, dict):
            return out.get("prompt", out.get("text"))
        raise RuntimeError(f"{self.name}: /detokenize answered {status}: {str(out)[:200]}")


# --------------------------------------------------------------------------------------- prompts


def build_prompts(target: Target, lengths, per_length, log=print):
    """per_length prompts of each token length, cut from the corpus with the target's tokenizer.
    Without a tokenize route, ~4 characters per token (the lengths are then approximate)."""
    text = CORPUS.read_text(encoding="utf-8")[:120_000]
    ids, route = target.tokenize(text)
    prompts = []
    if ids is None:
        log(f"  {target.name}: no tokenize route, prompt lengths approximated as 4 characters per token")
        for L in lengths:
            for j in range(per_length):
                off = (j * 7919 + L * 31) % (len(text) - 4 * L)
                prompts.append((L, text[off:off + 4 * L]))
        return prompts
    maxlen = max(lengths)
    if len(ids) < maxlen + 1:
        raise RuntimeError(f"corpus tokenizes to {len(ids)} tokens, fewer than the longest prompt ({maxlen})")
    for L in lengths:
        for j in range(per_length):
            off = (j * 7919 + L * 31) % (len(ids) - L - 8)
            # A slice that cuts a character in two does not detokenize everywhere: move it along.
            for shift in range(8):
                piece = target.detokenize(ids[off + shift:off + shift + L], route)
                if piece is not None:
                    break
            if piece is None:
                raise RuntimeError(f"{target.name}: no slice of {L} tokens near offset {off} detokenizes")
            prompts.append((L, piece))
    return prompts


# -------------------------------------------------------------------------------------- requests


@dataclass
class Result:
    ok: bool = False
    status: int | None = None
    error: str | None = None
    cancelled: bool = False
    t_send: float = 0.0
    ttft: float | None = None
    e2e: float | None = None
    gaps: list = field(default_factory=list)
    tokens: int = 0
    prompt_tokens: int | None = None


class Client:
    """One keep-alive connection per client thread; reopened after an error or an early close."""

    def __init__(self, target: Target, timeout: float):
        self.target, self.timeout, self.conn = target, timeout, None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def completion(self, prompt, max_tokens, stream=True, close_after_tokens=None, extra=None):
        """One /v1/completions request. close_after_tokens=k closes the connection after k tokens
        (a client going away); the result is then cancelled, not failed."""
        t = self.target
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream}
        if t.model:
            body["model"] = t.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(t.extra_body)
        body.update(extra or {})
        res = Result(t_send=time.perf_counter())
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(t.host, t.port, timeout=self.timeout)
            self.conn.request("POST", "/v1/completions", json.dumps(body),
                              {"Content-Type": "application/json", **t.headers})
            resp = self.conn.getresponse()
            res.status = resp.status
            if resp.status != 200:
                res.error = f"HTTP {resp.status}: {resp.read()[:200].decode(errors='replace')}"
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return res
            if not stream:
                out = json.loads(resp.read())
                res.e2e = res.ttft = time.perf_counter() - res.t_send
                usage = out.get("usage") or {}
                res.tokens = usage.get("completion_tokens", 0)
                res.prompt_tokens = usage.get("prompt_tokens")
                res.ok = True
                return res
            done, last, usage_tokens = False, None, None
            while True:
                raw = resp.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue  # blank separators, `: ping` comments
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    resp.read()  # the end of the chunked body, so that the connection can be reused
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    res.error = f"error event: {str(chunk['error'])[:200]}"
                    self.close()
                    return res
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                    res.prompt_tokens = chunk["usage"].get("prompt_tokens")
                if any(c.get("text") for c in chunk.get("choices") or []):
                    now = time.perf_counter()
                    if last is None:
                        res.ttft = now - res.t_send
                    else:
                        res.gaps.append(now - last)
                    last = now
                    res.tokens += 1
                    if close_after_tokens is not None and res.tokens >= close_after_tokens:
                        res.cancelled = True
                        self.close()
                        res.e2e = time.perf_counter() - res.t_send
                        return res
            res.e2e = time.perf_counter() - res.t_send
            if usage_tokens is not None:
                res.tokens = usage_tokens
            if done:
                res.ok = True
            else:
                res.error = "stream ended without data: [DONE]"
                self.close()
        except (OSError, http.client.HTTPException, ValueError) as e:
            res.error = f"{type(e).__name__}: {e}"
            res.e2e = time.perf_counter() - res.t_send
            self.close()
        return res


class Serial:
    """Request numbers unique across the whole session: every prompt starts with its own."""

    def __init__(self):
        self.n, self.lock = 0, threading.Lock()

    def next(self):
        with self.lock:
            self.n += 1
            return self.n


def run_level(target, concurrency, prompts, serial, max_tokens, requests=None, duration=None, timeout=600.0):
    """C client threads until `requests` requests were sent, or `duration` seconds passed (requests
    running then are finished and counted). Returns the metrics of the level."""
    results, lock = [], threading.Lock()
    sent = [0]
    t0 = time.perf_counter()
    deadline = None if duration is None else t0 + duration

    def worker():
        client = Client(target, timeout)
        try:
            while True:
                with lock:
                    if requests is not None and sent[0] >= requests:
                        return
                    if deadline is not None and time.perf_counter() >= deadline:
                        return
                    i = sent[0]
                    sent[0] += 1
                L, text = prompts[i % len(prompts)]
                r = client.completion(f"{serial.next()}. {text}", max_tokens)
                with lock:
                    results.append(r)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return summarize(results, wall, concurrency)


def summarize(results, wall, concurrency):
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok and not r.cancelled]
    gen = sum(r.tokens for r in ok)
    ttft = [r.ttft for r in ok if r.ttft is not None]
    gaps = [g for r in ok for g in r.gaps]
    e2e = [r.e2e for r in ok if r.e2e is not None]
    ptoks = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    errors = {}
    for r in failed:
        errors[r.error] = errors.get(r.error, 0) + 1
    ms = lambda x: None if x is None else round(1000 * x, 2)  # noqa: E731
    return dict(
        concurrency=concurrency, requests=len(results), ok=len(ok), failed=len(failed),
        wall_s=round(wall, 3), generated_tokens=gen,
        tokens_per_s=round(gen / wall, 2) if wall > 0 else None,
        requests_per_s=round(len(ok) / wall, 3) if wall > 0 else None,
        ttft_p50_ms=ms(percentile(ttft, 50)), ttft_p99_ms=ms(percentile(ttft, 99)),
        itl_p50_ms=ms(percentile(gaps, 50)), itl_p99_ms=ms(percentile(gaps, 99)),
        e2e_p50_s=None if not e2e else round(percentile(e2e, 50), 3),
        prompt_tokens_mean=None if not ptoks else round(statistics.mean(ptoks), 1),
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
    )


# ---------------------------------------------------------------------------------------- servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_tree_bytes(pid):
    """VmRSS of pid and all its descendants (vLLM runs its engine in child processes)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        total += vm_kib(p, "VmRSS") * 1024
    return total


def vm_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """A peer started by this script: its process, log file and Target."""

    def __init__(self, name, cmd, env=None, port=None, ready_path="/health", start_timeout=120.0,
                 extra_body=None, log_dir=OUT / "server_bench"):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name, self.cmd = name, [str(c) for c in cmd]
        self.log_path = log_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        self._log = open(self.log_path, "w")
        print(f"  starting {name}: {' '.join(self.cmd)}  (log: {self.log_path})", flush=True)
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + start_timeout
        host = "127.0.0.1"
        while port is None:  # sparq --port 0: the port is in its log
            m = LISTENING.search(self.log_path.read_text(errors="replace"))
            if m:
                host, port = m.group(1), int(m.group(2))
            else:
                self._check_alive(deadline)
                time.sleep(0.1)
        self.target = Target(name, host, port, extra_body=dict(extra_body or {}), pid=self.proc.pid)
        while True:
            self._check_alive(deadline)
            try:
                if self.target.get(ready_path, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        self.ready_s = time.perf_counter() - self.t_start
        self.target.discover_model()
        print(f"  {name} ready after {self.ready_s:.1f} s on port {port} (model id {self.target.model!r})", flush=True)

    def _check_alive(self, deadline):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log_path.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{self.name} not ready in time; see {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._log.close()


def python_has(python, module):
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


@dataclass
class Peer:
    """How to start one kind of server; `start(C)` gives a running Server."""
    name: str
    start: object
    restart_per_level: bool


def sparq_peer(args, levels):
    def start(c):
        cmd = [args.sparq_bin, "serve", args.sparq, "--host", "127.0.0.1", "--port", "0", "--threads", args.threads,
               "--parallel", c, "--ctx", args.ctx, *args.sparq_arg]
        return Server("sparq", cmd, extra_body={"ignore_eos": True}, start_timeout=args.start_timeout)
    return Peer("sparq", start, restart_per_level=True)


def llama_cpp_peer(args, levels):
    help_text = subprocess.run([args.llama_python, "-m", "llama_cpp.server", "--help"], capture_output=True,
                               text=True).stdout
    extra = {}
    eos = args.eos_id if args.eos_id is not None else GGUF_EOS.get(args.kind)
    if eos is not None and not args.allow_eos:
        extra["logit_bias"] = {str(eos): -100.0}

    def start(c):
        port = free_port()
        cmd = [args.llama_python, "-m", "llama_cpp.server", "--model", args.llama_cpp, "--host", "127.0.0.1",
               "--port", port, "--n_threads", args.threads, "--n_threads_batch", args.threads, "--n_ctx", args.ctx,
               "--n_batch", 512, "--interrupt_requests", "False", "--verbose", "False"]
        if "--logits_all" in help_text:
            cmd += ["--logits_all", "False"]  # its default computes the head for every prompt token
        cmd += args.llama_arg
        return Server("llama.cpp", cmd, port=port, ready_path="/v1/models", extra_body=extra,
                      start_timeout=args.start_timeout)
    return Peer("llama.cpp", start, restart_per_level=False)


def vllm_peer(args, levels):
    venv = Path(args.vllm_python).resolve().parent.parent
    preload = [p for p in ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", str(venv / "lib" / "libiomp5.so"))
               if Path(p).exists()]
    env = {"VLLM_CPU_OMP_THREADS_BIND": f"0-{int(args.threads) - 1}",
           "VLLM_CPU_KVCACHE_SPACE": str(args.vllm_kv_gib)}
    if preload:
        env["LD_PRELOAD"] = ":".join(preload + ([os.environ["LD_PRELOAD"]] if os.environ.get("LD_PRELOAD") else []))

    def start(c):
        port = free_port()
        cmd = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.vllm,
               "--host", "127.0.0.1", "--port", port, "--max-num-seqs", max(levels), "--max-model-len", args.ctx,
               *args.vllm_arg]
        return Server("vllm", cmd, env=env, port=port, extra_body={"ignore_eos": True},
                      start_timeout=max(args.start_timeout, 900))
    return Peer("vllm", start, restart_per_level=False)


# ------------------------------------------------------------------------------------------- main


def machine_info():
    info = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for key in ("Model name", "CPU family", "Model", "L2 cache", "L3 cache"):
            m = re.search(rf"^{key}:\s*(.+)$", out, re.M)
            if m:
                info[key] = m.group(1).strip()
    except OSError:
        pass
    return info


def markdown(summary):
    head = ("| server | C | requests ok / failed | gen tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | "
            "latency p50 s | prompt tok (mean) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for s in summary:
        f = lambda k: "-" if s.get(k) is None else f"{s[k]:g}"  # noqa: E731
        rows.append(f"| {s['server']} | {s['concurrency']} | {s['ok']} / {s['failed']} | {f('tokens_per_s')} | "
                    f"{f('ttft_p50_ms')} | {f('ttft_p99_ms')} | {f('itl_p50_ms')} | {f('e2e_p50_s')} | "
                    f"{f('prompt_tokens_mean')} |")
    return head + "\n".join(rows) + "\n"


def median_of(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return None if not vals else round(statistics.median(vals), 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tg = ap.add_argument_group("servers (one or more; those started here run one at a time, in this order)")
    tg.add_argument("--url", action="append", default=[], help="a running OpenAI-compatible server (repeatable)")
    tg.add_argument("--sparq", help=".sparq file: start `sparq serve` on it")
    tg.add_argument("--llama-cpp", help="GGUF file: start llama-cpp-python's server on it")
    tg.add_argument("--vllm", help="model directory (compressed-tensors checkpoint): start vLLM's server on it")
    tg.add_argument("--order", nargs="+", default=["url", "sparq", "llama-cpp", "vllm"],
                    help="order of the kinds (default: url sparq llama-cpp vllm)")
    sg = ap.add_argument_group("how servers are started")
    sg.add_argument("--threads", default="2", help="threads of every server (default 2)")
    sg.add_argument("--ctx", type=int, help="context of every server (default: longest prompt + max tokens + 32, "
                                             "rounded up to 256)")
    sg.add_argument("--sparq-bin", default=str(REPO / "build" / "sparq"))
    sg.add_argument("--sparq-arg", action="append", default=[], help="extra `sparq serve` argument (repeatable)")
    sg.add_argument("--llama-python", default=sys.executable, help="python with llama-cpp-python[server]")
    sg.add_argument("--llama-arg", action="append", default=[], help="extra llama_cpp.server argument")
    sg.add_argument("--kind", choices=sorted(GGUF_EOS), default="gemma-2-2b",
                    help="which random GGUF (its EOS id is banned with logit_bias, as llama.cpp has no ignore_eos)")
    sg.add_argument("--eos-id", type=int, help="EOS id to ban on llama.cpp instead of --kind's")
    sg.add_argument("--allow-eos", action="store_true", help="do not ban EOS on llama.cpp")
    sg.add_argument("--vllm-python", default=sys.executable, help="python of the vllm-cpu venv")
    sg.add_argument("--vllm-arg", action="append", default=[], help="extra vLLM api_server argument")
    sg.add_argument("--vllm-kv-gib", type=int, default=4, help="VLLM_CPU_KVCACHE_SPACE (default 4)")
    sg.add_argument("--start-timeout", type=float, default=300.0)
    lg = ap.add_argument_group("load")
    lg.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    lg.add_argument("--requests", type=int, help="requests per level (default: max(8, 2 x C))")
    lg.add_argument("--duration", type=float, help="seconds per level instead of a request count")
    lg.add_argument("--max-tokens", type=int, default=128)
    lg.add_argument("--prompt-tokens", type=int, nargs="+", default=[32, 128, 512],
                    help="prompt lengths in tokens, mixed evenly (default 32 128 512)")
    lg.add_argument("--prompts-per-length", type=int, default=16)
    lg.add_argument("--reps", type=int, default=3, help="repetitions of each level; medians are reported")
    lg.add_argument("--warmup", type=int, default=2, help="requests before each server's first level")
    lg.add_argument("--request-timeout", type=float, default=600.0)
    lg.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    og = ap.add_argument_group("output")
    og.add_argument("--json-out", help="all runs and the medians (default bench/out/server_bench-DATE.json)")
    og.add_argument("--md-out", help="the markdown table")
    args = ap.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.requests = -1  # max(8, 2C), per level
    if args.ctx is None:
        args.ctx = int(math.ceil((max(args.prompt_tokens) + args.max_tokens + 32) / 256) * 256)
    levels = args.concurrency

    peers = []
    for kind in args.order:
        if kind == "url":
            for u in args.url:
                p = urlparse(u)
                t = Target(f"url:{p.hostname}:{p.port}", p.hostname, p.port or 80, extra_body={"ignore_eos": True})
                peers.append(Peer(t.name, (lambda t: lambda c: t)(t), restart_per_level=False))
        elif kind == "sparq" and args.sparq:
            peers.append(sparq_peer(args, levels))
        elif kind == "llama-cpp" and args.llama_cpp:
            if not python_has(args.llama_python, "llama_cpp.server"):
                print(f"skipping llama.cpp: {args.llama_python} cannot import llama_cpp.server "
                      "(pip install 'llama-cpp-python[server]')", flush=True)
                continue
            peers.append(llama_cpp_peer(args, levels))
        elif kind == "vllm" and args.vllm:
            if not python_has(args.vllm_python, "vllm"):
                print(f"skipping vLLM: {args.vllm_python} cannot import vllm (see shared/docs/PERFORMANCE.md)",
                      flush=True)
                continue
            peers.append(vllm_peer(args, levels))
    if not peers:
        ap.error("no server: give --url, --sparq, --llama-cpp or --vllm")

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    serial = Serial()
    runs = []
    meta = dict(machine=machine_info(), args=vars(args), corpus=str(CORPUS.relative_to(REPO)))
    print(f"machine: {meta['machine']}", flush=True)
    for peer in peers:
        print(f"== {peer.name}", flush=True)
        server, prompts = None, None
        try:
            for c in levels:
                if server is None or peer.restart_per_level:
                    if isinstance(server, Server):
                        server.stop()
                    server = peer.start(c)
                    target = server.target if isinstance(server, Server) else server
                    target.headers = headers
                    if target.model is None:
                        target.discover_model()
                    if prompts is None:
                        prompts = build_prompts(target, args.prompt_tokens, args.prompts_per_length)
                        order = sorted(range(len(prompts)), key=lambda i: (i % args.prompts_per_length, i))
                        prompts = [prompts[i] for i in order]  # lengths interleaved
                    if args.warmup:
                        w = run_level(target, 1, prompts, serial, min(args.max_tokens, 16), requests=args.warmup,
                                      timeout=args.request_timeout)
                        if w["failed"]:
                            raise RuntimeError(f"warm-up requests failed: {w['errors']}")
                n_req = None if args.requests is None else (max(8, 2 * c) if args.requests < 0 else args.requests)
                for rep in range(args.reps):
                    m = run_level(target, c, prompts, serial, args.max_tokens, requests=n_req, duration=args.duration,
                                  timeout=args.request_timeout)
                    m.update(server=peer.name, rep=rep, loadavg="%.2f %.2f %.2f" % os.getloadavg())
                    if target.pid:
                        m["server_rss_mib"] = round(rss_tree_bytes(target.pid) / 2**20, 1)
                        m["server_peak_rss_mib"] = round(vm_kib(target.pid, "VmHWM") / 1024, 1)
                    if isinstance(server, Server):
                        m["server_ready_s"] = round(server.ready_s, 2)
                    runs.append(m)
                    print(f"  C={c:<3} rep {rep}: {m['ok']}/{m['requests']} ok, {m['tokens_per_s']} tok/s, "
                          f"TTFT p50 {m['ttft_p50_ms']} ms p99 {m['ttft_p99_ms']} ms, ITL p50 {m['itl_p50_ms']} ms, "
                          f"failed {m['failed']} {m['errors'] or ''}", flush=True)
        except RuntimeError as e:
            print(f"  {peer.name} failed: {e}", flush=True)
            runs.append(dict(server=peer.name, error=str(e)[:2000]))
        finally:
            if isinstance(server, Server):
                server.stop()

    summary = []
    for name in dict.fromkeys(r["server"] for r in runs):
        for c in levels:
            sel = [r for r in runs if r["server"] == name and r.get("concurrency") == c]
            if not sel:
                continue
            s = dict(server=name, concurrency=c, reps=len(sel), ok=sum(r["ok"] for r in sel),
                     failed=sum(r["failed"] for r in sel))
            for key in ("tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_s",
                        "requests_per_s", "prompt_tokens_mean", "server_rss_mib", "server_peak_rss_mib"):
                s[key] = median_of(sel, key)
            summary.append(s)
    table = markdown(summary)
    print("\nMedians of the repetitions (gen tok/s: generated tokens of all clients / wall time of the level):\n")
    print(table)
    json_out = Path(args.json_out) if args.json_out else OUT / f"server_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(dict(meta=meta, runs=runs, summary=summary), indent=1, default=str))
    print(f"wrote {json_out}")
    if args.md_out:
        Path(args.md_out).write_text(table)
    return 1 if any("error" in r for r in runs) or any(s["failed"] for s in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
