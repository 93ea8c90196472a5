// One prompt run on a loaded model outside an engine, keeping every logits row: the prompt read in
// chunks (the logits at every position), then a continuation decoded one token per step, each
// token chosen by the caller from the logits that precede it.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "runtime/loading/load_model.h"
#include "runtime/model_file/reference_block.h"
#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

struct PromptRun {
  int64_t vocab = 0;
  std::vector<float> prompt_logits;        // [prompt, vocab]: row p follows prompt[0..p]
  std::vector<int32_t> continuation;       // the chosen tokens
  std::vector<float> continuation_logits;  // [continuation, vocab]: row k chose continuation[k]
  const float* prompt_row(int64_t p) const { return prompt_logits.data() + p * vocab; }
  const float* continuation_row(int64_t k) const { return continuation_logits.data() + k * vocab; }
};

// choose(row, k) picks continuation token k from the logits row that precedes it; a negative id
// ends the continuation there (the caller has seen what it needed).
using ChooseToken = std::function<int32_t(std::span<const float> row, int64_t k)>;

// Throws sparq::Error for an empty prompt or one (with its continuation) longer than the model's
// context.
PromptRun run_prompt(const LoadedModel& model, std::span<const int32_t> prompt, int64_t steps, const ChooseToken& choose);

int32_t argmax_token(std::span<const float> row);  // the first of equal maxima, like transformers
float top2_margin(std::span<const float> row);     // largest minus second largest
float row_scale(std::span<const float> row);       // largest |logit|

// Prompts for `sparq convert --reference cpu`: short text, digits and punctuation with non-ASCII,
// and a longer sentence (past the sliding window of small models).
std::vector<std::string> default_reference_prompts();

// A reference block computed by running `texts` (encoded with the tokenizer's special tokens) on
// `model`: top_k logits at every position and `greedy_tokens` of greedy continuation.
ReferenceBlock make_reference_block(const LoadedModel& model, const Tokenizer& tokenizer,
                                    const std::vector<std::string>& texts, int64_t top_k, int64_t greedy_tokens,
                                    nlohmann::json source);

}  // namespace sparq
