#include "runtime/engine/ngram_drafter.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace sparq {

NgramDrafter::NgramDrafter(int32_t min_n, int32_t max_n) : min_n_(min_n), max_n_(max_n) {
  if (min_n < 1 || max_n < min_n || max_n > 64)
    fail("n-gram drafting: needs 1 <= min n (", min_n, ") <= max n (", max_n, ") <= 64");
}

std::vector<int32_t> NgramDrafter::lookup(std::span<const int32_t> tokens, int64_t max_drafts) const {
  const auto len = static_cast<int64_t>(tokens.size());
  if (max_drafts <= 0) return {};
  for (int64_t n = std::min<int64_t>(max_n_, len - 1); n >= min_n_; --n) {
    const auto suffix = tokens.subspan(static_cast<size_t>(len - n));
    // Latest earlier occurrence first: recent context predicts best. Its end must leave at least
    // one following token (start + n < len), so a match never is the suffix itself.
    for (int64_t start = len - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + start)) continue;
      // Copy what followed; past the end, go on copying the copy (as LZ77 does), so a sequence
      // repeating a short cycle gets a full draft rather than the one id left before the end.
      const int64_t from = start + n;
      std::vector<int32_t> draft;
      for (int64_t i = from; i < from + max_drafts; ++i)
        draft.push_back(i < len ? tokens[static_cast<size_t>(i)] : draft[static_cast<size_t>(i - len)]);
      return draft;
    }
  }
  return {};
}

void NgramDrafter::propose(std::span<DraftRequest> requests) {
  for (DraftRequest& r : requests) r.drafts = lookup(r.tokens, r.max_drafts);
}

}  // namespace sparq
