// Encode throughput of sparq's tokenizers on one thread: the text is cut into documents at blank
// lines near --chunk bytes, each document is encoded (no special tokens added; special-token text is
// parsed, as Hugging Face does by default), and the best of --repeat passes is reported.
//   tokenizer_bench --tokenizer PATH --text FILE [--chunk BYTES] [--repeat N]
// Prints one JSON line: {"impl": "sparq", "tokenizer": ..., "mb_per_s": ..., "tokens": ..., "bytes": ...}.
// Built and run by bench/tokenizer_bench.sh; never part of the tests.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace {

std::vector<std::string> split_documents(const std::string& text, size_t chunk) {
  std::vector<std::string> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + chunk);
    if (end < text.size()) {
      size_t blank = text.find("\n\n", end);
      end = blank == std::string::npos ? text.size() : blank + 2;
    }
    docs.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tok_path, text_path;
  size_t chunk = 64 * 1024;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokenizer") tok_path = next();
    else if (a == "--text") text_path = next();
    else if (a == "--chunk") chunk = std::stoul(next());
    else if (a == "--repeat") repeat = std::stoi(next());
    else {
      std::fprintf(stderr, "usage: tokenizer_bench --tokenizer PATH --text FILE [--chunk BYTES] [--repeat N]\n");
      return 2;
    }
  }
  try {
    std::ifstream in(text_path, std::ios::binary);
    if (!in) sparq::fail("cannot read ", text_path);
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const auto docs = split_documents(text, chunk);
    const auto lt = sparq::load_tokenizer(tok_path);
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      size_t n = 0;
      for (const auto& d : docs) n += lt.tokenizer->encode(d, false, true).size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
      tokens = n;
    }
    std::printf("{\"impl\": \"sparq\", \"tokenizer\": \"%s\", \"kind\": \"%s\", \"mb_per_s\": %.2f, \"seconds\": %.4f, "
                "\"tokens\": %zu, \"bytes\": %zu, \"documents\": %zu}\n",
                tok_path.c_str(), std::string(lt.tokenizer->kind()).c_str(), text.size() / 1e6 / best, best, tokens,
                text.size(), docs.size());
  } catch (const sparq::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
