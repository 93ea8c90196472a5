// The int8_k4_tiles layout: where each value lands, the compensation, padding, and the checks a
// damaged file fails.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "runtime/model_file/int8_tiles.h"
#include "runtime/model_file/tensor_layout.h"

using namespace sparq;

namespace {

std::vector<int8_t> weight(int64_t out, int64_t in) {
  std::vector<int8_t> w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>((i * 37 + 11) % 256) - 128);
  return w;
}

std::string check_all(const Int8TilesShape& s, const std::vector<uint8_t>& t) {
  for (int64_t b = 0; b < s.bands(); ++b) {
    int32_t sums[Int8TilesShape::kTile];
    int8_tiles_band_sums(s, t.data() + static_cast<uint64_t>(b) * s.band_bytes(), sums);
    if (std::string why = int8_tiles_check_band(s, t.data(), b, sums); !why.empty()) return why;
  }
  return "";
}

}  // namespace

TEST_CASE("int8_k4_tiles places each value where VNNI kernels read it", "[model_file]") {
  // 130 x 200: a partial last band and a partial last column tile.
  const Int8TilesShape s(130, 200);
  CHECK(s.padded_out == 192);
  CHECK(s.padded_in == 256);
  CHECK(s.total_bytes() == 192u * 256 + 12 * 192);
  const auto w = weight(130, 200);
  std::vector<uint8_t> t(s.total_bytes(), 0xAA);
  int8_tiles_pack(s, w.data(), t.data());
  // The documented formula, written out once more.
  for (int64_t o = 0; o < 130; o += 7)
    for (int64_t c = 0; c < 200; c += 3) {
      const uint64_t at = static_cast<uint64_t>((o / 64) * 4 + c / 64) * 4096 +
                          static_cast<uint64_t>(((c % 64) / 4 * 64 + o % 64) * 4 + c % 4);
      CHECK(static_cast<int8_t>(t[at]) == w[static_cast<size_t>(o * 200 + c)]);
    }
  for (int64_t o = 0; o < 192; ++o) {
    int32_t want = 0, got;
    for (int64_t c = 0; o < 130 && c < 200; ++c) want += w[static_cast<size_t>(o * 200 + c)];
    std::memcpy(&got, t.data() + s.compensation_offset() + 4 * static_cast<uint64_t>(o), 4);
    CHECK(got == -128 * want);
  }
  for (uint64_t i = s.reserved_offset(); i < s.total_bytes(); ++i) REQUIRE(t[i] == 0);
  std::vector<int8_t> back(w.size());
  int8_tiles_unpack(s, t.data(), back.data());
  CHECK(back == w);
  CHECK(check_all(s, t).empty());
}

TEST_CASE("int8_k4_tiles checks find damaged compensation, padding and reserved bytes", "[model_file]") {
  const Int8TilesShape s(70, 100);
  const auto w = weight(70, 100);
  std::vector<uint8_t> good(s.total_bytes());
  int8_tiles_pack(s, w.data(), good.data());
  REQUIRE(check_all(s, good).empty());
  SECTION("a flipped value") {
    auto t = good;
    t[Int8TilesShape::in_band(5, 17)] ^= 1;
    CHECK_THAT(check_all(s, t), Catch::Contains("row 5") && Catch::Contains("compensation"));
  }
  SECTION("a nonzero padding column") {
    auto t = good;
    t[s.band_bytes() + Int8TilesShape::in_band(3, 110)] = 1;  // row 67, column 110 >= 100
    CHECK_THAT(check_all(s, t), Catch::Contains("row 67"));
  }
  SECTION("a nonzero padding row") {
    auto t = good;
    t[s.band_bytes() + Int8TilesShape::in_band(20, 0)] = 1;  // row 84 >= 70
    CHECK_THAT(check_all(s, t), Catch::Contains("row 84"));
  }
  SECTION("nonzero reserved bytes") {
    auto t = good;
    t[s.reserved_offset() + 8 * 9 + 3] = 1;
    CHECK_THAT(check_all(s, t), Catch::Contains("row 9: reserved"));
  }
}

TEST_CASE("int8_k4_tiles compensation holds the extreme row sums", "[model_file]") {
  // Every value -128 over the most columns allowed (2^16) gives the largest compensation,
  // -128 * -128 * 2^16 = 2^30; twice the columns would overflow int32 (layout_bytes refuses them).
  REQUIRE(kInt8TilesMaxColumns == (1 << 16));
  const Int8TilesShape s(1, 1 << 16);
  std::vector<int8_t> w(1 << 16, -128);
  std::vector<uint8_t> t(s.total_bytes());
  int8_tiles_pack(s, w.data(), t.data());
  int32_t got;
  std::memcpy(&got, t.data() + s.compensation_offset(), 4);
  CHECK(got == 128 * 128 * (1 << 16));
  CHECK(check_all(s, t).empty());
}
