// Structured output: the GBNF parser's errors, matching (repetitions, classes, UTF-8), the token
// mask against a brute-force check of every token, the JSON-schema converter's refusals, and the
// engine generating under a schema. Agreement with llguidance and xgrammar on a corpus of
// schemas and texts is checked in tests/py/test_grammar.py.
#include <catch2/catch.hpp>

#include <random>

#include "engine_test_util.h"
#include "runtime/grammar/gbnf_parser.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/grammar/structured_output.h"

using namespace sparq;
using namespace sparq::test;

namespace {

bool accepts(std::string_view gbnf, std::string_view text) { return GrammarMatcher::matches(parse_gbnf(gbnf), text); }

// The tokens a grammar allows after `prefix`, one fresh matcher per token: the mask's definition.
std::vector<bool> brute_force(const std::shared_ptr<const Grammar>& g, const std::shared_ptr<const GrammarVocabulary>& v,
                              std::string_view prefix) {
  std::vector<bool> out(v->size());
  for (size_t id = 0; id < v->size(); ++id) {
    GrammarMatcher m(g, v);
    REQUIRE(m.accept_bytes(prefix));
    out[id] = m.accept_token(static_cast<TokenId>(id));
  }
  return out;
}

}  // namespace

TEST_CASE("GBNF grammars parse, and their errors name the place and the problem", "[grammar]") {
  CHECK_THROWS_WITH(parse_gbnf("root ::= foo"), Catch::Contains("rule 'foo' is used but never defined"));
  CHECK_THROWS_WITH(parse_gbnf("start ::= \"a\""), Catch::Contains("no rule named 'root'"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= a\na ::= a \"x\" | \"y\""), Catch::Contains("'a' is left-recursive"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= b\nb ::= c? \"x\"\nc ::= b"), Catch::Contains("left-recursive"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= \"a\"\n\nroot ::= \"b\""), Catch::Contains("line 3, column 1: rule 'root' is defined twice"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= \"abc"), Catch::Contains("unterminated literal"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= [a-"), Catch::Contains("unterminated character class"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= [z-a]"), Catch::Contains("runs backwards"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= \"a\"{3,2}"), Catch::Contains("maximum is below its minimum"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= * \"a\""), Catch::Contains("follows nothing"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= \"\\q\""), Catch::Contains("unknown escape"));
  CHECK_THROWS_WITH(parse_gbnf("root = \"a\""), Catch::Contains("line 1, column 6: expected ::="));
  // Repetitions copy their item: a grammar that expands past two million symbols is refused.
  const std::string hundred = "\"" + std::string(100, 'x') + "\"{10000} ";
  CHECK_THROWS_WITH(parse_gbnf("root ::= " + hundred + hundred + hundred), Catch::Contains("expands to more than"));
  CHECK_NOTHROW(parse_gbnf("# a comment\nroot ::= (\n  \"a\" |\n  \"b\"  # inside\n)\n  | \"c\"\n"));
}

TEST_CASE("grammars match repetitions, classes, groups and UTF-8 exactly", "[grammar]") {
  CHECK(accepts("root ::= \"ab\"{2,3}", "abab"));
  CHECK(accepts("root ::= \"ab\"{2,3}", "ababab"));
  CHECK(!accepts("root ::= \"ab\"{2,3}", "ab"));
  CHECK(!accepts("root ::= \"ab\"{2,3}", "abababab"));
  CHECK(accepts("root ::= [a-c]{2,} \"!\"", "abcab!"));
  CHECK(!accepts("root ::= [a-c]{2,} \"!\"", "a!"));
  CHECK(accepts("root ::= [^a-c]+", "xyz"));
  CHECK(!accepts("root ::= [^a-c]+", "xbz"));
  CHECK(accepts("root ::= (\"x\" | \"y\" \"z\")* \"end\"", "xyzxend"));
  CHECK(!accepts("root ::= (\"x\" | \"y\" \"z\")* \"end\"", "xyend"));
  CHECK(accepts("root ::= \"caf\\u00e9\" [α-ω]", "café\xce\xb2"));  // é written escaped, β raw
  CHECK(!accepts("root ::= \"caf\\u00e9\" [α-ω]", "cafeβ"));
  CHECK(accepts("root ::= . . .", "a\xF0\x9F\x98\x80z"));  // three characters, one of them 4 bytes
  // Overlong and surrogate encodings are not characters.
  CHECK(!accepts("root ::= \"}\"", "\xE0\x81\xBD"));
  CHECK(!accepts("root ::= .", "\xC1\xBD"));
  CHECK(!accepts("root ::= .", "\xED\xA0\x80"));
  CHECK(!accepts("root ::= .", "\xF4\x90\x80\x80"));
  CHECK(accepts("root ::= \"a\"?", ""));
  CHECK(!accepts("root ::= \"a\"", ""));
}

TEST_CASE("the token mask is exactly the set of tokens a fresh matcher accepts", "[grammar]") {
  // Tokens: every 1- and 2-byte string over a small alphabet, and pieces of multi-byte characters.
  const std::string alphabet = "{}[]\":,ab1-\\ ";
  std::vector<std::string> tokens{"", "\xC3", "\xA9", "\xC3\xA9", "\xE2\x82", "\xAC", "\xE0\x81", "\"\xC3"};
  for (char a : alphabet) {
    tokens.push_back(std::string(1, a));
    for (char b : alphabet) tokens.push_back(std::string{a, b});
  }
  auto vocab = std::make_shared<const GrammarVocabulary>(tokens);
  const auto schema = nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer","minimum":-5,"maximum":12}},
          "b":{"type":"string","maxLength":3}},"required":["a"]})");
  auto grammar = compile_json_schema(schema);
  const std::string text = "{\"a\":[1,-5,12],\"b\":\"\xC3\xA9\\\\b\",\"ab\":[]}";
  REQUIRE(GrammarMatcher::matches(*grammar, text));
  GrammarMatcher m(grammar, vocab);
  std::vector<uint32_t> mask;
  for (size_t at = 0; at <= text.size(); ++at) {
    INFO("after " << text.substr(0, at));
    m.allowed_tokens(mask);
    const std::vector<bool> want = brute_force(grammar, vocab, text.substr(0, at));
    for (size_t id = 0; id < tokens.size(); ++id) {
      INFO("token " << id << " '" << tokens[id] << "'");
      CHECK(((mask[id / 32] >> (id % 32)) & 1u) == (want[id] ? 1u : 0u));
    }
    if (at < text.size()) REQUIRE(m.accept_bytes(text.substr(at, 1)));
  }
  CHECK(m.complete());
  CHECK(!m.accept_token(0));  // the empty token is never allowed
}

TEST_CASE("JSON schemas with unsupported keywords are refused by name", "[grammar]") {
  auto refuse = [](const char* schema, const char* what) {
    CHECK_THROWS_WITH(json_schema_to_gbnf(nlohmann::ordered_json::parse(schema)), Catch::Contains(what));
  };
  refuse(R"({"not":{"type":"string"}})", "'not' is not supported");
  refuse(R"({"type":"integer","multipleOf":3})", "'multipleOf' is not supported");
  refuse(R"({"type":"string","format":"date"})", "/format: string formats are not supported");
  refuse(R"({"type":"array","uniqueItems":true})", "/uniqueItems");
  refuse(R"({"type":"object","patternProperties":{}})", "/patternProperties");
  refuse(R"({"$ref":"http://example.com/s.json"})", "only local references");
  refuse(R"({"$ref":"#/$defs/missing"})", "names no definition");
  refuse(R"({"type":"number","minimum":1})", "on integers, not on numbers");
  refuse(R"({"type":"integer","minimum":5,"maximum":4})", "no integer lies between");
  refuse(R"J({"type":"string","pattern":"(?=a)"})J", "lookarounds");
  refuse(R"({"type":"object","properties":{"x":{"type":"blob"}}})", "/properties/x/type: unknown type 'blob'");
  refuse(R"({"type":"object","required":["x"]})", "names 'x', which is not among the properties");
  refuse(R"({"fancyKeyword":1})", "'fancyKeyword' is not supported");
  CHECK_NOTHROW(json_schema_to_gbnf(nlohmann::ordered_json::parse(R"({"title":"t","description":"d","type":"null"})")));
  CHECK_THROWS_WITH(compile_json_schema_text("{", "schema.json"), Catch::Contains("schema.json: not valid JSON"));
}

TEST_CASE("the engine generates text its grammar accepts, greedy and sampled", "[grammar][engine]") {
  FixtureModel m("llama-w8a8-int8");
  auto cache = m.cache(256);
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), EngineOptions{});
  const auto schema = nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":99},
          "ok":{"type":"boolean"}},"required":["n","ok"],"additionalProperties":false})");
  const auto grammar = compile_json_schema(schema);
  for (float temperature : {0.0f, 1.0f}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      Collected c;
      GenerationRequest r = greedy_request(m.tok.tokenizer->encode("Answer:", true), 64, c);
      r.grammar = grammar;
      r.sampling.temperature = temperature;
      r.sampling.seed = seed;
      engine.submit(std::move(r));
      engine.run_until_idle();
      INFO("temperature " << temperature << " seed " << seed << ": " << c.text);
      CHECK(c.reason == FinishReason::GrammarComplete);
      CHECK(GrammarMatcher::matches(*grammar, c.text));
      CHECK(nlohmann::json::parse(c.text).at("n").get<int>() <= 99);
    }
  }
  CHECK(engine.totals().grammar_masks > 0);
  CHECK(all_blocks_free(engine));
  // A model without a tokenizer cannot take a grammar.
  Engine bare(*m.prepared, *cache, nullptr, EngineOptions{});
  GenerationRequest r;
  r.prompt = {1, 2};
  r.grammar = grammar;
  CHECK_THROWS_WITH(bare.submit(std::move(r)), Catch::Contains("needs the model's tokenizer"));
}

TEST_CASE("hostile grammars and schemas are refused with an error, never by exhausting the stack", "[grammar]") {
  std::string nested_items = R"({"type":"integer"})";
  for (int i = 0; i < 100; ++i) nested_items = R"({"type":"array","items":)" + nested_items + "}";
  CHECK_THROWS_WITH(json_schema_to_gbnf(nlohmann::ordered_json::parse(nested_items)), Catch::Contains("nest more than 64"));
  const std::string deep_pattern = R"({"type":"string","pattern":")" + std::string(300, '(') + "a" + std::string(300, ')') + "\"}";
  CHECK_THROWS_WITH(json_schema_to_gbnf(nlohmann::ordered_json::parse(deep_pattern)), Catch::Contains("groups nest more than"));
  CHECK_THROWS_WITH(parse_gbnf("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')')),
                    Catch::Contains("groups nest more than 256"));
  // A chain of rules entered before any character: the parser takes it, the matcher refuses it.
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 3000; ++i) {
    chain += 'r';
    chain += std::to_string(i);
    chain += " ::= r";
    chain += std::to_string(i + 1);
    chain += '\n';
  }
  chain += "r3000 ::= \"x\"\n";
  CHECK_THROWS_WITH(GrammarMatcher::matches(parse_gbnf(chain), "x"), Catch::Contains("rules nest more than"));
  // A long property name is not excluded from additional keys, rather than one rule per byte.
  const std::string long_name = R"({"type":"object","properties":{")" + std::string(100000, 'k') + R"(":{"type":"null"}}})";
  CHECK_NOTHROW(json_schema_to_gbnf(nlohmann::ordered_json::parse(long_name)));
  CHECK_THROWS_WITH(json_schema_to_gbnf(nlohmann::ordered_json::parse(R"({"type":"string","minLength":9223372036854775808})")),
                    Catch::Contains("values above 10000"));
}

TEST_CASE("schema details: exact integer bounds, pattern anchors and escapes, non-ASCII names", "[grammar]") {
  auto schema_accepts = [](const char* schema, std::string_view text) {
    return GrammarMatcher::matches(*compile_json_schema(nlohmann::ordered_json::parse(schema)), text);
  };
  CHECK(schema_accepts(R"({"type":"integer","maximum":52961095122674454})", "52961095122674454"));
  CHECK(!schema_accepts(R"({"type":"integer","maximum":52961095122674454})", "52961095122674455"));
  CHECK(schema_accepts(R"({"type":"integer","minimum":49012472477720268,"maximum":49012472477720268})",
                       "49012472477720268"));
  CHECK(!schema_accepts(R"({"type":"integer","exclusiveMinimum":7})", "7"));
  CHECK(schema_accepts(R"({"type":"integer","exclusiveMinimum":7})", "8"));
  // Each top-level alternative keeps its own anchors.
  CHECK(schema_accepts(R"({"type":"string","pattern":"^a|b$"})", R"("ax")"));
  CHECK(schema_accepts(R"({"type":"string","pattern":"^a|b$"})", R"("xb")"));
  CHECK(!schema_accepts(R"({"type":"string","pattern":"^a|b$"})", R"("xa")"));
  CHECK(schema_accepts(R"({"type":"string","pattern":"^a\\\\$"})", R"("a\\")"));  // an escaped backslash, then the end
  CHECK(schema_accepts(R"({"type":"string","pattern":"^a\\nb$"})", R"("a\nb")"));
  CHECK(!schema_accepts(R"({"type":"string","pattern":"^a\\nb$"})", R"("anb")"));
  CHECK_THROWS_WITH(json_schema_to_gbnf(nlohmann::ordered_json::parse(R"({"type":"string","pattern":"^[\\u0041-Z]$"})")),
                    Catch::Contains("not supported inside []"));
  CHECK(schema_accepts(R"({"type":"object","properties":{"名前":{"type":"string"}}})", R"({"名前":"x","y":1})"));
}
