#include "runtime/engine/generation_defaults.h"

#include <algorithm>

#include "runtime/model_file/architecture.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

// eos_token_id of one config object: appended to out; false when absent.
bool take_eos_ids(const nlohmann::json& config, std::vector<int32_t>& out) {
  if (!config.is_object() || !config.contains("eos_token_id")) return false;
  const size_t before = out.size();
  const auto& e = config["eos_token_id"];
  if (e.is_number_integer()) out.push_back(e.get<int32_t>());
  if (e.is_array())
    for (const auto& v : e)
      if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  return out.size() > before;
}

}  // namespace

std::vector<int32_t> default_stop_token_ids(const ModelFile& file, const Tokenizer* tokenizer) {
  std::vector<int32_t> out;
  const auto& m = file.metadata();
  if (!(m.contains("generation_config") && take_eos_ids(m["generation_config"], out)) && m.contains("config"))
    take_eos_ids(m["config"], out);
  if (tokenizer) {
    // Instruction-tuned models end a turn with these even where generation_config lists only <eos>.
    for (const char* name : {"<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>"})
      if (auto id = tokenizer->token_to_id(name); id && tokenizer->is_special(*id)) out.push_back(*id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

EngineOptions engine_options_for(const ModelFile& file, const Tokenizer* tokenizer) {
  EngineOptions o;
  o.context_length = model_context_length(file);
  o.default_stop_tokens = default_stop_token_ids(file, tokenizer);
  return o;
}

}  // namespace sparq
