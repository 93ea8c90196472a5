// Turning "these tokens of these sequences" into a Step: blocks reserved (all or none), positions,
// block tables and logits rows laid out once, here, for every backend. The engine plans its steps
// through this; tests that drive a backend directly use it too.
#pragma once
#include <span>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/graph/backend.h"
#include "runtime/graph/step.h"
#include "runtime/kv_cache/block_allocator.h"

namespace sparq {

// New tokens of one sequence; they take positions length(seq) .. length(seq) + n - 1.
struct SequenceChunk {
  SeqId seq = -1;
  std::span<const int32_t> tokens;
  LogitRows logits = LogitRows::Last;
};

struct KvCacheFull : Error {
  using Error::Error;
};

// Reserves the blocks every chunk needs and describes the step. Throws KvCacheFull naming the need
// (nothing reserved) when the pool cannot hold them, sparq::Error for an empty chunk or a sequence
// that appears twice.
Step build_step(std::span<const SequenceChunk> chunks, BlockAllocator& blocks);

// After the step ran: each chunk's sequence now holds its new positions.
void commit_step(const Step& step, BlockAllocator& blocks);

// build_step, PreparedModel::run, commit_step: one step outside an engine (benchmarks, tests).
void run_step(PreparedModel& model, KvStorage& storage, BlockAllocator& blocks, std::span<const SequenceChunk> chunks,
              StepLogits& out);

}  // namespace sparq
