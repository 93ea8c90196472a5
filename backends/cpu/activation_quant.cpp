#include "backends/cpu/activation_quant.h"

#include <algorithm>
#include <cmath>

#include "runtime/core/float_formats.h"

namespace sparq::cpu {

namespace {

float abs_max(const float* x, int64_t n) {
  float a = 0.0f;
  for (int64_t i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

// round-half-even (the default rounding mode) then saturate, as vLLM's float_to_int8_rn.
int8_t to_int8_rn(float v) {
  const float r = std::nearbyint(v);
  return static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
}

}  // namespace

void quantize_int8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, int8_t* q, float* scales) {
  const float tensor_max = per_tensor ? abs_max(x, rows * cols) : 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    int8_t* qr = q + r * cols;
    const float a = per_tensor ? tensor_max : abs_max(xr, cols);
    scales[r] = a / 127.0f;
    if (a == 0.0f) {
      std::fill(qr, qr + cols, int8_t{0});
      continue;
    }
    const float inv = 127.0f / a;
    for (int64_t i = 0; i < cols; ++i) qr[i] = to_int8_rn(xr[i] * inv);
  }
}

void quantize_fp8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, uint8_t* q, float* scales) {
  const float tensor_max = per_tensor ? abs_max(x, rows * cols) : 0.0f;
  constexpr float kMinScale = 1.0f / (448.0f * 512.0f);
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
