// The engine service with many caller threads: each caller's events arrive in its own stream and
// equal what the engine alone computes; cancel works from any thread; a failing step ends its
// requests with an error and the service goes on; a full queue and a draining service refuse.
// The backend runs one thread here, so ThreadSanitizer sees only the service's own threads.
#include <catch2/catch.hpp>
#include <thread>

#include "engine_test_util.h"
#include "runtime/engine/engine_service.h"

using namespace sparq;
using namespace sparq::test;
using namespace std::chrono_literals;

namespace {

struct Read {
  std::vector<int32_t> ids;
  std::string text, error;
  int finished = 0;
  FinishReason reason = FinishReason::Length;
};

// Reads a stream to its end (bounded: a minute at most).
Read read_all(RequestStream& stream) {
  Read r;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ev = stream.next(1s);
    if (!ev) {
      if (stream.finished()) break;
      continue;
    }
    r.text += ev->text;
    if (ev->kind == GenerationEvent::Kind::Token) {
      r.ids.push_back(ev->token);
    } else {
      ++r.finished;
      r.reason = ev->reason;
      r.error = ev->error;
    }
  }
  return r;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.use_default_stop_tokens = false;
  return r;
}

// Delegates to a real prepared model; the run numbered `fail_at` (1-based, 0 = none) throws instead,
// and every run takes at least `delay` (so that a long request is still running when the test acts).
class TestModel final : public PreparedModel {
 public:
  TestModel(PreparedModel& inner, int fail_at, std::chrono::milliseconds delay = 0ms)
      : inner_(inner), fail_at_(fail_at), delay_(delay) {}
  const Graph& graph() const override { return inner_.graph(); }
  void run(const Step& step, KvStorage& storage, StepLogits& out) override {
    std::this_thread::sleep_for(delay_);
    if (++runs_ == fail_at_) fail("injected kernel failure");  // the step's blocks are reserved, nothing valid
    inner_.run(step, storage, out);
  }

 private:
  PreparedModel& inner_;
  int fail_at_;
  std::chrono::milliseconds delay_;
  int runs_ = 0;
};

}  // namespace

TEST_CASE("service: concurrent callers get the same greedy tokens as the engine alone", "[service]") {
  FixtureModel m("llama-w8a8-int8", 1);
  const auto prompts = engine_test_prompts(m);
  constexpr int kCallers = 8;
  std::vector<std::vector<int32_t>> expected;
  for (int c = 0; c < kCallers; ++c) expected.push_back(reference_greedy(m, prompts[c % prompts.size()], 6 + c));

  auto cache = m.cache(256);
  EngineOptions opt;
  opt.prefill_chunk = 8;
  opt.max_step_tokens = 24;
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  EngineService service(engine);
  std::vector<Read> got(kCallers);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      auto stream = service.submit(greedy(prompts[c % prompts.size()], 6 + c));
      got[static_cast<size_t>(c)] = read_all(*stream);
    });
  // A reader of statistics at the same time, as /metrics would be.
  std::thread stats_reader([&] {
    for (int i = 0; i < 50; ++i) {
      const ServiceStats s = service.stats();
      CHECK(s.running + s.waiting <= kCallers);
      std::this_thread::sleep_for(1ms);
    }
  });
  for (auto& t : callers) t.join();
  stats_reader.join();
  for (int c = 0; c < kCallers; ++c) {
    INFO("caller " << c);
    CHECK(got[static_cast<size_t>(c)].ids == expected[static_cast<size_t>(c)]);
    CHECK(got[static_cast<size_t>(c)].finished == 1);
    CHECK(got[static_cast<size_t>(c)].reason == FinishReason::Length);
    CHECK(got[static_cast<size_t>(c)].text == m.tok.tokenizer->decode(got[static_cast<size_t>(c)].ids, true));
  }
  CHECK(service.drain(10s));
  const ServiceStats s = service.stats();
  CHECK(s.submitted == kCallers);
  CHECK(s.finished == kCallers);
  CHECK(s.failed == 0);
  service.stop();
  CHECK(all_blocks_free(engine));
}

TEST_CASE("service: cancel from another thread stops a request and frees its blocks", "[service]") {
  FixtureModel m("llama-w8a8-int8", 1);
  auto cache = m.cache(256);
  TestModel slow(*m.prepared, 0, 5ms);  // 900 tokens would take 4.5 s
  Engine engine(slow, *cache, m.tok.tokenizer.get());
  EngineService service(engine);
  auto stream = service.submit(greedy(engine_test_prompts(m)[0], 900));
  REQUIRE(stream->next(60s).has_value());  // running: its first token arrived
  std::thread canceller([&] { stream->cancel(); });
  canceller.join();
  const Read r = read_all(*stream);
  CHECK(r.finished == 1);
  CHECK(r.reason == FinishReason::Cancelled);
  CHECK(r.ids.size() < 899);
  CHECK(service.drain(10s));
  service.stop();
  CHECK(all_blocks_free(engine));
}

TEST_CASE("service: a failing step ends its requests with the error and the service goes on", "[service]") {
  FixtureModel m("llama-w8a8-int8", 1);
  const auto prompts = engine_test_prompts(m);
  const auto expected = reference_greedy(m, prompts[1], 5);
  TestModel flaky(*m.prepared, 3);
  auto cache = m.cache(256);
  Engine engine(flaky, *cache, m.tok.tokenizer.get());
  EngineService service(engine);
  auto first = service.submit(greedy(prompts[0], 20));
  const Read failed = read_all(*first);
  CHECK(failed.finished == 1);
  CHECK(failed.reason == FinishReason::Error);
  CHECK(failed.error.find("injected kernel failure") != std::string::npos);
  CHECK(failed.ids.size() == 2);  // the first two steps' tokens came out before the third run failed
  // The service goes on: a later request runs normally, and the failed one left no blocks behind.
  auto second = service.submit(greedy(prompts[1], 5));
  const Read ok = read_all(*second);
  CHECK(ok.reason == FinishReason::Length);
  CHECK(ok.ids == expected);
  CHECK(service.drain(10s));
  CHECK(service.stats().failed == 1);
  CHECK(engine.totals().failed_steps == 1);
  service.stop();
  CHECK(all_blocks_free(engine));
}

TEST_CASE("service: a full queue and a draining service refuse new requests", "[service]") {
  FixtureModel m("llama-w8a8-int8", 1);
  const auto prompts = engine_test_prompts(m);
  auto cache = m.cache(256);
  EngineOptions opt;
  opt.max_sequences = 1;  // one runs, the rest wait
  TestModel slow(*m.prepared, 0, 5ms);  // 900 tokens would take 4.5 s
  Engine engine(slow, *cache, m.tok.tokenizer.get(), opt);
  EngineServiceOptions sopt;
  sopt.max_waiting = 1;
  EngineService service(engine, sopt);
  auto running = service.submit(greedy(prompts[0], 900));
  REQUIRE(running->next(60s).has_value());
  auto waiting = service.submit(greedy(prompts[3], 3));
  CHECK_THROWS_AS(service.submit(greedy(prompts[3], 3)), ServiceRefusal);
  CHECK_THROWS_WITH(service.submit(greedy(prompts[3], 3)), Catch::Contains("queue is full"));
  // A request that is wrong in itself is an Error, not a refusal.
  CHECK_THROWS_WITH(service.submit(greedy({}, 3)), Catch::Contains("no tokens"));
  running->cancel();
  CHECK(read_all(*running).reason == FinishReason::Cancelled);
  CHECK(read_all(*waiting).reason == FinishReason::Length);

  // Draining: requests in flight finish (or are cancelled at the deadline); new ones are refused.
  auto long_one = service.submit(greedy(prompts[0], 900));
  REQUIRE(long_one->next(60s).has_value());
  CHECK_FALSE(service.drain(20ms));  // cannot finish 900 tokens in time: cancelled
  CHECK(read_all(*long_one).reason == FinishReason::Cancelled);
  CHECK_FALSE(service.accepting());
  CHECK_THROWS_WITH(service.submit(greedy(prompts[3], 3)), Catch::Contains("shutting down"));
  CHECK(service.stats().refused == 3);
  service.stop();
  CHECK(all_blocks_free(engine));
}
