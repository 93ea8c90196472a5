// libFuzzer target for structured output: the first byte picks GBNF (even) or a JSON schema (odd);
// the text up to the first 0xFF byte is the grammar, what follows is fed to a matcher over a
// vocabulary of single bytes and short strings, one byte at a time, with a mask before each.
// Invariants: compiling succeeds or throws sparq::Error; a byte is accepted exactly when the mask
// allowed its token; any other exception, a crash or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/core/error.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/structured_output.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

std::shared_ptr<const sparq::GrammarVocabulary> byte_vocabulary() {
  static const auto v = [] {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
    for (const char* t : {"{\"", "\":", "true", "null", "\xC3\xA9", "ab", "\\u00", "},"}) tokens.push_back(t);
    return std::make_shared<const sparq::GrammarVocabulary>(tokens);
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 4096) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = all.find('\xFF');
  const std::string_view spec = all.substr(0, cut);
  const std::string_view text = cut == std::string_view::npos ? std::string_view{} : all.substr(cut + 1);
  std::shared_ptr<const sparq::Grammar> grammar;
  try {
    grammar = data[0] % 2 == 0 ? sparq::compile_gbnf(spec) : sparq::compile_json_schema_text(spec, "fuzz");
  } catch (const sparq::Error&) {
    return 0;
  }
  try {
    sparq::GrammarMatcher m(grammar, byte_vocabulary());
    std::vector<uint32_t> mask;
    for (char ch : text) {
      m.allowed_tokens(mask);
      const auto b = static_cast<uint8_t>(ch);
      const bool allowed = (mask[b / 32] >> (b % 32)) & 1u;
      const bool accepted = m.accept_bytes(std::string_view(&ch, 1));
      require(allowed == accepted);
      if (!accepted) break;
    }
  } catch (const sparq::Error&) {
    // Too ambiguous a grammar is refused with an error, not followed.
  }
  return 0;
}
