// sparq tokenize   (-m FILE.sparq | --tokenizer PATH) [--special] [--plain-special]
//   stdin: JSON lines {"text": ...}; stdout: {"ids": [...]} per line.
// sparq detokenize (-m FILE.sparq | --tokenizer PATH) [--skip-special]
//   stdin: JSON lines {"ids": [...]}; stdout: {"text": ...} per line.
// sparq template   (-m FILE.sparq | --tokenizer PATH) --messages FILE.json [--no-generation-prompt]
//   prints the rendered chat prompt. FILE.json is a list of messages, or an object
//   {"messages": [...], "tools": [...], ...} whose other keys become template variables.
// PATH is a tokenizer.json, a tokenizer.model, or a directory holding them with tokenizer_config.json.
#include "apps/cmd_tokenize.h"

#include <cstdio>
#include <functional>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

struct Source {
  std::string model;      // -m
  std::string tokenizer;  // --tokenizer
};

void add_source_options(CLI::App* cmd, Source& s) {
  auto* m = cmd->add_option("-m,--model", s.model, ".sparq model file (its embedded tokenizer)");
  auto* t = cmd->add_option("--tokenizer", s.tokenizer,
                            "tokenizer.json, tokenizer.model, or a directory holding them (and tokenizer_config.json)");
  m->excludes(t);
}

void require_source(const Source& s) {
  if (s.model.empty() && s.tokenizer.empty()) fail("give the tokenizer with -m FILE.sparq or --tokenizer PATH");
}

LoadedTokenizer load(const Source& s) {
  require_source(s);
  if (!s.model.empty()) {
    ModelFile f = ModelFile::open(s.model);
    return load_tokenizer(f);
  }
  return load_tokenizer(s.tokenizer);
}

std::string read_text_file(const std::string& path, const char* what) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", what, " ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json parse_json_text(std::string_view text, const std::string& where) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON (", e.what(), ")");
  }
}

// Writes one JSON line; strings that are not valid UTF-8 get U+FFFD (decode never produces them).
void write_line(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s += '\n';
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// ---- tokenize / detokenize ---------------------------------------------------------------

// Calls fn(object, line number) for each non-blank JSON line on stdin.
void for_each_json_line(const std::function<void(const nlohmann::json&, size_t)>& fn) {
  std::string line;
  size_t n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    fn(parse_json_text(line, "stdin line " + std::to_string(n)), n);
  }
  std::fflush(stdout);
}

void run_tokenize(const Source& s, bool add_special, bool plain_special) {
  LoadedTokenizer lt = load(s);
  for_each_json_line([&](const nlohmann::json& j, size_t n) {
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail("stdin line ", n, ": expected an object {\"text\": \"...\"}");
    auto ids = lt.tokenizer->encode(j["text"].get_ref<const std::string&>(), add_special, !plain_special);
    write_line(nlohmann::json{{"ids", ids}});
  });
}

void run_detokenize(const Source& s, bool skip_special) {
  LoadedTokenizer lt = load(s);
  const auto vocab = static_cast<int64_t>(lt.tokenizer->vocab_size());
  for_each_json_line([&](const nlohmann::json& j, size_t n) {
    if (!j.is_object() || !j.contains("ids") || !j["ids"].is_array())
      fail("stdin line ", n, ": expected an object {\"ids\": [...]}");
    std::vector<TokenId> ids;
    ids.reserve(j["ids"].size());
    for (const auto& v : j["ids"]) {
      if (!v.is_number_integer()) fail("stdin line ", n, ": token ids must be integers");
      const auto id = v.get<int64_t>();
      if (id < 0 || id >= vocab) fail("stdin line ", n, ": token id ", id, " is outside the vocabulary (", vocab, " ids)");
      ids.push_back(static_cast<TokenId>(id));
    }
    write_line(nlohmann::json{{"text", lt.tokenizer->decode(ids, skip_special)}});
  });
}

// ---- template ----------------------------------------------------------------------------

// Only the configuration and the template: `template` does not need the tokenizer itself.
ChatTemplateSource load_template_source(const Source& s) {
  require_source(s);
  if (!s.model.empty()) return load_chat_template_source(ModelFile::open(s.model));
  return load_chat_template_source(s.tokenizer);
}

void run_template(const Source& s, const std::string& messages_path, bool no_gen_prompt, const std::string& template_path,
                  const std::optional<int64_t>& now) {
  ChatTemplateSource src = load_template_source(s);
  if (!template_path.empty()) src.chat_template = read_text_file(template_path, "chat template");
  if (src.chat_template.empty())
    fail("the model ships no chat template (no chat_template in tokenizer_config.json, chat_template.jinja or the model "
         "file); give one with --chat-template FILE");

  // ordered_json: tool schemas and arguments keep their key order, as Python's json.loads keeps it.
  nlohmann::ordered_json input;
  try {
    input = nlohmann::ordered_json::parse(read_text_file(messages_path, "messages file"));
  } catch (const nlohmann::json::exception& e) {
    fail(messages_path, ": not valid JSON (", e.what(), ")");
  }
  nlohmann::ordered_json messages;
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  if (input.is_array()) {
    messages = input;
  } else if (input.is_object() && input.contains("messages")) {
    messages = input["messages"];
    for (auto it = input.begin(); it != input.end(); ++it)
      if (it.key() != "messages") vars[it.key()] = it.value();
  } else {
    fail(messages_path, ": expected a JSON list of messages or an object {\"messages\": [...], ...}");
  }

  ChatTemplateOptions opt = chat_template_options(src.config, src.special_tokens_map, !no_gen_prompt, vars);
  if (now) opt.now = static_cast<std::time_t>(*now);

  ChatTemplate tmpl(src.chat_template);
  const std::string out = tmpl.render(messages, opt);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("tokenize", "Encode JSON lines {\"text\": ...} from stdin to {\"ids\": [...]}");
    auto src = std::make_shared<Source>();
    auto special = std::make_shared<bool>(false);
    auto plain = std::make_shared<bool>(false);
    add_source_options(cmd, *src);
    cmd->add_flag("--special", *special, "Add the special tokens of the post-processor (<bos>, <|begin_of_text|>)");
    cmd->add_flag("--plain-special", *plain, "Treat text that spells a special token as plain text");
    cmd->callback([src, special, plain] { run_tokenize(*src, *special, *plain); });
  }
  {
    auto* cmd = app.add_subcommand("detokenize", "Decode JSON lines {\"ids\": [...]} from stdin to {\"text\": ...}");
    auto src = std::make_shared<Source>();
    auto skip = std::make_shared<bool>(false);
    add_source_options(cmd, *src);
    cmd->add_flag("--skip-special", *skip, "Leave special tokens out of the text");
    cmd->callback([src, skip] { run_detokenize(*src, *skip); });
  }
  {
    auto* cmd = app.add_subcommand("template", "Render the model's chat template for a list of messages");
    auto src = std::make_shared<Source>();
    auto messages = std::make_shared<std::string>();
    auto no_gen = std::make_shared<bool>(false);
    auto tmpl = std::make_shared<std::string>();
    auto now = std::make_shared<int64_t>(0);
    add_source_options(cmd, *src);
    cmd->add_option("--messages", *messages,
                    "JSON file ('-': stdin): a list of {role, content} messages, or {\"messages\": [...], "
                    "\"tools\": [...], ...} with further template variables")
        ->required();
    cmd->add_flag("--no-generation-prompt", *no_gen, "Render without add_generation_prompt");
    cmd->add_option("--chat-template", *tmpl, "Use this Jinja file instead of the model's chat template");
    auto* now_opt = cmd->add_option("--now", *now, "Unix time that strftime_now() sees (default: the current time)");
    cmd->callback([src, messages, no_gen, tmpl, now, now_opt] {
      std::optional<int64_t> t;
      if (now_opt->count() > 0) t = *now;
      run_template(*src, *messages, *no_gen, *tmpl, t);
    });
  }
}

}  // namespace sparq
