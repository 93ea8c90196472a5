// Gemma 2: scaled embeddings, "1 + w" RMSNorms around both attention and MLP, attention logit
// soft-capping, sliding-window attention on even layers, GeGLU (tanh GELU), tied output embedding,
// final logit soft-capping.
#include <cmath>

#include "models/model_builder.h"
#include "runtime/core/error.h"
#include "runtime/graph/rope_frequencies.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

// Sliding layers: config "layer_types" when present, otherwise the even ones (HF: not idx % 2).
bool is_sliding_layer(const nlohmann::json& config, int64_t layer) {
  if (config.contains("layer_types") && config["layer_types"].is_array()) {
    const auto& types = config["layer_types"];
    if (static_cast<size_t>(layer) >= types.size()) fail("config.json: layer_types is shorter than num_hidden_layers");
    return types[static_cast<size_t>(layer)] == "sliding_attention";
  }
  return layer % 2 == 0;
}

}  // namespace

Graph build_gemma2_graph(const ModelFile& file, const ModelConfig& cfg) {
  if (cfg.hidden_act != "gelu_pytorch_tanh" && cfg.hidden_act != "gelu_tanh")
    fail("gemma2: hidden activation \"", cfg.hidden_act, "\" is not supported (gelu_pytorch_tanh)");
  const nlohmann::json& config = file.metadata().at("config");
  Graph g;
  const int64_t H = cfg.hidden, Q = cfg.heads * cfg.head_dim, KV = cfg.kv_heads * cfg.head_dim, I = cfg.intermediate;
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  const std::vector<float> inv_freq = rope_inv_freq(cfg);
  g.kv = {cfg.layers, cfg.kv_heads, cfg.head_dim};

  auto norm = [&](ValueId in, const std::string& weight, const std::string& name) {
    ValueId out = g.add_value(H, name);
    g.ops.push_back(RmsNormOp{weight, eps, NormForm::OffsetOne, in, out});
    return out;
  };
  auto linear = [&](ValueId in, const std::string& module, int64_t in_w, int64_t out_w) {
    ValueId out = g.add_value(out_w, module);
    g.ops.push_back(LinearOp{linear_spec(file, module, in_w, out_w), in, out});
    return out;
  };
  auto add = [&](ValueId a, ValueId b, const std::string& name) {
    ValueId out = g.add_value(g.widths[static_cast<size_t>(a)], name);
    g.ops.push_back(AddOp{a, b, out});
    return out;
  };

  // sqrt(hidden) rounded to the activation dtype (f32 here).
  ValueId h = g.add_value(H, "embed");
  g.ops.push_back(EmbeddingOp{"model.embed_tokens.weight", static_cast<float>(std::sqrt(static_cast<double>(H))), h});

  const float attn_scale = static_cast<float>(1.0 / std::sqrt(cfg.query_pre_attn_scalar));
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ValueId x = norm(h, p + "input_layernorm.weight", p + "input_layernorm");
    ValueId q = linear(x, p + "self_attn.q_proj", H, Q);
    ValueId k = linear(x, p + "self_attn.k_proj", H, KV);
    ValueId v = linear(x, p + "self_attn.v_proj", H, KV);
    ValueId qr = g.add_value(Q, p + "q_rope");
    g.ops.push_back(RopeOp{cfg.heads, cfg.head_dim, inv_freq, q, qr});
    ValueId kr = g.add_value(KV, p + "k_rope");
    g.ops.push_back(RopeOp{cfg.kv_heads, cfg.head_dim, inv_freq, k, kr});
    ValueId att = g.add_value(Q, p + "attention");
    AttentionOp a;
    a.layer = l;
    a.heads = cfg.heads;
    a.kv_heads = cfg.kv_heads;
    a.head_dim = cfg.head_dim;
    a.scale = attn_scale;
    a.softcap = static_cast<float>(cfg.attn_logit_softcapping);
    a.sliding_window = is_sliding_layer(config, l) ? cfg.sliding_window : 0;
    a.q = qr;
    a.k = kr;
    a.v = v;
    a.out = att;
    g.ops.push_back(a);
    ValueId o = linear(att, p + "self_attn.o_proj", Q, H);
    ValueId on = norm(o, p + "post_attention_layernorm.weight", p + "post_attention_layernorm");
    h = add(h, on, p + "attn_residual");

    ValueId m = norm(h, p + "pre_feedforward_layernorm.weight", p + "pre_feedforward_layernorm");
    ValueId gate = linear(m, p + "mlp.gate_proj", H, I);
    ValueId up = linear(m, p + "mlp.up_proj", H, I);
    ValueId act = g.add_value(I, p + "mlp.act");
    g.ops.push_back(GatedActivationOp{GateActivation::GeluTanh, gate, up, act});
    ValueId down = linear(act, p + "mlp.down_proj", I, H);
    ValueId dn = norm(down, p + "post_feedforward_layernorm.weight", p + "post_feedforward_layernorm");
    h = add(h, dn, p + "mlp_residual");
  }
  ValueId final_norm = norm(h, "model.norm.weight", "model.norm");
  LinearSpec head = cfg.tie_embeddings ? LinearSpec{} : linear_spec(file, "lm_head", H, cfg.vocab);
  if (cfg.tie_embeddings) {
    head.module = "lm_head";
    head.weight = "model.embed_tokens.weight";
    head.in = H;
    head.out = cfg.vocab;
    head.scheme.weight_dtype = file.tensor(head.weight).dtype;
  }
  ValueId logits = g.add_value(cfg.vocab, "logits");
  g.ops.push_back(LogitsOp{head, final_norm, logits});
  if (cfg.final_logit_softcapping > 0) {
    ValueId capped = g.add_value(cfg.vocab, "logits_capped");
    g.ops.push_back(SoftCapOp{static_cast<float>(cfg.final_logit_softcapping), logits, capped});
    logits = capped;
  }
  g.logits = logits;
  return g;
}

}  // namespace sparq
