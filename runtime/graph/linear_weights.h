// Everything a backend needs to run one Linear, described once from the model file: the weight
// and its quantization tensors as views, the layout, and the strategies as enums. Backends choose
// a kernel from this and never look a tensor up by name or parse a scheme string.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/model_file/linear_scheme.h"
#include "runtime/model_file/tensor_view.h"

namespace sparq {

class ModelFile;

enum class WeightStrategy : uint8_t {
  None,     // unquantized BF16/F16/F32
  Tensor,   // one scale
  Channel,  // one scale per output row
  Group,    // one scale per row and group of group_size input columns (or g_idx)
};

enum class InputStrategy : uint8_t { Token, Tensor };

// How the Linear's input activations are quantized at run time (vLLM semantics).
struct InputQuantization {
  bool is_float = false;  // FP8 E4M3 when true, INT8 otherwise
  int bits = 8;
  InputStrategy strategy = InputStrategy::Token;
  bool dynamic = true;    // scales from the current activations; static ones are input_scale
  bool symmetric = true;  // asymmetric static inputs carry input_zero_point
};

struct LinearWeights {
  std::string module;  // "model.layers.0.self_attn.q_proj", for messages and profiles
  int64_t in = 0, out = 0;
  TensorView weight;  // [out, in]: row-major, or Layout::Sparse24 (kept values, then positions)
  WeightStrategy strategy = WeightStrategy::None;
  int64_t group_size = 0;  // Group only
  TensorView scale;        // weight_scale: [1], [out] or [out, groups]; absent when unquantized
  TensorView zero_point;   // weight_zero_point, I8, shaped like the scale; may be absent
  TensorView g_idx;        // I32 [in]: the group of each input column; may be absent
  TensorView bias;         // [out]; may be absent
  std::optional<InputQuantization> input;
  TensorView input_scale, input_zero_point;  // static inputs only

  bool quantized() const { return strategy != WeightStrategy::None; }
  bool sparse24() const { return weight.layout == Layout::Sparse24; }
  int64_t scale_groups() const { return strategy == WeightStrategy::Group ? (in + group_size - 1) / group_size : 1; }
  std::string scheme_label;  // "w8a8-int8", "2:4+fp8-dynamic", "bf16", ...
};

// The Linear `module` ([out, in], weight tensor `weight_name`) under `scheme`, from the file.
// Throws sparq::Error naming the module when a tensor the scheme needs is missing or misshapen.
LinearWeights describe_linear(const ModelFile& file, const std::string& module, const std::string& weight_name,
                              int64_t in, int64_t out, const LinearScheme& scheme);

}  // namespace sparq
