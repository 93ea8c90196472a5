// Causal grouped-query attention over the paged KV cache: f32 arithmetic, keys and values stored in
// the cache's dtype (converted as they are written, read back as f32).
#pragma once
#include <cstdint>

#include "backends/cpu/host_kv_storage.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/step.h"

namespace sparq::cpu {

// Stores every row's k and v in its chunk's block first, then attends each query row to keys
// [lo, pos] of its chunk's sequence (lo > 0 only within a sliding window).
void attention(const AttentionOp& op, const float* q, const float* k, const float* v, const Step& step,
               HostKvStorage& cache, float* out, int threads);

}  // namespace sparq::cpu
