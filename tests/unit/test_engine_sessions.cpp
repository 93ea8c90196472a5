// Engine sessions (prefix reuse across chat turns) and stop conditions (stop tokens, the model's
// default stop ids, stop strings across token boundaries), checked against the backend driven
// directly and the tokenizer's whole-sequence decode.
#include <catch2/catch.hpp>
#include <deque>
#include <fstream>

#include "engine_test_util.h"

using namespace sparq;
using namespace sparq::test;

namespace {

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Collected run_one(Engine& engine, GenerationRequest r) {
  Collected c;
  r.on_event = collect_into(c);
  engine.submit(std::move(r));
  engine.run_until_idle();
  REQUIRE(c.finished == 1);
  return c;
}

GenerationRequest request(std::vector<int32_t> prompt, int64_t max_tokens, SessionId session = 0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.use_default_stop_tokens = false;
  r.session = session;
  return r;
}

}  // namespace

TEST_CASE("a session prefills only what follows the cached prefix", "[engine]") {
  for (const char* name : {"gemma2-bf16", "llama-w8a8-int8"}) {
    SECTION(name) {
      FixtureModel m(name);
      const auto prompts = engine_test_prompts(m);
      auto cache = m.cache(256);
      EngineOptions opt;
      opt.prefill_chunk = 8;
      opt.prefix_cache = false;  // reuse counted here comes from the session alone
      Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
      const SessionId chat = engine.open_session();

      // Turn 1: the whole prompt is prefilled; the sequence stays cached with every fed id.
      const auto a = prompts[1];
      const Collected t1 = run_one(engine, request(a, 6, chat));
      CHECK(t1.ids == reference_greedy(m, a, 6));
      CHECK(t1.stats.reused_tokens == 0);
      CHECK(t1.stats.prefilled_tokens == static_cast<int64_t>(a.size()));
      const auto held = engine.session_tokens(chat);
      const auto fed = concat(a, std::vector<int32_t>(t1.ids.begin(), t1.ids.end() - 1));  // the last id is never fed
      CHECK(std::vector<int32_t>(held.begin(), held.end()) == fed);
      CHECK(!all_blocks_free(engine));

      // Turn 2: the conversation so far plus new tokens; only the tokens after the cached ones run.
      const auto more = m.tok.tokenizer->encode(" Tell me more about it", false);
      const auto b = concat(concat(a, t1.ids), more);
      const Collected t2 = run_one(engine, request(b, 6, chat));
      CHECK(t2.stats.reused_tokens == static_cast<int64_t>(fed.size()));
      CHECK(t2.stats.prefilled_tokens == static_cast<int64_t>(b.size() - fed.size()));
      CHECK(t2.ids == reference_greedy(m, b, 6));

      // An edited history: the cache is cut back to the common prefix.
      const size_t keep = 5;
      const auto c = concat(std::vector<int32_t>(a.begin(), a.begin() + keep), more);
      REQUIRE(c[keep] != a[keep]);
      const Collected t3 = run_one(engine, request(c, 5, chat));
      CHECK(t3.stats.reused_tokens == static_cast<int64_t>(keep));
      CHECK(t3.stats.prefilled_tokens == static_cast<int64_t>(c.size() - keep));
      CHECK(t3.ids == reference_greedy(m, c, 5));

      // The same prompt again: everything but its last token is reused (its logits are needed).
      const auto held3 = engine.session_tokens(chat);
      const std::vector<int32_t> same(held3.begin(), held3.end());
      const Collected t4 = run_one(engine, request(same, 4, chat));
      CHECK(t4.stats.prefilled_tokens == 1);
      CHECK(t4.ids == reference_greedy(m, same, 4));

      // One request at a time per session; reset and close free the blocks.
      engine.submit(request(b, 4, chat));
      CHECK_THROWS_WITH(engine.submit(request(b, 4, chat)), Catch::Contains("still generating"));
      CHECK_THROWS_WITH(engine.reset_session(chat), Catch::Contains("still generating"));
      engine.run_until_idle();
      engine.reset_session(chat);
      CHECK(engine.session_tokens(chat).empty());
      CHECK(all_blocks_free(engine));
      const Collected t5 = run_one(engine, request(b, 4, chat));
      CHECK(t5.stats.reused_tokens == 0);
      engine.close_session(chat);
      CHECK(all_blocks_free(engine));
      CHECK_THROWS_WITH(engine.session_tokens(chat), Catch::Contains("no open session"));
    }
  }
}

TEST_CASE("an idle session's cache is evicted when a request needs the room", "[engine]") {
  FixtureModel m("llama-w8a8-int8");
  const auto prompt = engine_test_prompts(m)[2];
  const int64_t blocks = (static_cast<int64_t>(prompt.size()) + 8 + 3) / 4 + 1;
  auto cache = m.cache(blocks);
  EngineOptions opt;
  opt.prefix_cache = false;  // reuse counted here comes from the session alone
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
  const SessionId chat = engine.open_session();
  const Collected first = run_one(engine, request(prompt, 8, chat));
  CHECK(!engine.session_tokens(chat).empty());
  const Collected other = run_one(engine, request(prompt, 8));  // needs the session's blocks
  CHECK(engine.totals().session_evictions == 1);
  CHECK(engine.session_tokens(chat).empty());
  CHECK(other.ids == first.ids);
  const Collected again = run_one(engine, request(prompt, 8, chat));
  CHECK(again.stats.reused_tokens == 0);
  CHECK(again.ids == first.ids);
}

TEST_CASE("a stop token ends the request and its text is not emitted", "[engine]") {
  FixtureModel m("gemma2-bf16");
  const auto prompt = engine_test_prompts(m)[0];
  const auto ref = reference_greedy(m, prompt, 16);
  auto cache = m.cache(64);
  Engine engine(*m.prepared, *cache, m.tok.tokenizer.get());
  GenerationRequest r = request(prompt, 16);
  const int32_t stop = ref[5];
  r.stop_token_ids = {stop};
  const Collected c = run_one(engine, std::move(r));
  const size_t at = static_cast<size_t>(std::find(ref.begin(), ref.end(), stop) - ref.begin());
  CHECK(c.reason == FinishReason::StopToken);
  CHECK(c.ids == std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(at) + 1));
  CHECK(c.text == m.tok.tokenizer->decode(std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(at)), true));
}

TEST_CASE("default stop tokens come from the model's generation config", "[engine]") {
  for (const char* name : {"gemma2-bf16", "llama-w8a8-int8"}) {
    SECTION(name) {
      FixtureModel m(name);
      std::ifstream in(fixture_path(name) + "/generation_config.json");
      const auto gen = nlohmann::json::parse(in);
      const auto eos = gen["eos_token_id"].get<std::vector<int32_t>>();
      const EngineOptions opt = engine_options_for(m.file, m.tok.tokenizer.get());
      for (int32_t id : eos) CHECK(std::count(opt.default_stop_tokens.begin(), opt.default_stop_tokens.end(), id) == 1);
      CHECK(opt.context_length == 512);

      auto cache = m.cache(64);
      Engine engine(*m.prepared, *cache, m.tok.tokenizer.get(), opt);
      // Biased towards the last eos id, the first token is that id, and it stops there.
      GenerationRequest r = request(engine_test_prompts(m)[0], 16);
      r.use_default_stop_tokens = true;
      r.sampling.logit_bias = {{eos.back(), 1000.0f}};
      const Collected c = run_one(engine, std::move(r));
      CHECK(c.reason == FinishReason::StopToken);
      CHECK(c.ids == std::vector<int32_t>{eos.back()});
      CHECK(c.text.empty());
      // Without the defaults the same request runs to its length.
      GenerationRequest free_run = request(engine_test_prompts(m)[0], 3);
      free_run.sampling.logit_bias = {{eos.back(), 1000.0f}};
      const Collected d = run_one(engine, std::move(free_run));
      CHECK(d.reason == FinishReason::Length);
      CHECK(d.ids.size() == 3);
    }
  }
}

TEST_CASE("stop strings match across token boundaries and are never emitted", "[engine]") {
  for (const char* name : {"llama-w8a8-int8", "gemma2-bf16"}) {
    SECTION(name) {
      FixtureModel m(name);
      const auto prompt = engine_test_prompts(m)[0];
      const int n = 24;
      const auto ref = reference_greedy(m, prompt, n);
      const Tokenizer& tok = *m.tok.tokenizer;
      const std::string whole = tok.decode(ref, true);
      auto text_of = [&](size_t k) { return tok.decode(std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(k)), true); };
      // A two-byte ASCII stop string straddling the boundary between two tokens' text.
      std::string stop;
      for (size_t k = 3; k + 1 < ref.size() && stop.empty(); ++k) {
        const size_t cut = text_of(k).size();
        if (cut == 0 || cut + 1 >= whole.size() || text_of(k + 1).size() == cut) continue;
        const std::string s = whole.substr(cut - 1, 2);
        if (static_cast<unsigned char>(s[0]) < 0x80 && static_cast<unsigned char>(s[1]) < 0x80) stop = s;
      }
      REQUIRE(!stop.empty());
      size_t tokens_to_match = 1;
      while (text_of(tokens_to_match).find(stop) == std::string::npos) ++tokens_to_match;
      INFO("stop string \"" << stop << "\" in \"" << whole << "\"");

      auto cache = m.cache(64);
      Engine engine(*m.prepared, *cache, m.tok.tokenizer.get());
      GenerationRequest r = request(prompt, n);
      r.stop_strings = {"never appears \x01", stop};
      const Collected c = run_one(engine, std::move(r));
      CHECK(c.reason == FinishReason::StopString);
      CHECK(c.text == whole.substr(0, whole.find(stop)));
      CHECK(c.ids == std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(tokens_to_match)));

      // A stop string whose start appears but which never completes: held text comes out at the end.
      GenerationRequest held = request(prompt, n);
      held.stop_strings = {stop + "\x7f"};
      const Collected h = run_one(engine, std::move(held));
      CHECK(h.reason == FinishReason::Length);
      CHECK(h.text == whole);
    }
  }
}
