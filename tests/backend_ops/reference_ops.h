// Plain reference implementations of every graph op, in double, written from the op semantics in
// docs/BACKENDS.md and without any backend code: what tests/backend_ops checks each backend against.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/graph/graph.h"

namespace sparq::reference {

// A Linear's weights as logical values: w[o][k] = (q[o][k] - zero[o][g]) * scale[o][g], g the
// group of column k; the input quantization as in the LinearWeights it was encoded into.
struct LogicalLinear {
  int64_t in = 0, out = 0;
  std::vector<double> weight;  // [out, in], dequantized
  std::vector<double> bias;    // [out] or empty
  std::optional<InputQuantization> input;
  double input_scale = 1.0;  // static inputs
  int input_zero_point = 0;
};

// y[t][o] = Σ_k x̂[t][k] w[o][k] (+ b[o]) where x̂ is x fake-quantized as the input scheme says.
// step[t][o] gets the most one activation rounding step can move y[t][o] (a backend may resolve a
// rounding tie, or round a value reached through a different float association, the other way);
// magnitude[t][o] = Σ_k |x̂ w|, the scale of the float summation error.
std::vector<double> linear(const LogicalLinear& l, const std::vector<float>& x, int64_t rows,
                           std::vector<double>& step, std::vector<double>& magnitude);

std::vector<double> rms_norm(const std::vector<float>& x, int64_t rows, int64_t width, const std::vector<float>& w,
                             double eps, NormForm form);
std::vector<double> rope(const std::vector<float>& x, int64_t rows, int64_t heads, int64_t head_dim,
                         const std::vector<float>& inv_freq, const std::vector<int64_t>& positions);
std::vector<double> gated_activation(const std::vector<float>& gate, const std::vector<float>& up, GateActivation act);
std::vector<double> soft_cap(const std::vector<float>& x, double cap);

// One query row of attention: q [heads * head_dim] against keys/values [positions, kv_heads * head_dim]
// of its sequence (positions 0..pos), with the op's scale, soft-cap and sliding window.
std::vector<double> attention_row(const AttentionOp& op, const float* q, const std::vector<const float*>& keys,
                                  const std::vector<const float*>& values, int64_t pos);

}  // namespace sparq::reference
