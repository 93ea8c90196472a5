#include "runtime/engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sparq {

PositionLogprobs position_logprobs(std::span<const float> logits, int32_t token, int32_t top) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double log_norm = max + std::log(sum);
  auto logprob = [&](int32_t id) { return static_cast<float>(logits[static_cast<size_t>(id)] - log_norm); };

  PositionLogprobs out;
  out.token = {token, logprob(token)};
  if (top <= 0) return out;
  // The best `top` so far, kept sorted (logit descending, id ascending); top is at most 20.
  const size_t k = std::min(static_cast<size_t>(top), logits.size());
  std::vector<int32_t> best;
  best.reserve(k + 1);
  auto better = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  for (int32_t id = 0; id < static_cast<int32_t>(logits.size()); ++id) {
    if (best.size() == k && !better(id, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), id, better), id);
    if (best.size() > k) best.pop_back();
  }
  for (int32_t id : best) out.top.push_back({id, logprob(id)});
  return out;
}

}  // namespace sparq
