#include "backends/cpu/onednn_int8_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>

#include "backends/cpu/omp_threads.h"
#include "runtime/core/error.h"

namespace sparq::cpu {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

bool onednn_int8_is_exact() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl_cpu_isa_t want) { return (isa & static_cast<unsigned>(want)) == static_cast<unsigned>(want); };
  return has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni);
}

struct OneDnnInt8Matmul::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  int64_t n = 0, k = 0;
  int threads = 1;
  std::vector<float> scales;
  memory::desc packed_md;
  memory packed;
  dnnl::matmul single_row, any_rows;  // M = 1, and M a runtime dimension

  // m = DNNL_RUNTIME_DIM_VAL: the row count is given when the primitive runs.
  dnnl::matmul::primitive_desc make_pd(int64_t m, const memory::desc& weights_md) const {
    const memory::desc src({m, k}, dt::s8, tag::ab), dst({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, scales);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, dst), attr, engine);
  }
};

OneDnnInt8Matmul::OneDnnInt8Matmul(const int8_t* weight, int64_t n, int64_t k, const std::vector<float>& scales,
                                   int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.n = n;
  d.k = k;
  d.threads = std::max(1, threads);
  d.scales = scales;
  try {
    ScopedOmpThreads team(d.threads);
    // The layout the M = 1 kernel wants; the kernels of larger M read the same one.
    auto pd = d.make_pd(1, memory::desc({k, n}, dt::s8, tag::any));
    d.packed_md = pd.weights_desc();
    d.packed = memory(d.packed_md, d.engine);
    d.single_row = dnnl::matmul(pd);
    d.any_rows = dnnl::matmul(d.make_pd(DNNL_RUNTIME_DIM_VAL, d.packed_md));
    // Our weight is [N, K] row-major = a [K, N] matrix in "ba" order.
    memory user(memory::desc({k, n}, dt::s8, tag::ba), d.engine, const_cast<int8_t*>(weight));
    dnnl::stream s(d.engine);
    dnnl::reorder(user, d.packed).execute(s, user, d.packed);
    s.wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN could not set up an INT8 matmul [", n, " x ", k, "]: ", e.what());
  }
}

OneDnnInt8Matmul::~OneDnnInt8Matmul() = default;

uint64_t OneDnnInt8Matmul::packed_bytes() const { return impl_->packed_md.get_size(); }

void OneDnnInt8Matmul::run(const int8_t* x, int64_t m, float* y) const {
  Impl& d = *impl_;
  try {
    ScopedOmpThreads team(d.threads);
    const dnnl::matmul& mm = m == 1 ? d.single_row : d.any_rows;
    memory src(memory::desc({m, d.k}, dt::s8, tag::ab), d.engine, const_cast<int8_t*>(x));
    memory dst(memory::desc({m, d.n}, dt::f32, tag::ab), d.engine, y);
    dnnl::stream s(d.engine);
    mm.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, d.packed}, {DNNL_ARG_DST, dst}});
    s.wait();
  } catch (const dnnl::error& e) {
    fail("oneDNN INT8 matmul [", m, " x ", d.k, "] x [", d.k, " x ", d.n, "] failed: ", e.what());
  }
}

}  // namespace sparq::cpu
