// --prompt-lookup / --draft FILE / --draft-tokens K: speculative decoding for the commands that
// generate (generate, chat, serve). The drafter and, for --draft, the draft model and its KV cache
// live in one Speculation that must outlive the engine using it.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/engine/drafter.h"
#include "runtime/engine/engine.h"
#include "runtime/loading/load_model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

struct SpeculationArgs {
  bool prompt_lookup = false;
  std::string draft_model;
  int32_t draft_tokens = 4;
  int32_t lookup_max = 3;  // longest n-gram prompt lookup matches
};

void add_speculation_flags(CLI::App& cmd, SpeculationArgs& args);

struct Speculation {
  std::unique_ptr<LoadedModel> draft;  // --draft only
  std::unique_ptr<KvStorage> draft_kv;
  std::unique_ptr<Drafter> drafter;
  std::string description;  // "prompt lookup, 4 tokens" / "draft model FILE, 4 tokens"

  ~Speculation();
};

// Null when neither --prompt-lookup nor --draft was given. Otherwise sets engine.drafter and
// engine.draft_tokens. The draft model loads with the target's load options, its tokenizer must
// equal the target's id for id, and its cache holds `positions` positions (throws sparq::Error
// naming the mismatch or the failure).
std::unique_ptr<Speculation> prepare_speculation(const SpeculationArgs& args, const LoadOptions& load,
                                                 const Tokenizer& target_tokenizer, int64_t vocab, int64_t positions,
                                                 EngineOptions& engine);

// "12/20 guesses kept (60%)" for a request's or an engine's counts.
std::string speculation_summary(int64_t drafted, int64_t accepted);

}  // namespace sparq
