#include "runtime/selftest/backend_compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace sparq {

namespace {

double rel_difference(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();  // a NaN or inf logit on either side
    diff = std::max(diff, d);
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

float probability_of(const std::vector<TokenProbability>& candidates, int32_t id) {
  for (const TokenProbability& c : candidates)
    if (c.id == id) return c.probability;
  return 0;
}

}  // namespace

PromptRun run_sampled(const LoadedModel& model, std::span<const int32_t> prompt, int64_t tokens,
                      const SamplingParams& sampling) {
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::unique_ptr<Sampler> sampler;
  return run_prompt(model, prompt, tokens, [&](std::span<const float> row, int64_t) {
    if (!sampler) sampler = std::make_unique<Sampler>(sampling, static_cast<int64_t>(row.size()));
    const int32_t t = sampler->sample(row, history);
    history.push_back(t);
    return t;
  });
}

RunComparison compare_runs(const PromptRun& a, const PromptRun& b, std::span<const int32_t> prompt,
                           const SamplingParams& sampling, double tolerance) {
  RunComparison c;
  const int64_t vocab = a.vocab;
  const int64_t positions = static_cast<int64_t>(a.prompt_logits.size()) / std::max<int64_t>(vocab, 1);
  for (int64_t p = 0; p < positions; ++p) {
    const float* ra = a.prompt_row(p);
    const float* rb = b.prompt_row(p);
    const double rel = rel_difference(ra, rb, vocab);
    const bool same = argmax_token({ra, static_cast<size_t>(vocab)}) == argmax_token({rb, static_cast<size_t>(vocab)});
    c.position_rel.push_back(rel);
    c.position_top1_same.push_back(same);
    c.max_rel = std::max(c.max_rel, rel);
    c.top1_differ += same ? 0 : 1;
  }
  if (!(c.max_rel <= tolerance)) c.ok = false;

  c.tokens = static_cast<int64_t>(std::min(a.continuation.size(), b.continuation.size()));
  for (int64_t k = 0; k < c.tokens; ++k) {
    if (a.continuation[static_cast<size_t>(k)] == b.continuation[static_cast<size_t>(k)]) continue;
    // Both sides read the same prefix up to here, so these rows are comparable.
    c.divergence = k;
    c.token_a = a.continuation[static_cast<size_t>(k)];
    c.token_b = b.continuation[static_cast<size_t>(k)];
    c.divergence_rel = rel_difference(a.continuation_row(k), b.continuation_row(k), vocab);
    std::vector<int32_t> history(prompt.begin(), prompt.end());
    history.insert(history.end(), a.continuation.begin(), a.continuation.begin() + k);
    Sampler inspect(sampling, vocab);
    const auto candidates = inspect.candidates({a.continuation_row(k), static_cast<size_t>(vocab)}, history);
    c.probability_a[0] = probability_of(candidates, c.token_a);
    c.probability_a[1] = probability_of(candidates, c.token_b);
    c.near_tie = c.divergence_rel <= tolerance;
    char buf[400];
    if (c.near_tie) {
      std::snprintf(buf, sizeof buf,
                    "token %lld: %d vs %d, a near-tie: the logits there agree within %.3g of the row's largest "
                    "(tolerance %.3g) and the same draw fell between two tokens of probability %.4f and %.4f",
                    static_cast<long long>(k), c.token_a, c.token_b, c.divergence_rel, tolerance, c.probability_a[0],
                    c.probability_a[1]);
    } else {
      c.ok = false;
      std::snprintf(buf, sizeof buf,
                    "token %lld: %d vs %d, a real error: the logits there differ by %.3g of the row's largest "
                    "(tolerance %.3g)",
                    static_cast<long long>(k), c.token_a, c.token_b, c.divergence_rel, tolerance);
    }
    c.explanation = buf;
    break;
  }
  if (c.divergence < 0) c.explanation = "all " + std::to_string(c.tokens) + " sampled tokens equal";
  return c;
}

nlohmann::json comparison_json(const RunComparison& c) {
  auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json("inf"); };
  nlohmann::json rel = nlohmann::json::array();
  for (double v : c.position_rel) rel.push_back(finite(v));
  nlohmann::json j = {{"ok", c.ok},
                      {"max_rel_difference", finite(c.max_rel)},
                      {"position_rel_difference", std::move(rel)},
                      {"top1_differ", c.top1_differ},
                      {"tokens", c.tokens},
                      {"divergence", c.divergence >= 0 ? nlohmann::json(c.divergence) : nlohmann::json(nullptr)},
                      {"explanation", c.explanation}};
  if (c.divergence >= 0) {
    j["near_tie"] = c.near_tie;
    j["divergence_rel_difference"] = finite(c.divergence_rel);
    j["tokens_differing"] = {c.token_a, c.token_b};
  }
  return j;
}

}  // namespace sparq
