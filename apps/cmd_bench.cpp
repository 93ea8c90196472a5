// sparq bench FILE [-p 512] [-n 128] [--threads N] [--concurrency 1,4,16] [--json]: prefill and decode
// speed, time to first token and peak resident memory, on a synthetic prompt; with --concurrency,
// also the aggregate decode speed of the engine's batched step with that many sequences at once;
// with --verify K, the cost of a step that checks k = 1..K speculative guesses against one decode step.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "apps/cmd_generate.h"
#include "runtime/core/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/step_builder.h"

namespace sparq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

struct BenchArgs {
  std::string model;
  LoadOptions load;
  int prompt_tokens = 512, gen_tokens = 128, chunk = 512;
  std::vector<int> concurrency;
  int verify = 0;  // largest number of guesses whose verification step is timed
  bool json = false;
};

// A fixed, deterministic prompt of ordinary tokens (ids from the middle of the vocabulary); `variant`
// changes every token so that concurrent sequences differ.
std::vector<int32_t> synthetic_prompt(int tokens, int64_t vocab, int variant) {
  std::vector<int32_t> prompt(static_cast<size_t>(tokens));
  const size_t span = static_cast<size_t>(vocab / 4);
  for (size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<int32_t>(vocab / 4 + static_cast<int64_t>((i * 7919 + static_cast<size_t>(variant) * 104729) % span));
  return prompt;
}

struct ConcurrentDecode {
  int sequences = 0;
  int64_t tokens = 0;  // decoded after every sequence had its first token
  double seconds = 0, prefill_seconds = 0;
  double tokens_per_s() const { return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0; }
};

// `sequences` requests of prompt_tokens + gen_tokens through the engine: the prompts are prefilled
// (timed apart), then every step decodes one token of each sequence; all finish on the same step.
ConcurrentDecode bench_concurrent_decode(LoadedModel& m, const BenchArgs& a, int sequences) {
  const int64_t vocab = m.graph->widths[static_cast<size_t>(m.graph->logits)];
  const std::unique_ptr<KvStorage> kv =
      m.kv_storage_for_positions(static_cast<int64_t>(sequences) * (a.prompt_tokens + a.gen_tokens + kKvBlockTokens));
  EngineOptions opt;
  opt.prefill_chunk = a.chunk;
  opt.max_step_tokens = std::max<int64_t>(a.chunk, sequences);
  opt.max_sequences = sequences;
  Engine engine(*m.prepared, *kv, nullptr, opt);
  int64_t decoded = 0;
  int started = 0;
  for (int i = 0; i < sequences; ++i) {
    GenerationRequest r;
    r.prompt = synthetic_prompt(a.prompt_tokens, vocab, i);
    r.max_tokens = a.gen_tokens + 1;  // the first token comes from the prefill
    r.use_default_stop_tokens = false;
    r.on_event = [&, first = true](const GenerationEvent& e) mutable {
      if (e.kind != GenerationEvent::Kind::Token) return;
      if (first) ++started;
      else ++decoded;
      first = false;
    };
    engine.submit(std::move(r));
  }
  ConcurrentDecode out;
  out.sequences = sequences;
  const auto t0 = Clock::now();
  while (started < sequences) engine.step();
  out.prefill_seconds = seconds_since(t0);
  decoded = 0;
  const auto t1 = Clock::now();
  engine.run_until_idle();
  out.seconds = seconds_since(t1);
  out.tokens = decoded;
  return out;
}

struct VerifyCost {
  int guesses = 0;
  double seconds = 0;  // median of the repetitions
};

// Steps that feed the last id and k guesses with logits at every row, as speculative decoding
// runs them, at the context the decode reached; each is undone (truncated) so all see the same
// context. k = 0 is the plain decode step they are compared with.
std::vector<VerifyCost> bench_verify(const std::function<void(std::span<const int32_t>, LogitRows)>& run,
                                     BlockAllocator& blocks, SeqId seq, int32_t next, int64_t vocab, int max_guesses) {
  constexpr int kReps = 5;
  const int64_t length = blocks.length(seq);
  std::vector<VerifyCost> out;
  for (int k = 0; k <= max_guesses; ++k) {
    std::vector<int32_t> tokens = synthetic_prompt(k + 1, vocab, 7);
    tokens[0] = next;
    std::vector<double> times;
    for (int r = 0; r < kReps; ++r) {
      const auto t = Clock::now();
      run(tokens, k == 0 ? LogitRows::Last : LogitRows::All);
      times.push_back(seconds_since(t));
      blocks.truncate(seq, length);
    }
    std::nth_element(times.begin(), times.begin() + kReps / 2, times.end());
    out.push_back({k, times[kReps / 2]});
  }
  return out;
}

// KV cache bytes one position takes (every layer's keys and values, scales included).
uint64_t kv_bytes_per_token(const LoadedModel& m) {
  const KvCacheGeometry g = m.kv_geometry();
  return g.block_bytes() / static_cast<uint64_t>(g.block_tokens);
}

void run_bench(const BenchArgs& a) {
  LoadedModel m = load_model(a.model, a.load);
  const int64_t vocab = m.graph->widths[static_cast<size_t>(m.graph->logits)];
  // A fixed, deterministic prompt of ordinary tokens (ids from the middle of the vocabulary).
  const std::vector<int32_t> prompt = synthetic_prompt(a.prompt_tokens, vocab, 0);
  const std::unique_ptr<KvStorage> kv = m.kv_storage_for_positions(a.prompt_tokens + a.gen_tokens + a.verify + 1);
  BlockAllocator blocks(kv->blocks(), kv->geometry().block_tokens);
  const SeqId seq = blocks.add_sequence();
  StepLogits out;
  auto run = [&](std::span<const int32_t> tokens, LogitRows rows) {
    const SequenceChunk chunk{seq, tokens, rows};
    run_step(*m.prepared, *kv, blocks, {&chunk, 1}, out);
  };

  const auto t0 = Clock::now();
  for (size_t start = 0; start < prompt.size(); start += static_cast<size_t>(a.chunk)) {
    const size_t n = std::min(static_cast<size_t>(a.chunk), prompt.size() - start);
    const LogitRows rows = start + n == prompt.size() ? LogitRows::Last : LogitRows::None;  // as the engine does
    run(std::span<const int32_t>(prompt).subspan(start, n), rows);
  }
  int32_t next = static_cast<int32_t>(std::max_element(out.row(0), out.row(0) + vocab) - out.row(0));
  const double prefill_s = seconds_since(t0);
  const auto t1 = Clock::now();
  for (int i = 0; i < a.gen_tokens; ++i) {
    run(std::span<const int32_t>(&next, 1), LogitRows::Last);
    next = static_cast<int32_t>(std::max_element(out.row(0), out.row(0) + vocab) - out.row(0));
  }
  const double decode_s = seconds_since(t1);
  const double prefill_tps = a.prompt_tokens / prefill_s, decode_tps = a.gen_tokens > 0 ? a.gen_tokens / decode_s : 0.0;
  const std::vector<VerifyCost> verify =
      a.verify > 0 ? bench_verify(run, blocks, seq, next, vocab, a.verify) : std::vector<VerifyCost>{};
  std::vector<ConcurrentDecode> concurrent;
  for (int c : a.concurrency) concurrent.push_back(bench_concurrent_decode(m, a, c));
  if (a.json) {
    nlohmann::json j{{"model", a.model},
                     {"backend", m.backend->name()},
                     {"backend_choice", m.backend_choice},
                     {"threads", a.load.backend_options.threads},
                     {"prompt_tokens", a.prompt_tokens},
                     {"gen_tokens", a.gen_tokens},
                     {"load_s", m.load_seconds},
                     {"prefill_s", prefill_s},
                     {"prefill_tokens_per_s", prefill_tps},
                     {"time_to_first_token_s", prefill_s},
                     {"decode_s", decode_s},
                     {"decode_tokens_per_s", decode_tps},
                     {"repacked_weight_bytes", m.prepared->repacked_weight_bytes()},
                     {"kv_dtype", kv_dtype_label(m.kv_dtype)},
                     {"kv_bytes_per_token", kv_bytes_per_token(m)},
                     {"peak_rss_bytes", peak_rss_bytes()}};
    for (const auto& c : concurrent)
      j["concurrent_decode"].push_back({{"sequences", c.sequences},
                                        {"decode_tokens", c.tokens},
                                        {"decode_s", c.seconds},
                                        {"decode_tokens_per_s", c.tokens_per_s()},
                                        {"prefill_s", c.prefill_seconds}});
    for (const auto& v : verify)
      j["verify"].push_back({{"guesses", v.guesses}, {"step_s", v.seconds}, {"vs_decode_step", v.seconds / verify[0].seconds}});
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model        %s (%s backend, %d threads)\n", a.model.c_str(), m.backend->name().c_str(),
                a.load.backend_options.threads);
    std::printf("load         %.2f s (%.0f MiB of weights repacked)\n", m.load_seconds,
                static_cast<double>(m.prepared->repacked_weight_bytes()) / (1 << 20));
    std::printf("kv cache     %s, %.1f KiB per token\n", kv_dtype_label(m.kv_dtype).c_str(),
                static_cast<double>(kv_bytes_per_token(m)) / 1024);
    std::printf("prefill      %d tokens in %.2f s: %.1f tok/s (time to first token %.2f s)\n", a.prompt_tokens, prefill_s,
                prefill_tps, prefill_s);
    std::printf("decode       %d tokens in %.2f s: %.2f tok/s\n", a.gen_tokens, decode_s, decode_tps);
    for (const auto& c : concurrent)
      std::printf("decode x%-4d %lld tokens in %.2f s: %.2f tok/s aggregate, %.2f per sequence (prefill %.2f s)\n",
                  c.sequences, static_cast<long long>(c.tokens), c.seconds, c.tokens_per_s(),
                  c.tokens_per_s() / c.sequences, c.prefill_seconds);
    for (const auto& v : verify)
      if (v.guesses > 0)
        std::printf("verify %-5d %d guesses at context %d: %.1f ms per step = %.2fx a decode step (%.1f ms)\n", v.guesses,
                    v.guesses, a.prompt_tokens + a.gen_tokens, v.seconds * 1e3, v.seconds / verify[0].seconds,
                    verify[0].seconds * 1e3);
    std::printf("peak RSS     %.0f MiB\n", static_cast<double>(peak_rss_bytes()) / (1 << 20));
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode speed, time to first token, peak memory");
  cmd->add_option("model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt-tokens", args->prompt_tokens, "Prompt length")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-n,--gen-tokens", args->gen_tokens, "Tokens to decode")->check(CLI::Range(0, 1 << 20));
  add_backend_flags(*cmd, args->load);
  cmd->add_option("--prefill-chunk", args->chunk, "Prompt tokens per prefill step")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--concurrency", args->concurrency,
                  "Also decode with this many sequences batched per step through the engine (e.g. 1,4,16)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--verify", args->verify,
                  "Also time steps checking 1..K speculative guesses against one decode step, at the decoded context")
      ->check(CLI::Range(0, 32));
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace sparq
