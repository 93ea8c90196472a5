// The shape of a paged KV cache: how many positions a block holds, and what one position stores
// (keys and values of every layer and kv head, in `dtype`). Device-independent: the block allocator
// counts blocks, and the backend's storage lays them out in its own memory.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/core/dtype.h"

namespace sparq {

using SeqId = int32_t;

// Positions per block. Small enough that a short sequence wastes little, large enough that block
// tables stay short and a prefix-cache block is worth sharing.
constexpr int64_t kKvBlockTokens = 16;

struct KvCacheGeometry {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  int64_t block_tokens = kKvBlockTokens;
  // Element type of stored keys and values: F32, F16, or I8 / F8_E4M3 with one f32 scale per
  // stored row (a position's keys or values of one kv head: absmax / 127 or / 448).
  DType dtype = DType::F32;
  // Bytes of one stored row of head_dim values, its scale included.
  uint64_t row_bytes() const;
  // Bytes of one block: keys and values of block_tokens positions for every layer and kv head.
  uint64_t block_bytes() const;
  // Throws sparq::Error unless every dimension is positive and the dtype is one of the above.
  void validate() const;
};

// Whether rows of this dtype carry a scale (the 8-bit types).
inline bool kv_dtype_scaled(DType t) { return t == DType::I8 || t == DType::F8_E4M3; }
// --kv-dtype names: f32, f16, int8, fp8 (E4M3); nullopt for anything else.
std::optional<DType> kv_dtype_from_name(const std::string& name);
std::string kv_dtype_label(DType t);

// Blocks for `positions` positions.
inline int64_t kv_blocks_for(int64_t positions, int64_t block_tokens) {
  return (positions + block_tokens - 1) / block_tokens;
}

}  // namespace sparq
