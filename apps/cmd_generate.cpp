// sparq generate -m FILE -p TEXT -n N [--temp T] [--seed S] [--backend cpu] [--threads N] [--json]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "apps/cmd_generate.h"
#include "backends/cpu/cpu_backend.h"
#include "models/model_builder.h"
#include "runtime/core/error.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// End-of-sequence ids: generation_config.json, else config.json (an int or a list).
std::vector<int32_t> eos_ids(const ModelFile& file) {
  std::vector<int32_t> out;
  auto take = [&](const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("eos_token_id")) return false;
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) out.push_back(e.get<int32_t>());
    if (e.is_array())
      for (const auto& v : e)
        if (v.is_number_integer()) out.push_back(v.get<int32_t>());
    return !out.empty();
  };
  const auto& m = file.metadata();
  if (!(m.contains("generation_config") && take(m["generation_config"]))) take(m.at("config"));
  return out;
}

int32_t pick_token(const float* logits, int64_t vocab, float temperature, std::mt19937_64& rng) {
  if (temperature <= 0) return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  const float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> p(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) p[static_cast<size_t>(i)] = std::exp((logits[i] - mx) / temperature);
  std::discrete_distribution<int32_t> d(p.begin(), p.end());
  return d(rng);
}

struct GenerateArgs {
  std::string model, prompt, backend = "cpu";
  int max_tokens = 64, threads = 0, chunk = 256;
  float temperature = 0;
  uint64_t seed = 0;
  bool json = false, ignore_eos = false;
};

void run_generate(const GenerateArgs& a) {
  RunnableModel m = load_runnable_model(a.model, a.backend, a.threads);
  const LoadedTokenizer tok = load_tokenizer(m.file);
  const std::vector<int32_t> prompt = tok.tokenizer->encode(a.prompt, /*add_special=*/true);
  if (prompt.empty()) fail("the prompt encodes to no tokens");
  const std::vector<int32_t> eos = a.ignore_eos ? std::vector<int32_t>{} : eos_ids(m.file);
  PagedKvCache cache = make_kv_cache(m.graph, static_cast<int64_t>(prompt.size()) + a.max_tokens);
  const SeqId seq = cache.add_sequence();
  std::mt19937_64 rng(a.seed);

  const auto t0 = Clock::now();
  BatchLogits out;
  for (size_t start = 0; start < prompt.size(); start += static_cast<size_t>(a.chunk)) {
    const size_t n = std::min(static_cast<size_t>(a.chunk), prompt.size() - start);
    m.backend->run(m.graph, Batch{{{seq, std::span<const int32_t>(prompt).subspan(start, n), false}}}, cache, out);
  }
  std::vector<int32_t> generated;
  int32_t next = pick_token(out.row(0), out.vocab, a.temperature, rng);
  const double ttft = seconds_since(t0);
  const auto t1 = Clock::now();
  std::string printed;
  while (true) {
    generated.push_back(next);
    if (!a.json) {  // stream the text, holding back an incomplete UTF-8 character
      const std::string text = tok.tokenizer->decode(generated, true);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
          text.rfind("\xEF\xBF\xBD") != text.size() - 3) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    if (static_cast<int>(generated.size()) >= a.max_tokens) break;
    m.backend->run(m.graph, Batch{{{seq, std::span<const int32_t>(&next, 1), false}}}, cache, out);
    next = pick_token(out.row(0), out.vocab, a.temperature, rng);
  }
  const double decode_s = seconds_since(t1);
  const std::string text = tok.tokenizer->decode(generated, true);
  const double decode_tps = generated.size() > 1 ? static_cast<double>(generated.size() - 1) / decode_s : 0.0;
  if (a.json) {
    nlohmann::json j;
    j["text"] = text;
    j["prompt_ids"] = prompt;
    j["ids"] = generated;
    j["backend"] = m.backend->name();
    j["timings"] = {{"load_s", m.load_seconds},
                    {"prefill_s", ttft},
                    {"time_to_first_token_s", ttft},
                    {"prefill_tokens_per_s", static_cast<double>(prompt.size()) / ttft},
                    {"decode_s", decode_s},
                    {"decode_tokens_per_s", decode_tps}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (printed != text) std::fputs(text.c_str() + std::min(printed.size(), text.size()), stdout);
    std::fprintf(stderr, "\n[%zu prompt tokens, %.1f tok/s prefill, first token %.3f s; %zu tokens, %.2f tok/s decode]\n",
                 prompt.size(), static_cast<double>(prompt.size()) / ttft, ttft, generated.size(), decode_tps);
  }
}

}  // namespace

RunnableModel load_runnable_model(const std::string& path, const std::string& backend, int threads) {
  if (backend != "cpu" && backend != "auto")
    fail("backend \"", backend, "\" cannot run models in this build (available: cpu)");
  const auto t0 = Clock::now();
  RunnableModel m{ModelFile::open(path), {}, nullptr, 0};
  m.graph = build_model_graph(m.file);
  m.backend = make_cpu_backend({threads, true});
  const auto missing = m.backend->unsupported(m.graph, m.file);
  if (!missing.empty()) {
    std::string msg;
    for (const auto& s : missing) msg += "\n  " + s;
    fail("the ", m.backend->name(), " backend cannot run ", path, ":", msg);
  }
  m.backend->prepare(m.graph, m.file);
  m.load_seconds = seconds_since(t0);
  return m;
}

PagedKvCache make_kv_cache(const Graph& graph, int64_t tokens) {
  KvCacheGeometry geo{graph.kv.layers, graph.kv.kv_heads, graph.kv.head_dim, 16};
  const uint64_t blocks = static_cast<uint64_t>((tokens + geo.block_tokens - 1) / geo.block_tokens);
  return PagedKvCache(geo, std::max<uint64_t>(1, blocks) * geo.block_bytes());
}

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy with --temp 0)");
  cmd->add_option("-m,--model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text (encoded with the model's BOS, no chat template)")->required();
  cmd->add_option("-n,--max-tokens", args->max_tokens, "Tokens to generate")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temp", args->temperature, "Sampling temperature; 0 = greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--seed", args->seed, "Random seed for sampling");
  cmd->add_option("--backend", args->backend, "cpu|auto");
  cmd->add_option("--threads", args->threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  cmd->add_option("--prefill-chunk", args->chunk, "Prompt tokens per prefill step")->check(CLI::Range(1, 1 << 16));
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at end-of-sequence tokens");
  cmd->add_flag("--json", args->json, "Print one JSON object: text, token ids, timings");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace sparq
