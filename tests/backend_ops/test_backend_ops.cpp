// Every op x weight scheme x representative shapes, on every backend this build can run, against
// the plain reference implementations in reference_ops.h. Each case is a small graph: embeddings
// (F32 tables: their rows are the op's inputs, exactly) feeding the op under test, whose output is
// the graph's result. Steps mix chunks of several sequences at non-zero positions, with batch rows
// 1, 7 and 64 and odd widths.
//
// Tolerances, per op, from how the backend may legitimately differ from a double-precision
// reference: f32 summation order (relative to Σ|x·w| of the sum), one activation rounding step of
// a quantized input (a tie resolved the other way, or a value reached through a different float
// association), transcendental approximations (1e-5 relative).
#include <catch2/catch.hpp>

#include <cmath>
#include <deque>
#include <random>

#include "convert/weight_codecs.h"
#include "reference_ops.h"
#include "runtime/core/float_formats.h"
#include "runtime/engine/step_builder.h"
#include "runtime/loading/backend_registry.h"

using namespace sparq;

namespace {

constexpr int64_t kVocab = 97;  // embedding rows: token ids pick the op's inputs

// Owns the bytes TensorViews point into, and builds a one-op graph on F32 embedding inputs.
struct OpGraph {
  std::deque<std::vector<uint8_t>> buffers;
  std::deque<std::vector<float>> tables;  // [kVocab, width] each, the inputs' source of truth
  Graph graph;
  std::mt19937 rng{1234};

  TensorView hold(std::vector<uint8_t> bytes, DType dtype, std::vector<int64_t> shape, std::string name,
                  Layout layout = Layout::RowMajor) {
    buffers.push_back(std::move(bytes));
    return {std::move(name), buffers.back().data(), buffers.back().size(), dtype, std::move(shape), layout, false};
  }
  TensorView hold_f32(const std::vector<float>& v, std::vector<int64_t> shape, std::string name) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return hold(std::move(b), DType::F32, std::move(shape), std::move(name));
  }
  std::vector<float> randn(int64_t n, float sd = 1.0f) {
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
  }
  // An input of `width` columns: token id t gives row t of a random table.
  ValueId input(int64_t width, float sd = 1.0f) {
    tables.push_back(randn(kVocab * width, sd));
    const ValueId v = graph.add_value(width, "input" + std::to_string(tables.size()));
    graph.ops.push_back(EmbeddingOp{hold_f32(tables.back(), {kVocab, width}, "table"), 1.0f, v});
    return v;
  }
  // Rows of input `which` for the step's tokens.
  std::vector<float> rows_of(size_t which, const std::vector<int32_t>& tokens, int64_t width) const {
    std::vector<float> x;
    for (int32_t t : tokens)
      x.insert(x.end(), tables[which].begin() + t * width, tables[which].begin() + (t + 1) * width);
    return x;
  }
  void finish(ValueId result) {
    graph.logits = result;
    if (graph.kv.layers == 0) graph.kv = {1, 1, 2};  // ops without attention still get a (tiny) cache
    graph.finish();
  }
};

// One backend this build can run, made fresh for each case.
std::vector<const BackendEntry*> runnable_backends() {
  std::vector<const BackendEntry*> out;
  for (const BackendEntry& e : backend_registry()) {
    std::string none;
    if (e.unavailable().empty() && !e.devices(&none).empty()) out.push_back(&e);
  }
  return out;
}

// Runs the graph over `steps` (each a list of (sequence, tokens)), every row's output returned in
// step order; logits are asked for every row.
struct Ran {
  std::vector<float> out;          // [rows of all steps, width]
  std::vector<int32_t> tokens;     // the ids fed, in the same order
  std::vector<int64_t> positions;  // their positions
  std::vector<int32_t> seqs;       // their sequence (index into the steps' sequence numbers)
  std::vector<int64_t> step_rows;  // rows of each step
};
using StepPlan = std::vector<std::pair<int, std::vector<int32_t>>>;

Ran run_steps(const BackendEntry& entry, const Graph& graph, const std::vector<StepPlan>& steps) {
  auto backend = entry.make({2, 0, true});
  for (const Op& op : graph.ops) {
    const OpSupport s = backend->supports(op);
    INFO(entry.name << " " << op_name(op) << ": " << s.why);
    REQUIRE(s.ok);
  }
  auto prepared = backend->prepare(graph);
  const KvCacheGeometry geo = kv_cache_geometry(graph, 4);
  auto kv = backend->create_kv_storage(geo, geo.block_bytes() * 64);
  BlockAllocator blocks(kv->blocks(), geo.block_tokens);
  std::map<int, SeqId> seq_of;
  Ran r;
  for (const StepPlan& plan : steps) {
    std::vector<SequenceChunk> chunks;
    for (const auto& [seq, tokens] : plan) {
      if (!seq_of.count(seq)) seq_of[seq] = blocks.add_sequence();
      chunks.push_back({seq_of[seq], tokens, LogitRows::All});
      for (size_t i = 0; i < tokens.size(); ++i) {
        r.tokens.push_back(tokens[i]);
        r.positions.push_back(blocks.length(seq_of[seq]) + static_cast<int64_t>(i));
        r.seqs.push_back(seq);
      }
    }
    StepLogits out;
    run_step(*prepared, *kv, blocks, chunks, out);
    r.out.insert(r.out.end(), out.values.begin(), out.values.end());
    r.step_rows.push_back(static_cast<int64_t>(out.values.size()) / out.vocab);
  }
  return r;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int64_t n) {
  std::uniform_int_distribution<int32_t> d(0, kVocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = d(rng);
  return t;
}

// The step shapes every elementwise and linear op runs: batch rows 1, 7 and 64 in one chunk, then
// a step of three sequences at different positions (a decode row among prefill chunks).
std::vector<std::vector<StepPlan>> step_shapes(std::mt19937& rng) {
  return {{{{0, random_tokens(rng, 1)}}},
          {{{0, random_tokens(rng, 7)}}},
          {{{0, random_tokens(rng, 64)}}},
          {{{0, random_tokens(rng, 5)}, {1, random_tokens(rng, 3)}},
           {{0, random_tokens(rng, 1)}, {1, random_tokens(rng, 6)}, {2, random_tokens(rng, 2)}}}};
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& tol,
                 const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= tol[i])) {
      if (!bad) first = i;
      ++bad;
    }
    worst = std::max(worst, err / std::max(tol[i], 1e-30));
  }
  INFO(what << ": " << bad << " of " << got.size() << " values outside tolerance; first at " << first
            << (bad ? " got " + std::to_string(got[first]) + " want " + std::to_string(want[first]) : std::string())
            << "; worst error / tolerance " << worst);
  CHECK(bad == 0);
}

// --- Linear schemes --------------------------------------------------------------------------

struct LinearCase {
  std::string name;
  LinearWeights weights;
  reference::LogicalLinear logical;
};

enum class Q { Bf16, F16Bias, F32, W8A8, W8A8TensorInput, W8Static, Fp8Dynamic, Fp8Static, Sparse24Fp8, Sparse24Int8,
               W4Group, W4GroupZero, W4GroupZeroGidx, W8A16 };

LinearCase make_linear(OpGraph& g, Q q, int64_t in, int64_t out) {
  LinearCase c;
  LinearWeights& w = c.weights;
  reference::LogicalLinear& l = c.logical;
  w.module = "test.linear";
  w.in = l.in = in;
  w.out = l.out = out;
  l.weight.resize(static_cast<size_t>(in * out));
  std::uniform_real_distribution<float> u(0.002f, 0.02f);
  std::uniform_int_distribution<int> i8(-127, 127), i4(-8, 7), coin(0, 3);
  auto dense_float = [&](DType dt, const char* name) {
    const auto v = g.randn(in * out, 0.05f);
    std::vector<uint8_t> b(v.size() * (dt == DType::F32 ? 4 : 2));
    for (size_t i = 0; i < v.size(); ++i) {
      float f = v[i];
      if (dt == DType::F32) {
        std::memcpy(b.data() + 4 * i, &f, 4);
      } else {
        const uint16_t h = dt == DType::BF16 ? f32_to_bf16(f) : f32_to_f16(f);
        std::memcpy(b.data() + 2 * i, &h, 2);
        f = dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      l.weight[i] = f;
    }
    w.weight = g.hold(std::move(b), dt, {out, in}, name);
    c.name = name;
  };
  // Per-row (or per-tensor) scales, F32 or BF16 (logical value: what the file holds).
  auto scales = [&](int64_t n, DType dt) {
    std::vector<float> s(static_cast<size_t>(n));
    std::vector<uint8_t> b(static_cast<size_t>(n) * (dt == DType::F32 ? 4 : 2));
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = u(g.rng);
      if (dt == DType::BF16) {
        const uint16_t h = f32_to_bf16(s[i]);
        s[i] = bf16_to_f32(h);
        std::memcpy(b.data() + 2 * i, &h, 2);
      } else {
        std::memcpy(b.data() + 4 * i, &s[i], 4);
      }
    }
    return std::make_pair(s, b);
  };
  // 8-bit quantized values q[o][k] (2:4 sparse: two kept per group of four), dense.
  auto quantized8 = [&](bool fp8, bool sparse) {
    std::vector<uint8_t> dense(static_cast<size_t>(in * out));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) {
        uint8_t b;
        do b = fp8 ? static_cast<uint8_t>(g.rng() & 0xff) : static_cast<uint8_t>(static_cast<int8_t>(i8(g.rng)));
        while ((fp8 && ((b & 0x7f) == 0x7f || (b & 0x7f) > 0x60)) || b == 0 || b == 0x80);  // finite, |v| <= 64, non-zero
        dense[static_cast<size_t>(o * in + k)] = b;
      }
    if (sparse)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t grp = 0; grp < in / 4; ++grp) {
          const int keep_a = coin(g.rng), keep_b = (keep_a + 1 + coin(g.rng) % 3) % 4;
          for (int j = 0; j < 4; ++j)
            if (j != keep_a && j != keep_b) dense[static_cast<size_t>(o * in + 4 * grp + j)] = 0;
        }
    return dense;
  };
  auto set_input = [&](bool is_float, InputStrategy strategy, bool dynamic, bool symmetric) {
    InputQuantization iq;
    iq.is_float = is_float;
    iq.strategy = strategy;
    iq.dynamic = dynamic;
    iq.symmetric = symmetric;
    w.input = l.input = iq;
  };
  auto channel_q8 = [&](bool fp8, bool sparse, const std::string& name, WeightStrategy strategy = WeightStrategy::Channel) {
    const auto dense = quantized8(fp8, sparse);
    const int64_t ns = strategy == WeightStrategy::Tensor ? 1 : out;
    auto [s, sb] = scales(ns, DType::BF16);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) {
        const uint8_t b = dense[static_cast<size_t>(o * in + k)];
        const double v = fp8 ? fp8_e4m3_to_f32(b) : static_cast<double>(static_cast<int8_t>(b));
        l.weight[static_cast<size_t>(o * in + k)] = v * s[static_cast<size_t>(ns == 1 ? 0 : o)];
      }
    const DType dt = fp8 ? DType::F8_E4M3 : DType::I8;
    if (sparse) {
      const uint64_t vbytes = sparse24_values_bytes(out, in, 1), prow = sparse24_positions_row_bytes(in);
      std::vector<uint8_t> b(vbytes + prow * static_cast<uint64_t>(out));
      for (int64_t o = 0; o < out; ++o) {
        int64_t bad = -1;
        REQUIRE(sparse24_encode_row(dense.data() + o * in, in, fp8, b.data() + o * (in / 2), b.data() + vbytes + o * prow, &bad));
      }
      w.weight = g.hold(std::move(b), dt, {out, in}, name, Layout::Sparse24);
    } else {
      w.weight = g.hold(dense, dt, {out, in}, name);
    }
    w.strategy = strategy;
    w.scale = g.hold(std::move(sb), DType::BF16, {ns}, "scale");
    c.name = name;
  };
  auto group_q4 = [&](int64_t group, bool zero, bool act_order, const std::string& name) {
    const int64_t groups = (in + group - 1) / group;
    auto [s, sb] = scales(out * groups, DType::F32);
    std::vector<int8_t> zp(static_cast<size_t>(out * groups), 0);
    std::vector<int32_t> gidx(static_cast<size_t>(in));
    for (int64_t k = 0; k < in; ++k) gidx[static_cast<size_t>(k)] = static_cast<int32_t>(k / group);
    if (zero)
      for (auto& z : zp) z = static_cast<int8_t>(coin(g.rng) - 1);
    if (act_order) std::shuffle(gidx.begin(), gidx.end(), g.rng);  // columns in any group
    const int64_t row_bytes = (in + 1) / 2;
    std::vector<uint8_t> packed(static_cast<size_t>(row_bytes * out));
    std::vector<int8_t> row(static_cast<size_t>(in));
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t k = 0; k < in; ++k) {
        row[static_cast<size_t>(k)] = static_cast<int8_t>(i4(g.rng));
        const size_t gi = static_cast<size_t>(o * groups + gidx[static_cast<size_t>(k)]);
        l.weight[static_cast<size_t>(o * in + k)] = (row[static_cast<size_t>(k)] - zp[gi]) * static_cast<double>(s[gi]);
      }
      pack_i4_row(row.data(), in, packed.data() + o * row_bytes);
    }
    w.weight = g.hold(std::move(packed), DType::I4, {out, in}, name);
    w.strategy = WeightStrategy::Group;
    w.group_size = group;
    w.scale = g.hold(std::move(sb), DType::F32, {out, groups}, "scale");
    if (zero)
      w.zero_point = g.hold(std::vector<uint8_t>(reinterpret_cast<uint8_t*>(zp.data()), reinterpret_cast<uint8_t*>(zp.data()) + zp.size()),
                            DType::I8, {out, groups}, "zero_point");
    if (act_order) {
      std::vector<uint8_t> gb(gidx.size() * 4);
      std::memcpy(gb.data(), gidx.data(), gb.size());
      w.g_idx = g.hold(std::move(gb), DType::I32, {in}, "g_idx");
    }
    c.name = name;
  };
  switch (q) {
    case Q::Bf16: dense_float(DType::BF16, "bf16"); break;
    case Q::F32: dense_float(DType::F32, "f32"); break;
    case Q::F16Bias: {
      dense_float(DType::F16, "f16+bias");
      const auto b = g.randn(out, 0.1f);
      l.bias.assign(b.begin(), b.end());
      w.bias = g.hold_f32(b, {out}, "bias");
      break;
    }
    case Q::W8A8: channel_q8(false, false, "w8a8-int8"); set_input(false, InputStrategy::Token, true, true); break;
    case Q::W8A8TensorInput:
      channel_q8(false, false, "w8a8-int8 per-tensor input", WeightStrategy::Tensor);
      set_input(false, InputStrategy::Tensor, true, true);
      break;
    case Q::W8Static: {
      channel_q8(false, false, "w8a8-int8 static asymmetric input");
      set_input(false, InputStrategy::Tensor, false, false);
      l.input_scale = 0.03;
      l.input_zero_point = 3;
      w.input_scale = g.hold_f32({0.03f}, {1}, "input_scale");
      w.input_zero_point = g.hold({3}, DType::I8, {1}, "input_zero_point");
      break;
    }
    case Q::Fp8Dynamic: channel_q8(true, false, "fp8-dynamic"); set_input(true, InputStrategy::Token, true, true); break;
    case Q::Fp8Static:
      channel_q8(true, false, "fp8 static input", WeightStrategy::Tensor);
      set_input(true, InputStrategy::Tensor, false, true);
      l.input_scale = 0.02;
      w.input_scale = g.hold_f32({0.02f}, {1}, "input_scale");
      break;
    case Q::Sparse24Fp8: channel_q8(true, true, "2:4+fp8-dynamic"); set_input(true, InputStrategy::Token, true, true); break;
    case Q::Sparse24Int8: channel_q8(false, true, "2:4+w8a8-int8"); set_input(false, InputStrategy::Token, true, true); break;
    case Q::W4Group: group_q4(32, false, false, "w4a16-g32"); break;
    case Q::W4GroupZero: group_q4(32, true, false, "w4a16-g32 zero points"); break;
    case Q::W4GroupZeroGidx: group_q4(16, true, true, "w4a16-g16 zero points, g_idx"); break;
    case Q::W8A16: channel_q8(false, false, "w8a16-int8"); break;
  }
  w.scheme_label = c.name;
  return c;
}

}  // namespace

TEST_CASE("backend ops: Linear in every weight scheme", "[backend_ops]") {
  const auto backends = runnable_backends();
  REQUIRE(!backends.empty());
  for (const BackendEntry* backend : backends)
    for (Q q : {Q::Bf16, Q::F16Bias, Q::F32, Q::W8A8, Q::W8A8TensorInput, Q::W8Static, Q::Fp8Dynamic, Q::Fp8Static,
                Q::Sparse24Fp8, Q::Sparse24Int8, Q::W4Group, Q::W4GroupZero, Q::W4GroupZeroGidx, Q::W8A16}) {
      const bool sparse = q == Q::Sparse24Fp8 || q == Q::Sparse24Int8;
      // Odd widths where the layout allows (2:4 needs whole groups of four), and widths in whole
      // vectors whose last weight group is short (vector kernels must stop at the row's end).
      for (const auto& [in, out] : {std::pair<int64_t, int64_t>{sparse ? 68 : 45, 37}, {sparse ? 132 : 131, 65}, {80, 19}, {112, 33}}) {
        OpGraph g;
        const ValueId x = g.input(in);
        LinearCase c = make_linear(g, q, in, out);
        const ValueId y = g.graph.add_value(out, "y");
        g.graph.ops.push_back(LinearOp{c.weights, x, y});
        g.finish(y);
        for (const auto& steps : step_shapes(g.rng)) {
          const Ran r = run_steps(*backend, g.graph, steps);
          // Step by step: a per-tensor dynamic input scale is taken over one step's rows (as in vLLM).
          const std::vector<float> x = g.rows_of(0, r.tokens, in);
          std::vector<double> want, tol;
          int64_t first = 0;
          for (int64_t n : r.step_rows) {
            std::vector<double> step, magnitude;
            const std::vector<float> xs(x.begin() + first * in, x.begin() + (first + n) * in);
            const auto y = reference::linear(c.logical, xs, n, step, magnitude);
            want.insert(want.end(), y.begin(), y.end());
            for (size_t i = 0; i < y.size(); ++i) tol.push_back(2e-5 * magnitude[i] + 1.01 * step[i] + 1e-6);
            first += n;
          }
          check_close(r.out, want, tol,
                      backend->name + " linear " + c.name + " [" + std::to_string(out) + " x " + std::to_string(in) + "], " +
                          std::to_string(r.tokens.size()) + " rows");
        }
      }
    }
}

TEST_CASE("backend ops: norms, rope, activations, residual add, soft cap", "[backend_ops]") {
  for (const BackendEntry* backend : runnable_backends()) {
    for (NormForm form : {NormForm::Plain, NormForm::OffsetOne}) {
      OpGraph g;
      const int64_t width = 45;
      const ValueId x = g.input(width, 3.0f);
      const auto w = g.randn(width, 0.5f);
      const ValueId y = g.graph.add_value(width, "y");
      g.graph.ops.push_back(RmsNormOp{g.hold_f32(w, {width}, "norm"), 1e-6f, form, x, y});
      g.finish(y);
      for (const auto& steps : step_shapes(g.rng)) {
        const Ran r = run_steps(*backend, g.graph, steps);
        const auto want = reference::rms_norm(g.rows_of(0, r.tokens, width), static_cast<int64_t>(r.tokens.size()), width, w, 1e-6,
                                              form);
        std::vector<double> tol(want.size());
        for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * std::fabs(want[i]) + 1e-6;
        check_close(r.out, want, tol, backend->name + " rms_norm");
      }
    }
    {
      OpGraph g;
      const int64_t heads = 3, head_dim = 10;
      const ValueId x = g.input(heads * head_dim);
      std::vector<float> inv_freq(head_dim / 2);
      for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * static_cast<float>(i) / head_dim);
      const ValueId y = g.graph.add_value(heads * head_dim, "y");
      g.graph.ops.push_back(RopeOp{heads, head_dim, inv_freq, x, y});
      g.finish(y);
      for (const auto& steps : step_shapes(g.rng)) {
        const Ran r = run_steps(*backend, g.graph, steps);
        const auto want =
            reference::rope(g.rows_of(0, r.tokens, heads * head_dim), static_cast<int64_t>(r.tokens.size()), heads, head_dim, inv_freq,
                            r.positions);
        std::vector<double> tol(want.size());
        for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * (std::fabs(want[i]) + 1.0);
        check_close(r.out, want, tol, backend->name + " rope");
      }
    }
    for (GateActivation act : {GateActivation::Silu, GateActivation::GeluTanh}) {
      OpGraph g;
      const int64_t width = 37;
      const ValueId gate = g.input(width, 2.0f), up = g.input(width);
      const ValueId y = g.graph.add_value(width, "y");
      g.graph.ops.push_back(GatedActivationOp{act, gate, up, y});
      g.finish(y);
      for (const auto& steps : step_shapes(g.rng)) {
        const Ran r = run_steps(*backend, g.graph, steps);
        const auto want = reference::gated_activation(g.rows_of(0, r.tokens, width), g.rows_of(1, r.tokens, width), act);
        std::vector<double> tol(want.size());
        for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * std::fabs(want[i]) + 1e-6;
        check_close(r.out, want, tol, backend->name + (act == GateActivation::Silu ? " silu" : " gelu_tanh"));
      }
    }
    {
      OpGraph g;
      const int64_t width = 37;
      const ValueId a = g.input(width), b = g.input(width);
      const ValueId sum = g.graph.add_value(width, "sum"), capped = g.graph.add_value(width, "capped");
      g.graph.ops.push_back(AddOp{a, b, sum});
      g.graph.ops.push_back(SoftCapOp{1.5f, sum, capped});
      g.finish(capped);
      for (const auto& steps : step_shapes(g.rng)) {
        const Ran r = run_steps(*backend, g.graph, steps);
        std::vector<float> s = g.rows_of(0, r.tokens, width);
        const auto bb = g.rows_of(1, r.tokens, width);
        for (size_t i = 0; i < s.size(); ++i) s[i] += bb[i];  // exact in f32, as the backend adds
        const auto want = reference::soft_cap(s, 1.5);
        std::vector<double> tol(want.size());
        for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * std::fabs(want[i]) + 1e-6;
        check_close(r.out, want, tol, backend->name + " add + soft_cap");
      }
    }
  }
}

TEST_CASE("backend ops: paged attention over several steps, windows and soft-caps", "[backend_ops]") {
  struct Variant {
    const char* name;
    int64_t window;
    float softcap;
  };
  for (const BackendEntry* backend : runnable_backends())
    for (const Variant v : {Variant{"causal", 0, 0.0f}, Variant{"sliding window 6", 6, 0.0f}, Variant{"soft-cap 5", 0, 5.0f}}) {
      OpGraph g;
      AttentionOp op;
      op.layer = 0;
      op.heads = 4;
      op.kv_heads = 2;
      op.head_dim = 8;
      op.scale = 1.0f / std::sqrt(8.0f);
      op.softcap = v.softcap;
      op.sliding_window = v.window;
      op.q = g.input(op.heads * op.head_dim, 2.0f);
      op.k = g.input(op.kv_heads * op.head_dim, 2.0f);
      op.v = g.input(op.kv_heads * op.head_dim);
      op.out = g.graph.add_value(op.heads * op.head_dim, "attn");
      g.graph.ops.push_back(op);
      g.graph.kv = {1, op.kv_heads, op.head_dim};
      g.finish(op.out);
      // Long prefill chunks (the blocked path), short ones, decode rows, sequences at different
      // positions in one step, positions across several blocks of 4.
      const std::vector<StepPlan> steps = {
          {{0, random_tokens(g.rng, 20)}, {1, random_tokens(g.rng, 5)}},
          {{0, random_tokens(g.rng, 1)}, {1, random_tokens(g.rng, 7)}, {2, random_tokens(g.rng, 17)}},
          {{0, random_tokens(g.rng, 1)}, {1, random_tokens(g.rng, 1)}, {2, random_tokens(g.rng, 1)}},
          {{1, random_tokens(g.rng, 64)}}};
      const Ran r = run_steps(*backend, g.graph, steps);
      // The reference keeps each sequence's keys and values by position.
      const int64_t qw = op.heads * op.head_dim, kw = op.kv_heads * op.head_dim;
      std::map<int, std::vector<const float*>> keys, values;
      std::vector<double> want;
      for (size_t row = 0; row < r.tokens.size(); ++row) {
        const int32_t t = r.tokens[row];
        keys[r.seqs[row]].push_back(g.tables[1].data() + t * kw);
        values[r.seqs[row]].push_back(g.tables[2].data() + t * kw);
      }
      std::map<int, int64_t> seen;
      for (size_t row = 0; row < r.tokens.size(); ++row) {
        const int seq = r.seqs[row];
        const int64_t pos = seen[seq]++;
        REQUIRE(pos == r.positions[row]);
        const auto o = reference::attention_row(op, g.tables[0].data() + r.tokens[row] * qw, keys[seq], values[seq], pos);
        want.insert(want.end(), o.begin(), o.end());
      }
      std::vector<double> tol(want.size());
      for (size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-5 * std::fabs(want[i]) + 2e-6;
      check_close(r.out, want, tol, backend->name + " attention " + v.name);
    }
}

TEST_CASE("backend ops: logits only for the rows asked, none at all for an intermediate chunk", "[backend_ops]") {
  for (const BackendEntry* backend : runnable_backends()) {
    OpGraph g;
    const int64_t in = 45, vocab = 53;
    const ValueId x = g.input(in);
    LinearCase head = make_linear(g, Q::Bf16, in, vocab);
    const ValueId y = g.graph.add_value(vocab, "logits");
    g.graph.ops.push_back(LogitsOp{head.weights, x, y});
    g.finish(y);
    auto be = backend->make({2, 0, true});
    auto prepared = be->prepare(g.graph);
    const KvCacheGeometry geo = kv_cache_geometry(g.graph, 4);
    auto kv = be->create_kv_storage(geo, geo.block_bytes() * 16);
    BlockAllocator blocks(kv->blocks(), 4);
    const SeqId a = blocks.add_sequence(), b = blocks.add_sequence(), c = blocks.add_sequence();
    const auto ta = random_tokens(g.rng, 7), tb = random_tokens(g.rng, 3), tc = random_tokens(g.rng, 4);
    StepLogits out;
    const std::vector<SequenceChunk> chunks{{a, ta, LogitRows::Last}, {b, tb, LogitRows::None}, {c, tc, LogitRows::All}};
    const Step step = build_step(chunks, blocks);
    prepared->run(step, *kv, out);
    REQUIRE(out.vocab == vocab);
    REQUIRE(out.values.size() == static_cast<size_t>(5 * vocab));  // a's last + c's four
    std::vector<int32_t> picked{ta.back()};
    picked.insert(picked.end(), tc.begin(), tc.end());
    std::vector<double> s, m;
    const auto want = reference::linear(head.logical, g.rows_of(0, picked, in), 5, s, m);
    std::vector<double> tol(want.size());
    for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2e-5 * m[i] + 1e-6;
    check_close(out.values, want, tol, backend->name + " logits rows");
    commit_step(step, blocks);
    // A step where no chunk wants logits gives none.
    const std::vector<SequenceChunk> none{{a, tb, LogitRows::None}};
    run_step(*prepared, *kv, blocks, none, out);
    CHECK(out.values.empty());
  }
}
