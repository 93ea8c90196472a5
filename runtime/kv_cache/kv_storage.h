// Where a backend keeps keys and values: a pool of blocks of a KvCacheGeometry, in the backend's
// own memory (host RAM for the CPU, device memory for a GPU). Made by Backend::create_kv_storage;
// the engine pairs it with a BlockAllocator of the same block count. Only the backend that made
// it reads or writes its blocks.
#pragma once
#include <cstdint>
#include <string>

#include "runtime/kv_cache/kv_cache_geometry.h"

namespace sparq {

class KvStorage {
 public:
  virtual ~KvStorage() = default;
  const KvCacheGeometry& geometry() const { return geometry_; }
  int64_t blocks() const { return blocks_; }
  uint64_t bytes() const { return static_cast<uint64_t>(blocks_) * geometry_.block_bytes(); }
  // The backend that made it ("cpu", ...), checked when a step runs on it.
  virtual std::string backend() const = 0;

 protected:
  // Throws sparq::Error when the geometry is invalid or the budget cannot hold a single block.
  KvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes);

 private:
  KvCacheGeometry geometry_;
  int64_t blocks_ = 0;
};

}  // namespace sparq
