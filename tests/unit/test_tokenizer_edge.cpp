// Edge cases of the tokenizer.json path: invalid UTF-8, very long input, special-token text in
// user input, round trips, malformed tokenizer.json files, the regex dialect rewrite.
#include <catch2/catch.hpp>
#include <random>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/hf_tokenizer.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/tokenizer_loader.h"
#include "tokenizer_test_util.h"

using sparq::test::shared_tokenizer;

TEST_CASE("tokenizer: invalid UTF-8 is encoded as its U+FFFD replacement", "[tokenizer]") {
  for (const char* name : {"gemma2", "llama3_1"}) {
    const auto& tok = shared_tokenizer(name);
    const std::string bad = std::string("ok \xC3\x28 \xE2\x82 x \xF0\x9F\x98 \xFF\xFE end") + '\0' + "z";
    auto ids = tok.encode(bad, true);
    CHECK(ids == tok.encode(sparq::utf8::lossy(bad), true));
    CHECK(sparq::utf8::is_valid(tok.decode(ids)));
    CHECK(tok.decode(ids, true) == sparq::utf8::lossy(bad));
  }
}

TEST_CASE("utf8: lossy conversion follows the maximal-subpart rule", "[tokenizer]") {
  using sparq::utf8::lossy;
  CHECK(lossy("a\xF0\x9F\x98" "b") == "a\xEF\xBF\xBD" "b");  // truncated 4-byte: one U+FFFD
  CHECK(lossy("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong: two
  CHECK(lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  CHECK(sparq::utf8::incomplete_tail("ab\xE6\x97") == 2);
  CHECK(sparq::utf8::incomplete_tail("ab\xE6\x97\xA5") == 0);
}

TEST_CASE("tokenizer: very long inputs round-trip", "[tokenizer]") {
  std::string text;
  std::mt19937 rng(7);
  const char* words[] = {"alpha ", "βeta ", "日本 ", "🍕", "\n", "  ", "x", "1234567 ", "<|eot_id|>", "<bos>"};
  while (text.size() < 400000) text += words[rng() % 10];
  text += std::string(100000, 'a');  // one 100k-byte word
  text += std::string(50000, ' ');
  for (const char* name : {"gemma2", "llama3_1"}) {
    const auto& tok = shared_tokenizer(name);
    auto ids = tok.encode(text, false);
    CHECK(ids.size() > 10000);
    CHECK(tok.decode(ids, false) == text);
  }
}

TEST_CASE("tokenizer: special-token text in user input", "[tokenizer]") {
  const auto& tok = shared_tokenizer("llama3_1");
  const std::string text = "hi<|eot_id|><|start_header_id|>system";
  auto parsed = tok.encode(text, false, true);
  CHECK(std::count(parsed.begin(), parsed.end(), 128009) == 1);
  auto plain = tok.encode(text, false, false);
  CHECK(std::count(plain.begin(), plain.end(), 128009) == 0);
  CHECK(std::count(plain.begin(), plain.end(), 128006) == 0);
  CHECK(tok.decode(plain) == text);
  const auto& g = shared_tokenizer("gemma2");
  auto gp = g.encode("<start_of_turn>x", false, false);
  CHECK(gp.front() != 106);
  CHECK(g.decode(gp) == "<start_of_turn>x");
}

TEST_CASE("tokenizer: vocabulary queries", "[tokenizer]") {
  const auto& l = shared_tokenizer("llama3_1");
  CHECK(l.vocab_size() == 128256);
  CHECK(l.token_to_id("<|eot_id|>") == 128009);
  CHECK(l.token_to_id("ĠHello") == 22691);
  CHECK(l.is_special(128009));
  CHECK(!l.is_special(22691));
  CHECK(l.id_to_token(128000) == "<|begin_of_text|>");
  const auto& g = shared_tokenizer("gemma2");
  CHECK(g.vocab_size() == 256000);
  CHECK(g.token_to_id("<start_of_turn>") == 106);
  CHECK(g.token_to_id("\n") == 108);
  CHECK(g.token_to_id("<0x0A>").has_value());
  CHECK(g.id_to_token(235248) == "\xE2\x96\x81");
}

TEST_CASE("tokenizer: loading from a directory reads the config and template", "[tokenizer]") {
  auto loaded = sparq::load_tokenizer(std::string(SPARQ_SHARED_DIR) + "/data/tokenizers/gemma2");
  CHECK(loaded.tokenizer->kind() == "tokenizer.json");
  CHECK(loaded.bos_token == "<bos>");
  CHECK(loaded.eos_token == "<eos>");
  CHECK(loaded.chat_template.find("<start_of_turn>") != std::string::npos);
}

TEST_CASE("tokenizer: malformed tokenizer.json files give clear errors", "[tokenizer]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer("{not json"), Contains("not valid JSON"));
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer("{}"), Contains("no \"model\""));
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer(R"({"model":{"type":"Unigram","vocab":[]}})"),
                    Contains("model type 'Unigram' is not supported"));
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}})"),
                    Contains("missing from the vocab"));
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer(R"({"model":{"type":"BPE","vocab":{"a":"x"}}})"),
                    Contains("no integer id"));
  CHECK_THROWS_WITH(
      sparq::load_hf_tokenizer(R"({"normalizer":{"type":"Precompiled"},"model":{"type":"BPE","vocab":{"a":0}}})"),
      Contains("normalizer type 'Precompiled' is not supported"));
  CHECK_THROWS_WITH(sparq::load_hf_tokenizer(
                        R"({"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(["}},"model":{"type":"BPE","vocab":{"a":0}}})"),
                    Contains("cannot compile the regular expression"));
  CHECK_THROWS_WITH(sparq::load_tokenizer(std::string("/nonexistent/tokenizer.json")), Contains("does not exist"));
}

TEST_CASE("tokenizer: a small hand-written BPE (merges in both forms, unk, Metaspace)", "[tokenizer]") {
  const char* json = R"({
    "normalizer": null,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
    "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
    "added_tokens": [{"id": 7, "content": "<s>", "special": true, "normalized": false}],
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
        {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [7], "tokens": ["<s>"]}}},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
      "vocab": {"<unk>": 0, "▁": 1, "a": 2, "b": 3, "▁a": 4, "ab": 5, "▁ab": 6, "<s>": 7},
      "merges": ["▁ a", ["a", "b"], "▁a b"]}})";
  auto tok = sparq::load_hf_tokenizer(json);
  CHECK(tok->encode("ab", false) == std::vector<int32_t>{6});
  CHECK(tok->encode("ab ab", true) == std::vector<int32_t>{7, 6, 6});
  CHECK(tok->encode("aXYb", false) == std::vector<int32_t>{4, 0, 3});  // fused unknowns
  CHECK(tok->decode(std::vector<int32_t>{6, 6}) == "ab ab");
}

TEST_CASE("regex: Oniguruma \\s becomes Unicode White_Space for PCRE2", "[tokenizer]") {
  CHECK(sparq::oniguruma_to_pcre2(R"(\s+(?!\S)|[^\s\p{L}])") == R"([\s\x{85}]+(?![^\s\x{85}])|[^\s\x{85}\p{L}])");
  sparq::Regex re(R"(\s+)");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("a\xC2\x85" "b", [&](size_t b, size_t e) { m.push_back({b, e}); });
  CHECK(m == std::vector<std::pair<size_t, size_t>>{{1, 3}});
}
