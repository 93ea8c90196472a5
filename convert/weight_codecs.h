// Row-wise encoders from compressed-tensors storage to .sparq layouts, and the independent decoders
// that --verify and the tests use to check them. All work on whole rows so they can stream.
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace sparq {

// --- 2:4 sparsity (8-bit elements) ---
// The value is zero when its byte is 0x00, or, for FP8, 0x80 (-0).
bool is_zero_value(uint8_t b, bool fp8);
// Dense row -> kept values [cols/2] + positions [ceil(cols/8)]; false when a group of 4 holds more
// than two non-zero values (then *bad_group is set).
bool sparse24_encode_row(const uint8_t* dense, int64_t cols, bool fp8, uint8_t* values, uint8_t* positions,
                         int64_t* bad_group);
// sparse-24-bitmask row (compressed [cols/2], bitmask [ceil(cols/8)], LSB-first) -> kept values +
// positions; false when a group of 4 does not mark exactly two columns.
bool sparse24_from_bitmask_row(const uint8_t* compressed, const uint8_t* bitmask, int64_t cols, uint8_t* values,
                               uint8_t* positions, int64_t* bad_group);
// Kept values + positions -> dense row (zeros elsewhere).
void sparse24_decode_row(const uint8_t* values, const uint8_t* positions, int64_t cols, uint8_t* dense);
// sparse-24-bitmask row -> dense row, written independently of the encoder for verification.
void bitmask_decode_row(const uint8_t* compressed, const uint8_t* bitmask, int64_t cols, uint8_t* dense);

// --- packed integers (pack-quantized) ---
// Field k of a little-endian bit stream of `bits`-wide fields, minus 2^(bits-1).
int8_t packed_field(const uint8_t* stream, int64_t k, int bits);
// Signed values in [-8, 7] -> I4 row (two per byte, low nibble first).
void pack_i4_row(const int8_t* values, int64_t cols, uint8_t* out);
int8_t i4_at(const uint8_t* row, int64_t k);

}  // namespace sparq
