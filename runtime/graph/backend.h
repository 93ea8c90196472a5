// The narrow interface every backend implements (CPU here; CUDA and Vulkan plug in the same way, see
// docs/BACKENDS.md). A model runs wholly on one backend:
//   1. unsupported(graph): what the backend cannot run (op x weight scheme), one line each; empty = OK;
//   2. prepare(graph, file): get the weights ready once (in place from the mmap on CPU; upload on GPU);
//   3. run(graph, batch, cache): one step over a batch of sequences — prefill chunks and decode tokens
//      mixed — writing keys/values into the paged cache and returning the requested logits.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/graph/graph.h"
#include "runtime/kv_cache/paged_kv_cache.h"

namespace sparq {

class ModelFile;

// Which of a chunk's positions get a logits row: none (an intermediate prefill chunk, whose last
// row nobody samples: for Gemma that skips a pass over the 1.2 GB output head), the last one
// (sampling), or all (scoring, prompt log-probabilities).
enum class LogitRows : uint8_t { None, Last, All };

// New tokens of one sequence for this step; they take positions length(seq) .. length(seq)+n-1.
struct SequenceChunk {
  SeqId seq = -1;
  std::span<const int32_t> tokens;
  LogitRows logits = LogitRows::Last;
};

struct Batch {
  std::vector<SequenceChunk> chunks;
  int64_t tokens() const;
  int64_t logit_rows() const;
};

// Logits of a step, rows in chunk order: all of a chunk's positions, its last one, or none.
struct BatchLogits {
  int64_t vocab = 0;
  std::vector<float> values;         // [rows, vocab]
  std::vector<int64_t> chunk_first;  // first row of each chunk (a chunk without rows: where the next would start)
  const float* row(size_t chunk, int64_t i = 0) const {
    return values.data() + (chunk_first[chunk] + i) * vocab;
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::vector<std::string> unsupported(const Graph& graph, const ModelFile& file) const = 0;
  // The file must outlive the backend (CPU weights stay in its mmap). Throws sparq::Error when a
  // weight cannot be used (unsupported() lists why beforehand).
  virtual void prepare(const Graph& graph, const ModelFile& file) = 0;
  // Reserves cache blocks for the batch first: when the budget cannot hold them, throws
  // KvCacheFull before anything is written. On success the sequences' cache lengths grow by their tokens.
  virtual void run(const Graph& graph, const Batch& batch, PagedKvCache& cache, BatchLogits& out) = 0;
  // Bytes of weights the backend copied or repacked (0 when it uses the file's bytes in place).
  virtual uint64_t repacked_weight_bytes() const { return 0; }
};

struct KvCacheFull : Error {
  using Error::Error;
};

// Reserves blocks for every chunk of the batch, or none: throws KvCacheFull naming the need.
void reserve_batch(const Batch& batch, PagedKvCache& cache);

}  // namespace sparq
