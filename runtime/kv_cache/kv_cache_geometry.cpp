#include "runtime/kv_cache/kv_cache_geometry.h"

#include "runtime/core/error.h"

namespace sparq {

uint64_t KvCacheGeometry::block_bytes() const {
  return static_cast<uint64_t>(layers) * static_cast<uint64_t>(kv_heads) * 2 * static_cast<uint64_t>(block_tokens) *
         static_cast<uint64_t>(head_dim) * static_cast<uint64_t>(dtype_bits(dtype) / 8);
}

void KvCacheGeometry::validate() const {
  if (layers <= 0 || kv_heads <= 0 || head_dim <= 0 || block_tokens <= 0)
    fail("KV cache geometry must be positive (layers ", layers, ", kv heads ", kv_heads, ", head dim ", head_dim,
         ", block tokens ", block_tokens, ")");
  if (dtype_bits(dtype) < 8 || dtype_bits(dtype) % 8)
    fail("KV cache dtype ", dtype_name(dtype), " is not a whole number of bytes");
}

}  // namespace sparq
