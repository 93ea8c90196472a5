// KV blocks in host memory, f32: [block][layer][kv_head][key|value][block_tokens][head_dim]. The
// pool is allocated uninitialised, so only blocks in use become resident.
#pragma once
#include <cstdint>
#include <memory>

#include "runtime/kv_cache/kv_storage.h"

namespace sparq::cpu {

class HostKvStorage final : public KvStorage {
 public:
  // Throws sparq::Error for a dtype other than F32 or a budget below one block.
  HostKvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes);
  std::string backend() const override { return "cpu"; }

  // Start of a block's keys (kind 0) or values (kind 1) for a layer and kv head: block_tokens rows of head_dim.
  float* block_rows(int32_t block, int64_t layer, int64_t kv_head, int kind) {
    return pool_.get() + static_cast<uint64_t>(block) * block_floats_ +
           ((static_cast<uint64_t>(layer * geometry().kv_heads + kv_head) * 2) + static_cast<uint64_t>(kind)) * rows_;
  }
  const float* block_rows(int32_t block, int64_t layer, int64_t kv_head, int kind) const {
    return const_cast<HostKvStorage*>(this)->block_rows(block, layer, kv_head, kind);
  }
  // Copies every position of block src into block dst; throws on a block number out of range.
  void copy_block(int32_t src, int32_t dst);

 private:
  uint64_t block_floats_ = 0, rows_ = 0;
  std::unique_ptr<float[]> pool_;
};

// The storage a step runs on, checked to be the CPU backend's.
HostKvStorage& host_kv_storage(KvStorage& storage);

}  // namespace sparq::cpu
