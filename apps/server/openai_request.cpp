#include "apps/server/openai_request.h"

#include <cmath>
#include <limits>

#include "apps/server/api_error.h"
#include "runtime/core/error.h"
#include "runtime/grammar/structured_output.h"

namespace sparq::server {

namespace {

using Json = nlohmann::ordered_json;

const Json* field(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t int_in(const Json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) invalid_type(param, "an integer");
  // Unsigned values above int64's range come as number_unsigned.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    invalid_value(param, "'" + param + "' must be at most " + std::to_string(hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    invalid_value(param, "'" + param + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                             std::to_string(x));
  return x;
}

double number_in(const Json& v, const std::string& param, double lo, double hi, bool lo_open = false) {
  if (!v.is_number()) invalid_type(param, "a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi) {
    char range[96];
    std::snprintf(range, sizeof range, "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
    invalid_value(param, "'" + param + "' must be in " + range);
  }
  return x;
}

bool boolean(const Json& v, const std::string& param) {
  if (!v.is_boolean()) invalid_type(param, "a boolean");
  return v.get<bool>();
}

std::string string_of(const Json& v, const std::string& param) {
  if (!v.is_string()) invalid_type(param, "a string");
  return v.get<std::string>();
}

[[noreturn]] void unsupported(const std::string& param, const std::string& what) {
  throw ApiError(400, "invalid_request_error", "unsupported_parameter", param, what);
}

std::vector<std::string> parse_stop(const Json& v) {
  std::vector<std::string> out;
  auto add = [&](const Json& s, const std::string& param) {
    std::string text = string_of(s, param);
    if (text.empty()) invalid_value(param, "stop strings must not be empty");
    if (static_cast<int64_t>(text.size()) > kMaxStopStringBytes)
      invalid_value(param, "stop strings may be at most " + std::to_string(kMaxStopStringBytes) + " bytes");
    out.push_back(std::move(text));
  };
  if (v.is_string()) {
    add(v, "stop");
  } else if (v.is_array()) {
    if (static_cast<int64_t>(v.size()) > kMaxStopStrings)
      invalid_value("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings");
    for (size_t i = 0; i < v.size(); ++i) add(v[i], "stop[" + std::to_string(i) + "]");
  } else {
    invalid_type("stop", "a string or a list of strings");
  }
  return out;
}

std::vector<std::pair<int64_t, float>> parse_logit_bias(const Json& v) {
  if (!v.is_object()) invalid_type("logit_bias", "an object mapping token ids to numbers");
  if (static_cast<int64_t>(v.size()) > kMaxLogitBias)
    invalid_value("logit_bias", "at most " + std::to_string(kMaxLogitBias) + " entries");
  std::vector<std::pair<int64_t, float>> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string param = "logit_bias." + it.key();
    int64_t id = -1;
    size_t used = 0;
    try {
      id = std::stoll(it.key(), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != it.key().size() || id < 0) invalid_value("logit_bias", "logit_bias keys must be token ids, got '" + it.key() + "'");
    out.emplace_back(id, static_cast<float>(number_in(it.value(), param, -100, 100)));
  }
  return out;
}

// The fields /v1/chat/completions and /v1/completions share.
GenerationFields parse_generation(const Json& body, bool chat) {
  GenerationFields g;
  g.sampling.temperature = 1.0f;  // OpenAI's default
  g.sampling.penalty_last_n = -1;
  if (auto* v = field(body, "model")) g.model = string_of(*v, "model");
  if (auto* v = field(body, "n")) g.n = int_in(*v, "n", 1, kMaxChoices);
  if (auto* v = field(body, "best_of"); v && int_in(*v, "best_of", 1, kMaxChoices) != g.n)
    unsupported("best_of", "best_of other than n is not supported");
  const char* max_names[] = {"max_tokens", "max_completion_tokens"};
  for (const char* name : max_names)
    if (auto* v = field(body, name)) g.max_tokens = int_in(*v, name, chat ? 1 : 0, int64_t{1} << 24);
  SamplingParams& s = g.sampling;
  if (auto* v = field(body, "temperature")) s.temperature = static_cast<float>(number_in(*v, "temperature", 0, 100));
  if (auto* v = field(body, "top_p")) s.top_p = static_cast<float>(number_in(*v, "top_p", 0, 1, /*lo_open=*/true));
  if (auto* v = field(body, "top_k")) {
    const int64_t k = int_in(*v, "top_k", -1, std::numeric_limits<int32_t>::max());
    s.top_k = k < 0 ? 0 : static_cast<int32_t>(k);  // vLLM: -1 = off
  }
  if (auto* v = field(body, "min_p")) s.min_p = static_cast<float>(number_in(*v, "min_p", 0, 1));
  if (auto* v = field(body, "presence_penalty")) s.presence_penalty = static_cast<float>(number_in(*v, "presence_penalty", -2, 2));
  if (auto* v = field(body, "frequency_penalty")) s.frequency_penalty = static_cast<float>(number_in(*v, "frequency_penalty", -2, 2));
  if (auto* v = field(body, "repetition_penalty"))
    s.repeat_penalty = static_cast<float>(number_in(*v, "repetition_penalty", 0, 100, /*lo_open=*/true));
  if (auto* v = field(body, "seed")) {
    if (!v->is_number_integer()) invalid_type("seed", "an integer");
    s.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    g.seed_given = true;
  }
  if (auto* v = field(body, "logit_bias")) g.logit_bias = parse_logit_bias(*v);
  if (auto* v = field(body, "stop")) g.stop = parse_stop(*v);
  if (auto* v = field(body, "stop_token_ids")) {
    if (!v->is_array()) invalid_type("stop_token_ids", "a list of token ids");
    if (static_cast<int64_t>(v->size()) > kMaxStopStrings)
      invalid_value("stop_token_ids", "at most " + std::to_string(kMaxStopStrings) + " stop token ids");
    for (size_t i = 0; i < v->size(); ++i)
      g.stop_token_ids.push_back(int_in((*v)[i], "stop_token_ids[" + std::to_string(i) + "]", 0, std::numeric_limits<int32_t>::max()));
  }
  if (auto* v = field(body, "ignore_eos")) g.ignore_eos = boolean(*v, "ignore_eos");
  if (auto* v = field(body, "stream")) g.stream = boolean(*v, "stream");
  if (auto* v = field(body, "stream_options")) {
    if (!v->is_object()) invalid_type("stream_options", "an object");
    if (!g.stream) invalid_value("stream_options", "stream_options is only allowed with stream: true");
    if (auto* u = field(*v, "include_usage")) g.include_usage = boolean(*u, "stream_options.include_usage");
  }
  if (auto* v = field(body, "response_format")) {
    if (!v->is_object() || !v->contains("type") || !(*v)["type"].is_string())
      invalid_type("response_format", "an object with a string 'type'");
    const std::string type = (*v)["type"].get<std::string>();
    if (type == "json_object") {
      g.grammar = json_object_grammar();
    } else if (type == "json_schema") {
      const Json* js = field(*v, "json_schema");
      if (!js || !js->is_object()) invalid_type("response_format.json_schema", "an object with a 'schema'");
      const Json* schema = field(*js, "schema");
      if (!schema) invalid_value("response_format.json_schema.schema", "the schema is missing");
      try {
        g.grammar = compile_json_schema(*schema);
      } catch (const Error& e) {
        invalid_value("response_format.json_schema.schema", e.what());
      }
    } else if (type != "text") {
      unsupported("response_format", "response_format '" + type + "' is not supported (text, json_object, json_schema)");
    }
  }
  // vLLM's extension: a grammar in GBNF.
  if (auto* v = field(body, "guided_grammar")) {
    if (g.grammar) invalid_value("guided_grammar", "guided_grammar and a JSON response_format exclude each other");
    try {
      g.grammar = compile_gbnf(string_of(*v, "guided_grammar"));
    } catch (const Error& e) {
      invalid_value("guided_grammar", e.what());
    }
  }
  if (auto* v = field(body, "tools"); v && !(v->is_array() && v->empty())) unsupported("tools", "tool calling is not supported");
  return g;
}

Json chat_content(const Json& content, const std::string& param) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) invalid_type(param, "a string or a list of content parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string part_param = param + "[" + std::to_string(i) + "]";
    const Json& part = content[i];
    if (!part.is_object()) invalid_type(part_param, "an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) invalid_type(part_param + ".type", "a string");
    if (*type != "text") unsupported(part_param + ".type", "content parts of type '" + type->get<std::string>() + "' are not supported");
    auto t = part.find("text");
    if (t == part.end()) missing_param(part_param + ".text");
    text += string_of(*t, part_param + ".text");
  }
  return text;
}

Json parse_messages(const Json& body) {
  const Json* v = field(body, "messages");
  if (!v) missing_param("messages");
  if (!v->is_array()) invalid_type("messages", "a list of messages");
  if (v->empty()) invalid_value("messages", "'messages' must not be empty");
  Json out = Json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string param = "messages[" + std::to_string(i) + "]";
    const Json& m = (*v)[i];
    if (!m.is_object()) invalid_type(param, "an object with 'role' and 'content'");
    Json msg = m;
    auto role = m.find("role");
    if (role == m.end()) missing_param(param + ".role");
    const std::string r = string_of(*role, param + ".role");
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      invalid_value(param + ".role", "unknown role '" + r + "' (system, developer, user, assistant or tool)");
    if (r == "developer") msg["role"] = "system";  // the newer name of the same role
    auto content = m.find("content");
    if (content == m.end()) {
      if (r != "assistant") missing_param(param + ".content");
      msg["content"] = nullptr;
    } else {
      msg["content"] = chat_content(*content, param + ".content");
      if (msg["content"].is_null() && r != "assistant") invalid_type(param + ".content", "a string or a list of content parts");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

PromptInput ids_prompt(const Json& v, const std::string& param) {
  PromptInput p;
  p.is_ids = true;
  if (v.empty()) invalid_value(param, "a token-id prompt must not be empty");
  for (size_t i = 0; i < v.size(); ++i) p.ids.push_back(int_in(v[i], param + "[" + std::to_string(i) + "]", 0, std::numeric_limits<int32_t>::max()));
  return p;
}

std::vector<PromptInput> parse_prompts(const Json& body) {
  const Json* v = field(body, "prompt");
  if (!v) missing_param("prompt");
  std::vector<PromptInput> out;
  if (v->is_string()) {
    out.push_back({false, v->get<std::string>(), {}});
    return out;
  }
  if (!v->is_array()) invalid_type("prompt", "a string, a list of strings, a list of token ids or a list of token-id lists");
  if (v->empty()) invalid_value("prompt", "'prompt' must not be empty");
  if ((*v)[0].is_number()) {
    out.push_back(ids_prompt(*v, "prompt"));
    return out;
  }
  if (static_cast<int64_t>(v->size()) > kMaxPrompts) invalid_value("prompt", "at most " + std::to_string(kMaxPrompts) + " prompts per request");
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string param = "prompt[" + std::to_string(i) + "]";
    const Json& p = (*v)[i];
    if (p.is_string()) out.push_back({false, p.get<std::string>(), {}});
    else if (p.is_array()) out.push_back(ids_prompt(p, param));
    else invalid_type(param, "a string or a list of token ids");
  }
  return out;
}

}  // namespace

Json parse_request_object(std::string_view body) {
  Json j;
  try {
    // The callback bounds nesting: a deeply nested body is refused before it is built.
    j = Json::parse(body, [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxJsonDepth)
        throw ApiError(400, "invalid_request_error", "invalid_json", "", "the request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(400, "invalid_request_error", "invalid_json", "", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "invalid_request_error", "invalid_json", "", "the request body must be a JSON object");
  return j;
}

ChatRequest parse_chat_request(std::string_view body) {
  const Json j = parse_request_object(body);
  ChatRequest r;
  r.messages = parse_messages(j);
  r.gen = parse_generation(j, /*chat=*/true);
  if (auto* v = field(j, "logprobs"); v && boolean(*v, "logprobs")) r.gen.logprobs = 0;
  if (auto* v = field(j, "top_logprobs")) {
    const int64_t k = int_in(*v, "top_logprobs", 0, 20);
    if (r.gen.logprobs < 0) invalid_value("top_logprobs", "top_logprobs needs logprobs: true");
    r.gen.logprobs = static_cast<int32_t>(k);
  }
  if (auto* v = field(j, "add_generation_prompt")) r.add_generation_prompt = boolean(*v, "add_generation_prompt");
  return r;
}

CompletionRequest parse_completion_request(std::string_view body) {
  const Json j = parse_request_object(body);
  CompletionRequest r;
  r.prompts = parse_prompts(j);
  r.gen = parse_generation(j, /*chat=*/false);
  if (!r.gen.max_tokens) r.gen.max_tokens = 16;  // OpenAI's default for completions
  if (auto* v = field(j, "logprobs")) r.gen.logprobs = static_cast<int32_t>(int_in(*v, "logprobs", 0, 20));
  if (auto* v = field(j, "echo")) r.echo = boolean(*v, "echo");
  if (auto* v = field(j, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    unsupported("suffix", "suffix is not supported");
  if (static_cast<int64_t>(r.prompts.size()) * r.gen.n > kMaxPrompts)
    invalid_value("n", "prompts times n may be at most " + std::to_string(kMaxPrompts));
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  const Json j = parse_request_object(body);
  TokenizeRequest r;
  if (j.contains("messages")) {
    r.is_chat = true;
    r.messages = parse_messages(j);
    r.add_special_tokens = false;  // the template writes the special tokens
    if (auto* v = field(j, "add_generation_prompt")) r.add_generation_prompt = boolean(*v, "add_generation_prompt");
  } else {
    const Json* p = field(j, "prompt");
    if (!p) missing_param("prompt");
    r.prompt = string_of(*p, "prompt");
  }
  if (auto* v = field(j, "add_special_tokens")) r.add_special_tokens = boolean(*v, "add_special_tokens");
  if (auto* v = field(j, "return_token_strs")) r.return_token_strs = boolean(*v, "return_token_strs");
  return r;
}

std::vector<int64_t> parse_detokenize_request(std::string_view body) {
  const Json j = parse_request_object(body);
  const Json* v = field(j, "tokens");
  if (!v) missing_param("tokens");
  if (!v->is_array()) invalid_type("tokens", "a list of token ids");
  std::vector<int64_t> ids;
  for (size_t i = 0; i < v->size(); ++i)
    ids.push_back(int_in((*v)[i], "tokens[" + std::to_string(i) + "]", 0, std::numeric_limits<int32_t>::max()));
  return ids;
}

}  // namespace sparq::server
