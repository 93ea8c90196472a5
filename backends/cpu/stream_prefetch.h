// Software prefetch for kernels that stream their weights once (decode GEMVs). They do enough work
// per cache line that the hardware prefetchers alone kept only ~35-50 % of the read bandwidth busy
// on this project's machines; requesting each line 8 KiB ahead of its use brought the FP8 GEMVs to
// 70-100 % (bench/fp8_kernel_bench.sh; 2 KiB was too little, 16-32 KiB no better). Prefetches past
// the end of a buffer are harmless: they never fault.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace sparq::cpu {

constexpr int64_t kPrefetchBytes = 8192;

// The line kPrefetchBytes / fraction ahead of p (a fraction > 1 for a stream read that much slower).
inline void prefetch_ahead(const uint8_t* p, int64_t fraction = 1) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes / fraction), _MM_HINT_T0);
}

}  // namespace sparq::cpu
