#include "models/decoder_graph_builder.h"

#include "models/model_builder.h"
#include "runtime/graph/rope_frequencies.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

DecoderGraphBuilder::DecoderGraphBuilder(const ModelFile& file, const ModelConfig& cfg, NormForm norm_form)
    : file_(file), cfg_(cfg), norm_form_(norm_form), eps_(static_cast<float>(cfg.rms_norm_eps)),
      inv_freq_(rope_inv_freq(cfg)) {
  g_.kv = {cfg.layers, cfg.kv_heads, cfg.head_dim};
}

ValueId DecoderGraphBuilder::embedding(float scale) {
  ValueId h = g_.add_value(cfg_.hidden, "embed");
  g_.ops.push_back(EmbeddingOp{file_.view("model.embed_tokens.weight"), scale, h});
  return h;
}

ValueId DecoderGraphBuilder::norm(ValueId in, const std::string& name) {
  ValueId out = g_.add_value(cfg_.hidden, name);
  g_.ops.push_back(RmsNormOp{file_.view(name + ".weight"), eps_, norm_form_, in, out});
  return out;
}

ValueId DecoderGraphBuilder::linear(ValueId in, const std::string& module, int64_t in_width, int64_t out_width) {
  ValueId out = g_.add_value(out_width, module);
  g_.ops.push_back(LinearOp{linear_weights(file_, module, in_width, out_width), in, out});
  return out;
}

ValueId DecoderGraphBuilder::add(ValueId a, ValueId b, const std::string& name) {
  ValueId out = g_.add_value(g_.widths[static_cast<size_t>(a)], name);
  g_.ops.push_back(AddOp{a, b, out});
  return out;
}

ValueId DecoderGraphBuilder::attention(ValueId x, int64_t layer, float scale, float softcap, int64_t sliding_window) {
  const int64_t H = cfg_.hidden, Q = cfg_.heads * cfg_.head_dim, KV = cfg_.kv_heads * cfg_.head_dim;
  const std::string p = layer_prefix(layer);
  ValueId q = linear(x, p + "self_attn.q_proj", H, Q);
  ValueId k = linear(x, p + "self_attn.k_proj", H, KV);
  ValueId v = linear(x, p + "self_attn.v_proj", H, KV);
  ValueId qr = g_.add_value(Q, p + "q_rope");
  g_.ops.push_back(RopeOp{cfg_.heads, cfg_.head_dim, inv_freq_, q, qr});
  ValueId kr = g_.add_value(KV, p + "k_rope");
  g_.ops.push_back(RopeOp{cfg_.kv_heads, cfg_.head_dim, inv_freq_, k, kr});
  ValueId att = g_.add_value(Q, p + "attention");
  AttentionOp a;
  a.layer = layer;
  a.heads = cfg_.heads;
  a.kv_heads = cfg_.kv_heads;
  a.head_dim = cfg_.head_dim;
  a.scale = scale;
  a.softcap = softcap;
  a.sliding_window = sliding_window;
  a.q = qr;
  a.k = kr;
  a.v = v;
  a.out = att;
  g_.ops.push_back(a);
  return linear(att, p + "self_attn.o_proj", Q, H);
}

ValueId DecoderGraphBuilder::gated_mlp(ValueId x, const std::string& prefix, GateActivation activation) {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate;
  ValueId gate = linear(x, prefix + "mlp.gate_proj", H, I);
  ValueId up = linear(x, prefix + "mlp.up_proj", H, I);
  ValueId act = g_.add_value(I, prefix + "mlp.act");
  g_.ops.push_back(GatedActivationOp{activation, gate, up, act});
  return linear(act, prefix + "mlp.down_proj", I, H);
}

ValueId DecoderGraphBuilder::logits(ValueId h) {
  ValueId final_norm = norm(h, "model.norm");
  LinearWeights head;
  const auto linears = file_.metadata().find("linears");
  const bool own_head = linears != file_.metadata().end() && linears->is_object() &&
                        linears->contains("lm_head");  // e.g. sparq convert --head int8
  if (cfg_.tie_embeddings && !own_head) {
    LinearScheme unquantized;
    unquantized.weight_dtype = file_.tensor("model.embed_tokens.weight").dtype;
    head = describe_linear(file_, "lm_head", "model.embed_tokens.weight", cfg_.hidden, cfg_.vocab, unquantized);
  } else {
    head = linear_weights(file_, "lm_head", cfg_.hidden, cfg_.vocab);
  }
  ValueId out = g_.add_value(cfg_.vocab, "logits");
  g_.ops.push_back(LogitsOp{head, final_norm, out});
  return out;
}

ValueId DecoderGraphBuilder::soft_cap(ValueId in, float cap) {
  ValueId out = g_.add_value(g_.widths[static_cast<size_t>(in)], "logits_capped");
  g_.ops.push_back(SoftCapOp{cap, in, out});
  return out;
}

Graph DecoderGraphBuilder::finish(ValueId logits) {
  g_.logits = logits;
  return std::move(g_);
}

}  // namespace sparq
