#include <catch2/catch.hpp>
#include <cmath>

#include "runtime/core/float_formats.h"

using namespace sparq;

TEST_CASE("FP8 E4M3 decodes the corner values of the format", "[float]") {
  CHECK(fp8_e4m3_to_f32(0x00) == 0.0f);
  CHECK(std::signbit(fp8_e4m3_to_f32(0x80)));
  CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f);
  CHECK(fp8_e4m3_to_f32(0xfe) == -448.0f);
  CHECK(std::isnan(fp8_e4m3_to_f32(0x7f)));
  CHECK(std::isnan(fp8_e4m3_to_f32(0xff)));
  CHECK(fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(fp8_e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));  // smallest normal
  CHECK(fp8_e4m3_to_f32(0x38) == 1.0f);
}

TEST_CASE("FP8 E4M3 encoding round-trips every finite value and rounds half to even", "[float]") {
  for (int b = 0; b < 256; ++b) {
    if (b == 0x7f || b == 0xff) continue;
    const float v = fp8_e4m3_to_f32(static_cast<uint8_t>(b));
    CHECK(f32_to_fp8_e4m3(v) == static_cast<uint8_t>(b));
  }
  CHECK(f32_to_fp8_e4m3(1000.0f) == 0x7e);    // clamps to 448 instead of NaN
  CHECK(f32_to_fp8_e4m3(-1000.0f) == 0xfe);
  CHECK(f32_to_fp8_e4m3(1.0625f) == 0x38);     // halfway between 1 and 1.125: even mantissa
  CHECK(f32_to_fp8_e4m3(1.1875f) == 0x3a);     // halfway between 1.125 and 1.25: even is 1.25
}

TEST_CASE("BF16 and F16 conversions round to nearest even", "[float]") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(f32_to_bf16(1.00390625f) == 0x3f80);  // exactly half an ulp above 1: ties to even
  CHECK(f32_to_bf16(1.01171875f) == 0x3f82);  // half an ulp above 1.0078125: ties to even (up)
  for (uint32_t h = 0; h < 0x7c00; h += 7) CHECK(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h);
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
}
