// Gemma 2: scaled embeddings, "1 + w" RMSNorms around both attention and MLP, attention logit
// soft-capping, sliding-window attention on even layers, GeGLU (tanh GELU), tied output embedding,
// final logit soft-capping.
#include <cmath>

#include "models/decoder_graph_builder.h"
#include "models/model_builder.h"
#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

// Sliding layers: config "layer_types" when present, otherwise the even ones (HF: not idx % 2).
bool is_sliding_layer(const nlohmann::json& config, int64_t layer) {
  if (config.contains("layer_types") && config["layer_types"].is_array()) {
    const auto& types = config["layer_types"];
    if (static_cast<size_t>(layer) >= types.size()) fail("config.json: layer_types is shorter than num_hidden_layers");
    const auto& t = types[static_cast<size_t>(layer)];
    return t.is_string() && t.get_ref<const std::string&>() == "sliding_attention";
  }
  return layer % 2 == 0;
}

}  // namespace

Graph build_gemma2_graph(const ModelFile& file, const ModelConfig& cfg) {
  if (cfg.hidden_act != "gelu_pytorch_tanh" && cfg.hidden_act != "gelu_tanh")
    fail("gemma2: hidden activation \"", cfg.hidden_act, "\" is not supported (gelu_pytorch_tanh)");
  const nlohmann::json& config = file.metadata().at("config");
  DecoderGraphBuilder b(file, cfg, NormForm::OffsetOne);
  // sqrt(hidden) rounded to the activation dtype (f32 here).
  ValueId h = b.embedding(static_cast<float>(std::sqrt(static_cast<double>(cfg.hidden))));
  const float attn_scale = static_cast<float>(1.0 / std::sqrt(cfg.query_pre_attn_scalar));
  const float softcap = static_cast<float>(cfg.attn_logit_softcapping);
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = DecoderGraphBuilder::layer_prefix(l);
    const int64_t window = is_sliding_layer(config, l) ? cfg.sliding_window : 0;
    ValueId o = b.attention(b.norm(h, p + "input_layernorm"), l, attn_scale, softcap, window);
    h = b.add(h, b.norm(o, p + "post_attention_layernorm"), p + "attn_residual");
    ValueId down = b.gated_mlp(b.norm(h, p + "pre_feedforward_layernorm"), p, GateActivation::GeluTanh);
    h = b.add(h, b.norm(down, p + "post_feedforward_layernorm"), p + "mlp_residual");
  }
  ValueId logits = b.logits(h);
  if (cfg.final_logit_softcapping > 0) logits = b.soft_cap(logits, static_cast<float>(cfg.final_logit_softcapping));
  return b.finish(logits);
}

}  // namespace sparq
