// sparq compare: the same prompts, with the same seed, on several backends. Each backend's run is
// compared with the first one's: the logits at every prompt position (largest difference relative
// to the row's largest |logit|, and whether the most likely token is the same), then the sampled
// continuation: the first token where they differ, and why - a near-tie (the logits agree within
// the tolerance and the draw fell between two tokens they weigh almost alike) or a real error.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/engine/sampler.h"
#include "runtime/selftest/prompt_run.h"

namespace sparq {

// A prompt sampled on one model: `tokens` continuation tokens drawn by a Sampler made from
// `sampling` (its seed), the penalties looking at the prompt and what was drawn.
PromptRun run_sampled(const LoadedModel& model, std::span<const int32_t> prompt, int64_t tokens,
                      const SamplingParams& sampling);

struct RunComparison {
  std::vector<double> position_rel;  // per prompt position: max|a - b| / max|a|
  std::vector<bool> position_top1_same;
  double max_rel = 0;
  int64_t top1_differ = 0;
  int64_t tokens = 0;          // continuation tokens compared
  int64_t divergence = -1;     // first continuation token that differs; -1 when none
  int32_t token_a = -1, token_b = -1;
  double divergence_rel = 0;   // logits difference at that token (same prefix on both sides)
  float probability_a[2] = {0, 0};  // what run a's distribution gives token_a and token_b
  bool near_tie = false;
  bool ok = true;              // logits within tolerance everywhere and no real-error divergence
  std::string explanation;     // the divergence in words
};

RunComparison compare_runs(const PromptRun& a, const PromptRun& b, std::span<const int32_t> prompt,
                           const SamplingParams& sampling, double tolerance);

nlohmann::json comparison_json(const RunComparison& c);

}  // namespace sparq
