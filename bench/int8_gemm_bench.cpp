// The CPU's VNNI peak and the INT8 GEMMs prefill runs, in one run:
//   int8_gemm_bench [M threads reps]     (defaults: 512 2 5)
// Peak: every thread runs vpdpbusd (64 u8 x s8 multiply-adds per instruction) on 16 independent
// accumulators in registers, nothing from memory. GEMMs: the CPU backend's OneDnnInt8Matmul (the
// path INT8 W8A8 linears take: oneDNN brgemm on the file's int8_k4_tiles layout, then the scales)
// on the five linear shapes of Gemma-2-2B, M rows at once, weights warm in memory.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backends/cpu/onednn_int8_matmul.h"
#include "runtime/model_file/int8_tiles.h"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Multiply-adds per second of vpdpbusd on all threads: 16 accumulators hide its latency.
__attribute__((target("avx512f,avx512vnni"))) double vnni_peak(int threads, int reps) {
  constexpr int64_t kIters = 20'000'000;
  std::vector<int32_t> sink(static_cast<size_t>(threads) * 16);
  const double s = median_seconds(reps, [&] {
#pragma omp parallel num_threads(threads)
    {
      // Sixteen named accumulators (an array would live on the stack), kept by an empty asm.
      const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
      __m512i c0 = _mm512_set1_epi32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0,
              c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
      for (int64_t it = 0; it < kIters; ++it) {
        c0 = _mm512_dpbusd_epi32(c0, a, b), c1 = _mm512_dpbusd_epi32(c1, a, b), c2 = _mm512_dpbusd_epi32(c2, a, b);
        c3 = _mm512_dpbusd_epi32(c3, a, b), c4 = _mm512_dpbusd_epi32(c4, a, b), c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b), c7 = _mm512_dpbusd_epi32(c7, a, b), c8 = _mm512_dpbusd_epi32(c8, a, b);
        c9 = _mm512_dpbusd_epi32(c9, a, b), c10 = _mm512_dpbusd_epi32(c10, a, b), c11 = _mm512_dpbusd_epi32(c11, a, b);
        c12 = _mm512_dpbusd_epi32(c12, a, b), c13 = _mm512_dpbusd_epi32(c13, a, b), c14 = _mm512_dpbusd_epi32(c14, a, b);
        c15 = _mm512_dpbusd_epi32(c15, a, b);
        __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7));
        __asm__ volatile("" : "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11), "+v"(c12), "+v"(c13), "+v"(c14), "+v"(c15));
      }
      const __m512i sum = _mm512_add_epi32(
          _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                           _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
          _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)),
                           _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15))));
      sink[static_cast<size_t>(omp_get_thread_num()) * 16] = _mm512_reduce_add_epi32(sum);
    }
  });
  return static_cast<double>(threads) * kIters * 16 * 64 / s;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t m = argc > 1 ? std::atoll(argv[1]) : 512;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2, reps = argc > 3 ? std::atoi(argv[3]) : 5;
  if (!__builtin_cpu_supports("avx512vnni")) {
    std::printf("this CPU has no AVX512-VNNI\n");
    return 77;
  }
  const double peak = vnni_peak(threads, reps);
  std::printf("VNNI peak (vpdpbusd, registers only, %d threads): %.1f G multiply-adds/s\n\n", threads, peak / 1e9);
  std::printf("%-22s %6s %10s %14s %9s  %s\n", "shape [N x K]", "M", "ms", "G mul-add/s", "of peak", "kernel");

  struct Shape { const char* name; int64_t n, k; int count; };  // count: linears of this shape per layer
  const Shape shapes[] = {{"q_proj", 2048, 2304, 1}, {"k_proj, v_proj", 1024, 2304, 2}, {"o_proj", 2304, 2048, 1},
                          {"gate_proj, up_proj", 9216, 2304, 2}, {"down_proj", 2304, 9216, 1}};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> val(-128, 127);
  double total_macs = 0, total_s = 0;
  for (const Shape& sh : shapes) {
    std::vector<int8_t> w(static_cast<size_t>(sh.n * sh.k)), x(static_cast<size_t>(m * sh.k));
    for (auto& v : w) v = static_cast<int8_t>(val(rng));
    for (auto& v : x) v = static_cast<int8_t>(val(rng));
    const sparq::Int8TilesShape tiles_shape(sh.n, sh.k);
    std::vector<uint8_t> tiles(tiles_shape.total_bytes());
    sparq::int8_tiles_pack(tiles_shape, w.data(), tiles.data());
    const sparq::cpu::OneDnnInt8Matmul mm(tiles.data(), true, sh.n, sh.k, std::vector<float>(static_cast<size_t>(sh.n), 1e-3f),
                                          threads);
    std::vector<float> sx(static_cast<size_t>(m), 1e-2f), y(static_cast<size_t>(m * sh.n));
    mm.run(x.data(), m, sx.data(), y.data());  // primitives made outside the timing
    const double s = median_seconds(reps, [&] { mm.run(x.data(), m, sx.data(), y.data()); });
    const double macs = static_cast<double>(m) * static_cast<double>(sh.n) * static_cast<double>(sh.k);
    total_macs += macs * sh.count;
    total_s += s * sh.count;
    std::printf("%-22s %6lld %10.3f %14.1f %8.1f%%  %s%s\n", sh.name, static_cast<long long>(m), s * 1e3, macs / s / 1e9,
                100.0 * macs / s / peak, mm.implementation(m).c_str(), mm.in_place() ? " (in place)" : "");
  }
  std::printf("%-22s %6lld %10.3f %14.1f %8.1f%%  (one layer's seven linears)\n", "all", static_cast<long long>(m),
              total_s * 1e3, total_macs / total_s / 1e9, 100.0 * total_macs / total_s / peak);
  return 0;
}
