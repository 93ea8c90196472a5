#include "runtime/model_file/int8_tiles.h"

#include <vector>

namespace sparq {

void int8_tiles_pack_band(const Int8TilesShape& s, int64_t band, const int8_t* rows, uint8_t* band_out,
                          int32_t* compensation) {
  constexpr int64_t T = Int8TilesShape::kTile;
  std::memset(band_out, 0, s.band_bytes());
  const int64_t n = std::min(T, s.out - band * T);
  for (int64_t r = 0; r < T; ++r) compensation[r] = 0;
  constexpr int64_t G = Int8TilesShape::kGroup;
  for (int64_t r = 0; r < n; ++r) {
    const int8_t* row = rows + r * s.in;
    int32_t sum = 0;
    for (int64_t c = 0; c < s.in; ++c) sum += row[c];
    compensation[r] = -128 * sum;
    // Whole groups of four columns move as one 4-byte word; a partial last group byte by byte.
    const int64_t whole = s.in / G * G;
    for (int64_t c = 0; c < whole; c += G) std::memcpy(band_out + Int8TilesShape::in_band(r, c), row + c, G);
    for (int64_t c = whole; c < s.in; ++c) band_out[Int8TilesShape::in_band(r, c)] = static_cast<uint8_t>(row[c]);
  }
}

void int8_tiles_pack(const Int8TilesShape& s, const int8_t* rows, uint8_t* dst) {
  std::vector<int32_t> comp(static_cast<size_t>(s.padded_out));
  for (int64_t b = 0; b < s.bands(); ++b)
    int8_tiles_pack_band(s, b, rows + b * Int8TilesShape::kTile * s.in, dst + static_cast<uint64_t>(b) * s.band_bytes(),
                         comp.data() + b * Int8TilesShape::kTile);
  int8_tiles_write_tail(s, comp.data(), dst);
}

void int8_tiles_write_tail(const Int8TilesShape& s, const int32_t* compensation, uint8_t* dst) {
  std::memcpy(dst + s.compensation_offset(), compensation, 4 * static_cast<uint64_t>(s.padded_out));
  std::memset(dst + s.reserved_offset(), 0, s.total_bytes() - s.reserved_offset());
}

void int8_tiles_unpack(const Int8TilesShape& s, const uint8_t* src, int8_t* rows) {
  for (int64_t o = 0; o < s.out; ++o) {
    const uint8_t* band = src + static_cast<uint64_t>(o / Int8TilesShape::kTile) * s.band_bytes();
    for (int64_t c = 0; c < s.in; ++c) rows[o * s.in + c] = static_cast<int8_t>(band[Int8TilesShape::in_band(o, c)]);
  }
}

std::string int8_tiles_check_band(const Int8TilesShape& s, const uint8_t* src, int64_t band, const int32_t* sums) {
  constexpr int64_t T = Int8TilesShape::kTile;
  const uint8_t* b = src + static_cast<uint64_t>(band) * s.band_bytes();
  for (int64_t r = 0; r < T; ++r) {
    const int64_t o = band * T + r;
    int32_t stored;
    std::memcpy(&stored, src + s.compensation_offset() + 4 * static_cast<uint64_t>(o), 4);
    if (stored != -128 * sums[r])
      return "row " + std::to_string(o) + ": stored compensation " + std::to_string(stored) + " does not match its values (" +
             std::to_string(-128 * sums[r]) + "); the file is damaged";
    // Padding: rows past `out`, columns past `in`.
    const int64_t c0 = o < s.out ? s.in : 0;
    for (int64_t c = c0; c < s.padded_in; ++c)
      if (b[Int8TilesShape::in_band(r, c)] != 0)
        return "row " + std::to_string(o) + ": padding column " + std::to_string(c) + " is not zero; the file is damaged";
    for (int k = 0; k < 8; ++k)
      if (src[s.reserved_offset() + 8 * static_cast<uint64_t>(o) + static_cast<uint64_t>(k)] != 0)
        return "row " + std::to_string(o) + ": reserved bytes are not zero; the file is damaged";
  }
  return "";
}

}  // namespace sparq
