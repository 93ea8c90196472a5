// FP8 (E4M3) weight kernels. x86 has no FP8 arithmetic; every E4M3 value is exact in f16 and f32,
// and so is every product of two E4M3 values, so the kernels widen weights in registers (E4M3 ->
// f16 is a shift, f16 -> f32 is one instruction) and accumulate in f32. Nothing dequantized is
// kept: decode (one activation row) reads the stored bytes directly; prefill widens a tile of rows
// into a scratch buffer and runs a f32 GEMM over it.
//
// Weights are row-major [rows, cols] E4M3 bytes, or `sparse24` (docs/FORMAT.md): kept values
// [rows][cols/2] and 2-bit positions [rows][cols/8], the first position of a group below the
// second. A sparse24 dot product permutes the activations in registers to the kept columns
// instead of expanding the weights, so a decode step reads 5/8 of the dense bytes.
#pragma once
#include <cstdint>

namespace sparq::cpu {

// y[r] = sum_c w[r][c] * x[c], r in [0, rows). Unscaled: the caller applies weight and input scales.
void fp8_gemv_dense(const uint8_t* w, int64_t rows, int64_t cols, const float* x, float* y);
// Same over sparse24 rows; cols % 4 == 0.
void fp8_gemv_sparse24(const uint8_t* values, const uint8_t* positions, int64_t rows, int64_t cols, const float* x,
                       float* y);

// Rows widened to f32 (exact), out[r * cols + c].
void fp8_widen_dense(const uint8_t* w, int64_t rows, int64_t cols, float* out);
void fp8_widen_sparse24(const uint8_t* values, const uint8_t* positions, int64_t rows, int64_t cols, float* out);

// The same as BF16 bit patterns (exact: E4M3 has 4 significant bits), for BF16 GEMMs.
void fp8_widen_dense_bf16(const uint8_t* w, int64_t rows, int64_t cols, uint16_t* out);
void fp8_widen_sparse24_bf16(const uint8_t* values, const uint8_t* positions, int64_t rows, int64_t cols,
                             uint16_t* out);
// f32 values that are exact in BF16 (FP8-quantized activations) to BF16 bit patterns (truncation).
void exact_f32_to_bf16(const float* x, int64_t n, uint16_t* out);

}  // namespace sparq::cpu
