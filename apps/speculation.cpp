#include "apps/speculation.h"

#include <cstdio>

#include "runtime/core/error.h"
#include "runtime/engine/draft_model_drafter.h"
#include "runtime/engine/ngram_drafter.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

Speculation::~Speculation() = default;

void add_speculation_flags(CLI::App& cmd, SpeculationArgs& a) {
  auto* lookup = cmd.add_flag("--prompt-lookup", a.prompt_lookup,
                              "Speculative decoding with guesses copied from earlier in the text (n-gram prompt lookup)");
  auto* draft = cmd.add_option("--draft", a.draft_model,
                               "Speculative decoding with guesses from this smaller model (.sparq, same tokenizer)")
                    ->check(CLI::ExistingFile);
  lookup->excludes(draft);
  draft->excludes(lookup);
  cmd.add_option("--draft-tokens", a.draft_tokens, "Guesses checked per decode step (speculative decoding)")
      ->check(CLI::Range(1, 32));
  cmd.add_option("--lookup-ngram", a.lookup_max, "Longest n-gram --prompt-lookup matches (down to 1)")
      ->check(CLI::Range(1, 64));
}

namespace {
void check_same_tokenizer(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_path) {
  if (target.vocab_size() != draft.vocab_size())
    fail("--draft ", draft_path, ": its tokenizer has ", draft.vocab_size(), " tokens, the model's ",
         target.vocab_size(), " (speculation needs the same tokenizer)");
  for (size_t i = 0; i < target.vocab_size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    if (target.id_to_token(id) != draft.id_to_token(id))
      fail("--draft ", draft_path, ": token id ", i, " is '", draft.id_to_token(id), "' there and '",
           target.id_to_token(id), "' in the model (speculation needs the same tokenizer)");
  }
}
}  // namespace

std::unique_ptr<Speculation> prepare_speculation(const SpeculationArgs& a, const LoadOptions& load,
                                                 const Tokenizer& target_tokenizer, int64_t vocab, int64_t positions,
                                                 EngineOptions& engine) {
  if (!a.prompt_lookup && a.draft_model.empty()) return nullptr;
  auto s = std::make_unique<Speculation>();
  if (a.prompt_lookup) {
    s->drafter = std::make_unique<NgramDrafter>(1, a.lookup_max);
    s->description = "prompt lookup (n-grams of 1.." + std::to_string(a.lookup_max) + ")";
  } else {
    s->draft = std::make_unique<LoadedModel>(load_model(a.draft_model, load));
    check_same_tokenizer(target_tokenizer, *load_tokenizer(s->draft->file).tokenizer, a.draft_model);
    s->draft_kv = s->draft->kv_storage_for_positions(positions);
    s->drafter = std::make_unique<DraftModelDrafter>(*s->draft->prepared, *s->draft_kv, vocab, engine.prefill_chunk);
    s->description = "draft model " + a.draft_model;
  }
  s->description += ", " + std::to_string(a.draft_tokens) + " tokens per step";
  engine.drafter = s->drafter.get();
  engine.draft_tokens = a.draft_tokens;
  return s;
}

std::string speculation_summary(int64_t drafted, int64_t accepted) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld/%lld guesses kept (%.0f%%)", static_cast<long long>(accepted),
                static_cast<long long>(drafted), drafted > 0 ? 100.0 * static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0);
  return buf;
}

}  // namespace sparq
