#include "runtime/model_file/tensor_layout.h"

#include "runtime/core/checked_math.h"

namespace sparq {

std::string_view layout_name(Layout l) {
  switch (l) {
    case Layout::RowMajor: return "row_major";
    case Layout::Sparse24: return "sparse24";
  }
  return "?";
}

std::optional<Layout> layout_from_name(std::string_view name) {
  if (name == "row_major") return Layout::RowMajor;
  if (name == "sparse24") return Layout::Sparse24;
  return std::nullopt;
}

LayoutSize layout_bytes(Layout l, DType t, std::span<const int64_t> shape) {
  for (int64_t d : shape)
    if (d < 0) return {std::nullopt, "negative dimension in shape " + shape_string(shape)};
  switch (l) {
    case Layout::RowMajor: {
      auto b = row_major_bytes(t, shape);
      if (!b) return {std::nullopt, "shape " + shape_string(shape) + " overflows"};
      return {b, ""};
    }
    case Layout::Sparse24: {
      if (shape.size() != 2) return {std::nullopt, "sparse24 needs a 2-D shape, got " + shape_string(shape)};
      if (dtype_bits(t) != 8) return {std::nullopt, "sparse24 needs an 8-bit dtype, got " + std::string(dtype_name(t))};
      if (shape[1] % 4 != 0) return {std::nullopt, "sparse24 needs columns divisible by 4, got " + shape_string(shape)};
      auto values = checked_mul(static_cast<uint64_t>(shape[0]), static_cast<uint64_t>(shape[1] / 2));
      auto positions = checked_mul(static_cast<uint64_t>(shape[0]), sparse24_positions_row_bytes(shape[1]));
      if (!values || !positions) return {std::nullopt, "shape " + shape_string(shape) + " overflows"};
      auto total = checked_add(*values, *positions);
      if (!total) return {std::nullopt, "shape " + shape_string(shape) + " overflows"};
      return {total, ""};
    }
  }
  return {std::nullopt, "unknown layout"};
}

}  // namespace sparq
