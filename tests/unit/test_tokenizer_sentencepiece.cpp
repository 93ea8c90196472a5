// The tokenizer.model path (libsentencepiece) on a tiny Gemma-like model trained for the tests.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/core/utf8.h"
#include "runtime/tokenizer/sp_tokenizer.h"
#include "runtime/tokenizer/stream_detokenizer.h"
#include "runtime/tokenizer/tokenizer_loader.h"
#include "tokenizer_test_util.h"

namespace {
const std::string kDir = std::string(SPARQ_SOURCE_DIR) + "/tests/data/tokenizer/sp_bpe";
}

TEST_CASE("sentencepiece: reference cases match the sentencepiece library", "[tokenizer][sentencepiece]") {
  auto loaded = sparq::load_tokenizer(kDir);
  REQUIRE(loaded.tokenizer->kind() == "tokenizer.model");
  const auto& tok = *loaded.tokenizer;
  std::ifstream in(kDir + "/cases.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto c = nlohmann::json::parse(line);
    INFO("case " << c["name"].get<std::string>());
    const std::string text = c["text"].get<std::string>();
    auto ref = c["ids"].get<std::vector<int32_t>>();
    CHECK(tok.encode(text, false) == ref);
    CHECK(tok.encode(text, true) == c["ids_with_special"].get<std::vector<int32_t>>());
    CHECK(tok.decode(ref, false) == c["decoded"].get<std::string>());
    CHECK(tok.decode(ref, true) == c["decoded_skip_special"].get<std::string>());
    ++n;
  }
  CHECK(n >= 10);
}

TEST_CASE("sentencepiece: vocabulary queries, config and template", "[tokenizer][sentencepiece]") {
  auto loaded = sparq::load_tokenizer(kDir + "/tokenizer.model");
  const auto& tok = *loaded.tokenizer;
  CHECK(tok.vocab_size() == 600);
  CHECK(tok.token_to_id("<bos>") == 2);
  CHECK(tok.id_to_token(2) == "<bos>");
  CHECK(tok.is_special(2));
  CHECK(!tok.token_to_id("definitely-not-a-piece"));
  CHECK(loaded.bos_token == "<bos>");
  CHECK(!loaded.chat_template.empty());
  // parse_special=false keeps control-token text as text.
  auto plain = tok.encode("<eot>", false, false);
  CHECK(plain != std::vector<int32_t>{*tok.token_to_id("<eot>")});
  CHECK(tok.decode(plain) == "<eot>");
}

TEST_CASE("sentencepiece: streaming equals whole decode, bytes held until complete", "[tokenizer][sentencepiece]") {
  auto loaded = sparq::load_tokenizer(kDir);
  const auto& tok = *loaded.tokenizer;
  const std::string text = "Hi 日本語 👨‍👩‍👧 and 12 cats\n\tok";
  auto ids = tok.encode(text, false);
  sparq::StreamDetokenizer stream(tok);
  std::string acc;
  for (auto id : ids) {
    std::string piece = stream.push(id);
    CHECK(sparq::utf8::is_valid(piece));
    acc += piece;
  }
  acc += stream.finish();
  CHECK(acc == text);
}

TEST_CASE("sentencepiece: bad model bytes give a clear error", "[tokenizer][sentencepiece]") {
  CHECK_THROWS_WITH(sparq::load_sentencepiece_tokenizer("not a protobuf at all"),
                    Catch::Contains("tokenizer.model: not a SentencePiece model"));
}
