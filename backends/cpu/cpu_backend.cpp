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
#include "backends/cpu/host_kv_storage.h"
#include "runtime/core/error.h"

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
    // None large enough: grow the largest free one instead of keeping it, so the pool holds at
    // most as many buffers as a step has live values, whatever step sizes come and go.
    if (best == free_.end() && !free_.empty())
      best = std::max_element(free_.begin(), free_.end(), [](const auto& a, const auto& c) { return a.capacity() < c.capacity(); });
    std::vector<float> b;
    if (best != free_.end()) {
      b = std::move(*best);
      free_.erase(best);
    }
    if (b.capacity() < n) b = std::vector<float>();  // free the small buffer before allocating the large one
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

bool float_dtype(DType t) { return t == DType::BF16 || t == DType::F16 || t == DType::F32; }

// Why the CPU cannot read this embedding table or norm weight; empty when it can.
std::string table_problem(const TensorView& t) {
  if (t.shape.size() != 2 || t.layout != Layout::RowMajor || !float_dtype(t.dtype))
    return "embedding table " + t.name + " must be a row-major BF16/F16/F32 matrix";
  return {};
}
std::string norm_problem(const TensorView& t, int64_t width) {
  if (t.shape != std::vector<int64_t>{width}) return "norm weight " + t.name + " must have shape [" + std::to_string(width) + "]";
  if (!float_dtype(t.dtype)) return "norm weight " + t.name + " must be BF16, F16 or F32";
  return {};
}

EmbeddingTable embedding_table(const TensorView& t) {
  if (const std::string why = table_problem(t); !why.empty()) fail(why);
  return {t.data, t.dtype, t.shape[0], t.shape[1]};
}

std::vector<float> norm_weight(const TensorView& t, int64_t width) {
  if (const std::string why = norm_problem(t, width); !why.empty()) fail(why);
  std::vector<float> f(static_cast<size_t>(width));  // f32 copy: a few KB per norm
  cpu::to_f32(t.data, t.dtype, width, f.data());
  return f;
}

// A graph with its weights ready on the CPU. Ops are dispatched by std::visit over an overload for
// every op type, so adding an op to the graph without a CPU kernel does not compile.
class CpuPreparedModel final : public PreparedModel {
 public:
  CpuPreparedModel(const Graph& graph, const CpuBackendOptions& opts, int threads)
      : graph_(graph), threads_(threads), fault_attention_(opts.fault == "attention") {
    linears_.resize(graph.ops.size());
    norms_.assign(graph.ops.size(), {});
    tables_.assign(graph.ops.size(), {});
    const cpu::CpuLinearOptions lo{threads_, opts.use_onednn};
    for (size_t i = 0; i < graph.ops.size(); ++i) {
      const Op& op = graph.ops[i];
      if (const auto* l = std::get_if<LinearOp>(&op)) linears_[i] = std::make_unique<CpuLinear>(l->linear, lo);
      if (const auto* l = std::get_if<LogitsOp>(&op)) linears_[i] = std::make_unique<CpuLinear>(l->linear, lo);
      if (linears_[i]) repacked_ += linears_[i]->repacked_bytes();
      if (const auto* e = std::get_if<EmbeddingOp>(&op)) tables_[i] = embedding_table(e->table);
      if (const auto* n = std::get_if<RmsNormOp>(&op)) norms_[i] = norm_weight(n->weight, n->weight.elements());
    }
    prefault_weights();
  }

  const Graph& graph() const override { return graph_; }
  uint64_t repacked_weight_bytes() const override { return repacked_; }

  void run(const Step& step, KvStorage& storage, StepLogits& out) override {
    cpu::HostKvStorage& cache = cpu::host_kv_storage(storage);
    const KvCacheGeometry& geo = cache.geometry();
    if (geo.layers != graph_.kv.layers || geo.kv_heads != graph_.kv.kv_heads || geo.head_dim != graph_.kv.head_dim)
      fail("the KV cache's shape does not match the model");
    for (const KvBlockCopy& c : step.block_copies) cache.copy_block(c.src, c.dst);
    StepRun r{*this, step, cache, 0, {}, {}};
    r.vals.resize(graph_.widths.size());
    r.vrows.assign(graph_.widths.size(), step.rows());
    for (size_t i = 0; i < graph_.ops.size(); ++i) {
      const Op& op = graph_.ops[i];
      const auto op_start = profile_.on() ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      r.op = i;
      std::visit(r, op);
      if (profile_.on())
        profile_.add(profile_key(op, step.rows() == 1),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - op_start).count());
      for (ValueId v : op_inputs(op))
        if (graph_.last_use[static_cast<size_t>(v)] == static_cast<int32_t>(i))
          pool_.give(std::move(r.vals[static_cast<size_t>(v)]));
    }
    out.vocab = graph_.widths[static_cast<size_t>(graph_.logits)];
    out.values = std::move(r.vals[static_cast<size_t>(graph_.logits)]);
    out.values.resize(step.logit_rows.size() * static_cast<size_t>(out.vocab));
  }

 private:
  // One step's values, and one overload per op kind.
  struct StepRun {
    CpuPreparedModel& m;
    const Step& step;
    cpu::HostKvStorage& cache;
    size_t op = 0;
    std::vector<std::vector<float>> vals;
    std::vector<int64_t> vrows;

    float* in(ValueId v) { return vals[static_cast<size_t>(v)].data(); }
    int64_t rows(ValueId v) const { return vrows[static_cast<size_t>(v)]; }
    int64_t width(ValueId v) const { return m.graph_.widths[static_cast<size_t>(v)]; }
    float* make(ValueId v, int64_t r) {
      vrows[static_cast<size_t>(v)] = r;
      vals[static_cast<size_t>(v)] = m.pool_.take(static_cast<size_t>(r * width(v)));
      return vals[static_cast<size_t>(v)].data();
    }

    void operator()(const EmbeddingOp& e) {
      const EmbeddingTable& t = m.tables_[op];
      cpu::embedding(t.data, t.dtype, t.vocab, t.width, step.tokens, e.scale, make(e.out, step.rows()));
    }
    void operator()(const RmsNormOp& n) {
      const int64_t r = rows(n.in);
      cpu::rms_norm(in(n.in), r, width(n.in), m.norms_[op].data(), n.eps, n.form, make(n.out, r), m.threads_);
    }
    void operator()(const LinearOp& l) { m.linears_[op]->forward(in(l.in), step.rows(), make(l.out, step.rows())); }
    void operator()(const RopeOp& ro) {
      cpu::rope(in(ro.in), step.rows(), ro.heads, ro.head_dim, ro.inv_freq, step.positions, make(ro.out, step.rows()));
    }
    void operator()(const AttentionOp& a) {
      float* out = make(a.out, step.rows());
      cpu::attention(a, in(a.q), in(a.k), in(a.v), step, cache, out, m.threads_);
      if (m.fault_attention_) {  // test-only: as if a loop bound skipped the last head
        const int64_t w = width(a.out);
        for (int64_t r = 0; r < step.rows(); ++r) std::fill(out + r * w + w - a.head_dim, out + (r + 1) * w, 0.0f);
      }
    }
    void operator()(const GatedActivationOp& g) {
      const int64_t r = rows(g.gate);
      cpu::gated_activation(in(g.gate), in(g.up), r * width(g.gate), g.activation, make(g.out, r), m.threads_);
    }
    void operator()(const AddOp& ad) {
      const int64_t r = rows(ad.a);
      cpu::add(in(ad.a), in(ad.b), r * width(ad.a), make(ad.out, r));
    }
    void operator()(const SoftCapOp& sc) {
      const int64_t r = rows(sc.in);
      cpu::soft_cap(in(sc.in), r * width(sc.in), sc.cap, make(sc.out, r));
    }
    // Only the requested rows go through the (large) output projection; none at all when no chunk
    // wants logits.
    void operator()(const LogitsOp& lg) {
      const int64_t w = width(lg.in), lrows = static_cast<int64_t>(step.logit_rows.size());
      if (lrows == 0) {
        make(lg.out, 0);
        return;
      }
      std::vector<float> picked = m.pool_.take(static_cast<size_t>(lrows * w));
      for (int64_t r = 0; r < lrows; ++r)
        std::memcpy(picked.data() + r * w, in(lg.in) + step.logit_rows[static_cast<size_t>(r)] * w,
                    static_cast<size_t>(w) * sizeof(float));
      m.linears_[op]->forward(picked.data(), lrows, make(lg.out, lrows));
      m.pool_.give(std::move(picked));
    }
  };

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

  const Graph& graph_;
  int threads_ = 1;
  bool fault_attention_ = false;
  mutable uint64_t prefault_sink_ = 0;
  std::vector<std::unique_ptr<CpuLinear>> linears_;
  std::vector<std::vector<float>> norms_;
  std::vector<EmbeddingTable> tables_;
  uint64_t repacked_ = 0;
  BufferPool pool_;
  OpProfile profile_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& opts)
      : opts_(opts), threads_(opts.threads > 0 ? opts.threads : omp_get_max_threads()) {
    if (!opts.fault.empty() && opts.fault != "attention") fail("unknown cpu backend fault \"", opts.fault, "\"");
  }

  std::string name() const override { return "cpu"; }

  // A pure check of the op's description; one overload per op, like the kernels.
  OpSupport supports(const Op& op) const override {
    struct Check {
      std::string operator()(const EmbeddingOp& e) const { return table_problem(e.table); }
      std::string operator()(const RmsNormOp& n) const { return norm_problem(n.weight, n.weight.elements()); }
      std::string operator()(const LinearOp& l) const { return CpuLinear::unsupported(l.linear); }
      std::string operator()(const RopeOp& r) const {
        return r.head_dim % 2 || static_cast<int64_t>(r.inv_freq.size()) != r.head_dim / 2
                   ? "rope needs an even head_dim and head_dim / 2 frequencies"
                   : "";
      }
      std::string operator()(const AttentionOp& a) const {
        return a.kv_heads < 1 || a.heads % a.kv_heads ? "attention needs heads to be a multiple of kv_heads" : "";
      }
      std::string operator()(const GatedActivationOp&) const { return {}; }
      std::string operator()(const AddOp&) const { return {}; }
      std::string operator()(const SoftCapOp& s) const { return s.cap > 0 ? "" : "soft cap must be positive"; }
      std::string operator()(const LogitsOp& l) const { return CpuLinear::unsupported(l.linear); }
    };
    const std::string why = std::visit(Check{}, op);
    return why.empty() ? OpSupport::yes() : OpSupport::no(why);
  }

  std::unique_ptr<PreparedModel> prepare(const Graph& graph) override {
    return std::make_unique<CpuPreparedModel>(graph, opts_, threads_);
  }

  std::unique_ptr<KvStorage> create_kv_storage(const KvCacheGeometry& geometry, uint64_t budget_bytes) override {
    return std::make_unique<cpu::HostKvStorage>(geometry, budget_bytes);
  }

 private:
  CpuBackendOptions opts_;
  int threads_ = 1;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts) { return std::make_unique<CpuBackend>(opts); }

}  // namespace sparq
