#include "backends/cpu/cpu_ops.h"

#include "backends/cpu/vector_math.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/core/float_formats.h"

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which -O3 reports as
// (maybe-)uninitialized where xsimd inlines them (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace sparq::cpu {


void to_f32(const uint8_t* data, DType dtype, int64_t n, float* out) {
  if (dtype == DType::F32) {
    std::memcpy(out, data, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  for (int64_t c = 0; c < n; ++c) {
    uint16_t h;
    std::memcpy(&h, data + 2 * c, 2);
    out[c] = dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

void embedding(const uint8_t* table, DType dtype, int64_t vocab, int64_t width, std::span<const int32_t> ids,
               float scale, float* out) {
  const int64_t item = dtype == DType::F32 ? 4 : 2;
  for (size_t r = 0; r < ids.size(); ++r) {
    const int32_t id = ids[r];
    if (id < 0 || id >= vocab) fail("token id ", id, " is outside the vocabulary (", vocab, " entries)");
    float* o = out + static_cast<int64_t>(r) * width;
    to_f32(table + static_cast<int64_t>(id) * width * item, dtype, width, o);
    for (int64_t c = 0; c < width; ++c) o[c] *= scale;
  }
}

void rms_norm(const float* x, int64_t rows, int64_t width, const float* w, float eps, NormForm form, float* out,
              int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* o = out + r * width;
    double ss = 0;  // the mean in double, rounded once: closer to any f32 summation order
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < width; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const float mean = static_cast<float>(ss / static_cast<double>(width));
    const float inv = 1.0f / std::sqrt(mean + eps);
    if (form == NormForm::OffsetOne) {
      for (int64_t c = 0; c < width; ++c) o[c] = (xr[c] * inv) * (1.0f + w[c]);
    } else {
      for (int64_t c = 0; c < width; ++c) o[c] = w[c] * (xr[c] * inv);
    }
  }
}

void rope(const float* x, int64_t rows, int64_t heads, int64_t head_dim, std::span<const float> inv_freq,
          std::span<const int64_t> positions, float* out) {
  const int64_t half = head_dim / 2;
  std::vector<float> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[static_cast<size_t>(r)]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[static_cast<size_t>(i)];  // f32, as torch computes it
      cos_v[static_cast<size_t>(i)] = std::cos(angle);
      sin_v[static_cast<size_t>(i)] = std::sin(angle);
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float* xh = x + (r * heads + h) * head_dim;
      float* oh = out + (r * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = xh[i], b = xh[i + half], c = cos_v[static_cast<size_t>(i)], s = sin_v[static_cast<size_t>(i)];
        oh[i] = a * c - b * s;
        oh[i + half] = b * c + a * s;
      }
    }
  }
}

void gated_activation(const float* gate, const float* up, int64_t n, GateActivation act, float* out, int threads) {
  // Split into per-thread ranges of whole vectors; each runs the vector loop.
  const int64_t chunks = (n + kLanes - 1) / kLanes;
#pragma omp parallel num_threads(threads) if (n > 65536)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = std::min(n, chunks * t / nt * kLanes), end = std::min(n, chunks * (t + 1) / nt * kLanes);
    const float* g = gate + begin;
    const float* u = up + begin;
    float* o = out + begin;
    if (act == GateActivation::GeluTanh) {
      const Floats beta(0.7978845608028654f), c(0.044715f), half(0.5f), one(1.0f);  // beta = sqrt(2/pi)
      map_vectors(end - begin, [&](int64_t i, int64_t k) {
        const Floats x = load(g + i, k);
        store(half * x * (one + xsimd::tanh(beta * (x + c * x * x * x))) * load(u + i, k), o + i, k);
      });
    } else {
      const Floats one(1.0f);
      map_vectors(end - begin, [&](int64_t i, int64_t k) {
        const Floats x = load(g + i, k);
        store(x / (one + xsimd::exp(-x)) * load(u + i, k), o + i, k);
      });
    }
  }
}

void add(const float* a, const float* b, int64_t n, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void soft_cap(const float* x, int64_t n, float cap, float* out) {
  const Floats c(cap);
  map_vectors(n, [&](int64_t i, int64_t k) { store(xsimd::tanh(load(x + i, k) / c) * c, out + i, k); });
}

}  // namespace sparq::cpu

#pragma GCC diagnostic pop
