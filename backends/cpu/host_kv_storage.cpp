#include "backends/cpu/host_kv_storage.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/core/error.h"
#include "runtime/core/float_formats.h"

namespace sparq::cpu {

namespace {

const KvCacheGeometry& supported(const KvCacheGeometry& g) {
  if (g.dtype != DType::F32 && g.dtype != DType::F16 && g.dtype != DType::I8 && g.dtype != DType::F8_E4M3)
    fail("the CPU backend stores keys and values as f32, f16, int8 or fp8; not ", dtype_name(g.dtype));
  return g;
}

// Largest magnitude an 8-bit code holds: the row's absmax maps to it.
float code_max(DType t) { return t == DType::I8 ? 127.0f : 448.0f; }

}  // namespace

HostKvStorage::HostKvStorage(const KvCacheGeometry& geometry, uint64_t budget_bytes)
    : KvStorage(supported(geometry), budget_bytes) {
  const KvCacheGeometry& g = this->geometry();
  block_bytes_ = g.block_bytes();
  segment_bytes_ = static_cast<uint64_t>(g.block_tokens) * g.row_bytes();
  values_bytes_ = static_cast<uint64_t>(g.head_dim) * (dtype_bits(g.dtype) / 8);
  pool_.reset(new uint8_t[static_cast<uint64_t>(blocks()) * block_bytes_]);
}

void HostKvStorage::write_row(int32_t block, int64_t layer, int64_t kv_head, int kind, int64_t slot, const float* v) {
  const KvCacheGeometry& g = geometry();
  const int64_t D = g.head_dim;
  uint8_t* seg = segment(block, layer, kv_head, kind);
  uint8_t* row = seg + static_cast<uint64_t>(slot) * values_bytes_;
  switch (g.dtype) {
    case DType::F32: std::memcpy(row, v, values_bytes_); return;
    case DType::F16:
      for (int64_t d = 0; d < D; ++d) {
        const uint16_t h = f32_to_f16(v[d]);
        std::memcpy(row + 2 * d, &h, 2);
      }
      return;
    default: break;
  }
  float amax = 0.0f;
  for (int64_t d = 0; d < D; ++d) amax = std::max(amax, std::fabs(v[d]));
  const float scale = amax > 0.0f ? amax / code_max(g.dtype) : 0.0f;
  const float inv = amax > 0.0f ? code_max(g.dtype) / amax : 0.0f;
  if (g.dtype == DType::I8) {
    for (int64_t d = 0; d < D; ++d) {
      const float q = std::nearbyint(v[d] * inv);
      row[d] = static_cast<uint8_t>(static_cast<int8_t>(std::isnan(q) ? 0.0f : std::clamp(q, -127.0f, 127.0f)));
    }
  } else {
    for (int64_t d = 0; d < D; ++d) row[d] = f32_to_fp8_e4m3(v[d] * inv);
  }
  std::memcpy(seg + static_cast<uint64_t>(g.block_tokens) * values_bytes_ + 4 * static_cast<uint64_t>(slot), &scale, 4);
}

void HostKvStorage::read_rows(int32_t block, int64_t layer, int64_t kv_head, int kind, int64_t slot, int64_t n,
                              float* out) const {
  const KvCacheGeometry& g = geometry();
  const int64_t D = g.head_dim;
  const uint8_t* seg = segment(block, layer, kv_head, kind);
  const uint8_t* rows = seg + static_cast<uint64_t>(slot) * values_bytes_;
  switch (g.dtype) {
    case DType::F32: std::memcpy(out, rows, static_cast<uint64_t>(n) * values_bytes_); return;
    case DType::F16:
      for (int64_t i = 0; i < n * D; ++i) {
        uint16_t h;
        std::memcpy(&h, rows + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    default: break;
  }
  const uint8_t* scales = seg + static_cast<uint64_t>(g.block_tokens) * values_bytes_ + 4 * static_cast<uint64_t>(slot);
  for (int64_t r = 0; r < n; ++r) {
    float s;
    std::memcpy(&s, scales + 4 * r, 4);
    const uint8_t* q = rows + r * D;
    float* o = out + r * D;
    if (g.dtype == DType::I8)
      for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(static_cast<int8_t>(q[d])) * s;
    else
      for (int64_t d = 0; d < D; ++d) o[d] = fp8_e4m3_to_f32(q[d]) * s;
  }
}

void HostKvStorage::copy_block(int32_t src, int32_t dst) {
  if (src < 0 || dst < 0 || src >= blocks() || dst >= blocks())
    fail("KV storage: block copy ", src, " -> ", dst, " is outside the ", blocks(), " blocks");
  std::memcpy(pool_.get() + static_cast<uint64_t>(dst) * block_bytes_, pool_.get() + static_cast<uint64_t>(src) * block_bytes_,
              block_bytes_);
}

HostKvStorage& host_kv_storage(KvStorage& storage) {
  auto* host = dynamic_cast<HostKvStorage*>(&storage);
  if (!host) fail("the CPU backend cannot run on KV storage made by the ", storage.backend(), " backend");
  return *host;
}

}  // namespace sparq::cpu
