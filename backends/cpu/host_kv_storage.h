// KV blocks in host memory: [block][layer][kv_head][key|value] segments of block_tokens rows of
// head_dim values in the geometry's dtype (F32, F16, I8, F8_E4M3), followed for the 8-bit dtypes
// by the rows' f32 scales. The pool is allocated uninitialised, so only blocks in use become resident.
#pragma once
#include <cstdint>
#include <memory>

#include "runtime/kv_cache/kv_storage.h"

namespace sparq::cpu {

class HostKvStorage final : public KvStorage {
 public:
  // Throws sparq::Error for a dtype the CPU backend does not store or a budget below one block.
  HostKvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes);
  std::string backend() const override { return "cpu"; }

  // F32 storage only: a block's keys (kind 0) or values (kind 1) for a layer and kv head,
  // block_tokens rows of head_dim, read in place.
  const float* f32_rows(int32_t block, int64_t layer, int64_t kv_head, int kind) const {
    return reinterpret_cast<const float*>(segment(block, layer, kv_head, kind));
  }
  // Stores head_dim values at `slot` of a block's keys or values, converted to the storage dtype
  // (8-bit: scaled by the row's absmax, round to nearest even).
  void write_row(int32_t block, int64_t layer, int64_t kv_head, int kind, int64_t slot, const float* values);
  // Rows [slot, slot + n) of a block's keys or values as f32, into out[n][head_dim].
  void read_rows(int32_t block, int64_t layer, int64_t kv_head, int kind, int64_t slot, int64_t n, float* out) const;
  // Copies every position of block src into block dst; throws on a block number out of range.
  void copy_block(int32_t src, int32_t dst);

 private:
  // Start of one (block, layer, kv head, kind) segment: block_tokens rows, then their scales.
  uint8_t* segment(int32_t block, int64_t layer, int64_t kv_head, int kind) const {
    return pool_.get() + static_cast<uint64_t>(block) * block_bytes_ +
           (static_cast<uint64_t>(layer * geometry().kv_heads + kv_head) * 2 + static_cast<uint64_t>(kind)) * segment_bytes_;
  }

  uint64_t block_bytes_ = 0, segment_bytes_ = 0, values_bytes_ = 0;  // values_bytes_: one row's values
  std::unique_ptr<uint8_t[]> pool_;
};

// The storage a step runs on, checked to be the CPU backend's.
HostKvStorage& host_kv_storage(KvStorage& storage);

}  // namespace sparq::cpu
