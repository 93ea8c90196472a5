// Finds and loads a model's tokenizer and chat template: from a tokenizer.json, a
// tokenizer.model, a directory holding them (with tokenizer_config.json), raw bytes, or the
// blobs embedded in a .sparq model file. tokenizer.json wins when both are present, as in
// Hugging Face's AutoTokenizer (fast tokenizer); tokenizer.model is used when it is alone.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

class ModelFile;

struct LoadedTokenizer {
  std::shared_ptr<const Tokenizer> tokenizer;
  nlohmann::json config;              // tokenizer_config.json, or null
  nlohmann::json special_tokens_map;  // special_tokens_map.json, or null
  std::string chat_template;          // empty when the model ships none
  std::string bos_token;              // e.g. "<bos>", "<|begin_of_text|>"; empty when unknown
  std::string eos_token;
};

struct TokenizerSources {
  std::optional<std::string_view> tokenizer_json;
  std::optional<std::string_view> tokenizer_model;
  std::optional<std::string_view> tokenizer_config_json;
  std::optional<std::string_view> special_tokens_map_json;
  std::optional<std::string> chat_template;  // overrides the config's (chat_template.jinja, .sparq metadata)
};

// path: tokenizer.json, tokenizer.model, or a directory with either (plus tokenizer_config.json,
// special_tokens_map.json, chat_template.jinja when present).
LoadedTokenizer load_tokenizer(const std::string& path);
LoadedTokenizer load_tokenizer(const TokenizerSources& sources);
LoadedTokenizer load_tokenizer(const ModelFile& model);

// The chat template and the configuration its special-token variables come from, without the
// tokenizer itself (a directory with tokenizer_config.json alone is enough).
struct ChatTemplateSource {
  std::string chat_template;          // empty when the model ships none
  nlohmann::json config;              // tokenizer_config.json, or null
  nlohmann::json special_tokens_map;  // special_tokens_map.json, or null
};
ChatTemplateSource load_chat_template_source(const std::string& path);
ChatTemplateSource load_chat_template_source(const ModelFile& model);

// The chat template of a tokenizer_config.json: a string, or a list of {name, template} from which
// "default" is taken. Empty when there is none.
std::string chat_template_from_config(const nlohmann::json& config);

}  // namespace sparq
