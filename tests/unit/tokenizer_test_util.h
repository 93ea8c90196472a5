// Shared helpers for the tokenizer tests: the real tokenizers are loaded once per test run.
#pragma once
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "runtime/tokenizer/hf_tokenizer.h"

namespace sparq::test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "gemma2" or "llama3_1": shared/data/tokenizers/NAME/tokenizer.json.
inline const Tokenizer& shared_tokenizer(const std::string& name) {
  static std::mutex m;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(m);
  auto& slot = cache[name];
  if (!slot)
    slot = load_hf_tokenizer(read_file(std::string(SPARQ_SHARED_DIR) + "/data/tokenizers/" + name + "/tokenizer.json"));
  return *slot;
}

}  // namespace sparq::test
