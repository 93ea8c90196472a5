// Elementwise and row-wise ops of the graph on the CPU, all in f32. `rows` is the number of tokens.
#pragma once
#include <cstdint>
#include <span>

#include "runtime/graph/graph.h"

namespace sparq::cpu {

// n values of a BF16/F16/F32 tensor -> f32.
void to_f32(const uint8_t* data, DType dtype, int64_t n, float* out);
// table [vocab, width] of dtype BF16/F16/F32; out[r] = table[ids[r]] * scale.
void embedding(const uint8_t* table, DType dtype, int64_t vocab, int64_t width, std::span<const int32_t> ids,
               float scale, float* out);
// Gemma: x̂ * (1 + w); Llama: w * x̂. x̂ = x * rsqrt(mean(x²) + eps).
void rms_norm(const float* x, int64_t rows, int64_t width, const float* w, float eps, NormForm form, float* out,
              int threads);
// NeoX half-split rotation of each head of each row by positions[r] * inv_freq[i].
void rope(const float* x, int64_t rows, int64_t heads, int64_t head_dim, std::span<const float> inv_freq,
          std::span<const int64_t> positions, float* out);
void gated_activation(const float* gate, const float* up, int64_t n, GateActivation act, float* out, int threads);
void add(const float* a, const float* b, int64_t n, float* out);
void soft_cap(const float* x, int64_t n, float cap, float* out);

}  // namespace sparq::cpu
