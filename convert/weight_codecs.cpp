#include "convert/weight_codecs.h"

#include <cstring>

#include "runtime/model_file/sparse24.h"

namespace sparq {

bool is_zero_value(uint8_t b, bool fp8) { return fp8 ? (b & 0x7f) == 0 : b == 0; }

bool sparse24_encode_row(const uint8_t* dense, int64_t cols, bool fp8, uint8_t* values, uint8_t* positions,
                         int64_t* bad_group) {
  const int64_t groups = cols / 4;
  std::memset(positions, 0, static_cast<size_t>((groups + 1) / 2));
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* q = dense + g * 4;
    int picked[2], n = 0;
    for (int i = 0; i < 4; ++i)
      if (!is_zero_value(q[i], fp8)) {
        if (n == 2) {
          *bad_group = g;
          return false;
        }
        picked[n++] = i;
      }
    // Fewer than two non-zeros (quantization can round a kept weight to 0): keep the lowest free
    // slots, preferring ones whose byte is non-zero (-0) so the bytes round-trip.
    for (int pass = 0; pass < 2 && n < 2; ++pass)
      for (int i = 0; i < 4 && n < 2; ++i) {
        if (!is_zero_value(q[i], fp8)) continue;
        if (pass == 0 && q[i] == 0) continue;
        if (n == 1 && picked[0] == i) continue;
        picked[n++] = i;
      }
    if (picked[0] > picked[1]) std::swap(picked[0], picked[1]);
    values[g * 2] = q[picked[0]];
    values[g * 2 + 1] = q[picked[1]];
    sparse24::put_group_nibble(positions, g, sparse24::make_nibble(picked[0], picked[1]));
  }
  return true;
}

bool sparse24_from_bitmask_row(const uint8_t* compressed, const uint8_t* bitmask, int64_t cols, uint8_t* values,
                               uint8_t* positions, int64_t* bad_group) {
  const int64_t groups = cols / 4;
  std::memset(positions, 0, static_cast<size_t>((groups + 1) / 2));
  for (int64_t g = 0; g < groups; ++g) {
    const int bits = (bitmask[g / 2] >> (g % 2 * 4)) & 0xf;  // group g = columns 4g..4g+3
    if (__builtin_popcount(static_cast<unsigned>(bits)) != 2) {
      *bad_group = g;
      return false;
    }
    const int first = __builtin_ctz(static_cast<unsigned>(bits));
    const int second = __builtin_ctz(static_cast<unsigned>(bits & (bits - 1)));
    values[g * 2] = compressed[g * 2];
    values[g * 2 + 1] = compressed[g * 2 + 1];
    sparse24::put_group_nibble(positions, g, sparse24::make_nibble(first, second));
  }
  return true;
}

void sparse24_decode_row(const uint8_t* values, const uint8_t* positions, int64_t cols, uint8_t* dense) {
  std::memset(dense, 0, static_cast<size_t>(cols));
  for (int64_t g = 0; g < cols / 4; ++g) {
    const int nib = sparse24::group_nibble(positions, g);
    dense[g * 4 + sparse24::first_column(nib)] = values[g * 2];
    dense[g * 4 + sparse24::second_column(nib)] = values[g * 2 + 1];
  }
}

void bitmask_decode_row(const uint8_t* compressed, const uint8_t* bitmask, int64_t cols, uint8_t* dense) {
  int64_t k = 0;
  for (int64_t c = 0; c < cols; ++c) dense[c] = (bitmask[c / 8] >> (c % 8)) & 1 ? compressed[k++] : 0;
}

int8_t packed_field(const uint8_t* stream, int64_t k, int bits) {
  const int64_t bit = k * bits;
  const int64_t byte = bit / 8;
  const int shift = static_cast<int>(bit % 8);
  uint32_t window = stream[byte];
  if (shift + bits > 8) window |= static_cast<uint32_t>(stream[byte + 1]) << 8;
  const uint32_t field = (window >> shift) & ((1u << bits) - 1);
  return static_cast<int8_t>(static_cast<int>(field) - (1 << (bits - 1)));
}

void pack_i4_row(const int8_t* values, int64_t cols, uint8_t* out) {
  for (int64_t c = 0; c < cols; c += 2) {
    const uint8_t lo = static_cast<uint8_t>(values[c]) & 0xf;
    const uint8_t hi = c + 1 < cols ? static_cast<uint8_t>(values[c + 1]) & 0xf : 0;
    out[c / 2] = static_cast<uint8_t>(lo | hi << 4);
  }
}

int8_t i4_at(const uint8_t* row, int64_t k) {
  const int nib = (row[k / 2] >> (k % 2 * 4)) & 0xf;
  return static_cast<int8_t>(nib >= 8 ? nib - 16 : nib);
}

}  // namespace sparq
