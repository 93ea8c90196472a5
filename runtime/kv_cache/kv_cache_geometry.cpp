#include "runtime/kv_cache/kv_cache_geometry.h"

#include "runtime/core/error.h"

namespace sparq {

uint64_t KvCacheGeometry::row_bytes() const {
  return static_cast<uint64_t>(head_dim) * static_cast<uint64_t>(dtype_bits(dtype) / 8) + (kv_dtype_scaled(dtype) ? 4 : 0);
}

uint64_t KvCacheGeometry::block_bytes() const {
  return static_cast<uint64_t>(layers) * static_cast<uint64_t>(kv_heads) * 2 * static_cast<uint64_t>(block_tokens) * row_bytes();
}

std::optional<DType> kv_dtype_from_name(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "int8") return DType::I8;
  if (name == "fp8") return DType::F8_E4M3;
  return std::nullopt;
}

std::string kv_dtype_label(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::I8: return "int8";
    case DType::F8_E4M3: return "fp8";
    default: return std::string(dtype_name(t));
  }
}

void KvCacheGeometry::validate() const {
  if (layers <= 0 || kv_heads <= 0 || head_dim <= 0 || block_tokens <= 0)
    fail("KV cache geometry must be positive (layers ", layers, ", kv heads ", kv_heads, ", head dim ", head_dim,
         ", block tokens ", block_tokens, ")");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::I8 && dtype != DType::F8_E4M3)
    fail("KV cache dtype ", dtype_name(dtype), " is not supported (f32, f16, int8, fp8)");
}

}  // namespace sparq
