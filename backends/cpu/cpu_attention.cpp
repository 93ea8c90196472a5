#include "backends/cpu/cpu_attention.h"

#include "backends/cpu/vector_math.h"
#include "runtime/core/error.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
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

namespace {

// From this many rows, a prefill chunk attends through two GEMMs per head (scores = Q Kᵀ over the
// chunk's keys gathered contiguously, then P V) instead of one dot product per (query, key).
constexpr int64_t kBlockedRows = 16;
// Largest score matrix (rows x keys) a blocked task may allocate; longer chunks go row by row.
constexpr int64_t kMaxBlockedScores = int64_t{16} << 20;

// First key position query position `pos` sees.
int64_t first_key(const AttentionOp& op, int64_t pos) {
  return op.sliding_window > 0 ? std::max<int64_t>(0, pos - op.sliding_window + 1) : 0;
}

// Softmax over scores[0, n) in place, after the soft-cap: exp(s - max) / sum.
void softmax_scores(const AttentionOp& op, float* sc, int64_t n) {
  if (op.softcap > 0) {
    const Floats cap(op.softcap);
    map_vectors(n, [&](int64_t i, int64_t c) { store(xsimd::tanh(load(sc + i, c) / cap) * cap, sc + i, c); });
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, sc[i]);
  const Floats vmx(mx);
  map_vectors(n, [&](int64_t i, int64_t c) { store(xsimd::exp(load(sc + i, c) - vmx), sc + i, c); });
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += sc[i];
  for (int64_t i = 0; i < n; ++i) sc[i] /= sum;
}

// Keys (kind 0) or values (kind 1) of positions [lo, hi] of one kv head, contiguous [hi - lo + 1, D],
// as f32 whatever the storage dtype.
void gather_cache_rows(const AttentionOp& op, const HostKvStorage& cache, const int32_t* blocks,
                       int64_t kvh, int kind, int64_t lo, int64_t hi, float* out) {
  const int64_t D = op.head_dim, bt = cache.geometry().block_tokens;
  for (int64_t j = lo; j <= hi;) {
    const int64_t in_block = std::min(hi + 1, (j / bt + 1) * bt) - j;
    cache.read_rows(blocks[static_cast<size_t>(j / bt)], op.layer, kvh, kind, j % bt, in_block, out + (j - lo) * D);
    j += in_block;
  }
}

// One query row against its keys (decode), for every query head of kv head `kvh` at once: each key
// and value row is read once for the whole group (GQA shares them), not once per head. Per head the
// arithmetic is the one-head order (dot over d, keys in order), so results do not depend on the
// grouping. An f32 cache is read in place, another dtype through f32 copies of the keys and values
// it needs (`gathered`, the caller's scratch).
void attend_row_group(const AttentionOp& op, const float* q_row, const int32_t* blocks, int64_t pos, int64_t kvh,
                      const HostKvStorage& cache, std::vector<float>& scores, std::vector<float>& gathered,
                      float* out_row) {
  const int64_t D = op.head_dim, bt = cache.geometry().block_tokens, group = op.heads / op.kv_heads;
  const int64_t lo = first_key(op, pos), n = pos - lo + 1, h0 = kvh * group;
  const bool in_place = cache.geometry().dtype == DType::F32;
  if (!in_place) {
    gathered.resize(static_cast<size_t>(2 * n * D));
    gather_cache_rows(op, cache, blocks, kvh, 0, lo, pos, gathered.data());
    gather_cache_rows(op, cache, blocks, kvh, 1, lo, pos, gathered.data() + n * D);
  }
  auto row = [&](int kind, int64_t j) {
    return in_place ? cache.f32_rows(blocks[static_cast<size_t>(j / bt)], op.layer, kvh, kind) + (j % bt) * D
                    : gathered.data() + (kind * n + j - lo) * D;
  };
  scores.resize(static_cast<size_t>(group * n));
  for (int64_t j = lo; j <= pos; ++j) {
    const float* kj = row(0, j);
    for (int64_t g = 0; g < group; ++g) {
      const float* qh = q_row + (h0 + g) * D;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < D; ++d) dot += qh[d] * kj[d];
      scores[static_cast<size_t>(g * n + j - lo)] = dot * op.scale;
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    softmax_scores(op, scores.data() + g * n, n);
    std::fill(out_row + (h0 + g) * D, out_row + (h0 + g + 1) * D, 0.0f);
  }
  for (int64_t j = lo; j <= pos; ++j) {
    const float* vj = row(1, j);
    for (int64_t g = 0; g < group; ++g) {
      float* oh = out_row + (h0 + g) * D;
      const float w = scores[static_cast<size_t>(g * n + j - lo)];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) oh[d] += w * vj[d];
    }
  }
}

// A chunk of consecutive positions and every query head of one kv head, through two GEMMs per head.
bool attend_chunk_blocked(const AttentionOp& op, const float* q, const StepChunk& run, const int32_t* blocks,
                          int64_t kvh, const HostKvStorage& cache, float* out) {
  const int64_t D = op.head_dim, H = op.heads, group = H / op.kv_heads, pos0 = run.start;
  const int64_t lo = first_key(op, pos0), hi = pos0 + run.rows - 1, nk = hi - lo + 1;
  std::vector<float> keys(static_cast<size_t>(nk * D)), values(static_cast<size_t>(nk * D));
  std::vector<float> scores(static_cast<size_t>(run.rows * nk));
  gather_cache_rows(op, cache, blocks, kvh, 0, lo, hi, keys.data());
  gather_cache_rows(op, cache, blocks, kvh, 1, lo, hi, values.data());
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const float* qh = q + run.first_row * H * D + h * D;
    float* oh = out + run.first_row * H * D + h * D;
    if (dnnl_sgemm('N', 'T', run.rows, nk, D, op.scale, qh, H * D, keys.data(), D, 0.0f, scores.data(), nk) !=
        dnnl_success)
      return false;
    for (int64_t i = 0; i < run.rows; ++i) {
      float* row = scores.data() + i * nk;
      const int64_t first = first_key(op, pos0 + i) - lo, last = pos0 + i - lo;  // keys the row may see
      softmax_scores(op, row + first, last - first + 1);
      std::fill(row, row + first, 0.0f);
      std::fill(row + last + 1, row + nk, 0.0f);
    }
    if (dnnl_sgemm('N', 'N', run.rows, D, nk, 1.0f, scores.data(), nk, values.data(), D, 0.0f, oh, H * D) !=
        dnnl_success)
      return false;
  }
  return true;
}

}  // namespace

void attention(const AttentionOp& op, const float* q, const float* k, const float* v, const Step& step,
               HostKvStorage& cache, float* out, int threads) {
  const int64_t D = op.head_dim, KVH = op.kv_heads, H = op.heads;
  const int64_t bt = cache.geometry().block_tokens;
  for (int64_t r = 0; r < step.rows(); ++r) {
    const StepChunk& c = step.chunks[static_cast<size_t>(step.row_chunk[static_cast<size_t>(r)])];
    const int64_t p = step.positions[static_cast<size_t>(r)];
    const int32_t block = step.block_table[static_cast<size_t>(c.first_block + p / bt)];
    for (int64_t h = 0; h < KVH; ++h) {
      cache.write_row(block, op.layer, h, 0, p % bt, k + (r * KVH + h) * D);
      cache.write_row(block, op.layer, h, 1, p % bt, v + (r * KVH + h) * D);
    }
  }

  // Tasks: a blocked (chunk, kv head) for long chunks, else one (row, kv head) per query row.
  struct Task {
    int64_t chunk = -1, row = 0, head = 0;  // kv head; chunk >= 0: blocked over the chunk's rows
  };
  std::vector<Task> tasks;
  for (size_t i = 0; i < step.chunks.size(); ++i) {
    const StepChunk& c = step.chunks[i];
    const int64_t keys = c.start + c.rows - first_key(op, c.start);
    if (c.rows >= kBlockedRows && c.rows * keys <= kMaxBlockedScores) {
      for (int64_t h = 0; h < KVH; ++h) tasks.push_back({static_cast<int64_t>(i), 0, h});
    } else {
      for (int64_t r = c.first_row; r < c.first_row + c.rows; ++r)
        for (int64_t h = 0; h < KVH; ++h) tasks.push_back({-1, r, h});
    }
  }
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores, gathered;
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tasks.size(); ++t) {
      const Task& task = tasks[t];
      if (task.chunk >= 0) {
        const StepChunk& c = step.chunks[static_cast<size_t>(task.chunk)];
        if (!attend_chunk_blocked(op, q, c, step.block_table.data() + c.first_block, task.head, cache, out))
          failed = true;
      } else {
        const size_t r = static_cast<size_t>(task.row);
        const StepChunk& c = step.chunks[static_cast<size_t>(step.row_chunk[r])];
        attend_row_group(op, q + task.row * H * D, step.block_table.data() + c.first_block, step.positions[r], task.head,
                         cache, scores, gathered, out + task.row * H * D);
      }
    }
  }
  if (failed) fail("attention: oneDNN sgemm failed");
}

}  // namespace sparq::cpu

#pragma GCC diagnostic pop
