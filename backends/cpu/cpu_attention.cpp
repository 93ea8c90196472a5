#include "backends/cpu/cpu_attention.h"

#include "backends/cpu/vector_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which -O3 reports as
// (maybe-)uninitialized where xsimd inlines them (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace sparq::cpu {

void attention(const AttentionOp& op, const float* q, const float* k, const float* v, int64_t rows,
               std::span<const SeqId> seqs, std::span<const int64_t> positions, PagedKvCache& cache, float* out,
               int threads) {
  const int64_t D = op.head_dim, KVH = op.kv_heads, H = op.heads, group = H / KVH;
  const int64_t bt = cache.geometry().block_tokens;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < KVH; ++h) {
      const SeqId s = seqs[static_cast<size_t>(r)];
      const int64_t p = positions[static_cast<size_t>(r)];
      std::memcpy(cache.key(s, op.layer, h, p), k + (r * KVH + h) * D, static_cast<size_t>(D) * sizeof(float));
      std::memcpy(cache.value(s, op.layer, h, p), v + (r * KVH + h) * D, static_cast<size_t>(D) * sizeof(float));
    }

#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores;
    std::vector<float> acc(static_cast<size_t>(D));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < rows * H; ++task) {
      const int64_t r = task / H, h = task % H, kvh = h / group;
      const SeqId s = seqs[static_cast<size_t>(r)];
      const int64_t pos = positions[static_cast<size_t>(r)];
      const int64_t lo = op.sliding_window > 0 ? std::max<int64_t>(0, pos - op.sliding_window + 1) : 0;
      const std::vector<int32_t>& blocks = cache.block_table(s);
      const float* qh = q + (r * H + h) * D;
      scores.resize(static_cast<size_t>(pos - lo + 1));
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = lo; j <= pos; ++j) {
        const float* kj = cache.block_rows(blocks[static_cast<size_t>(j / bt)], op.layer, kvh, 0) + (j % bt) * D;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; ++d) dot += qh[d] * kj[d];
        scores[static_cast<size_t>(j - lo)] = dot * op.scale;
      }
      const int64_t n = pos - lo + 1;
      float* sc = scores.data();
      if (op.softcap > 0) {  // before the mask (here: the range)
        const Floats cap(op.softcap);
        map_vectors(n, [&](int64_t i, int64_t c) { store(xsimd::tanh(load(sc + i, c) / cap) * cap, sc + i, c); });
      }
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, sc[i]);
      const Floats vmx(mx);
      map_vectors(n, [&](int64_t i, int64_t c) { store(xsimd::exp(load(sc + i, c) - vmx), sc + i, c); });
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += sc[i];
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = lo; j <= pos; ++j) {
        const float* vj = cache.block_rows(blocks[static_cast<size_t>(j / bt)], op.layer, kvh, 1) + (j % bt) * D;
        const float w = scores[static_cast<size_t>(j - lo)] / sum;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += w * vj[d];
      }
      std::memcpy(out + (r * H + h) * D, acc.data(), static_cast<size_t>(D) * sizeof(float));
    }
  }
}

}  // namespace sparq::cpu

#pragma GCC diagnostic pop
