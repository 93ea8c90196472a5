// How a tensor's bytes are arranged in a .sparq file. The layout is recorded per tensor so that
// kernels can move to another arrangement with a format-version bump.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "runtime/core/dtype.h"

namespace sparq {

enum class Layout : uint8_t {
  RowMajor,  // C-contiguous; I4 packs two values per byte along the last dim, low nibble first
  Sparse24,  // 2:4 sparse [rows, cols]: kept values [rows][cols/2], then positions [rows][ceil(cols/8)]
  Int8K4Tiles,  // INT8 [out, in] in 64x64 tiles of 4-column groups, then compensation (int8_tiles.h)
};

// Most input columns an int8_k4_tiles weight may have: its int32 compensation (-128 * row sum)
// must not overflow.
inline constexpr int64_t kInt8TilesMaxColumns = int64_t{1} << 16;

std::string_view layout_name(Layout l);
std::optional<Layout> layout_from_name(std::string_view name);

// Bytes the layout needs for dtype x logical shape; an error message when the combination is invalid.
struct LayoutSize {
  std::optional<uint64_t> bytes;
  std::string error;
};
LayoutSize layout_bytes(Layout l, DType t, std::span<const int64_t> shape);

// Sparse24 sizes: the kept values, and one row's positions (runtime/model_file/sparse24.h encodes
// and decodes them).
inline uint64_t sparse24_values_bytes(int64_t rows, int64_t cols, unsigned itemsize) {
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols / 2) * itemsize;
}
inline uint64_t sparse24_positions_row_bytes(int64_t cols) { return static_cast<uint64_t>((cols / 4 + 1) / 2); }

}  // namespace sparq
