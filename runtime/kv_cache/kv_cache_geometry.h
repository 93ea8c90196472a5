// The shape of a paged KV cache: how many positions a block holds, and what one position stores
// (keys and values of every layer and kv head, in `dtype`). Device-independent: the block allocator
// counts blocks, and the backend's storage lays them out in its own memory.
#pragma once
#include <cstdint>

#include "runtime/core/dtype.h"

namespace sparq {

using SeqId = int32_t;

// Positions per block. Small enough that a short sequence wastes little, large enough that block
// tables stay short and a prefix-cache block is worth sharing.
constexpr int64_t kKvBlockTokens = 16;

struct KvCacheGeometry {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  int64_t block_tokens = kKvBlockTokens;
  DType dtype = DType::F32;  // element type of stored keys and values
  // Bytes of one block: keys and values of block_tokens positions for every layer and kv head.
  uint64_t block_bytes() const;
  // Throws sparq::Error unless every dimension is positive and the dtype is a whole number of bytes.
  void validate() const;
};

// Blocks for `positions` positions.
inline int64_t kv_blocks_for(int64_t positions, int64_t block_tokens) {
  return (positions + block_tokens - 1) / block_tokens;
}

}  // namespace sparq
