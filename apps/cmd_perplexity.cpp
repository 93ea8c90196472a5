// sparq perplexity -m FILE -f TEXT_FILE [--ctx N] [--stride S] [--batch B] [--threads N] [--json]
//
// How the text is scored (models/demo/measure_perplexity.py does the same in transformers):
//   - The text is encoded once with the model's tokenizer, with and without its special tokens; the
//     tokens that add_special puts before the text (BOS for Llama 3 and Gemma) are the prefix P, the
//     others are the text tokens T[0..N). Specials appended after the text (an EOS) are not used.
//   - Window k covers T[b, e) with b = k*S and e = min(b + L, N), L = ctx - |P|, and runs P + T[b, e)
//     from an empty cache: every window starts with BOS and holds at most ctx tokens.
//   - Each text token is scored exactly once, in the first window that has it after its own context:
//     window k scores T[max(b, e_prev), e), each from the logits of the position before it. The
//     default stride S = L gives non-overlapping windows; a smaller S gives each scored token at least
//     L - S tokens of context (like the strided evaluation in Hugging Face's perplexity guide).
//     Without a prefix the first token of a window has nothing to be predicted from, so it is never
//     scored there: S <= L - 1 and the text's first token is not scored.
//   - NLL = logsumexp(logits) - logits[target], in double from the f32 logits (max subtracted);
//     perplexity = exp(mean NLL over the scored tokens).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "apps/cmd_generate.h"
#include "apps/commands.h"
#include "runtime/core/error.h"
#include "runtime/engine/step_builder.h"
#include "runtime/model_file/architecture.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

struct PerplexityArgs {
  std::string model, text_file;
  LoadOptions load;
  int64_t ctx = 512, stride = 0, batch = 512;
  bool json = false;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read ", path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Splits encode(text, add_special=true) into the specials put before the text and the text tokens.
struct EncodedText {
  std::vector<int32_t> prefix, tokens;
};

EncodedText encode_text(const Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> with = tok.encode(text, /*add_special=*/true);
  std::vector<int32_t> plain = tok.encode(text, /*add_special=*/false);
  for (size_t k = 0; k + plain.size() <= with.size(); ++k) {
    if (std::equal(plain.begin(), plain.end(), with.begin() + static_cast<std::ptrdiff_t>(k)))
      return {std::vector<int32_t>(with.begin(), with.begin() + static_cast<std::ptrdiff_t>(k)), std::move(plain)};
  }
  fail("the tokenizer's special tokens change how the text itself is encoded; cannot tell its prefix apart");
}

// -log softmax(logits)[target], accumulated in double.
double token_nll(const float* logits, int64_t vocab, int32_t target) {
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return static_cast<double>(mx) + std::log(sum) - static_cast<double>(logits[target]);
}

void run_perplexity(const PerplexityArgs& a) {
  const std::string text = read_file(a.text_file);
  if (text.empty()) fail(a.text_file, " is empty: there is no text to score");
  const auto t0 = std::chrono::steady_clock::now();
  LoadedModel m = load_model(a.model, a.load);
  const LoadedTokenizer tok = load_tokenizer(m.file);
  const EncodedText enc = encode_text(*tok.tokenizer, text);
  const auto& T = enc.tokens;
  const auto& P = enc.prefix;
  const int64_t n = static_cast<int64_t>(T.size());
  const int64_t skip = P.empty() ? 1 : 0;  // without a prefix a window's first token is context only
  const int64_t L = a.ctx - static_cast<int64_t>(P.size());
  if (L < 1 + skip)
    fail("--ctx ", a.ctx, " leaves no room for text after the tokenizer's ", P.size(), " prefix token(s)");
  const int64_t max_pos = model_context_length(m.file);
  if (max_pos > 0 && a.ctx > max_pos) fail("--ctx ", a.ctx, " exceeds the model's max_position_embeddings (", max_pos, ")");
  const int64_t stride = a.stride > 0 ? a.stride : L - skip;
  if (stride > L - skip)
    fail("--stride ", a.stride, " would leave tokens unscored: at most ", L - skip, " with --ctx ", a.ctx,
         P.empty() ? " (this tokenizer adds no BOS, so windows overlap by one token)" : "");
  if (n <= skip) fail(a.text_file, " encodes to ", n, " token(s): too few to score");

  const std::unique_ptr<KvStorage> kv = m.kv_storage_for_positions(a.ctx);
  BlockAllocator blocks(kv->blocks(), kv->geometry().block_tokens);
  std::vector<int32_t> input;
  StepLogits out;
  double nll_sum = 0;
  int64_t scored = 0, windows = 0, evaluated = 0;
  for (int64_t b = 0, done = 0; done < n; b += stride) {
    const int64_t e = std::min(b + L, n);
    const int64_t first = std::max(b + skip, done);  // first text token this window scores
    input.assign(P.begin(), P.end());
    input.insert(input.end(), T.begin() + b, T.begin() + e);
    // window position j predicts input[j + 1]; the targets T[first, e) sit at |P| + (t - b)
    const int64_t lo = static_cast<int64_t>(P.size()) + (first - b) - 1;
    const int64_t hi = static_cast<int64_t>(P.size()) + (e - b) - 1;
    const SeqId seq = blocks.add_sequence();
    const int64_t len = static_cast<int64_t>(input.size());
    for (int64_t c = 0; c < len; c += a.batch) {
      const int64_t cn = std::min(a.batch, len - c);
      const bool wanted = c < hi && c + cn > lo;  // chunks with no scored position need no logits
      const LogitRows rows = wanted ? LogitRows::All : LogitRows::None;
      const SequenceChunk chunk{seq, std::span<const int32_t>(input).subspan(static_cast<size_t>(c), static_cast<size_t>(cn)),
                                rows};
      run_step(*m.prepared, *kv, blocks, {&chunk, 1}, out);
      if (!wanted) continue;
      for (int64_t j = std::max(c, lo); j < std::min(c + cn, hi); ++j) {
        nll_sum += token_nll(out.row(j - c), out.vocab, input[static_cast<size_t>(j + 1)]);
        ++scored;
      }
    }
    blocks.remove_sequence(seq);
    evaluated += len;
    ++windows;
    done = e;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean_nll = nll_sum / static_cast<double>(scored);
  const double ppl = std::exp(mean_nll);
  if (a.json) {
    nlohmann::json j;
    j["perplexity"] = ppl;
    j["mean_nll"] = mean_nll;
    j["tokens_scored"] = scored;
    j["text_tokens"] = n;
    j["prefix_tokens"] = P.size();
    j["windows"] = windows;
    j["tokens_evaluated"] = evaluated;
    j["ctx"] = a.ctx;
    j["stride"] = stride;
    j["backend"] = m.backend->name();
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f (mean NLL %.6f nats/token) over %lld tokens of %s\n", ppl, mean_nll,
                static_cast<long long>(scored), a.text_file.c_str());
    std::fprintf(stderr, "[%lld windows of at most %lld tokens, stride %lld, %zu prefix token(s) each; %.1f s, %.0f tokens/s]\n",
                 static_cast<long long>(windows), static_cast<long long>(a.ctx), static_cast<long long>(stride),
                 P.size(), seconds, static_cast<double>(evaluated) / seconds);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a text file: windows of --ctx tokens, each starting with BOS");
  cmd->add_option("-m,--model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-f,--file", args->text_file, "UTF-8 text file to score")->required()->check(CLI::ExistingFile);
  cmd->add_option("--ctx", args->ctx, "Tokens per window, BOS included (default 512)")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--stride", args->stride, "Text tokens between window starts; default: ctx minus the prefix (no overlap)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--batch", args->batch, "Tokens per forward step within a window")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  add_backend_flags(*cmd, args->load);
  cmd->add_flag("--json", args->json, "Print one JSON object: perplexity, mean_nll, token and window counts, timing");
  cmd->callback([args] { run_perplexity(*args); });
}

}  // namespace sparq
