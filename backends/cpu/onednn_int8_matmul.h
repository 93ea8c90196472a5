// y[M, N] = (f32(x_s8[M, K] · W_s8[N, K]ᵀ) * s_w[N]) * s_x[M] through oneDNN 2.6.
//
// oneDNN reads the weights in its packed layout (format_tag::any). On AVX512-VNNI that is exactly
// the file's int8_k4_tiles layout (runtime/model_file/int8_tiles.h: BA16a64b4a plus the s8s8
// compensation), checked at load by comparing descriptors: such a weight is used in place from the
// mmap, with no copy. A row-major weight (format version 1) is packed into that layout by our own
// code; only where oneDNN wants another layout does its (slow) reorder run, into a copy.
//
// oneDNN 2.6 has fast (brgemm, VNNI) kernels only for a fixed M: a primitive whose M is a runtime
// dimension runs the reference kernel, 1000x slower (bench/onednn_int8_primitives.sh). So a
// primitive is built per row count, and their number stays small whatever sizes continuous
// batching brings:
// - they are shared by every weight of the same [N x K] shape: the primitive writes the exact
//   int32 sums and both scales are applied afterwards, so no weight's values are part of it;
// - up to kExactRows rows get a primitive of their own row count (decode batches, short chunks);
//   a larger step runs in pieces of a multiple of kExactRows rows, at most kMaxPieceRows, and a
//   remainder below kExactRows. Integer sums are exact, so pieces do not change a row's result.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sparq::cpu {

// oneDNN sums int8 products exactly only where the CPU has VNNI (AVX512-VNNI or AVX-VNNI). Without
// it (plain AVX2 or AVX-512) its kernels add pairs of u8 x s8 products into int16 with saturation
// (vpmaddubsw), so results differ from the reference: INT8 linears then use our own kernel.
// Decided by CPU features (and DNNL_MAX_CPU_ISA), never by timing, so a machine's numbers are fixed.
bool onednn_int8_is_exact();

class OneDnnInt8Matmul {
 public:
  static constexpr int64_t kExactRows = 64, kMaxPieceRows = 512;

  // weight: [n, k] row-major, or int8_k4_tiles when `tiled` (it must then stay mapped as long as
  // this object lives). threads: the OpenMP team oneDNN uses when run() is called (from any thread).
  OneDnnInt8Matmul(const uint8_t* weight, bool tiled, int64_t n, int64_t k, const std::vector<float>& scales,
                   int threads);
  ~OneDnnInt8Matmul();
  // row_scales: s_x, one per row of x. Safe to call from several threads at once.
  void run(const int8_t* x, int64_t m, const float* row_scales, float* y) const;
  // Bytes of the copy this object holds: 0 when it reads the caller's tiles in place.
  uint64_t packed_bytes() const;
  bool in_place() const;

  // The rows of the first piece when m rows remain.
  static int64_t piece_rows(int64_t m);
  // oneDNN's name of the kernel that runs m rows of this weight (e.g. "brg:avx512_core_vnni").
  std::string implementation(int64_t m) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparq::cpu
