// libFuzzer target for the server's request parsing: the payload is an HTTP request body as a
// client sends it; the first byte picks the endpoint (chat, completions, tokenize, detokenize).
// Invariants: parsing returns a request whose fields are within the documented limits, or throws
// ApiError with a 4xx status and a message; any other exception, a crash, a hang or unbounded
// memory on deep nesting is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "apps/server/api_error.h"
#include "apps/server/openai_request.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void check_generation(const sparq::server::GenerationFields& g) {
  using namespace sparq::server;
  require(g.n >= 1 && g.n <= kMaxChoices);
  require(!g.max_tokens || (*g.max_tokens >= 0 && *g.max_tokens <= (int64_t{1} << 24)));
  require(g.logprobs >= -1 && g.logprobs <= 20);
  require(static_cast<int64_t>(g.stop.size()) <= kMaxStopStrings);
  for (const auto& s : g.stop) require(!s.empty() && static_cast<int64_t>(s.size()) <= kMaxStopStringBytes);
  require(static_cast<int64_t>(g.logit_bias.size()) <= kMaxLogitBias);
  for (const auto& [id, bias] : g.logit_bias) require(id >= 0 && bias >= -100 && bias <= 100);
  require(g.sampling.temperature >= 0 && g.sampling.top_p > 0 && g.sampling.top_p <= 1);
  require(g.sampling.min_p >= 0 && g.sampling.min_p <= 1 && g.sampling.top_k >= 0);
  require(!g.include_usage || g.stream);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        const auto r = sparq::server::parse_chat_request(body);
        check_generation(r.gen);
        require(r.messages.is_array() && !r.messages.empty());
        for (const auto& m : r.messages) require(m.is_object() && m["role"].is_string() && (m["content"].is_string() || m["content"].is_null()));
        break;
      }
      case 1: {
        const auto r = sparq::server::parse_completion_request(body);
        check_generation(r.gen);
        require(!r.prompts.empty() && static_cast<int64_t>(r.prompts.size()) * r.gen.n <= sparq::server::kMaxPrompts);
        for (const auto& p : r.prompts) {
          require(!p.is_ids || !p.ids.empty());
          for (int64_t id : p.ids) require(id >= 0 && id <= INT32_MAX);
        }
        break;
      }
      case 2: sparq::server::parse_tokenize_request(body); break;
      default:
        for (int64_t id : sparq::server::parse_detokenize_request(body)) require(id >= 0 && id <= INT32_MAX);
    }
  } catch (const sparq::server::ApiError& e) {
    require(e.status >= 400 && e.status < 500 && e.what()[0] != '\0');
  }
  return 0;
}
