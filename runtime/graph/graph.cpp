#include "runtime/graph/graph.h"


#include "runtime/core/error.h"

namespace sparq {

ValueId Graph::add_value(int64_t width, std::string name) {
  widths.push_back(width);
  names.push_back(std::move(name));
  return static_cast<ValueId>(widths.size() - 1);
}

std::vector<ValueId> op_inputs(const Op& op) {
  struct Visitor {
    std::vector<ValueId> operator()(const EmbeddingOp&) const { return {}; }
    std::vector<ValueId> operator()(const RmsNormOp& o) const { return {o.in}; }
    std::vector<ValueId> operator()(const LinearOp& o) const { return {o.in}; }
    std::vector<ValueId> operator()(const RopeOp& o) const { return {o.in}; }
    std::vector<ValueId> operator()(const AttentionOp& o) const { return {o.q, o.k, o.v}; }
    std::vector<ValueId> operator()(const GatedActivationOp& o) const { return {o.gate, o.up}; }
    std::vector<ValueId> operator()(const AddOp& o) const { return {o.a, o.b}; }
    std::vector<ValueId> operator()(const SoftCapOp& o) const { return {o.in}; }
    std::vector<ValueId> operator()(const LogitsOp& o) const { return {o.in}; }
  };
  return std::visit(Visitor{}, op);
}

ValueId op_output(const Op& op) {
  return std::visit([](const auto& o) { return o.out; }, op);
}

const char* op_name(const Op& op) {
  struct Visitor {
    const char* operator()(const EmbeddingOp&) const { return "embedding"; }
    const char* operator()(const RmsNormOp&) const { return "rms_norm"; }
    const char* operator()(const LinearOp&) const { return "linear"; }
    const char* operator()(const RopeOp&) const { return "rope"; }
    const char* operator()(const AttentionOp&) const { return "attention"; }
    const char* operator()(const GatedActivationOp&) const { return "gated_activation"; }
    const char* operator()(const AddOp&) const { return "add"; }
    const char* operator()(const SoftCapOp&) const { return "soft_cap"; }
    const char* operator()(const LogitsOp&) const { return "logits"; }
  };
  return std::visit(Visitor{}, op);
}

namespace {

// Width the op's output must have given its inputs' widths; -1 when it is free (set by the op).
void check_widths(const Graph& g, const Op& op, size_t index) {
  auto w = [&](ValueId v) { return g.widths[static_cast<size_t>(v)]; };
  auto expect = [&](bool ok, const char* what) {
    if (!ok) fail("graph op ", index, " (", op_name(op), "): ", what);
  };
  struct Checker {
    decltype(w)& width;
    decltype(expect)& ok;
    void operator()(const EmbeddingOp&) const {}
    void operator()(const RmsNormOp& o) const { ok(width(o.in) == width(o.out), "input and output widths differ"); }
    void operator()(const LinearOp& o) const {
      ok(width(o.in) == o.linear.in && width(o.out) == o.linear.out, "widths do not match the Linear's [out, in]");
    }
    void operator()(const RopeOp& o) const {
      ok(width(o.in) == o.heads * o.head_dim && width(o.out) == width(o.in), "width is not heads x head_dim");
      ok(o.head_dim % 2 == 0 && static_cast<int64_t>(o.inv_freq.size()) == o.head_dim / 2,
         "needs head_dim/2 frequencies");
    }
    void operator()(const AttentionOp& o) const {
      ok(o.kv_heads > 0 && o.heads % o.kv_heads == 0, "heads must be a multiple of kv_heads");
      ok(width(o.q) == o.heads * o.head_dim && width(o.out) == width(o.q), "q width is not heads x head_dim");
      ok(width(o.k) == o.kv_heads * o.head_dim && width(o.v) == width(o.k), "k/v width is not kv_heads x head_dim");
    }
    void operator()(const GatedActivationOp& o) const {
      ok(width(o.gate) == width(o.up) && width(o.out) == width(o.up), "gate and up widths differ");
    }
    void operator()(const AddOp& o) const { ok(width(o.a) == width(o.b) && width(o.out) == width(o.a), "widths differ"); }
    void operator()(const SoftCapOp& o) const {
      ok(o.cap > 0 && width(o.in) == width(o.out), "needs a positive cap and equal widths");
    }
    void operator()(const LogitsOp& o) const {
      ok(width(o.in) == o.linear.in && width(o.out) == o.linear.out, "widths do not match the Linear's [out, in]");
    }
  };
  std::visit(Checker{w, expect}, op);
}

}  // namespace

void Graph::finish() {
  const size_t n = widths.size();
  std::vector<bool> written(n, false);
  last_use.assign(n, -1);
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    for (ValueId v : op_inputs(op)) {
      if (v < 0 || static_cast<size_t>(v) >= n || !written[static_cast<size_t>(v)])
        fail("graph op ", i, " (", op_name(op), ") reads value ", v, " before it is written");
      last_use[static_cast<size_t>(v)] = static_cast<int32_t>(i);
    }
    const ValueId out = op_output(op);
    if (out < 0 || static_cast<size_t>(out) >= n) fail("graph op ", i, " (", op_name(op), ") writes no valid value");
    if (written[static_cast<size_t>(out)]) fail("graph op ", i, " (", op_name(op), ") rewrites value ", out);
    written[static_cast<size_t>(out)] = true;
    last_use[static_cast<size_t>(out)] = static_cast<int32_t>(i);
    check_widths(*this, op, i);
  }
  if (logits < 0 || static_cast<size_t>(logits) >= n || !written[static_cast<size_t>(logits)])
    fail("the graph has no logits output");
  last_use[static_cast<size_t>(logits)] = static_cast<int32_t>(ops.size());  // lives until the end
}

}  // namespace sparq
