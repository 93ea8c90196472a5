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
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

namespace fs = std::filesystem;

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

struct TemplateSource {
  std::string chat_template;
  nlohmann::json config;       // tokenizer_config.json or null
  nlohmann::json special_map;  // special_tokens_map.json or null
};

std::optional<std::string> read_optional(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  return read_text_file(p.string(), "file");
}

// Only the configuration and the template: `template` does not need the tokenizer itself.
TemplateSource load_template_source(const Source& s) {
  require_source(s);
  TemplateSource t;
  if (!s.model.empty()) {
    ModelFile f = ModelFile::open(s.model);
    auto as_json = [&](const char* name) -> nlohmann::json {
      auto b = f.blob(name);
      if (!b) return nullptr;
      return parse_json_text(std::string_view(reinterpret_cast<const char*>(b->data()), b->size()), name);
    };
    t.config = as_json("tokenizer_config.json");
    t.special_map = as_json("special_tokens_map.json");
    const auto& meta = f.metadata();
    if (meta.is_object() && meta.contains("chat_template") && meta["chat_template"].is_string())
      t.chat_template = meta["chat_template"].get<std::string>();
    else
      t.chat_template = chat_template_from_config(t.config);
    return t;
  }
  std::error_code ec;
  fs::path p(s.tokenizer);
  if (!fs::exists(p, ec)) fail("tokenizer: ", s.tokenizer, " does not exist");
  fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  if (!fs::is_directory(p, ec) && p.filename() == "tokenizer_config.json") dir = p.parent_path();
  if (auto c = read_optional(dir / "tokenizer_config.json")) t.config = parse_json_text(*c, (dir / "tokenizer_config.json").string());
  if (auto c = read_optional(dir / "special_tokens_map.json"))
    t.special_map = parse_json_text(*c, (dir / "special_tokens_map.json").string());
  if (auto c = read_optional(dir / "chat_template.jinja"))
    t.chat_template = *c;
  else
    t.chat_template = chat_template_from_config(t.config);
  return t;
}

void run_template(const Source& s, const std::string& messages_path, bool no_gen_prompt, const std::string& template_path,
                  const std::optional<int64_t>& now) {
  TemplateSource src = load_template_source(s);
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

  ChatTemplateOptions opt;
  opt.add_generation_prompt = !no_gen_prompt;
  add_special_token_variables(src.config, src.special_map, opt);
  for (auto it = vars.begin(); it != vars.end(); ++it) {
    if (it.key() == "bos_token" && it.value().is_string()) opt.bos_token = it.value().get<std::string>();
    else if (it.key() == "eos_token" && it.value().is_string()) opt.eos_token = it.value().get<std::string>();
    else if (it.key() == "add_generation_prompt" && it.value().is_boolean() && !no_gen_prompt)
      opt.add_generation_prompt = it.value().get<bool>();
    else opt.variables[it.key()] = it.value();
  }
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
