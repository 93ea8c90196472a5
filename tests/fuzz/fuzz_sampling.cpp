// libFuzzer target for sampling parameters as a client sends them (the server's temperature,
// top_p, penalties, logit_bias, seed...) and the logits a model returns. The input is read as raw
// fields, so NaN, infinities, negative and huge values all occur.
// Invariants: the parameters are accepted or refused with sparq::Error (never a crash); an accepted
// sampler returns an id inside the vocabulary; its candidates are valid ids with probabilities that
// are finite, non-negative and sum to 1 whenever the logits are finite and not all banned.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/engine/sampler.h"

namespace {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  template <typename T>
  T get() {
    T v{};
    const size_t n = std::min(sizeof(T), static_cast<size_t>(end_ - p_));
    std::memcpy(&v, p_, n);
    p_ += n;
    return v;
  }
  bool empty() const { return p_ == end_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const int64_t vocab = 1 + in.get<uint8_t>() % 64;
  sparq::SamplingParams p;
  p.temperature = in.get<float>();
  p.top_k = in.get<int32_t>();
  p.top_p = in.get<float>();
  p.min_p = in.get<float>();
  p.repeat_penalty = in.get<float>();
  p.presence_penalty = in.get<float>();
  p.frequency_penalty = in.get<float>();
  p.penalty_last_n = in.get<int16_t>();
  p.seed = in.get<uint64_t>();
  for (int n = in.get<uint8_t>() % 4; n > 0; --n) p.logit_bias.emplace_back(in.get<int8_t>(), in.get<float>());
  const bool finite_logits = in.get<uint8_t>() & 1;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& l : logits) {
    l = in.get<float>();
    if (finite_logits && !std::isfinite(l)) l = 0.0f;
    if (finite_logits) l = std::fmod(l, 1e6f);
  }
  std::vector<int32_t> history;
  while (!in.empty() && history.size() < 256) history.push_back(in.get<uint8_t>() % static_cast<int32_t>(vocab));

  try {
    sparq::Sampler sampler(p, vocab);
    for (int step = 0; step < 3; ++step) {
      const int32_t id = sampler.sample(logits, history);
      check(id >= 0 && id < vocab);
      history.push_back(id);
    }
    const auto candidates = sampler.candidates(logits, history);
    for (const auto& c : candidates) check(c.id >= 0 && c.id < vocab);
    if (finite_logits && p.temperature > 0 && !candidates.empty()) {
      double sum = 0;
      for (const auto& c : candidates) {
        check(std::isfinite(c.probability) && c.probability >= 0);
        sum += c.probability;
      }
      check(std::fabs(sum - 1.0) < 1e-3);
    }
  } catch (const sparq::Error&) {
  }
  return 0;
}
