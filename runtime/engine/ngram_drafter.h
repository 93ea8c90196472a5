// Prompt-lookup drafting: the longest recent n-gram (max_n down to min_n tokens) that ends the
// sequence is looked up earlier in it, and the tokens that followed its latest earlier occurrence
// are the draft (continuing as a repeat when the match is close to the end). Free to compute and
// good on text that repeats its context: code edits, summaries, answers quoting the question.
#pragma once
#include "runtime/engine/drafter.h"

namespace sparq {

class NgramDrafter final : public Drafter {
 public:
  // Throws sparq::Error unless 1 <= min_n <= max_n <= 64.
  NgramDrafter(int32_t min_n = 1, int32_t max_n = 3);
  void propose(std::span<DraftRequest> requests) override;
  void forget(RequestId) override {}
  const char* name() const override { return "ngram"; }

  // One sequence's draft (the lookup propose() makes for each request).
  std::vector<int32_t> lookup(std::span<const int32_t> tokens, int64_t max_drafts) const;

 private:
  int32_t min_n_, max_n_;
};

}  // namespace sparq
