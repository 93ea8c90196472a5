#include "runtime/kv_cache/kv_storage.h"

#include <cstdint>

#include "runtime/core/error.h"

namespace sparq {

KvStorage::KvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes) : geometry_(geometry) {
  geometry_.validate();
  const uint64_t bb = geometry_.block_bytes();
  const uint64_t blocks = budget_bytes / bb;
  if (blocks == 0)
    fail("the KV cache budget of ", budget_bytes, " bytes is smaller than one block (", bb, " bytes for ",
         geometry_.block_tokens, " positions)");
  if (blocks > static_cast<uint64_t>(INT32_MAX)) fail("the KV cache budget is too large");
  blocks_ = static_cast<int64_t>(blocks);
}

}  // namespace sparq
