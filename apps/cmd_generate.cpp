// sparq generate -m FILE -p TEXT -n N [sampling flags] [--stop TEXT]... [--json]: one request through
// the generation engine, its text streamed to stdout as tokens arrive.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/cmd_generate.h"
#include "apps/grammar_flags.h"
#include "apps/speculation.h"
#include "runtime/core/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generation_defaults.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct GenerateArgs {
  std::string model, prompt;
  LoadOptions load;
  int64_t max_tokens = 64, chunk = 256, kv_budget_mib = 0;
  SamplingParams sampling;
  std::vector<std::string> stops;
  bool json = false, ignore_eos = false;
  SpeculationArgs spec;
  GrammarFlags grammar;
};

// Flag checks that name the flag and the accepted range (CLI11 prints them before anything loads).
CLI::Validator in_range(const std::string& what, double lo, double hi, bool lo_open = false) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(s, &used);
          if (used != s.size()) return "not a number: " + s;
        } catch (const std::exception&) {
          return "not a number: " + s;
        }
        if (!std::isfinite(v) || (lo_open ? v <= lo : v < lo) || v > hi)
          return "must be in " + std::string(lo_open ? "(" : "[") + CLI::detail::to_string(lo) + ", " +
                 CLI::detail::to_string(hi) + "], got " + s;
        return {};
      },
      "", what);
}

void run_generate(const GenerateArgs& a) {
  for (const auto& s : a.stops)
    if (s.empty()) fail("--stop needs a non-empty text");
  const std::shared_ptr<const Grammar> grammar = load_grammar_flags(a.grammar);
  LoadedModel m = load_model(a.model, a.load);
  if (!a.json) std::fprintf(stderr, "[backend %s: %s]\n", m.backend->name().c_str(), m.backend_choice.c_str());
  const LoadedTokenizer tok = load_tokenizer(m.file);
  const std::vector<int32_t> prompt = tok.tokenizer->encode(a.prompt, /*add_special=*/true);
  if (prompt.empty()) fail("the prompt encodes to no tokens");

  EngineOptions opt = engine_options_for(m.file, tok.tokenizer.get());
  opt.prefill_chunk = a.chunk;
  opt.max_step_tokens = std::max<int64_t>(opt.max_step_tokens, a.chunk);
  const int64_t positions = a.max_tokens > 0 ? static_cast<int64_t>(prompt.size()) + a.max_tokens
                                             : std::max<int64_t>(opt.context_length, static_cast<int64_t>(prompt.size()) + 1);
  const std::unique_ptr<KvStorage> kv = a.kv_budget_mib > 0
                                            ? m.kv_storage_for_bytes(static_cast<uint64_t>(a.kv_budget_mib) << 20)
                                            : m.kv_storage_for_positions(positions);
  const auto spec = prepare_speculation(a.spec, a.load, *tok.tokenizer, m.graph->widths[static_cast<size_t>(m.graph->logits)],
                                        kv->blocks() * kv->geometry().block_tokens, opt);
  if (spec && !a.json) std::fprintf(stderr, "[speculative decoding: %s]\n", spec->description.c_str());
  Engine engine(*m.prepared, *kv, tok.tokenizer.get(), opt);

  GenerationRequest r;
  r.prompt = prompt;
  r.sampling = a.sampling;
  r.max_tokens = a.max_tokens;
  r.use_default_stop_tokens = !a.ignore_eos;
  r.stop_strings = a.stops;
  r.grammar = grammar;
  std::vector<int32_t> ids;
  std::string text;
  GenerationEvent finished;
  r.on_event = [&](const GenerationEvent& e) {
    if (e.kind == GenerationEvent::Kind::Token) ids.push_back(e.token);
    else finished = e;
    text += e.text;
    if (!a.json && !e.text.empty()) {
      std::fwrite(e.text.data(), 1, e.text.size(), stdout);
      std::fflush(stdout);
    }
  };
  engine.submit(std::move(r));
  const auto t0 = Clock::now();
  engine.run_until_idle();
  const double total_s = seconds_since(t0);

  const RequestStats& st = finished.stats;
  const double ttft = st.first_token_seconds;
  const double decode_s = std::max(0.0, st.total_seconds - ttft);
  const double decode_tps = ids.size() > 1 && decode_s > 0 ? static_cast<double>(ids.size() - 1) / decode_s : 0.0;
  const double prefill_tps = ttft > 0 ? static_cast<double>(prompt.size()) / ttft : 0.0;
  if (a.json) {
    nlohmann::json j;
    j["text"] = text;
    j["prompt_ids"] = prompt;
    j["ids"] = ids;
    j["finish_reason"] = finish_reason_name(finished.reason);
    if (finished.reason == FinishReason::Error) j["error"] = finished.error;
    j["backend"] = m.backend->name();
    j["backend_choice"] = m.backend_choice;
    j["timings"] = {{"load_s", m.load_seconds},
                    {"prefill_s", ttft},
                    {"time_to_first_token_s", ttft},
                    {"prefill_tokens_per_s", prefill_tps},
                    {"decode_s", decode_s},
                    {"decode_tokens_per_s", decode_tps},
                    {"total_s", total_s}};
    if (grammar) {
      const EngineTotals& t = engine.totals();
      j["grammar"] = {{"masks", t.grammar_masks},
                      {"mask_ms_per_token", t.grammar_masks ? 1e3 * t.grammar_mask_seconds / static_cast<double>(t.grammar_masks) : 0.0},
                      {"mask_ms_max", 1e3 * t.grammar_mask_max_seconds}};
    }
    if (spec)
      j["speculation"] = {{"method", spec->drafter->name()},
                          {"draft_tokens", opt.draft_tokens},
                          {"drafted_tokens", st.drafted_tokens},
                          {"accepted_tokens", st.accepted_tokens},
                          {"steps", engine.totals().steps}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr,
                 "\n[%zu prompt tokens, %.1f tok/s prefill, first token %.3f s; %zu tokens, %.2f tok/s decode; "
                 "finished: %s]\n",
                 prompt.size(), prefill_tps, ttft, ids.size(), decode_tps, finish_reason_name(finished.reason));
    if (finished.reason == FinishReason::Error) std::fprintf(stderr, "[error: %s]\n", finished.error.c_str());
    if (grammar && engine.totals().grammar_masks > 0)
      std::fprintf(stderr, "[grammar: %lld token masks, %.3f ms each, slowest %.3f ms]\n",
                   static_cast<long long>(engine.totals().grammar_masks),
                   1e3 * engine.totals().grammar_mask_seconds / static_cast<double>(engine.totals().grammar_masks),
                   1e3 * engine.totals().grammar_mask_max_seconds);
    if (spec) std::fprintf(stderr, "[speculation: %s]\n", speculation_summary(st.drafted_tokens, st.accepted_tokens).c_str());
  }
}

}  // namespace

std::string backend_spec_problem(const std::string& spec) {
  try {
    BackendOptions scratch;
    const std::string name = parse_backend_spec(spec, scratch);
    if (name != "auto") find_backend(name);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

void add_backend_flags(CLI::App& cmd, LoadOptions& o) {
  cmd.add_option("--backend", o.backend,
                 "Where the model runs: " + backend_choices() + " (auto picks and says why); options may follow, e.g. cpu:threads=1,onednn=off")
      ->check([](const std::string& spec) -> std::string { return backend_spec_problem(spec); });
  cmd.add_option("--device", o.backend_options.device, "Device index of the backend (see `sparq devices`)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--threads", o.backend_options.threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  cmd.add_option_function<std::string>(
         "--kv-dtype", [&o](const std::string& v) { o.kv_dtype = *kv_dtype_from_name(v); },
         "How the KV cache stores keys and values: f32 (default, exact), f16, int8 or fp8 (one scale per head and "
         "position; a quarter of the memory, lossy)")
      ->check([](const std::string& v) -> std::string {
        return kv_dtype_from_name(v) ? "" : "--kv-dtype must be f32, f16, int8 or fp8, not '" + v + "'";
      });
}

void add_sampling_flags(CLI::App& cmd, SamplingParams& s) {
  cmd.add_option("--temp", s.temperature, "Sampling temperature; 0 = greedy")->check(in_range("--temp", 0, 100));
  cmd.add_option("--top-k", s.top_k, "Keep the k most likely tokens; 0 = off")->check(CLI::Range(0, 1 << 30));
  cmd.add_option("--top-p", s.top_p, "Nucleus sampling: keep the most likely tokens up to this probability mass; 1 = off")
      ->check(in_range("--top-p", 0, 1, /*lo_open=*/true));
  cmd.add_option("--min-p", s.min_p, "Drop tokens less likely than this times the most likely one; 0 = off")
      ->check(in_range("--min-p", 0, 1));
  cmd.add_option("--repeat-penalty", s.repeat_penalty, "Divide the logits of recent tokens by this; 1 = off")
      ->check(in_range("--repeat-penalty", 0, 100, /*lo_open=*/true));
  cmd.add_option("--presence-penalty", s.presence_penalty, "Subtract this from the logits of recent tokens; 0 = off")
      ->check(in_range("--presence-penalty", -2, 2));
  cmd.add_option("--frequency-penalty", s.frequency_penalty, "Subtract this times each recent token's count; 0 = off")
      ->check(in_range("--frequency-penalty", -2, 2));
  cmd.add_option("--penalty-last-n", s.penalty_last_n, "Recent tokens the penalties look at; -1 = all")
      ->check(CLI::Range(-1, 1 << 30));
  cmd.add_option("--seed", s.seed, "Random seed for sampling");
}

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy with --temp 0)");
  cmd->add_option("-m,--model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text (encoded with the model's BOS, no chat template)")->required();
  cmd->add_option("-n,--max-tokens", args->max_tokens, "Tokens to generate; 0 = up to the context limit")
      ->check(CLI::Range(0, 1 << 24));
  add_sampling_flags(*cmd, args->sampling);
  cmd->add_option("--stop", args->stops, "Stop when the text contains TEXT (not printed); repeatable")->take_all();
  add_backend_flags(*cmd, args->load);
  add_speculation_flags(*cmd, args->spec);
  add_grammar_flags(*cmd, args->grammar);
  cmd->add_option("--prefill-chunk", args->chunk, "Prompt tokens per prefill step")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--kv-budget", args->kv_budget_mib, "KV cache size in MiB (0 = just enough for the prompt and -n)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the model's end-of-sequence / end-of-turn tokens");
  cmd->add_flag("--json", args->json, "Print one JSON object: text, token ids, finish reason, timings");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace sparq
