#include "backends/cpu/host_kv_storage.h"

#include <cstring>

#include "runtime/core/error.h"

namespace sparq::cpu {

namespace {

const KvCacheGeometry& f32_geometry(const KvCacheGeometry& g) {
  if (g.dtype != DType::F32)
    fail("the CPU backend stores keys and values in F32; a ", dtype_name(g.dtype), " KV cache is not supported");
  return g;
}

}  // namespace

HostKvStorage::HostKvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes)
    : KvStorage(f32_geometry(geometry), budget_bytes) {
  block_floats_ = this->geometry().block_bytes() / sizeof(float);
  rows_ = static_cast<uint64_t>(this->geometry().block_tokens * this->geometry().head_dim);
  pool_.reset(new float[static_cast<uint64_t>(blocks()) * block_floats_]);
}

void HostKvStorage::copy_block(int32_t src, int32_t dst) {
  if (src < 0 || dst < 0 || src >= blocks() || dst >= blocks())
    fail("KV storage: block copy ", src, " -> ", dst, " is outside the ", blocks(), " blocks");
  std::memcpy(pool_.get() + static_cast<uint64_t>(dst) * block_floats_,
              pool_.get() + static_cast<uint64_t>(src) * block_floats_, block_floats_ * sizeof(float));
}

HostKvStorage& host_kv_storage(KvStorage& storage) {
  auto* host = dynamic_cast<HostKvStorage*>(&storage);
  if (!host) fail("the CPU backend cannot run on KV storage made by the ", storage.backend(), " backend");
  return *host;
}

}  // namespace sparq::cpu
