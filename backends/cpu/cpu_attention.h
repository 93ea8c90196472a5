// Causal grouped-query attention over the paged KV cache, f32 throughout.
#pragma once
#include <cstdint>
#include <span>

#include "runtime/graph/graph.h"
#include "runtime/kv_cache/paged_kv_cache.h"

namespace sparq::cpu {

// Row r of q/k/v belongs to sequence seqs[r] at position positions[r]. Stores every row's k and v
// in the cache first, then attends each query to keys [lo, pos] of its sequence.
void attention(const AttentionOp& op, const float* q, const float* k, const float* v, int64_t rows,
               std::span<const SeqId> seqs, std::span<const int64_t> positions, PagedKvCache& cache, float* out,
               int threads);

}  // namespace sparq::cpu
