#include "runtime/tokenizer/tokenizer_loader.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/hf_tokenizer.h"
#include "runtime/tokenizer/sp_tokenizer.h"

namespace sparq {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> read_if_exists(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("tokenizer: cannot read ", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json parse_json(std::string_view bytes, const char* what) {
  try {
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": not valid JSON (", e.what(), ")");
  }
}

// bos_token / eos_token are strings, or {"content": ...} objects in older files.
std::string token_string(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return {};
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

std::string_view as_chars(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

// The bytes of a tokenizer directory's files, each optional.
struct TokenizerFiles {
  std::optional<std::string> json, model, config, special, tmpl;

  TokenizerSources sources() const {
    TokenizerSources src;
    if (json) src.tokenizer_json = *json;
    if (model) src.tokenizer_model = *model;
    if (config) src.tokenizer_config_json = *config;
    if (special) src.special_tokens_map_json = *special;
    src.chat_template = tmpl;
    return src;
  }
};

// path itself when it is a directory, else the directory of the file it names.
fs::path tokenizer_dir(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (!fs::exists(p, ec)) fail("tokenizer: ", path, " does not exist");
  return fs::is_directory(p, ec) ? p : p.parent_path();
}

// The files beside the tokenizer that configure it and its chat template.
void read_config_files(const fs::path& dir, TokenizerFiles& files) {
  files.config = read_if_exists(dir / "tokenizer_config.json");
  files.special = read_if_exists(dir / "special_tokens_map.json");
  files.tmpl = read_if_exists(dir / "chat_template.jinja");
}

// Views of the blobs a model file embeds; the template in its metadata overrides the config's.
TokenizerSources model_file_sources(const ModelFile& model) {
  TokenizerSources src;
  if (auto b = model.blob("tokenizer.json")) src.tokenizer_json = as_chars(*b);
  if (auto b = model.blob("tokenizer.model")) src.tokenizer_model = as_chars(*b);
  if (auto b = model.blob("tokenizer_config.json")) src.tokenizer_config_json = as_chars(*b);
  if (auto b = model.blob("special_tokens_map.json")) src.special_tokens_map_json = as_chars(*b);
  const auto& meta = model.metadata();
  if (meta.is_object() && meta.contains("chat_template") && meta["chat_template"].is_string())
    src.chat_template = meta["chat_template"].get<std::string>();
  return src;
}

ChatTemplateSource chat_template_source(const TokenizerSources& src) {
  ChatTemplateSource out;
  if (src.tokenizer_config_json) out.config = parse_json(*src.tokenizer_config_json, "tokenizer_config.json");
  if (src.special_tokens_map_json)
    out.special_tokens_map = parse_json(*src.special_tokens_map_json, "special_tokens_map.json");
  out.chat_template = src.chat_template ? *src.chat_template : chat_template_from_config(out.config);
  return out;
}

}  // namespace

std::string chat_template_from_config(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("chat_template")) return {};
  const auto& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& e : t)
      if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template"))
        return e["template"].get<std::string>();
    if (!t.empty() && t[0].is_object() && t[0].contains("template")) return t[0]["template"].get<std::string>();
  }
  return {};
}

LoadedTokenizer load_tokenizer(const TokenizerSources& src) {
  ChatTemplateSource chat = chat_template_source(src);
  LoadedTokenizer out;
  out.config = std::move(chat.config);
  out.special_tokens_map = std::move(chat.special_tokens_map);
  out.chat_template = std::move(chat.chat_template);
  if (src.tokenizer_json)
    out.tokenizer = load_hf_tokenizer(*src.tokenizer_json);
  else if (src.tokenizer_model)
    out.tokenizer = load_sentencepiece_tokenizer(*src.tokenizer_model, out.config);
  else
    fail("tokenizer: neither tokenizer.json nor tokenizer.model was found");
  out.bos_token = token_string(out.config, "bos_token");
  if (out.bos_token.empty()) out.bos_token = token_string(out.special_tokens_map, "bos_token");
  out.eos_token = token_string(out.config, "eos_token");
  if (out.eos_token.empty()) out.eos_token = token_string(out.special_tokens_map, "eos_token");
  return out;
}

LoadedTokenizer load_tokenizer(const std::string& path) {
  const fs::path dir = tokenizer_dir(path);
  const fs::path p(path);
  std::error_code ec;
  TokenizerFiles files;
  if (fs::is_directory(p, ec)) {
    files.json = read_if_exists(dir / "tokenizer.json");
    if (!files.json) files.model = read_if_exists(dir / "tokenizer.model");
    if (!files.json && !files.model) fail("tokenizer: ", path, " holds neither tokenizer.json nor tokenizer.model");
  } else if (p.extension() == ".model") {
    files.model = read_if_exists(p);
  } else {
    files.json = read_if_exists(p);
  }
  read_config_files(dir, files);
  try {
    return load_tokenizer(files.sources());
  } catch (const Error& e) {
    fail(e.what(), " (loading ", path, ")");
  }
}

LoadedTokenizer load_tokenizer(const ModelFile& model) {
  const TokenizerSources src = model_file_sources(model);
  if (!src.tokenizer_json && !src.tokenizer_model)
    fail("tokenizer: the model file ", model.path(), " carries neither tokenizer.json nor tokenizer.model");
  return load_tokenizer(src);
}

ChatTemplateSource load_chat_template_source(const std::string& path) {
  TokenizerFiles files;
  read_config_files(tokenizer_dir(path), files);
  try {
    return chat_template_source(files.sources());
  } catch (const Error& e) {
    fail(e.what(), " (loading ", path, ")");
  }
}

ChatTemplateSource load_chat_template_source(const ModelFile& model) { return chat_template_source(model_file_sources(model)); }

}  // namespace sparq
