// libFuzzer target for chat requests: the payload is JSON as a client sends it, either a list of
// messages or {"messages": [...], "tools": [...], ...variables}, rendered through the real Gemma 2
// and Llama 3.1 chat templates (first input byte picks the template and add_generation_prompt).
// Invariants: rendering returns text or throws sparq::Error (never a crash or a runaway loop); the
// text is valid UTF-8 wherever the messages' strings are; it tokenizes without throwing, with
// special-token spellings in user text kept as text (parse_special=false).
// The tokenizers and templates come from $SPARQ_SHARED_DIR/data/tokenizers (default ../shared).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/hf_tokenizer.h"
#include "tests/fuzz/fuzz_data.h"

using sparq::fuzz::read_all;
using sparq::fuzz::shared_dir;

namespace {

struct Model {
  std::unique_ptr<sparq::Tokenizer> tokenizer;
  std::unique_ptr<sparq::ChatTemplate> chat;
  sparq::ChatTemplateOptions options;
  explicit Model(const std::string& name) {
    const std::string dir = shared_dir() + "/data/tokenizers/" + name + "/";
    tokenizer = sparq::load_hf_tokenizer(read_all(dir + "tokenizer.json"));
    const auto config = nlohmann::json::parse(read_all(dir + "tokenizer_config.json"));
    const auto special = nlohmann::json::parse(read_all(dir + "special_tokens_map.json"));
    chat = std::make_unique<sparq::ChatTemplate>(config.at("chat_template").get<std::string>());
    options = sparq::chat_template_options(config, special, true);
    options.now = 1721995200;
    options.max_loop_iterations = 200000;
  }
};

const Model& model(int which) {
  static const Model gemma("gemma2"), llama("llama3_1");
  return which ? llama : gemma;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool strings_valid(const nlohmann::ordered_json& j) {
  if (j.is_string()) return sparq::utf8::is_valid(j.get_ref<const std::string&>());
  if (j.is_structured()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (j.is_object() && !sparq::utf8::is_valid(it.key())) return false;
      if (!strings_valid(*it)) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  const Model& m = model(data[0] & 1);
  const auto request = nlohmann::ordered_json::parse(data + 1, data + size, nullptr, false);
  if (request.is_discarded()) return 0;
  sparq::ChatTemplateOptions options = m.options;
  options.add_generation_prompt = data[0] & 2;
  nlohmann::ordered_json messages = request;
  if (request.is_object()) {
    messages = request.contains("messages") ? request["messages"] : nlohmann::ordered_json::array();
    for (auto it = request.begin(); it != request.end(); ++it)
      if (it.key() != "messages") options.variables[it.key()] = it.value();
  }
  std::string text;
  try {
    text = m.chat->render(messages, options);
  } catch (const sparq::Error&) {
    return 0;  // refused with a message: fine
  }
  check(text.size() < (64u << 20));
  if (strings_valid(request)) check(sparq::utf8::is_valid(text));
  const auto ids = m.tokenizer->encode(text, false, false);
  check(text.empty() || !ids.empty());
  return 0;
}
