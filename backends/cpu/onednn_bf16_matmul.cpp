#include "backends/cpu/onednn_bf16_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/core/error.h"

namespace sparq::cpu {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

struct OneDnnBf16Matmul::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  int64_t k = 0;
  mutable std::mutex mu;
  // Keyed by weight-tile rows and output stride only (a handful per linear): M is a runtime
  // dimension, so step sizes do not add primitives.
  mutable std::map<std::pair<int64_t, int64_t>, dnnl::matmul> by_shape;

  static memory::desc dst_md(int64_t m, int64_t n, int64_t ldy) { return memory::desc({m, n}, dt::f32, {ldy, 1}); }

  const dnnl::matmul& primitive(int64_t n, int64_t ldy) const {
    std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_pair(n, ldy);
    const int64_t m = DNNL_RUNTIME_DIM_VAL;
    auto it = by_shape.find(key);
    if (it == by_shape.end()) {
      const memory::desc src({m, k}, dt::bf16, tag::ab), weights({k, n}, dt::bf16, tag::ba);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst_md(m, n, ldy)), engine);
      it = by_shape.emplace(key, dnnl::matmul(pd)).first;
    }
    return it->second;
  }
};

OneDnnBf16Matmul::OneDnnBf16Matmul(int64_t k) : impl_(std::make_unique<Impl>()) { impl_->k = k; }

OneDnnBf16Matmul::~OneDnnBf16Matmul() = default;

void OneDnnBf16Matmul::run(const uint16_t* x, int64_t m, const uint16_t* w, int64_t n, float* y, int64_t ldy) const {
  const Impl& d = *impl_;
  try {
    const dnnl::matmul& mm = d.primitive(n, ldy);
    memory src(memory::desc({m, d.k}, dt::bf16, tag::ab), d.engine, const_cast<uint16_t*>(x));
    memory weights(memory::desc({d.k, n}, dt::bf16, tag::ba), d.engine, const_cast<uint16_t*>(w));
    memory dst(Impl::dst_md(m, n, ldy), d.engine, y);
    dnnl::stream s(d.engine);
    mm.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    s.wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN BF16 matmul [", m, " x ", d.k, "] x [", d.k, " x ", n, "] failed: ", e.what());
  }
}

bool OneDnnBf16Matmul::faster_than_f32() {
  // Some CPUs have AVX512-BF16 at half the f32 FMA rate, others at twice: time both once on a
  // prefill-sized tile ([64 x 4096] x [4096 x 256], a few ms) and keep the faster.
  static const bool faster = [] {
    constexpr int64_t m = 64, k = 4096, n = 256;
    try {
      dnnl::engine engine(dnnl::engine::kind::cpu, 0);
      const memory::desc src({m, k}, dt::bf16, tag::ab), weights({k, n}, dt::bf16, tag::ba),
          dst({m, n}, dt::f32, tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst), engine);
      if (std::string(pd.impl_info_str()).find("ref") != std::string::npos) return false;
      std::vector<uint16_t> xb(static_cast<size_t>(m * k), 0x3f80), wb(static_cast<size_t>(n * k), 0x3f80);
      std::vector<float> xf(xb.size(), 1.0f), wf(wb.size(), 1.0f), y(static_cast<size_t>(m * n));
      dnnl::matmul mm(pd);
      memory ms(src, engine, xb.data()), mw(weights, engine, wb.data()), md(dst, engine, y.data());
      dnnl::stream s(engine);
      auto best = [](auto&& f) {  // one warm-up call, then the best of five
        f();
        double t = 1e9;
        for (int i = 0; i < 5; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          f();
          t = std::min(t, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        return t;
      };
      const double t_bf16 = best([&] {
        mm.execute(s, {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}});
        s.wait();
      });
      const double t_f32 = best([&] { dnnl_sgemm('N', 'T', m, n, k, 1.0f, xf.data(), k, wf.data(), k, 0.0f, y.data(), n); });
      return t_bf16 < 0.9 * t_f32;  // clearly faster, so timing noise does not flip the choice
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return faster;
}

}  // namespace sparq::cpu
