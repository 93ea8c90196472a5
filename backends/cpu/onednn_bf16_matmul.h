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

namespace sparq::cpu {

class OneDnnBf16Matmul {
 public:
  explicit OneDnnBf16Matmul(int64_t k);
  ~OneDnnBf16Matmul();
  // Throws sparq::Error when oneDNN refuses the shape.
  void run(const uint16_t* x, int64_t m, const uint16_t* w, int64_t n, float* y, int64_t ldy) const;
  // Whether BF16 GEMMs beat f32 ones on this CPU (measured once, a few ms); otherwise callers keep
  // the f32 GEMM.
  static bool faster_than_f32();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparq::cpu
