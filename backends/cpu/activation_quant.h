// Dynamic activation quantization as vLLM does it, row by row (per token) or over the whole batch
// (per tensor):
//   INT8: a = max|x|, s = a/127, q = sat_s8(round_half_even(x * (127/a))); q = 0 when a == 0.
//   FP8:  a = max|x|, s = max(a/448, 1/(448*512)), q = e4m3_rne(clamp(x * (1/s), ±448)).
// Static scales (P.input_scale) quantize with the given scale instead.
#pragma once
#include <cstdint>

namespace sparq::cpu {

// x [rows, cols] -> q [rows, cols], scales [rows] (per_tensor: one scale shared by all rows, still
// written to every entry).
void quantize_int8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, int8_t* q, float* scales,
                           int threads);
void quantize_fp8_dynamic(const float* x, int64_t rows, int64_t cols, bool per_tensor, uint8_t* q, float* scales,
                          int threads);

// Static: q = sat(round_half_even(x / s) + zp).
void quantize_int8_static(const float* x, int64_t n, float scale, int zero_point, int8_t* q);
void quantize_fp8_static(const float* x, int64_t n, float scale, uint8_t* q);

}  // namespace sparq::cpu
