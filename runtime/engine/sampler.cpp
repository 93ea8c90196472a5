#include "runtime/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/core/error.h"

namespace sparq {

// Below this a temperature means greedy, as in vLLM: 1 / temperature would overflow float (a
// denormal temperature gave NaN weights) long before the distribution differs from the argmax.
constexpr float kGreedyTemperature = 1e-5f;

void SamplingParams::validate(int64_t vocab) const {
  if (vocab <= 0) fail("sampling: the vocabulary is empty");
  if (!std::isfinite(temperature) || temperature < 0)
    fail("sampling: temperature must be a finite number >= 0 (0 = greedy), got ", temperature);
  if (top_k < 0) fail("sampling: top_k must be >= 0 (0 = off), got ", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("sampling: top_p must be in (0, 1] (1 = off), got ", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("sampling: min_p must be in [0, 1] (0 = off), got ", min_p);
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0)
    fail("sampling: repeat_penalty must be a finite number > 0 (1 = off), got ", repeat_penalty);
  if (!std::isfinite(presence_penalty)) fail("sampling: presence_penalty must be a finite number");
  if (!std::isfinite(frequency_penalty)) fail("sampling: frequency_penalty must be a finite number");
  if (penalty_last_n < -1)
    fail("sampling: penalty_last_n must be >= 0, or -1 for the whole history, got ", penalty_last_n);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= vocab)
      fail("sampling: logit_bias names token id ", id, ", outside the vocabulary (", vocab, " ids)");
    // -inf bans a token; +inf or NaN would make every probability undefined.
    if (std::isnan(bias) || bias == std::numeric_limits<float>::infinity())
      fail("sampling: logit_bias for token id ", id, " must be a finite number or -inf");
  }
}

Sampler::Sampler(const SamplingParams& params, int64_t vocab) : params_(params), vocab_(vocab), rng_(params.seed) {
  params_.validate(vocab);
}

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}  // namespace

void Sampler::adjust_logits(std::span<const float> logits, std::span<const int32_t> history) {
  if (static_cast<int64_t>(logits.size()) != vocab_)
    fail("sampling: got ", logits.size(), " logits for a vocabulary of ", vocab_);
  logits_.assign(logits.begin(), logits.end());
  bool any_nan = false;
  for (float v : logits_) any_nan |= (v != v);  // a branch-free pass; find which one only when needed
  if (any_nan)
    for (size_t i = 0; i < logits_.size(); ++i)
      if (std::isnan(logits_[i])) fail("sampling: the logit of token id ", i, " is NaN");
  // +inf (from the model, a huge bias, or a tiny repeat penalty dividing a large logit) becomes the
  // largest float: the token stays the most likely, and no inf - inf turns a weight into NaN.
  auto cap = [this] {
    for (float& v : logits_) v = std::min(v, std::numeric_limits<float>::max());
  };
  cap();
  for (const auto& [id, bias] : params_.logit_bias) logits_[static_cast<size_t>(id)] += bias;
  cap();
  apply_penalties(history);
  cap();
}

void Sampler::apply_penalties(std::span<const int32_t> history) {
  const bool any = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
  if (!any || params_.penalty_last_n == 0 || history.empty()) return;
  size_t n = history.size();
  if (params_.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(params_.penalty_last_n));
  window_.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(window_.begin(), window_.end());
  for (size_t i = 0; i < window_.size();) {
    const int32_t id = window_[i];
    size_t j = i;
    while (j < window_.size() && window_[j] == id) ++j;
    if (id < 0 || id >= vocab_) fail("sampling: history token id ", id, " is outside the vocabulary (", vocab_, " ids)");
    const auto count = static_cast<float>(j - i);
    float& logit = logits_[static_cast<size_t>(id)];
    if (logit == kNegInf) {  // banned stays banned (and -inf minus -inf would be NaN)
      i = j;
      continue;
    }
    // Kept finite, so that subtracting a penalty that overflowed to +-inf never gives inf - inf.
    constexpr float kMax = std::numeric_limits<float>::max();
    if (logit > 0) logit = std::min(logit / params_.repeat_penalty, kMax);
    else logit = std::max(logit * params_.repeat_penalty, -kMax);
    logit -= params_.presence_penalty + count * params_.frequency_penalty;
    i = j;
  }
}

namespace {
// Total order: higher logit first, lower id first among equal logits.
struct Better {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  }
};
}  // namespace

void Sampler::keep_top_k(size_t k) {
  if (k >= candidates_.size()) return;
  std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k), candidates_.end(), Better{});
  candidates_.resize(k);
  std::sort(candidates_.begin(), candidates_.end(), Better{});
  sorted_ = true;
}

void Sampler::keep_top_p() {
  const double need = params_.top_p * total_weight_;
  size_t keep = candidates_.size();  // rounding can leave the whole sum just under top_p: keep all
  if (sorted_) {
    double mass = 0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      mass += candidates_[i].weight;
      if (mass >= need) {
        keep = i + 1;  // the token that crosses top_p stays
        break;
      }
    }
    candidates_.resize(keep);
    return;
  }
  // Unsorted (no top-k): a weighted quickselect finds the token that crosses top_p in linear time,
  // then the candidates at least as good as it are kept in id order. The partition is written out
  // here (not std::partition, whose element order is unspecified) so the sums, and therefore the
  // cut, are the same with every standard library.
  scratch_.assign(candidates_.begin(), candidates_.end());
  const Better better;
  size_t lo = 0, hi = scratch_.size();
  double kept = 0;  // weight of the tokens known to be above the cut
  const Candidate* cut = nullptr;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    std::swap(scratch_[mid], scratch_[hi - 1]);
    const Candidate pivot = scratch_[hi - 1];
    size_t store = lo;
    double upper = 0;
    for (size_t j = lo; j + 1 < hi; ++j) {
      if (better(scratch_[j], pivot)) {
        upper += scratch_[j].weight;
        std::swap(scratch_[store++], scratch_[j]);
      }
    }
    std::swap(scratch_[store], scratch_[hi - 1]);
    if (kept + upper >= need) {
      hi = store;  // the crossing token is better than the pivot
    } else if (kept + upper + pivot.weight >= need) {
      cut = &scratch_[store];
      break;
    } else {
      kept += upper + pivot.weight;
      lo = store + 1;
    }
  }
  if (!cut) return;
  const Candidate last = *cut;
  std::erase_if(candidates_, [&](const Candidate& c) { return better(last, c); });
}

// p / p_max >= min_p, written on logits: (logit - max_logit) / temperature >= ln(min_p). On logits,
// it can run before the exponentials when top-p does not need them all, with the same result.
void Sampler::keep_min_p(float max_logit) {
  const float threshold = max_logit + params_.temperature * std::log(params_.min_p);
  std::erase_if(candidates_, [&](const Candidate& c) { return c.logit < threshold; });
}

void Sampler::filter_candidates() {
  candidates_.clear();
  sorted_ = false;
  if (params_.temperature < kGreedyTemperature) {
    size_t best = 0;
    for (size_t i = 1; i < logits_.size(); ++i)
      if (logits_[i] > logits_[best]) best = i;
    if (logits_[best] == kNegInf) fail("sampling: every token is banned (all logits are -inf after bias and penalties)");
    candidates_.push_back({static_cast<int32_t>(best), logits_[best], 1.0f});
    total_weight_ = 1.0;
    return;
  }
  const float max_logit = *std::max_element(logits_.begin(), logits_.end());
  // Branch-free compaction: every slot is written, only finite logits advance the end.
  candidates_.resize(logits_.size());
  size_t n = 0;
  for (size_t i = 0; i < logits_.size(); ++i) {
    candidates_[n] = {static_cast<int32_t>(i), logits_[i], 0.0f};
    n += logits_[i] != kNegInf;
  }
  candidates_.resize(n);
  if (candidates_.empty()) fail("sampling: every token is banned (all logits are -inf after bias and penalties)");

  if (params_.top_k > 0) keep_top_k(static_cast<size_t>(params_.top_k));
  const bool top_p = params_.top_p < 1.0f;
  const bool min_p = params_.min_p > 0.0f;
  if (min_p && !top_p) keep_min_p(max_logit);

  // Weights exp((logit - max) / temperature): the softmax without its division, done once at the end.
  const float inv_t = 1.0f / params_.temperature;
  total_weight_ = 0;
  for (auto& c : candidates_) {
    c.weight = std::exp((c.logit - max_logit) * inv_t);
    total_weight_ += c.weight;
  }
  if (top_p) {
    keep_top_p();
    if (min_p) keep_min_p(max_logit);
    total_weight_ = 0;
    for (const auto& c : candidates_) total_weight_ += c.weight;
  }
}

double Sampler::uniform() {
  // The top 53 bits of one 64-bit output: a double in [0, 1), identical on every platform.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  adjust_logits(logits, history);
  filter_candidates();
  if (candidates_.size() == 1) return candidates_[0].id;
  const double target = uniform() * total_weight_;
  double cumulative = 0;
  for (const auto& c : candidates_) {
    cumulative += c.weight;
    if (target < cumulative) return c.id;
  }
  return candidates_.back().id;  // rounding left the sum just under the total
}

Sampler::Verdict Sampler::verify(std::span<const float> logits, std::span<const int32_t> history, int32_t draft) {
  adjust_logits(logits, history);
  filter_candidates();
  if (candidates_.size() == 1) return {candidates_[0].id, candidates_[0].id == draft};
  double draft_weight = 0;
  for (const auto& c : candidates_)
    if (c.id == draft) draft_weight = c.weight;
  if (uniform() * total_weight_ < draft_weight) return {draft, true};
  // Rejected: the residual max(0, p - q) with q a point mass on the draft is p without the draft.
  const double rest = total_weight_ - draft_weight;
  const double target = uniform() * rest;
  double cumulative = 0;
  int32_t last = -1;
  for (const auto& c : candidates_) {
    if (c.id == draft) continue;
    cumulative += c.weight;
    last = c.id;
    if (target < cumulative) return {c.id, false};
  }
  return {last, false};  // rounding left the sum just under the rest
}

std::vector<TokenProbability> Sampler::candidates(std::span<const float> logits, std::span<const int32_t> history) {
  adjust_logits(logits, history);
  filter_candidates();
  std::vector<TokenProbability> out;
  out.reserve(candidates_.size());
  for (const auto& c : candidates_) out.push_back({c.id, static_cast<float>(c.weight / total_weight_)});
  return out;
}

}  // namespace sparq
