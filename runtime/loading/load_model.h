// One way to open a model for running, for every command: the .sparq file mapped, its graph built,
// a backend picked (by name, or `auto`: the first in backend_registry() order that is available
// and runs every op of the graph, saying why each one before it was passed over) and the weights
// prepared on it.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/graph/backend.h"
#include "runtime/loading/backend_registry.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

struct LoadOptions {
  std::string backend = "auto";  // a backend_registry() name, or "auto"
  BackendOptions backend_options;
  // How the KV cache stores keys and values (--kv-dtype); unset: what the checkpoint's
  // kv_cache_scheme asks for (8-bit float -> fp8, 8-bit int -> int8), else f32.
  std::optional<DType> kv_dtype;
};

// The KV dtype a file's kv_cache_scheme (compressed-tensors) stands for; nullopt when it has none.
// Throws sparq::Error for a scheme no KV dtype here can hold (e.g. 4-bit).
std::optional<DType> kv_dtype_from_scheme(const nlohmann::json& kv_cache_scheme);

struct LoadedModel {
  ModelFile file;
  std::unique_ptr<const Graph> graph;  // prepared refers to it: it must not move
  std::unique_ptr<Backend> backend;
  std::unique_ptr<PreparedModel> prepared;
  std::string backend_choice;  // why this backend ("--backend cpu", "auto: cuda not built; ...")
  double load_seconds = 0;
  DType kv_dtype = DType::F32;

  // The KV cache's shape and element type for this model.
  KvCacheGeometry kv_geometry() const;

  // KV storage on the model's backend for `positions` positions (whole blocks, at least one).
  std::unique_ptr<KvStorage> kv_storage_for_positions(int64_t positions) const;
  // KV storage of as many blocks as budget_bytes holds (throws when not even one).
  std::unique_ptr<KvStorage> kv_storage_for_bytes(uint64_t budget_bytes) const;
};

// Throws sparq::Error naming the file, the backend and every op it cannot run.
LoadedModel load_model(const std::string& path, const LoadOptions& options);

}  // namespace sparq
