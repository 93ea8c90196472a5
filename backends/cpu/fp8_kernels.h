// FP8 (E4M3) weight kernels. x86 has no FP8 arithmetic; every E4M3 value is exact in BF16, f16 and
// f32, and so is every product of two E4M3 values in f32, so the kernels widen weights in registers
// and accumulate in f32. Nothing dequantized is kept: decode (one activation row) reads the stored
// bytes directly; prefill widens a tile of rows into a scratch buffer and runs a GEMM over it.
//
// Decode GEMVs, where the CPU has AVX512-BF16, VBMI and VBMI2: two table lookups (vpermi2b) widen 64
// E4M3 bytes to BF16 and vdpbf16ps multiplies them with the activations, which FP8 quantization made
// exact in BF16. Elsewhere E4M3 goes through f16 to f32 and FMAs (AVX-512), or a scalar loop.
//
// Weights are row-major [rows, cols] E4M3 bytes, or `sparse24` (docs/FORMAT.md): kept values
// [rows][cols/2] and 2-bit positions [rows][cols/8], the first position of a group below the
// second. A sparse24 GEMV gathers the activations of each 64-column block to its 32 kept values in
// registers, so a decode step reads 5/8 of the dense bytes.
#pragma once
#include <cstdint>
#include <vector>

namespace sparq::cpu {

// Which GEMV an activation row is prepared for: the two BF16 kernels read it in different orders.
enum class Fp8GemvLayout { Dense, Sparse24 };

// One activation row for the FP8 GEMVs, prepared once and read by every block of weight rows: the
// f32 values (exact in BF16: FP8-quantized activations) and, where the GEMVs use BF16 dot products,
// the same values as BF16, zero-padded to a multiple of 64 columns, in order for sparse24 (it
// gathers from them) or in the lane order of the dense kernel's widened weights.
struct Fp8GemvActivation {
  const float* x = nullptr;
  int64_t cols = 0;
  Fp8GemvLayout layout = Fp8GemvLayout::Dense;
  std::vector<uint16_t> bf16;
};
// x must outlive `out` and hold values that are exact in BF16.
void fp8_prepare_activation(const float* x, int64_t cols, Fp8GemvLayout layout, Fp8GemvActivation& out);

// Which GEMV kernel this build runs ("avx512-bf16-dot", "avx512-f32-fma" or "scalar"), for `sparq
// devices`: fixed at build time, so the numbers never depend on timing.
const char* fp8_gemv_kernel();

// y[r] = sum_c w[r][c] * x[c], r in [0, rows). Unscaled: the caller applies weight and input scales.
// x prepared with the layout of the GEMV.
void fp8_gemv_dense(const uint8_t* w, int64_t rows, const Fp8GemvActivation& x, float* y);
// Same over sparse24 rows; x.cols % 4 == 0.
void fp8_gemv_sparse24(const uint8_t* values, const uint8_t* positions, int64_t rows, const Fp8GemvActivation& x,
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
