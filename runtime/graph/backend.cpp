#include "runtime/graph/backend.h"

#include <map>
#include <string>

namespace sparq {

int64_t Batch::tokens() const {
  int64_t n = 0;
  for (const auto& c : chunks) n += static_cast<int64_t>(c.tokens.size());
  return n;
}

int64_t Batch::logit_rows() const {
  int64_t n = 0;
  for (const auto& c : chunks) {
    const auto len = static_cast<int64_t>(c.tokens.size());
    n += c.logits == LogitRows::All ? len : c.logits == LogitRows::Last ? std::min<int64_t>(len, 1) : 0;
  }
  return n;
}

void reserve_batch(const Batch& batch, PagedKvCache& cache) {
  // Count first (a sequence may appear once per batch), so a refusal leaves the cache untouched.
  std::map<SeqId, int64_t> grow;
  for (const auto& c : batch.chunks) {
    if (grow.count(c.seq)) fail("sequence ", c.seq, " appears twice in one batch");
    grow[c.seq] = cache.length(c.seq) + static_cast<int64_t>(c.tokens.size());
  }
  int64_t need = 0;
  for (const auto& [seq, len] : grow) need += cache.blocks_needed(seq, len);
  if (need > cache.free_blocks())
    throw KvCacheFull("the KV cache is full: this step needs " + std::to_string(need) + " more blocks of " +
                      std::to_string(cache.geometry().block_tokens) + " positions, " +
                      std::to_string(cache.free_blocks()) + " are free (raise the KV cache budget)");
  for (const auto& [seq, len] : grow) cache.reserve(seq, len);
}

}  // namespace sparq
