#include "runtime/selftest/prompt_run.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/core/error.h"
#include "runtime/engine/step_builder.h"
#include "runtime/model_file/architecture.h"

namespace sparq {

namespace {

constexpr int64_t kPrefillChunk = 256;

}  // namespace

int32_t argmax_token(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

float top2_margin(std::span<const float> row) {
  float a = -INFINITY, b = -INFINITY;
  for (float v : row) {
    if (v > a) {
      b = a;
      a = v;
    } else if (v > b) {
      b = v;
    }
  }
  return a - b;
}

float row_scale(std::span<const float> row) {
  float m = 0;
  for (float v : row) m = std::max(m, std::fabs(v));
  return m;
}

PromptRun run_prompt(const LoadedModel& model, std::span<const int32_t> prompt, int64_t steps, const ChooseToken& choose) {
  if (prompt.empty()) fail("a prompt needs at least one token");
  const int64_t model_vocab = model_config(model.file).vocab;
  for (int32_t id : prompt)
    if (id < 0 || id >= model_vocab) fail("prompt token ", id, " is outside the model's vocabulary (", model_vocab, ")");
  const int64_t len = static_cast<int64_t>(prompt.size());
  const int64_t context = model_context_length(model.file);
  if (context > 0 && len + steps > context)
    fail("a prompt of ", len, " tokens and ", steps, " more exceeds the model's context of ", context);
  const auto kv = model.kv_storage_for_positions(len + steps);
  BlockAllocator blocks(kv->blocks(), kv->geometry().block_tokens);
  const SeqId seq = blocks.add_sequence();
  PromptRun r;
  StepLogits out;
  for (int64_t c = 0; c < len; c += kPrefillChunk) {
    const int64_t n = std::min(kPrefillChunk, len - c);
    const SequenceChunk chunk{seq, prompt.subspan(static_cast<size_t>(c), static_cast<size_t>(n)), LogitRows::All};
    run_step(*model.prepared, *kv, blocks, {&chunk, 1}, out);
    r.vocab = out.vocab;
    r.prompt_logits.insert(r.prompt_logits.end(), out.values.begin(), out.values.begin() + n * out.vocab);
  }
  const auto vocab = static_cast<size_t>(r.vocab);
  std::vector<float> last(r.prompt_logits.end() - static_cast<std::ptrdiff_t>(vocab), r.prompt_logits.end());
  for (int64_t k = 0; k < steps; ++k) {
    const int32_t token = choose(last, k);
    if (token < 0) break;
    if (token >= r.vocab) fail("a chosen token ", token, " is outside the vocabulary");
    r.continuation.push_back(token);
    r.continuation_logits.insert(r.continuation_logits.end(), last.begin(), last.end());
    if (k + 1 == steps) break;  // the last token's own logits are not needed
    const SequenceChunk chunk{seq, std::span<const int32_t>(&r.continuation.back(), 1), LogitRows::Last};
    run_step(*model.prepared, *kv, blocks, {&chunk, 1}, out);
    last.assign(out.values.begin(), out.values.begin() + static_cast<std::ptrdiff_t>(vocab));
  }
  return r;
}

std::vector<std::string> default_reference_prompts() {
  return {"The quick brown fox",
          "Copyright (C) 2007 Free Software Foundation, Inc. 12345 caf\u00e9 \u2615\nVersion 3",
          "Everyone is permitted to copy and distribute verbatim copies of this license document, but "
          "changing it is not allowed. The licenses for most software are designed to take away your freedom."};
}

ReferenceBlock make_reference_block(const LoadedModel& model, const Tokenizer& tokenizer,
                                    const std::vector<std::string>& texts, int64_t top_k, int64_t greedy_tokens,
                                    nlohmann::json source) {
  ReferenceBlock b;
  b.source = std::move(source);
  b.top_k = top_k;
  for (const std::string& text : texts) {
    ReferencePrompt p;
    p.text = text;
    p.ids = tokenizer.encode(text, /*add_special=*/true);
    const PromptRun run = run_prompt(model, p.ids, greedy_tokens, [&](std::span<const float> row, int64_t) {
      p.greedy_margins.push_back(top2_margin(row));
      return argmax_token(row);
    });
    const int64_t k = std::min<int64_t>(top_k, run.vocab);
    b.top_k = k;
    std::vector<int32_t> order(static_cast<size_t>(run.vocab));
    for (size_t pos = 0; pos < p.ids.size(); ++pos) {
      const std::span<const float> row(run.prompt_row(static_cast<int64_t>(pos)), static_cast<size_t>(run.vocab));
      std::iota(order.begin(), order.end(), 0);
      // Largest first; equal logits by lower id, as argmax_token picks them.
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t c) {
        return row[static_cast<size_t>(a)] > row[static_cast<size_t>(c)] ||
               (row[static_cast<size_t>(a)] == row[static_cast<size_t>(c)] && a < c);
      });
      ReferencePosition rp;
      for (int64_t i = 0; i < k; ++i) {
        rp.top_ids.push_back(order[static_cast<size_t>(i)]);
        rp.top_logits.push_back(row[static_cast<size_t>(order[static_cast<size_t>(i)])]);
      }
      rp.row_scale = row_scale(row);
      if (!(rp.row_scale > 0) || !std::isfinite(rp.row_scale))
        fail("the model's logits at position ", pos, " of prompt \"", text, "\" are all zero or not finite");
      p.positions.push_back(std::move(rp));
    }
    p.greedy_ids = run.continuation;
    b.prompts.push_back(std::move(p));
  }
  return b;
}

}  // namespace sparq
