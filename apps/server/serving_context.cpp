#include "apps/server/serving_context.h"

#include "apps/server/api_error.h"
#include "runtime/core/error.h"

namespace sparq::server {

std::string ServingContext::render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
  if (!chat_template)
    invalid_value("messages", "this model ships no chat template; use /v1/completions with a plain prompt");
  ChatTemplateOptions options = template_options;
  options.add_generation_prompt = add_generation_prompt;
  try {
    return chat_template->render(messages, options);
  } catch (const Error& e) {
    invalid_value("messages", std::string("the model's chat template refused the messages: ") + e.what());
  }
}

}  // namespace sparq::server
