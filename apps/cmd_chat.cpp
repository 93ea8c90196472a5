// sparq chat FILE: a conversation with a model in the terminal, through the model's own chat template.
//
// Every turn renders the whole conversation with the template and submits it on one engine session,
// so only what is new since the last turn is prefilled (the engine reuses the longest common prefix).
//
// On a terminal: line editing and history, /commands, the answer streamed, then its speed on stderr.
// Ctrl-C during an answer stops it; the partial answer stays in the conversation (the model's next
// turn sees what the user saw), unless nothing was shown yet, then the question is dropped too.
// Ctrl-C at the prompt clears the line; a second Ctrl-C in a row, or Ctrl-D, quits.
//
// Not a terminal (scripts): one user message per line (blank lines skipped), each answer printed
// followed by a newline, no prompts or colours. /commands work the same.
//
// When the conversation plus the answer budget (-n) would exceed the context (--ctx), a terminal
// asks whether to drop the oldest turns, reset, or cancel the message; a script drops the oldest
// turns and says so on stderr.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/cmd_generate.h"
#include "apps/commands.h"
#include "apps/interrupt_signal.h"
#include "apps/grammar_flags.h"
#include "apps/line_editor.h"
#include "apps/speculation.h"
#include "runtime/chat/chat_conversation.h"
#include "runtime/core/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generation_defaults.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

constexpr int64_t kDefaultContext = 4096;
constexpr int64_t kDefaultAnswerTokens = 512;

// llama.cpp's defaults: varied answers without drifting off.
SamplingParams chat_sampling_defaults() {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.min_p = 0.05f;
  return p;
}

struct ChatArgs {
  std::string model, system, log_prompt;
  LoadOptions load;
  int64_t max_tokens = 0;  // 0: the default (see answer_budget)
  int64_t context = 0;     // 0: the model's context, at most kDefaultContext
  bool ignore_eos = false;
  SamplingParams sampling = chat_sampling_defaults();
  SpeculationArgs spec;
  GrammarFlags grammar;  // every answer matches it
};

constexpr const char* kHelp =
    "/system TEXT   set the system message (the conversation is kept)\n"
    "/system        remove the system message\n"
    "/reset         forget the conversation (the system message stays)\n"
    "/quit          leave (also Ctrl-D, or Ctrl-C twice at the prompt)\n"
    "/help          this list\n"
    "Ctrl-C during an answer stops it; what was shown stays in the conversation.\n";

class ChatLoop {
 public:
  explicit ChatLoop(const ChatArgs& args);
  // Returns the exit status: 0, or 1 when a message could not be answered in script mode.
  int run();

 private:
  std::optional<std::string> next_line();
  bool run_command(const std::string& line);  // false: not a command
  void answer(const std::string& user);
  // The prompt ids for the conversation plus `user`, after making room if it does not fit;
  // nullopt when the message is not to be answered.
  std::optional<std::vector<int32_t>> fit_prompt(const std::string& user, nlohmann::ordered_json& messages,
                                                 std::string& prompt);
  void log_prompt(const nlohmann::ordered_json& messages, const std::string& prompt);
  void note(const std::string& text) const;  // stderr; dim on a terminal
  void reset_conversation();

  const ChatArgs& args_;
  bool interactive_;
  bool colour_;
  LoadedModel model_;
  LoadedTokenizer tokenizer_;
  ChatConversation conversation_;
  std::unique_ptr<KvStorage> kv_;
  std::unique_ptr<Speculation> speculation_;  // outlives the engine that uses its drafter
  std::shared_ptr<const Grammar> grammar_;    // --grammar / --json-schema: every answer matches it
  std::unique_ptr<Engine> engine_;
  SessionId session_ = 0;
  int64_t context_ = 0;
  int64_t answer_tokens_ = 0;
  std::unique_ptr<InterruptSignal> interrupt_;
  std::unique_ptr<LineEditor> editor_;
  std::ofstream prompt_log_;
  bool quit_ = false;
  int failed_messages_ = 0;
};

ChatLoop::ChatLoop(const ChatArgs& a)
    : args_(a),
      interactive_(isatty(STDIN_FILENO) == 1),
      colour_(isatty(STDIN_FILENO) == 1 && isatty(STDERR_FILENO) == 1),
      model_(load_model(a.model, a.load)),
      tokenizer_(load_tokenizer(model_.file)),
      conversation_(model_.file, tokenizer_) {
  if (!a.system.empty()) conversation_.set_system(a.system);

  EngineOptions options = engine_options_for(model_.file, tokenizer_.tokenizer.get());
  const int64_t model_context = options.context_length;
  if (a.context > 0) {
    if (model_context > 0 && a.context > model_context)
      fail("--ctx ", a.context, " is more than the model's context length of ", model_context, " tokens");
    context_ = a.context;
  } else {
    context_ = model_context > 0 ? std::min(model_context, kDefaultContext) : kDefaultContext;
  }
  answer_tokens_ = a.max_tokens > 0 ? a.max_tokens : std::min(kDefaultAnswerTokens, std::max<int64_t>(1, context_ / 4));
  if (answer_tokens_ >= context_)
    fail("-n ", answer_tokens_, " leaves no room for the conversation in a context of ", context_,
         " tokens (lower -n or raise --ctx)");
  options.context_length = context_;
  kv_ = model_.kv_storage_for_positions(context_);
  grammar_ = load_grammar_flags(a.grammar);
  speculation_ = prepare_speculation(a.spec, a.load, *tokenizer_.tokenizer,
                                     model_.graph->widths[static_cast<size_t>(model_.graph->logits)], context_, options);
  engine_ = std::make_unique<Engine>(*model_.prepared, *kv_, tokenizer_.tokenizer.get(), options);
  session_ = engine_->open_session();

  a.sampling.validate(engine_->vocab());

  if (!a.log_prompt.empty()) {
    prompt_log_.open(a.log_prompt, std::ios::app | std::ios::binary);
    if (!prompt_log_) fail("cannot open the prompt log ", a.log_prompt, " for appending");
  }
  if (interactive_) {
    interrupt_ = std::make_unique<InterruptSignal>();
    editor_ = std::make_unique<LineEditor>("sparq");
  }
}

void ChatLoop::note(const std::string& text) const {
  if (colour_) std::fprintf(stderr, "\x1b[2m%s\x1b[0m\n", text.c_str());
  else std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

std::optional<std::string> ChatLoop::next_line() {
  if (interactive_) {
    auto line = editor_->read("> ");
    if (line) editor_->remember(*line);
    return line;
  }
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void ChatLoop::reset_conversation() {
  conversation_.clear_turns();
  engine_->reset_session(session_);
}

bool ChatLoop::run_command(const std::string& line) {
  auto is = [&](const char* name) {
    const std::string n(name);
    return line == n || (line.size() > n.size() && line.compare(0, n.size(), n) == 0 && line[n.size()] == ' ');
  };
  if (is("/quit") || is("/exit")) {
    quit_ = true;
  } else if (is("/help")) {
    std::fputs(kHelp, stderr);
  } else if (is("/reset")) {
    reset_conversation();
    note("(conversation cleared)");
  } else if (is("/system")) {
    std::string text = line.size() > 8 ? line.substr(8) : std::string();
    text.erase(0, text.find_first_not_of(' '));
    try {
      conversation_.set_system(text);
      note(text.empty() ? "(system message removed)" : "(system message set)");
    } catch (const Error& e) {
      note(std::string("sparq chat: ") + e.what());
      if (!interactive_) ++failed_messages_;
    }
  } else {
    return false;
  }
  return true;
}

void ChatLoop::log_prompt(const nlohmann::ordered_json& messages, const std::string& prompt) {
  if (!prompt_log_.is_open()) return;
  nlohmann::ordered_json entry = {{"messages", messages}, {"prompt", prompt}};
  prompt_log_ << entry.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  prompt_log_.flush();
}

std::optional<std::vector<int32_t>> ChatLoop::fit_prompt(const std::string& user, nlohmann::ordered_json& messages,
                                                         std::string& prompt) {
  size_t dropped = 0;
  while (true) {
    messages = conversation_.messages_with(user);
    prompt = conversation_.render(messages);
    std::vector<int32_t> ids = tokenizer_.tokenizer->encode(prompt, /*add_special=*/false);
    const auto need = static_cast<int64_t>(ids.size()) + answer_tokens_;
    if (need <= context_) {
      if (dropped > 0 && !interactive_)
        note("sparq chat: the conversation did not fit the context of " + std::to_string(context_) +
             " tokens; dropped the oldest " + std::to_string(dropped) + " turn(s)");
      return ids;
    }
    if (conversation_.turns() == 0) {
      note("sparq chat: this message needs " + std::to_string(ids.size()) + " prompt tokens + " +
           std::to_string(answer_tokens_) + " for the answer, more than the context of " + std::to_string(context_) +
           " tokens; shorten it, lower -n or raise --ctx");
      return std::nullopt;
    }
    if (interactive_ && dropped == 0) {
      note("The conversation (" + std::to_string(ids.size()) + " tokens) plus the answer budget (" +
           std::to_string(answer_tokens_) + ") exceeds the context of " + std::to_string(context_) + " tokens.");
      std::optional<std::string> choice;
      while (true) {
        choice = editor_->read("[d]rop the oldest turns, [r]eset the conversation, or [c]ancel this message? ");
        if (!choice || *choice == "c" || *choice == "d" || *choice == "r") break;
      }
      if (!choice || *choice == "c") {
        note("(message cancelled)");
        return std::nullopt;
      }
      if (*choice == "r") {
        reset_conversation();
        note("(conversation cleared)");
        continue;
      }
    }
    conversation_.drop_oldest_turn();
    ++dropped;
    if (interactive_) note("(dropped the oldest turn)");
  }
}

void ChatLoop::answer(const std::string& user) {
  nlohmann::ordered_json messages;
  std::string prompt;
  std::optional<std::vector<int32_t>> ids;
  try {
    ids = fit_prompt(user, messages, prompt);
  } catch (const Error& e) {  // the template raised (e.g. an unsupported conversation shape)
    note(std::string("sparq chat: ") + e.what());
    ids.reset();
  }
  if (!ids) {
    ++failed_messages_;
    if (!interactive_) std::fputs("\n", stdout);  // one output line per input line
    std::fflush(stdout);
    return;
  }
  log_prompt(messages, prompt);

  std::string text;
  bool finished = false;
  GenerationEvent last;
  GenerationRequest request;
  request.prompt = std::move(*ids);
  request.sampling = args_.sampling;
  request.grammar = grammar_;
  request.max_tokens = answer_tokens_;
  request.use_default_stop_tokens = !args_.ignore_eos;
  request.session = session_;
  request.on_event = [&](const GenerationEvent& ev) {
    if (!ev.text.empty()) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
      text += ev.text;
    }
    if (ev.kind == GenerationEvent::Kind::Finished) {
      finished = true;
      last = ev;
    }
  };
  RequestId id = 0;
  try {
    id = engine_->submit(std::move(request));
  } catch (const Error& e) {
    note(std::string("sparq chat: ") + e.what());
    ++failed_messages_;
    if (!interactive_) std::fputs("\n", stdout);
    return;
  }
  take_interrupt();  // only a Ctrl-C pressed from now on stops this answer
  while (!finished) {
    if (interactive_ && take_interrupt()) engine_->cancel(id);
    if (!engine_->step()) break;
  }
  std::fputs("\n", stdout);
  std::fflush(stdout);

  const RequestStats& s = last.stats;
  const bool cancelled = finished && last.reason == FinishReason::Cancelled;
  if (cancelled && text.empty()) {
    note("(answer stopped before any text; the question is dropped)");
    return;
  }
  conversation_.add_turn(user, text);
  const double decode_s = s.total_seconds - s.first_token_seconds;
  const double decode_tps = s.generated_tokens > 1 && decode_s > 0 ? static_cast<double>(s.generated_tokens - 1) / decode_s : 0.0;
  char line[256];
  std::snprintf(line, sizeof line, "[%lld tokens, %.1f tok/s; prompt %lld tokens, %lld reused; first token %.2f s%s]",
                static_cast<long long>(s.generated_tokens), decode_tps, static_cast<long long>(s.prompt_tokens),
                static_cast<long long>(s.reused_tokens), s.first_token_seconds,
                cancelled                                    ? "; stopped"
                : last.reason == FinishReason::Length        ? "; reached -n"
                : last.reason == FinishReason::ContextLimit ? "; reached the context limit"
                                                             : "");
  note(line);
}

int ChatLoop::run() {
  if (interactive_) {
    note("sparq chat: " + args_.model + " (context " + std::to_string(context_) + " tokens, up to " +
         std::to_string(answer_tokens_) + " per answer). /help for commands, Ctrl-D to quit.");
  }
  while (!quit_) {
    const auto line = next_line();
    if (!line) break;
    if (line->find_first_not_of(" \t") == std::string::npos) continue;
    if (!line->empty() && (*line)[0] == '/' && run_command(*line)) continue;
    answer(*line);
  }
  return !interactive_ && failed_messages_ > 0 ? 1 : 0;
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal, through its chat template");
  cmd->footer("Sampling defaults for chat: --temp 0.8 --top-k 40 --top-p 0.95 --min-p 0.05 (greedy: --temp 0).\n"
              "Not a terminal: one message per input line, one answer per output line.");
  cmd->add_option("model,-m,--model", a->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-n,--max-tokens", a->max_tokens, "Most tokens per answer (default: 512, at most a quarter of --ctx)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--ctx", a->context, "Context budget in tokens: conversation + answer (default: the model's, at most 4096)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--system", a->system, "System message");
  add_sampling_flags(*cmd, a->sampling);  // the same flags and checks as generate
  add_backend_flags(*cmd, a->load);
  add_speculation_flags(*cmd, a->spec);
  add_grammar_flags(*cmd, a->grammar);
  // For tests and debugging.
  cmd->add_option("--log-prompt", a->log_prompt, "Append each turn's messages and rendered prompt (JSON lines) to FILE")
      ->group("");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-turn tokens")->group("");
  cmd->callback([a] {
    ChatLoop chat(*a);
    const int status = chat.run();
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace sparq
