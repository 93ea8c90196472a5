// Every reference case in shared/data/tokenizer-cases (and tests/data/tokenizer) must match
// Hugging Face exactly: ids, ids_with_special, decoded, decoded_skip_special.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/tokenizer/hf_tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

using sparq::test::shared_tokenizer;

void check_case_file(const std::string& tokenizer_name, const std::string& cases_path, bool check_tokens) {
  const sparq::Tokenizer& tok = shared_tokenizer(tokenizer_name);
  std::ifstream in(cases_path);
  REQUIRE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto c = nlohmann::json::parse(line);
    const std::string text = c["text"].get<std::string>();
    INFO(tokenizer_name << " case " << c["name"].get<std::string>() << " text " << c["text"].dump());
    auto ids = tok.encode(text, false);
    CHECK(ids == c["ids"].get<std::vector<int32_t>>());
    CHECK(tok.encode(text, true) == c["ids_with_special"].get<std::vector<int32_t>>());
    auto ref_ids = c["ids"].get<std::vector<int32_t>>();
    CHECK(tok.decode(ref_ids, false) == c["decoded"].get<std::string>());
    CHECK(tok.decode(ref_ids, true) == c["decoded_skip_special"].get<std::string>());
    if (check_tokens && c.contains("tokens")) {
      std::vector<std::string> toks;
      for (auto id : ref_ids) toks.push_back(tok.id_to_token(id));
      CHECK(toks == c["tokens"].get<std::vector<std::string>>());
    }
    ++n;
  }
  CHECK(n > 0);
}

}  // namespace

TEST_CASE("tokenizer: shared Gemma 2 cases match Hugging Face", "[tokenizer]") {
  check_case_file("gemma2", std::string(SPARQ_SHARED_DIR) + "/data/tokenizer-cases/gemma2.jsonl", true);
}

TEST_CASE("tokenizer: shared Llama 3.1 cases match Hugging Face", "[tokenizer]") {
  check_case_file("llama3_1", std::string(SPARQ_SHARED_DIR) + "/data/tokenizer-cases/llama3_1.jsonl", true);
}

TEST_CASE("tokenizer: extra Gemma 2 cases match Hugging Face", "[tokenizer]") {
  check_case_file("gemma2", std::string(SPARQ_SOURCE_DIR) + "/tests/data/tokenizer/gemma2_extra.jsonl", false);
}

TEST_CASE("tokenizer: extra Llama 3.1 cases match Hugging Face", "[tokenizer]") {
  check_case_file("llama3_1", std::string(SPARQ_SOURCE_DIR) + "/tests/data/tokenizer/llama3_1_extra.jsonl", false);
}
