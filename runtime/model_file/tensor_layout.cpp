#include "runtime/model_file/tensor_layout.h"

#include "runtime/core/checked_math.h"
#include "runtime/model_file/int8_tiles.h"

namespace sparq {

std::string_view layout_name(Layout l) {
  switch (l) {
    case Layout::RowMajor: return "row_major";
    case Layout::Sparse24: return "sparse24";
    case Layout::Int8K4Tiles: return "int8_k4_tiles";
  }
  return "?";
}

std::optional<Layout> layout_from_name(std::string_view name) {
  if (name == "row_major") return Layout::RowMajor;
  if (name == "sparse24") return Layout::Sparse24;
  if (name == "int8_k4_tiles") return Layout::Int8K4Tiles;
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
    case Layout::Int8K4Tiles: {
      if (shape.size() != 2) return {std::nullopt, "int8_k4_tiles needs a 2-D shape, got " + shape_string(shape)};
      if (t != DType::I8) return {std::nullopt, "int8_k4_tiles needs dtype I8, got " + std::string(dtype_name(t))};
      if (shape[1] > kInt8TilesMaxColumns)
        return {std::nullopt, "int8_k4_tiles allows at most " + std::to_string(kInt8TilesMaxColumns) + " columns, got " +
                                  shape_string(shape)};
      if (shape[0] > (int64_t{1} << 40)) return {std::nullopt, "shape " + shape_string(shape) + " overflows"};
      return {Int8TilesShape(shape[0], shape[1]).total_bytes(), ""};
    }
  }
  return {std::nullopt, "unknown layout"};
}

}  // namespace sparq
