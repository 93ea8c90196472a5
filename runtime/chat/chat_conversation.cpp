#include "runtime/chat/chat_conversation.h"

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

ChatTemplate parse_template(const ModelFile& file, const LoadedTokenizer& tok) {
  if (tok.chat_template.empty())
    fail("the model ", file.path(), " ships no chat template, so it cannot chat (use `sparq generate` with a plain prompt)");
  return ChatTemplate(tok.chat_template);
}

}  // namespace

// The variables `sparq template` renders with: every special token, and the generation prompt.
ChatConversation::ChatConversation(const ModelFile& file, const LoadedTokenizer& tokenizer)
    : template_(parse_template(file, tokenizer)),
      options_(chat_template_options(tokenizer.config, tokenizer.special_tokens_map, true)) {}

void ChatConversation::set_system(std::string text) {
  if (!text.empty()) {
    // A trial render: templates that refuse a system role raise here, not in the middle of a turn.
    nlohmann::ordered_json trial = nlohmann::ordered_json::array();
    trial.push_back({{"role", "system"}, {"content", text}});
    trial.push_back({{"role", "user"}, {"content", "hi"}});
    try {
      template_.render(trial, options_);
    } catch (const Error& e) {
      fail("this model's chat template does not accept a system message (", e.what(), ")");
    }
  }
  system_ = std::move(text);
}

nlohmann::ordered_json ChatConversation::messages_with(const std::string& user) const {
  nlohmann::ordered_json m = nlohmann::ordered_json::array();
  if (!system_.empty()) m.push_back({{"role", "system"}, {"content", system_}});
  for (const auto& t : turns_) {
    m.push_back({{"role", "user"}, {"content", t.user}});
    m.push_back({{"role", "assistant"}, {"content", t.answer}});
  }
  m.push_back({{"role", "user"}, {"content", user}});
  return m;
}

std::string ChatConversation::render(const nlohmann::ordered_json& messages) const {
  return template_.render(messages, options_);
}

void ChatConversation::add_turn(std::string user, std::string answer) {
  turns_.push_back({std::move(user), std::move(answer)});
}

void ChatConversation::drop_oldest_turn() {
  if (!turns_.empty()) turns_.erase(turns_.begin());
}

void ChatConversation::clear_turns() { turns_.clear(); }

}  // namespace sparq
