// A model's chat template (Jinja, from tokenizer_config.json) rendered for a list of messages,
// byte for byte as transformers' apply_chat_template renders it.
#pragma once
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace sparq {

namespace jinja {
struct Template;
}

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;  // e.g. "<bos>", from tokenizer_config.json
  std::string eos_token;
  // Further template variables (tools, documents, date_string, enable_thinking, ...); they
  // override the defaults. As in transformers, `tools` and `documents` default to none.
  // Kept in document order (as Python's json.loads keeps it): tojson and dict loops depend on it.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  std::time_t now = 0;  // what strftime_now() sees; 0: the current time
  // Rendering fails beyond this many loop iterations in total (hostile or runaway templates).
  int64_t max_loop_iterations = 5'000'000;
};

// The options transformers' apply_chat_template renders with: every special token of the tokenizer
// (bos, eos, unk, pad, sep, cls, mask; from tokenizer_config.json, else special_tokens_map.json; a
// string or {"content": ...}) as a template variable, then the caller's variables (a string
// bos_token / eos_token replaces the tokenizer's; a boolean add_generation_prompt can turn the
// generation prompt off, not on).
ChatTemplateOptions chat_template_options(const nlohmann::json& tokenizer_config, const nlohmann::json& special_tokens_map,
                                          bool add_generation_prompt,
                                          const nlohmann::ordered_json& variables = nlohmann::ordered_json::object());

class ChatTemplate {
 public:
  // Parses the template; throws sparq::Error naming the unsupported construct and its line.
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // messages: [{"role": ..., "content": ...}, ...]. Throws sparq::Error when the template raises
  // (raise_exception) or fails at run time.
  // Parse messages with nlohmann::ordered_json to keep the key order of tool schemas and arguments.
  std::string render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& options = {}) const;
  std::string render(const nlohmann::json& messages, const ChatTemplateOptions& options = {}) const;

 private:
  std::unique_ptr<jinja::Template> tmpl_;
};

}  // namespace sparq
