#!/usr/bin/env python3
"""Soak test of an OpenAI-compatible server: many clients for a long time, with clients that go away.

16 clients (--clients) send /v1/completions requests back to back for --duration seconds (default 600):
prompts of mixed lengths (as bench/server_bench.py cuts them), max_tokens drawn between 1 and
--max-tokens, mostly streamed (--non-stream-fraction are not). With probability --disconnect-p a
streamed request is abandoned: its connection is closed after a random number of tokens, as a client
that goes away; the server must cancel it and free its KV blocks.

Counted: requests ok, cancelled by the client on purpose, refused by design (429 queue full, 503 loading
or draining), and failed (anything else: another status, a connection error, a stream that ends
without `data: [DONE]`, an error event). The server's resident memory (VmRSS of /proc/PID/status, with
its child processes) is sampled every --rss-every seconds; reported: RSS after the warm-up
(--warmup-s, default 60 s or a tenth of the duration) against RSS at the end of the load. After the
load, /metrics must show no running request and an empty KV cache within a few seconds (no leak of
cancelled requests).

Either starts `sparq serve FILE` itself (--sparq, default --parallel 4) or loads a running server
(--url, with --pid for the memory samples). Exit status 1 when a request failed, when the server kept
running requests or KV blocks after the load, or when RSS grew more than --max-rss-growth-mib.

    python bench/server_soak.py --sparq bench/out/gemma2-w8a8.sparq --duration 600 --json-out bench/out/soak.json
    python bench/server_soak.py --url http://127.0.0.1:8080 --pid $(pgrep -f 'sparq serve' | head -1) --duration 60
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from server_bench import OUT, REPO, Client, Serial, Server, Target, build_prompts, percentile, rss_tree_bytes


def metric(text, name):
    """Sum of the samples of one metric in a Prometheus text page (None if absent)."""
    vals = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(vals) if vals else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparq", help=".sparq file: start `sparq serve` on it")
    ap.add_argument("--sparq-bin", default=str(REPO / "build" / "sparq"))
    ap.add_argument("--sparq-arg", action="append", default=[], help="extra `sparq serve` argument (repeatable)")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--parallel", default="4")
    ap.add_argument("--url", help="a running server instead")
    ap.add_argument("--pid", type=int, help="its process id, for the memory samples")
    ap.add_argument("--api-key")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--warmup-s", type=float, help="RSS baseline after this many seconds (default min(60, duration/10))")
    ap.add_argument("--max-tokens", type=int, default=128, help="max_tokens is drawn from 1..this")
    ap.add_argument("--prompt-tokens", type=int, nargs="+", default=[16, 64, 256, 512])
    ap.add_argument("--disconnect-p", type=float, default=0.1, help="chance that a streamed request is abandoned")
    ap.add_argument("--non-stream-fraction", type=float, default=0.2)
    ap.add_argument("--rss-every", type=float, default=5.0, help="seconds between memory samples")
    ap.add_argument("--max-rss-growth-mib", type=float, help="fail when RSS grew more than this after the warm-up")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--request-timeout", type=float, default=600.0)
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    if not args.sparq and not args.url:
        ap.error("give --sparq FILE or --url URL")
    warmup_s = args.warmup_s if args.warmup_s is not None else min(60.0, args.duration / 10)

    server = None
    if args.sparq:
        ctx = max(args.prompt_tokens) + args.max_tokens + 32
        server = Server("sparq", [args.sparq_bin, "serve", args.sparq, "--host", "127.0.0.1", "--port", "0",
                                  "--threads", args.threads, "--parallel", args.parallel, "--ctx", ctx,
                                  *args.sparq_arg], extra_body={"ignore_eos": True})
        target = server.target
    else:
        p = urlparse(args.url)
        target = Target(f"url:{p.hostname}:{p.port}", p.hostname, p.port or 80, extra_body={"ignore_eos": True},
                        pid=args.pid)
    if args.api_key:
        target.headers = {"Authorization": f"Bearer {args.api_key}"}
    try:
        if target.model is None:
            target.discover_model()
        prompts = build_prompts(target, args.prompt_tokens, 16)
        report = soak(target, prompts, args, warmup_s)
    finally:
        if server is not None:
            server.stop()
            report_exit = server.proc.returncode
    if server is not None:
        report["server_exit_status_after_sigterm"] = report_exit
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=1))
    out = Path(args.json_out) if args.json_out else OUT / f"server_soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    problems = report["problems"]
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def soak(target, prompts, args, warmup_s):
    counts = dict(ok=0, cancelled=0, refused=0, failed=0)
    errors, ttfts, lock = {}, [], threading.Lock()
    serial = Serial()
    t0 = time.perf_counter()
    stop_at = t0 + args.duration
    samples = []  # (seconds since start, RSS MiB)
    load_done = threading.Event()

    def sampler():
        while not load_done.is_set():
            if target.pid:
                samples.append((round(time.perf_counter() - t0, 1), round(rss_tree_bytes(target.pid) / 2**20, 1)))
            load_done.wait(args.rss_every)

    def worker(k):
        rng = random.Random(args.seed * 1000 + k)
        client = Client(target, args.request_timeout)
        try:
            while time.perf_counter() < stop_at:
                L, text = prompts[rng.randrange(len(prompts))]
                max_tokens = rng.randint(1, args.max_tokens)
                stream = rng.random() >= args.non_stream_fraction
                close_after = None
                if stream and max_tokens > 1 and rng.random() < args.disconnect_p:
                    close_after = rng.randint(1, max_tokens - 1)
                r = client.completion(f"{serial.next()}. {text}", max_tokens, stream=stream,
                                      close_after_tokens=close_after)
                with lock:
                    if r.ok:
                        counts["ok"] += 1
                        if r.ttft is not None and stream:
                            ttfts.append(r.ttft)
                    elif r.cancelled:
                        counts["cancelled"] += 1
                    elif r.status in (429, 503):
                        counts["refused"] += 1
                    else:
                        counts["failed"] += 1
                        errors[r.error] = errors.get(r.error, 0) + 1
                if r.status in (429, 503):
                    time.sleep(0.5)
        finally:
            client.close()

    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(args.clients)]
    for th in threads:
        th.start()
    last_print = t0
    while any(th.is_alive() for th in threads):
        time.sleep(1)
        if time.perf_counter() - last_print >= 30:
            last_print = time.perf_counter()
            with lock:
                rss = samples[-1][1] if samples else None
                print(f"  {last_print - t0:6.0f} s  {counts}  RSS {rss} MiB", flush=True)
    for th in threads:
        th.join()
    load_s = time.perf_counter() - t0
    if target.pid:
        samples.append((round(load_s, 1), round(rss_tree_bytes(target.pid) / 2**20, 1)))
    load_done.set()
    sampler_thread.join()

    # After the load: nothing running, nothing waiting, KV cache empty (cancelled requests freed).
    idle, after = None, {}
    for _ in range(20):
        status, page = target.get("/metrics")
        if status != 200 or not isinstance(page, str):
            break
        after = {name: metric(page, name) for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                                                        "vllm:kv_cache_usage_perc")}
        if after["vllm:num_requests_running"] == 0 and after["vllm:num_requests_waiting"] == 0 and \
                (after["vllm:kv_cache_usage_perc"] or 0) < 0.01:
            idle = True
            break
        idle = False
        time.sleep(0.5)

    warm = [s for s in samples if s[0] >= warmup_s]
    rss_warm = warm[0][1] if warm else None
    rss_end = samples[-1][1] if samples else None
    report = dict(
        target=target.name, duration_s=round(load_s, 1), clients=args.clients, disconnect_p=args.disconnect_p,
        counts=counts, requests=sum(counts.values()), errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10]),
        ttft_p50_ms=None if not ttfts else round(1000 * percentile(ttfts, 50), 1),
        ttft_p99_ms=None if not ttfts else round(1000 * percentile(ttfts, 99), 1),
        rss_after_warmup_mib=rss_warm, rss_end_mib=rss_end,
        rss_growth_mib=None if rss_warm is None or rss_end is None else round(rss_end - rss_warm, 1),
        rss_max_mib=max((s[1] for s in samples), default=None), warmup_s=warmup_s,
        metrics_after_load=after, idle_after_load=idle, rss_samples=samples,
    )
    problems = []
    if counts["failed"]:
        problems.append(f"{counts['failed']} requests failed: {report['errors']}")
    if idle is False:
        problems.append(f"after the load the server still reports {after}")
    if args.max_rss_growth_mib is not None and report["rss_growth_mib"] is not None and \
            report["rss_growth_mib"] > args.max_rss_growth_mib:
        problems.append(f"RSS grew {report['rss_growth_mib']} MiB after the warm-up (limit {args.max_rss_growth_mib})")
    report["problems"] = problems
    return report


if __name__ == "__main__":
    sys.exit(main())
