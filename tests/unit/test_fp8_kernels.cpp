// The FP8 weight kernels against a scalar reference built from the E4M3 table: widening is exact,
// dot products agree to f32 rounding, for dense and sparse24 rows, every tail length.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/fp8_kernels.h"
#include "runtime/core/float_formats.h"

using namespace sparq;

namespace {

struct Sparse24Rows {
  std::vector<uint8_t> values, positions;
  std::vector<float> dense;  // reference, widened by the table
};

uint8_t random_e4m3(std::mt19937& rng) {
  for (;;) {
    const auto b = static_cast<uint8_t>(rng() & 0xff);
    if ((b & 0x7f) != 0x7f) return b;  // NaN is not a weight
  }
}

Sparse24Rows make_sparse24(int64_t rows, int64_t cols, std::mt19937& rng) {
  Sparse24Rows s;
  s.values.resize(static_cast<size_t>(rows * cols / 2));
  s.positions.assign(static_cast<size_t>(rows * ((cols + 7) / 8)), 0);
  s.dense.assign(static_cast<size_t>(rows * cols), 0.0f);
  static const int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / 4; ++g) {
      const int* pair = kPairs[rng() % 6];
      const size_t vi = static_cast<size_t>(r * cols / 2 + 2 * g);
      s.values[vi] = random_e4m3(rng);
      s.values[vi + 1] = random_e4m3(rng);
      s.positions[static_cast<size_t>(r * ((cols + 7) / 8) + g / 2)] |=
          static_cast<uint8_t>((pair[0] | pair[1] << 2) << (g % 2 * 4));
      s.dense[static_cast<size_t>(r * cols + 4 * g + pair[0])] = kFp8E4M3Table[s.values[vi]];
      s.dense[static_cast<size_t>(r * cols + 4 * g + pair[1])] = kFp8E4M3Table[s.values[vi + 1]];
    }
  return s;
}

std::vector<float> random_activations(int64_t cols, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(cols));
  for (float& v : x) v = kFp8E4M3Table[random_e4m3(rng)];  // FP8-quantized activations, as the linear passes them
  return x;
}

// |got - want| within the worst-case f32 rounding of the kernels' sums: 16 lanes of cols/16 terms
// each (products are exact), then a 16-way reduction and the tail, each step at most 2^-24 relative
// to the running magnitude.
void check_dot(float got, const float* w, const float* x, int64_t cols) {
  double want = 0, magnitude = 0;
  for (int64_t c = 0; c < cols; ++c) {
    want += static_cast<double>(w[c]) * x[c];
    magnitude += std::fabs(static_cast<double>(w[c]) * x[c]);
  }
  const double steps = static_cast<double>(cols) / 16 + 16 + 8;
  REQUIRE(std::fabs(got - want) <= steps * 0x1p-24 * magnitude);
}

}  // namespace

TEST_CASE("fp8 sparse24 GEMV and widening match the scalar reference", "[fp8_kernels]") {
  std::mt19937 rng(7);
  for (int64_t cols : {4, 28, 32, 36, 64, 96, 100, 128, 192, 200, 252, 2304, 4096}) {
    for (int64_t rows : {1, 2, 3, 5}) {
      INFO("cols " << cols << " rows " << rows);
      const Sparse24Rows s = make_sparse24(rows, cols, rng);
      const std::vector<float> x = random_activations(cols, rng);
      std::vector<float> y(static_cast<size_t>(rows), -1.0f);
      cpu::Fp8GemvActivation act;
      cpu::fp8_prepare_activation(x.data(), cols, cpu::Fp8GemvLayout::Sparse24, act);
      cpu::fp8_gemv_sparse24(s.values.data(), s.positions.data(), rows, act, y.data());
      for (int64_t r = 0; r < rows; ++r) check_dot(y[static_cast<size_t>(r)], s.dense.data() + r * cols, x.data(), cols);
      std::vector<float> wide(static_cast<size_t>(rows * cols), -1.0f);
      cpu::fp8_widen_sparse24(s.values.data(), s.positions.data(), rows, cols, wide.data());
      REQUIRE(wide == s.dense);
    }
  }
}

TEST_CASE("fp8 dense GEMV and widening match the scalar reference", "[fp8_kernels]") {
  std::mt19937 rng(11);
  for (int64_t cols : {1, 31, 32, 33, 64, 65, 100, 127, 128, 129, 2304}) {
    const int64_t rows = 3;
    INFO("cols " << cols);
    std::vector<uint8_t> w(static_cast<size_t>(rows * cols));
    std::vector<float> dense(w.size());
    for (size_t i = 0; i < w.size(); ++i) dense[i] = kFp8E4M3Table[w[i] = random_e4m3(rng)];
    const std::vector<float> x = random_activations(cols, rng);
    std::vector<float> y(static_cast<size_t>(rows));
    cpu::Fp8GemvActivation act;
    cpu::fp8_prepare_activation(x.data(), cols, cpu::Fp8GemvLayout::Dense, act);
    cpu::fp8_gemv_dense(w.data(), rows, act, y.data());
    for (int64_t r = 0; r < rows; ++r) check_dot(y[static_cast<size_t>(r)], dense.data() + r * cols, x.data(), cols);
    std::vector<float> wide(w.size());
    cpu::fp8_widen_dense(w.data(), rows, cols, wide.data());
    REQUIRE(wide == dense);
  }
}

TEST_CASE("fp8 widening is exact for every E4M3 byte, subnormals and signed zero included", "[fp8_kernels]") {
  std::vector<uint8_t> all;
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f) all.push_back(static_cast<uint8_t>(b));
  const int64_t cols = static_cast<int64_t>(all.size());
  std::vector<float> wide(all.size());
  cpu::fp8_widen_dense(all.data(), 1, cols, wide.data());
  for (size_t i = 0; i < all.size(); ++i) {
    INFO("byte " << int(all[i]));
    REQUIRE(std::signbit(wide[i]) == std::signbit(kFp8E4M3Table[all[i]]));
    REQUIRE(wide[i] == kFp8E4M3Table[all[i]]);
  }
}

#ifdef SPARQ_ISA_VARIANT  // kernels and test compiled with the same flags (tests/CMakeLists.txt)
TEST_CASE("the FP8 GEMV kernel is the one the build's instruction set selects", "[fp8_kernels]") {
#if defined(__AVX512BF16__) && defined(__AVX512VBMI__) && defined(__AVX512VBMI2__)
  REQUIRE(std::string(cpu::fp8_gemv_kernel()) == "avx512-bf16-dot");
#elif defined(__AVX512F__) && defined(__AVX512BW__)
  REQUIRE(std::string(cpu::fp8_gemv_kernel()) == "avx512-f32-fma");
#else
  REQUIRE(std::string(cpu::fp8_gemv_kernel()) == "scalar");
#endif
}
#endif
