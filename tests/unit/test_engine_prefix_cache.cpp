// The prefix cache through the engine: requests whose prompts start alike share the KV blocks of
// the common whole blocks, produce the same tokens as without sharing, and cached blocks give way
// under pressure.
#include <catch2/catch.hpp>

#include "engine_test_util.h"

using namespace sparq;
using namespace sparq::test;

namespace {

Collected run_alone(Engine& engine, std::vector<int32_t> prompt, int64_t n) {
  Collected c;
  engine.submit(greedy_request(std::move(prompt), n, c));
  engine.run_until_idle();
  return c;
}

int64_t used_blocks(const Engine& e) { return e.kv_blocks().total_blocks() - e.kv_blocks().free_blocks(); }

}  // namespace

TEST_CASE("requests with a common prefix share its blocks and generate the same tokens", "[engine][prefix]") {
  for (const char* name : {"llama-w8a8-int8", "gemma2-bf16"}) {
    SECTION(name) {
      FixtureModel m(name);
      const auto base = engine_test_prompts(m)[2];  // the longest prompt: several blocks of 4
      REQUIRE(base.size() > 12);
      // Two prompts that agree on all but their last token.
      auto a = base, b = base;
      b.back() = base.front() == b.back() ? base[1] : base.front();
      const int64_t common_blocks = static_cast<int64_t>(base.size() - 1) / 4;

      // Without sharing: the reference outputs.
      auto plain_kv = m.cache(256);
      EngineOptions off;
      off.prefix_cache = false;
      Engine plain(*m.prepared, *plain_kv, m.tok.tokenizer.get(), off);
      const Collected ref_a = run_alone(plain, a, 6), ref_b = run_alone(plain, b, 6);
      CHECK(plain.totals().prefix_hit_tokens == 0);

      auto kv = m.cache(256);
      EngineOptions on;
      on.prefill_chunk = 8;
      Engine engine(*m.prepared, *kv, m.tok.tokenizer.get(), on);

      // One after the other: b finds a's published blocks.
      const Collected got_a = run_alone(engine, a, 6);
      CHECK(got_a.stats.reused_tokens == 0);
      const Collected got_b = run_alone(engine, b, 6);
      CHECK(got_b.stats.reused_tokens == common_blocks * 4);
      CHECK(got_b.stats.prefilled_tokens == static_cast<int64_t>(b.size()) - common_blocks * 4);
      CHECK(got_a.ids == ref_a.ids);
      CHECK(got_b.ids == ref_b.ids);
      CHECK(engine.totals().prefix_hit_tokens == common_blocks * 4);
      CHECK(all_blocks_free(engine));

      // Side by side: while a is still prefilling, b joins and holds a's first blocks by reference,
      // so the two allocate the shared blocks once.
      Collected side_a, side_b;
      auto c = base;
      c.back() = b.back();
      c.push_back(base[2]);  // a third prompt, so nothing of it is cached beyond the common blocks
      const Collected ref_c = run_alone(plain, c, 5);
      auto fresh_kv = m.cache(256);
      Engine fresh(*m.prepared, *fresh_kv, m.tok.tokenizer.get(), on);
      fresh.submit(greedy_request(a, 5, side_a));
      REQUIRE(fresh.step());  // a's first chunk (8 tokens): two whole blocks published
      fresh.submit(greedy_request(c, 5, side_b));
      int64_t peak = 0;
      while (!fresh.idle()) {
        fresh.step();
        peak = std::max(peak, used_blocks(fresh));
      }
      CHECK(side_a.ids == std::vector<int32_t>(ref_a.ids.begin(), ref_a.ids.begin() + 5));
      CHECK(side_b.ids == ref_c.ids);
      CHECK(side_b.stats.reused_tokens == 8);  // what a had computed when c was admitted
      const int64_t unshared = kv_blocks_for(static_cast<int64_t>(a.size()) + 5, 4) +
                               kv_blocks_for(static_cast<int64_t>(c.size()) + 5, 4);
      CHECK(peak <= unshared - 2);
      CHECK(all_blocks_free(fresh));
    }
  }
}

TEST_CASE("cached prefix blocks are evicted when the room is needed, and outputs stay exact", "[engine][prefix]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompts = engine_test_prompts(m);
  const auto& a = prompts[2];
  const auto& other = prompts[1];
  // Just enough blocks for the longest request alone.
  const int64_t blocks = kv_blocks_for(static_cast<int64_t>(a.size()) + 8, 4);
  auto kv = m.cache(blocks);
  Engine engine(*m.prepared, *kv, m.tok.tokenizer.get());
  const Collected first = run_alone(engine, a, 8);
  CHECK(engine.kv_blocks().cached_blocks() > 0);
  // A different prompt needs blocks the cache holds: they are evicted, least recently released first.
  const int64_t before = engine.kv_blocks().evicted_blocks();
  const Collected second = run_alone(engine, other, blocks * 4 - static_cast<int64_t>(other.size()));
  CHECK(engine.kv_blocks().evicted_blocks() > before);
  CHECK(second.ids == reference_greedy(m, other, static_cast<int>(blocks * 4 - static_cast<int64_t>(other.size()))));
  // a's blocks are gone: it is computed again, with the same tokens.
  const Collected again = run_alone(engine, a, 8);
  CHECK(again.ids == first.ids);
  CHECK(first.ids == reference_greedy(m, a, 8));
  CHECK(all_blocks_free(engine));
}
