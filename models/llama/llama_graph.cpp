// Llama 3.x: plain RMSNorm (w · x̂), RoPE with optional llama3 frequency scaling, causal GQA,
// SwiGLU, separate (or tied) lm_head.
#include <cmath>

#include "models/decoder_graph_builder.h"
#include "models/model_builder.h"
#include "runtime/core/error.h"

namespace sparq {

Graph build_llama_graph(const ModelFile& file, const ModelConfig& cfg) {
  if (cfg.hidden_act != "silu") fail("llama: hidden activation \"", cfg.hidden_act, "\" is not supported (silu)");
  DecoderGraphBuilder b(file, cfg, NormForm::Plain);
  ValueId h = b.embedding(1.0f);
  const float attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim)));
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = DecoderGraphBuilder::layer_prefix(l);
    ValueId o = b.attention(b.norm(h, p + "input_layernorm"), l, attn_scale, 0.0f, 0);
    h = b.add(h, o, p + "attn_residual");
    ValueId down = b.gated_mlp(b.norm(h, p + "post_attention_layernorm"), p, GateActivation::Silu);
    h = b.add(h, down, p + "mlp_residual");
  }
  return b.finish(b.logits(h));
}

}  // namespace sparq
