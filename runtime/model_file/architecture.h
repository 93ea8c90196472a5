// Architecture hyper-parameters read from a Hugging Face config.json, and the tensors each
// architecture needs with their logical shapes (checked by the converter and by the reader).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sparq {

enum class ArchFamily { Gemma2, Llama };

struct RopeScaling {
  std::string type;  // "" (none) or "llama3"
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t original_max_position = 0;
};

struct ModelConfig {
  ArchFamily family = ArchFamily::Llama;
  std::string hf_architecture;  // "Gemma2ForCausalLM", "LlamaForCausalLM"
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  int64_t max_position = 0;  // max_position_embeddings; 0 when the config has none
  bool tie_embeddings = false;
  double rms_norm_eps = 1e-6, rope_theta = 10000;
  RopeScaling rope_scaling;
  std::string hidden_act;
  // Gemma 2 only.
  int64_t sliding_window = 0;
  double query_pre_attn_scalar = 0, attn_logit_softcapping = 0, final_logit_softcapping = 0;
};

// Throws sparq::Error naming the missing or invalid field, or the unsupported architecture.
// max_position is 0 when config.json has no max_position_embeddings.
ModelConfig parse_model_config(const nlohmann::json& config);

class ModelFile;

// The config.json a model file carries, parsed.
ModelConfig model_config(const ModelFile& file);

// The most positions one sequence may hold: max_position_embeddings, or 0 when the config has
// none (then only the KV cache bounds a sequence).
int64_t model_context_length(const ModelFile& file);

std::string family_name(ArchFamily f);

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;  // logical shape
  bool linear;                 // a Linear's weight (may be quantized/sparse), named P.weight
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);

}  // namespace sparq
