// What the HTTP handlers share once the model is loaded: the engine service they submit to, the
// tokenizer and chat template they prepare prompts with, the model's limits and the metrics.
// Everything here is read-only or thread-safe, so handlers on many threads use it at once.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "apps/server/server_metrics.h"
#include "runtime/engine/engine_service.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq::server {

struct ServingContext {
  std::string model_name;
  const LoadedTokenizer* tokenizer = nullptr;     // tokenizer, config, bos/eos strings, template source
  const ChatTemplate* chat_template = nullptr;    // null when the model ships none
  ChatTemplateOptions template_options;           // special-token variables, generation prompt on
  int64_t context_length = 0;                     // positions one sequence may hold (prompt + output)
  int64_t vocab = 0;
  int64_t created = 0;                            // unix time the model was loaded (for /v1/models)
  EngineService* service = nullptr;
  ServerMetrics* metrics = nullptr;

  const Tokenizer& tok() const { return *tokenizer->tokenizer; }
  // The messages through the model's chat template; ApiError 400 (param messages) when the model
  // ships none or the template refuses them.
  std::string render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;
};

}  // namespace sparq::server
