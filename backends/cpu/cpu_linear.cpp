#include "backends/cpu/cpu_linear.h"

#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "backends/cpu/activation_quant.h"
#include "backends/cpu/fp8_kernels.h"
#include "backends/cpu/stream_prefetch.h"
#include "backends/cpu/onednn_bf16_matmul.h"
#include "backends/cpu/onednn_int8_matmul.h"
#include "runtime/core/error.h"
#include "runtime/core/float_formats.h"
#include "runtime/model_file/int8_tiles.h"
#include "runtime/model_file/tensor_layout.h"
#include "runtime/model_file/sparse24.h"

namespace sparq::cpu {

namespace {

// From this many tokens on, a sparse24 row is expanded once and reused across tokens.
constexpr int64_t kExpandRows = 4;

// Rows [begin, end) of `total` for the calling thread of an OpenMP team, in chunks of `align`.
std::pair<int64_t, int64_t> thread_range(int64_t total, int64_t align) {
  const int64_t n = omp_get_num_threads(), t = omp_get_thread_num();
  const int64_t chunks = (total + align - 1) / align;
  const int64_t per = chunks / n, extra = chunks % n;
  const int64_t c0 = t * per + std::min(t, extra), c1 = c0 + per + (t < extra ? 1 : 0);
  return {std::min(total, c0 * align), std::min(total, c1 * align)};
}

// Calls fn(begin, end) for blocks of `total` rows (multiples of `align`), handed out one at a time to
// the threads of the enclosing parallel region: a thread the OS preempts (a busy laptop) holds up at
// most the block it has, and the others take the rest. Each row's result is computed the same way
// whichever thread takes it, so outputs do not depend on the schedule. Call from every thread.
template <class F>
void for_each_row_block(int64_t total, int64_t align, F&& fn) {
  const int64_t per_thread_blocks = 16;
  const int64_t want = total / (omp_get_num_threads() * per_thread_blocks);
  const int64_t block = std::max(align, (want + align - 1) / align * align);
  const int64_t blocks = (total + block - 1) / block;
#pragma omp for schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) fn(b * block, std::min(total, (b + 1) * block));
}

inline float weight_value(DType t, const uint8_t* row, int64_t c) {
  switch (t) {
    case DType::F32: {
      float f;
      std::memcpy(&f, row + 4 * c, 4);
      return f;
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * c, 2);
      return bf16_to_f32(h);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * c, 2);
      return f16_to_f32(h);
    }
    default:
      return 0.0f;
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// One W4A16 output, Σ_g s_g (Σ_{c in g} q_c x_c - z_g Σ_{c in g} x_c): the row's values unpacked to
// int8 once (q) and used for every token; a scale multiplies a group's sum, not every value.
// z (the row's zero points) and xsum (the token's sum per group) are null without zero points.
// GCC 12's AVX-512 headers start some intrinsics from an uninitialized "undefined" value, which
// -O3 reports where they are inlined (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
float dot_i4_groups(const int8_t* q, const float* x, int64_t in, int64_t gs, const float* s, const int8_t* z,
                    const float* xsum) {
  float zero_term = 0.0f;
  if (z)
    for (int64_t g = 0; g * gs < in; ++g) zero_term += s[g] * static_cast<float>(z[g]) * xsum[g];
#if defined(__AVX512F__)
  if (gs % 16 == 0 && in % 16 == 0) {
    // Two accumulators per group (FMA latency), the group's scale applied once to their sum.
    auto widen = [](const int8_t* p) {
      return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    };
    __m512 total = _mm512_setzero_ps();
    for (int64_t c0 = 0, g = 0; c0 < in; c0 += gs, ++g) {
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      const int64_t c1 = std::min(c0 + gs, in);  // the last group may be short (still whole 16s)
      int64_t c = c0;
      for (; c + 32 <= c1; c += 32) {
        a0 = _mm512_fmadd_ps(widen(q + c), _mm512_loadu_ps(x + c), a0);
        a1 = _mm512_fmadd_ps(widen(q + c + 16), _mm512_loadu_ps(x + c + 16), a1);
      }
      for (; c < c1; c += 16) a0 = _mm512_fmadd_ps(widen(q + c), _mm512_loadu_ps(x + c), a0);
      total = _mm512_fmadd_ps(_mm512_set1_ps(s[g]), _mm512_add_ps(a0, a1), total);
    }
    return _mm512_reduce_add_ps(total) - zero_term;
  }
#endif
  float total = 0.0f;
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += gs, ++g) {
    float acc = 0.0f;
    for (int64_t c = c0; c < std::min(c0 + gs, in); ++c) acc += static_cast<float>(q[c]) * x[c];
    total += s[g] * acc;
  }
  return total - zero_term;
}
#if defined(__AVX512F__)
// W4A16 straight from the packed nibbles: a row's 16 bytes (32 columns) widen to 16 dwords, and
// vpermps looks up each dword's low nibble (even columns) and, shifted, its high nibble (odd
// columns) in a table of the 16 two's-complement values as f32: no int8 copy of the row, no
// int -> float conversions. The activations come de-interleaved to match (i4_deinterleave_x):
// per 32 columns, the 16 even ones then the 16 odd ones. Needs in % 32 == 0 and gs % 32 == 0.
float dot_i4_nibbles(const uint8_t* packed, const float* xd, int64_t in, int64_t gs, const float* s, const int8_t* z,
                     const float* xsum) {
  float zero_term = 0.0f;
  if (z)
    for (int64_t g = 0; g * gs < in; ++g) zero_term += s[g] * static_cast<float>(z[g]) * xsum[g];
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
  __m512 total = _mm512_setzero_ps();
  // Two blocks of 32 columns per iteration, each with its own even/odd accumulators.
  auto block = [&](int64_t c, __m512& even, __m512& odd) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + c / 2)));
    even = _mm512_fmadd_ps(_mm512_permutexvar_ps(b, table), _mm512_loadu_ps(xd + c), even);
    odd = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), _mm512_loadu_ps(xd + c + 16), odd);
  };
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += gs, ++g) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const int64_t c1 = std::min(c0 + gs, in);
    int64_t c = c0;
    for (; c + 64 <= c1; c += 64) {
      block(c, a0, a1);
      block(c + 32, a2, a3);
    }
    if (c < c1) block(c, a0, a1);
    total = _mm512_fmadd_ps(_mm512_set1_ps(s[g]), _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), total);
  }
  return _mm512_reduce_add_ps(total) - zero_term;
}

// x reordered for dot_i4_nibbles: in each 32 columns, the even ones, then the odd ones.
void i4_deinterleave_x(const float* x, int64_t in, float* xd) {
  for (int64_t c = 0; c < in; c += 32)
    for (int64_t i = 0; i < 16; ++i) {
      xd[c + i] = x[c + 2 * i];
      xd[c + 16 + i] = x[c + 2 * i + 1];
    }
}
#endif
#pragma GCC diagnostic pop

// BF16 weight row . f32 activations: the widening (a shift) fused into the dot product, so a decode
// step over a BF16 matrix (Gemma's tied output head) streams the row once.
float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += std::bit_cast<float>(static_cast<uint32_t>(w[i]) << 16) * x[i];
  return acc;
}

int32_t dot_s8(const int8_t* a, const int8_t* b, int64_t n) {
  int32_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<int32_t>(a[i]) * static_cast<int32_t>(b[i]);
  return acc;
}

// One sparse24 row (runtime/model_file/sparse24.h) times x.
int32_t dot_sparse24_s8(const int8_t* values, const uint8_t* positions, const int8_t* x, int64_t cols) {
  int32_t acc = 0;
  for (int64_t g = 0; g < cols / 4; ++g) {
    const int nib = sparse24::group_nibble(positions, g);
    const int8_t* xg = x + 4 * g;
    acc += static_cast<int32_t>(values[2 * g]) * xg[sparse24::first_column(nib)] +
           static_cast<int32_t>(values[2 * g + 1]) * xg[sparse24::second_column(nib)];
  }
  return acc;
}

// From this many activation rows on, FP8 and dequantized weights go through a f32 GEMM over tiles
// of rows widened once per step; below it, a GEMV per row over cache-sized blocks of weight rows.
constexpr int64_t kGemmRows = 12;  // measured crossover on [14336 x 4096] (bench/fp8_kernel_bench.sh)
// Weight rows per GEMV block: small enough to stay in L1/L2 while every activation row passes over it.
constexpr int64_t kGemvBlock = 16;

// Rows of one widened tile: about 4 MB of f32 (fewer, larger sgemm calls measured fastest: 256
// rows at 4096 columns), at least 16.
int64_t widened_tile_rows(int64_t cols) { return std::max<int64_t>(16, (int64_t{1} << 20) / cols / 16 * 16); }

// Calls widen(first_row, n, tile) then multiply(first_row, n, tile) over tiles of weight rows, each
// thread over its own rows with its own tile buffer; the GEMMs run single-threaded inside the
// parallel region (oneDNN does not open a team there), so no thread waits for another. Returns the
// first error a multiply threw (exceptions must not leave the parallel region), empty if none.
template <class T, class Widen, class Multiply>
std::string for_each_widened_tile(int threads, int64_t out, int64_t in, Widen&& widen, Multiply&& multiply) {
  const int64_t tile = std::min(widened_tile_rows(in), out);
  std::string error;
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> w(static_cast<size_t>(tile * in));
    const auto [o0, o1] = thread_range(out, 16);
    for (int64_t o = o0; o < o1; o += tile) {
      const int64_t n = std::min(tile, o1 - o);
      widen(o, n, w.data());
      try {
        multiply(o, n, static_cast<const T*>(w.data()));
      } catch (const Error& e) {
#pragma omp critical(sparq_widened_tile_error)
        if (error.empty()) error = e.what();
        break;
      }
    }
  }
  return error;
}


}  // namespace

void unpack_i4(const uint8_t* packed, int64_t n, int8_t* q) {
  // Two's-complement nibbles, low one first: (v ^ 8) - 8 sign-extends 4 bits.
#pragma omp simd
  for (int64_t i = 0; i < n / 2; ++i) {
    const int b = packed[i];
    q[2 * i] = static_cast<int8_t>(((b & 0xf) ^ 8) - 8);
    q[2 * i + 1] = static_cast<int8_t>(((b >> 4) ^ 8) - 8);
  }
  if (n % 2) q[n - 1] = static_cast<int8_t>(((packed[n / 2] & 0xf) ^ 8) - 8);
}

std::string CpuLinear::unsupported(const LinearWeights& w) {
  const DType t = w.weight.dtype;
  auto is_float = [](DType d) { return d == DType::BF16 || d == DType::F16 || d == DType::F32; };
  if (w.sparse24() && (dtype_bits(t) != 8 || w.in % 4)) return "sparse24 needs an 8-bit weight and in % 4 == 0";
  if (!w.quantized() && !is_float(t))
    return "unquantized weight of dtype " + std::string(dtype_name(t)) + " is not supported";
  if (w.quantized() && t != DType::I8 && t != DType::F8_E4M3 && t != DType::I4)
    return "quantized weight dtype " + std::string(dtype_name(t)) + " is not supported";
  if (w.scale.present() && !is_float(w.scale.dtype)) return "weight_scale must be F32, BF16 or F16";
  if (w.bias.present() && !is_float(w.bias.dtype)) return "bias must be F32, BF16 or F16";
  if (w.input) {
    const InputQuantization& q = *w.input;
    if (q.bits != 8) return std::to_string(q.bits) + "-bit input activations are not supported";
    if (q.dynamic && !q.symmetric) return "asymmetric dynamic input quantization is not supported";
    if (!q.dynamic && !q.symmetric && q.is_float) return "asymmetric FP8 inputs are not supported";
    if (!q.dynamic && !is_float(w.input_scale.dtype)) return "input_scale must be F32, BF16 or F16";
  }
  return {};
}

CpuLinear::CpuLinear(const LinearWeights& w, const CpuLinearOptions& opts)
    : w_(w), in_(w.in), out_(w.out), threads_(std::max(1, opts.threads)) {
  if (const std::string why = unsupported(w); !why.empty()) fail(w.module, ": ", why);
  wtype_ = w.weight.dtype;
  sparse24_ = w.sparse24();
  weight_ = w.weight.data;
  weight_bytes_ = w.weight.bytes;
  if (sparse24_) positions_ = weight_ + sparse24_values_bytes(out_, in_, 1);
  const bool quantized = w.quantized();
  if (quantized) {
    scale_ = view_floats(w.scale);
    groups_ = w.scale_groups();
    if (w.zero_point.present())
      zero_point_.assign(reinterpret_cast<const int8_t*>(w.zero_point.data),
                         reinterpret_cast<const int8_t*>(w.zero_point.data) + w.zero_point.bytes);
    if (w.g_idx.present()) {
      g_idx_.resize(static_cast<size_t>(in_));
      std::memcpy(g_idx_.data(), w.g_idx.data, g_idx_.size() * 4);
      for (int32_t g : g_idx_)
        if (g < 0 || g >= groups_) fail(w.module, ": weight_g_idx holds group ", g, " outside [0, ", groups_, ")");
    }
  }
  if (w.bias.present()) bias_ = view_floats(w.bias);
  if (w.input) {
    const InputQuantization& q = *w.input;
    per_tensor_input_ = q.strategy == InputStrategy::Tensor;
    if (q.dynamic) {
      input_ = q.is_float ? Input::Fp8Dynamic : Input::Int8Dynamic;
    } else {
      input_ = q.is_float ? Input::Fp8Static : Input::Int8Static;
      input_scale_ = view_floats(w.input_scale).at(0);
      if (!q.symmetric && w.input_zero_point.present()) input_zero_point_ = static_cast<int8_t>(w.input_zero_point.data[0]);
    }
  }
  const bool per_row_scales = quantized && groups_ == 1 && zero_point_.empty();
  if (input_ == Input::Int8Dynamic && wtype_ == DType::I8 && per_row_scales) {
    path_ = Path::Int8;
    const bool tiled = w.weight.layout == Layout::Int8K4Tiles;
    if (tiled) check_int8_tiles(w.weight);
    if (opts.use_onednn && !sparse24_ && onednn_int8_is_exact()) {
      std::vector<float> scales(static_cast<size_t>(out_));
      for (int64_t o = 0; o < out_; ++o) scales[static_cast<size_t>(o)] = weight_scale(o, 0);
      onednn_ = std::make_unique<OneDnnInt8Matmul>(weight_, tiled, out_, in_, scales, threads_);
      if (!onednn_->in_place()) release_view_pages(w.weight);  // oneDNN reads its packed copy from now on
    } else if (tiled) {
      unpacked_.resize(static_cast<size_t>(out_ * in_));
      int8_tiles_unpack(Int8TilesShape(out_, in_), weight_, reinterpret_cast<int8_t*>(unpacked_.data()));
      weight_ = unpacked_.data();
      weight_bytes_ = unpacked_.size();
      release_view_pages(w.weight);
    }
  } else if (w.weight.layout == Layout::Int8K4Tiles) {
    fail(w.module, ": an int8_k4_tiles weight needs dynamic INT8 inputs and one scale per output row");
  } else if (input_ == Input::Fp8Dynamic && wtype_ == DType::F8_E4M3 && per_row_scales) {
    path_ = Path::Fp8;
    fp8_gemm_choice();  // an unknown SPARQ_FP8_GEMM fails at load, not in the middle of a prefill
  } else {
    path_ = Path::Generic;
  }
}

CpuLinear::~CpuLinear() = default;

uint64_t CpuLinear::repacked_bytes() const { return onednn_ ? onednn_->packed_bytes() : unpacked_.size(); }

void CpuLinear::check_int8_tiles(const TensorView& t) const {
  const Int8TilesShape shape(out_, in_);
  if (t.bytes != shape.total_bytes()) fail(w_.module, ": int8_k4_tiles weight has ", t.bytes, " bytes, expected ", shape.total_bytes());
  // Every band at once: this pass also brings the weight into memory, as the first step would.
  std::vector<std::string> why(static_cast<size_t>(shape.bands()));
#pragma omp parallel for num_threads(threads_) schedule(dynamic)
  for (int64_t b = 0; b < shape.bands(); ++b) {
    int32_t sums[Int8TilesShape::kTile];
    int8_tiles_band_sums(shape, t.data + static_cast<uint64_t>(b) * shape.band_bytes(), sums);
    why[static_cast<size_t>(b)] = int8_tiles_check_band(shape, t.data, b, sums);
  }
  for (const std::string& w : why)
    if (!w.empty()) fail(w_.module, ": ", w);
}

std::span<const uint8_t> CpuLinear::mapped_weight() const {
  if (onednn_ && !onednn_->in_place()) return {};
  if (!unpacked_.empty()) return {};
  return {weight_, weight_bytes_};
}

float CpuLinear::weight_scale(int64_t o, int64_t col) const {
  if (scale_.size() == 1) return scale_[0];
  if (groups_ == 1) return scale_[static_cast<size_t>(o)];
  const int64_t g = g_idx_.empty() ? col / w_.group_size : g_idx_[static_cast<size_t>(col)];
  return scale_[static_cast<size_t>(o * groups_ + g)];
}

const uint8_t* CpuLinear::quantized_row(int64_t o, uint8_t* scratch) const {
  if (!sparse24_) return weight_ + o * in_;
  const uint8_t* v = weight_ + o * (in_ / 2);
  const uint8_t* p = positions_ + o * static_cast<int64_t>(sparse24_positions_row_bytes(in_));
  std::memset(scratch, 0, static_cast<size_t>(in_));
  for (int64_t g = 0; g < in_ / 4; ++g) {
    const int nib = sparse24::group_nibble(p, g);
    scratch[4 * g + sparse24::first_column(nib)] = v[2 * g];
    scratch[4 * g + sparse24::second_column(nib)] = v[2 * g + 1];
  }
  return scratch;
}

void CpuLinear::dequantize_row(int64_t o, float* row, int8_t* scratch) const {
  if (!w_.quantized()) {
    const uint8_t* r = weight_ + o * in_ * static_cast<int64_t>(dtype_bits(wtype_) / 8);
    if (wtype_ == DType::F32) {
      std::memcpy(row, r, static_cast<size_t>(in_) * 4);
    } else if (wtype_ == DType::BF16) {  // the common case (embeddings, lm_head): a shift per value
      const uint16_t* h = reinterpret_cast<const uint16_t*>(r);
#pragma omp simd
      for (int64_t c = 0; c < in_; ++c) row[c] = std::bit_cast<float>(static_cast<uint32_t>(h[c]) << 16);
    } else {
      for (int64_t c = 0; c < in_; ++c) row[c] = weight_value(wtype_, r, c);
    }
    return;
  }
  auto zp = [&](int64_t c) -> float {
    if (zero_point_.empty()) return 0.0f;
    if (zero_point_.size() == 1) return zero_point_[0];
    if (groups_ == 1) return zero_point_[static_cast<size_t>(o)];
    const int64_t g = g_idx_.empty() ? c / w_.group_size : g_idx_[static_cast<size_t>(c)];
    return zero_point_[static_cast<size_t>(o * groups_ + g)];
  };
  if (wtype_ == DType::I4) {
    // Unpacked once, then scaled a group at a time: no per-value group lookup (a division).
    unpack_i4(weight_ + o * ((in_ + 1) / 2), in_, scratch);
    if (!g_idx_.empty()) {  // act-order: each column names its group
      for (int64_t c = 0; c < in_; ++c) row[c] = (static_cast<float>(scratch[c]) - zp(c)) * weight_scale(o, c);
      return;
    }
    const int64_t gs = groups_ == 1 ? in_ : w_.group_size;
    for (int64_t c0 = 0; c0 < in_; c0 += gs) {
      const int64_t c1 = std::min(c0 + gs, in_);
      const float s = weight_scale(o, c0), z = zp(c0);
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] = (static_cast<float>(scratch[c]) - z) * s;
    }
    return;
  }
  const uint8_t* q = quantized_row(o, reinterpret_cast<uint8_t*>(scratch));
  for (int64_t c = 0; c < in_; ++c) {
    const float v = wtype_ == DType::F8_E4M3 ? kFp8E4M3Table[q[c]] : static_cast<float>(static_cast<int8_t>(q[c]));
    row[c] = (v - zp(c)) * weight_scale(o, c);
  }
}

void CpuLinear::add_bias(int64_t rows, float* y) const {
  if (bias_.empty()) return;
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < out_; ++o) y[t * out_ + o] += bias_[static_cast<size_t>(o)];
}

void CpuLinear::forward(const float* x, int64_t rows, float* y) const {
  if (rows <= 0) return;
  switch (path_) {
    case Path::Int8: forward_int8(x, rows, y); break;
    case Path::Fp8: forward_fp8(x, rows, y); break;
    case Path::Generic: forward_generic(x, rows, y); break;
  }
  add_bias(rows, y);
}

void CpuLinear::forward_int8(const float* x, int64_t rows, float* y) const {
  std::vector<int8_t> xq(static_cast<size_t>(rows * in_));
  std::vector<float> sx(static_cast<size_t>(rows));
  quantize_int8_dynamic(x, rows, in_, per_tensor_input_, xq.data(), sx.data(), threads_);
  if (onednn_) {
    onednn_->run(xq.data(), rows, sx.data(), y);
    return;
  }
  const int64_t prow = static_cast<int64_t>(sparse24_positions_row_bytes(in_));
#pragma omp parallel num_threads(threads_)
  {
    const bool expand = sparse24_ && rows >= kExpandRows;  // as in forward_fp8
    std::vector<uint8_t> dense(expand ? static_cast<size_t>(in_) : 0);
    for_each_row_block(out_, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float sw = weight_scale(o, 0);
        const int8_t* wd = expand || !sparse24_ ? reinterpret_cast<const int8_t*>(quantized_row(o, dense.data())) : nullptr;
        for (int64_t t = 0; t < rows; ++t) {
          const int8_t* xr = xq.data() + t * in_;
          const int32_t acc = wd ? dot_s8(wd, xr, in_)
                                 : dot_sparse24_s8(reinterpret_cast<const int8_t*>(weight_) + o * (in_ / 2),
                                                   positions_ + o * prow, xr, in_);
          y[t * out_ + o] = static_cast<float>(acc) * sw * sx[static_cast<size_t>(t)];  // oneDNN's order
        }
      }
    });
  }
}

void CpuLinear::forward_fp8(const float* x, int64_t rows, float* y) const {
  // Quantized activations as their exact f32 values (E4M3 x E4M3 products are exact in f32).
  std::vector<uint8_t> xq(static_cast<size_t>(rows * in_));
  std::vector<float> sx(static_cast<size_t>(rows));
  quantize_fp8_dynamic(x, rows, in_, per_tensor_input_, xq.data(), sx.data(), threads_);
  std::vector<float> xv(xq.size());
  for (size_t i = 0; i < xq.size(); ++i) xv[i] = kFp8E4M3Table[xq[i]];
  const int64_t prow = static_cast<int64_t>(sparse24_positions_row_bytes(in_));
  if (rows >= kGemmRows && fp8_gemm_choice().bf16) {
    gemm_widened_bf16(xv.data(), rows, y);
  } else if (rows >= kGemmRows) {
    gemm_widened(xv.data(), rows, y, [&](int64_t o, int64_t n, float* w) {
      if (sparse24_) fp8_widen_sparse24(weight_ + o * (in_ / 2), positions_ + o * prow, n, in_, w);
      else fp8_widen_dense(weight_ + o * in_, n, in_, w);
    });
  } else {
    std::vector<Fp8GemvActivation> act(static_cast<size_t>(rows));
    const Fp8GemvLayout layout = sparse24_ ? Fp8GemvLayout::Sparse24 : Fp8GemvLayout::Dense;
    for (int64_t t = 0; t < rows; ++t) fp8_prepare_activation(xv.data() + t * in_, in_, layout, act[static_cast<size_t>(t)]);
#pragma omp parallel num_threads(threads_)
    for_each_row_block(out_, kGemvBlock, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o += kGemvBlock) {
        const int64_t n = std::min(kGemvBlock, o1 - o);
        for (int64_t t = 0; t < rows; ++t) {
          const Fp8GemvActivation& xr = act[static_cast<size_t>(t)];
          if (sparse24_) fp8_gemv_sparse24(weight_ + o * (in_ / 2), positions_ + o * prow, n, xr, y + t * out_ + o);
          else fp8_gemv_dense(weight_ + o * in_, n, xr, y + t * out_ + o);
        }
      }
    });
  }
#pragma omp parallel for num_threads(threads_) schedule(static) if (rows * out_ > 65536)  // a decode row is not worth a fork
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < out_; ++o) y[t * out_ + o] = y[t * out_ + o] * sx[static_cast<size_t>(t)] * weight_scale(o, 0);
}

void CpuLinear::gemm_widened_bf16(const float* xv, int64_t rows, float* y) const {
  if (!bf16_) bf16_ = std::make_unique<OneDnnBf16Matmul>(in_);
  std::vector<uint16_t> xb(static_cast<size_t>(rows * in_));
  exact_f32_to_bf16(xv, rows * in_, xb.data());
  const int64_t prow = static_cast<int64_t>(sparse24_positions_row_bytes(in_));
  const std::string error = for_each_widened_tile<uint16_t>(
      threads_, out_, in_,
      [&](int64_t o, int64_t n, uint16_t* w) {
        if (sparse24_) fp8_widen_sparse24_bf16(weight_ + o * (in_ / 2), positions_ + o * prow, n, in_, w);
        else fp8_widen_dense_bf16(weight_ + o * in_, n, in_, w);
      },
      [&](int64_t o, int64_t n, const uint16_t* w) { bf16_->run(xb.data(), rows, w, n, y + o, out_); });
  if (!error.empty()) fail(w_.module, ": ", error);
}

void CpuLinear::gemm_widened(const float* x, int64_t rows, float* y,
                             const std::function<void(int64_t, int64_t, float*)>& widen) const {
  const std::string error = for_each_widened_tile<float>(threads_, out_, in_, widen, [&](int64_t o, int64_t n, const float* w) {
    if (dnnl_sgemm('N', 'T', rows, n, in_, 1.0f, x, in_, w, in_, 0.0f, y + o, out_) != dnnl_success)
      fail("oneDNN sgemm [", rows, " x ", in_, "] x [", in_, " x ", n, "] failed");
  });
  if (!error.empty()) fail(w_.module, ": ", error);
}

void CpuLinear::gemv_i4(const float* x, int64_t rows, float* y) const {
  const int64_t gs = groups_ == 1 ? in_ : w_.group_size;
  std::vector<float> xsum;  // per token and group, for the zero points
  if (!zero_point_.empty()) {
    xsum.assign(static_cast<size_t>(rows * groups_), 0.0f);
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t c = 0; c < in_; ++c) xsum[static_cast<size_t>(t * groups_ + c / gs)] += x[t * in_ + c];
  }
  const int64_t row_bytes = (in_ + 1) / 2;
#if defined(__AVX512F__)
  if (in_ % 32 == 0 && gs % 32 == 0) {
    std::vector<float> xd(static_cast<size_t>(rows * in_));
    for (int64_t t = 0; t < rows; ++t) i4_deinterleave_x(x + t * in_, in_, xd.data() + t * in_);
#pragma omp parallel num_threads(threads_)
    for_each_row_block(out_, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const uint8_t* row = weight_ + o * row_bytes;
        for (int64_t b = 0; b < row_bytes; b += 64) prefetch_ahead(row + b);  // streamed once
        const float* s = scale_.data() + o * groups_;
        const int8_t* z = zero_point_.empty() ? nullptr : zero_point_.data() + o * groups_;
        for (int64_t t = 0; t < rows; ++t)
          y[t * out_ + o] = dot_i4_nibbles(row, xd.data() + t * in_, in_, gs, s, z, z ? xsum.data() + t * groups_ : nullptr);
      }
    });
    return;
  }
#endif
#pragma omp parallel num_threads(threads_)
  {
    std::vector<int8_t> q(static_cast<size_t>(in_));
    for_each_row_block(out_, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        for (int64_t b = 0; b < row_bytes; b += 64) prefetch_ahead(weight_ + o * row_bytes + b);  // streamed once
        unpack_i4(weight_ + o * row_bytes, in_, q.data());
        const float* s = scale_.data() + o * groups_;
        const int8_t* z = zero_point_.empty() ? nullptr : zero_point_.data() + o * groups_;
        for (int64_t t = 0; t < rows; ++t)
          y[t * out_ + o] = dot_i4_groups(q.data(), x + t * in_, in_, gs, s, z, z ? xsum.data() + t * groups_ : nullptr);
      }
    });
  }
}

void CpuLinear::forward_generic(const float* x, int64_t rows, float* y) const {
  // Inputs as the reference sees them: fake-quantized (q * s) when the scheme quantizes them.
  std::vector<float> xf;
  const float* xs = x;
  if (input_ != Input::None) {
    const size_t n = static_cast<size_t>(rows * in_);
    xf.resize(n);
    std::vector<float> sx(static_cast<size_t>(rows), input_scale_);
    if (input_ == Input::Int8Dynamic || input_ == Input::Int8Static) {
      std::vector<int8_t> q(n);
      if (input_ == Input::Int8Dynamic) quantize_int8_dynamic(x, rows, in_, per_tensor_input_, q.data(), sx.data(), threads_);
      else quantize_int8_static(x, rows * in_, input_scale_, input_zero_point_, q.data());
      for (size_t i = 0; i < n; ++i)
        xf[i] = static_cast<float>(q[i] - input_zero_point_) * sx[i / static_cast<size_t>(in_)];
    } else {
      std::vector<uint8_t> q(n);
      if (input_ == Input::Fp8Dynamic) quantize_fp8_dynamic(x, rows, in_, per_tensor_input_, q.data(), sx.data(), threads_);
      else quantize_fp8_static(x, rows * in_, input_scale_, q.data());
      for (size_t i = 0; i < n; ++i) xf[i] = kFp8E4M3Table[q[i]] * sx[i / static_cast<size_t>(in_)];
    }
    xs = xf.data();
  }
  if (rows >= kGemmRows) {
    gemm_widened(xs, rows, y, [&](int64_t o, int64_t n, float* w) {
      std::vector<int8_t> scratch(static_cast<size_t>(in_));
      for (int64_t r = 0; r < n; ++r) dequantize_row(o + r, w + r * in_, scratch.data());
    });
    return;
  }
  if (wtype_ == DType::I4 && g_idx_.empty() && scale_.size() == static_cast<size_t>(out_ * groups_) &&
      (zero_point_.empty() || zero_point_.size() == scale_.size())) {
    gemv_i4(xs, rows, y);
    return;
  }
  if (!w_.quantized() && wtype_ == DType::BF16) {
    const uint16_t* w = reinterpret_cast<const uint16_t*>(weight_);
#pragma omp parallel num_threads(threads_)
    for_each_row_block(out_, kGemvBlock, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o += kGemvBlock)
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t r = o; r < std::min(o + kGemvBlock, o1); ++r) y[t * out_ + r] = dot_bf16(w + r * in_, xs + t * in_, in_);
    });
    return;
  }
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> wrow(static_cast<size_t>(in_));
    std::vector<int8_t> scratch(static_cast<size_t>(in_));
    for_each_row_block(out_, 16, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        dequantize_row(o, wrow.data(), scratch.data());
        for (int64_t t = 0; t < rows; ++t) y[t * out_ + o] = dot_f32(wrow.data(), xs + t * in_, in_);
      }
    });
  }
}

}  // namespace sparq::cpu
