#include "backends/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "backends/cpu/cpu_attention.h"
#include "backends/cpu/cpu_linear.h"
#include "backends/cpu/cpu_ops.h"
#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

using cpu::CpuLinear;

// Activation buffers recycled as values die, so a step holds only the live ones.
class BufferPool {
 public:
  std::vector<float> take(size_t n) {
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->capacity() >= n && (best == free_.end() || it->capacity() < best->capacity())) best = it;
    std::vector<float> b;
    if (best != free_.end()) {
      b = std::move(*best);
      free_.erase(best);
    }
    b.resize(n);
    return b;
  }
  void give(std::vector<float>&& b) {
    if (b.capacity()) free_.push_back(std::move(b));
  }

 private:
  std::vector<std::vector<float>> free_;
};

// Wall time per op kind (linears by module suffix), printed when the backend goes away. On when
// SPARQ_PROFILE is set: a quick answer to "where does a step go" without an external profiler.
class OpProfile {
 public:
  OpProfile() : on_(std::getenv("SPARQ_PROFILE") != nullptr) {}
  ~OpProfile() {
    if (!on_ || totals_.empty()) return;
    double all = 0;
    for (const auto& [k, v] : totals_) all += v.seconds;
    std::fprintf(stderr, "%-24s %10s %8s %7s\n", "op", "seconds", "calls", "share");
    for (const auto& [k, v] : totals_)
      std::fprintf(stderr, "%-24s %10.3f %8lld %6.1f%%\n", k.c_str(), v.seconds, static_cast<long long>(v.calls),
                   100.0 * v.seconds / all);
  }
  bool on() const { return on_; }
  void add(const std::string& key, double seconds) {
    Entry& e = totals_[key];
    e.seconds += seconds;
    ++e.calls;
  }

 private:
  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
  };
  bool on_;
  std::map<std::string, Entry> totals_;
};

// "linear q_proj (decode)", "attention (prefill)", ...
std::string profile_key(const Op& op, bool decode) {
  std::string key = op_name(op);
  if (const auto* l = std::get_if<LinearOp>(&op)) {
    const std::string& m = l->linear.module;
    key.append(" ").append(m, m.rfind('.') + 1);
  }
  key.append(decode ? " (decode)" : " (prefill)");
  return key;
}

struct EmbeddingTable {
  const uint8_t* data = nullptr;
  DType dtype = DType::F32;
  int64_t vocab = 0, width = 0;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& opts) : opts_(opts) {
    threads_ = opts.threads > 0 ? opts.threads : omp_get_max_threads();
    omp_set_num_threads(threads_);  // oneDNN sizes its OpenMP team from this
  }

  std::string name() const override { return "cpu"; }

  std::vector<std::string> unsupported(const Graph& graph, const ModelFile& file) const override {
    std::vector<std::string> out;
    for (const Op& op : graph.ops) {
      const LinearSpec* spec = nullptr;
      if (const auto* l = std::get_if<LinearOp>(&op)) spec = &l->linear;
      if (const auto* l = std::get_if<LogitsOp>(&op)) spec = &l->linear;
      try {
        if (spec) CpuLinear(*spec, file, {1, false});
        if (const auto* e = std::get_if<EmbeddingOp>(&op)) table(file, e->table);
      } catch (const Error& e) {
        out.push_back(e.what());
      }
    }
    return out;
  }

  void prepare(const Graph& graph, const ModelFile& file) override {
    linears_.clear();
    linears_.resize(graph.ops.size());
    norms_.assign(graph.ops.size(), {});
    tables_.assign(graph.ops.size(), {});
    repacked_ = 0;
    const cpu::CpuLinearOptions lo{threads_, opts_.use_onednn};
    for (size_t i = 0; i < graph.ops.size(); ++i) {
      const Op& op = graph.ops[i];
      if (const auto* l = std::get_if<LinearOp>(&op)) linears_[i] = std::make_unique<CpuLinear>(l->linear, file, lo);
      if (const auto* l = std::get_if<LogitsOp>(&op)) linears_[i] = std::make_unique<CpuLinear>(l->linear, file, lo);
      if (linears_[i]) repacked_ += linears_[i]->repacked_bytes();
      if (const auto* e = std::get_if<EmbeddingOp>(&op)) tables_[i] = table(file, e->table);
      if (const auto* n = std::get_if<RmsNormOp>(&op)) {
        const TensorEntry& t = file.tensor(n->weight);
        const int64_t w = graph.widths[static_cast<size_t>(n->in)];
        if (t.shape != std::vector<int64_t>{w}) fail("norm weight ", n->weight, " must have shape [", w, "]");
        if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32)
          fail("norm weight ", n->weight, " must be BF16, F16 or F32");
        std::vector<float> f(static_cast<size_t>(w));  // f32 copy: a few KB per norm
        cpu::to_f32(file.data(t).data(), t.dtype, w, f.data());
        norms_[i] = std::move(f);
      }
    }
    prefault_weights();
    prepared_ = &graph;
  }

  uint64_t repacked_weight_bytes() const override { return repacked_; }

  void run(const Graph& graph, const Batch& batch, PagedKvCache& cache, BatchLogits& out) override {
    if (prepared_ != &graph) fail("cpu backend: run() with a graph that was not prepared");
    const KvCacheGeometry& geo = cache.geometry();
    if (geo.layers != graph.kv.layers || geo.kv_heads != graph.kv.kv_heads || geo.head_dim != graph.kv.head_dim)
      fail("the KV cache's shape does not match the model");
    reserve_batch(batch, cache);
    // OpenMP's team size is a per-thread setting: set it on whichever thread runs this step (an
    // engine service steps on its own thread), for our regions and oneDNN's alike.
    omp_set_num_threads(threads_);

    // Rows of this step: every new token of every chunk, in chunk order.
    const int64_t rows = batch.tokens();
    std::vector<int32_t> ids;
    std::vector<SeqId> seqs;
    std::vector<int64_t> positions;
    std::vector<int64_t> logit_rows;
    out.chunk_first.clear();
    for (const SequenceChunk& c : batch.chunks) {
      const int64_t start = cache.length(c.seq), n = static_cast<int64_t>(c.tokens.size());
      const int64_t first_row = static_cast<int64_t>(ids.size());
      out.chunk_first.push_back(static_cast<int64_t>(logit_rows.size()));
      for (int64_t i = 0; i < n; ++i) {
        ids.push_back(c.tokens[static_cast<size_t>(i)]);
        seqs.push_back(c.seq);
        positions.push_back(start + i);
        if (c.logits == LogitRows::All || (c.logits == LogitRows::Last && i == n - 1)) logit_rows.push_back(first_row + i);
      }
    }
    const int64_t lrows = static_cast<int64_t>(logit_rows.size());

    std::vector<std::vector<float>> vals(graph.widths.size());
    std::vector<int64_t> vrows(graph.widths.size(), rows);
    auto in = [&](ValueId v) { return vals[static_cast<size_t>(v)].data(); };
    auto make = [&](ValueId v, int64_t r) {
      vrows[static_cast<size_t>(v)] = r;
      vals[static_cast<size_t>(v)] = pool_.take(static_cast<size_t>(r * graph.widths[static_cast<size_t>(v)]));
      return vals[static_cast<size_t>(v)].data();
    };
    auto width = [&](ValueId v) { return graph.widths[static_cast<size_t>(v)]; };

    for (size_t i = 0; i < graph.ops.size(); ++i) {
      const Op& op = graph.ops[i];
      const auto op_start = profile_.on() ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      if (const auto* e = std::get_if<EmbeddingOp>(&op)) {
        const EmbeddingTable& t = tables_[i];
        cpu::embedding(t.data, t.dtype, t.vocab, t.width, ids, e->scale, make(e->out, rows));
      } else if (const auto* n = std::get_if<RmsNormOp>(&op)) {
        const int64_t r = vrows[static_cast<size_t>(n->in)];
        cpu::rms_norm(in(n->in), r, width(n->in), norms_[i].data(), n->eps, n->form, make(n->out, r), threads_);
      } else if (const auto* l = std::get_if<LinearOp>(&op)) {
        linears_[i]->forward(in(l->in), rows, make(l->out, rows));
      } else if (const auto* ro = std::get_if<RopeOp>(&op)) {
        cpu::rope(in(ro->in), rows, ro->heads, ro->head_dim, ro->inv_freq, positions, make(ro->out, rows));
      } else if (const auto* a = std::get_if<AttentionOp>(&op)) {
        cpu::attention(*a, in(a->q), in(a->k), in(a->v), rows, seqs, positions, cache, make(a->out, rows), threads_);
      } else if (const auto* g = std::get_if<GatedActivationOp>(&op)) {
        const int64_t r = vrows[static_cast<size_t>(g->gate)];
        cpu::gated_activation(in(g->gate), in(g->up), r * width(g->gate), g->activation, make(g->out, r), threads_);
      } else if (const auto* ad = std::get_if<AddOp>(&op)) {
        const int64_t r = vrows[static_cast<size_t>(ad->a)];
        cpu::add(in(ad->a), in(ad->b), r * width(ad->a), make(ad->out, r));
      } else if (const auto* sc = std::get_if<SoftCapOp>(&op)) {
        const int64_t r = vrows[static_cast<size_t>(sc->in)];
        cpu::soft_cap(in(sc->in), r * width(sc->in), sc->cap, make(sc->out, r));
      } else if (const auto* lg = std::get_if<LogitsOp>(&op)) {
        // Only the requested rows go through the (large) output projection; none at all when no
        // chunk wants logits.
        const int64_t w = width(lg->in);
        if (lrows == 0) {
          make(lg->out, 0);
          continue;
        }
        std::vector<float> picked = pool_.take(static_cast<size_t>(lrows * w));
        for (int64_t r = 0; r < lrows; ++r)
          std::memcpy(picked.data() + r * w, in(lg->in) + logit_rows[static_cast<size_t>(r)] * w,
                      static_cast<size_t>(w) * sizeof(float));
        linears_[i]->forward(picked.data(), lrows, make(lg->out, lrows));
        pool_.give(std::move(picked));
      }
      if (profile_.on())
        profile_.add(profile_key(op, rows == 1),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - op_start).count());
      for (ValueId v : op_inputs(op))
        if (graph.last_use[static_cast<size_t>(v)] == static_cast<int32_t>(i)) pool_.give(std::move(vals[static_cast<size_t>(v)]));
    }

    for (const SequenceChunk& c : batch.chunks)
      cache.set_length(c.seq, cache.length(c.seq) + static_cast<int64_t>(c.tokens.size()));
    out.vocab = width(graph.logits);
    out.values = std::move(vals[static_cast<size_t>(graph.logits)]);
    out.values.resize(static_cast<size_t>(lrows * out.vocab));
  }

 private:
  static EmbeddingTable table(const ModelFile& file, const std::string& name) {
    const TensorEntry& t = file.tensor(name);
    if (t.shape.size() != 2 || t.layout != Layout::RowMajor ||
        (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32))
      fail("embedding table ", name, " must be a row-major BF16/F16/F32 matrix");
    return {file.data(t).data(), t.dtype, t.shape[0], t.shape[1]};
  }

  // Maps every weight page the forward pass reads in place now, at load, rather than one page fault
  // at a time during the first step (from the page cache this costs well under a second per GB).
  void prefault_weights() const {
    std::vector<std::span<const uint8_t>> ranges;
    for (const auto& l : linears_)
      if (l && !l->mapped_weight().empty()) ranges.push_back(l->mapped_weight());
    for (const EmbeddingTable& t : tables_)
      if (t.data) ranges.push_back({t.data, static_cast<size_t>(t.vocab * t.width * (t.dtype == DType::F32 ? 4 : 2))});
    // A tied output head reads the embedding table: touch each range once.
    std::sort(ranges.begin(), ranges.end(), [](auto a, auto b) { return a.data() < b.data(); });
    ranges.erase(std::unique(ranges.begin(), ranges.end(), [](auto a, auto b) { return a.data() == b.data(); }),
                 ranges.end());
    uint64_t sink = 0;
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1) reduction(+ : sink)
    for (size_t i = 0; i < ranges.size(); ++i) {
      const volatile uint8_t* p = ranges[i].data();
      for (size_t off = 0; off < ranges[i].size(); off += 4096) sink += p[off];
    }
    prefault_sink_ = sink;
  }

  CpuBackendOptions opts_;
  mutable uint64_t prefault_sink_ = 0;
  int threads_ = 1;
  const Graph* prepared_ = nullptr;
  std::vector<std::unique_ptr<CpuLinear>> linears_;
  std::vector<std::vector<float>> norms_;
  std::vector<EmbeddingTable> tables_;
  uint64_t repacked_ = 0;
  BufferPool pool_;
  OpProfile profile_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts) { return std::make_unique<CpuBackend>(opts); }

}  // namespace sparq
