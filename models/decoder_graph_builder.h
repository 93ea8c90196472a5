// The steps every decoder-only builder shares: RMSNorms, linears, residual adds, the attention
// block (q/k/v, RoPE, attention, o_proj), the gated MLP and the output head. Architectures differ
// in which norms surround the blocks and in the attention extras they pass.
#pragma once
#include <string>
#include <vector>

#include "runtime/graph/graph.h"
#include "runtime/model_file/architecture.h"

namespace sparq {

class ModelFile;

class DecoderGraphBuilder {
 public:
  DecoderGraphBuilder(const ModelFile& file, const ModelConfig& cfg, NormForm norm_form);

  // Embedding lookup times `scale` (Gemma's sqrt(hidden), 1 for Llama).
  ValueId embedding(float scale);
  // RMSNorm with weight `<name>.weight`; the output value is called `name`.
  ValueId norm(ValueId in, const std::string& name);
  ValueId linear(ValueId in, const std::string& module, int64_t in_width, int64_t out_width);
  ValueId add(ValueId a, ValueId b, const std::string& name);
  // Self-attention of one layer up to and including o_proj.
  ValueId attention(ValueId x, int64_t layer, float scale, float softcap, int64_t sliding_window);
  // down(act(gate(x)) * up(x)).
  ValueId gated_mlp(ValueId x, const std::string& prefix, GateActivation activation);
  // Final norm and the output projection (the embeddings when tied).
  ValueId logits(ValueId h);
  // cap * tanh(x / cap) (Gemma 2's final logit soft-capping).
  ValueId soft_cap(ValueId in, float cap);
  Graph finish(ValueId logits);

  static std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

 private:
  const ModelFile& file_;
  const ModelConfig& cfg_;
  NormForm norm_form_;
  float eps_;
  std::vector<float> inv_freq_;
  Graph g_;
};

}  // namespace sparq
