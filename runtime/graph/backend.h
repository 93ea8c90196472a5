// The contract between the runtime and a device (CPU here; CUDA and Vulkan plug in the same way, see
// docs/BACKENDS.md). A model runs wholly on one backend:
//   1. supports(op): can the backend run this op (with its weight scheme)? A pure query;
//   2. prepare(graph): get the weights ready once (in place from the mmap on CPU; upload on GPU),
//      giving a PreparedModel;
//   3. create_kv_storage(geometry, budget): the key/value blocks, in the backend's memory;
//   4. PreparedModel::run(step, storage, logits): compute one fully described step (see step.h).
// The engine owns everything else: which tokens run, block reservation, cache lengths.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/graph/graph.h"
#include "runtime/graph/step.h"
#include "runtime/kv_cache/kv_storage.h"

namespace sparq {

// Whether a backend can run an op; `why` says what it lacks when it cannot.
struct OpSupport {
  bool ok = true;
  std::string why;
  static OpSupport yes() { return {}; }
  static OpSupport no(std::string why) { return {false, std::move(why)}; }
};

class PreparedModel {
 public:
  virtual ~PreparedModel() = default;
  virtual const Graph& graph() const = 0;
  // Makes the step's block copies, writes the keys and values of its rows into their blocks and
  // returns the logits of step.logit_rows. Called from one thread at a time, any thread. Throws
  // sparq::Error when the step fails; what the step's blocks hold is then undefined.
  virtual void run(const Step& step, KvStorage& storage, StepLogits& out) = 0;
  // Bytes of weights the backend copied or repacked (0 when it uses the file's bytes in place).
  virtual uint64_t repacked_weight_bytes() const { return 0; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // A pure query of the op's description (weights included): no allocation, no weight copy.
  virtual OpSupport supports(const Op& op) const = 0;
  // The graph (and the model file its weight views point into) must outlive the prepared model.
  // Throws sparq::Error when a weight cannot be used (supports() says so beforehand).
  virtual std::unique_ptr<PreparedModel> prepare(const Graph& graph) = 0;
  // As many blocks of the geometry as budget_bytes holds; throws sparq::Error when not even one,
  // or when the backend cannot store the geometry's dtype.
  virtual std::unique_ptr<KvStorage> create_kv_storage(const KvCacheGeometry& geometry, uint64_t budget_bytes) = 0;
};

// Every op of the graph the backend cannot run, one line each naming the op; empty = it can.
std::vector<std::string> unsupported_ops(const Backend& backend, const Graph& graph);

// The KV cache geometry a graph needs, with f32 keys and values in blocks of kKvBlockTokens.
KvCacheGeometry kv_cache_geometry(const Graph& graph, int64_t block_tokens = kKvBlockTokens, DType dtype = DType::F32);

}  // namespace sparq
