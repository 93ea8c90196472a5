// The bodies of OpenAI-style requests, parsed and checked field by field before anything reaches
// the engine. Every field that is present must have the documented type and range; a violation
// throws ApiError naming the field (param), so nothing a client sends can get further half-read.
// Fields this server does not implement but clients commonly send with their defaults (user,
// stream_options: null, ...) are accepted; ones that would change the output and are not
// implemented (suffix, best_of > n, tools) are refused by name rather than silently ignored.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine/sampler.h"
#include "runtime/grammar/grammar.h"

namespace sparq::server {

// Limits of one request (the server's, on top of the model's context).
constexpr int64_t kMaxChoices = 16;        // n
constexpr int64_t kMaxPrompts = 64;        // prompts in one /v1/completions request
constexpr int64_t kMaxStopStrings = 16;
constexpr int64_t kMaxStopStringBytes = 256;
constexpr int64_t kMaxLogitBias = 1024;
constexpr int64_t kMaxJsonDepth = 64;

// One prompt of /v1/completions: text (tokenized with the model's special tokens, BOS included)
// or token ids (used as they are).
struct PromptInput {
  bool is_ids = false;
  std::string text;
  std::vector<int64_t> ids;  // checked against the vocabulary later, where it is known
};

struct GenerationFields {
  std::string model;  // empty: the request did not name one
  int64_t n = 1;
  std::optional<int64_t> max_tokens;  // absent: the endpoint's default
  SamplingParams sampling;            // penalty_last_n = -1 (OpenAI's penalties see everything)
  bool seed_given = false;
  std::vector<std::pair<int64_t, float>> logit_bias;  // ids checked against the vocabulary later
  std::vector<std::string> stop;
  std::vector<int64_t> stop_token_ids;  // vLLM extension
  bool ignore_eos = false;              // vLLM extension
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  int32_t logprobs = -1;                // alternatives per token; -1 = no logprobs
  // response_format json_object / json_schema, or guided_grammar (GBNF): compiled while parsing.
  std::shared_ptr<const Grammar> grammar;
};

struct ChatRequest {
  GenerationFields gen;
  nlohmann::ordered_json messages;  // [{"role", "content": string}] with text parts joined
  bool add_generation_prompt = true;
};

struct CompletionRequest {
  GenerationFields gen;
  std::vector<PromptInput> prompts;
  bool echo = false;
};

// Parse a body; throws ApiError (400) naming the field that is wrong.
ChatRequest parse_chat_request(std::string_view body);
CompletionRequest parse_completion_request(std::string_view body);

// POST /tokenize: a prompt or chat messages. POST /detokenize: token ids.
struct TokenizeRequest {
  bool is_chat = false;
  std::string prompt;
  nlohmann::ordered_json messages;
  bool add_special_tokens = true;
  bool add_generation_prompt = true;
  bool return_token_strs = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body);
std::vector<int64_t> parse_detokenize_request(std::string_view body);

// The request's JSON object (ApiError for malformed JSON, nesting deeper than kMaxJsonDepth, or a
// body that is not an object).
nlohmann::ordered_json parse_request_object(std::string_view body);

}  // namespace sparq::server
