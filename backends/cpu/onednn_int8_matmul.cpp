#include "backends/cpu/onednn_int8_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "backends/cpu/omp_threads.h"
#include "runtime/core/error.h"
#include "runtime/model_file/int8_tiles.h"

namespace sparq::cpu {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

bool onednn_int8_is_exact() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](dnnl_cpu_isa_t want) { return (isa & static_cast<unsigned>(want)) == static_cast<unsigned>(want); };
  return has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni);
}

namespace {

// The int8_k4_tiles layout as oneDNN describes it: BA16a64b4a with the s8s8 compensation per
// output column (mask 2 of the [K, N] weight).
memory::desc int8_tiles_md(int64_t k, int64_t n) {
  memory::desc md({k, n}, dt::s8, tag::BA16a64b4a);
  md.data.extra.flags = dnnl_memory_extra_flag_compensation_conv_s8s8;
  md.data.extra.compensation_mask = 2;
  return md;
}

struct SharedMatmul {
  dnnl::matmul primitive;
  memory::desc weights_md;  // the packed layout it reads; every weight of the shape must match
  memory::desc scratchpad_md;
  size_t scratchpad_bytes = 0;
  std::string implementation;
};

// The weights' packed layout is the one oneDNN picks for M = 1 (the decode hot path); the kernels
// of larger M read it too. The scratchpad is the caller's, so one primitive can run on several
// threads at once.
dnnl::matmul::primitive_desc make_pd(const dnnl::engine& engine, int64_t m, int64_t k, int64_t n,
                                     const memory::desc& weights_md) {
  const memory::desc src({m, k}, dt::s8, tag::ab), dst({m, n}, dt::s32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, dst), attr, engine);
}

// Process-wide: primitives by (M, K, N, threads) (oneDNN fixes a primitive's thread count when it
// is made). Never shrinks; bounded by distinct weight shapes times kExactRows + kMaxPieceRows /
// kExactRows - 1 row counts (71). Made under the lock: a new row count is rare after warm-up. Kept
// alive until exit on purpose (no destruction order to get wrong against oneDNN's own statics).
class PrimitiveCache {
 public:
  static PrimitiveCache& instance() {
    static PrimitiveCache& cache = *new PrimitiveCache;
    return cache;
  }

  // A primitive runs only on a stream of the engine it was made with, so every user shares this one.
  const dnnl::engine& engine() const { return engine_; }

  // The caller has set the OpenMP team size to `threads` (ScopedOmpThreads).
  const SharedMatmul& get(int64_t m, int64_t k, int64_t n, int threads, const memory::desc& weights_md) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto key = std::make_tuple(m, k, n, threads);
    auto it = by_shape_.find(key);
    if (it == by_shape_.end()) {
      const auto pd = make_pd(engine_, m, k, n, weights_md);
      SharedMatmul made{dnnl::matmul(pd), weights_md, pd.scratchpad_desc(), pd.scratchpad_desc().get_size(),
                        pd.impl_info_str()};
      it = by_shape_.emplace(key, std::move(made)).first;
    }
    // oneDNN does not check arguments at execute: a weight packed differently must not share.
    if (it->second.weights_md != weights_md)
      fail("oneDNN INT8 matmul [", k, " x ", n, "]: two weights of one shape were packed in different layouts");
    return it->second;  // std::map nodes do not move
  }

 private:
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  std::mutex mu_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int>, SharedMatmul> by_shape_;
};

}  // namespace

struct OneDnnInt8Matmul::Impl {
  const dnnl::engine& engine = PrimitiveCache::instance().engine();
  int64_t n = 0, k = 0;
  int threads = 1;
  std::vector<float> scales;
  memory::desc packed_md;
  memory packed;
  bool in_place = false;

  const SharedMatmul& primitive(int64_t m) const { return PrimitiveCache::instance().get(m, k, n, threads, packed_md); }
};

int64_t OneDnnInt8Matmul::piece_rows(int64_t m) {
  if (m <= kExactRows) return m;
  return std::min(m, kMaxPieceRows) / kExactRows * kExactRows;
}

OneDnnInt8Matmul::OneDnnInt8Matmul(const uint8_t* weight, bool tiled, int64_t n, int64_t k,
                                   const std::vector<float>& scales, int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.n = n;
  d.k = k;
  d.threads = std::max(1, threads);
  d.scales = scales;
  try {
    ScopedOmpThreads team(d.threads);
    d.packed_md = make_pd(d.engine, 1, k, n, memory::desc({k, n}, dt::s8, tag::any)).weights_desc();
    const Int8TilesShape shape(n, k);
    const bool reads_tiles = d.packed_md == int8_tiles_md(k, n) && d.packed_md.get_size() == shape.total_bytes();
    if (reads_tiles && tiled) {
      d.packed = memory(d.packed_md, d.engine, const_cast<uint8_t*>(weight));  // oneDNN only reads weights
      d.in_place = true;
    } else if (reads_tiles) {
      d.packed = memory(d.packed_md, d.engine);
      auto* dst = static_cast<uint8_t*>(d.packed.get_data_handle());
      std::vector<int32_t> comp(static_cast<size_t>(shape.padded_out));
      const auto* rows = reinterpret_cast<const int8_t*>(weight);
      const int64_t T = Int8TilesShape::kTile;
#pragma omp parallel for num_threads(d.threads) schedule(dynamic)
      for (int64_t b = 0; b < shape.bands(); ++b)
        int8_tiles_pack_band(shape, b, rows + b * T * k, dst + static_cast<uint64_t>(b) * shape.band_bytes(), comp.data() + b * T);
      int8_tiles_write_tail(shape, comp.data(), dst);
    } else {
      // Another layout (another oneDNN or CPU): oneDNN's reorder makes it, from the file's layout.
      d.packed = memory(d.packed_md, d.engine);
      const memory::desc user_md = tiled ? memory::desc({k, n}, dt::s8, tag::BA16a64b4a) : memory::desc({k, n}, dt::s8, tag::ba);
      memory user(user_md, d.engine, const_cast<uint8_t*>(weight));
      dnnl::stream s(d.engine);
      dnnl::reorder(user, d.packed).execute(s, user, d.packed);
      s.wait();
    }
  } catch (const dnnl::error& e) {
    fail("oneDNN could not set up an INT8 matmul [", n, " x ", k, "]: ", e.what());
  }
}

OneDnnInt8Matmul::~OneDnnInt8Matmul() = default;

uint64_t OneDnnInt8Matmul::packed_bytes() const { return impl_->in_place ? 0 : impl_->packed_md.get_size(); }

bool OneDnnInt8Matmul::in_place() const { return impl_->in_place; }

std::string OneDnnInt8Matmul::implementation(int64_t m) const {
  try {
    ScopedOmpThreads team(impl_->threads);
    return impl_->primitive(piece_rows(m)).implementation;
  } catch (const dnnl::error& e) {
    fail("oneDNN INT8 matmul [", m, " x ", impl_->k, "] x [", impl_->k, " x ", impl_->n, "]: ", e.what());
  }
}

void OneDnnInt8Matmul::run(const int8_t* x, int64_t m, const float* row_scales, float* y) const {
  const Impl& d = *impl_;
  thread_local std::vector<uint8_t> scratchpad;
  try {
    ScopedOmpThreads team(d.threads);
    dnnl::stream s(d.engine);
    for (int64_t r0 = 0; r0 < m;) {
      const int64_t rows = piece_rows(m - r0);
      const SharedMatmul& mm = d.primitive(rows);
      if (scratchpad.size() < mm.scratchpad_bytes) scratchpad.resize(mm.scratchpad_bytes);
      float* yr = y + r0 * d.n;
      // The int32 sums land in y itself; each becomes its scaled float in place below.
      memory src(memory::desc({rows, d.k}, dt::s8, tag::ab), d.engine, const_cast<int8_t*>(x + r0 * d.k));
      memory dst(memory::desc({rows, d.n}, dt::s32, tag::ab), d.engine, yr);
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, d.packed}, {DNNL_ARG_DST, dst}};
      if (mm.scratchpad_bytes) args.emplace(DNNL_ARG_SCRATCHPAD, memory(mm.scratchpad_md, d.engine, scratchpad.data()));
      mm.primitive.execute(s, args);
      s.wait();
      const float* sw = d.scales.data();
      const float* sx = row_scales + r0;
      const int64_t n = d.n;
      // (acc * s_w) * s_x: the order oneDNN's output scale and the former separate pass used.
#pragma omp parallel for num_threads(d.threads) schedule(static) if (rows * n > 65536)  // a decode row is not worth a fork
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t o = 0; o < n; ++o) {
          int32_t acc;
          std::memcpy(&acc, yr + t * n + o, sizeof acc);
          yr[t * n + o] = static_cast<float>(acc) * sw[o] * sx[t];
        }
      r0 += rows;
    }
  } catch (const dnnl::error& e) {
    fail("oneDNN INT8 matmul [", m, " x ", d.k, "] x [", d.k, " x ", d.n, "] failed: ", e.what());
  }
}

}  // namespace sparq::cpu
