// The HTTP server in-process over a fixture model, with real HTTP clients on 127.0.0.1: concurrent
// clients get what the engine alone computes, a client that disconnects mid-stream has its request
// cancelled and its KV blocks freed, and draining refuses new work. Tagged [service] so that the
// ThreadSanitizer stage runs it (HTTP threads, the stepping thread and scrapes all at once).
#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "apps/server/api_server.h"
#include "engine_test_util.h"

using namespace sparq;
using namespace sparq::test;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// Each run takes at least `delay`, so a long request is still running when a test acts on it.
class SlowModel final : public PreparedModel {
 public:
  SlowModel(PreparedModel& inner, std::chrono::milliseconds delay) : inner_(inner), delay_(delay) {}
  const Graph& graph() const override { return inner_.graph(); }
  void run(const Step& step, KvStorage& storage, StepLogits& out) override {
    std::this_thread::sleep_for(delay_);
    inner_.run(step, storage, out);
  }

 private:
  PreparedModel& inner_;
  std::chrono::milliseconds delay_;
};

// A served fixture: engine, service and HTTP server on a free port of 127.0.0.1.
struct Served {
  FixtureModel& m;
  std::unique_ptr<KvStorage> cache;
  SlowModel slow;
  Engine engine;
  EngineService service;
  server::ServerMetrics metrics{"fixture"};
  std::optional<ChatTemplate> tmpl;
  server::ServingContext ctx;
  server::ApiServer http;
  int port = 0;
  std::thread thread;

  Served(FixtureModel& model, std::chrono::milliseconds delay, int64_t max_waiting = 64)
      : m(model),
        cache(m.cache(256)),
        slow(*m.prepared, delay),
        engine(slow, *cache, m.tok.tokenizer.get(), engine_options_for(m.file, m.tok.tokenizer.get())),
        service(engine, {.max_waiting = max_waiting}),
        http(server::ServerOptions{"127.0.0.1", 0, "", 1 << 20, 32, false}) {
    if (!m.tok.chat_template.empty()) tmpl.emplace(m.tok.chat_template);
    ctx.model_name = "fixture";
    ctx.tokenizer = &m.tok;
    ctx.chat_template = tmpl ? &*tmpl : nullptr;
    ctx.template_options = chat_template_options(m.tok.config, m.tok.special_tokens_map, true);
    ctx.context_length = engine.max_sequence_tokens();
    ctx.vocab = engine.vocab();
    ctx.service = &service;
    ctx.metrics = &metrics;
    port = http.bind();
    thread = std::thread([this] { http.run(); });
    http.set_ready(&ctx);
    // One request from this thread before any client thread starts: cpp-httplib initializes
    // function-static regexes on first use, and their fast-path guard check sits in the
    // uninstrumented library, where ThreadSanitizer cannot see it.
    auto warm = client().Get("/health");
    REQUIRE(warm);
  }
  ~Served() {
    http.stop();
    thread.join();
    service.stop();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

Json completion_body(const std::vector<int32_t>& prompt, int max_tokens, bool stream) {
  return Json{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}, {"stream", stream}};
}

// The text of an SSE completion stream, and whether it ended with [DONE].
std::pair<std::string, bool> read_sse(const std::string& body) {
  std::string text;
  bool done = false;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const Json j = Json::parse(data);
    for (const auto& c : j["choices"]) text += c["text"].get<std::string>();
  }
  return {text, done};
}

}  // namespace

TEST_CASE("server: concurrent HTTP clients get the engine's greedy text", "[service][server]") {
  FixtureModel m("llama-w8a8-int8", 1);
  const auto prompts = engine_test_prompts(m);
  constexpr int kClients = 6;
  std::vector<std::string> expected;
  for (int c = 0; c < kClients; ++c)
    expected.push_back(m.tok.tokenizer->decode(reference_greedy(m, prompts[c % prompts.size()], 5 + c), true));

  Served s(m, 0ms);
  std::vector<std::string> got(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      auto cli = s.client();
      const bool stream = c % 2 == 1;
      auto res = cli.Post("/v1/completions", completion_body(prompts[c % prompts.size()], 5 + c, stream).dump(), "application/json");
      if (!res) return;
      status[static_cast<size_t>(c)] = res->status;
      if (stream) {
        auto [text, done] = read_sse(res->body);
        got[static_cast<size_t>(c)] = done ? text : "(no [DONE])";
      } else {
        got[static_cast<size_t>(c)] = Json::parse(res->body)["choices"][0]["text"].get<std::string>();
      }
    });
  // Health and metrics answered at the same time, as a balancer and a scraper would.
  std::thread scraper([&] {
    auto cli = s.client();
    for (int i = 0; i < 20; ++i) {
      auto h = cli.Get("/health");
      CHECK((h && h->status == 200));
      auto metrics = cli.Get("/metrics");
      CHECK((metrics && metrics->body.find("vllm:num_requests_running") != std::string::npos));
    }
  });
  for (auto& t : clients) t.join();
  scraper.join();
  for (int c = 0; c < kClients; ++c) {
    INFO("client " << c);
    CHECK(status[static_cast<size_t>(c)] == 200);
    CHECK(got[static_cast<size_t>(c)] == expected[static_cast<size_t>(c)]);
  }
}

TEST_CASE("server: a client that disconnects mid-stream has its request cancelled", "[service][server]") {
  FixtureModel m("llama-w8a8-int8", 1);
  Served s(m, 10ms);  // 400 tokens would take 4 s at least
  std::atomic<int> chunks{0};
  std::thread client([&] {
    auto cli = s.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = completion_body(engine_test_prompts(m)[0], 400, true).dump();
    req.set_header("Content-Type", "application/json");
    // Returning false drops the connection, as a client that goes away.
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    cli.send(req);
  });
  client.join();
  CHECK(chunks >= 3);
  // Bounded: the server notices on its next write (a token or a ping each second).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  ServiceStats st = s.service.stats();
  while ((st.running > 0 || st.finished < 1) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    st = s.service.stats();
  }
  CHECK(st.running == 0);
  CHECK(st.finished == 1);
  CHECK(st.kv_blocks_used == 0);
  CHECK(st.engine.decode_tokens < 399);
}

TEST_CASE("server: draining refuses new requests and /health says so", "[service][server]") {
  FixtureModel m("llama-w8a8-int8", 1);
  Served s(m, 0ms);
  s.http.set_draining();
  auto cli = s.client();
  auto h = cli.Get("/health");
  REQUIRE(h);
  CHECK(h->status == 503);
  auto r = cli.Post("/v1/completions", completion_body(engine_test_prompts(m)[0], 3, false).dump(), "application/json");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(Json::parse(r->body)["error"]["type"] == "service_unavailable");
}
