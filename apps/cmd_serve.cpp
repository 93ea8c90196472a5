// sparq serve FILE [--host H] [--port P] [--parallel N] [--ctx N] [--kv-budget MiB] [--api-key K]
// [--selftest] ...: the OpenAI-compatible HTTP server (apps/server/). It listens first and loads the model
// after, so health checks see 503 until it is ready. SIGTERM or SIGINT drains: new requests are
// refused (503), running ones finish (bounded by --timeout, then cancelled), and it exits 0.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "apps/cmd_generate.h"
#include "apps/commands.h"
#include "apps/server/api_server.h"
#include "apps/speculation.h"
#include "runtime/core/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generation_defaults.h"
#include "runtime/kv_cache/kv_cache_geometry.h"
#include "runtime/selftest/selftest.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, api_key_file, served_model_name;
  int port = 8080;
  LoadOptions load;
  int64_t parallel = 4, kv_budget_mib = 0, ctx = 0, max_queue = 64, timeout_s = 30, max_request_bytes = 16 << 20;
  bool quiet = false, selftest = false;
  SpeculationArgs spec;
};

// Without --kv-budget the cache holds --parallel full contexts, up to this much.
constexpr uint64_t kDefaultKvCap = uint64_t{4} << 30;

std::string read_api_key(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("--api-key-file: cannot read ", path);
  std::string key;
  std::getline(f, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) fail("--api-key-file: the first line of ", path, " is empty");
  return key;
}

// SIGTERM / SIGINT, received by one thread with sigwait (the others block them), so shutdown
// runs as ordinary code rather than inside a signal handler.
class ShutdownSignal {
 public:
  ShutdownSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any other thread starts: they inherit it
    signal(SIGPIPE, SIG_IGN);                   // a client that left is a failed write, not a crash
    std::thread([this, set] {
      int sig = 0;
      while (sigwait(&set, &sig) == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        if (received_) std::_Exit(128 + sig);  // a second signal: stop now
        received_ = sig;
        cv_.notify_all();
      }
    }).detach();
  }
  int wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return received_ != 0; });
    return received_;
  }
  bool received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_ != 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int received_ = 0;
};

void run_serve(const ServeArgs& a) {
  server::ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.api_key = a.api_key_file.empty() ? a.api_key : read_api_key(a.api_key_file);
  so.max_request_bytes = static_cast<size_t>(a.max_request_bytes);
  so.http_threads = static_cast<int>(std::min<int64_t>(a.parallel + a.max_queue + 8, 1024));
  so.log_requests = !a.quiet;
  const std::string name = a.served_model_name.empty() ? std::filesystem::path(a.model).stem().string() : a.served_model_name;

  ShutdownSignal shutdown;
  server::ApiServer http(so);
  const int port = http.bind();
  std::thread http_thread([&] { http.run(); });
  std::fprintf(stderr, "sparq serve: listening on http://%s:%d\n", a.host.c_str(), port);
  std::fflush(stderr);
  // Whatever happens below, the listener stops and its thread is joined.
  struct StopHttp {
    server::ApiServer& http;
    std::thread& thread;
    ~StopHttp() {
      http.stop();
      if (thread.joinable()) thread.join();
    }
  } stop_http{http, http_thread};

  std::optional<ReferenceBlock> reference;
  if (a.selftest) {  // before the model loads: a file without a reference is refused at once
    reference = read_reference_block(ModelFile::open(a.model));
    if (!reference)
      fail("--selftest: ", a.model, " carries no self-test reference (sparq convert --reference REF.json or --reference cpu)");
  }
  LoadedModel m = load_model(a.model, a.load);
  if (a.selftest) {
    const SelftestReport r = run_selftest(m, *reference, default_selftest_tolerance(m.file));
    std::fprintf(stderr, "sparq serve: self-test %s (%.1f s)\n", r.summary().c_str(), r.seconds);
    http.set_selftest(r.health_json(), r.passed());
    if (!r.passed()) {
      for (const std::string& p : r.problems) std::fprintf(stderr, "  %s\n", p.c_str());
      std::fprintf(stderr, "sparq serve: the model failed its self-test: serving nothing (503 everywhere, the report at /health) until stopped\n");
      std::fflush(stderr);
      shutdown.wait();
      throw ExitStatus{1};
    }
    std::fflush(stderr);
  }
  const LoadedTokenizer tok = load_tokenizer(m.file);
  std::optional<ChatTemplate> chat_template;
  if (!tok.chat_template.empty()) chat_template.emplace(tok.chat_template);

  EngineOptions opt = engine_options_for(m.file, tok.tokenizer.get());
  opt.max_sequences = a.parallel;
  if (a.ctx > 0) opt.context_length = opt.context_length > 0 ? std::min(opt.context_length, a.ctx) : a.ctx;
  if (opt.context_length <= 0) fail("the model file does not say its context length; give --ctx");
  const uint64_t block_bytes = m.kv_geometry().block_bytes();
  std::unique_ptr<KvStorage> kv;
  if (a.kv_budget_mib > 0) {
    kv = m.kv_storage_for_bytes(static_cast<uint64_t>(a.kv_budget_mib) << 20);
  } else {
    const int64_t blocks = kv_blocks_for(opt.context_length, kKvBlockTokens) * a.parallel;
    kv = m.kv_storage_for_bytes(std::min<uint64_t>(static_cast<uint64_t>(blocks) * block_bytes, std::max(kDefaultKvCap, block_bytes)));
  }
  const auto speculation = prepare_speculation(a.spec, a.load, *tok.tokenizer,
                                               m.graph->widths[static_cast<size_t>(m.graph->logits)],
                                               kv->blocks() * kv->geometry().block_tokens, opt);
  if (speculation && !a.quiet) std::fprintf(stderr, "sparq serve: speculative decoding: %s\n", speculation->description.c_str());
  Engine engine(*m.prepared, *kv, tok.tokenizer.get(), opt);
  EngineService service(engine, {.max_waiting = a.max_queue});
  server::ServerMetrics metrics(name);

  server::ServingContext ctx;
  ctx.model_name = name;
  ctx.tokenizer = &tok;
  ctx.chat_template = chat_template ? &*chat_template : nullptr;
  ctx.template_options = chat_template_options(tok.config, tok.special_tokens_map, /*add_generation_prompt=*/true);
  ctx.context_length = engine.max_sequence_tokens();
  ctx.vocab = engine.vocab();
  ctx.created = static_cast<int64_t>(std::time(nullptr));
  ctx.service = &service;
  ctx.metrics = &metrics;
  http.set_ready(&ctx);
  const auto& blocks = engine.kv_blocks();
  std::fprintf(stderr,
               "sparq serve: ready: %s as '%s' on %s (%s), load %.1f s; --parallel %lld, context %lld tokens, KV cache %lld "
               "tokens (%.0f MiB)%s\n",
               a.model.c_str(), name.c_str(), m.backend->name().c_str(), m.backend_choice.c_str(), m.load_seconds,
               static_cast<long long>(a.parallel), static_cast<long long>(ctx.context_length),
               static_cast<long long>(blocks.capacity_tokens()),
               static_cast<double>(blocks.total_blocks()) * static_cast<double>(block_bytes) / (1 << 20),
               so.api_key.empty() ? "" : "; API key required");
  std::fflush(stderr);

  const int sig = shutdown.wait();
  http.set_draining();
  std::fprintf(stderr, "sparq serve: %s received: draining (up to %lld s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
               static_cast<long long>(a.timeout_s));
  std::fflush(stderr);
  const bool drained = service.drain(std::chrono::seconds(a.timeout_s));
  // Streams whose requests just finished still have their last events to write.
  const ServiceStats st = service.stats();
  std::fprintf(stderr, "sparq serve: %s; %lld requests finished since start; exiting\n",
               drained ? "drained" : "drain timed out, cancelled what was left", static_cast<long long>(st.finished));
  std::fflush(stderr);
  http.stop();
  if (http_thread.joinable()) http_thread.join();
  service.stop();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat, completions, tokenize, health, metrics)");
  cmd->add_option("model", a->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--host", a->host, "Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)");
  cmd->add_option("--port", a->port, "Port to listen on (default 8080; 0 = any free port, printed at start)")->check(CLI::Range(0, 65535));
  add_backend_flags(*cmd, a->load);
  add_speculation_flags(*cmd, a->spec);
  cmd->add_option("--parallel", a->parallel, "Sequences decoded together in one batch (default 4)")->check(CLI::Range(1, 512));
  cmd->add_option("--kv-budget", a->kv_budget_mib, "KV cache size in MiB (default: --parallel full contexts, at most 4 GiB)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--ctx", a->ctx, "Most tokens of one sequence, prompt and output (default: the model's context)")
      ->check(CLI::Range(2, 1 << 24));
  auto* key = cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on the API routes");
  cmd->add_option("--api-key-file", a->api_key_file, "Read the API key from the first line of FILE (keeps it out of ps)")
      ->check(CLI::ExistingFile)
      ->excludes(key);
  cmd->add_option("--max-queue", a->max_queue, "Requests that may wait beyond --parallel; more get 429 (default 64)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--served-model-name", a->served_model_name, "Model id clients send and /v1/models lists (default: FILE's stem)");
  cmd->add_option("--timeout", a->timeout_s, "Seconds running requests get to finish after SIGTERM (default 30)")
      ->check(CLI::Range(0, 86400));
  cmd->add_option("--max-request-bytes", a->max_request_bytes, "Largest request body; larger ones get 413 (default 16 MiB)")
      ->check(CLI::Range(1024, 1 << 30));
  cmd->add_flag("--quiet", a->quiet, "No per-request log lines");
  cmd->add_flag("--selftest", a->selftest,
                "Run the file's self-test reference before serving; /health reports it, and a failure serves nothing (503)");
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace sparq
