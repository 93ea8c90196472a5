#include "backends/cpu/activation_quant.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "runtime/core/float_formats.h"

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which -O3 reports as
// (maybe-)uninitialized where they are inlined (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace sparq::cpu {

namespace {

float abs_max(const float* x, int64_t n) {
  float a = 0.0f;
#pragma omp simd reduction(max : a)
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

// round-half-even (the default rounding mode) then saturate, as vLLM's float_to_int8_rn.
int8_t to_int8_rn(float v) {
  const float r = std::nearbyint(v);
  return static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
}

// q[i] = sat_s8(round_half_even(x[i] * inv)). The AVX-512 conversion rounds with the current mode
// (nearest-even) and the narrowing saturates, exactly the scalar definition.
void quantize_row_int8(const float* x, int64_t n, float inv, int8_t* q) {
  int64_t i = 0;
#ifdef __AVX512F__
  const __m512 vinv = _mm512_set1_ps(inv);
  for (; i + 16 <= n; i += 16) {
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(r));
  }
#endif
  for (; i < n; ++i) q[i] = to_int8_rn(x[i] * inv);
}

}  // namespace

void quantize_int8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, int8_t* q, float* scales,
                           int threads) {
  const float tensor_max = per_tensor ? abs_max(x, rows * cols) : 0.0f;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    int8_t* qr = q + r * cols;
    const float a = per_tensor ? tensor_max : abs_max(xr, cols);
    scales[r] = a / 127.0f;
    if (a == 0.0f) {
      std::fill(qr, qr + cols, int8_t{0});
      continue;
    }
    quantize_row_int8(xr, cols, 127.0f / a, qr);
  }
}

void quantize_fp8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, uint8_t* q, float* scales,
                          int threads) {
  const float tensor_max = per_tensor ? abs_max(x, rows * cols) : 0.0f;
  constexpr float kMinScale = 1.0f / (448.0f * 512.0f);
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    uint8_t* qr = q + r * cols;
    const float a = per_tensor ? tensor_max : abs_max(xr, cols);
    const float s = std::max(a / 448.0f, kMinScale);
    scales[r] = s;
    const float inv = 1.0f / s;
    for (int64_t i = 0; i < cols; ++i) qr[i] = f32_to_fp8_e4m3(std::clamp(xr[i] * inv, -448.0f, 448.0f));
  }
}

void quantize_int8_static(const float* x, int64_t n, float scale, int zero_point, int8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = std::nearbyint(x[i] / scale) + static_cast<float>(zero_point);
    q[i] = static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
  }
}

void quantize_fp8_static(const float* x, int64_t n, float scale, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = f32_to_fp8_e4m3(std::clamp(x[i] / scale, -448.0f, 448.0f));
}

}  // namespace sparq::cpu

#pragma GCC diagnostic pop
