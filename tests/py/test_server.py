"""`sparq serve` end to end, against the bundled demo model: the official `openai` client (chat and
completions, streamed and not, n, logprobs, seeds, stop strings), legacy echo/logprobs, the
tokenizer endpoints, /v1/models, /health, /metrics, continuous batching giving the same greedy
outputs as one-at-a-time requests, a client disconnect freeing its sequence, drain on SIGTERM (and
--timeout), and the OpenAI error object for every kind of bad request (401, 404, 413, 429, 400s),
with the server alive afterwards."""
import json
import socket
import threading
import time

import pytest

from server_util import (DEMO_NAME, Server, demo_model, http_session, metric, parse_metrics, serve,  # noqa: F401
                         sse_events)

import requests

try:
    import openai
except ImportError:  # installed by scripts/setup.sh: missing is a failure, not a skip
    openai = None

KEY = "sk-test-key-123"
ANY = object()
BOS = "<|begin_of_text|>"
EOS = "<|eot_id|>"


# ---------------------------------------------------------------------------------------------------
# servers: few, module-scoped


@pytest.fixture(scope="module")
def server(demo_model):
    with serve(demo_model, "--parallel", "16") as s:
        yield s


@pytest.fixture(scope="module")
def ctx(server):
    r = server.get("/v1/models")
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["max_model_len"]


def make_client(server, api_key="x"):
    assert openai is not None, "the openai package is not installed (scripts/setup.sh installs it)"
    return openai.OpenAI(base_url=server.url("/v1"), api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(server):
    c = make_client(server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def restricted(demo_model):
    """--api-key, a small --max-request-bytes and a served model name."""
    with serve(demo_model, "--parallel", "2", "--api-key", KEY, "--max-request-bytes", "4096",
               "--served-model-name", "custom-name") as s:
        yield s


def tokenize(server, **body):
    r = server.post("/tokenize", body)
    assert r.status_code == 200, r.text
    return r.json()


def detokenize(server, tokens):
    r = server.post("/detokenize", {"tokens": tokens})
    assert r.status_code == 200, r.text
    return r.json()["prompt"]


def complete(server, **body):
    r = server.post("/v1/completions", body)
    assert r.status_code == 200, r.text
    return r.json()


def chat(server, **body):
    r = server.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    return r.json()


def expect_error(r, status, type_, code=ANY, param=ANY):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("X-Request-Id"), dict(r.headers)
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    e = body["error"]
    assert {"message", "type", "param", "code"} <= set(e), e
    assert isinstance(e["message"], str) and e["message"], e
    assert e["type"] == type_, e
    if code is not ANY:
        assert e["code"] == code, e
    if param is not ANY:
        assert e["param"] == param, e
    return e


def check_usage(usage):
    assert usage.prompt_tokens > 0 and usage.completion_tokens >= 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


MESSAGES = [{"role": "user", "content": "Tell me about the little dog."}]


# ---------------------------------------------------------------------------------------------------
# 1. the official openai client


def test_chat_greedy_stream_equals_non_stream(server, client):
    before = time.time()
    r = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, max_tokens=12)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == DEMO_NAME
    assert before - 5 <= r.created <= time.time() + 5
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length") and c.logprobs is None
    check_usage(r.usage)
    assert r.usage.prompt_tokens == tokenize(server, messages=MESSAGES)["count"]
    assert 1 <= r.usage.completion_tokens <= 12
    if c.finish_reason == "length":
        assert r.usage.completion_tokens == 12
    assert c.message.content.strip(), "the demo model writes English; an empty greedy answer is wrong"

    chunks = list(client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0,
                                                 max_tokens=12, stream=True))
    assert chunks
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(ch.object == "chat.completion.chunk" and ch.model == DEMO_NAME for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == c.message.content
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == [c.finish_reason]
    assert chunks[-1].choices[0].finish_reason == c.finish_reason
    assert all(ch.usage is None for ch in chunks), "usage chunk without stream_options.include_usage"


def test_chat_stream_include_usage(client):
    full = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, max_tokens=8)
    chunks = list(client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, max_tokens=8,
                                                 stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    check_usage(last.usage)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == \
        (full.usage.prompt_tokens, full.usage.completion_tokens)
    assert all(ch.usage is None for ch in chunks[:-1])
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == full.choices[0].message.content


def test_completion_greedy_stream_equals_non_stream(server, client):
    prompt = "Once upon a time"
    r = client.completions.create(model=DEMO_NAME, prompt=prompt, temperature=0, max_tokens=10)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == DEMO_NAME
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and isinstance(c.text, str) and c.text and c.logprobs is None
    assert c.finish_reason in ("stop", "length")
    check_usage(r.usage)
    assert r.usage.prompt_tokens == tokenize(server, prompt=prompt)["count"]
    if c.finish_reason == "length":
        assert r.usage.completion_tokens == 10

    chunks = list(client.completions.create(model=DEMO_NAME, prompt=prompt, temperature=0, max_tokens=10,
                                            stream=True, stream_options={"include_usage": True}))
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    assert all(ch.object == "text_completion" for ch in chunks)
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == c.text
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == \
        [c.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == r.usage.prompt_tokens


def test_completion_default_max_tokens_is_16(client):
    r = client.completions.create(model=DEMO_NAME, prompt="The", temperature=0, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16 and r.choices[0].finish_reason == "length"


def test_n_choices(server, client):
    r = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0.8, seed=3, n=2,
                                       max_tokens=6, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.finish_reason == "length" and c.message.content for c in r.choices)
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens == tokenize(server, messages=MESSAGES)["count"]

    chunks = list(client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, n=2,
                                                 max_tokens=6, stream=True))
    texts, finishes = {0: "", 1: ""}, {0: [], 1: []}
    for ch in chunks:
        for c in ch.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index].append(c.finish_reason)
    assert set(texts) == {0, 1} and all(len(f) == 1 for f in finishes.values()), finishes
    assert texts[0] == texts[1], "greedy choices of one prompt must agree"


def test_chat_logprobs(client):
    r = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, max_tokens=8,
                                       logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    c = r.choices[0]
    assert c.finish_reason == "length" and r.usage.completion_tokens == 8
    content = c.logprobs.content
    assert len(content) == 8
    for e in content:
        assert isinstance(e.token, str) and e.logprob <= 0
        assert e.bytes == list(e.token.encode("utf-8")) or not e.token.isascii()
        tops = [t.logprob for t in e.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and all(t <= 0 for t in tops)
        assert len({t.token for t in e.top_logprobs}) == 3
        assert e.logprob <= tops[0] + 1e-4
        # greedy: the chosen token is the most likely one
        assert e.top_logprobs[0].token == e.token and abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4
    assert b"".join(bytes(e.bytes) for e in content).decode("utf-8") == c.message.content

    # without top_logprobs: the chosen tokens' logprobs only, the same values
    r2 = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0, max_tokens=8,
                                        logprobs=True, extra_body={"ignore_eos": True})
    c2 = r2.choices[0].logprobs.content
    assert [e.token for e in c2] == [e.token for e in content]
    assert all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(c2, content))
    assert all(not e.top_logprobs for e in c2)


def test_seed_reproducible(client):
    def sample(seed, endpoint="chat"):
        if endpoint == "chat":
            r = client.chat.completions.create(model=DEMO_NAME, messages=MESSAGES, temperature=0.8, seed=seed,
                                               max_tokens=16, extra_body={"ignore_eos": True})
            return r.choices[0].message.content
        r = client.completions.create(model=DEMO_NAME, prompt="The old man", temperature=0.8, seed=seed,
                                      max_tokens=16, extra_body={"ignore_eos": True})
        return r.choices[0].text

    for endpoint in ("chat", "completions"):
        a = sample(42, endpoint)
        assert a and sample(42, endpoint) == a
        # different seeds sample different texts (16 tokens at temperature 0.8)
        assert len({a, sample(7, endpoint), sample(1234, endpoint)}) > 1


def test_stop_string_cuts_the_text(client):
    greedy = client.completions.create(model=DEMO_NAME, prompt="Once upon a time", temperature=0, max_tokens=16,
                                       extra_body={"ignore_eos": True}).choices[0].text
    assert len(greedy) >= 6, greedy
    stop = greedy[len(greedy) // 2:len(greedy) // 2 + 3]
    cut = greedy[:greedy.index(stop)]
    for stream in (False, True):
        r = client.completions.create(model=DEMO_NAME, prompt="Once upon a time", temperature=0, max_tokens=16,
                                      stop=[stop, "\u2603never"], stream=stream, extra_body={"ignore_eos": True})
        if stream:
            chunks = [ch for ch in r if ch.choices]
            text = "".join(ch.choices[0].text for ch in chunks)
            finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices[0].finish_reason]
        else:
            text, finish = r.choices[0].text, [r.choices[0].finish_reason]
        assert (text, finish) == (cut, ["stop"]), (greedy, stop)


def test_logit_bias_and_max_completion_tokens(server):
    r = complete(server, prompt="The", max_tokens=3, temperature=0, logit_bias={"100": 100}, ignore_eos=True)
    assert r["choices"][0]["text"] == detokenize(server, [100, 100, 100])
    r = chat(server, messages=MESSAGES, max_completion_tokens=3, temperature=0, ignore_eos=True)
    assert r["usage"]["completion_tokens"] == 3 and r["choices"][0]["finish_reason"] == "length"
    expect_error(server.post("/v1/completions", {"prompt": "The", "logit_bias": {"99999": 5}}), 400, IR)


def test_chat_content_parts_equal_string_content(server):
    a = chat(server, messages=[{"role": "user", "content": [{"type": "text", "text": "Tell me about "},
                                                            {"type": "text", "text": "the little dog."}]}],
             temperature=0, max_tokens=6)
    b = chat(server, messages=[{"role": "user", "content": "Tell me about the little dog."}], temperature=0,
             max_tokens=6)
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
    assert "cached_tokens" in b["usage"]["prompt_tokens_details"]


# ---------------------------------------------------------------------------------------------------
# 2. legacy completions: echo and logprobs, prompt lists

ECHO_TEXT = "The cat sat on the mat"


@pytest.mark.parametrize("max_tokens", [0, 1])
@pytest.mark.parametrize("kind", ["text", "ids"])
def test_echo_logprobs(server, kind, max_tokens):
    ids = tokenize(server, prompt=ECHO_TEXT)["tokens"]
    prompt = ECHO_TEXT if kind == "text" else ids  # ids are used as they are: the same tokens
    r = complete(server, prompt=prompt, echo=True, logprobs=1, max_tokens=max_tokens, temperature=0)
    assert r["usage"]["prompt_tokens"] == len(ids)
    assert r["usage"]["completion_tokens"] == max_tokens
    c = r["choices"][0]
    lp = c["logprobs"]
    tokens, token_lps, tops, offsets = lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], lp["text_offset"]
    assert len(tokens) == len(token_lps) == len(tops) == len(offsets) == len(ids) + max_tokens
    assert token_lps[0] is None and tops[0] is None
    assert all(isinstance(x, float) and x <= 0 for x in token_lps[1:]), token_lps
    assert all(isinstance(t, dict) and 1 <= len(t) <= 2 and all(v <= 0 for v in t.values()) for t in tops[1:])
    prompt_text = detokenize(server, ids)
    assert prompt_text.startswith(BOS) and prompt_text.endswith(ECHO_TEXT)
    assert "".join(tokens[:len(ids)]) == prompt_text
    assert "".join(tokens) == c["text"]
    assert c["text"].startswith(prompt_text)
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert offsets == [len("".join(tokens[:i])) for i in range(len(tokens))]
    if max_tokens == 1:
        # greedy: the generated token is the best alternative at its position
        best = max(tops[-1].items(), key=lambda kv: kv[1])
        assert best[0] == tokens[-1] and abs(best[1] - token_lps[-1]) < 1e-4
        assert c["finish_reason"] == "length"
    else:
        assert c["text"] == prompt_text and c["finish_reason"] in ("length", "stop")


def test_echo_text_and_ids_score_alike(server):
    ids = tokenize(server, prompt=ECHO_TEXT)["tokens"]
    a = complete(server, prompt=ECHO_TEXT, echo=True, logprobs=2, max_tokens=1, temperature=0)
    b = complete(server, prompt=ids, echo=True, logprobs=2, max_tokens=1, temperature=0)
    la, lb = a["choices"][0]["logprobs"], b["choices"][0]["logprobs"]
    assert la["tokens"] == lb["tokens"] and la["text_offset"] == lb["text_offset"]
    assert all(x is y is None or abs(x - y) < 1e-3 for x, y in zip(la["token_logprobs"], lb["token_logprobs"]))


def test_id_prompt_gets_no_bos(server):
    ids = tokenize(server, prompt=ECHO_TEXT, add_special_tokens=False)["tokens"]
    r = complete(server, prompt=ids, echo=True, logprobs=0, max_tokens=0)
    assert r["usage"]["prompt_tokens"] == len(ids)
    assert r["choices"][0]["text"] == ECHO_TEXT == "".join(r["choices"][0]["logprobs"]["tokens"])


def test_prompt_lists_are_prompt_major(server):
    prompts = ["A big red", "Once there was"]
    singles = [complete(server, prompt=p, temperature=0, max_tokens=4, ignore_eos=True)["choices"][0]["text"]
               for p in prompts]
    ids = [tokenize(server, prompt=p)["tokens"] for p in prompts]
    for prompt in (prompts, ids):
        r = complete(server, prompt=prompt, n=2, temperature=0, max_tokens=4, ignore_eos=True)
        assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
        assert [c["text"] for c in r["choices"]] == [singles[0], singles[0], singles[1], singles[1]]
        assert r["usage"]["prompt_tokens"] == sum(len(i) for i in ids)
        assert r["usage"]["completion_tokens"] == 16

    # streamed: the same texts per index
    with server.http.post(server.url("/v1/completions"), json={"prompt": prompts, "n": 2, "temperature": 0,
                                                               "max_tokens": 4, "ignore_eos": True, "stream": True},
                          stream=True, timeout=60) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        events = list(sse_events(resp))
    assert events[-1] == "[DONE]"
    texts = {}
    for ev in events[:-1]:
        for c in ev["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
    assert texts == {0: singles[0], 1: singles[0], 2: singles[1], 3: singles[1]}


# ---------------------------------------------------------------------------------------------------
# 3. tokenizer endpoints, models, health, metrics


def test_tokenize_detokenize_round_trip(server, ctx):
    text = "Hello world, how are you? Fine: 123 and 4567."
    r = tokenize(server, prompt=text, add_special_tokens=False, return_token_strs=True)
    assert r["count"] == len(r["tokens"]) > 5 and r["max_model_len"] == ctx
    assert len(r["token_strs"]) == r["count"] and all(isinstance(t, str) for t in r["token_strs"])
    assert detokenize(server, r["tokens"]) == text
    with_bos = tokenize(server, prompt=text)
    assert with_bos["tokens"][1:] == r["tokens"] and with_bos["count"] == r["count"] + 1
    assert with_bos["token_strs"] is None
    assert detokenize(server, with_bos["tokens"]) == BOS + text

    chat_ids = tokenize(server, messages=MESSAGES)
    rendered = detokenize(server, chat_ids["tokens"])
    assert rendered.startswith(BOS) and MESSAGES[0]["content"] in rendered
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    no_gen = tokenize(server, messages=MESSAGES, add_generation_prompt=False)
    assert detokenize(server, no_gen["tokens"]).endswith(EOS) and no_gen["count"] < chat_ids["count"]


def test_tokenizer_info(server, ctx):
    r = server.get("/tokenizer_info")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["eos_token"] == EOS and info["bos_token"] == BOS
    assert "pad_token" in info and isinstance(info["tokenizer_class"], str)
    assert isinstance(info["chat_template"], str) and "add_generation_prompt" in info["chat_template"]
    assert info["vocab_size"] == 2048 and isinstance(info["model_max_length"], int)


def test_models_and_health(server, client, ctx):
    r = server.get("/v1/models")
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 1
    m = body["data"][0]
    assert m["id"] == DEMO_NAME and m["object"] == "model" and m["owned_by"] == "sparq"
    assert isinstance(m["created"], int) and 0 < ctx <= 1024
    assert [x.id for x in client.models.list()] == [DEMO_NAME]
    h = server.get("/health")
    assert h.status_code == 200 and h.content == b""
    assert r.headers.get("X-Request-Id")
    assert "sparq serve: ready" in server.log


SPARQ_METRICS = ["sparq:requests_running", "sparq:requests_waiting", "sparq:prompt_tokens_total",
                 "sparq:generation_tokens_total", "sparq:kv_cache_usage_ratio", "sparq:prefix_cache_queries_total",
                 "sparq:prefix_cache_hits_total", "sparq:preemptions_total", "sparq:requests_finished_total"]
VLLM_METRICS = ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:prefix_cache_queries_total",
                "vllm:prefix_cache_hits_total", "vllm:num_preemptions_total", "vllm:request_success_total"]
HISTOGRAMS = ["sparq:time_to_first_token_seconds", "sparq:inter_token_latency_seconds",
              "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def test_metrics_names_and_counters(server):
    # one request first, so label sets such as finished_reason exist
    complete(server, prompt="Hello", max_tokens=2, temperature=0, ignore_eos=True)
    before_text = server.metrics()
    before = parse_metrics(before_text)
    label = {"model_name": DEMO_NAME}
    for name in SPARQ_METRICS + VLLM_METRICS:
        assert metric(before, name, **label) is not None, f"{name}{{model_name=...}} missing:\n{before_text}"
    for name in HISTOGRAMS:
        for suffix in ("_bucket", "_sum", "_count"):
            assert metric(before, name + suffix, **label) is not None, f"{name}{suffix} missing"
        assert metric(before, name + "_bucket", le="+Inf", **label) == metric(before, name + "_count", **label)
    assert any(n == "sparq:requests_finished_total" and "finished_reason" in dict(ls) for n, ls in before)
    assert any(n == "vllm:request_success_total" and "finished_reason" in dict(ls) for n, ls in before)
    assert "# TYPE sparq:time_to_first_token_seconds histogram" in before_text
    assert metric(before, "sparq:requests_running") == 0 and metric(before, "vllm:num_requests_running") == 0

    r = complete(server, prompt="The little dog ran", max_tokens=5, temperature=0, ignore_eos=True)
    usage = r["usage"]

    def grown():
        now = parse_metrics(server.metrics())
        d = {n: metric(now, n) - metric(before, n) for n in
             ("sparq:prompt_tokens_total", "vllm:prompt_tokens_total", "sparq:generation_tokens_total",
              "vllm:generation_tokens_total", "sparq:requests_finished_total", "vllm:request_success_total",
              "sparq:time_to_first_token_seconds_count", "vllm:time_to_first_token_seconds_count",
              "sparq:inter_token_latency_seconds_count")}
        return d if d["sparq:requests_finished_total"] >= 1 and d["sparq:generation_tokens_total"] >= 5 else None

    d = wait_for(grown, 5, "counters after a request")
    assert d["sparq:prompt_tokens_total"] == d["vllm:prompt_tokens_total"] == usage["prompt_tokens"], d
    assert d["sparq:generation_tokens_total"] == d["vllm:generation_tokens_total"] == 5, d
    assert d["sparq:requests_finished_total"] == d["vllm:request_success_total"] == 1, d
    assert d["sparq:time_to_first_token_seconds_count"] == d["vllm:time_to_first_token_seconds_count"] == 1, d
    assert d["sparq:inter_token_latency_seconds_count"] == 4, d
    now = parse_metrics(server.metrics())
    assert metric(now, "sparq:requests_finished_total", finished_reason="length") - \
        (metric(before, "sparq:requests_finished_total", finished_reason="length") or 0) == 1


def test_prefix_cache_reuse(server):
    prompt = " ".join(f"word{i}" for i in range(60))  # well over one KV block of tokens
    before = parse_metrics(server.metrics())
    a = complete(server, prompt=prompt, max_tokens=4, temperature=0)
    b = complete(server, prompt=prompt, max_tokens=4, temperature=0)
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    assert b["usage"]["prompt_tokens_details"]["cached_tokens"] >= 16, b["usage"]
    after = parse_metrics(server.metrics())
    hits = metric(after, "sparq:prefix_cache_hits_total") - metric(before, "sparq:prefix_cache_hits_total")
    queries = metric(after, "sparq:prefix_cache_queries_total") - metric(before, "sparq:prefix_cache_queries_total")
    assert hits >= b["usage"]["prompt_tokens_details"]["cached_tokens"] and queries >= hits > 0


# ---------------------------------------------------------------------------------------------------
# 4. continuous batching: concurrent greedy requests give the one-at-a-time outputs

WORDS = ["dog", "cat", "king", "ship", "tree", "girl", "house", "river", "bird", "horse", "boy", "queen", "road",
         "garden", "storm", "bell"]


def batch_request(i):
    if i % 2:
        return "/v1/chat/completions", {"messages": [{"role": "user", "content": f"Say something about the {WORDS[i]}."}],
                                        "temperature": 0, "max_tokens": 24}
    return "/v1/completions", {"prompt": f"The {WORDS[i]} was", "temperature": 0, "max_tokens": 24}


def batch_result(body):
    c = body["choices"][0]
    text = c["message"]["content"] if "message" in c else c["text"]
    return text, c["finish_reason"], body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]


def test_concurrent_equals_sequential(server):
    sequential = [batch_result(complete(server, **batch_request(i)[1]) if i % 2 == 0 else
                               chat(server, **batch_request(i)[1])) for i in range(16)]
    results, errors = [None] * 16, []
    barrier = threading.Barrier(16)

    def worker(i):
        try:
            s = http_session()
            path, body = batch_request(i)
            barrier.wait(timeout=30)
            r = s.post(server.url(path), json=body, timeout=120)
            assert r.status_code == 200, r.text
            results[i] = batch_result(r.json())
            s.close()
        except BaseException as e:  # noqa: BLE001
            errors.append((i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    assert not any(t.is_alive() for t in threads), "concurrent requests did not finish"
    assert not errors, errors
    for i in range(16):
        assert results[i] == sequential[i], (i, batch_request(i), results[i], sequential[i])


# ---------------------------------------------------------------------------------------------------
# 5. a client that goes away mid-stream


def raw_stream_open(server, path, body, events=3, timeout=30):
    """Sends a streaming request on a bare socket and reads until `events` data lines arrived."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    got = b""
    deadline = time.monotonic() + timeout
    while got.count(b"data: ") < events:
        assert time.monotonic() < deadline, got
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the stream early: {got!r}"
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return sock, got


def test_disconnect_frees_the_sequence(server, ctx):
    label = {"model_name": DEMO_NAME}
    before = parse_metrics(server.metrics())
    max_tokens, n = ctx - 16, 8  # thousands of tokens: seconds of work on this machine if not cancelled
    sock, _ = raw_stream_open(server, "/v1/completions", {"prompt": "The king said", "max_tokens": max_tokens, "n": n,
                                                          "ignore_eos": True, "temperature": 0.8, "stream": True})
    during = parse_metrics(server.metrics())
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    closed_at = time.monotonic()
    assert metric(during, "sparq:requests_running", **label) >= 1, "the open stream is not counted as running"
    assert metric(during, "sparq:kv_cache_usage_ratio", **label) > 0

    def idle():
        m = parse_metrics(server.metrics())
        ok = (metric(m, "sparq:requests_running", **label) == 0 and metric(m, "vllm:num_requests_running", **label) == 0
              and metric(m, "sparq:kv_cache_usage_ratio", **label) <= 0.01
              and metric(m, "vllm:kv_cache_usage_perc", **label) <= 0.01)
        return m if ok else None

    after = wait_for(idle, 10, "requests_running 0 and kv usage ~0 after the client went away")
    generated = metric(after, "sparq:generation_tokens_total") - metric(before, "sparq:generation_tokens_total")
    assert generated < n * max_tokens / 2, (f"the request ran on ({generated} tokens) instead of being cancelled; "
                                    f"idle {time.monotonic() - closed_at:.1f} s after the close")
    assert server.alive()
    r = complete(server, prompt="Hello", max_tokens=3, temperature=0)
    assert r["choices"][0]["text"]


# ---------------------------------------------------------------------------------------------------
# 6. drain on SIGTERM


def test_sigterm_drains_running_streams(demo_model):
    s = Server(demo_model, "--parallel", "2")
    try:
        ctx_len = s.get("/v1/models").json()["data"][0]["max_model_len"]
        max_tokens = ctx_len - 16  # about a second of decoding: still running when SIGTERM comes
        body = {"prompt": "Once upon a time", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}
        with s.http.post(s.url("/v1/completions"), json=body, stream=True, timeout=60) as resp:
            assert resp.status_code == 200
            events = sse_events(resp)
            first = next(events)
            assert first["choices"][0]["text"] is not None
            s.signal()
            sent = time.monotonic()
            # /health turns 503 (or the listener is already closed). The signal is handled
            # asynchronously, so a check right after kill() may still see 200: poll, bounded.
            deadline = time.monotonic() + 3
            while True:
                try:
                    h = s.http.get(s.url("/health"), timeout=5)
                except requests.ConnectionError:
                    break
                if h.status_code == 503 or time.monotonic() > deadline:
                    assert h.status_code == 503 and h.json() == {"status": "draining"}, (h.status_code, h.text)
                    break
                time.sleep(0.01)
            # a new request is refused
            try:
                r = s.http.post(s.url("/v1/completions"), json={"prompt": "Hi", "max_tokens": 2}, timeout=5)
                expect_error(r, 503, "service_unavailable", "unavailable")
            except requests.ConnectionError:
                pass
            rest = list(events)
        assert rest and rest[-1] == "[DONE]"
        finishes = [c["finish_reason"] for ev in rest[:-1] for c in ev.get("choices", []) if c["finish_reason"]]
        assert finishes == ["length"], rest[-3:]
        usage = [ev["usage"] for ev in rest[:-1] if ev.get("usage")]
        assert usage and usage[-1]["completion_tokens"] == max_tokens
        rc = s.wait(30)
        assert rc == 0, f"exit {rc} {time.monotonic() - sent:.1f} s after SIGTERM:\n{s.log}"
    finally:
        s.kill()


def test_sigterm_timeout_bounds_the_drain(demo_model):
    s = Server(demo_model, "--parallel", "16", "--timeout", "1")
    try:
        ctx_len = s.get("/v1/models").json()["data"][0]["max_model_len"]
        body = {"prompt": "Once", "max_tokens": ctx_len - 8, "n": 8, "ignore_eos": True, "temperature": 0.8,
                "stream": True}  # 16 x ~1000 tokens: far more than 1 s of work on this machine
        streams = [s.http.post(s.url("/v1/completions"), json=body, stream=True, timeout=10) for _ in range(2)]
        its = []
        for resp in streams:
            assert resp.status_code == 200
            it = sse_events(resp)
            next(it)
            its.append(it)
        s.signal()
        sent = time.monotonic()
        for it in its:
            try:
                for ev in it:  # ends: finished, an error event and [DONE], or the connection closed
                    assert time.monotonic() - sent < 10, "the stream outlived --timeout 1 by far"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                pass
        rc = s.wait(max(0.1, 8 - (time.monotonic() - sent)))
        assert rc == 0, f"exit {rc} after SIGTERM with --timeout 1:\n{s.log}"
        assert time.monotonic() - sent < 8
        for resp in streams:
            resp.close()
    finally:
        s.kill()


# ---------------------------------------------------------------------------------------------------
# 7. bad requests: the OpenAI error object, and the server stays up

IR = "invalid_request_error"


@pytest.mark.parametrize("path,body,param,code", [
    ("/v1/chat/completions", {"messages": MESSAGES, "temperature": "hot"}, "temperature", "invalid_type"),
    ("/v1/chat/completions", {"messages": "hello"}, "messages", "invalid_type"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": "5"}, "max_tokens", "invalid_type"),
    ("/v1/chat/completions", {"messages": MESSAGES, "stop": 5}, "stop", "invalid_type"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    ("/v1/completions", {"prompt": 5}, "prompt", "invalid_type"),
    ("/v1/completions", {"prompt": "x", "stop": 5}, "stop", "invalid_type"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "5"}, "max_tokens", "invalid_type"),
    ("/v1/chat/completions", {"messages": MESSAGES, "n": 0}, "n", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "n": 1000}, "n", "invalid_value"),
    ("/v1/completions", {"prompt": "x", "n": 0}, "n", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": -1}, "max_tokens", "invalid_value"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "temperature": -1}, "temperature", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "top_p": 2}, "top_p", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "logprobs": True, "top_logprobs": 21}, "top_logprobs",
     "invalid_value"),
    ("/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs", "invalid_value"),
    ("/v1/chat/completions", {"temperature": 0}, "messages", "missing_required_parameter"),
    ("/v1/completions", {"max_tokens": 3}, "prompt", "missing_required_parameter"),
    ("/v1/chat/completions", {"messages": MESSAGES, "stop": [f"s{i}" for i in range(17)]}, "stop", "invalid_value"),
    ("/v1/chat/completions", {"messages": MESSAGES, "stream": True, "n": 0}, "n", "invalid_value"),
    ("/v1/completions", {"prompt": "x", "stream": True, "temperature": "hot"}, "temperature", "invalid_type"),
])
def test_bad_field(server, path, body, param, code):
    expect_error(server.post(path, body), 400, IR, code, param)


def test_malformed_json_and_non_objects(server):
    for path in ("/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"):
        r = server.post(path, data=b'{"messages": [', headers={"Content-Type": "application/json"})
        expect_error(r, 400, IR, "invalid_json", None)
        r = server.post(path, data=b"\xff\xfe not json", headers={"Content-Type": "application/json"})
        expect_error(r, 400, IR, "invalid_json", None)
        expect_error(server.post(path, [1, 2]), 400, IR)
    expect_error(server.post("/v1/completions", data=b"[" * 10000 + b"]" * 10000), 400, IR)


def test_unknown_model(server):
    expect_error(server.post("/v1/chat/completions", {"model": "nope", "messages": MESSAGES}), 404, "not_found_error",
                 "model_not_found", "model")
    expect_error(server.post("/v1/completions", {"model": "nope", "prompt": "x"}), 404, "not_found_error",
                 "model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        make_client(server).completions.create(
            model="nope", prompt="x", max_tokens=1)


def test_unknown_route(server):
    expect_error(server.get("/v1/nothing-here"), 404, "not_found_error")
    expect_error(server.post("/v2/completions", {"prompt": "x"}), 404, "not_found_error")
    r = server.get("/v1/completions")
    assert r.status_code in (404, 405), r.text
    expect_error(r, r.status_code, r.json()["error"]["type"])


def test_suffix_is_refused(server):
    expect_error(server.post("/v1/completions", {"prompt": "x", "suffix": "y"}), 400, IR, ANY, "suffix")


def test_context_length(server, ctx):
    long_text = "word " * (ctx + 50)
    expect_error(server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": long_text}]}), 400, IR,
                 "context_length_exceeded", "messages")
    expect_error(server.post("/v1/completions", {"prompt": long_text}), 400, IR, "context_length_exceeded", "prompt")
    expect_error(server.post("/v1/completions", {"prompt": [100] * (ctx + 1)}), 400, IR, "context_length_exceeded",
                 "prompt")
    # the prompt fits but prompt + max_tokens does not
    expect_error(server.post("/v1/completions", {"prompt": [100] * 20, "max_tokens": ctx}), 400, IR,
                 "context_length_exceeded", "max_tokens")
    expect_error(server.post("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": ctx}), 400, IR,
                 "context_length_exceeded", "max_tokens")
    # prompt + max_tokens == the context is fine, one more is not
    r = complete(server, prompt=[100] * (ctx - 2), max_tokens=2, temperature=0, ignore_eos=True)
    assert r["usage"] == {**r["usage"], "prompt_tokens": ctx - 2, "completion_tokens": 2}
    expect_error(server.post("/v1/completions", {"prompt": [100] * (ctx - 2), "max_tokens": 3}), 400, IR,
                 "context_length_exceeded", "max_tokens")


def test_token_id_out_of_vocabulary(server):
    # ids at or past the vocabulary (2048 tokens): param "prompt", whatever the prompt's shape
    for prompt in ([1, 2, 2048], [1, 99999], [[1, 2], [3, 5000]]):
        expect_error(server.post("/v1/completions", {"prompt": prompt, "max_tokens": 1}), 400, IR, ANY, "prompt")
    # ids that are not token ids at all (negative, past int32): refused, naming the prompt
    for prompt in ([-1, 5], [[1, 2], [3, 1 << 40]]):
        e = expect_error(server.post("/v1/completions", {"prompt": prompt, "max_tokens": 1}), 400, IR)
        assert e["param"].startswith("prompt"), e
    expect_error(server.post("/detokenize", {"tokens": [1, 99999]}), 400, IR)


def test_server_alive_after_bad_requests(server):
    assert server.alive(), server.log
    assert server.get("/health").status_code == 200
    r = complete(server, prompt="Hello there", max_tokens=3, temperature=0)
    assert r["choices"][0]["text"] and r["usage"]["completion_tokens"] >= 1


# --- the restricted server: API key, request size limit, served model name


def test_api_key(restricted):
    s = restricted

    def fresh(method, path, body=None, headers=None):  # a new connection each: see the keep-alive test below
        h = http_session()
        try:
            return h.request(method, s.url(path), json=body, headers=headers or {}, timeout=60)
        finally:
            h.close()

    assert fresh("GET", "/health").status_code == 200
    assert fresh("GET", "/metrics").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic " + KEY}):
        for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/completions", {"prompt": "x"}),
                                   ("POST", "/v1/chat/completions", {"messages": MESSAGES}),
                                   ("POST", "/tokenize", {"prompt": "x"}), ("POST", "/detokenize", {"tokens": [1]}),
                                   ("GET", "/tokenizer_info", None)):
            expect_error(fresh(method, path, body, headers), 401, "authentication_error", "invalid_api_key")
    auth = {"Authorization": f"Bearer {KEY}"}
    r = s.get("/v1/models", headers=auth)
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["custom-name"]
    assert s.post("/tokenize", {"prompt": "x"}, headers=auth).status_code == 200

    good = make_client(s, KEY)
    r = good.completions.create(model="custom-name", prompt="Hello", max_tokens=2, temperature=0)
    assert r.model == "custom-name" and r.choices[0].text
    with pytest.raises(openai.NotFoundError):
        good.completions.create(model=DEMO_NAME, prompt="Hello", max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        make_client(s, "wrong").completions.create(
            model="custom-name", prompt="Hello", max_tokens=2)
    assert s.get("/health").status_code == 200


def test_request_too_large(restricted):
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    small = json.dumps({"prompt": "Hello", "max_tokens": 1}).encode()
    ok = small + b" " * (4000 - len(small))  # under the 4096-byte limit (JSON allows trailing blanks)
    h = http_session()
    r = h.post(restricted.url("/v1/completions"), data=ok, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    big = json.dumps({"prompt": "hello " * 900, "max_tokens": 1}).encode()
    assert len(big) > 4096
    expect_error(h.post(restricted.url("/v1/completions"), data=big, headers=auth, timeout=60), 413, IR,
                 "payload_too_large")
    expect_error(h.post(restricted.url("/v1/chat/completions"), data=small + b" " * 5000, headers=auth, timeout=60),
                 413, IR, "payload_too_large")
    h.close()
    assert restricted.alive() and restricted.get("/health").status_code == 200


def read_response(sock, deadline):
    """One HTTP/1.1 response with a Content-Length body from a socket: (status, headers, body); None on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        assert time.monotonic() < deadline, buf
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        assert time.monotonic() < deadline, body
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


@pytest.mark.parametrize("case", ["401", "413", "404 route", "404 model", "400 json"])
def test_connection_usable_after_early_errors(restricted, case):
    """An error answered before the body was used must not leave the body to be read as the next request
    on the same keep-alive connection (clients such as openai's reuse connections). The body is sent a
    moment after the headers, as a slow client would; closing the connection after the error is fine."""
    auth = f"Authorization: Bearer {KEY}\r\n"
    body = json.dumps({"prompt": "x" * 200, "max_tokens": 1}).encode()
    path, key, data = {"401": ("/v1/completions", "", body),
                       "413": ("/v1/completions", auth, json.dumps({"prompt": "x" * 5000}).encode()),
                       "404 route": ("/v2/completions", auth, body),
                       "404 model": ("/v1/completions", auth, json.dumps({"prompt": "x", "model": "nope"}).encode()),
                       "400 json": ("/v1/completions", auth, b'{"prompt": "x", ' + b" " * 200)}[case]
    deadline = time.monotonic() + 30
    with socket.create_connection(("127.0.0.1", restricted.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Content-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode())
        time.sleep(0.2)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the body: fine
        first = read_response(sock, deadline)
        assert first is not None and first[0] == int(case[:3]), first
        if first[1].get("connection", "").lower() == "close":
            return
        nxt = json.dumps({"prompt": "Hello"}).encode()
        for _ in range(2):
            try:
                sock.sendall(f"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
                             f"Content-Length: {len(nxt)}\r\n\r\n".encode() + nxt)
            except (BrokenPipeError, ConnectionResetError):
                return  # closed without saying so: a client reconnects
            second = read_response(sock, deadline)
            if second is None:
                return
            assert second[0] == 200, (case, second)
            assert json.loads(second[2])["count"] >= 2  # BOS + "Hello"


def test_api_key_file(demo_model, tmp_path):
    f = tmp_path / "key.txt"
    f.write_text("file-key-456\n")  # the first line of the file is the key
    with serve(demo_model, "--parallel", "1", "--api-key-file", f) as s:
        expect_error(s.get("/v1/models"), 401, "authentication_error", "invalid_api_key")
        expect_error(s.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}), 401, "authentication_error",
                     "invalid_api_key")
        assert s.get("/v1/models", headers={"Authorization": "Bearer file-key-456"}).status_code == 200
        assert s.get("/health").status_code == 200


def test_full_queue_gets_429(demo_model):
    with serve(demo_model, "--parallel", "1", "--max-queue", "1") as s:
        ctx_len = s.get("/v1/models").json()["data"][0]["max_model_len"]
        body = {"prompt": "Once", "max_tokens": min(300, ctx_len - 8), "ignore_eos": True, "temperature": 0}
        results = []
        for _ in range(3):  # rounds, in case a slow start lets the requests run one after another
            k = 6
            out = [None] * k
            barrier = threading.Barrier(k)

            def worker(i):
                sess = http_session()
                try:
                    barrier.wait(timeout=30)
                    out[i] = sess.post(s.url("/v1/completions"), json=body, timeout=120)
                except BaseException as e:  # noqa: BLE001
                    out[i] = e
                finally:
                    sess.close()

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=150)
            assert not any(t.is_alive() for t in threads)
            results = out
            assert all(isinstance(r, requests.Response) for r in results), results
            assert all(r.status_code in (200, 429) for r in results), [(r.status_code, r.text) for r in results]
            if any(r.status_code == 429 for r in results):
                break
        codes = [r.status_code for r in results]
        assert 429 in codes, f"no 429 with --parallel 1 --max-queue 1 and 6 concurrent requests: {codes}"
        assert codes.count(200) >= 1
        for r in results:
            if r.status_code == 429:
                expect_error(r, 429, "rate_limit_error", "queue_full")
                assert r.headers.get("Retry-After", "").strip().isdigit(), dict(r.headers)
            else:
                assert r.json()["usage"]["completion_tokens"] == body["max_tokens"]
        assert s.get("/health").status_code == 200
        r = s.post("/v1/completions", {"prompt": "Hello", "max_tokens": 2})
        assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------------
# structured output


PERSON_SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                                  "age": {"type": "integer", "minimum": 0, "maximum": 120}},
                 "required": ["name", "age"], "additionalProperties": False}


def test_response_format_json_schema_and_json_object(client):
    for seed in (1, 2):
        r = client.chat.completions.create(
            model=DEMO_NAME, messages=[{"role": "user", "content": "Describe Mr. Darcy."}], max_tokens=96,
            temperature=1.0, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}})
        value = json.loads(r.choices[0].message.content)
        assert list(value) == ["name", "age"] and 0 <= value["age"] <= 120 and len(value["name"]) <= 16
        assert r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model=DEMO_NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=64,
                                       temperature=0, response_format={"type": "json_object"})
    text = r.choices[0].message.content
    assert text.startswith("{")
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


def test_guided_grammar_constrains_completions(server):
    body = {"prompt": "The answer is", "max_tokens": 16, "temperature": 0.8, "seed": 4, "n": 3,
            "guided_grammar": 'root ::= " " ( "yes" | "no" ) "."'}
    r = server.post("/v1/completions", body)
    assert r.status_code == 200, r.text
    assert {c["text"] for c in r.json()["choices"]} <= {" yes.", " no."}


def test_bad_response_formats_name_the_parameter(server):
    msgs = [{"role": "user", "content": "x"}]
    expect_error(server.post("/v1/chat/completions", {"messages": msgs, "response_format": {
        "type": "json_schema", "json_schema": {"schema": {"type": "string", "format": "date"}}}}),
        400, "invalid_request_error", param="response_format.json_schema.schema")
    expect_error(server.post("/v1/chat/completions", {"messages": msgs, "response_format": {"type": "yaml"}}),
                 400, "invalid_request_error", param="response_format")
    expect_error(server.post("/v1/completions", {"prompt": "x", "guided_grammar": "root ::= ("}),
                 400, "invalid_request_error", param="guided_grammar")
