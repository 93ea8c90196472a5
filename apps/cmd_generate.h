// sparq generate / sparq bench: run a model file on a backend.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

}  // namespace sparq
