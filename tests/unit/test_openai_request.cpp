// The server's request parsing: fields as OpenAI and vLLM define them, and every bad input refused
// with a 400 that names the offending field.
#include <catch2/catch.hpp>

#include "apps/server/api_error.h"
#include "apps/server/openai_request.h"
#include "runtime/grammar/grammar_matcher.h"

using namespace sparq::server;

namespace {

// The ApiError a body raises (status 0 when it parses).
ApiError error_of(void (*parse)(std::string_view), std::string_view body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "", "", "", "parsed");
}
void chat(std::string_view b) { parse_chat_request(b); }
void completion(std::string_view b) { parse_completion_request(b); }

}  // namespace

TEST_CASE("chat request: fields, defaults and content parts", "[server]") {
  const ChatRequest r = parse_chat_request(R"({"model":"m","messages":[{"role":"developer","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null}],
      "temperature":0,"top_p":0.5,"top_k":-1,"n":3,"seed":7,"stop":["x","y"],"logprobs":true,"top_logprobs":4,
      "max_completion_tokens":9,"stream":true,"stream_options":{"include_usage":true},"logit_bias":{"12":-100},"user":"u"})");
  CHECK(r.gen.model == "m");
  CHECK(r.messages[0]["role"] == "system");
  CHECK(r.messages[1]["content"] == "ab");
  CHECK(r.messages[2]["content"].is_null());
  CHECK(r.gen.sampling.temperature == 0.0f);
  CHECK(r.gen.sampling.top_p == 0.5f);
  CHECK(r.gen.sampling.top_k == 0);
  CHECK(r.gen.n == 3);
  CHECK(r.gen.seed_given);
  CHECK(r.gen.sampling.seed == 7);
  CHECK(r.gen.stop == std::vector<std::string>{"x", "y"});
  CHECK(r.gen.logprobs == 4);
  CHECK(r.gen.max_tokens == 9);
  CHECK(r.gen.include_usage);
  REQUIRE(r.gen.logit_bias.size() == 1);
  CHECK(r.gen.logit_bias[0] == std::pair<int64_t, float>{12, -100.0f});

  const ChatRequest d = parse_chat_request(R"({"messages":[{"role":"user","content":"hi"}]})");
  CHECK(d.gen.sampling.temperature == 1.0f);  // OpenAI's default
  CHECK(!d.gen.max_tokens);
  CHECK(d.gen.logprobs == -1);
  CHECK(d.gen.n == 1);
}

TEST_CASE("completion request: the four prompt shapes", "[server]") {
  CompletionRequest r = parse_completion_request(R"({"prompt":"hello"})");
  REQUIRE(r.prompts.size() == 1);
  CHECK(!r.prompts[0].is_ids);
  CHECK(r.gen.max_tokens == 16);  // OpenAI's default for completions
  r = parse_completion_request(R"({"prompt":["a","b"]})");
  CHECK(r.prompts.size() == 2);
  r = parse_completion_request(R"({"prompt":[1,2,3],"echo":true,"logprobs":1,"max_tokens":0})");
  REQUIRE(r.prompts.size() == 1);
  CHECK(r.prompts[0].is_ids);
  CHECK(r.prompts[0].ids == std::vector<int64_t>{1, 2, 3});
  CHECK(r.echo);
  CHECK(r.gen.logprobs == 1);
  CHECK(r.gen.max_tokens == 0);
  r = parse_completion_request(R"({"prompt":[[1],[2,3]]})");
  REQUIRE(r.prompts.size() == 2);
  CHECK(r.prompts[1].ids.size() == 2);
}

TEST_CASE("bad requests name the offending field", "[server]") {
  struct Case {
    void (*parse)(std::string_view);
    const char* body;
    const char* param;
    const char* code;
  };
  const Case cases[] = {
      {chat, "{not json", "", "invalid_json"},
      {chat, "[1,2]", "", "invalid_json"},
      {chat, R"({"model":"m"})", "messages", "missing_required_parameter"},
      {chat, R"({"messages":"hi"})", "messages", "invalid_type"},
      {chat, R"({"messages":[]})", "messages", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":5}]})", "messages[0].content", "invalid_type"},
      {chat, R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content[0].type", "unsupported_parameter"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature", "invalid_type"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":-1})", "temperature", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"top_p":0})", "top_p", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"n":1000})", "n", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"5"})", "max_tokens", "invalid_type"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"stop":5})", "stop", "invalid_type"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"stop":[""]})", "stop[0]", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})", "top_logprobs", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"logit_bias":{"a":1}})", "logit_bias", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"logit_bias":{"3":101}})", "logit_bias.3", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})", "stream_options", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}})", "response_format", "unsupported_parameter"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})", "response_format.json_schema", "invalid_type"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a"}}})", "response_format.json_schema.schema", "invalid_value"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{"not":{}}}}})", "response_format.json_schema.schema", "invalid_value"},
      {completion, R"({"prompt":"x","guided_grammar":"root ::= foo"})", "guided_grammar", "invalid_value"},
      {completion, R"({"prompt":"x","guided_grammar":5})", "guided_grammar", "invalid_type"},
      {chat, R"({"messages":[{"role":"user","content":"x"}],"model":3})", "model", "invalid_type"},
      {completion, R"({"max_tokens":3})", "prompt", "missing_required_parameter"},
      {completion, R"({"prompt":5})", "prompt", "invalid_type"},
      {completion, R"({"prompt":[]})", "prompt", "invalid_value"},
      {completion, R"({"prompt":[1,-2]})", "prompt[1]", "invalid_value"},
      {completion, R"({"prompt":[[1],[]]})", "prompt[1]", "invalid_value"},
      {completion, R"({"prompt":["a",3]})", "prompt[1]", "invalid_type"},
      {completion, R"({"prompt":"a","max_tokens":-1})", "max_tokens", "invalid_value"},
      {completion, R"({"prompt":"a","logprobs":true})", "logprobs", "invalid_type"},
      {completion, R"({"prompt":"a","echo":"yes"})", "echo", "invalid_type"},
      {completion, R"({"prompt":"a","suffix":"b"})", "suffix", "unsupported_parameter"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    const ApiError e = error_of(c.parse, c.body);
    CHECK(e.status == 400);
    CHECK(e.param == c.param);
    CHECK(e.code == c.code);
  }
}

TEST_CASE("response_format and guided_grammar compile the request's grammar", "[server]") {
  CHECK(!parse_chat_request(R"({"messages":[{"role":"user","content":"x"}]})").gen.grammar);
  CHECK(!parse_chat_request(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})").gen.grammar);
  CHECK(parse_chat_request(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})").gen.grammar);
  const auto r = parse_chat_request(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",
      "json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"integer"}},
      "required":["b","a"],"additionalProperties":false}}}})");
  REQUIRE(r.gen.grammar);
  // The declared order (b before a) is kept from the request body.
  CHECK(sparq::GrammarMatcher::matches(*r.gen.grammar, R"({"b":1,"a":2})"));
  CHECK(!sparq::GrammarMatcher::matches(*r.gen.grammar, R"({"a":2,"b":1})"));
  CHECK(parse_completion_request(R"({"prompt":"x","guided_grammar":"root ::= \"yes\" | \"no\""})").gen.grammar);
}

TEST_CASE("deep nesting is refused before it is built", "[server]") {
  const std::string deep = "{\"messages\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const ApiError e = error_of(chat, deep);
  CHECK(e.status == 400);
  CHECK(e.code == "invalid_json");
}

TEST_CASE("tokenize and detokenize requests", "[server]") {
  TokenizeRequest t = parse_tokenize_request(R"({"prompt":"hi","add_special_tokens":false,"return_token_strs":true})");
  CHECK(!t.is_chat);
  CHECK(t.prompt == "hi");
  CHECK(!t.add_special_tokens);
  CHECK(t.return_token_strs);
  t = parse_tokenize_request(R"({"messages":[{"role":"user","content":"x"}]})");
  CHECK(t.is_chat);
  CHECK(!t.add_special_tokens);
  CHECK(parse_detokenize_request(R"({"tokens":[5,6]})") == std::vector<int64_t>{5, 6});
  try {
    parse_detokenize_request(R"({"tokens":[5,"x"]})");
    FAIL("accepted a string token");
  } catch (const ApiError& e) {
    CHECK(e.param == "tokens[1]");
  }
}
