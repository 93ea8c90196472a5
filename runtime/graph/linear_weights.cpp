#include "runtime/graph/linear_weights.h"

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

WeightStrategy weight_strategy(const std::string& module, const std::string& s) {
  if (s == "none") return WeightStrategy::None;
  if (s == "tensor") return WeightStrategy::Tensor;
  if (s == "channel") return WeightStrategy::Channel;
  if (s == "group") return WeightStrategy::Group;
  fail(module, ": weight strategy \"", s, "\" is not supported (none, tensor, channel, group)");
}

}  // namespace

LinearWeights describe_linear(const ModelFile& file, const std::string& module, const std::string& weight_name,
                              int64_t in, int64_t out, const LinearScheme& s) {
  LinearWeights w;
  w.module = module;
  w.in = in;
  w.out = out;
  w.scheme_label = linear_scheme_label(s);
  w.weight = file.view(weight_name);
  if (w.weight.shape != std::vector<int64_t>{out, in})
    fail(module, ": weight ", weight_name, " has shape ", shape_string(w.weight.shape), ", expected [", out, ", ", in, "]");
  w.strategy = weight_strategy(module, s.weight_strategy);
  w.group_size = s.group_size;
  if (w.strategy == WeightStrategy::Group && w.group_size <= 0)
    fail(module, ": group quantization needs a positive group size (got ", w.group_size, ")");
  if (w.quantized()) {
    w.scale = file.view(module + ".weight_scale");
    const int64_t want = w.strategy == WeightStrategy::Tensor ? 1 : out * w.scale_groups();
    if (w.scale.elements() != want)
      fail(module, ": weight_scale has ", w.scale.elements(), " values, expected ", want);
    if (s.weight_zero_point) {
      w.zero_point = file.view(module + ".weight_zero_point");
      if (w.zero_point.dtype != DType::I8 || w.zero_point.elements() != want)
        fail(module, ": weight_zero_point must be I8 with ", want, " values, like the scales");
    }
    if (s.g_idx) {
      w.g_idx = file.view(module + ".weight_g_idx");
      if (w.g_idx.dtype != DType::I32 || w.g_idx.elements() != in)
        fail(module, ": weight_g_idx must be I32 with ", in, " entries");
    }
  }
  if (s.bias) {
    w.bias = file.view(module + ".bias");
    if (w.bias.elements() != out) fail(module, ": bias has ", w.bias.elements(), " values, expected ", out);
  }
  if (s.input) {
    const ActivationQuant& a = *s.input;
    InputQuantization q;
    q.is_float = a.is_float;
    q.bits = a.num_bits;
    if (a.strategy == "token") q.strategy = InputStrategy::Token;
    else if (a.strategy == "tensor") q.strategy = InputStrategy::Tensor;
    else fail(module, ": input strategy \"", a.strategy, "\" is not supported (token, tensor)");
    q.dynamic = a.dynamic;
    q.symmetric = a.symmetric;
    w.input = q;
    if (!a.dynamic) {
      w.input_scale = file.view(module + ".input_scale");
      if (w.input_scale.elements() < 1) fail(module, ": input_scale is empty");
      if (!a.symmetric) w.input_zero_point = file.view(module + ".input_zero_point");
    }
  }
  return w;
}

}  // namespace sparq
