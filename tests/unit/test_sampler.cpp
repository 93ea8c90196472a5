// Sampler: greedy, seeded reproducibility, each filter and penalty on crafted logits, validation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/engine/sampler.h"

using sparq::Sampler;
using sparq::SamplingParams;

namespace {

std::set<int32_t> candidate_ids(Sampler& s, const std::vector<float>& logits, const std::vector<int32_t>& history = {}) {
  std::set<int32_t> out;
  for (const auto& c : s.candidates(logits, history)) out.insert(c.id);
  return out;
}

// Logits whose softmax (temperature 1) is exactly these probabilities.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

std::vector<int32_t> draw(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits, {}));
  return out;
}

std::vector<float> ramp(int n) {
  std::vector<float> out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<float>((i * 37) % 11) * 0.3f);
  return out;
}

}  // namespace

TEST_CASE("sampler: greedy picks the highest logit, the lowest id on ties", "[sampling]") {
  Sampler s(SamplingParams{}, 5);
  CHECK(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 2.0f, 1.9f}, {}) == 1);
  CHECK(s.sample(std::vector<float>{-5.0f, -5.0f, -5.0f, -5.0f, -5.0f}, {}) == 0);
}

TEST_CASE("sampler: the same seed gives the same sequence, another seed differs", "[sampling]") {
  const auto logits = ramp(1000);
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 1234;
  Sampler a(p, 1000), b(p, 1000);
  const auto sa = draw(a, logits, 200);
  CHECK(sa == draw(b, logits, 200));
  p.seed = 1235;
  Sampler c(p, 1000);
  CHECK(sa != draw(c, logits, 200));
}

TEST_CASE("sampler: draws from a fixed seed are the same on every platform", "[sampling]") {
  // mt19937_64 is specified bit for bit; the uniform comes from its raw output, so these ids are fixed.
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler s(p, 4);
  const auto logits = logits_of({0.25, 0.25, 0.25, 0.25});
  std::mt19937_64 ref(42);
  for (int i = 0; i < 50; ++i) {
    const double u = static_cast<double>(ref() >> 11) * 0x1.0p-53;
    CHECK(s.sample(logits, {}) == static_cast<int32_t>(u * 4));
  }
}

TEST_CASE("sampler: top-k 1 equals greedy at any temperature", "[sampling]") {
  const auto logits = ramp(5000);
  SamplingParams greedy;
  SamplingParams k1;
  k1.temperature = 2.0f;
  k1.top_k = 1;
  k1.seed = 7;
  Sampler g(greedy, 5000), s(k1, 5000);
  const int32_t best = g.sample(logits, {});
  for (int i = 0; i < 20; ++i) CHECK(s.sample(logits, {}) == best);
}

TEST_CASE("sampler: top-k keeps the k highest logits", "[sampling]") {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  Sampler s(p, 6);
  CHECK(candidate_ids(s, {0.5f, 3.0f, 1.0f, 2.0f, -1.0f, 2.5f}) == std::set<int32_t>{1, 3, 5});
}

TEST_CASE("sampler: top-p keeps the smallest set whose probability reaches top_p", "[sampling]") {
  const auto logits = logits_of({0.125, 0.5, 0.0625, 0.25, 0.0625});
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.75
  Sampler s(p, 5);
  const auto cands = s.candidates(logits, {});
  REQUIRE(cands.size() == 2);
  CHECK(cands[0].id == 1);
  CHECK(cands[1].id == 3);
  CHECK(cands[0].probability == Approx(2.0 / 3));
  CHECK(cands[1].probability == Approx(1.0 / 3));

  p.top_p = 0.8f;  // 0.75 < 0.8 <= 0.875
  Sampler s2(p, 5);
  CHECK(candidate_ids(s2, logits) == std::set<int32_t>{1, 3, 0});
  p.top_p = 0.3f;
  Sampler s3(p, 5);
  CHECK(candidate_ids(s3, logits) == std::set<int32_t>{1});
}

TEST_CASE("sampler: top-p over a large vocabulary sorts only what it needs", "[sampling]") {
  // 256k tokens: one at 40%, 300 at 0.1% each, the rest share what is left. top_p 0.65 needs 251 tokens.
  const int vocab = 256000;
  std::vector<double> probs(vocab, (1.0 - 0.4 - 0.3) / (vocab - 301));
  probs[1000] = 0.4;
  for (int i = 0; i < 300; ++i) probs[static_cast<size_t>(5000 + i * 7)] = 0.001;
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.65f;
  Sampler s(p, vocab);
  const auto ids = candidate_ids(s, logits_of(probs));
  CHECK(ids.size() == 251);
  CHECK(ids.count(1000) == 1);
  CHECK(*ids.rbegin() <= 5000 + 299 * 7);
}

TEST_CASE("sampler: min-p keeps tokens at least min_p times the most likely", "[sampling]") {
  const auto logits = logits_of({0.125, 0.5, 0.0625, 0.25, 0.0625});
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.2f;  // threshold 0.1
  Sampler s(p, 5);
  CHECK(candidate_ids(s, logits) == std::set<int32_t>{0, 1, 3});
  p.min_p = 0.4f;  // threshold 0.2
  Sampler s2(p, 5);
  CHECK(candidate_ids(s2, logits) == std::set<int32_t>{1, 3});
}

TEST_CASE("sampler: empirical frequencies follow the filtered distribution", "[sampling]") {
  const auto logits = logits_of({0.125, 0.5, 0.0625, 0.25, 0.0625});
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;
  p.seed = 99;
  Sampler s(p, 5);
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits, {})];
  CHECK(counts.size() == 2);
  CHECK(counts[1] / double(n) == Approx(2.0 / 3).margin(0.02));
  CHECK(counts[3] / double(n) == Approx(1.0 / 3).margin(0.02));
}

TEST_CASE("sampler: temperature sharpens or flattens the distribution", "[sampling]") {
  const auto logits = logits_of({0.5, 0.25, 0.25});
  SamplingParams p;
  p.temperature = 0.5f;  // probabilities squared, renormalised: 4/6, 1/6, 1/6
  Sampler s(p, 3);
  const auto c = s.candidates(logits, {});
  REQUIRE(c.size() == 3);
  CHECK(c[0].probability == Approx(4.0 / 6));
  CHECK(c[1].probability == Approx(1.0 / 6));
}

TEST_CASE("sampler: repeat penalty divides positive and multiplies negative logits of seen tokens", "[sampling]") {
  SamplingParams p;
  p.repeat_penalty = 2.0f;
  p.temperature = 1.0f;
  Sampler s(p, 4);
  // Token 0 (logit 3) seen: 1.5 < 2 (token 1, unseen) -> greedy would be 1; check via probabilities.
  const std::vector<float> logits{3.0f, 2.0f, -1.0f, -1.0f};
  const auto c = s.candidates(logits, std::vector<int32_t>{0, 2, 0});
  std::map<int32_t, double> prob;
  for (const auto& t : c) prob[t.id] = t.probability;
  // Adjusted logits: 1.5, 2, -2 (seen, multiplied), -1 (unseen); once per id however often seen.
  const double z = std::exp(1.5) + std::exp(2.0) + std::exp(-2.0) + std::exp(-1.0);
  CHECK(prob[0] == Approx(std::exp(1.5) / z));
  CHECK(prob[1] == Approx(std::exp(2.0) / z));
  CHECK(prob[2] == Approx(std::exp(-2.0) / z));
  CHECK(prob[3] == Approx(std::exp(-1.0) / z));

  SamplingParams g;
  g.repeat_penalty = 2.0f;
  Sampler greedy(g, 4);
  CHECK(greedy.sample(logits, std::vector<int32_t>{0}) == 1);
  CHECK(greedy.sample(logits, std::vector<int32_t>{1}) == 0);
}

TEST_CASE("sampler: penalties look only at the last penalty_last_n ids", "[sampling]") {
  SamplingParams p;
  p.repeat_penalty = 10.0f;
  p.penalty_last_n = 2;
  Sampler s(p, 3);
  const std::vector<float> logits{3.0f, 2.0f, 1.0f};
  CHECK(s.sample(logits, std::vector<int32_t>{0, 2, 2}) == 0);  // 0 is outside the window
  CHECK(s.sample(logits, std::vector<int32_t>{2, 0, 2}) == 1);
  p.penalty_last_n = -1;
  Sampler whole(p, 3);
  CHECK(whole.sample(logits, std::vector<int32_t>{0, 2, 2, 2, 2}) == 1);
  p.penalty_last_n = 0;
  Sampler off(p, 3);
  CHECK(off.sample(logits, std::vector<int32_t>{0}) == 0);
}

TEST_CASE("sampler: presence penalty once per seen token, frequency penalty times the count", "[sampling]") {
  const std::vector<float> logits{1.0f, 1.0f, 1.0f};
  const std::vector<int32_t> history{0, 0, 0, 1};
  auto adjusted = [&](const SamplingParams& p) {
    Sampler s(p, 3);
    std::map<int32_t, double> prob;
    for (const auto& t : s.candidates(logits, history)) prob[t.id] = t.probability;
    // Logit differences relative to the unseen token 2.
    return std::vector<double>{std::log(prob[0] / prob[2]), std::log(prob[1] / prob[2])};
  };
  SamplingParams presence;
  presence.temperature = 1.0f;
  presence.presence_penalty = 0.5f;
  auto d = adjusted(presence);
  CHECK(d[0] == Approx(-0.5));
  CHECK(d[1] == Approx(-0.5));

  SamplingParams frequency;
  frequency.temperature = 1.0f;
  frequency.frequency_penalty = 0.25f;
  d = adjusted(frequency);
  CHECK(d[0] == Approx(-0.75));
  CHECK(d[1] == Approx(-0.25));
}

TEST_CASE("sampler: logit bias is added before everything, -inf bans", "[sampling]") {
  SamplingParams p;
  p.logit_bias = {{2, 5.0f}};
  Sampler s(p, 3);
  CHECK(s.sample(std::vector<float>{3.0f, 2.0f, 1.0f}, {}) == 2);
  p.logit_bias = {{0, -std::numeric_limits<float>::infinity()}};
  p.temperature = 1.0f;
  Sampler ban(p, 3);
  CHECK(candidate_ids(ban, {3.0f, 2.0f, 1.0f}) == std::set<int32_t>{1, 2});
  p.logit_bias = {{0, -std::numeric_limits<float>::infinity()}, {1, -std::numeric_limits<float>::infinity()},
                  {2, -std::numeric_limits<float>::infinity()}};
  Sampler all(p, 3);
  CHECK_THROWS_WITH(all.sample(std::vector<float>{3.0f, 2.0f, 1.0f}, {}), Catch::Contains("banned"));
}

TEST_CASE("sampler: validate names the bad field", "[sampling]") {
  auto rejects = [](SamplingParams p, const char* field) {
    INFO(field);
    CHECK_THROWS_WITH(p.validate(100), Catch::Contains(field));
  };
  SamplingParams p;
  CHECK_NOTHROW(p.validate(100));
  p.temperature = -0.1f;
  rejects(p, "temperature");
  p = {};
  p.temperature = std::numeric_limits<float>::quiet_NaN();
  rejects(p, "temperature");
  p = {};
  p.top_p = 0.0f;
  rejects(p, "top_p");
  p.top_p = 1.5f;
  rejects(p, "top_p");
  p = {};
  p.top_k = -1;
  rejects(p, "top_k");
  p = {};
  p.min_p = 1.5f;
  rejects(p, "min_p");
  p.min_p = -0.1f;
  rejects(p, "min_p");
  p = {};
  p.repeat_penalty = 0.0f;
  rejects(p, "repeat_penalty");
  p = {};
  p.presence_penalty = std::numeric_limits<float>::infinity();
  rejects(p, "presence_penalty");
  p = {};
  p.frequency_penalty = std::numeric_limits<float>::quiet_NaN();
  rejects(p, "frequency_penalty");
  p = {};
  p.penalty_last_n = -2;
  rejects(p, "penalty_last_n");
  p = {};
  p.logit_bias = {{100, 1.0f}};
  rejects(p, "logit_bias");
  p.logit_bias = {{-1, 1.0f}};
  rejects(p, "logit_bias");
  p.logit_bias = {{3, std::numeric_limits<float>::quiet_NaN()}};
  rejects(p, "logit_bias");
  p = {};
  CHECK_THROWS_WITH(Sampler(p, 0), Catch::Contains("vocabulary"));
}

TEST_CASE("sampler: bad logits and history are refused", "[sampling]") {
  Sampler s(SamplingParams{}, 3);
  CHECK_THROWS_WITH(s.sample(std::vector<float>{1.0f, 2.0f}, {}), Catch::Contains("2 logits"));
  CHECK_THROWS_WITH(s.sample(std::vector<float>{1.0f, std::nanf(""), 0.0f}, {}), Catch::Contains("NaN"));
  SamplingParams p;
  p.repeat_penalty = 1.1f;
  Sampler pen(p, 3);
  CHECK_THROWS_WITH(pen.sample(std::vector<float>{1.0f, 2.0f, 3.0f}, std::vector<int32_t>{7}), Catch::Contains("outside"));
}

TEST_CASE("extreme parameters never turn probabilities into NaN (fuzz regressions)", "[sampling]") {
  const std::vector<float> logits = {2.0f, 0.5f, -1.0f, 0.0f};
  auto check_distribution = [&](Sampler& s, const std::vector<int32_t>& history) {
    const auto c = s.candidates(logits, history);
    REQUIRE_FALSE(c.empty());
    double sum = 0;
    for (const auto& t : c) {
      CHECK(std::isfinite(t.probability));
      sum += t.probability;
    }
    CHECK(sum == Approx(1.0).epsilon(1e-5));
    const int32_t id = s.sample(logits, history);
    CHECK((id >= 0 && id < 4));
  };
  SECTION("a denormal temperature is greedy (1 / temperature would overflow)") {
    SamplingParams p;
    p.temperature = 2e-42f;
    Sampler s(p, 4);
    CHECK(s.sample(logits, {}) == 0);
    CHECK(s.candidates(logits, {}).size() == 1);
  }
  SECTION("a tiny repeat penalty divides a positive logit past the float range") {
    SamplingParams p;
    p.temperature = 0.8f;
    p.repeat_penalty = 1e-40f;
    Sampler s(p, 4);
    check_distribution(s, {0, 1});
  }
  SECTION("a frequency penalty that overflows with the count, on banned and negative logits") {
    SamplingParams p;
    p.temperature = 1.0f;
    p.repeat_penalty = 1e30f;
    p.frequency_penalty = -3e38f;
    p.logit_bias = {{1, -std::numeric_limits<float>::infinity()}};
    Sampler s(p, 4);
    check_distribution(s, {1, 1, 1, 2, 2, 2});
  }
}
