// libFuzzer target for the tokenizers and the chat-template interpreter. The first input byte picks
// the mode, the rest is the payload:
//   0-2  encode the payload with Llama 3.1 / Gemma 2 (tokenizer.json) / the test SentencePiece model:
//        ids in range, decode gives valid UTF-8, and valid UTF-8 round-trips where the tokenizer is
//        lossless (Llama: always; Gemma: unless the text holds U+2581, which decodes to a space);
//   3-4  decode the payload as token ids (Llama / Gemma), also through the streaming detokenizer;
//   5    load the payload as a tokenizer.json (must load or throw sparq::Error);
//   6    parse and render the payload as a chat template (must render or throw sparq::Error).
// The real tokenizers are read from $SPARQ_SHARED_DIR/data/tokenizers (default: ../shared next to
// the repository, found from this file's path).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/hf_tokenizer.h"
#include "runtime/tokenizer/sp_tokenizer.h"
#include "runtime/tokenizer/stream_detokenizer.h"
#include "tests/fuzz/fuzz_data.h"

using sparq::fuzz::read_all;
using sparq::fuzz::repo_dir;
using sparq::fuzz::shared_dir;

namespace {

struct Tokenizers {
  std::unique_ptr<sparq::Tokenizer> llama, gemma, sp;
  Tokenizers() {
    const std::string shared = shared_dir();
    llama = sparq::load_hf_tokenizer(read_all(shared + "/data/tokenizers/llama3_1/tokenizer.json"));
    gemma = sparq::load_hf_tokenizer(read_all(shared + "/data/tokenizers/gemma2/tokenizer.json"));
    sp = sparq::load_sentencepiece_tokenizer(read_all(repo_dir() + "/tests/data/tokenizer/sp_bpe/tokenizer.model"));
  }
};

const Tokenizers& tokenizers() {
  static Tokenizers t;
  return t;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void fuzz_encode(const sparq::Tokenizer& tok, const std::string& text, bool lossless, unsigned flags) {
  const bool add_special = flags & 1, parse_special = flags & 2;
  auto ids = tok.encode(text, add_special, parse_special);
  for (auto id : ids) check(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
  const std::string back = tok.decode(ids, false);
  check(sparq::utf8::is_valid(back));
  check(sparq::utf8::is_valid(tok.decode(ids, true)));
  if (lossless && !add_special && sparq::utf8::is_valid(text)) check(back == text);
}

void fuzz_decode(const sparq::Tokenizer& tok, const uint8_t* data, size_t size) {
  std::vector<sparq::TokenId> ids;
  const auto n = static_cast<uint32_t>(tok.vocab_size());
  for (size_t i = 0; i + 3 <= size; i += 3)
    ids.push_back(static_cast<sparq::TokenId>((data[i] | data[i + 1] << 8 | data[i + 2] << 16) % n));
  for (bool skip : {false, true}) {
    const std::string whole = tok.decode(ids, skip);
    check(sparq::utf8::is_valid(whole));
    sparq::StreamDetokenizer stream(tok, skip);
    std::string acc;
    for (auto id : ids) {
      std::string piece = stream.push(id);
      check(sparq::utf8::is_valid(piece));
      acc += piece;
    }
    acc += stream.finish();
    check(acc == whole);
  }
}

void fuzz_template(const std::string& source) {
  static const nlohmann::json messages = nlohmann::json::parse(R"([
    {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "user", "content": [{"type": "text", "text": "x"}]}])");
  sparq::ChatTemplateOptions opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  opt.now = 1721995200;
  opt.max_loop_iterations = 20000;
  sparq::ChatTemplate t(source);
  const std::string out = t.render(messages, opt);
  check(out.size() < (64u << 20));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& t = tokenizers();
  const unsigned mode = data[0] % 7, flags = data[0] / 7;
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (mode) {
      case 0: fuzz_encode(*t.llama, payload, true, flags); break;
      case 1: fuzz_encode(*t.gemma, payload, payload.find("\xE2\x96\x81") == std::string::npos, flags); break;
      case 2: fuzz_encode(*t.sp, payload, false, flags); break;
      case 3: fuzz_decode(*t.llama, data + 1, size - 1); break;
      case 4: fuzz_decode(*t.gemma, data + 1, size - 1); break;
      case 5: sparq::load_hf_tokenizer(payload); break;
      case 6:
        if (payload.size() <= 2048) fuzz_template(payload);
        break;
    }
  } catch (const sparq::Error&) {
    if (mode <= 4) __builtin_trap();  // encode/decode of any input must not throw
  }
  return 0;
}
