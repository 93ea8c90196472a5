// Throughput of the CPU backend's FP8 weight kernels next to the machine's read bandwidth, in one
// run: GEMV (decode) over sparse24 and dense E4M3 weights, and widen + f32 GEMM (prefill).
//   fp8_kernel_bench [rows cols threads reps]     (defaults: 14336 4096 = Llama-3.1-8B up_proj, 2, 5)
// Weights live in ordinary memory (warm, larger than the L3), as a model's mmap does after load.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <ctime>
#include <memory>
#include <vector>

#include "backends/cpu/fp8_kernels.h"
#include "runtime/core/float_formats.h"

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int g_threads = 1;
bool g_cpu_time = false;

// Median wall time of f, or (SPARQ_BENCH_CPU_TIME set) its process CPU time divided by the thread
// count: on a machine shared with other work, CPU time leaves out the time the kernel was not running.
template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    f();
    t.push_back(g_cpu_time ? (cpu_seconds() - c0) / g_threads : std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Rows [begin, end) of the calling thread.
std::pair<int64_t, int64_t> my_rows(int64_t rows) {
  const int64_t n = omp_get_num_threads(), t = omp_get_thread_num();
  return {rows * t / n / 16 * 16, t + 1 == n ? rows : rows * (t + 1) / n / 16 * 16};
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 14336, cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2, reps = argc > 4 ? std::atoi(argv[4]) : 5;
  omp_set_num_threads(threads);
  g_threads = threads;
  g_cpu_time = std::getenv("SPARQ_BENCH_CPU_TIME") != nullptr;
  std::mt19937 rng(1);
  // Page-aligned like a mapped model file; E4M3 weights drawn as a quantizer writes them (normal
  // values scaled to the E4M3 range), activations as FP8-quantized values.
  auto buffer = [](int64_t n) {
    return std::unique_ptr<uint8_t, decltype(&std::free)>(
        static_cast<uint8_t*>(std::aligned_alloc(4096, static_cast<size_t>((n + 4095) / 4096 * 4096))), &std::free);
  };
  auto dense = buffer(rows * cols), values = buffer(rows * cols / 2), positions = buffer(rows * cols / 8);
  std::normal_distribution<float> weight(0.0f, 448.0f / 4.5f);
  for (int64_t i = 0; i < rows * cols; ++i) dense.get()[i] = sparq::f32_to_fp8_e4m3(weight(rng));
  for (int64_t i = 0; i < rows * cols / 2; ++i) values.get()[i] = sparq::f32_to_fp8_e4m3(weight(rng));
  static const uint8_t kNibbles[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe};  // first | second << 2, first < second
  for (int64_t i = 0; i < rows * cols / 8; ++i)
    positions.get()[i] = static_cast<uint8_t>(kNibbles[rng() % 6] | kNibbles[rng() % 6] << 4);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  for (auto& v : x) v = sparq::kFp8E4M3Table[sparq::f32_to_fp8_e4m3(weight(rng) / 100.0f)];

  std::printf("shape [%lld x %lld], %d threads, median of %d rounds (each runs every kernel once), %s\n",
              static_cast<long long>(rows), static_cast<long long>(cols), threads, reps,
              g_cpu_time ? "CPU time" : "wall time");
  std::printf("FP8 GEMV kernel: %s\n", sparq::cpu::fp8_gemv_kernel());
  std::printf("%-34s %10s %12s\n", "kernel", "ms", "throughput");

  // The machine's read bandwidth over the dense buffer (the same bytes a dense GEMV reads), and the
  // GEMVs, interleaved round by round so that the machine's drifting bandwidth affects all alike.
  sparq::cpu::Fp8GemvActivation act_sparse, act_dense;
  sparq::cpu::fp8_prepare_activation(x.data(), cols, sparq::cpu::Fp8GemvLayout::Sparse24, act_sparse);
  sparq::cpu::fp8_prepare_activation(x.data(), cols, sparq::cpu::Fp8GemvLayout::Dense, act_dense);
  uint64_t sink = 0;
  auto read = [&] {
    uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const auto [r0, r1] = my_rows(rows);
      const uint64_t* p = reinterpret_cast<const uint64_t*>(dense.get() + r0 * cols);
      const int64_t n = (r1 - r0) * cols / 8;
      uint64_t s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += p[i];
      total += s;
    }
    sink += total;
  };
  auto sparse = [&] {
#pragma omp parallel
    {
      const auto [r0, r1] = my_rows(rows);
      sparq::cpu::fp8_gemv_sparse24(values.get() + r0 * cols / 2, positions.get() + r0 * cols / 8, r1 - r0, act_sparse,
                                    y.data() + r0);
    }
  };
  auto dense_gemv = [&] {
#pragma omp parallel
    {
      const auto [r0, r1] = my_rows(rows);
      sparq::cpu::fp8_gemv_dense(dense.get() + r0 * cols, r1 - r0, act_dense, y.data() + r0);
    }
  };
  std::vector<double> t_read, t_sparse, t_dense;
  for (int i = 0; i < reps; ++i) {
    t_read.push_back(median_seconds(1, read));
    t_sparse.push_back(median_seconds(1, sparse));
    t_dense.push_back(median_seconds(1, dense_gemv));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double gb_dense = static_cast<double>(rows * cols) / 1e9, gb_sparse = gb_dense * 5 / 8;
  const double bw = gb_dense / median(t_read);
  std::printf("%-34s %10.2f %9.1f GB/s\n", "read bandwidth (u64 sum)", median(t_read) * 1e3, bw);
  std::printf("%-34s %10.2f %9.1f GB/s  (%.0f%% of read bandwidth)\n", "gemv sparse24 (5/8 of dense bytes)",
              median(t_sparse) * 1e3, gb_sparse / median(t_sparse), 100.0 * gb_sparse / median(t_sparse) / bw);
  std::printf("%-34s %10.2f %9.1f GB/s  (%.0f%% of read bandwidth)\n", "gemv dense", median(t_dense) * 1e3,
              gb_dense / median(t_dense), 100.0 * gb_dense / median(t_dense) / bw);

  // Prefill: widen ~4 MB tiles of rows per thread, single-threaded sgemm on each (as the linear does).
  for (int64_t m : {16, 32, 64, 256}) {
    std::vector<float> xm(static_cast<size_t>(m * cols), 0.5f), ym(static_cast<size_t>(m * rows));
    const int64_t tile = std::max<int64_t>(16, (int64_t{1} << 20) / cols / 16 * 16);
    const double t = median_seconds(std::max(1, reps / 2), [&] {
#pragma omp parallel
      {
        std::vector<float> w(static_cast<size_t>(tile * cols));
        const auto [r0, r1] = my_rows(rows);
        for (int64_t o = r0; o < r1; o += tile) {
          const int64_t n = std::min(tile, r1 - o);
          sparq::cpu::fp8_widen_sparse24(values.get() + o * cols / 2, positions.get() + o * cols / 8, n, cols, w.data());
          dnnl_sgemm('N', 'T', m, n, cols, 1.0f, xm.data(), cols, w.data(), cols, 0.0f, ym.data() + o, rows);
        }
      }
    });
    char label[64];
    std::snprintf(label, sizeof label, "widen sparse24 + sgemm, M=%lld", static_cast<long long>(m));
    std::printf("%-34s %10.2f %9.1f GFLOPS (dense-equivalent)\n", label, t * 1e3,
                2.0 * static_cast<double>(m * rows * cols) / t / 1e9);
  }
  return sink == 42 ? 1 : 0;
}
