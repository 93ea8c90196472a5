#include "backends/cpu/fp8_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>
#include <vector>

#include "backends/cpu/stream_prefetch.h"
#include "runtime/core/float_formats.h"
#include "runtime/model_file/sparse24.h"

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which -O3 reports as
// (maybe-)uninitialized where they are inlined (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#if defined(__AVX512BF16__) && defined(__AVX512VBMI__) && defined(__AVX512VBMI2__)
#define SPARQ_FP8_BF16_DOT 1
#endif

namespace sparq::cpu {

namespace {

// Scalar form of one sparse24 group of four columns: kept values v[0], v[1] at the nibble's positions.
inline float group_dot(const uint8_t* v, int nib, const float* x) {
  return kFp8E4M3Table[v[0]] * x[sparse24::first_column(nib)] + kFp8E4M3Table[v[1]] * x[sparse24::second_column(nib)];
}

#if defined(__AVX512F__) && defined(__AVX512BW__)

// 32 E4M3 bytes -> 32 f16 lanes holding value * 2^-8: S EEEE MMM moves to bits 15 and 13..7
// (byte << 8, arithmetic shift right by one, clear the copied sign bit 14). E4M3 subnormals land on
// f16 subnormals with the same 2^-8 factor, so the conversion is exact everywhere; kUnscale undoes it.
constexpr float kUnscale = 256.0f;
inline __m512i e4m3_to_f16_scaled(__m256i bytes) {
  const __m512i w = _mm512_srai_epi16(_mm512_slli_epi16(_mm512_cvtepu8_epi16(bytes), 8), 1);
  return _mm512_andnot_si512(_mm512_set1_epi16(0x4000), w);
}
// 16 E4M3 bytes -> 16 f32 (value * 2^-8), the same conversion on 256-bit registers (no extract).
inline __m512 e4m3x16_to_f32_scaled(const uint8_t* p) {
  const __m256i w = _mm256_srai_epi16(
      _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 8), 1);
  return _mm512_cvtph_ps(_mm256_andnot_si256(_mm256_set1_epi16(0x4000), w));
}
inline __m512 low_f32(__m512i h) { return _mm512_cvtph_ps(_mm512_castsi512_si256(h)); }
inline __m512 high_f32(__m512i h) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)); }
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Two sparse24 rows at column c: their values and (a quarter as fast) their positions.
inline void prefetch_sparse24_rows(const uint8_t* v0, const uint8_t* p0, const uint8_t* v1, const uint8_t* p1, int64_t c) {
  prefetch_ahead(v0 + c / 2);
  prefetch_ahead(v1 + c / 2);
  prefetch_ahead(p0 + c / 8, 4);
  prefetch_ahead(p1 + c / 8, 4);
}

#ifndef SPARQ_FP8_BF16_DOT  // the f32 GEMVs, where BF16 dot products are missing

// Lane k of a 32-column block reads column 4*(k/2) + ((word >> 2k) & 3): one variable shift and one
// ternary-logic op ((shifted & 3) | base) give the permutation indices.
struct Sparse24Index {
  __m512i shifts = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  __m512i base = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
  __m512i three = _mm512_set1_epi32(3);
  __m512i operator()(uint32_t word) const {
    const __m512i shifted = _mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(word)), shifts);  // broadcast from memory
    return _mm512_ternarylogic_epi32(shifted, three, base, 0xEA);  // (a & b) | c
  }
};

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Two sparse24 rows at a time share the activation loads; four accumulators hide the FMA latency.
void sparse24_rows2(const uint8_t* v0, const uint8_t* p0, const uint8_t* v1, const uint8_t* p1, int64_t cols,
                    const float* x, float* y0, float* y1, const Sparse24Index& index) {
  __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    prefetch_sparse24_rows(v0, p0, v1, p1, c);
    const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
    const __m512 x2 = _mm512_loadu_ps(x + c + 32), x3 = _mm512_loadu_ps(x + c + 48);
    const __m512i h0 = e4m3_to_f16_scaled(load32(v0 + c / 2)), h1 = e4m3_to_f16_scaled(load32(v1 + c / 2));
    a00 = _mm512_fmadd_ps(low_f32(h0), _mm512_permutex2var_ps(x0, index(load_u32(p0 + c / 8)), x1), a00);
    a01 = _mm512_fmadd_ps(high_f32(h0), _mm512_permutex2var_ps(x2, index(load_u32(p0 + c / 8 + 4)), x3), a01);
    a10 = _mm512_fmadd_ps(low_f32(h1), _mm512_permutex2var_ps(x0, index(load_u32(p1 + c / 8)), x1), a10);
    a11 = _mm512_fmadd_ps(high_f32(h1), _mm512_permutex2var_ps(x2, index(load_u32(p1 + c / 8 + 4)), x3), a11);
  }
  if (c + 32 <= cols) {
    const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
    a00 = _mm512_fmadd_ps(e4m3x16_to_f32_scaled(v0 + c / 2), _mm512_permutex2var_ps(x0, index(load_u32(p0 + c / 8)), x1), a00);
    a10 = _mm512_fmadd_ps(e4m3x16_to_f32_scaled(v1 + c / 2), _mm512_permutex2var_ps(x0, index(load_u32(p1 + c / 8)), x1), a10);
    c += 32;
  }
  float s0 = _mm512_reduce_add_ps(_mm512_add_ps(a00, a01)) * kUnscale;
  float s1 = _mm512_reduce_add_ps(_mm512_add_ps(a10, a11)) * kUnscale;
  for (int64_t g = c / 4; g < cols / 4; ++g) {
    s0 += group_dot(v0 + 2 * g, sparse24::group_nibble(p0, g), x + 4 * g);
    s1 += group_dot(v1 + 2 * g, sparse24::group_nibble(p1, g), x + 4 * g);
  }
  *y0 = s0;
  *y1 = s1;
}

float dense_row(const uint8_t* w, int64_t cols, const float* x) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    prefetch_ahead(w + c);
    const __m512i h0 = e4m3_to_f16_scaled(load32(w + c)), h1 = e4m3_to_f16_scaled(load32(w + c + 32));
    a0 = _mm512_fmadd_ps(low_f32(h0), _mm512_loadu_ps(x + c), a0);
    a1 = _mm512_fmadd_ps(high_f32(h0), _mm512_loadu_ps(x + c + 16), a1);
    a2 = _mm512_fmadd_ps(low_f32(h1), _mm512_loadu_ps(x + c + 32), a2);
    a3 = _mm512_fmadd_ps(high_f32(h1), _mm512_loadu_ps(x + c + 48), a3);
  }
  for (; c + 32 <= cols; c += 32) {
    const __m512i h = e4m3_to_f16_scaled(load32(w + c));
    a0 = _mm512_fmadd_ps(low_f32(h), _mm512_loadu_ps(x + c), a0);
    a1 = _mm512_fmadd_ps(high_f32(h), _mm512_loadu_ps(x + c + 16), a1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) * kUnscale;
  for (; c < cols; ++c) s += kFp8E4M3Table[w[c]] * x[c];
  return s;
}

#endif

// Byte of positions (two groups) -> the 8-column mask of its kept columns.
constexpr std::array<uint8_t, 256> kKeptMask = [] {
  std::array<uint8_t, 256> t{};
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte[1] = {static_cast<uint8_t>(b)};
    const int lo = sparse24::group_nibble(byte, 0), hi = sparse24::group_nibble(byte, 1);
    t[static_cast<size_t>(b)] = static_cast<uint8_t>((1 << sparse24::first_column(lo)) | (1 << sparse24::second_column(lo)) |
                                                     (1 << (4 + sparse24::first_column(hi))) | (1 << (4 + sparse24::second_column(hi))));
  }
  return t;
}();

#endif

#ifdef SPARQ_FP8_BF16_DOT

// BF16 bit pattern of an E4M3 magnitude (the low 7 bits; the sign is copied separately).
constexpr uint16_t bf16_of_magnitude(int m) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(kFp8E4M3Table[static_cast<size_t>(m)]) >> 16); }
constexpr std::array<uint8_t, 128> kBf16LowByte = [] {
  std::array<uint8_t, 128> t{};
  for (int m = 0; m < 128; ++m) t[static_cast<size_t>(m)] = static_cast<uint8_t>(bf16_of_magnitude(m) & 0xff);
  return t;
}();
constexpr std::array<uint8_t, 128> kBf16HighByte = [] {
  std::array<uint8_t, 128> t{};
  for (int m = 0; m < 128; ++m) t[static_cast<size_t>(m)] = static_cast<uint8_t>(bf16_of_magnitude(m) >> 8);
  return t;
}();

// Lane order of a widened 64-column block: unpacklo/unpackhi interleave within each 128-bit lane L,
// so the first register holds columns 16L + 0..7 and the second 16L + 8..15 (word 8L + k each).
constexpr int bf16_slot(int column) {
  const int lane = column / 16, k = column % 16;
  return (k < 8 ? 0 : 32) + lane * 8 + k % 8;
}

struct Bf16Widener {
  __m512i lo0 = _mm512_loadu_si512(kBf16LowByte.data()), lo1 = _mm512_loadu_si512(kBf16LowByte.data() + 64);
  __m512i hi0 = _mm512_loadu_si512(kBf16HighByte.data()), hi1 = _mm512_loadu_si512(kBf16HighByte.data() + 64);
  __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  // 64 E4M3 bytes -> two registers of 32 BF16 in bf16_slot order (exact).
  void operator()(__m512i w, __m512bh& first, __m512bh& second) const {
    const __m512i lo = _mm512_permutex2var_epi8(lo0, w, lo1);  // index bit 7 (the sign) is ignored
    const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(hi0, w, hi1), w, sign, 0xF8);  // a | (b & c)
    first = reinterpret_cast<__m512bh>(_mm512_unpacklo_epi8(lo, hi));
    second = reinterpret_cast<__m512bh>(_mm512_unpackhi_epi8(lo, hi));
  }
};

inline __m512bh load_bf16(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }
inline __mmask64 low_bytes(int64_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }

// Two rows at a time share the activation loads; each row keeps two accumulators.
void dense_rows2_bf16(const uint8_t* w0, const uint8_t* w1, int64_t cols, const uint16_t* xb, float* y0, float* y1,
                      const Bf16Widener& widen) {
  __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
  const auto block = [&](int64_t c, __m512i r0, __m512i r1) {
    __m512bh f0, s0, f1, s1;
    widen(r0, f0, s0);
    widen(r1, f1, s1);
    const __m512bh x0 = load_bf16(xb + c), x1 = load_bf16(xb + c + 32);
    a00 = _mm512_dpbf16_ps(a00, f0, x0);
    a01 = _mm512_dpbf16_ps(a01, s0, x1);
    a10 = _mm512_dpbf16_ps(a10, f1, x0);
    a11 = _mm512_dpbf16_ps(a11, s1, x1);
  };
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    prefetch_ahead(w0 + c);
    prefetch_ahead(w1 + c);
    block(c, _mm512_loadu_si512(w0 + c), _mm512_loadu_si512(w1 + c));
  }
  if (c < cols) {  // masked loads only at the row's end (in the loop they measured slower)
    const __mmask64 in = low_bytes(cols - c);
    block(c, _mm512_maskz_loadu_epi8(in, w0 + c), _mm512_maskz_loadu_epi8(in, w1 + c));
  }
  *y0 = _mm512_reduce_add_ps(_mm512_add_ps(a00, a01));
  *y1 = _mm512_reduce_add_ps(_mm512_add_ps(a10, a11));
}

// Sparse24 rows keep their 32 values of a 64-column block in order, and the activations are
// gathered to them (vpermi2w) instead of the values being expanded: value i of the block sits in
// column 4 * (i / 2) + (positions >> 2i & 3), and vpmultishiftqb cuts those 2-bit fields out of the
// block's 8 position bytes in one instruction.
struct Sparse24Gather {
  __m512i offsets = bytes([](int b) { return b % 2 ? 0 : b; });        // word i takes bits 2i.. of the positions
  __m512i group_base = bytes([](int b) { return b % 2 ? 0 : b / 4 * 4; });  // word i: 4 * (i / 2)
  __m512i duplicate = bytes([](int b) { return b / 2; });              // value i into both bytes of word i
  __m512i three = _mm512_set1_epi16(3);
  __m512i sign = _mm512_set1_epi16(static_cast<short>(0x8000));
  static __m512i bytes(int (*f)(int)) {
    alignas(64) uint8_t t[64];
    for (int b = 0; b < 64; ++b) t[b] = static_cast<uint8_t>(f(b));
    return _mm512_load_si512(t);
  }
  // Activations (natural order, BF16) of the block's 64 columns gathered to its kept values.
  // `positions`: the block's 8 position bytes in every 64-bit lane.
  __m512bh activations(__m512i positions, __m512i x0, __m512i x1) const {
    const __m512i fields = _mm512_multishift_epi64_epi8(offsets, positions);
    const __m512i columns = _mm512_ternarylogic_epi32(fields, three, group_base, 0xEA);  // (a & b) | c
    return reinterpret_cast<__m512bh>(_mm512_permutex2var_epi16(x0, columns, x1));
  }
  // 32 E4M3 values -> 32 BF16 in order: both bytes of word i look up value i, the high one keeps
  // the high-byte table's result, and the sign bit comes from the value.
  __m512bh values(__m256i raw, const Bf16Widener& t) const {
    const __m512i d = _mm512_permutexvar_epi8(duplicate, _mm512_castsi256_si512(raw));
    const __m512i w = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, _mm512_permutex2var_epi8(t.lo0, d, t.lo1),
                                             _mm512_permutex2var_epi8(t.hi0, d, t.hi1));
    return reinterpret_cast<__m512bh>(_mm512_ternarylogic_epi32(w, d, sign, 0xF8));  // a | (b & c)
  }
};

// Two rows share the activation loads; two blocks per step, each with its own accumulators, keep
// two vdpbf16ps chains per row in flight.
void sparse24_rows2_bf16(const uint8_t* v0, const uint8_t* p0, const uint8_t* v1, const uint8_t* p1, int64_t cols,
                         const uint16_t* xb, float* y0, float* y1, const Bf16Widener& widen, const Sparse24Gather& gather) {
  __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
  const int64_t position_bytes = (cols + 7) / 8;
  const auto block = [&](int64_t c, __m512& acc0, __m512& acc1, __m256i r0, __m256i r1, __m512i q0, __m512i q1) {
    const __m512i x0 = _mm512_loadu_si512(xb + c), x1 = _mm512_loadu_si512(xb + c + 32);
    acc0 = _mm512_dpbf16_ps(acc0, gather.values(r0, widen), gather.activations(q0, x0, x1));
    acc1 = _mm512_dpbf16_ps(acc1, gather.values(r1, widen), gather.activations(q1, x0, x1));
  };
  // Whole blocks broadcast their positions straight from memory (no trip through a general register).
  const auto broadcast8 = [](const uint8_t* p) {
    long long q;
    std::memcpy(&q, p, 8);
    return _mm512_set1_epi64(q);
  };
  const auto whole = [&](int64_t c, __m512& acc0, __m512& acc1) {
    block(c, acc0, acc1, load32(v0 + c / 2), load32(v1 + c / 2), broadcast8(p0 + c / 8), broadcast8(p1 + c / 8));
  };
  const auto partial = [&](int64_t c, __m512& acc0, __m512& acc1) {
    // The row's end: fewer bytes, zeros after them (their activations are zero padding).
    const auto bytes = static_cast<size_t>(position_bytes - c / 8);
    long long q0 = 0, q1 = 0;
    std::memcpy(&q0, p0 + c / 8, bytes);
    std::memcpy(&q1, p1 + c / 8, bytes);
    const auto kept = static_cast<__mmask32>((uint64_t{1} << ((cols - c) / 2)) - 1);
    block(c, acc0, acc1, _mm256_maskz_loadu_epi8(kept, v0 + c / 2), _mm256_maskz_loadu_epi8(kept, v1 + c / 2),
          _mm512_set1_epi64(q0), _mm512_set1_epi64(q1));
  };
  const auto any = [&](int64_t c, __m512& acc0, __m512& acc1) {
    if (c + 64 <= cols) whole(c, acc0, acc1);
    else partial(c, acc0, acc1);
  };
  int64_t c = 0;
  for (; c + 128 <= cols; c += 128) {
    prefetch_sparse24_rows(v0, p0, v1, p1, c);
    whole(c, a00, a10);
    whole(c + 64, a01, a11);
  }
  if (c < cols) any(c, a00, a10);
  if (c + 64 < cols) any(c + 64, a01, a11);
  *y0 = _mm512_reduce_add_ps(_mm512_add_ps(a00, a01));
  *y1 = _mm512_reduce_add_ps(_mm512_add_ps(a10, a11));
}

#endif

}  // namespace

void fp8_prepare_activation(const float* x, int64_t cols, Fp8GemvLayout layout, Fp8GemvActivation& out) {
  out.x = x;
  out.cols = cols;
  out.layout = layout;
#ifdef SPARQ_FP8_BF16_DOT
  out.bf16.assign(static_cast<size_t>((cols + 63) / 64 * 64), 0);
  for (int64_t c = 0; c < cols; ++c) {
    const size_t slot = layout == Fp8GemvLayout::Sparse24
                            ? static_cast<size_t>(c)
                            : static_cast<size_t>(c / 64 * 64 + bf16_slot(static_cast<int>(c % 64)));
    out.bf16[slot] = static_cast<uint16_t>(std::bit_cast<uint32_t>(x[c]) >> 16);  // exact by the contract
  }
#endif
}

const char* fp8_gemv_kernel() {
#if defined(SPARQ_FP8_BF16_DOT)
  return "avx512-bf16-dot";
#elif defined(__AVX512F__) && defined(__AVX512BW__)
  return "avx512-f32-fma";
#else
  return "scalar";
#endif
}

void fp8_gemv_dense(const uint8_t* w, int64_t rows, const Fp8GemvActivation& x, float* y) {
  assert(x.layout == Fp8GemvLayout::Dense);
  const int64_t cols = x.cols;
  int64_t r = 0;
#if defined(SPARQ_FP8_BF16_DOT)
  const Bf16Widener widen;
  for (; r + 2 <= rows; r += 2) dense_rows2_bf16(w + r * cols, w + (r + 1) * cols, cols, x.bf16.data(), y + r, y + r + 1, widen);
  if (r < rows) {  // an odd last row: pair it with itself
    float unused;
    dense_rows2_bf16(w + r * cols, w + r * cols, cols, x.bf16.data(), y + r, &unused, widen);
    ++r;
  }
#elif defined(__AVX512F__) && defined(__AVX512BW__)
  for (; r < rows; ++r) y[r] = dense_row(w + r * cols, cols, x.x);
#endif
  for (; r < rows; ++r) {
    const uint8_t* row = w + r * cols;
    float s = 0.0f;
    for (int64_t c = 0; c < cols; ++c) s += kFp8E4M3Table[row[c]] * x.x[c];
    y[r] = s;
  }
}

void fp8_gemv_sparse24(const uint8_t* values, const uint8_t* positions, int64_t rows, const Fp8GemvActivation& x,
                       float* y) {
  assert(x.layout == Fp8GemvLayout::Sparse24);
  const int64_t cols = x.cols, vrow = cols / 2, prow = (cols + 7) / 8;
  int64_t r = 0;
#if defined(SPARQ_FP8_BF16_DOT)
  const Bf16Widener widen;
  const Sparse24Gather gather;
  for (; r + 2 <= rows; r += 2)
    sparse24_rows2_bf16(values + r * vrow, positions + r * prow, values + (r + 1) * vrow, positions + (r + 1) * prow,
                        cols, x.bf16.data(), y + r, y + r + 1, widen, gather);
  if (r < rows) {  // an odd last row: pair it with itself
    float unused;
    sparse24_rows2_bf16(values + r * vrow, positions + r * prow, values + r * vrow, positions + r * prow, cols,
                        x.bf16.data(), y + r, &unused, widen, gather);
    ++r;
  }
#elif defined(__AVX512F__) && defined(__AVX512BW__)
  const Sparse24Index index;
  for (; r + 2 <= rows; r += 2)
    sparse24_rows2(values + r * vrow, positions + r * prow, values + (r + 1) * vrow, positions + (r + 1) * prow, cols,
                   x.x, y + r, y + r + 1, index);
  if (r < rows) {  // an odd last row: pair it with itself
    float unused;
    sparse24_rows2(values + r * vrow, positions + r * prow, values + r * vrow, positions + r * prow, cols, x.x, y + r,
                   &unused, index);
    ++r;
  }
#endif
  for (; r < rows; ++r) {
    float s = 0.0f;
    for (int64_t g = 0; g < cols / 4; ++g)
      s += group_dot(values + r * vrow + 2 * g, sparse24::group_nibble(positions + r * prow, g), x.x + 4 * g);
    y[r] = s;
  }
}

void fp8_widen_dense(const uint8_t* w, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w + r * cols;
    float* o = out + r * cols;
    int64_t c = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const __m512 unscale = _mm512_set1_ps(kUnscale);
    for (; c + 32 <= cols; c += 32) {
      const __m512i h = e4m3_to_f16_scaled(load32(row + c));
      _mm512_storeu_ps(o + c, _mm512_mul_ps(low_f32(h), unscale));
      _mm512_storeu_ps(o + c + 16, _mm512_mul_ps(high_f32(h), unscale));
    }
#endif
    for (; c < cols; ++c) o[c] = kFp8E4M3Table[row[c]];
  }
}

void fp8_widen_sparse24(const uint8_t* values, const uint8_t* positions, int64_t rows, int64_t cols, float* out) {
  const int64_t vrow = cols / 2, prow = (cols + 7) / 8;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* v = values + r * vrow;
    const uint8_t* p = positions + r * prow;
    float* o = out + r * cols;
    int64_t c = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const __m512 unscale = _mm512_set1_ps(kUnscale);
    for (; c + 32 <= cols; c += 32) {
      // 16 kept values of 32 columns: the first 8 belong to columns c..c+15, the next 8 to c+16..c+31;
      // each half is expanded into its kept columns (zeros elsewhere).
      const __m512 f = _mm512_mul_ps(e4m3x16_to_f32_scaled(v + c / 2), unscale);
      const uint8_t* pb = p + c / 8;
      const __mmask16 lo = static_cast<__mmask16>(kKeptMask[pb[0]] | kKeptMask[pb[1]] << 8);
      const __mmask16 hi = static_cast<__mmask16>(kKeptMask[pb[2]] | kKeptMask[pb[3]] << 8);
      _mm512_storeu_ps(o + c, _mm512_maskz_expand_ps(lo, f));
      _mm512_storeu_ps(o + c + 16, _mm512_maskz_expand_ps(hi, _mm512_shuffle_f32x4(f, f, 0xEE)));
    }
#endif
    for (; c < cols; c += 4) {
      const int64_t g = c / 4;
      const int nib = sparse24::group_nibble(p, g);
      o[c] = o[c + 1] = o[c + 2] = o[c + 3] = 0.0f;
      o[c + sparse24::first_column(nib)] = kFp8E4M3Table[v[2 * g]];
      o[c + sparse24::second_column(nib)] = kFp8E4M3Table[v[2 * g + 1]];
    }
  }
}

void exact_f32_to_bf16(const float* x, int64_t n, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    out[i] = static_cast<uint16_t>(b >> 16);
  }
}

void fp8_widen_dense_bf16(const uint8_t* w, int64_t rows, int64_t cols, uint16_t* out) {
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    fp8_widen_dense(w + r * cols, 1, cols, row.data());
    exact_f32_to_bf16(row.data(), cols, out + r * cols);
  }
}

void fp8_widen_sparse24_bf16(const uint8_t* values, const uint8_t* positions, int64_t rows, int64_t cols,
                             uint16_t* out) {
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    fp8_widen_sparse24(values + r * (cols / 2), positions + r * ((cols + 7) / 8), 1, cols, row.data());
    exact_f32_to_bf16(row.data(), cols, out + r * cols);
  }
}

}  // namespace sparq::cpu

#pragma GCC diagnostic pop
