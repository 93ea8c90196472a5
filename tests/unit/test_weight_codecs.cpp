#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "backends/cpu/cpu_linear.h"
#include "convert/weight_codecs.h"

using namespace sparq;

TEST_CASE("2:4 rows round-trip through the sparse24 layout", "[codecs]") {
  std::mt19937 rng(1);
  const int64_t cols = 64;
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<uint8_t> dense(cols, 0);
    for (int64_t g = 0; g < cols / 4; ++g) {
      int keep = static_cast<int>(rng() % 3);  // 0, 1 or 2 non-zeros
      for (int k = 0; k < keep; ++k) dense[g * 4 + rng() % 4] = static_cast<uint8_t>(1 + rng() % 120);
    }
    std::vector<uint8_t> values(cols / 2), positions((cols / 4 + 1) / 2), back(cols);
    int64_t bad = -1;
    REQUIRE(sparse24_encode_row(dense.data(), cols, false, values.data(), positions.data(), &bad));
    sparse24_decode_row(values.data(), positions.data(), cols, back.data());
    CHECK(back == dense);
  }
}

TEST_CASE("a group with three non-zeros is refused and named", "[codecs]") {
  std::vector<uint8_t> dense = {1, 0, 0, 0, 5, 6, 7, 0};
  std::vector<uint8_t> values(4), positions(1);
  int64_t bad = -1;
  CHECK_FALSE(sparse24_encode_row(dense.data(), 8, false, values.data(), positions.data(), &bad));
  CHECK(bad == 1);
}

TEST_CASE("FP8 negative zero counts as zero for the 2:4 pattern", "[codecs]") {
  std::vector<uint8_t> dense = {0x80, 0x38, 0x40, 0x00};
  std::vector<uint8_t> values(2), positions(1), back(4);
  int64_t bad = -1;
  REQUIRE(sparse24_encode_row(dense.data(), 4, true, values.data(), positions.data(), &bad));
  sparse24_decode_row(values.data(), positions.data(), 4, back.data());
  CHECK(back[1] == 0x38);
  CHECK(back[2] == 0x40);
}

TEST_CASE("sparse-24-bitmask rows convert to the same dense row either way", "[codecs]") {
  // columns 1,3 | 0,2 kept: bitmask byte = 0b0101'1010
  std::vector<uint8_t> compressed = {10, 11, 20, 21}, bitmask = {0x5a};
  std::vector<uint8_t> values(4), positions(1), a(8), b(8);
  int64_t bad = -1;
  REQUIRE(sparse24_from_bitmask_row(compressed.data(), bitmask.data(), 8, values.data(), positions.data(), &bad));
  sparse24_decode_row(values.data(), positions.data(), 8, a.data());
  bitmask_decode_row(compressed.data(), bitmask.data(), 8, b.data());
  CHECK(a == b);
  CHECK(a == std::vector<uint8_t>{0, 10, 0, 11, 20, 0, 21, 0});
  std::vector<uint8_t> three = {0x7a};
  CHECK_FALSE(sparse24_from_bitmask_row(compressed.data(), three.data(), 8, values.data(), positions.data(), &bad));
}

TEST_CASE("packed int4 fields are offset by 8 and nibbles sign-extend", "[codecs]") {
  // word 0x76543210: fields 0..7 = 0..7, minus 8 -> -8..-1
  std::vector<uint8_t> words = {0x10, 0x32, 0x54, 0x76};
  for (int k = 0; k < 8; ++k) CHECK(packed_field(words.data(), k, 4) == k - 8);
  std::vector<int8_t> vals = {-8, 7, -1, 0, 3};
  std::vector<uint8_t> row(3);
  pack_i4_row(vals.data(), 5, row.data());
  for (int k = 0; k < 5; ++k) CHECK(i4_at(row.data(), k) == vals[k]);
  // 3-bit fields straddle bytes
  std::vector<uint8_t> s3 = {0b10001000, 0b11000110, 0b11111010, 0};
  for (int k = 0; k < 8; ++k) CHECK(packed_field(s3.data(), k, 3) == k - 4);
}

// The CPU backend's vectorized nibble unpacking against a one-value-at-a-time reference: every byte
// value, every length (odd ones end on a low nibble), every offset of a vector's tail.
TEST_CASE("unpack_i4 gives the signed nibbles of every byte, low nibble first", "[weight_codecs]") {
  std::vector<uint8_t> packed(300);
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = static_cast<uint8_t>(i * 37 + 11);
  for (int64_t n = 0; n <= 2 * static_cast<int64_t>(packed.size()) - 1; n += (n < 140 ? 1 : 37)) {
    std::vector<int8_t> q(static_cast<size_t>(n) + 1, 99);
    sparq::cpu::unpack_i4(packed.data(), n, q.data());
    for (int64_t c = 0; c < n; ++c) {
      const int nib = (packed[static_cast<size_t>(c / 2)] >> (c % 2 * 4)) & 0xf;
      INFO("n " << n << " c " << c);
      REQUIRE(q[static_cast<size_t>(c)] == (nib >= 8 ? nib - 16 : nib));
    }
    REQUIRE(q[static_cast<size_t>(n)] == 99);  // nothing written past the end
  }
}
