// Streaming detokenizer on the real tokenizers: never half a UTF-8 character, and the pieces add
// up to the whole decode.
#include <catch2/catch.hpp>
#include <random>

#include "runtime/core/utf8.h"
#include "runtime/tokenizer/stream_detokenizer.h"
#include "tokenizer_test_util.h"

namespace {
// Every piece streamed, each checked to be whole UTF-8, then what finish() releases.
std::string stream_all(const sparq::Tokenizer& tok, const std::vector<sparq::TokenId>& ids, bool skip) {
  sparq::StreamDetokenizer stream(tok, skip);
  std::string acc;
  for (auto id : ids) {
    std::string piece = stream.push(id);
    INFO("piece " << piece);
    CHECK(sparq::utf8::is_valid(piece));
    acc += piece;
  }
  return acc + stream.finish();
}

void check_stream(const sparq::Tokenizer& tok, const std::string& text, bool skip_special) {
  const auto ids = tok.encode(text, true);
  CHECK(stream_all(tok, ids, skip_special) == tok.decode(ids, skip_special));
}

sparq::TokenId id_of(const sparq::Tokenizer& tok, const char* piece) {
  auto id = tok.token_to_id(piece);
  REQUIRE(id.has_value());
  return *id;
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
  // Complete, but the byte run is still open: a further byte could make it invalid (all U+FFFD).
  CHECK(stream.push(ids[3]).empty());
  CHECK(stream.push(id_of(tok, "▁kei")) == "\xF0\xA0\x80\x80 kei");
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
  for (bool skip : {false, true}) CHECK(stream_all(tok, ids, skip) == tok.decode(ids, skip));
}

TEST_CASE("stream: a byte-fallback run is held until it ends (fuzz regression)", "[tokenizer][stream]") {
  const auto& tok = sparq::test::shared_tokenizer("gemma2");
  // Byte pieces <0x47> ("G") and <0x94> interleaved with <pad>: with special tokens skipped they
  // form one run "G\x94", which is invalid UTF-8, so the whole decode reads two U+FFFD and the "G"
  // must not have been streamed early.
  const std::vector<sparq::TokenId> found = {247072, 242547, 138599, 229723, 198749, 288,   0,     0,     365,   0,
                                             215040, 24412,  204800, 212992, 223344, 76916, 124521, 209547, 36312, 49152};
  for (bool skip : {false, true}) CHECK(stream_all(tok, found, skip) == tok.decode(found, skip));

  const auto g = id_of(tok, "<0x47>"), x94 = id_of(tok, "<0x94>"), pad = id_of(tok, "<pad>"), word = id_of(tok, "▁kei");
  sparq::StreamDetokenizer stream(tok, true);
  CHECK(stream.push(g).empty());  // valid "G" so far, but the run is still open
  CHECK(stream.push(pad).empty());
  CHECK(stream.push(x94).empty());
  CHECK(stream.push(word) == "\xEF\xBF\xBD\xEF\xBF\xBD kei");
  CHECK(tok.decode(std::vector<sparq::TokenId>{g, pad, x94, word}, true) == "\xEF\xBF\xBD\xEF\xBF\xBD kei");
  // Not skipping specials, <pad> ends the run: "G" stands.
  CHECK(stream_all(tok, {g, pad, x94, word}, false) == "G<pad>\xEF\xBF\xBD kei");
}

TEST_CASE("stream: random sequences of byte pieces, specials and words add up to the whole decode", "[tokenizer][stream]") {
  struct Case {
    const char* name;
    std::vector<const char*> pieces;
  };
  const Case cases[] = {
      {"gemma2",
       {"<0x47>", "<0x94>", "<0xE5>", "<0x89>", "<0x80>", "<0xF0>", "<0xA0>", "<0x0A>", "<0x20>", "<pad>", "<bos>",
        "<eos>", "<start_of_turn>", "▁", "▁the", "hello", "▁kei", "\n"}},
      {"llama3_1", {"<|begin_of_text|>", "<|eot_id|>", "Ġ", "Ġthe", "hello", "Ċ", "æ", "Ĺ", "¥", "ð", "Ł", "ĺ", "Ģ"}},
  };
  std::mt19937 rng(1234);
  for (const auto& c : cases) {
    const auto& tok = sparq::test::shared_tokenizer(c.name);
    std::vector<sparq::TokenId> pool;
    for (const char* p : c.pieces) pool.push_back(id_of(tok, p));
    for (int trial = 0; trial < 1500; ++trial) {
      std::vector<sparq::TokenId> ids(1 + rng() % 24);
      for (auto& id : ids) id = pool[rng() % pool.size()];
      for (bool skip : {false, true}) {
        INFO(c.name << " trial " << trial << " skip " << skip);
        CHECK(stream_all(tok, ids, skip) == tok.decode(ids, skip));
      }
    }
  }
}
