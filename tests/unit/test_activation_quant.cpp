// Dynamic INT8 activation quantization (vector path) against its scalar definition: half-way
// values round to even, the scale maps max|x| to 127, all-zero rows give zeros and scale 0.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backends/cpu/activation_quant.h"

TEST_CASE("INT8 dynamic quantization matches round-half-even on every row length", "[activation_quant]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (int64_t cols : {1, 15, 16, 17, 33, 2304}) {
    const int64_t rows = 3;
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (float& v : x) v = u(rng);
    // Row 1: values that land exactly half-way between integers after scaling (max 127 -> scale 1).
    for (int64_t c = 0; c < cols; ++c) x[static_cast<size_t>(cols + c)] = c == 0 ? 127.0f : static_cast<float>(c % 7) - 2.5f;
    std::fill(x.begin() + 2 * cols, x.end(), 0.0f);  // row 2: all zero
    std::vector<int8_t> q(x.size());
    std::vector<float> s(static_cast<size_t>(rows));
    sparq::cpu::quantize_int8_dynamic(x.data(), rows, cols, false, q.data(), s.data(), 2);
    for (int64_t r = 0; r < rows; ++r) {
      float a = 0;
      for (int64_t c = 0; c < cols; ++c) a = std::max(a, std::fabs(x[static_cast<size_t>(r * cols + c)]));
      INFO("cols " << cols << " row " << r);
      REQUIRE(s[static_cast<size_t>(r)] == a / 127.0f);
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = static_cast<size_t>(r * cols + c);
        const float want = a == 0 ? 0.0f : std::clamp(std::nearbyint(x[i] * (127.0f / a)), -128.0f, 127.0f);
        REQUIRE(static_cast<float>(q[i]) == want);
      }
    }
    if (cols > 5) {  // the half-way row: -1.5 -> -2, -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
      REQUIRE(q[static_cast<size_t>(cols + 1)] == -2);
      REQUIRE(q[static_cast<size_t>(cols + 2)] == 0);
      REQUIRE(q[static_cast<size_t>(cols + 3)] == 0);
      REQUIRE(q[static_cast<size_t>(cols + 4)] == 2);
      REQUIRE(q[static_cast<size_t>(cols + 5)] == 2);
    }
  }
}
