// The int8_k4_tiles layout of an INT8 W8A8 weight [out, in]: the arrangement VNNI GEMM kernels
// (oneDNN's brgemm for s8 x s8 on AVX512-VNNI) read, stored in the file so the weight is used in
// place from the mmap instead of being repacked at load (docs/FORMAT.md).
//
//   tiles        out and in are zero-padded to multiples of 64. Tile (ob, ib) holds output rows
//                [64 ob, 64 ob + 64) x input columns [64 ib, 64 ib + 64) and starts at byte
//                (ob * in_tiles + ib) * 4096; in it, w[o][c] lies at ((c % 64) / 4 * 64 + o % 64) * 4
//                + c % 4: the four consecutive columns one VNNI lane multiplies are adjacent.
//   compensation int32 little-endian [padded out]: -128 * sum over c of w[o][c] (zero for padding),
//                the correction for running s8 activations as u8 (x + 128).
//   reserved     8 * padded-out zero bytes (oneDNN's descriptor of this layout includes them).
//
// Rows of one 64-row band (all its tiles) are contiguous, so the converter writes band by band.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace sparq {

struct Int8TilesShape {
  static constexpr int64_t kTile = 64, kGroup = 4, kTileBytes = kTile * kTile;
  int64_t out = 0, in = 0;          // logical shape
  int64_t padded_out = 0, padded_in = 0;

  Int8TilesShape() = default;
  Int8TilesShape(int64_t rows, int64_t cols)
      : out(rows), in(cols), padded_out((rows + kTile - 1) / kTile * kTile), padded_in((cols + kTile - 1) / kTile * kTile) {}

  int64_t bands() const { return padded_out / kTile; }
  int64_t in_tiles() const { return padded_in / kTile; }
  uint64_t band_bytes() const { return static_cast<uint64_t>(kTile) * static_cast<uint64_t>(padded_in); }
  uint64_t tiles_bytes() const { return static_cast<uint64_t>(padded_out) * static_cast<uint64_t>(padded_in); }
  uint64_t compensation_offset() const { return tiles_bytes(); }
  uint64_t reserved_offset() const { return tiles_bytes() + 4 * static_cast<uint64_t>(padded_out); }
  uint64_t total_bytes() const { return tiles_bytes() + 12 * static_cast<uint64_t>(padded_out); }
  // Byte of w[o][c] within its band.
  static uint64_t in_band(int64_t o, int64_t c) {
    return static_cast<uint64_t>(c / kTile) * kTileBytes + static_cast<uint64_t>(((c % kTile) / kGroup * kTile + o % kTile) * kGroup + c % kGroup);
  }
};

// Packs rows [64 band, 64 band + 64) (those that exist) of a row-major [out, in] weight (`rows`
// points at row 64 band) into the band's bytes, zero-padded, and writes their compensation
// (-128 * row sum) to compensation[0..64).
void int8_tiles_pack_band(const Int8TilesShape& s, int64_t band, const int8_t* rows, uint8_t* band_out,
                          int32_t* compensation);

// After every band: the compensation of all padded rows (from int8_tiles_pack_band) and the zero
// reserved bytes, into dst[total_bytes()].
void int8_tiles_write_tail(const Int8TilesShape& s, const int32_t* compensation, uint8_t* dst);

// The whole layout (tiles, compensation, reserved) of a row-major weight, into dst[total_bytes()].
void int8_tiles_pack(const Int8TilesShape& s, const int8_t* rows, uint8_t* dst);

// Row-major [out, in] from the layout.
void int8_tiles_unpack(const Int8TilesShape& s, const uint8_t* src, int8_t* rows);

// Sums of each of a band's 64 rows over all its columns (padding included), from the tiles. Inline
// so that backends compile it for their instruction set (it runs over every weight at load).
inline void int8_tiles_band_sums(const Int8TilesShape& s, const uint8_t* band, int32_t* sums) {
  constexpr int64_t T = Int8TilesShape::kTile, G = Int8TilesShape::kGroup;
  int32_t acc[T] = {};
  for (int64_t ib = 0; ib < s.in_tiles(); ++ib) {
    const int8_t* tile = reinterpret_cast<const int8_t*>(band) + ib * Int8TilesShape::kTileBytes;
    for (int64_t g = 0; g < T / G; ++g)
      for (int64_t o = 0; o < T; ++o) {
        uint32_t u;  // the four bytes of one group, each sign-extended by shifts
        std::memcpy(&u, tile + (g * T + o) * G, 4);
        const auto v = static_cast<int32_t>(u);
        acc[o] += (static_cast<int32_t>(u << 24) >> 24) + (static_cast<int32_t>(u << 16) >> 24) +
                  (static_cast<int32_t>(u << 8) >> 24) + (v >> 24);
      }
  }
  std::copy(acc, acc + T, sums);
}

// Checks a band of a stored weight: its compensation entries match its values, and its padding
// and its reserved bytes are zero. Returns "" or what is wrong, naming the row.
std::string int8_tiles_check_band(const Int8TilesShape& s, const uint8_t* src, int64_t band, const int32_t* sums);

}  // namespace sparq
