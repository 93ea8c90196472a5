// Speculative decoding: prompt-lookup drafting, the sampler's verdict on a guess (greedy, and
// rejection sampling checked statistically on a small vocabulary), and the engine with several
// drafters - good, partly wrong, always wrong, a draft model - giving exactly the greedy tokens of
// plain decoding, with stop tokens, max_tokens, sessions and the KV cache all still right.
#include <catch2/catch.hpp>

#include <cmath>
#include <deque>
#include <map>
#include <random>

#include "engine_test_util.h"
#include "runtime/engine/draft_model_drafter.h"
#include "runtime/engine/ngram_drafter.h"

using namespace sparq;
using namespace sparq::test;

namespace {

constexpr int kTokens = 16;

// Proposes the known greedy continuation of each prompt, with every `wrong_every`-th guess of a
// proposal wrong (0: never), so a step keeps some guesses and rejects the rest.
class OracleDrafter final : public Drafter {
 public:
  OracleDrafter(std::vector<std::vector<int32_t>> prompts, std::vector<std::vector<int32_t>> outputs, int64_t vocab,
                int wrong_every)
      : prompts_(std::move(prompts)), outputs_(std::move(outputs)), vocab_(vocab), wrong_every_(wrong_every) {}
  void propose(std::span<DraftRequest> requests) override {
    for (DraftRequest& r : requests) {
      ++asked;
      for (size_t p = 0; p < prompts_.size(); ++p) {
        const auto& prompt = prompts_[p];
        if (r.tokens.size() < prompt.size() || !std::equal(prompt.begin(), prompt.end(), r.tokens.begin())) continue;
        const size_t done = r.tokens.size() - prompt.size();
        for (size_t i = done; i < outputs_[p].size() && static_cast<int64_t>(r.drafts.size()) < r.max_drafts; ++i) {
          int32_t id = outputs_[p][i];
          if (wrong_every_ > 0 && (r.drafts.size() + 1) % static_cast<size_t>(wrong_every_) == 0)
            id = static_cast<int32_t>((id + 1) % vocab_);
          r.drafts.push_back(id);
        }
        break;
      }
    }
  }
  void forget(RequestId) override {}
  const char* name() const override { return "oracle"; }
  int64_t asked = 0;

 private:
  std::vector<std::vector<int32_t>> prompts_, outputs_;
  int64_t vocab_;
  int wrong_every_;
};

// Guesses at random: nearly every guess is rejected.
class RandomDrafter final : public Drafter {
 public:
  explicit RandomDrafter(int64_t vocab) : vocab_(vocab) {}
  void propose(std::span<DraftRequest> requests) override {
    for (DraftRequest& r : requests)
      for (int64_t i = 0; i < r.max_drafts; ++i)
        r.drafts.push_back(static_cast<int32_t>(rng_() % static_cast<uint64_t>(vocab_)));
  }
  void forget(RequestId) override {}
  const char* name() const override { return "random"; }

 private:
  int64_t vocab_;
  std::mt19937_64 rng_{7};
};

std::vector<Collected> run_batch(FixtureModel& m, const std::vector<std::vector<int32_t>>& prompts, Drafter* drafter,
                                 int draft_tokens, int64_t* accepted = nullptr) {
  auto cache = m.cache(256);
  EngineOptions opt;
  opt.prefill_chunk = 8;
  opt.max_step_tokens = 32;
  opt.drafter = drafter;
  opt.draft_tokens = draft_tokens;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  std::deque<Collected> got(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) engine.submit(greedy_request(prompts[i], kTokens, got[i]));
  engine.run_until_idle();
  CHECK(all_blocks_free(engine));
  if (accepted) *accepted = engine.totals().accepted_tokens;
  CHECK(engine.totals().accepted_tokens <= engine.totals().drafted_tokens);
  return {got.begin(), got.end()};
}

// Tokens that repeat: prompt lookup finds matches in them.
std::vector<int32_t> repetitive_prompt(const FixtureModel& m) {
  return m.tok.tokenizer->encode("one two three four one two three four one two three four one two", true);
}

}  // namespace

TEST_CASE("prompt lookup proposes what followed the latest earlier match of the longest suffix", "[speculative]") {
  NgramDrafter d(1, 3);
  const std::vector<int32_t> t{1, 2, 3, 4, 1, 2};
  CHECK(d.lookup(t, 3) == std::vector<int32_t>{3, 4, 1});  // suffix "1 2" matched at 0
  // Past the end the copy repeats itself: the cycle goes on.
  CHECK(d.lookup(t, 10) == std::vector<int32_t>{3, 4, 1, 2, 3, 4, 1, 2, 3, 4});
  CHECK(d.lookup(std::vector<int32_t>{6, 7, 7, 7}, 3) == std::vector<int32_t>{7, 7, 7});
  CHECK(d.lookup(t, 0).empty());
  // The latest of two matches wins, and a longer suffix beats a shorter one.
  CHECK(d.lookup(std::vector<int32_t>{5, 9, 5, 8, 5}, 2) == std::vector<int32_t>{8, 5});
  CHECK(d.lookup(std::vector<int32_t>{7, 1, 2, 6, 2, 9, 1, 2}, 1) == std::vector<int32_t>{6});
  CHECK(d.lookup(std::vector<int32_t>{1, 2, 3}, 4).empty());  // no earlier occurrence
  CHECK(d.lookup(std::vector<int32_t>{4}, 4).empty());
  CHECK_THROWS_WITH(NgramDrafter(0, 3), Catch::Contains("min n"));
  CHECK_THROWS_WITH(NgramDrafter(3, 2), Catch::Contains("max n"));
}

TEST_CASE("greedy verdicts keep a guess exactly when it is the argmax", "[speculative]") {
  Sampler s(SamplingParams{}, 4);
  const std::vector<float> logits{0.1f, 2.0f, 2.0f, -1.0f};  // a tie: the lower id is the argmax
  CHECK(s.verify(logits, {}, 1).accepted);
  CHECK(s.verify(logits, {}, 1).token == 1);
  const auto v = s.verify(logits, {}, 2);
  CHECK(!v.accepted);
  CHECK(v.token == 1);
}

TEST_CASE("sampled verdicts follow the sampler's distribution whatever the guess", "[speculative]") {
  // Five ids, temperature 0.8, top-k 4: the filtered distribution p comes from candidates().
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 4;
  params.seed = 11;
  const std::vector<float> logits{1.0f, 0.2f, 1.6f, -0.5f, 0.7f};
  Sampler probe(params, 5);
  std::vector<double> p(5, 0.0);
  for (const auto& c : probe.candidates(logits, {})) p[static_cast<size_t>(c.id)] = c.probability;
  REQUIRE(p[3] == 0.0);  // cut by top-k
  constexpr int kDraws = 200000;
  // Guesses: the likeliest id, an unlikely one, and one top-k removed (never kept).
  for (int32_t guess : {2, 1, 3}) {
    INFO("guess " << guess);
    Sampler s(params, 5);
    std::vector<int> counts(5, 0);
    int kept = 0;
    for (int i = 0; i < kDraws; ++i) {
      const auto v = s.verify(logits, {}, guess);
      ++counts[static_cast<size_t>(v.token)];
      kept += v.accepted ? 1 : 0;
      if (v.accepted) REQUIRE(v.token == guess);
      else REQUIRE(v.token != guess);
    }
    // Pearson's chi-square over the ids p allows (3 degrees of freedom): 16.27 is its 0.1% quantile
    // (a seeded run, so the test is deterministic; the bound says the fit is not a fluke).
    double chi2 = 0;
    for (size_t id = 0; id < 5; ++id) {
      if (p[id] == 0) {
        CHECK(counts[id] == 0);
        continue;
      }
      const double expect = p[id] * kDraws;
      chi2 += (counts[id] - expect) * (counts[id] - expect) / expect;
    }
    CHECK(chi2 < 16.27);
    // A guess is kept with its probability (binomial standard error at 200k draws: < 0.0012).
    CHECK(std::abs(static_cast<double>(kept) / kDraws - p[static_cast<size_t>(guess)]) < 0.005);
  }
}

TEST_CASE("speculative greedy decoding gives the tokens of plain decoding, whatever the guesses", "[speculative][engine]") {
  for (const char* name : {"llama-w8a8-int8", "gemma2-bf16"}) {
    SECTION(name) {
      FixtureModel m(name);
      auto prompts = engine_test_prompts(m);
      prompts.push_back(repetitive_prompt(m));
      std::vector<std::vector<int32_t>> expected;
      for (const auto& p : prompts) expected.push_back(reference_greedy(m, p, kTokens));

      OracleDrafter right(prompts, expected, m.vocab(), 0), partly(prompts, expected, m.vocab(), 3);
      RandomDrafter random(m.vocab());
      NgramDrafter lookup(1, 3);
      struct Case {
        const char* what;
        Drafter* drafter;
        int k;
      };
      for (const Case& c : {Case{"all guesses right", &right, 4}, Case{"every third guess wrong", &partly, 5},
                            Case{"random guesses", &random, 3}, Case{"prompt lookup", &lookup, 4},
                            Case{"one guess", &right, 1}}) {
        INFO(c.what);
        int64_t accepted = 0;
        const auto got = run_batch(m, prompts, c.drafter, c.k, &accepted);
        for (size_t i = 0; i < prompts.size(); ++i) {
          INFO("prompt " << i);
          CHECK(got[i].ids == expected[i]);
          CHECK(got[i].reason == FinishReason::Length);
          CHECK(got[i].text == m.tok.tokenizer->decode(got[i].ids, true));
        }
        if (c.drafter == &right) CHECK(accepted > 0);
        if (c.drafter == &right && c.k == 4) {
          // Every guess right: each decode step gains k tokens, never past max_tokens.
          for (const auto& g : got) CHECK(g.stats.accepted_tokens == g.stats.drafted_tokens);
        }
      }
    }
  }
}

TEST_CASE("a draft model's guesses keep the target's greedy tokens", "[speculative][engine]") {
  // The draft: the same tiny architecture quantized differently (same tokenizer), so it mostly agrees.
  for (const auto& [target_name, draft_name] :
       {std::pair{"llama-bf16", "llama-w8a8-int8"}, std::pair{"gemma2-bf16", "gemma2-w4a16"}}) {
    SECTION(target_name) {
      FixtureModel target(target_name), draft(draft_name);
      auto prompts = engine_test_prompts(target);
      std::vector<std::vector<int32_t>> expected;
      for (const auto& p : prompts) expected.push_back(reference_greedy(target, p, kTokens));
      auto draft_cache = draft.cache(256);
      DraftModelDrafter drafter(*draft.prepared, *draft_cache, target.vocab(), 8);
      int64_t accepted = 0;
      const auto got = run_batch(target, prompts, &drafter, 4, &accepted);
      for (size_t i = 0; i < prompts.size(); ++i) CHECK(got[i].ids == expected[i]);
      CHECK(accepted > 0);
      auto probe = draft.cache(1);
      CHECK_THROWS_WITH(DraftModelDrafter(*draft.prepared, *probe, target.vocab() + 1), Catch::Contains("vocabulary"));
    }
  }
}

TEST_CASE("stop tokens, max_tokens and sessions stay exact among kept guesses", "[speculative][engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompts = engine_test_prompts(m);
  const auto& a = prompts[2];
  const auto expected = reference_greedy(m, a, kTokens);
  OracleDrafter right({a}, {expected}, m.vocab(), 0);
  auto cache = m.cache(256);
  EngineOptions opt;
  opt.drafter = &right;
  opt.draft_tokens = 6;
  opt.prefix_cache = false;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);

  // A stop token in the middle of a run of kept guesses ends the request there.
  size_t stop_at = 5;
  while (std::find(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(stop_at), expected[stop_at]) !=
         expected.begin() + static_cast<std::ptrdiff_t>(stop_at))
    ++stop_at;  // its first occurrence
  REQUIRE(stop_at < expected.size());
  {
    Collected c;
    GenerationRequest r = greedy_request(a, kTokens, c);
    r.stop_token_ids = {expected[stop_at]};
    engine.submit(std::move(r));
    engine.run_until_idle();
    CHECK(c.reason == FinishReason::StopToken);
    CHECK(c.ids == std::vector<int32_t>(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(stop_at) + 1));
    CHECK(all_blocks_free(engine));
  }
  // max_tokens smaller than what the guesses offer.
  for (int64_t n : {1, 2, 3, 7}) {
    Collected c;
    engine.submit(greedy_request(a, n, c));
    engine.run_until_idle();
    CHECK(c.ids == std::vector<int32_t>(expected.begin(), expected.begin() + n));
    CHECK(c.stats.generated_tokens == n);
  }
  // A session keeps exactly the fed ids, so its next turn continues from a correct cache.
  const SessionId chat = engine.open_session();
  Collected t1;
  GenerationRequest r1 = greedy_request(a, 9, t1);
  r1.session = chat;
  engine.submit(std::move(r1));
  engine.run_until_idle();
  CHECK(t1.ids == std::vector<int32_t>(expected.begin(), expected.begin() + 9));
  std::vector<int32_t> b = a;
  b.insert(b.end(), t1.ids.begin(), t1.ids.end());
  const auto held = engine.session_tokens(chat);
  // Every fed id (the last sampled one too when it was a kept guess), and nothing else.
  CHECK(held.size() + 1 >= b.size());
  CHECK(held.size() <= b.size());
  CHECK(std::equal(held.begin(), held.end(), b.begin()));
  const auto more = m.tok.tokenizer->encode(" and so on", false);
  b.insert(b.end(), more.begin(), more.end());
  Collected t2;
  GenerationRequest r2 = greedy_request(b, 6, t2);
  r2.session = chat;
  engine.submit(std::move(r2));
  engine.run_until_idle();
  CHECK(t2.ids == reference_greedy(m, b, 6));
  CHECK(t2.stats.reused_tokens > 0);
  engine.close_session(chat);
  CHECK(all_blocks_free(engine));
}

TEST_CASE("engine options check the number of guesses", "[speculative][engine]") {
  NgramDrafter d;
  EngineOptions opt;
  opt.drafter = &d;
  opt.draft_tokens = 0;
  CHECK_THROWS_WITH(opt.validate(), Catch::Contains("draft_tokens"));
  opt.draft_tokens = 33;
  CHECK_THROWS_WITH(opt.validate(), Catch::Contains("draft_tokens"));
  opt.draft_tokens = 8;
  CHECK_NOTHROW(opt.validate());
}
