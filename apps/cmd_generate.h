// sparq generate / sparq bench: run a model file on a backend.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine/sampler.h"
#include "runtime/graph/backend.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);

// A model file opened, turned into a graph and prepared on a backend; shared by generate and bench.
struct RunnableModel {
  ModelFile file;
  Graph graph;
  std::unique_ptr<Backend> backend;
  double load_seconds = 0;
};
// backend: "cpu" or "auto" (the CPU is the only backend that runs models so far).
RunnableModel load_runnable_model(const std::string& path, const std::string& backend, int threads);
// A cache for `tokens` positions of one sequence (rounded up to whole blocks).
PagedKvCache make_kv_cache(const Graph& graph, int64_t tokens);
// A cache of as many 16-position blocks as budget_bytes holds (throws when not even one).
PagedKvCache make_kv_cache_bytes(const Graph& graph, uint64_t budget_bytes);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty, --frequency-penalty,
// --penalty-last-n, --seed: each checked with a message naming the flag and its range.
void add_sampling_flags(CLI::App& cmd, SamplingParams& sampling);

}  // namespace sparq
