// Streaming detokenizer on the real tokenizers: never half a UTF-8 character, and the pieces add
// up to the whole decode.
#include <catch2/catch.hpp>

#include "runtime/tokenizer/stream_detokenizer.h"
#include "runtime/tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace {
void check_stream(const sparq::Tokenizer& tok, const std::string& text, bool skip_special) {
  auto ids = tok.encode(text, true);
  sparq::StreamDetokenizer stream(tok, skip_special);
  std::string acc;
  for (auto id : ids) {
    std::string piece = stream.push(id);
    INFO("piece " << piece);
    CHECK(sparq::utf8::is_valid(piece));
    acc += piece;
  }
  acc += stream.finish();
  CHECK(acc == tok.decode(ids, skip_special));
}
}  // namespace

TEST_CASE("stream: Llama 3.1 byte-level pieces", "[tokenizer][stream]") {
  const auto& tok = sparq::test::shared_tokenizer("llama3_1");
  for (const char* text : {"Hello, world!", "日本語のテキストです。", "emoji 👨‍👩‍👧‍👦 🏳️‍🌈 done", "  leading and trailing  ",
                           "a<|eot_id|>b", "ǅ𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0085 \ufeff"}) {
    INFO(text);
    check_stream(tok, text, true);
    check_stream(tok, text, false);
  }
}

TEST_CASE("stream: Gemma 2 byte-fallback pieces and spaces", "[tokenizer][stream]") {
  const auto& tok = sparq::test::shared_tokenizer("gemma2");
  for (const char* text : {" leading space kept", "𠀀𠀁𪚥 rare han via <0x..> bytes", "🧑🏻‍🤝‍🧑🏿 done",
                           "<start_of_turn>user\nhi<end_of_turn>\n", "tabs\t\tand\n\n\nnewlines"}) {
    INFO(text);
    check_stream(tok, text, true);
    check_stream(tok, text, false);
  }
}

TEST_CASE("stream: an incomplete character is held back, then released", "[tokenizer][stream]") {
  const auto& tok = sparq::test::shared_tokenizer("gemma2");
  // U+20000 is not in the Gemma vocabulary: it is 4 byte-fallback tokens.
  auto ids = tok.encode("\xF0\xA0\x80\x80", false);
  REQUIRE(ids.size() == 4);
  sparq::StreamDetokenizer stream(tok);
  CHECK(stream.push(ids[0]).empty());
  CHECK(stream.push(ids[1]).empty());
  CHECK(stream.push(ids[2]).empty());
  CHECK(stream.push(ids[3]) == "\xF0\xA0\x80\x80");
  // A truncated character comes out as U+FFFD at the end.
  stream.push(ids[0]);
  CHECK(stream.finish() == "\xEF\xBF\xBD");
}

TEST_CASE("stream: a long run of incomplete characters completed at the end (fuzz regression)", "[tokenizer][stream]") {
  const auto& tok = sparq::test::shared_tokenizer("llama3_1");
  // 104037 is a space plus the first two bytes of a 3-byte character, 101 a continuation byte:
  // eight of the former then the latter end in one complete character.
  const std::vector<sparq::TokenId> ids = {3072, 3, 35, 103806, 103935, 15359, 125, 103936, 104037, 104037, 104037,
                                           104037, 104037, 104037, 104037, 104037, 101, 0, 0};
  for (bool skip : {false, true}) {
    sparq::StreamDetokenizer stream(tok, skip);
    std::string acc;
    for (auto id : ids) {
      std::string piece = stream.push(id);
      CHECK(sparq::utf8::is_valid(piece));
      acc += piece;
    }
    acc += stream.finish();
    CHECK(acc == tok.decode(ids, skip));
  }
}
