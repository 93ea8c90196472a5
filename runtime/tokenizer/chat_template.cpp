#include "runtime/tokenizer/chat_template.h"

#include "runtime/core/error.h"
#include "runtime/tokenizer/jinja_interpreter.h"
#include "runtime/tokenizer/jinja_parser.h"

namespace sparq {

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
