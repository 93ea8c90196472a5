// Overflow-checked size arithmetic for sizes that come from untrusted headers.
#pragma once
#include <cstdint>
#include <optional>
#include <span>

namespace sparq {

inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Product of non-negative dimensions; nullopt on a negative dimension or overflow.
inline std::optional<uint64_t> checked_numel(std::span<const int64_t> shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    auto r = checked_mul(n, static_cast<uint64_t>(d));
    if (!r) return std::nullopt;
    n = *r;
  }
  return n;
}

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace sparq
