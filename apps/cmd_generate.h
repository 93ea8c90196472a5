// sparq generate / sparq bench: run a model file on a backend.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine/sampler.h"
#include "runtime/loading/load_model.h"

namespace sparq {

void add_generate_command(CLI::App& app);
void add_bench_command(CLI::App& app);

// --backend, --device, --threads, --kv-dtype: how every command that runs a model picks where it
// runs and how its KV cache stores keys and values.
void add_backend_flags(CLI::App& cmd, LoadOptions& options);
// Why a --backend value cannot be used (unknown name, bad option); empty when it can.
std::string backend_spec_problem(const std::string& spec);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty, --frequency-penalty,
// --penalty-last-n, --seed: each checked with a message naming the flag and its range.
void add_sampling_flags(CLI::App& cmd, SamplingParams& sampling);

}  // namespace sparq
