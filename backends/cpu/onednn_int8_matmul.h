// y[M, N] = f32(x_s8[M, K] · W_s8[N, K]ᵀ) * s_w[N] through oneDNN 2.6. The per-output-channel weight
// scales are fixed when the primitive is created (set_output_scales(1 << 1, ...)): runtime scales
// make oneDNN fall back to a much slower kernel. The per-token activation scale is not fused (an
// [M, 1] post-op also falls back); the caller applies it afterwards.
//
// The weights are reordered once into oneDNN's packed layout (format_tag::any, e.g. BA16a64b4a), so
// this path holds one copy of each INT8 weight besides the mmap (the file's pages are released).
//
// Two primitives per weight, whatever row counts continuous batching brings: one for M = 1 (a
// single decode token, the hot path) and one whose M is a runtime dimension for every other step,
// so memory does not grow with the number of distinct step sizes.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace sparq::cpu {

// oneDNN sums int8 products exactly only where the CPU has VNNI (AVX512-VNNI or AVX-VNNI). Without
// it (plain AVX2 or AVX-512) its kernels add pairs of u8 x s8 products into int16 with saturation
// (vpmaddubsw), so results differ from the reference: INT8 linears then use our own kernel.
// Decided by CPU features (and DNNL_MAX_CPU_ISA), never by timing, so a machine's numbers are fixed.
bool onednn_int8_is_exact();

class OneDnnInt8Matmul {
 public:
  // threads: the OpenMP team oneDNN uses when run() is called (from any thread).
  OneDnnInt8Matmul(const int8_t* weight, int64_t n, int64_t k, const std::vector<float>& scales, int threads);
  ~OneDnnInt8Matmul();
  void run(const int8_t* x, int64_t m, float* y) const;
  uint64_t packed_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparq::cpu
