// One Linear layer on the CPU, for every scheme the converter writes. Weights are read in place
// from the model file's mmap; nothing dequantized is kept. Three paths:
//   - INT8 weights x INT8 dynamic activations: exact int32 dot products, y = acc * s_x[t] * s_w[o]
//     (oneDNN s8 x s8 for row-major weights, see onednn_int8_matmul.h; our own kernel for sparse24);
//   - FP8 weights x FP8 dynamic activations: products of FP8 values (exact in f32) summed in f32,
//     y = acc * s_x[t] * s_w[o];
//   - everything else (BF16/F16/F32, INT4/INT8 weight-only, grouped scales, zero points, g_idx,
//     static input scales): each weight row dequantized into a per-thread f32 buffer, the inputs
//     fake-quantized when the scheme quantizes them, f32 dot products.
// sparse24 weights are read as kept values + 2-bit positions in every path.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/graph/graph.h"

namespace sparq::cpu {

class OneDnnInt8Matmul;
class OneDnnBf16Matmul;

struct CpuLinearOptions {
  int threads = 1;
  bool use_onednn = true;  // INT8 row-major weights through oneDNN (packed copy) instead of our kernel
};

// Signed 4-bit values packed two per byte (low nibble first), as int8.
void unpack_i4(const uint8_t* packed, int64_t n, int8_t* q);

class CpuLinear {
 public:
  // Throws sparq::Error naming the module when unsupported() is not empty.
  CpuLinear(const LinearWeights& weights, const CpuLinearOptions& opts);
  // Why the CPU cannot run this Linear; empty when it can. A pure check of the description.
  static std::string unsupported(const LinearWeights& weights);
  ~CpuLinear();
  CpuLinear(const CpuLinear&) = delete;
  CpuLinear& operator=(const CpuLinear&) = delete;

  // x [rows, in] -> y [rows, out].
  void forward(const float* x, int64_t rows, float* y) const;
  uint64_t repacked_bytes() const;
  // The file bytes the forward pass reads in place (empty when it reads a repacked copy).
  std::span<const uint8_t> mapped_weight() const;

 private:
  enum class Input : uint8_t { None, Int8Dynamic, Fp8Dynamic, Int8Static, Fp8Static };
  enum class Path : uint8_t { Int8, Fp8, Generic };

  void forward_int8(const float* x, int64_t rows, float* y) const;
  void forward_fp8(const float* x, int64_t rows, float* y) const;
  void forward_generic(const float* x, int64_t rows, float* y) const;
  // W4A16 without g_idx, fewer than a GEMM's rows: the packed nibbles read once per call.
  void gemv_i4(const float* x, int64_t rows, float* y) const;
  // FP8 weights: y = x Wᵀ through BF16 GEMMs over widened tiles (x: FP8 values as f32, exact in BF16).
  void gemm_widened_bf16(const float* xv, int64_t rows, float* y) const;
  // y = x Wᵀ through f32 GEMMs over tiles of weight rows that widen(first_row, n, out) writes as f32.
  void gemm_widened(const float* x, int64_t rows, float* y,
                    const std::function<void(int64_t, int64_t, float*)>& widen) const;
  // Checks an int8_k4_tiles weight (compensation, padding) on all threads; throws naming the module.
  void check_int8_tiles(const TensorView& t) const;
  // Row o of the weight, dequantized to f32 (scales, zero points applied).
  void dequantize_row(int64_t o, float* row, int8_t* scratch) const;
  // Row o's quantized values, dense: int8 for I8, E4M3 bytes for FP8 (sparse24 expanded).
  const uint8_t* quantized_row(int64_t o, uint8_t* scratch) const;
  float weight_scale(int64_t o, int64_t col) const;
  void add_bias(int64_t rows, float* y) const;

  LinearWeights w_;
  int64_t in_ = 0, out_ = 0;
  DType wtype_ = DType::F32;
  bool sparse24_ = false;
  const uint8_t* weight_ = nullptr;     // values (row-major, or sparse24 kept values)
  std::vector<uint8_t> unpacked_;       // row-major copy of an int8_k4_tiles weight our own kernel reads
  uint64_t weight_bytes_ = 0;           // the whole weight tensor (values + positions)
  const uint8_t* positions_ = nullptr;  // sparse24 positions
  int64_t groups_ = 1;                  // scale columns per row
  std::vector<float> scale_;
  std::vector<int8_t> zero_point_;
  std::vector<int32_t> g_idx_;
  std::vector<float> bias_;
  Input input_ = Input::None;
  bool per_tensor_input_ = false;
  float input_scale_ = 1.0f;
  int input_zero_point_ = 0;
  Path path_ = Path::Generic;
  int threads_ = 1;
  std::unique_ptr<OneDnnInt8Matmul> onednn_;
  mutable std::unique_ptr<OneDnnBf16Matmul> bf16_;  // made on the first prefill of an FP8 linear
};

}  // namespace sparq::cpu
