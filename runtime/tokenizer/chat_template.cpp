#include "runtime/tokenizer/chat_template.h"

#include "runtime/core/error.h"
#include "runtime/jinja/interpreter.h"
#include "runtime/jinja/parser.h"

#include <string_view>

namespace sparq {

namespace {

std::string special_token_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

void add_special_token_variables(const nlohmann::json& tokenizer_config, const nlohmann::json& special_tokens_map,
                                 ChatTemplateOptions& options) {
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
    std::string v;
    if (tokenizer_config.is_object() && tokenizer_config.contains(key)) v = special_token_text(tokenizer_config[key]);
    if (v.empty() && special_tokens_map.is_object() && special_tokens_map.contains(key))
      v = special_token_text(special_tokens_map[key]);
    if (v.empty()) continue;
    if (std::string_view(key) == "bos_token") options.bos_token = v;
    else if (std::string_view(key) == "eos_token") options.eos_token = v;
    else options.variables[key] = v;
  }
}

}  // namespace

ChatTemplateOptions chat_template_options(const nlohmann::json& tokenizer_config, const nlohmann::json& special_tokens_map,
                                          bool add_generation_prompt, const nlohmann::ordered_json& variables) {
  ChatTemplateOptions o;
  o.add_generation_prompt = add_generation_prompt;
  add_special_token_variables(tokenizer_config, special_tokens_map, o);
  if (!variables.is_object()) return o;
  for (auto it = variables.begin(); it != variables.end(); ++it) {
    const auto& v = it.value();
    if (it.key() == "bos_token" && v.is_string()) o.bos_token = v.get<std::string>();
    else if (it.key() == "eos_token" && v.is_string()) o.eos_token = v.get<std::string>();
    else if (it.key() == "add_generation_prompt" && v.is_boolean()) o.add_generation_prompt = add_generation_prompt && v.get<bool>();
    else o.variables[it.key()] = v;
  }
  return o;
}

ChatTemplate::ChatTemplate(const std::string& source)
    : tmpl_(std::make_unique<jinja::Template>(jinja::parse(source))) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::json& messages, const ChatTemplateOptions& o) const {
  return render(nlohmann::ordered_json(messages), o);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& o) const {
  if (!messages.is_array()) fail("chat template: messages must be a JSON array of {\"role\", \"content\"} objects");
  jinja::RenderEnv env;
  env.now = o.now;
  env.max_loop_iterations = o.max_loop_iterations;
  auto& g = *env.globals.dict;
  g.set("messages", jinja::Value::from_json(messages));
  g.set("add_generation_prompt", jinja::Value::boolean(o.add_generation_prompt));
  g.set("bos_token", jinja::Value::string(o.bos_token));
  g.set("eos_token", jinja::Value::string(o.eos_token));
  g.set("tools", jinja::Value::none());
  g.set("documents", jinja::Value::none());
  if (o.variables.is_object())
    for (auto it = o.variables.begin(); it != o.variables.end(); ++it) g.set(it.key(), jinja::Value::from_json(it.value()));
  return jinja::render(*tmpl_, env);
}

}  // namespace sparq
