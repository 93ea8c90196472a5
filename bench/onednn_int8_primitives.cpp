// How oneDNN INT8 matmul primitives for continuous batching should be kept: one primitive per
// distinct row count M (what sparq does, shared by weight shape) against one with M as a runtime
// dimension (which oneDNN 2.6 serves with its reference kernel on VNNI CPUs). Prints, per M, the time of one call of
// each, and the resident memory the per-M primitives added. Built and run by
// bench/onednn_int8_primitives.sh. The weight is [n x k] s8, packed once and shared, as in
// backends/cpu/onednn_int8_matmul.cpp.
#include <sys/resource.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4;
}

template <class F>
double best_seconds(F&& f, int reps) {
  f();
  double best = 1e9;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2304, k = argc > 2 ? std::atoll(argv[2]) : 2304;
  const int max_m = argc > 3 ? std::atoi(argv[3]) : 512;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::vector<float> scales(static_cast<size_t>(n), 0.01f);
  auto pd_for = [&](int64_t m, const memory::desc& wmd) {
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, scales);
    return dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(memory::desc({m, k}, dt::s8, tag::ab), wmd, memory::desc({m, n}, dt::f32, tag::ab)), attr, engine);
  };
  const auto pd1 = pd_for(1, memory::desc({k, n}, dt::s8, tag::any));
  memory packed(pd1.weights_desc(), engine);
  std::vector<int8_t> w(static_cast<size_t>(n * k), 1), x(static_cast<size_t>(max_m * k), 1);
  std::vector<float> y(static_cast<size_t>(max_m * n));
  memory user(memory::desc({k, n}, dt::s8, tag::ba), engine, w.data());
  dnnl::reorder(user, packed).execute(stream, user, packed);
  stream.wait();
  const dnnl::matmul runtime_m(pd_for(DNNL_RUNTIME_DIM_VAL, pd1.weights_desc()));
  std::printf("oneDNN %d.%d, [%lld x %lld] s8 weight, ISA %d\n", dnnl_version()->major, dnnl_version()->minor,
              static_cast<long long>(n), static_cast<long long>(k), static_cast<int>(dnnl::get_effective_cpu_isa()));
  std::printf("%6s %14s %14s %8s %16s\n", "M", "per-M (ms)", "runtime-M (ms)", "ratio", "per-M RSS (MiB)");
  std::map<int64_t, dnnl::matmul> per_m;
  const long rss0 = rss_kib();
  for (int64_t m = 1; m <= max_m; ++m) {
    per_m.emplace(m, dnnl::matmul(pd_for(m, pd1.weights_desc())));
    memory src(memory::desc({m, k}, dt::s8, tag::ab), engine, x.data());
    memory dst(memory::desc({m, n}, dt::f32, tag::ab), engine, y.data());
    auto run = [&](const dnnl::matmul& mm) {
      mm.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}});
      stream.wait();
    };
    const bool report = m <= 4 || m == 7 || m == 16 || m == 33 || m == 64 || m == 128 || m == 256 || m == max_m;
    if (!report) continue;
    const double a = best_seconds([&] { run(per_m.at(m)); }, 5), b = best_seconds([&] { run(runtime_m); }, 5);
    std::printf("%6lld %14.3f %14.3f %8.2f %16.1f\n", static_cast<long long>(m), a * 1e3, b * 1e3, b / a,
                static_cast<double>(rss_kib() - rss0) / 1024.0);
  }
  return 0;
}
