// A chat's messages, rendered into a prompt by the model's own chat template exactly as
// `sparq template -m FILE` renders them (the same template and special-token variables).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/tokenizer/chat_template.h"

namespace sparq {

class ModelFile;
struct LoadedTokenizer;

class ChatConversation {
 public:
  // Throws sparq::Error when the model ships no chat template or it does not parse.
  ChatConversation(const ModelFile& file, const LoadedTokenizer& tokenizer);

  // Empty text: no system message. Throws sparq::Error (and keeps the old one) when the template
  // refuses a system message (Gemma's raises "System role not supported").
  void set_system(std::string text);
  const std::string& system() const { return system_; }

  // The messages so far plus a new user message, and their prompt ending with the generation prompt.
  nlohmann::ordered_json messages_with(const std::string& user) const;
  std::string render(const nlohmann::ordered_json& messages) const;

  void add_turn(std::string user, std::string answer);
  size_t turns() const { return turns_.size(); }
  void drop_oldest_turn();
  void clear_turns();  // keeps the system message

 private:
  struct Turn {
    std::string user, answer;
  };
  ChatTemplate template_;
  ChatTemplateOptions options_;
  std::string system_;
  std::vector<Turn> turns_;
};

}  // namespace sparq
