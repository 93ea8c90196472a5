// One /v1/chat/completions or /v1/completions request on the engine service: its prompts are
// tokenized and checked against the model (vocabulary, context), one engine request is submitted
// per choice (prompts x n), and their events are gathered into the OpenAI response, whole or as
// server-sent-event chunks. The job runs on the HTTP thread that owns the connection; inference
// happens only on the service's stepping thread.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/server/openai_request.h"
#include "apps/server/serving_context.h"

namespace sparq::server {

class CompletionJob {
 public:
  using Clock = std::chrono::steady_clock;
  // Each writes one SSE event (already framed); false when the client is gone.
  using SseWriter = std::function<bool(const std::string& event)>;

  // Tokenize, check and submit. Throws ApiError: 400 (the request does not fit the model), 429
  // (the queue is full), 503 (the server is draining). Nothing stays submitted when it throws.
  static std::unique_ptr<CompletionJob> start_chat(const ServingContext& ctx, ChatRequest request, Clock::time_point arrival);
  static std::unique_ptr<CompletionJob> start_completion(const ServingContext& ctx, CompletionRequest request,
                                                          Clock::time_point arrival);
  ~CompletionJob();

  // Takes what has arrived, waiting up to `wait` for something; when streaming, writes each
  // chunk through `write` (a false return cancels the job). True once every choice finished.
  bool pump(std::chrono::milliseconds wait, const SseWriter& write = {});
  bool done() const;
  void cancel();

  bool streaming() const { return gen_.stream; }
  // After done(): the whole response (non-streaming), and its HTTP status (200, or 500 when a
  // step failed: then the body is the error object).
  nlohmann::ordered_json response() const;
  int status() const;
  // After done(), streaming: the final events (usage chunk if asked, then [DONE]).
  std::string stream_tail() const;
  // One line for the request log: id, tokens, timings, finish reasons.
  std::string summary() const;
  const std::string& id() const { return id_; }

 private:
  struct Choice;
  CompletionJob(const ServingContext& ctx, bool chat, GenerationFields gen, Clock::time_point arrival);
  void submit_all();
  void on_event(Choice& c, const GenerationEvent& ev, const SseWriter& write);
  std::string chunk(const Choice& c, const std::string& text, const nlohmann::ordered_json& logprobs,
                    const char* finish_reason) const;
  nlohmann::ordered_json usage() const;
  nlohmann::ordered_json token_logprob_entry(const PositionLogprobs& lp) const;
  nlohmann::ordered_json legacy_top(const PositionLogprobs& lp) const;
  void append_legacy(Choice& c, const std::string& piece, const PositionLogprobs* lp);
  std::string token_text(int32_t id) const;

  const ServingContext& ctx_;
  bool chat_;
  GenerationFields gen_;
  bool echo_ = false;
  Clock::time_point arrival_;
  std::string id_;
  int64_t created_ = 0;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<std::unique_ptr<Choice>> choices_;
};

}  // namespace sparq::server
