// Log-probabilities of one logits row: log-softmax at one id and the most likely ids, computed in
// one pass over the vocabulary plus a second for the normalizer (no sort of the whole row).
#pragma once
#include <cstdint>
#include <span>

#include "runtime/engine/engine.h"

namespace sparq {

// The most alternatives a request may ask for (as OpenAI's top_logprobs).
constexpr int32_t kMaxTopLogprobs = 20;

// token's log-probability and the `top` most likely ids (most likely first, lower id on ties).
// A -inf logit has log-probability -inf.
PositionLogprobs position_logprobs(std::span<const float> logits, int32_t token, int32_t top);

}  // namespace sparq
