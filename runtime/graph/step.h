// One step, fully described before a backend sees it: the engine (or a test) decides what runs,
// reserves the KV blocks and lays out everything a kernel needs, so a backend only computes.
//
// Rows are the step's new tokens, chunk after chunk. A chunk is consecutive positions of one
// sequence: a prefill chunk or a single decode token. Chunk c's rows attend to the keys of
// positions [0, start + i] found through its block table, block_table[first_block ..
// first_block + blocks), block j holding positions [j * block_tokens, (j + 1) * block_tokens).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/kv_cache/block_allocator.h"

namespace sparq {

// Which of a chunk's positions get a logits row: none (an intermediate prefill chunk, whose last
// row nobody samples: for Gemma that skips a pass over the 1.2 GB output head), the last one
// (sampling), or all (scoring, prompt log-probabilities).
enum class LogitRows : uint8_t { None, Last, All };

struct StepChunk {
  SeqId seq = -1;               // the allocator's sequence (for messages; kernels use the fields below)
  int64_t first_row = 0, rows = 0;
  int64_t start = 0;            // position of the first row; positions [0, start) are in the cache
  int64_t first_block = 0, blocks = 0;
  LogitRows logits = LogitRows::Last;
  int64_t first_logit_row = 0, logit_rows = 0;  // its rows of the step's logits
};

struct Step {
  std::vector<int32_t> tokens;     // [rows]
  std::vector<int64_t> positions;  // [rows]
  std::vector<int32_t> row_chunk;  // [rows]: the chunk each row belongs to
  std::vector<StepChunk> chunks;
  std::vector<int32_t> block_table;  // the chunks' block tables, one after another
  std::vector<int32_t> logit_rows;   // rows whose logits are computed, ascending
  std::vector<KvBlockCopy> block_copies;  // made in this order before anything else runs

  int64_t rows() const { return static_cast<int64_t>(tokens.size()); }
};

// Logits of a step: [step.logit_rows.size(), vocab], rows in step order.
struct StepLogits {
  int64_t vocab = 0;
  std::vector<float> values;
  const float* row(int64_t i) const { return values.data() + i * vocab; }
};

}  // namespace sparq
