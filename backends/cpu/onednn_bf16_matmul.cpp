#include "backends/cpu/onednn_bf16_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
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

const Fp8GemmChoice& fp8_gemm_choice() {
  static const Fp8GemmChoice choice = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto bf16_isa = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
    // The ISA, and a real kernel (not oneDNN's reference one) for the runtime-M primitive run() uses.
    const bool has_bf16 = (isa & bf16_isa) == bf16_isa && [] {
      try {
        constexpr int64_t k = 4096, n = 256;
        const memory::desc src({DNNL_RUNTIME_DIM_VAL, k}, dt::bf16, tag::ab), weights({k, n}, dt::bf16, tag::ba);
        const dnnl::matmul::primitive_desc pd(
            dnnl::matmul::desc(src, weights, memory::desc({DNNL_RUNTIME_DIM_VAL, n}, dt::f32, tag::ab)),
            dnnl::engine(dnnl::engine::kind::cpu, 0));
        return std::string(pd.impl_info_str()).find("ref") == std::string::npos;
      } catch (const dnnl::error&) {
        return false;
      }
    }();
    if (const char* v = std::getenv("SPARQ_FP8_GEMM")) {
      const std::string want = v;
      if (want == "f32") return Fp8GemmChoice{false, "f32 (SPARQ_FP8_GEMM=f32)"};
      if (want != "bf16") fail("SPARQ_FP8_GEMM=\"", want, "\" is not a choice (bf16 or f32)");
      if (!has_bf16) fail("SPARQ_FP8_GEMM=bf16: this CPU has no AVX512-BF16, so oneDNN has no BF16 kernels here");
      return Fp8GemmChoice{true, "BF16 (SPARQ_FP8_GEMM=bf16)"};
    }
    return has_bf16 ? Fp8GemmChoice{true, "BF16 (AVX512-BF16)"} : Fp8GemmChoice{false, "f32 (no AVX512-BF16)"};
  }();
  return choice;
}

}  // namespace sparq::cpu
