// Element types of tensors in safetensors checkpoints and .sparq files.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sparq {

enum class DType : uint8_t {
  BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2,
  I4,  // signed 4-bit, two per byte, low nibble first (only in .sparq files)
};

// The safetensors spelling ("BF16", "F8_E4M3", ...); .sparq uses the same names.
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
// Bits per element: 4 for I4, 8 * bytes otherwise.
unsigned dtype_bits(DType t);
bool dtype_is_float(DType t);

// Bytes of a row-major tensor: sub-byte types pad each innermost row to a whole byte.
std::optional<uint64_t> row_major_bytes(DType t, std::span<const int64_t> shape);

std::string shape_string(std::span<const int64_t> shape);

}  // namespace sparq
