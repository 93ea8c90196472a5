#include "runtime/core/dtype.h"

#include <array>

#include "runtime/core/checked_math.h"

namespace sparq {

namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  unsigned bits;
  bool is_float;
};
constexpr std::array<DTypeRow, 16> kTable{{
    {DType::BOOL, "BOOL", 8, false},   {DType::U8, "U8", 8, false},
    {DType::I8, "I8", 8, false},       {DType::I16, "I16", 16, false},
    {DType::U16, "U16", 16, false},    {DType::I32, "I32", 32, false},
    {DType::U32, "U32", 32, false},    {DType::I64, "I64", 64, false},
    {DType::U64, "U64", 64, false},    {DType::F16, "F16", 16, true},
    {DType::BF16, "BF16", 16, true},   {DType::F32, "F32", 32, true},
    {DType::F64, "F64", 64, true},     {DType::F8_E4M3, "F8_E4M3", 8, true},
    {DType::F8_E5M2, "F8_E5M2", 8, true}, {DType::I4, "I4", 4, false},
}};
const DTypeRow& row(DType t) { return kTable[static_cast<size_t>(t)]; }
}  // namespace

std::string_view dtype_name(DType t) { return row(t).name; }
unsigned dtype_bits(DType t) { return row(t).bits; }
bool dtype_is_float(DType t) { return row(t).is_float; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kTable)
    if (r.name == name) return r.type;
  return std::nullopt;
}

std::optional<uint64_t> row_major_bytes(DType t, std::span<const int64_t> shape) {
  auto numel = checked_numel(shape);
  if (!numel) return std::nullopt;
  if (dtype_bits(t) >= 8) return checked_mul(*numel, dtype_bits(t) / 8);
  if (shape.empty()) return 1;  // a 4-bit scalar still takes a byte
  const uint64_t cols = static_cast<uint64_t>(shape.back());
  const uint64_t rows = cols == 0 ? 0 : *numel / cols;
  return checked_mul(rows, (cols + 1) / 2);
}

std::string shape_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace sparq
