// y[M, N] (row stride ldy) = x_bf16[M, K] · W_bf16[N, K]ᵀ accumulated in f32, through oneDNN's
// brgemm BF16 kernels (AVX512-BF16: twice the f32 FMA rate where the CPU has it). Used for FP8
// weights in prefill: E4M3 weights and FP8-quantized activations are exact in BF16 and their
// products exact in f32, so this gives the same sums as an f32 GEMM up to summation order.
//
// Weight tiles are passed per call in their plain [N, K] layout (widened on the fly; nothing is
// kept). Primitives are created once per (N, ldy), M given at run time, and shared; run() may be called from several
// threads at once, and inside an OpenMP parallel region oneDNN runs it on the calling thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace sparq::cpu {

// The GEMM FP8 prefill uses: BF16 (this class) or f32 (oneDNN sgemm over widened tiles). The two sum
// in different orders, so the choice changes the last bits of every result; it is made once per
// process from CPU features, or the SPARQ_FP8_GEMM setting (bf16 | f32), never by timing (a timing
// race on a busy machine made the same command print different numbers). Default: BF16 where oneDNN
// has AVX512-BF16 kernels (the CPU's BF16 dot product does twice the multiply-adds of an f32 FMA),
// f32 elsewhere. `sparq devices` reports it; an unknown setting is an error that names it.
struct Fp8GemmChoice {
  bool bf16 = false;
  std::string reason;  // e.g. "BF16 (AVX512-BF16)", "f32 (SPARQ_FP8_GEMM=f32)"
};
const Fp8GemmChoice& fp8_gemm_choice();

class OneDnnBf16Matmul {
 public:
  explicit OneDnnBf16Matmul(int64_t k);
  ~OneDnnBf16Matmul();
  // Throws sparq::Error when oneDNN refuses the shape.
  void run(const uint16_t* x, int64_t m, const uint16_t* w, int64_t n, float* y, int64_t ldy) const;
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparq::cpu
