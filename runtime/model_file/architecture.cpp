#include "runtime/model_file/architecture.h"

#include <algorithm>

#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

using nlohmann::json;

std::string family_name(ArchFamily f) { return f == ArchFamily::Gemma2 ? "gemma2" : "llama"; }

namespace {
int64_t positive(const json& c, const char* key) {
  int64_t v = json_int(c, key, "config.json");
  if (v <= 0 || v > (int64_t{1} << 31)) fail("config.json: \"", key, "\" must be a positive integer, got ", v);
  return v;
}
}  // namespace

ModelConfig parse_model_config(const json& c) {
  if (!c.is_object()) fail("config.json is not a JSON object");
  ModelConfig m;
  const json& archs = json_field(c, "architectures", "config.json");
  if (!archs.is_array() || archs.empty() || !archs[0].is_string())
    fail("config.json: \"architectures\" must be a non-empty list of names");
  m.hf_architecture = archs[0].get<std::string>();
  if (m.hf_architecture == "Gemma2ForCausalLM") {
    m.family = ArchFamily::Gemma2;
  } else if (m.hf_architecture == "LlamaForCausalLM") {
    m.family = ArchFamily::Llama;
  } else {
    fail("architecture ", m.hf_architecture, " is not supported (supported: Gemma2ForCausalLM, LlamaForCausalLM)");
  }
  m.hidden = positive(c, "hidden_size");
  m.intermediate = positive(c, "intermediate_size");
  m.layers = positive(c, "num_hidden_layers");
  m.heads = positive(c, "num_attention_heads");
  m.kv_heads = c.contains("num_key_value_heads") && !c["num_key_value_heads"].is_null() ? positive(c, "num_key_value_heads")
                                                                                        : m.heads;
  if (m.heads % m.kv_heads != 0)
    fail("config.json: num_attention_heads (", m.heads, ") is not a multiple of num_key_value_heads (", m.kv_heads, ")");
  m.head_dim = c.contains("head_dim") && !c["head_dim"].is_null() ? positive(c, "head_dim") : m.hidden / m.heads;
  m.vocab = positive(c, "vocab_size");
  m.max_position = std::max<int64_t>(0, json_int_or(c, "max_position_embeddings", 0, "config.json"));
  m.rms_norm_eps = json_number_or(c, "rms_norm_eps", m.family == ArchFamily::Gemma2 ? 1e-6 : 1e-5, "config.json");
  m.tie_embeddings = json_bool_or(c, "tie_word_embeddings", m.family == ArchFamily::Gemma2, "config.json");
  m.hidden_act = json_string_or(c, "hidden_activation", json_string_or(c, "hidden_act", "", "config.json"), "config.json");

  // transformers >= 5 writes the RoPE settings under "rope_parameters" instead of rope_theta /
  // rope_scaling; both spellings mean the same, and rope_scaling wins where a config has both.
  const json* parameters = c.contains("rope_parameters") && c["rope_parameters"].is_object() ? &c["rope_parameters"] : nullptr;
  const double theta = json_number_or(c, "rope_theta", 10000, "config.json");
  m.rope_theta = parameters ? json_number_or(*parameters, "rope_theta", theta, "config.json") : theta;

  const char* scaling_key = "rope_scaling";
  const json* scaling = nullptr;
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    scaling = &c["rope_scaling"];
  } else if (parameters) {
    scaling = parameters;
    scaling_key = "rope_parameters";
  }
  if (scaling) {
    const json& rs = *scaling;
    std::string type = json_string_or(rs, "rope_type", json_string_or(rs, "type", "", scaling_key), scaling_key);
    if (type == "llama3") {
      m.rope_scaling.type = type;
      m.rope_scaling.factor = json_number(rs, "factor", scaling_key);
      m.rope_scaling.low_freq_factor = json_number(rs, "low_freq_factor", scaling_key);
      m.rope_scaling.high_freq_factor = json_number(rs, "high_freq_factor", scaling_key);
      m.rope_scaling.original_max_position = json_int(rs, "original_max_position_embeddings", scaling_key);
      if (m.rope_scaling.factor <= 0 || m.rope_scaling.high_freq_factor <= m.rope_scaling.low_freq_factor ||
          m.rope_scaling.original_max_position <= 0)
        fail("config.json: invalid llama3 ", scaling_key, " values");
    } else if (type != "default" && !type.empty()) {
      fail("config.json: ", scaling_key, " type \"", type, "\" is not supported (supported: default, llama3)");
    }
  }
  if (m.family == ArchFamily::Gemma2) {
    m.sliding_window = json_int_or(c, "sliding_window", 4096, "config.json");
    m.query_pre_attn_scalar = json_number_or(c, "query_pre_attn_scalar", static_cast<double>(m.head_dim), "config.json");
    m.attn_logit_softcapping = json_number_or(c, "attn_logit_softcapping", 0, "config.json");
    m.final_logit_softcapping = json_number_or(c, "final_logit_softcapping", 0, "config.json");
  }
  return m;
}

ModelConfig model_config(const ModelFile& file) { return parse_model_config(file.metadata().at("config")); }

int64_t model_context_length(const ModelFile& file) { return model_config(file).max_position; }

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& m) {
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {m.vocab, m.hidden}, false});
  const int64_t q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim;
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "self_attn.q_proj.weight", {q, m.hidden}, true});
    out.push_back({p + "self_attn.k_proj.weight", {kv, m.hidden}, true});
    out.push_back({p + "self_attn.v_proj.weight", {kv, m.hidden}, true});
    out.push_back({p + "self_attn.o_proj.weight", {m.hidden, q}, true});
    out.push_back({p + "mlp.gate_proj.weight", {m.intermediate, m.hidden}, true});
    out.push_back({p + "mlp.up_proj.weight", {m.intermediate, m.hidden}, true});
    out.push_back({p + "mlp.down_proj.weight", {m.hidden, m.intermediate}, true});
    out.push_back({p + "input_layernorm.weight", {m.hidden}, false});
    out.push_back({p + "post_attention_layernorm.weight", {m.hidden}, false});
    if (m.family == ArchFamily::Gemma2) {
      out.push_back({p + "pre_feedforward_layernorm.weight", {m.hidden}, false});
      out.push_back({p + "post_feedforward_layernorm.weight", {m.hidden}, false});
    }
  }
  out.push_back({"model.norm.weight", {m.hidden}, false});
  if (!m.tie_embeddings) out.push_back({"lm_head.weight", {m.vocab, m.hidden}, true});
  return out;
}

}  // namespace sparq
