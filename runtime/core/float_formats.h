// Scalar conversions between the narrow float formats of checkpoints and f32.
// Vector kernels use their own paths; these are the reference definitions.
#pragma once
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace sparq {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Round to nearest even, NaN kept quiet (as torch does).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.0f) return sign | 0x7c00u;
  if (a < 6.103515625e-05f) {  // subnormal range: quantum 2^-24, rint is round-half-even
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  uint32_t v = std::bit_cast<uint32_t>(a);
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | static_cast<uint16_t>(((v >> 23) - 112) << 10 | ((v >> 13) & 0x3ffu));
}

// FP8 E4M3FN: bias 7, no infinities, 0x7f/0xff are NaN, max 448.
constexpr float fp8_e4m3_decode_scalar(uint8_t b) {
  const int sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 7;
  float v;
  if (exp == 0xf && man == 7) {
    v = __builtin_nanf("");
  } else if (exp == 0) {
    v = static_cast<float>(man) / 8.0f / 64.0f;
  } else {
    v = (1.0f + static_cast<float>(man) / 8.0f);
    for (int e = exp - 7; e > 0; --e) v *= 2.0f;
    for (int e = exp - 7; e < 0; ++e) v /= 2.0f;
  }
  return sign ? -v : v;
}

inline constexpr std::array<float, 256> kFp8E4M3Table = [] {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) t[i] = fp8_e4m3_decode_scalar(static_cast<uint8_t>(i));
  return t;
}();

inline float fp8_e4m3_to_f32(uint8_t b) { return kFp8E4M3Table[b]; }

// Round to nearest even after clamping to +-448, as quantizers do before torch's non-saturating cast.
inline uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fmin(std::fabs(f), 448.0f);
  if (a < 0.015625f) {  // subnormal: quantum 2^-9
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5,1)
  const int exp = e - 1;                       // a = 1.x * 2^exp
  const float q = std::ldexp(a, 3 - exp);      // in [8,16): 8 + mantissa
  int m = static_cast<int>(std::nearbyint(q)) - 8;
  int be = exp + 7;
  if (m == 8) { m = 0; ++be; }
  return sign | static_cast<uint8_t>(be << 3 | m);
}

}  // namespace sparq
