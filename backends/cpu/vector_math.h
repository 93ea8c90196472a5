// Small vector helpers on xsimd batches shared by the elementwise ops and attention. Tails go
// through the same vector functions (padded), so every element is rounded the same way.
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <cstring>

namespace sparq::cpu {

using Floats = xsimd::batch<float>;
constexpr int64_t kLanes = static_cast<int64_t>(Floats::size);

// Calls f(first, count) over [0, n) in whole vectors, then once for the tail (count < kLanes).
template <class F>
inline void map_vectors(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) f(i, kLanes);
  if (i < n) f(i, n - i);
}

inline Floats load(const float* p, int64_t count) {
  if (count == kLanes) return Floats::load_unaligned(p);
  alignas(64) float tmp[kLanes] = {};
  std::memcpy(tmp, p, static_cast<size_t>(count) * sizeof(float));
  return Floats::load_aligned(tmp);
}

inline void store(Floats v, float* p, int64_t count) {
  if (count == kLanes) return v.store_unaligned(p);
  alignas(64) float tmp[kLanes];
  v.store_aligned(tmp);
  std::memcpy(p, tmp, static_cast<size_t>(count) * sizeof(float));
}

}  // namespace sparq::cpu
