// The engine's scheduling against an independent path (the backend driven directly, one sequence
// at a time, greedy): batching, sequences joining and leaving, prefill chunks sharing steps with
// decodes, the KV budget (refusal, waiting, preemption) and cancellation.
#include <catch2/catch.hpp>
#include <cmath>
#include <deque>

#include "engine_test_util.h"

using namespace sparq;
using namespace sparq::test;

namespace {

constexpr int kTokens = 12;

// Runs the engine to the end, recording whether some step mixed a prefill chunk with decodes.
bool run_recording_mixed_steps(Engine& engine) {
  bool mixed = false;
  while (!engine.idle()) {
    REQUIRE(engine.step());
    mixed = mixed || (engine.last_step().decode_sequences > 0 && engine.last_step().prefill_sequences > 0);
  }
  return mixed;
}

}  // namespace

TEST_CASE("batched steps give the same greedy tokens as one sequence at a time", "[engine]") {
  for (const char* name : {"llama-w8a8-int8", "gemma2-bf16"}) {
    SECTION(name) {
      FixtureModel m(name);
      const auto prompts = engine_test_prompts(m);
      std::vector<std::vector<int32_t>> expected;
      for (const auto& p : prompts) expected.push_back(reference_greedy(m, p, kTokens));

      auto cache = m.cache(256);
      EngineOptions opt;
      opt.prefill_chunk = 8;  // several chunks per prompt, crossing blocks and Gemma's sliding window
      opt.max_step_tokens = 20;
      Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
      std::deque<Collected> got(prompts.size());
      for (size_t i = 0; i < prompts.size(); ++i) engine.submit(greedy_request(prompts[i], kTokens, got[i]));
      const bool mixed = run_recording_mixed_steps(engine);
      CHECK(mixed);  // the short prompt decodes while the long ones are still prefilling
      for (size_t i = 0; i < prompts.size(); ++i) {
        INFO("prompt " << i << " (" << prompts[i].size() << " tokens)");
        CHECK(got[i].ids == expected[i]);
        CHECK(got[i].finished == 1);
        CHECK(got[i].reason == FinishReason::Length);
        CHECK(got[i].stats.prefilled_tokens == static_cast<int64_t>(prompts[i].size()));
        CHECK(got[i].stats.generated_tokens == kTokens);
        // The streamed text is the decode of the ids (no partial characters lost or doubled).
        CHECK(got[i].text == m.tok.tokenizer->decode(got[i].ids, true));
      }
      CHECK(all_blocks_free(engine));
      CHECK(engine.totals().decode_tokens == static_cast<int64_t>(prompts.size()) * (kTokens - 1));
    }
  }
}

TEST_CASE("sequences join and leave between steps", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompts = engine_test_prompts(m);
  auto cache = m.cache(256);
  EngineOptions opt;
  opt.prefill_chunk = 16;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  std::deque<Collected> got(prompts.size() + 1);
  const std::vector<int> lengths = {5, 14, 9, 3, 7};
  engine.submit(greedy_request(prompts[0], lengths[0], got[0]));
  engine.submit(greedy_request(prompts[3], lengths[1], got[1]));
  for (int i = 0; i < 3; ++i) REQUIRE(engine.step());
  CHECK(engine.last_step().decode_sequences == 2);
  // Two more arrive while the first two decode; their first chunk shares a step with those decodes.
  engine.submit(greedy_request(prompts[2], lengths[2], got[2]));
  engine.submit(greedy_request(prompts[1], lengths[3], got[3]));
  REQUIRE(engine.step());
  CHECK(engine.last_step().decode_sequences == 2);
  CHECK(engine.last_step().prefill_sequences == 2);
  // One more joins after the first has left.
  while (got[0].finished == 0) REQUIRE(engine.step());
  CHECK(engine.running() == 3);
  engine.submit(greedy_request(prompts[0], lengths[4], got[4]));
  engine.run_until_idle();
  const std::vector<size_t> prompt_of = {0, 3, 2, 1, 0};
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("request " << i);
    CHECK(got[i].ids == reference_greedy(m, prompts[prompt_of[i]], lengths[i]));
    CHECK(got[i].finished == 1);
  }
  CHECK(all_blocks_free(engine));
}

TEST_CASE("seeded sampling gives the same tokens alone and in a batch", "[engine]") {
  FixtureModel m("gemma2-bf16");
  const auto prompts = engine_test_prompts(m);
  SamplingParams sp;
  sp.temperature = 0.9f;
  sp.top_k = 40;
  sp.repeat_penalty = 1.1f;
  auto run = [&](const std::vector<size_t>& which, size_t watch) {
    auto cache = m.cache(256);
    Engine engine(*m.prepared, *cache, m.tok.tokenizer.get());
    std::deque<Collected> got(which.size());
    for (size_t i = 0; i < which.size(); ++i) {
      GenerationRequest r = greedy_request(prompts[which[i]], 16, got[i]);
      r.sampling = sp;
      r.sampling.seed = 1234 + which[i];
      engine.submit(std::move(r));
    }
    engine.run_until_idle();
    return got[watch].ids;
  };
  const auto alone = run({2}, 0);
  const auto batched = run({0, 1, 2, 3}, 2);
  CHECK(alone == batched);
  CHECK(alone.size() == 16);
}

TEST_CASE("a request that can never fit is refused and changes nothing", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompts = engine_test_prompts(m);
  auto cache = m.cache(8);  // 32 positions
  EngineOptions opt;
  opt.context_length = 24;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  Collected c;
  const auto& p = prompts[0];  // 14 tokens with BOS
  REQUIRE(p.size() < 20);
  // Over the model's context.
  try {
    engine.submit(greedy_request(p, 24 - static_cast<int64_t>(p.size()) + 1, c));
    FAIL("the request over the context length was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("context length of 24"));
  }
  // Over the whole cache.
  Engine roomy(*m.prepared, *cache, m.tok.tokenizer.get());
  try {
    roomy.submit(greedy_request(p, 40, c));
    FAIL("the request over the KV cache was accepted");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains(std::to_string(p.size() + 40) + " positions"));
    CHECK_THAT(msg, Catch::Contains("KV blocks"));
    CHECK_THAT(msg, Catch::Contains("MiB"));
    CHECK_THAT(msg, Catch::Contains("holds 8 blocks"));
  }
  // Invalid requests.
  CHECK_THROWS_WITH(roomy.submit(greedy_request({}, 4, c)), Catch::Contains("no tokens"));
  CHECK_THROWS_WITH(roomy.submit(greedy_request({1, static_cast<int32_t>(m.vocab())}, 4, c)),
                    Catch::Contains("outside the vocabulary"));
  GenerationRequest bad = greedy_request(p, 4, c);
  bad.sampling.top_p = 1.5f;
  CHECK_THROWS_WITH(roomy.submit(std::move(bad)), Catch::Contains("top_p"));
  GenerationRequest busy_session = greedy_request(p, 4, c);
  busy_session.session = 99;
  CHECK_THROWS_WITH(roomy.submit(std::move(busy_session)), Catch::Contains("no open session"));
  Engine no_text(*m.prepared, *cache, nullptr);
  GenerationRequest with_stop = greedy_request(p, 4, c);
  with_stop.stop_strings = {"x"};
  CHECK_THROWS_WITH(no_text.submit(std::move(with_stop)), Catch::Contains("tokenizer"));

  CHECK(engine.idle());
  CHECK(roomy.idle());
  CHECK(roomy.waiting() == 0);
  CHECK(all_blocks_free(no_text));
  CHECK(c.ids.empty());
  CHECK(c.finished == 0);
  // The engine still works, and a request that fits exactly (32 positions) runs.
  Collected ok;
  roomy.submit(greedy_request(p, 32 - static_cast<int64_t>(p.size()), ok));
  roomy.run_until_idle();
  CHECK(ok.ids == reference_greedy(m, p, 32 - static_cast<int>(p.size())));
}

TEST_CASE("queued requests wait for room and proceed when it frees", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompt = engine_test_prompts(m)[2];
  const int64_t p = static_cast<int64_t>(prompt.size());
  // Room for one of these requests at a time: admission needs the blocks of a whole prompt.
  const int64_t blocks = (p + 8 + 3) / 4 + 1;
  REQUIRE(2 * ((p + 3) / 4) > blocks);
  auto cache = m.cache(blocks);
  EngineOptions opt;
  opt.prefix_cache = false;  // identical prompts would share blocks and all fit at once
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  std::deque<Collected> got(3);
  const std::vector<int> lengths = {8, 6, 7};
  for (size_t i = 0; i < lengths.size(); ++i) engine.submit(greedy_request(prompt, lengths[i], got[i]));
  REQUIRE(engine.step());
  CHECK(engine.running() == 1);
  CHECK(engine.waiting() == 2);
  int64_t most_running = 0;
  while (!engine.idle()) {
    REQUIRE(engine.step());
    most_running = std::max(most_running, engine.running());
  }
  CHECK(most_running == 1);
  CHECK(engine.totals().preemptions == 0);
  for (size_t i = 0; i < lengths.size(); ++i) {
    INFO("request " << i);
    CHECK(got[i].ids == reference_greedy(m, prompt, lengths[i]));
    CHECK(got[i].stats.queued_seconds <= got[i].stats.total_seconds);
  }
  CHECK(got[2].stats.queued_seconds > got[0].stats.queued_seconds);
  CHECK(all_blocks_free(engine));
}

TEST_CASE("preemption recomputes a sequence without changing its tokens", "[engine]") {
  for (const char* name : {"llama-w8a8-int8", "gemma2-bf16"}) {
    SECTION(name) {
      FixtureModel m(name);
      const auto prompts = engine_test_prompts(m);
      // Both prompts fit when admitted; growing to 24 more tokens each does not.
      const int n = 24;
      const int64_t blocks = (static_cast<int64_t>(prompts[0].size() + prompts[3].size()) + n) / 4 + 2;
      auto cache = m.cache(blocks);
      EngineOptions opt;
      opt.prefill_chunk = 8;
      Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
      std::deque<Collected> got(2);
      SamplingParams sampled;
      sampled.temperature = 0.7f;
      sampled.seed = 7;
      GenerationRequest a = greedy_request(prompts[0], n, got[0]);
      GenerationRequest b = greedy_request(prompts[3], n, got[1]);
      b.sampling = sampled;  // the sampler's state must survive the recomputation too
      engine.submit(std::move(a));
      engine.submit(std::move(b));
      engine.run_until_idle();
      CHECK(engine.totals().preemptions > 0);
      CHECK(got[1].stats.preemptions > 0);  // the newest is the one evicted
      CHECK(got[0].stats.preemptions == 0);
      CHECK(got[1].stats.prefilled_tokens > static_cast<int64_t>(prompts[3].size()));
      CHECK(got[0].ids == reference_greedy(m, prompts[0], n));

      // The sampled one against the same request alone in a cache with room to spare.
      auto big = m.cache(256);
      Engine alone(*m.prepared, *big, m.tok.tokenizer.get(), opt);
      Collected solo;
      GenerationRequest again = greedy_request(prompts[3], n, solo);
      again.sampling = sampled;
      alone.submit(std::move(again));
      alone.run_until_idle();
      CHECK(solo.stats.preemptions == 0);
      CHECK(got[1].ids == solo.ids);
      CHECK(got[1].text == solo.text);
      CHECK(all_blocks_free(alone));
    }
  }
}

TEST_CASE("cancel stops a running or queued request before the next step", "[engine]") {
  FixtureModel m("gemma2-bf16");
  const auto prompts = engine_test_prompts(m);
  auto cache = m.cache(256);
  EngineOptions opt;
  opt.max_sequences = 2;  // the third request waits in the queue
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  std::deque<Collected> got(3);
  const RequestId a = engine.submit(greedy_request(prompts[0], 20, got[0]));
  engine.submit(greedy_request(prompts[1], 10, got[1]));
  const RequestId c = engine.submit(greedy_request(prompts[2], 10, got[2]));
  for (int i = 0; i < 3; ++i) REQUIRE(engine.step());
  CHECK(engine.waiting() == 1);
  const size_t a_tokens = got[0].ids.size();
  CHECK(engine.cancel(a));
  CHECK(engine.cancel(c));
  CHECK_FALSE(engine.cancel(c));      // already cancelled
  CHECK_FALSE(engine.cancel(12345));  // unknown
  REQUIRE(engine.step());
  CHECK(got[0].finished == 1);
  CHECK(got[0].reason == FinishReason::Cancelled);
  CHECK(got[0].ids.size() == a_tokens);  // nothing ran for it after cancel()
  CHECK(got[2].finished == 1);
  CHECK(got[2].reason == FinishReason::Cancelled);
  CHECK(got[2].ids.empty());
  CHECK(engine.last_step().decode_sequences == 1);
  engine.run_until_idle();
  CHECK(got[1].ids == reference_greedy(m, prompts[1], 10));
  CHECK(got[1].reason == FinishReason::Length);
  CHECK(all_blocks_free(engine));
}

TEST_CASE("max_tokens 0 runs to the context limit", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompts = engine_test_prompts(m);
  auto cache = m.cache(64);
  EngineOptions opt;
  opt.context_length = 20;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  Collected c;
  engine.submit(greedy_request(prompts[0], 0, c));
  engine.run_until_idle();
  CHECK(c.reason == FinishReason::ContextLimit);
  CHECK(static_cast<int64_t>(prompts[0].size() + c.ids.size()) == 20);
  CHECK(c.ids == reference_greedy(m, prompts[0], static_cast<int>(c.ids.size())));
}

TEST_CASE("logprobs of prompt and sampled tokens are the log-softmax of the backend's logits", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompt = engine_test_prompts(m)[2];  // long enough for several chunks
  const auto n = static_cast<int64_t>(prompt.size());
  // Independent path: every prompt position's logits straight from the backend, log-softmax in double.
  DirectRun direct(m, 64);
  const SeqId seq = direct.blocks.add_sequence();
  StepLogits rows;
  direct.run({{seq, std::span<const int32_t>(prompt), LogitRows::All}}, rows);
  auto log_softmax_at = [&](int64_t row, int32_t id) {
    const float* r = rows.row(row);
    double mx = -1e300, sum = 0;
    for (int64_t v = 0; v < rows.vocab; ++v) mx = std::max(mx, static_cast<double>(r[v]));
    for (int64_t v = 0; v < rows.vocab; ++v) sum += std::exp(r[v] - mx);
    return r[id] - mx - std::log(sum);
  };

  auto cache = m.cache(64);
  EngineOptions opt;
  opt.prefill_chunk = 7;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  std::vector<PositionLogprobs> prompt_lp, token_lp;
  std::vector<int32_t> ids;
  int64_t next_position = 1;
  GenerationRequest r;
  r.prompt = prompt;
  r.max_tokens = 4;
  r.use_default_stop_tokens = false;
  r.logprobs = 3;
  r.prompt_logprobs = 2;
  r.on_event = [&](const GenerationEvent& e) {
    if (e.kind == GenerationEvent::Kind::PromptLogprobs) {
      CHECK(ids.empty());  // all prompt log-probabilities come before the first token
      CHECK(e.first_position == next_position);
      next_position += static_cast<int64_t>(e.logprobs.size());
      prompt_lp.insert(prompt_lp.end(), e.logprobs.begin(), e.logprobs.end());
    } else if (e.kind == GenerationEvent::Kind::Token) {
      ids.push_back(e.token);
      REQUIRE(e.logprobs.size() == 1);
      token_lp.push_back(e.logprobs[0]);
    }
  };
  engine.submit(std::move(r));
  engine.run_until_idle();

  REQUIRE(static_cast<int64_t>(prompt_lp.size()) == n - 1);
  for (int64_t q = 1; q < n; ++q) {
    const PositionLogprobs& p = prompt_lp[static_cast<size_t>(q - 1)];
    INFO("position " << q);
    CHECK(p.token.id == prompt[static_cast<size_t>(q)]);
    CHECK(p.token.logprob == Approx(log_softmax_at(q - 1, p.token.id)).margin(1e-4));
    REQUIRE(p.top.size() == 2);
    CHECK(p.top[0].logprob >= p.top[1].logprob);
    CHECK(p.top[0].logprob == Approx(log_softmax_at(q - 1, p.top[0].id)).margin(1e-4));
    CHECK(p.token.logprob <= p.top[0].logprob + 1e-6f);
  }
  // Greedy: each sampled token is the most likely one, and the first follows the last prompt row.
  REQUIRE(ids.size() == 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    REQUIRE(token_lp[i].top.size() == 3);
    CHECK(token_lp[i].token.id == ids[i]);
    CHECK(token_lp[i].top[0].id == ids[i]);
    CHECK(token_lp[i].token.logprob == token_lp[i].top[0].logprob);
  }
  CHECK(token_lp[0].token.logprob == Approx(log_softmax_at(n - 1, ids[0])).margin(1e-4));
  CHECK(ids == reference_greedy(m, prompt, 4));
  // Out of range is refused by name.
  Collected unused;
  GenerationRequest bad = greedy_request(prompt, 1, unused);
  bad.logprobs = 21;
  CHECK_THROWS_WITH(engine.submit(bad), Catch::Contains("logprobs must be"));
}
