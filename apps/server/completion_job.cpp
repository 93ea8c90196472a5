#include "apps/server/completion_job.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "apps/server/api_error.h"
#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/stream_detokenizer.h"

namespace sparq::server {

namespace {

using Json = nlohmann::ordered_json;

uint64_t random_u64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

std::string random_id(const char* prefix) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx%08llx", prefix, static_cast<unsigned long long>(random_u64()),
                static_cast<unsigned long long>(random_u64() & 0xffffffffu));
  return buf;
}

// Strings from decoding are valid UTF-8, but a dump must never throw on a client's text either.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse(const Json& j) { return "data: " + dump(j) + "\n\n"; }

const char* finish_name(FinishReason r) {
  switch (r) {
    case FinishReason::StopToken:
    case FinishReason::StopString:
    case FinishReason::GrammarComplete: return "stop";
    case FinishReason::Length:
    case FinishReason::ContextLimit: return "length";
    case FinishReason::Cancelled: return "abort";
    case FinishReason::Error: return "error";
  }
  return "stop";
}

int64_t code_points(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Json bytes_of(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

struct CompletionJob::Choice {
  int index = 0;
  size_t prompt = 0;
  std::shared_ptr<RequestStream> stream;
  bool suppress_output = false;  // max_tokens 0: the one token the engine samples is not shown
  std::string text;              // generated text (echo not included)
  int64_t generated = 0;
  bool finished = false;
  FinishReason reason = FinishReason::Length;
  RequestStats stats;
  std::string error;
  bool started = false;  // streaming: the first chunk (role, or echoed prompt) was sent
  Clock::time_point last_token{};
  // Logprobs: chat's content list, or the legacy parallel lists.
  Json content_logprobs = Json::array();
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(), text_offset = Json::array();
  int64_t chars = 0;                      // code points of the text the legacy lists cover
  std::unique_ptr<StreamDetokenizer> pieces;  // the generated tokens' strings, for legacy logprobs
  std::string echo_text;                  // the prompt as text, when echoed
  size_t echo_logprobs = 0;               // legacy entries that belong to the echoed prompt
};

CompletionJob::CompletionJob(const ServingContext& ctx, bool chat, GenerationFields gen, Clock::time_point arrival)
    : ctx_(ctx), chat_(chat), gen_(std::move(gen)), arrival_(arrival), id_(random_id(chat ? "chatcmpl-" : "cmpl-")),
      created_(static_cast<int64_t>(std::time(nullptr))) {
  if (!gen_.model.empty() && gen_.model != ctx_.model_name)
    throw ApiError(404, "not_found_error", "model_not_found", "model",
                   "The model '" + gen_.model + "' does not exist; this server serves '" + ctx_.model_name + "'");
  for (const auto& [id, bias] : gen_.logit_bias)
    if (id >= ctx_.vocab)
      invalid_value("logit_bias", "logit_bias names token " + std::to_string(id) + ", outside the vocabulary of " +
                                      std::to_string(ctx_.vocab));
  for (int64_t id : gen_.stop_token_ids)
    if (id >= ctx_.vocab)
      invalid_value("stop_token_ids", "stop token " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(ctx_.vocab));
}

CompletionJob::~CompletionJob() { cancel(); }

namespace {

// The prompt must leave room for at least one generated token, and for all of max_tokens.
void check_fits(int64_t prompt_tokens, const std::optional<int64_t>& max_tokens, int64_t context, const std::string& param) {
  if (prompt_tokens == 0) invalid_value(param, "the prompt encodes to no tokens");
  if (prompt_tokens >= context)
    throw ApiError(400, "invalid_request_error", "context_length_exceeded", param,
                   "This model's maximum context length is " + std::to_string(context) + " tokens; the prompt has " +
                       std::to_string(prompt_tokens) + " tokens, which leaves no room to generate");
  if (max_tokens && *max_tokens > 0 && prompt_tokens + *max_tokens > context)
    throw ApiError(400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                   "This model's maximum context length is " + std::to_string(context) + " tokens; you requested " +
                       std::to_string(prompt_tokens + *max_tokens) + " (" + std::to_string(prompt_tokens) + " in the prompt, " +
                       std::to_string(*max_tokens) + " to generate)");
}

}  // namespace

std::unique_ptr<CompletionJob> CompletionJob::start_chat(const ServingContext& ctx, ChatRequest request, Clock::time_point arrival) {
  std::unique_ptr<CompletionJob> job(new CompletionJob(ctx, /*chat=*/true, std::move(request.gen), arrival));
  const std::string prompt = ctx.render_chat(request.messages, request.add_generation_prompt);
  std::vector<int32_t> ids = ctx.tok().encode(prompt, /*add_special=*/false);
  check_fits(static_cast<int64_t>(ids.size()), job->gen_.max_tokens, ctx.context_length, "messages");
  job->prompts_.push_back(std::move(ids));
  job->submit_all();
  return job;
}

std::unique_ptr<CompletionJob> CompletionJob::start_completion(const ServingContext& ctx, CompletionRequest request,
                                                               Clock::time_point arrival) {
  std::unique_ptr<CompletionJob> job(new CompletionJob(ctx, /*chat=*/false, std::move(request.gen), arrival));
  job->echo_ = request.echo;
  const bool many = request.prompts.size() > 1;
  for (size_t i = 0; i < request.prompts.size(); ++i) {
    const PromptInput& p = request.prompts[i];
    const std::string which = many ? " (prompt " + std::to_string(i) + ")" : "";
    std::vector<int32_t> ids;
    if (p.is_ids) {
      for (int64_t id : p.ids) {
        if (id >= ctx.vocab)
          invalid_value("prompt", "token " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(ctx.vocab) + which);
        ids.push_back(static_cast<int32_t>(id));
      }
    } else {
      ids = ctx.tok().encode(p.text, /*add_special=*/true);  // BOS as the tokenizer adds it (vLLM does the same)
    }
    check_fits(static_cast<int64_t>(ids.size()), job->gen_.max_tokens, ctx.context_length, "prompt");
    job->prompts_.push_back(std::move(ids));
  }
  job->submit_all();
  return job;
}

void CompletionJob::submit_all() {
  const bool legacy_logprobs = !chat_ && gen_.logprobs >= 0;
  for (size_t p = 0; p < prompts_.size(); ++p) {
    for (int64_t j = 0; j < gen_.n; ++j) {
      auto c = std::make_unique<Choice>();
      c->index = static_cast<int>(p * static_cast<size_t>(gen_.n) + static_cast<size_t>(j));
      c->prompt = p;
      GenerationRequest r;
      r.prompt = prompts_[p];
      r.sampling = gen_.sampling;
      r.grammar = gen_.grammar;
      // Choices of one request differ (each its own seed); a given seed makes the whole response reproducible.
      r.sampling.seed = gen_.seed_given ? gen_.sampling.seed + static_cast<uint64_t>(j) : random_u64();
      for (const auto& [id, bias] : gen_.logit_bias) r.sampling.logit_bias.emplace_back(static_cast<int32_t>(id), bias);
      c->suppress_output = gen_.max_tokens && *gen_.max_tokens == 0;
      // max_tokens 0 (an echo that only scores the prompt): the engine samples one token nobody sees.
      r.max_tokens = !gen_.max_tokens ? 0 : std::max<int64_t>(*gen_.max_tokens, 1);
      for (int64_t id : gen_.stop_token_ids) r.stop_token_ids.push_back(static_cast<int32_t>(id));
      r.use_default_stop_tokens = !gen_.ignore_eos;
      r.stop_strings = gen_.stop;
      r.logprobs = gen_.logprobs;
      if (echo_ && gen_.logprobs >= 0) r.prompt_logprobs = gen_.logprobs;
      if (echo_) {
        // The prompt's text piece by piece, as the legacy lists index it.
        StreamDetokenizer d(ctx_.tok(), /*skip_special=*/false);
        for (int32_t id : prompts_[p]) {
          std::string piece = d.push(id);
          if (legacy_logprobs) {
            c->tokens.push_back(piece);
            c->token_logprobs.push_back(nullptr);
            c->top_logprobs.push_back(nullptr);
            c->text_offset.push_back(code_points(c->echo_text));
          }
          c->echo_text += piece;
        }
        const std::string rest = d.finish();
        if (legacy_logprobs && !c->tokens.empty()) c->tokens.back() = c->tokens.back().get<std::string>() + rest;
        c->echo_text += rest;
        c->chars = code_points(c->echo_text);
        c->echo_logprobs = c->tokens.size();
      }
      if (legacy_logprobs) {
        c->pieces = std::make_unique<StreamDetokenizer>(ctx_.tok(), /*skip_special=*/false);
        for (int32_t id : prompts_[p]) c->pieces->push(id);  // context for the first generated piece
      }
      try {
        c->stream = ctx_.service->submit(std::move(r));
      } catch (const ServiceRefusal& e) {
        cancel();
        if (!ctx_.service->accepting()) throw ApiError(503, "service_unavailable", "unavailable", "", e.what());
        throw ApiError(429, "rate_limit_error", "queue_full", "", e.what());
      } catch (const Error& e) {
        cancel();
        throw ApiError(400, "invalid_request_error", "invalid_value", "", e.what());
      }
      c->last_token = arrival_;
      choices_.push_back(std::move(c));
    }
  }
}

void CompletionJob::cancel() {
  for (auto& c : choices_)
    if (c->stream && !c->finished) c->stream->cancel();
}

bool CompletionJob::done() const {
  return std::all_of(choices_.begin(), choices_.end(), [](const auto& c) { return c->finished; });
}

bool CompletionJob::pump(std::chrono::milliseconds wait, const SseWriter& write) {
  const auto deadline = Clock::now() + wait;
  while (true) {
    for (auto& c : choices_)
      while (!c->finished)
        if (auto ev = c->stream->next(std::chrono::milliseconds(0))) on_event(*c, *ev, write);
        else break;
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    // Sleep on one unfinished choice; with several, wake often enough to serve the others too.
    Choice* first = nullptr;
    for (auto& c : choices_)
      if (!c->finished) {
        first = c.get();
        break;
      }
    auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    if (choices_.size() > 1) slice = std::min(slice, std::chrono::milliseconds(5));
    if (auto ev = first->stream->next(slice)) on_event(*first, *ev, write);
  }
}

std::string CompletionJob::token_text(int32_t id) const {
  const int32_t one[] = {id};
  return ctx_.tok().decode(one, /*skip_special=*/false);
}

Json CompletionJob::token_logprob_entry(const PositionLogprobs& lp) const {
  auto entry = [&](const TokenLogprob& t) {
    const std::string s = token_text(t.id);
    Json e;
    e["token"] = s;
    e["logprob"] = t.logprob;
    e["bytes"] = bytes_of(s);
    return e;
  };
  Json out = entry(lp.token);
  Json top = Json::array();
  for (const TokenLogprob& t : lp.top) top.push_back(entry(t));
  out["top_logprobs"] = std::move(top);
  return out;
}

// A legacy top_logprobs entry: piece -> log-probability of the alternatives, the chosen token
// included (as vLLM reports them).
Json CompletionJob::legacy_top(const PositionLogprobs& lp) const {
  Json top = Json::object();
  for (const TokenLogprob& t : lp.top) top[token_text(t.id)] = t.logprob;
  const std::string chosen = token_text(lp.token.id);
  if (!top.contains(chosen)) top[chosen] = lp.token.logprob;
  return top;
}

// Legacy lists: the token's piece, its log-probability, its alternatives (the chosen one included,
// as vLLM reports them), and where the piece starts in the text.
void CompletionJob::append_legacy(Choice& c, const std::string& piece, const PositionLogprobs* lp) {
  c.tokens.push_back(piece);
  c.text_offset.push_back(c.chars);
  c.chars += code_points(piece);
  if (!lp) {
    c.token_logprobs.push_back(nullptr);
    c.top_logprobs.push_back(nullptr);
    return;
  }
  c.token_logprobs.push_back(lp->token.logprob);
  c.top_logprobs.push_back(legacy_top(*lp));
}

std::string CompletionJob::chunk(const Choice& c, const std::string& text, const Json& logprobs, const char* finish_reason) const {
  Json choice;
  choice["index"] = c.index;
  if (chat_) {
    Json delta = Json::object();
    if (!c.started) delta["role"] = "assistant";
    if (!text.empty() || !c.started) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason ? Json(finish_reason) : Json(nullptr);
  Json j;
  j["id"] = id_;
  j["object"] = chat_ ? "chat.completion.chunk" : "text_completion";
  j["created"] = created_;
  j["model"] = ctx_.model_name;
  j["choices"] = Json::array({choice});
  return sse(j);
}

void CompletionJob::on_event(Choice& c, const GenerationEvent& ev, const SseWriter& write) {
  const bool stream = gen_.stream && write;
  bool client_gone = false;
  auto send = [&](const std::string& event) {
    if (!client_gone && !write(event)) {
      client_gone = true;
      cancel();
    }
  };
  // Streaming: the first chunk of a choice carries the role (chat) or the echoed prompt.
  auto start = [&]() {
    if (c.started) return;
    if (chat_) {
      send(chunk(c, "", nullptr, nullptr));
    } else if (echo_) {
      Json lp = nullptr;
      if (gen_.logprobs >= 0) {
        lp = Json::object();
        lp["tokens"] = Json(c.tokens.begin(), c.tokens.begin() + static_cast<ptrdiff_t>(c.echo_logprobs));
        lp["token_logprobs"] = Json(c.token_logprobs.begin(), c.token_logprobs.begin() + static_cast<ptrdiff_t>(c.echo_logprobs));
        lp["top_logprobs"] = Json(c.top_logprobs.begin(), c.top_logprobs.begin() + static_cast<ptrdiff_t>(c.echo_logprobs));
        lp["text_offset"] = Json(c.text_offset.begin(), c.text_offset.begin() + static_cast<ptrdiff_t>(c.echo_logprobs));
      }
      send(chunk(c, c.echo_text, lp, nullptr));
    }
    c.started = true;
  };

  switch (ev.kind) {
    case GenerationEvent::Kind::PromptLogprobs: {
      for (size_t i = 0; i < ev.logprobs.size(); ++i) {
        const size_t pos = static_cast<size_t>(ev.first_position) + i;
        if (pos >= c.echo_logprobs) break;
        const PositionLogprobs& lp = ev.logprobs[i];
        c.token_logprobs[pos] = lp.token.logprob;
        c.top_logprobs[pos] = legacy_top(lp);
      }
      return;
    }
    case GenerationEvent::Kind::Token: {
      if (c.suppress_output) return;
      const auto now = Clock::now();
      if (c.generated == 0) ctx_.metrics->record_first_token(seconds(now - arrival_));
      else ctx_.metrics->record_inter_token(seconds(now - c.last_token));
      c.last_token = now;
      ++c.generated;
      c.text += ev.text;
      Json lp = nullptr;
      if (gen_.logprobs >= 0 && !ev.logprobs.empty()) {
        if (chat_) {
          Json entry = token_logprob_entry(ev.logprobs[0]);
          c.content_logprobs.push_back(entry);
          lp = Json{{"content", Json::array({entry})}};
        } else {
          const size_t before = c.tokens.size();
          append_legacy(c, c.pieces->push(ev.token), &ev.logprobs[0]);
          lp = Json{{"tokens", Json::array({c.tokens[before]})},
                    {"token_logprobs", Json::array({c.token_logprobs[before]})},
                    {"top_logprobs", Json::array({c.top_logprobs[before]})},
                    {"text_offset", Json::array({c.text_offset[before]})}};
        }
      }
      if (stream) {
        start();
        if (!ev.text.empty() || !lp.is_null()) send(chunk(c, ev.text, lp, nullptr));
      }
      return;
    }
    case GenerationEvent::Kind::Finished: {
      c.finished = true;
      c.reason = ev.reason;
      c.stats = ev.stats;
      c.error = ev.error;
      if (!c.suppress_output) c.text += ev.text;
      ctx_.metrics->record_finished(finish_name(ev.reason), ev.stats.prompt_tokens, c.generated);
      if (stream) {
        if (ev.reason == FinishReason::Error) {
          send(sse(error_body(ApiError(500, "server_error", "internal_error", "", "generation failed: " + ev.error))));
          return;
        }
        start();
        send(chunk(c, c.suppress_output ? std::string() : ev.text, nullptr, finish_name(ev.reason)));
      }
      return;
    }
  }
}

Json CompletionJob::usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (const auto& p : prompts_) prompt += static_cast<int64_t>(p.size());
  for (const auto& c : choices_) {
    completion += c->generated;
    cached += c->stats.reused_tokens;
  }
  Json u;
  u["prompt_tokens"] = prompt;
  u["completion_tokens"] = completion;
  u["total_tokens"] = prompt + completion;
  u["prompt_tokens_details"] = Json{{"cached_tokens", cached}};
  return u;
}

int CompletionJob::status() const {
  for (const auto& c : choices_)
    if (c->reason == FinishReason::Error) return 500;
  return 200;
}

Json CompletionJob::response() const {
  for (const auto& c : choices_)
    if (c->reason == FinishReason::Error)
      return error_body(ApiError(500, "server_error", "internal_error", "", "generation failed: " + c->error));
  Json choices = Json::array();
  for (const auto& c : choices_) {
    Json ch;
    ch["index"] = c->index;
    if (chat_) {
      ch["message"] = Json{{"role", "assistant"}, {"content", c->text}};
      ch["logprobs"] = gen_.logprobs >= 0 ? Json{{"content", c->content_logprobs}} : Json(nullptr);
    } else {
      ch["text"] = echo_ ? c->echo_text + c->text : c->text;
      if (gen_.logprobs >= 0) {
        ch["logprobs"] = Json{{"tokens", c->tokens}, {"token_logprobs", c->token_logprobs},
                              {"top_logprobs", c->top_logprobs}, {"text_offset", c->text_offset}};
      } else {
        ch["logprobs"] = nullptr;
      }
    }
    ch["finish_reason"] = finish_name(c->reason);
    choices.push_back(std::move(ch));
  }
  Json j;
  j["id"] = id_;
  j["object"] = chat_ ? "chat.completion" : "text_completion";
  j["created"] = created_;
  j["model"] = ctx_.model_name;
  j["choices"] = std::move(choices);
  j["usage"] = usage();
  return j;
}

std::string CompletionJob::stream_tail() const {
  std::string out;
  if (gen_.include_usage) {
    Json j;
    j["id"] = id_;
    j["object"] = chat_ ? "chat.completion.chunk" : "text_completion";
    j["created"] = created_;
    j["model"] = ctx_.model_name;
    j["choices"] = Json::array();
    j["usage"] = usage();
    out += sse(j);
  }
  return out + "data: [DONE]\n\n";
}

std::string CompletionJob::summary() const {
  const Json u = usage();
  double ttft = 0, total = seconds(Clock::now() - arrival_);
  std::string reasons;
  for (const auto& c : choices_) {
    ttft = std::max(ttft, c->stats.first_token_seconds);
    if (!reasons.empty()) reasons += ',';
    reasons += c->finished ? finish_name(c->reason) : "unfinished";
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s prompt=%lld cached=%lld generated=%lld ttft=%.3fs total=%.3fs finish=%s", id_.c_str(),
                static_cast<long long>(u["prompt_tokens"].get<int64_t>()),
                static_cast<long long>(u["prompt_tokens_details"]["cached_tokens"].get<int64_t>()),
                static_cast<long long>(u["completion_tokens"].get<int64_t>()), ttft, total, reasons.c_str());
  return buf;
}

}  // namespace sparq::server
