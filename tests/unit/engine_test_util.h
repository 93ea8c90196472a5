// Helpers shared by the engine tests: a fixture converted to .sparq and prepared on the CPU
// backend, an independent greedy decoder that drives the backend directly (one sequence, whole
// prompt in one chunk, argmax), and a callback that collects a request's events.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "convert/converter.h"
#include "models/model_builder.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generation_defaults.h"
#include "runtime/engine/step_builder.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/tokenizer_loader.h"
#include "test_util.h"

namespace sparq::test {

inline std::string fixture_path(const std::string& name) {
  return std::string(SPARQ_SOURCE_DIR) + "/tests/fixtures/" + name;
}

inline ModelFile open_converted_fixture(const ScratchDir& dir, const std::string& name) {
  const std::string out = dir / (name + ".sparq");
  convert_checkpoint({fixture_path(name), out, false});
  return ModelFile::open(out);
}

struct FixtureModel {
  ScratchDir scratch;
  ModelFile file;
  Graph graph;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<PreparedModel> prepared;
  LoadedTokenizer tok;
  explicit FixtureModel(const std::string& name, int threads = 2)
      : scratch("engine-" + name),
        file(open_converted_fixture(scratch, name)),
        graph(build_model_graph(file)),
        backend(make_cpu_backend({threads, true})),
        prepared(backend->prepare(graph)),
        tok(load_tokenizer(file)) {}
  int64_t vocab() const { return graph.widths[static_cast<size_t>(graph.logits)]; }
  // KV storage of `blocks` blocks of `block_tokens` positions.
  std::unique_ptr<KvStorage> cache(int64_t blocks, int64_t block_tokens = 4) const {
    const KvCacheGeometry geo = kv_cache_geometry(graph, block_tokens);
    return backend->create_kv_storage(geo, geo.block_bytes() * static_cast<uint64_t>(blocks));
  }
};

// A prepared model stepped directly, without an engine: its own KV storage and block allocator.
struct DirectRun {
  PreparedModel& model;
  std::unique_ptr<KvStorage> storage;
  BlockAllocator blocks;
  DirectRun(const FixtureModel& m, int64_t blocks, int64_t block_tokens = 4)
      : model(*m.prepared), storage(m.cache(blocks, block_tokens)), blocks(storage->blocks(), block_tokens) {}
  DirectRun(PreparedModel& model, std::unique_ptr<KvStorage> kv)
      : model(model), storage(std::move(kv)), blocks(storage->blocks(), storage->geometry().block_tokens) {}
  // Runs one step; returns its description (chunks[c].first_logit_row locates a chunk's logits).
  Step run(const std::vector<SequenceChunk>& chunks, StepLogits& out) {
    Step step = build_step(chunks, blocks);
    model.run(step, *storage, out);
    commit_step(step, blocks);
    return step;
  }
};

// Every block of the engine's KV cache is free again (cached prefix blocks count as free).
inline bool all_blocks_free(const Engine& e) { return e.kv_blocks().free_blocks() == e.kv_blocks().total_blocks(); }

// Greedy tokens straight from the backend, no engine: the independent path the engine is checked against.
inline std::vector<int32_t> reference_greedy(FixtureModel& m, const std::vector<int32_t>& prompt, int n) {
  DirectRun direct(m, static_cast<int64_t>(prompt.size()) / 4 + n / 4 + 2);
  const SeqId seq = direct.blocks.add_sequence();
  StepLogits out;
  direct.run({{seq, std::span<const int32_t>(prompt), LogitRows::Last}}, out);
  std::vector<int32_t> ids;
  while (true) {
    const float* row = out.row(0);
    const int32_t next = static_cast<int32_t>(std::max_element(row, row + out.vocab) - row);  // lowest id on ties
    ids.push_back(next);
    if (static_cast<int>(ids.size()) == n) return ids;
    direct.run({{seq, std::span<const int32_t>(&ids.back(), 1), LogitRows::Last}}, out);
  }
}

// Everything one request's events delivered.
struct Collected {
  std::vector<int32_t> ids;
  std::string text;
  int finished = 0;  // Finished events seen (must end up exactly 1)
  FinishReason reason = FinishReason::Length;
  RequestStats stats;
};

inline EventCallback collect_into(Collected& c) {
  return [&c](const GenerationEvent& e) {
    if (e.kind == GenerationEvent::Kind::Token) {
      c.ids.push_back(e.token);
    } else {
      ++c.finished;
      c.reason = e.reason;
      c.stats = e.stats;
    }
    c.text += e.text;
  };
}

inline GenerationRequest greedy_request(std::vector<int32_t> prompt, int64_t max_tokens, Collected& c) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.use_default_stop_tokens = false;
  r.on_event = collect_into(c);
  return r;
}

// The token ids of the fixture's reference prompts plus one made here, of different lengths.
inline std::vector<std::vector<int32_t>> engine_test_prompts(const FixtureModel& m) {
  std::vector<std::vector<int32_t>> out;
  for (const char* text : {"The quick brown fox", "Copyright (C) 2007 Free Software Foundation, Inc. 12345 caf\xC3\xA9",
                           "This License applies to any program or other work which contains a notice placed by the "
                           "copyright holder saying it may be distributed",
                           "Hello"})
    out.push_back(m.tok.tokenizer->encode(text, /*add_special=*/true));
  return out;
}

}  // namespace sparq::test
